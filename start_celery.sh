#!/usr/bin/env bash
# start_celery.sh — start, stop, restart and inspect the qagen (Go) worker
# that replaces the Python system's Celery worker. Same commands and options
# as the Python system's script; see usage below and the README.
#
# Differences from the Python script, on purpose:
#   * stop waits for the warm shutdown (running LLM calls finish) instead of
#     SIGKILLing after 2 s, and only ever signals the process named in its
#     own pid file after checking that it is a qagen worker; it never pkills.
#   * start refuses to start a second copy instead of killing every Celery
#     worker on the host.
#   * status shows the real queue (qa_generation, every priority list), the
#     unacked messages, the workers that answer ping and every log file.
set -euo pipefail
shopt -s nullglob

CALLER_PWD=$PWD
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

PROG=$(basename "$0")
WORKERS=8
LOG_LEVEL=info
QUEUES=qa_generation
QUEUES_GIVEN=""
COMMAND=""

abspath() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s\n' "$CALLER_PWD/$1" ;;
	esac
}

QAGEN=$(abspath "${QAGEN_BIN:-$ROOT/bin/qagen}")
PIDFILE=$(abspath "${QAGEN_PIDFILE:-/tmp/celery_qa.pid}")
LOG_DIR=$(abspath "${QAGEN_LOG_DIR:-$ROOT/logs}")
NODENAME_TEMPLATE=${QAGEN_NODENAME:-qa_worker@%h}
STOP_TIMEOUT=${QAGEN_STOP_TIMEOUT:-330}   # > the 300 s hard / 240 s soft time limit
COLD_TIMEOUT=${QAGEN_COLD_TIMEOUT:-30}    # after the second SIGTERM, before SIGKILL
START_TIMEOUT=${QAGEN_START_TIMEOUT:-60}  # until the worker answers ping
KEY_PREFIX=${QAGEN_KEY_PREFIX:-}         # kombu global_keyprefix, if the deployment uses one
OUT_FILE="$LOG_DIR/start_celery.out"      # the worker's stdout/stderr (errors before its log opens)

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	RED=$'\033[0;31m' GREEN=$'\033[0;32m' YELLOW=$'\033[1;33m' BLUE=$'\033[0;34m' NC=$'\033[0m'
else
	RED="" GREEN="" YELLOW="" BLUE="" NC=""
fi
ok() { printf '%s✓ %s%s\n' "$GREEN" "$*" "$NC"; }
info() { printf '%s%s%s\n' "$BLUE" "$*" "$NC"; }
warn() { printf '%s! %s%s\n' "$YELLOW" "$*" "$NC"; }
fail() { printf '%s✗ %s%s\n' "$RED" "$*" "$NC"; }

