#!/usr/bin/env bash
# Fleet-wide LLM rate limiter under load (README, Speed). `qagen fake-llm`
# enforces RPM requests and TPM tokens per sliding minute (429 +
# Retry-After); WORKERS Go workers with CONC slots each drain a backlog of
# generate_qa_unified_async tasks (sent with Python Celery's send_task) for
# DURATION seconds:
#
#   limited   --llm-rpm RPM --llm-tpm TPM: the fleet shares the provider's
#             budget through Redis (must reach >= 95% of it, zero 429s)
#   unlimited --no-llm-limit: every worker sends as fast as its slots allow
#
# TPM defaults to RPM x the tokens of one request, measured first against
# an unlimited fake, so both limits bind about equally. Figures come from
# the fake's GET /stats deltas over the steady-state window (after WARMUP
# seconds), `qagen inspect active` samples and the workers' logs.
#
#   scripts/bench_ratelimit.sh                    # ~8 min
#   DURATION=60 MODES=limited scripts/bench_ratelimit.sh
#
# Needs Redis (BENCH_REDIS, default redis://127.0.0.1:6379/2; keys under a
# per-run prefix, deleted afterwards) and /usr/bin/python3 with celery.
set -euo pipefail
cd "$(dirname "$0")/.."
RPM=${RPM:-120}
TPM=${TPM:-}
WORKERS=${WORKERS:-4}
CONC=${CONC:-64}
DURATION=${DURATION:-180}
WARMUP=${WARMUP:-30}
TASKS=${TASKS:-2000}
LATENCY=${LATENCY:-300ms±100ms}
MODES=${MODES:-limited unlimited}
REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/2}
PORT=${PORT:-18089}
OUT=${BENCH_OUT:-$PWD/bench-results/ratelimit}
PY=/usr/bin/python3
QUEUE=rlbench
mkdir -p "$OUT"
make -s build
BIN=$PWD/bin/qagen

