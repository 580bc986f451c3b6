#!/usr/bin/env bash
# End-to-end test of start_celery.sh against real Redis (run by
# cmd/qagen/startscript_test.go, so `make test` runs it).
#
# Needs: QAGEN_TEST_REDIS_URL, a Redis database (default
# redis://127.0.0.1:6379/8) nobody flushes while it runs; every broker key
# carries a key prefix of this run, so parallel runs do not meet;
# QAGEN_BIN, the qagen binary (default bin/qagen); redis-cli, setsid.
# Every process it starts is stopped on exit, by pid; nothing else is touched.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT="$ROOT/start_celery.sh"
URL=${QAGEN_TEST_REDIS_URL:-redis://127.0.0.1:6379/8}
export QAGEN_BIN=${QAGEN_BIN:-$ROOT/bin/qagen}
QAGEN=$QAGEN_BIN

T=$(mktemp -d "${TMPDIR:-/tmp}/qagen-startscript.XXXXXX")
export CELERY_BROKER_URL=$URL CELERY_RESULT_BACKEND=$URL
export QAGEN_PIDFILE="$T/run/celery_qa.pid" QAGEN_LOG_DIR="$T/logs"
export QAGEN_NODENAME="sctest$$@%h" QAGEN_START_TIMEOUT=30
export QAGEN_KEY_PREFIX="sctest$$.$RANDOM:"
P=(--key-prefix "$QAGEN_KEY_PREFIX")
unset QAGEN_STOP_TIMEOUT QAGEN_COLD_TIMEOUT NO_COLOR
Q="sctest_q$$"
OTHER_Q="sctest_other$$"
LOG="$QAGEN_LOG_DIR/celery_qa_sctest$$.log"
FAILS=0
HELPER_PIDS=()

log() { printf '== %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*"
	FAILS=$((FAILS + 1))
}
die() {
	printf 'FATAL: %s\n' "$*"
	exit 1
}

# stop_pidfile FILE: stops the process a pid file of ours names.
stop_pidfile() {
	local pid
	[ -f "$1" ] || return 0
	pid=$(tr -d '[:space:]' <"$1")
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do alive "$pid" || return 0; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
}
cleanup() {
	stop_pidfile "$QAGEN_PIDFILE"
	stop_pidfile "$T/other.pid"
	for p in "${HELPER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	# This run's broker keys (the results expire by themselves).
	redis-cli -u "$URL" --scan --pattern "$QAGEN_KEY_PREFIX*" 2>/dev/null |
		while read -r k; do redis-cli -u "$URL" del "$k" >/dev/null; done
	if [ "$FAILS" -ne 0 ] && [ -d "$T" ]; then
		echo "--- logs:"
		tail -n 30 "$T"/logs/* "$T"/*.log 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT

alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}

# capture COMMAND...: runs it, sets OUT and RC, echoes the output.
OUT="" RC=0
capture() {
	OUT=$("$@" 2>&1)
	RC=$?
	printf '%s\n' "$OUT" | sed 's/^/   | /'
}
# run ARGS...: start_celery.sh ARGS under capture.
run() { capture "$SCRIPT" "$@"; }
expect_rc() { [ "$RC" -eq "$1" ] || fail "$2: exit $RC, want $1"; }
expect_out() { grep -q -- "$1" <<<"$OUT" || fail "$2: output lacks '$1'"; }

pidof_file() { tr -d '[:space:]' <"$QAGEN_PIDFILE" 2>/dev/null; }

# queue_field NAME: a number from `qagen queues --json -Q $Q`.
queue_field() {
	"$QAGEN" queues --json -Q "$Q" "${P[@]}" | grep -o "\"$1\": [0-9]*" | head -n 1 | grep -o '[0-9]*$'
}

# wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
	local limit=$1 what=$2 start=$SECONDS
	shift 2
	until "$@"; do
		if ((SECONDS - start >= limit)); then
			fail "timed out after $limit s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

task_status() {
	redis-cli -u "$URL" --raw GET "celery-task-meta-$1" | grep -o '"status": *"[A-Z]*"' | grep -o '[A-Z]*'
}
succeeded() { [ "$(task_status "$1")" = SUCCESS ]; }
unacked_is() { [ "$(queue_field unacked)" = "$1" ]; }
waiting_is() { [ "$(queue_field total)" = "$1" ]; }
send() { "$QAGEN" call "$@" -Q "$Q" "${P[@]}"; }

# expect_running: the pid file names a live `qagen worker` with our pid file.
expect_running() {
	local pid args
	pid=$(pidof_file)
	[[ $pid =~ ^[0-9]+$ ]] || {
		fail "$1: no pid in $QAGEN_PIDFILE"
		return
	}
	alive "$pid" || fail "$1: pid $pid is not running"
	args=$(ps -o args= -p "$pid")
	[[ $args == *"qagen worker --pidfile $QAGEN_PIDFILE "* ]] || fail "$1: process table shows '$args'"
	[[ $args == *"-Q $Q"* ]] || fail "$1: worker not on queue $Q: '$args'"
}
# count_ours: how many processes in the process table are qagen workers
# with our pid file.
count_ours() {
	ps -eo args= | awk -v s="worker --pidfile $QAGEN_PIDFILE " 'index($0, s) && $1 !~ /awk$/' | wc -l
}
# now_ms: wall clock in milliseconds.
now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}
# expect_stopped: no pid file, and no process with our pid file.
expect_stopped() {
	[ ! -e "$QAGEN_PIDFILE" ] || fail "$1: pid file left: $(cat "$QAGEN_PIDFILE")"
	if [ "$(count_ours)" -ne 0 ]; then
		fail "$1: a worker with our pid file is still in the process table"
	fi
}

[ -x "$QAGEN" ] || die "no qagen binary at $QAGEN"
command -v redis-cli >/dev/null || die "redis-cli is missing"
redis-cli -u "$URL" ping | grep -q PONG || die "Redis at $URL does not answer"

log "usage and options"
run -h
expect_rc 0 "-h"
expect_out "Usage:" "-h"
run bogus
expect_rc 1 "unknown command"
run start --frobnicate
expect_rc 1 "unknown option"
run
expect_rc 1 "no command"
run start -w zero
expect_rc 1 "bad --workers"
grep -q $'\033' <<<"$OUT" && fail "colour escape codes in non-terminal output"

log "status while stopped (run from another directory)"
capture bash -c 'cd / && exec "$0" "$@"' "$SCRIPT" status -q "$Q"
expect_rc 3 "status stopped"
expect_out "not running" "status stopped"
expect_out "Redis: reachable" "status stopped"
expect_out "no log files" "status without logs"

log "start"
run start -w 2 -q "$Q" -l info
expect_rc 0 "start"
expect_out "started" "start"
expect_running "after start"
PID1=$(pidof_file)
[ -f "$LOG" ] || fail "no log file $LOG"
grep -q "worker ready" "$LOG" || fail "log lacks 'worker ready'"
grep -q "concurrency=2" "$LOG" || fail "log lacks concurrency=2"
NODE="sctest$$@$(uname -n)"
HAVE_REMOTE=""
if "$QAGEN" help inspect >/dev/null 2>&1 && "$QAGEN" help status >/dev/null 2>&1; then
	HAVE_REMOTE=1
	"$QAGEN" inspect ping -d "$NODE" -t 1 "${P[@]}" >/dev/null || fail "the started worker does not answer ping"
else
	echo "   (this qagen has no inspect/status commands: ping checks skipped)"
fi

log "a second start is refused and changes nothing"
run start -w 2 -q "$Q"
expect_rc 1 "second start"
expect_out "already running" "second start"
[ "$(pidof_file)" = "$PID1" ] || fail "second start changed the pid file"
alive "$PID1" || fail "second start killed the worker"
[ "$(count_ours)" -eq 1 ] || fail "$(count_ours) workers with our pid file, want 1"

log "status while running"
run status -q "$Q"
expect_rc 0 "status running"
expect_out "running (pid $PID1" "status running"
expect_out "$Q" "status shows the queue"
expect_out "unacked: 0" "status shows unacked"
expect_out "last lines of $LOG" "status shows the log"

log "an unrelated qagen worker on another queue and pid file"
setsid nohup "$QAGEN" worker -Q "$OTHER_Q" -c 1 --pidfile "$T/other.pid" -n "other$$@%h" "${P[@]}" \
	--logfile "$T/other.log" </dev/null >"$T/other.out" 2>&1 &
wait_for 20 "the other worker's pid file" test -s "$T/other.pid"
OTHER_PID=$(tr -d '[:space:]' <"$T/other.pid")
wait_for 20 "the other worker to be ready" grep -q "worker ready" "$T/other.log"

log "stop while a task runs: waits for it, nothing lost"
ID=$(send qagen.sleep --args '[4000]')
wait_for 10 "the sleep task to be taken" unacked_is 1
taken=$(now_ms)
if [ -n "$HAVE_REMOTE" ]; then
	run status -q "$Q"
	expect_rc 0 "status with a running task"
	expect_out "$NODE: OK" "status lists the worker answering ping"
	expect_out "\"id\":\"$ID\"" "status lists the active task"
	expect_out "unacked: 1" "status counts the running task as unacked"
fi
run stop
expect_rc 0 "stop"
expect_out "stopped" "stop"
took=$(($(now_ms) - taken))
((took >= 3000)) || fail "stop returned $took ms after the 4 s task was taken: it did not wait for it"
succeeded "$ID" || fail "sleep task $ID: status '$(task_status "$ID")', want SUCCESS"
grep -q "warm shutdown" "$LOG" || fail "log lacks the warm shutdown"
grep -q "succeeded id=$ID" "$LOG" || fail "log lacks the task's success"
tail -n 1 "$LOG" | grep -q "worker stopped" || fail "the log does not end with 'worker stopped'"
expect_stopped "after stop"
waiting_is 0 || fail "queue not empty after stop: $(queue_field total)"
unacked_is 0 || fail "unacked not empty after stop: $(queue_field unacked)"
alive "$OTHER_PID" || fail "stop killed the unrelated worker"
if [ -n "$HAVE_REMOTE" ]; then
	"$QAGEN" inspect ping -d "$NODE" -t 1 "${P[@]}" >/dev/null 2>&1
	[ $? -eq 69 ] || fail "the stopped worker still answers ping (or ping failed otherwise)"
	"$QAGEN" inspect ping -d "other$$@$(uname -n)" -t 1 "${P[@]}" >/dev/null || fail "the unrelated worker no longer answers ping"
fi

log "stop when already stopped"
run stop
expect_rc 0 "second stop"
expect_out "not running" "second stop"
alive "$OTHER_PID" || fail "second stop killed the unrelated worker"

log "stale pid files"
sleep 0 &
DEAD=$!
wait "$DEAD"
mkdir -p "$(dirname "$QAGEN_PIDFILE")"
echo "$DEAD" >"$QAGEN_PIDFILE"
run status -q "$Q"
expect_rc 1 "status with a stale pid file"
expect_out "stale pid file" "status with a stale pid file"
run stop
expect_rc 0 "stop with a stale pid file"
[ ! -e "$QAGEN_PIDFILE" ] || fail "stop left the stale pid file"
# A reused pid: a live process that is not our worker.
sleep 120 &
SLEEPER=$!
HELPER_PIDS+=("$SLEEPER")
echo "$SLEEPER" >"$QAGEN_PIDFILE"
run stop
expect_rc 0 "stop with a pid file naming another process"
alive "$SLEEPER" || fail "stop killed an unrelated process"
[ ! -e "$QAGEN_PIDFILE" ] || fail "stop left a pid file naming another process"
# The unrelated qagen worker's pid in our pid file.
echo "$OTHER_PID" >"$QAGEN_PIDFILE"
run stop
expect_rc 0 "stop with a pid file naming another qagen worker"
alive "$OTHER_PID" || fail "stop killed the unrelated qagen worker named in our pid file"
[ ! -e "$QAGEN_PIDFILE" ] || fail "stop left a pid file naming another worker"
# start takes over a stale pid file.
echo "$DEAD" >"$QAGEN_PIDFILE"
run start -w 1 -q "$Q"
expect_rc 0 "start with a stale pid file"
expect_out "removed stale pid file" "start with a stale pid file"
expect_running "after start over a stale pid file"

log "restart keeps queued messages"
SLOW=$(send qagen.sleep --args '[2000]')
wait_for 10 "the slow task to be taken" unacked_is 1
IDS=()
for i in 1 2 3; do IDS+=("$(send qagen.add --args "[$i, 1]")"); done
PID2=$(pidof_file)
run restart -w 2 -q "$Q"
expect_rc 0 "restart"
expect_running "after restart"
[ "$(pidof_file)" != "$PID2" ] || fail "restart kept the old pid $PID2"
alive "$PID2" && fail "old worker $PID2 still alive after restart"
for id in "$SLOW" "${IDS[@]}"; do
	wait_for 20 "task $id to succeed" succeeded "$id"
done
wait_for 10 "an empty queue" waiting_is 0
wait_for 10 "nothing unacked" unacked_is 0

log "messages sent while stopped wait in the queue, then run"
run stop
expect_rc 0 "stop before sending"
IDS=()
for i in 1 2; do IDS+=("$(send qagen.add --args "[$i, 2]")"); done
ID=$(send qagen.add --args '[9, 9]' --priority 9)
IDS+=("$ID")
waiting_is 3 || fail "queue holds $(queue_field total) messages, want 3"
"$QAGEN" queues -Q "$Q" "${P[@]}" | grep -Eq "^$Q +3 +2 +0 +0 +1$" || fail "priority lists: $("$QAGEN" queues -Q "$Q" "${P[@]}")"
echo "an older log line" >"$QAGEN_LOG_DIR/celery_qa_older.log"
run status -q "$Q"
expect_rc 3 "status stopped with messages"
expect_out "last lines of $LOG" "status with several log files"
expect_out "an older log line" "status with several log files"
expect_out "$Q *3 *2 *0 *0 *1" "status shows the priority lists"
run start -q "$Q"
expect_rc 0 "start with queued messages"
for id in "${IDS[@]}"; do
	wait_for 20 "task $id to succeed" succeeded "$id"
done

log "stop escalates to a cold shutdown after QAGEN_STOP_TIMEOUT; the message goes back"
ID=$(send qagen.sleep --args '[60000]')
wait_for 10 "the long task to be taken" unacked_is 1
start=$SECONDS
capture env QAGEN_STOP_TIMEOUT=1 "$SCRIPT" stop
expect_rc 0 "stop with escalation"
expect_out "cold shutdown" "stop with escalation"
((SECONDS - start < 30)) || fail "escalated stop took $((SECONDS - start)) s"
expect_stopped "after the cold shutdown"
waiting_is 1 || fail "the unfinished message is not back in the queue: $(queue_field total)"
unacked_is 0 || fail "unacked after the cold shutdown: $(queue_field unacked)"
[ -z "$(task_status "$ID")" ] || fail "the interrupted task stored '$(task_status "$ID")'"
alive "$OTHER_PID" || fail "the escalated stop killed the unrelated worker"

log "purge"
capture "$QAGEN" purge -Q "$Q" "${P[@]}" </dev/null
expect_rc 2 "purge without -f and without a terminal"
waiting_is 1 || fail "purge without -f deleted messages"
capture "$QAGEN" purge -Q "$Q" -f "${P[@]}"
expect_rc 0 "purge -f"
expect_out "Purged 1 message" "purge -f"
waiting_is 0 || fail "purge left messages"

log "the unrelated worker survived everything"
alive "$OTHER_PID" || fail "the unrelated worker is gone"
kill -TERM "$OTHER_PID"
wait_for 20 "the unrelated worker to stop" bash -c "! test -e '$T/other.pid'"

if [ "$FAILS" -ne 0 ]; then
	echo "$FAILS check(s) failed"
	exit 1
fi
echo "PASS"