usage() {
	cat <<EOF
Usage: $PROG {start|stop|restart|status} [options]

Manage the qagen worker (Go, Celery-compatible) that consumes the Q&A queue.

Commands:
  start     check Redis, build bin/qagen if needed, start the worker in the
            background and wait until it answers ping; refuses if it runs
  stop      warm shutdown: SIGTERM, wait until running tasks finish (up to
            \$QAGEN_STOP_TIMEOUT, default 330 s), then a second SIGTERM (cold
            shutdown: unfinished messages go back to the queue), then SIGKILL
  restart   stop, then start (queued messages are kept; no FLUSHDB needed)
  status    Redis, queue lengths, unacked, workers answering ping, active
            tasks, last log lines. Exit 0 running, 1 stale pid file, 3 stopped

Options:
  -w, --workers N      tasks run at once (goroutines; default 8)
  -l, --loglevel LEVEL debug, info, warning, error, critical (default info)
  -q, --queues Q       comma-separated queues (default qa_generation)
  -h, --help           this help

Environment:
  CELERY_BROKER_URL, CELERY_RESULT_BACKEND  Redis URLs (default redis://localhost:6379/0)
  QAGEN_PIDFILE      pid file (default /tmp/celery_qa.pid)
  QAGEN_LOG_DIR      log directory (default <repo>/logs; log celery_qa_%n.log)
  QAGEN_NODENAME     node name (default qa_worker@%h)
  QAGEN_STOP_TIMEOUT seconds stop waits for the warm shutdown (default 330)
  QAGEN_COLD_TIMEOUT seconds stop waits after the second SIGTERM (default 30)
  QAGEN_START_TIMEOUT seconds start waits for the worker to answer (default 60)
  QAGEN_BIN          qagen binary (default <repo>/bin/qagen, built if missing or stale)
  QAGEN_KEY_PREFIX   kombu global_keyprefix of the broker keys (default none)
EOF
}

usage_error() {
	printf '%s: %s\n\n' "$PROG" "$*" >&2
	usage >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	-w | --workers | -l | --loglevel | -q | -Q | --queues)
		[ $# -ge 2 ] || usage_error "option $1 needs a value"
		case $1 in
		-w | --workers) WORKERS=$2 ;;
		-l | --loglevel) LOG_LEVEL=$2 ;;
		*) QUEUES=$2 QUEUES_GIVEN=1 ;;
		esac
		shift 2
		;;
	--workers=*) WORKERS=${1#*=} && shift ;;
	--loglevel=*) LOG_LEVEL=${1#*=} && shift ;;
	--queues=*) QUEUES=${1#*=} QUEUES_GIVEN=1 && shift ;;
	-h | --help)
		usage
		exit 0
		;;
	start | stop | restart | status)
		[ -z "$COMMAND" ] || usage_error "only one command, got $COMMAND and $1"
		COMMAND=$1
		shift
		;;
	*) usage_error "unknown option or command: $1" ;;
	esac
done
[ -n "$COMMAND" ] || usage_error "no command given"
[[ $WORKERS =~ ^[1-9][0-9]{0,5}$ ]] || usage_error "--workers needs a positive number, got '$WORKERS'"
LOG_LEVEL=$(printf '%s' "$LOG_LEVEL" | tr '[:upper:]' '[:lower:]')
case $LOG_LEVEL in
debug | info | warning | warn | error | critical | fatal) ;;
*) usage_error "unknown log level '$LOG_LEVEL' (debug, info, warning, error, critical)" ;;
esac
[[ $QUEUES =~ ^[^[:space:],]+(,[^[:space:],]+)*$ ]] || usage_error "--queues needs comma-separated names, got '$QUEUES'"
for n in "$STOP_TIMEOUT" "$COLD_TIMEOUT" "$START_TIMEOUT"; do
	[[ $n =~ ^[0-9]+$ ]] || usage_error "timeouts must be whole seconds, got '$n'"
done