FAKE=()
WORKER_PIDS=()
# stop_all stops the workers (warm shutdown) before the fake they call.
stop_all() {
	for p in "${WORKER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${WORKER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for p in "${FAKE[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${FAKE[@]}"; do wait "$p" 2>/dev/null || true; done
	WORKER_PIDS=()
	FAKE=()
}
trap stop_all EXIT

# The workers' environment: both providers point at the fake.
LLM_ENV=(env GOOGLE_API_KEY=bench-not-a-key GEMINI_API_KEY= GOOGLE_GENAI_USE_VERTEXAI=
	GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:$PORT OPENAI_API_KEY=bench-not-a-key
	OPENAI_BASE_URL=http://127.0.0.1:$PORT/v1 LLM_PROVIDER= QAGEN_LLM_PROVIDER=
	QAGEN_LLM_RPM= QAGEN_LLM_TPM= QAGEN_LLM_LIMITS=)

start_fake() { # log, flags...
	local log=$1
	shift
	"$BIN" fake-llm --addr 127.0.0.1:$PORT --latency "$LATENCY" --log-format json "$@" >"$log" 2>&1 &
	FAKE+=($!)
	if curl -sf http://127.0.0.1:$PORT/healthz >/dev/null 2>&1; then
		sleep 0.5
		kill -0 "${FAKE[0]}" 2>/dev/null || { echo "port $PORT is taken (PORT=...)" >&2; exit 1; }
	fi
	for _ in $(seq 100); do
		curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && return
		sleep 0.1
	done
	echo "fake-llm did not start: $(cat "$log")" >&2
	exit 1
}

start_workers() { # dir, prefix, n, conc, flags...
	local dir=$1 prefix=$2 n=$3 conc=$4
	shift 4
	for i in $(seq "$n"); do
		"${LLM_ENV[@]}" "$BIN" worker --broker "$REDIS" --result-backend "$REDIS" -Q $QUEUE -c "$conc" \
			--key-prefix "$prefix" --hostname "rl$i@bench" -l debug --log-format json \
			--result-expires 600 --without-heartbeat "$@" >"$dir/worker$i.log" 2>&1 &
		WORKER_PIDS+=($!)
	done
	for i in $(seq "$n"); do
		for _ in $(seq 150); do
			grep -q '"worker ready"' "$dir/worker$i.log" && break
			sleep 0.1
		done
		grep -q '"worker ready"' "$dir/worker$i.log" || { echo "worker $i did not start: $(cat "$dir/worker$i.log")" >&2; exit 1; }
	done
}

# driver.py send|sample|clean: the Python side (tasks, samples, cleanup).
cat >"$OUT/driver.py" <<'EOF'
import json, os, re, subprocess, sys, time, urllib.request
import redis
from celery import Celery

cmd, broker, prefix = sys.argv[1:4]

def client():
    return redis.Redis.from_url(broker)

if cmd == "send":
    n, ids_path = int(sys.argv[4]), sys.argv[5]
    text = open("testdata/corpus/en.txt", encoding="utf-8").read()
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 20]
    app = Celery("bench", broker=broker)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    config = {"name": "CC-News", "lang": "en", "qa_per_chunk": 3}
    ids = []
    with app.connection_for_write() as conn:
        for i in range(n):
            k = 6
            body = " ".join(sents[(i * 7 + j) % len(sents)] for j in range(k))
            chunk = {"id": f"bench_{i}_chunk_0", "text": body, "tokens": len(body) // 4,
                     "type": "paragraph", "sentences": [], "doc_id": f"bench_{i}", "doc_idx": i,
                     "chunk_idx": 0, "dataset_type": "cc_news"}
            r = app.send_task("celery_tasks.generate_qa_unified_async",
                              args=(chunk, config, "gemini-2.0-flash", "gemini"),
                              queue=os.environ["QUEUE"], connection=conn)
            ids.append(r.id)
    open(ids_path, "w").write("\n".join(ids))

elif cmd == "sample":
    # Samples /stats every 2 s and `qagen inspect active` every 10 s.
    duration, fake, out_path, qagen = float(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
    t0 = time.time()
    next_inspect = t0
    with open(out_path, "w") as out:
        while True:
            now = time.time()
            st = json.load(urllib.request.urlopen(f"http://{fake}/stats"))
            rec = {"t": now - t0, "stats": st}
            if now >= next_inspect:
                next_inspect += 10
                p = subprocess.run([qagen, "inspect", "active", "--json", "--broker", broker,
                                    "--key-prefix", prefix], capture_output=True, text=True)
                try:
                    rec["active"] = {k: len(v) for k, v in json.loads(p.stdout).items()}
                except ValueError:
                    rec["active"] = None
            out.write(json.dumps(rec) + "\n")
            out.flush()
            if now - t0 >= duration:
                break
            time.sleep(max(0.0, 2 - (time.time() - now)))

elif cmd == "wait_answers":
    want, fake, timeout = int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = json.load(urllib.request.urlopen(f"http://{fake}/stats"))
        if st["answers"] >= want:
            print(json.dumps(st))
            sys.exit(0)
        time.sleep(0.5)
    sys.exit("timed out waiting for answers")

elif cmd == "clean":
    ids_path = sys.argv[4]
    r = client()
    keys = list(r.scan_iter(match=prefix + "*", count=1000))
    ids = open(ids_path).read().split() if os.path.exists(ids_path) else []
    keys += [f"celery-task-meta-{i}" for i in ids]
    for i in range(0, len(keys), 500):
        r.delete(*keys[i:i + 500])
EOF

# 0. Tokens per request, against an unlimited fake.
if [ -z "$TPM" ] && [ -z "${TABLE_ONLY:-}" ]; then
	dir=$OUT/calibrate
	mkdir -p "$dir"
	prefix="rlbench_cal_$$:"
	start_fake "$dir/fake.log"
	start_workers "$dir" "$prefix" 1 16 --no-llm-limit
	QUEUE=$QUEUE $PY "$OUT/driver.py" send "$REDIS" "$prefix" 40 "$dir/ids"
	st=$($PY "$OUT/driver.py" wait_answers "$REDIS" "$prefix" 40 127.0.0.1:$PORT 60)
	stop_all
	$PY "$OUT/driver.py" clean "$REDIS" "$prefix" "$dir/ids"
	per=$($PY -c 'import json,sys; s=json.loads(sys.argv[1]); print(round((s["input_tokens"]+s["output_tokens"])/s["answers"]))' "$st")
	TPM=$((per * RPM))
	echo "calibration: $per tokens per request (input + output); TPM = $per x $RPM = $TPM"
fi

# 1. The runs (TABLE_ONLY=1: only print the table of the last runs).
[ -n "${TABLE_ONLY:-}" ] && MODES_RUN="" || MODES_RUN=$MODES
for mode in $MODES_RUN; do
	dir=$OUT/$mode
	rm -rf "$dir"
	mkdir -p "$dir"
	prefix="rlbench_${mode}_$$:"
	flags=(--llm-rpm "$RPM" --llm-tpm "$TPM")
	[ "$mode" = unlimited ] && flags=(--no-llm-limit)
	echo "== $mode: fake-llm --rpm $RPM --tpm $TPM, $WORKERS workers x -c $CONC (${flags[*]}), $TASKS tasks, ${DURATION}s"
	start_fake "$dir/fake.log" --rpm "$RPM" --tpm "$TPM"
	start_workers "$dir" "$prefix" "$WORKERS" "$CONC" "${flags[@]}"
	QUEUE=$QUEUE $PY "$OUT/driver.py" send "$REDIS" "$prefix" "$TASKS" "$dir/ids"
	$PY "$OUT/driver.py" sample "$REDIS" "$prefix" "$DURATION" 127.0.0.1:$PORT "$dir/samples.jsonl" "$BIN"
	stop_all
	$PY "$OUT/driver.py" clean "$REDIS" "$prefix" "$dir/ids"
done

# 2. The table.
$PY - "$OUT" "$RPM" "$TPM" "$WORKERS" "$CONC" "$WARMUP" $MODES <<'EOF' | tee "$OUT/summary.md"
import glob, json, sys
out, rpm, tpm, workers, conc, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
modes = sys.argv[7:]
print(f"fake-llm: {rpm} requests/min, {tpm} tokens/min (sliding minute); {workers} workers x -c {conc}; "
      f"steady state = after the first {warmup:.0f} s\n")
print(f"| run | requests/min (% of limit) | tokens/min (% of limit) | 429s | LLM requests | tasks done | snoozed | retries | gave up | slots (of {workers * conc}) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for mode in modes:
    samples = [json.loads(l) for l in open(f"{out}/{mode}/samples.jsonl")]
    # Whole minutes of steady state: the providers' window is a minute,
    # and without pacing the traffic comes in bursts a minute apart.
    a = next(s for s in samples if s["t"] >= warmup)
    minutes = int((samples[-1]["t"] - a["t"] + 1) // 60)
    b = [s for s in samples if s["t"] <= a["t"] + 60 * minutes + 1][-1]
    dt = (b["t"] - a["t"]) / 60
    ans = (b["stats"]["answers"] - a["stats"]["answers"]) / dt
    tok = ((b["stats"]["input_tokens"] + b["stats"]["output_tokens"]) - (a["stats"]["input_tokens"] + a["stats"]["output_tokens"])) / dt
    # Counts over the whole run.
    limited = samples[-1]["stats"]["rate_limited"]
    reqs = sum(samples[-1]["stats"]["requests"].values())
    counts = {"succeeded": 0, "snoozed": 0, "retry": 0, "gave up": 0}
    for path in glob.glob(f"{out}/{mode}/worker*.log"):
        for line in open(path):
            try:
                m = json.loads(line).get("message", "")
            except ValueError:
                continue
            if m == "succeeded":
                counts["succeeded"] += 1
            elif m == "snoozed":
                counts["snoozed"] += 1
            elif m == "retry":
                counts["retry"] += 1
            elif m.startswith("Q&A generation failed; giving up"):
                counts["gave up"] += 1
    act = [sum(s["active"].values()) for s in samples if s.get("active") and s["t"] >= warmup]
    active = f"{min(act)}–{max(act)} busy, {workers * conc - sum(act)/len(act):.0f} idle" if act else "n/a"
    print(f"| {mode} | {ans:.1f} ({100*ans/rpm:.1f}%) | {tok:,.0f} ({100*tok/tpm:.1f}%) | {limited} | {reqs} | "
          f"{counts['succeeded']} | {counts['snoozed']} | {counts['retry']} | {counts['gave up']} | {active} |")
EOF