# The node name as qagen expands it (%h host, %n its first label, %d the
# domain), for ping; the log file uses the node name's name part (%n).
HOST=$(uname -n)
NODENAME=${NODENAME_TEMPLATE//%h/$HOST}
NODENAME=${NODENAME//%n/${HOST%%.*}}
if [[ $HOST == *.* ]]; then NODENAME=${NODENAME//%d/${HOST#*.}}; else NODENAME=${NODENAME//%d/}; fi
[[ $NODENAME == *@* ]] || NODENAME="celery@$NODENAME"
LOG_FILE="$LOG_DIR/celery_qa_${NODENAME%%@*}.log"
PREFIX_ARGS=()
[ -z "$KEY_PREFIX" ] || PREFIX_ARGS=(--key-prefix "$KEY_PREFIX")

# ---------------------------------------------------------------- processes

# alive PID: the process exists and is not a zombie.
alive() {
	local pid=$1 stat
	if [ -d /proc ]; then
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
		stat=${stat##*) }
		[ "${stat%% *}" != Z ]
	else
		kill -0 "$pid" 2>/dev/null
	fi
}

# cmdline PID: fills ARGV with the process's arguments.
ARGV=()
cmdline() {
	ARGV=()
	[ -r "/proc/$1/cmdline" ] || return 1
	mapfile -d '' -t ARGV <"/proc/$1/cmdline" 2>/dev/null
	[ ${#ARGV[@]} -gt 0 ]
}

# our_worker PID: the process is `qagen worker` and was started with our
# pid file, so it is the worker this pid file belongs to (and not a process
# that reused the pid, nor another worker on the host).
our_worker() {
	local pid=$1 exe i pf="" cwd
	cmdline "$pid" || return 1
	exe=$(basename "${ARGV[0]}")
	[ "$exe" = qagen ] || [ "$exe" = "$(basename "$QAGEN")" ] || return 1
	[ "${ARGV[1]:-}" = worker ] || return 1
	for ((i = 2; i < ${#ARGV[@]}; i++)); do
		case ${ARGV[i]} in
		--pidfile | -pidfile) pf=${ARGV[i + 1]:-} ;;
		--pidfile=* | -pidfile=*) pf=${ARGV[i]#*=} ;;
		esac
	done
	[ -n "$pf" ] || return 1
	if [[ $pf != /* ]]; then
		cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
		pf="$cwd/$pf"
	fi
	[ "$(readlink -m "$pf")" = "$(readlink -m "$PIDFILE")" ]
}

# python_worker PID: a Celery (Python) worker, e.g. the old system's.
python_worker() {
	cmdline "$1" || return 1
	[[ " ${ARGV[*]} " == *celery* && " ${ARGV[*]} " == *" worker "* ]]
}

# state: sets PID and STATE to none (no pid file), stale (the pid is gone or
# belongs to something else), running (our qagen worker) or python.
PID=""
STATE=none
state() {
	PID="" STATE=none
	[ -e "$PIDFILE" ] || return 0
	PID=$(tr -d '[:space:]' <"$PIDFILE" 2>/dev/null || true)
	STATE=stale
	[[ $PID =~ ^[1-9][0-9]*$ ]] || return 0
	alive "$PID" || return 0
	if our_worker "$PID"; then
		STATE=running
	elif python_worker "$PID"; then
		STATE=python
	fi
}

remove_stale_pidfile() {
	if [ -n "$PID" ] && alive "$PID"; then
		warn "pid file $PIDFILE names pid $PID, which is not a qagen worker of this pid file; not touching it"
	fi
	rm -f "$PIDFILE"
	warn "removed stale pid file $PIDFILE"
}

python_refusal() {
	fail "pid file $PIDFILE names a Python Celery worker (pid $PID): ${ARGV[*]}"
	echo "  Stop it first (the old start_celery.sh stop, or: kill -TERM $PID), then run $PROG $COMMAND again."
}

# signal SIG PID: signals PID only if it is still our worker; fails when
# kill does (another user's process).
signal() {
	if alive "$2" && our_worker "$2"; then
		kill "-$1" "$2"
	fi
}

# wait_gone PID SECONDS: 0 once the process is gone; prints progress.
wait_gone() {
	local pid=$1 limit=$2 start=$SECONDS next=30
	while alive "$pid"; do
		if ((SECONDS - start >= limit)); then
			return 1
		fi
		if ((SECONDS - start >= next)); then
			info "  still waiting for running tasks to finish ($((SECONDS - start)) s of $limit s)"
			next=$((next + 30))
		fi
		sleep 0.2
	done
}

# has_command NAME: this qagen build has the subcommand.
has_command() { "$QAGEN" help "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- checks

ensure_binary() {
	local why=""
	if [ -n "${QAGEN_BIN:-}" ]; then
		[ -x "$QAGEN" ] && return 0
		fail "QAGEN_BIN=$QAGEN is not an executable file"
		return 1
	fi
	if [ ! -x "$QAGEN" ]; then
		why="it does not exist"
	elif command -v go >/dev/null &&
		[ -n "$(find "$ROOT" -path "$ROOT/.git" -prune -o -path "$ROOT/testdata" -prune -o \
			\( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) -newer "$QAGEN" -print -quit 2>/dev/null)" ]; then
		why="the sources are newer"
	fi
	[ -n "$why" ] || return 0
	command -v go >/dev/null || {
		fail "$QAGEN is missing and Go is not installed to build it"
		return 1
	}
	info "building $QAGEN ($why)"
	if command -v make >/dev/null; then
		make -s -C "$ROOT" build >&2
	else
		go build -o "$ROOT/bin/qagen" ./cmd/qagen
	fi || {
		fail "build failed"
		return 1
	}
}

# redis_check: 0 when the broker answers. Uses qagen (CELERY_BROKER_URL,
# TLS, passwords kept out of the process table).
REDIS_ERR=""
redis_check() {
	REDIS_ERR=$(timeout 20 "$QAGEN" queues -Q "${QUEUES%%,*}" "${PREFIX_ARGS[@]}" 2>&1 >/dev/null) && return 0
	REDIS_ERR=${REDIS_ERR#qagen: }
	[ -n "$REDIS_ERR" ] || REDIS_ERR="no answer within 20 s"
	return 1
}

check_redis() {
	if redis_check; then
		ok "Redis: reachable"
		return 0
	fi
	fail "Redis: not reachable: $REDIS_ERR"
	echo "  Start Redis, e.g.: sudo systemctl start redis-server (Debian/Ubuntu) or brew services start redis (macOS)," >&2
	echo "  and check CELERY_BROKER_URL / CELERY_RESULT_BACKEND." >&2
	return 1
}

# ---------------------------------------------------------------- commands

do_start() {
	local launched offset pid="" ready="" deadline
	state
	case $STATE in
	running)
		fail "qagen worker already running (pid $PID, pid file $PIDFILE); use '$PROG restart' to restart it"
		return 1
		;;
	python)
		python_refusal
		return 1
		;;
	stale) remove_stale_pidfile ;;
	esac
	ensure_binary || return 1
	check_redis || return 1
	mkdir -p "$LOG_DIR" "$(dirname "$PIDFILE")"
	offset=$(stat -c %s "$LOG_FILE" 2>/dev/null || echo 0)

	local argv=("$QAGEN" worker --pidfile "$PIDFILE" --logfile "$LOG_DIR/celery_qa_%n.log"
		-Q "$QUEUES" -c "$WORKERS" -n "$NODENAME_TEMPLATE" -l "$LOG_LEVEL" "${PREFIX_ARGS[@]}")
	info "starting: ${argv[*]}"
	# Detached: own session, no terminal, SIGHUP ignored, output to a file
	# (the worker logs to its log file once it has opened it).
	if command -v setsid >/dev/null; then
		setsid nohup "${argv[@]}" </dev/null >"$OUT_FILE" 2>&1 &
	else
		nohup "${argv[@]}" </dev/null >"$OUT_FILE" 2>&1 &
	fi
	launched=$!

	local ping=""
	has_command inspect && ping=1
	deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		state
		if [ "$STATE" = running ]; then
			pid=$PID
			if [ -n "$ping" ]; then
				"$QAGEN" inspect ping -d "$NODENAME" -t 1 "${PREFIX_ARGS[@]}" >/dev/null 2>&1 && ready=1
			elif [ "$LOG_LEVEL" = debug ] || [ "$LOG_LEVEL" = info ]; then
				tail -c "+$((offset + 1))" "$LOG_FILE" 2>/dev/null | grep -q 'worker ready' && ready=1
			else
				# No ready line at this level: the pid file and a second alive.
				sleep 1
				alive "$pid" && ready=1
			fi
			[ -n "$ready" ] && break
		elif ! alive "$launched"; then
			sleep 0.5 # setsid may have forked: give the pid file a moment
			state
			[ "$STATE" = running ] && continue
			wait "$launched" 2>/dev/null || true
			fail "qagen worker failed to start:"
			sed 's/^/  /' "$OUT_FILE" >&2
			[ -f "$LOG_FILE" ] && tail -c "+$((offset + 1))" "$LOG_FILE" | tail -n 5 | sed 's/^/  /' >&2
			return 1
		fi
		sleep 0.2
	done
	if [ -z "$ready" ]; then
		if [ -n "$pid" ] && alive "$pid"; then
			fail "qagen worker (pid $pid) did not answer within $START_TIMEOUT s; it is still running: see '$PROG status' and $LOG_FILE"
		else
			fail "qagen worker did not start within $START_TIMEOUT s; see $OUT_FILE and $LOG_FILE"
		fi
		return 1
	fi
	ok "qagen worker started (pid $pid, $WORKERS at once, queue $QUEUES, node $NODENAME)"
	echo "  log file: $LOG_FILE   (tail -f $LOG_FILE)"
	echo "  pid file: $PIDFILE"
}

do_stop() {
	state
	case $STATE in
	none)
		info "qagen worker is not running (no pid file $PIDFILE)"
		return 0
		;;
	stale)
		remove_stale_pidfile
		info "qagen worker is not running"
		return 0
		;;
	python)
		python_refusal
		return 1
		;;
	esac
	local pid=$PID
	info "stopping qagen worker (pid $pid): warm shutdown, running tasks finish first (up to $STOP_TIMEOUT s)"
	signal TERM "$pid" || {
		fail "cannot signal pid $pid"
		return 1
	}
	if wait_gone "$pid" "$STOP_TIMEOUT"; then
		ok "qagen worker stopped"
	else
		warn "still running after $STOP_TIMEOUT s: cold shutdown (second SIGTERM), unfinished messages go back to the queue"
		signal TERM "$pid" || true
		if wait_gone "$pid" "$COLD_TIMEOUT"; then
			ok "qagen worker stopped (cold shutdown)"
		else
			warn "still running after $COLD_TIMEOUT s: SIGKILL; its unacked messages come back after the visibility timeout"
			signal KILL "$pid" || true
			wait_gone "$pid" 10 || {
				fail "pid $pid did not exit"
				return 1
			}
			ok "qagen worker killed"
		fi
	fi
	# The worker removes its pid file on exit; not after SIGKILL.
	if [ -e "$PIDFILE" ] && [ "$(tr -d '[:space:]' <"$PIDFILE" 2>/dev/null)" = "$pid" ]; then
		rm -f "$PIDFILE"
	fi
	return 0
}

# remote_section TITLE ARGS...: a qagen remote-control command's output;
# exit 69 means no worker answered.
remote_section() {
	local title=$1 out rc=0
	shift
	info "$title"
	out=$(timeout 20 "$QAGEN" "$@" -t 1 "${PREFIX_ARGS[@]}" 2>&1) || rc=$?
	if [ "$rc" -eq 69 ]; then
		echo "  (no worker answered within 1 s)"
	else
		printf '%s\n' "$out" | sed '/^$/d; s/^/  /'
	fi
}

do_status() {
	local rc=3 redis_ok="" out
	printf '%s=== qagen worker status ===%s\n' "$BLUE" "$NC"
	state
	case $STATE in
	running)
		ok "worker: running (pid $PID, node $NODENAME, up $(ps -o etime= -p "$PID" 2>/dev/null | tr -d ' '))"
		rc=0
		;;
	stale)
		fail "worker: not running (stale pid file $PIDFILE names pid $PID)"
		rc=1
		;;
	python)
		warn "worker: pid file $PIDFILE names a Python Celery worker (pid $PID)"
		rc=0
		;;
	none) fail "worker: not running (no pid file $PIDFILE)" ;;
	esac

	if ! ensure_binary >/dev/null; then
		fail "no qagen binary: cannot query Redis"
	elif out=$(timeout 20 "$QAGEN" queues ${QUEUES_GIVEN:+-Q "$QUEUES"} "${PREFIX_ARGS[@]}" 2>&1); then
		redis_ok=1
		ok "Redis: reachable"
		printf '%s\n' "$out" | sed 's/^/  /'
	else
		fail "Redis: not reachable: ${out#qagen: }"
	fi

	if [ -n "$redis_ok" ]; then
		echo
		if has_command status; then
			remote_section "workers answering ping (Go and Python):" status
		else
			info "workers answering ping: (this qagen build has no 'status' command)"
		fi
		if has_command inspect; then
			remote_section "active tasks:" inspect active
		fi
	fi

	echo
	local logs=("$LOG_DIR"/celery_qa_*.log)
	if [ ${#logs[@]} -eq 0 ]; then
		info "no log files ($LOG_DIR/celery_qa_*.log)"
	fi
	for f in "${logs[@]}"; do
		info "last lines of $f:"
		tail -n 5 "$f" | sed 's/^/  /'
	done
	return $rc
}

case $COMMAND in
start) do_start ;;
stop) do_stop ;;
restart) do_stop && do_start ;;
status) do_status ;;
esac
