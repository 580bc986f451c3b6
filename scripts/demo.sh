#!/usr/bin/env bash
# make demo: the main job end to end — documents in, Q&A data set out —
# on Go workers, plus the Python producer's own calls served by them.
#
#   1. `qagen fake-llm` stands in for Gemini (no API key, no cost), unless
#      QAGEN_DEMO_REAL=1 and GOOGLE_API_KEY is set;
#   2. a Go worker serves celery_tasks.generate_qa_unified_async through
#      the real genai SDK;
#   3. `qagen generate --use-celery` chunks the English and Japanese sample
#      corpora locally, sends one task per chunk, collects and writes the
#      Python system's output files under demo_output/ (the Japanese run
#      with the embedding coverage analysis);
#   4. an unmodified Python Celery client sends chunks the way
#      a02_make_qa_para.py does and reads the results straight from Redis;
#   5. the operator tools (qagen status, inspect, queues, call) look at it;
#   6. the worker shuts down warmly.
set -euo pipefail
cd "$(dirname "$0")/.."

BROKER=${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}
BACKEND=${CELERY_RESULT_BACKEND:-$BROKER}
QUEUE=${QAGEN_DEMO_QUEUE:-qagen_demo}
PYTHON=${PYTHON:-/usr/bin/python3}
FAKE_ADDR=${QAGEN_DEMO_FAKE_ADDR:-127.0.0.1:18089}
mkdir -p logs
export CELERY_BROKER_URL=$BROKER CELERY_RESULT_BACKEND=$BACKEND QAGEN_DEMO_QUEUE=$QUEUE

if ! err=$(bin/qagen queues -Q "$QUEUE" 2>&1); then
  echo "demo: Redis at $(tail -1 <<<"$err") — start it, or run .ci/run once" >&2
  exit 1
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

if [ -n "${QAGEN_DEMO_REAL:-}" ] && [ -n "${GOOGLE_API_KEY:-}" ]; then
  echo "==> using the real Gemini API (QAGEN_DEMO_REAL=1)"
else
  echo "==> starting qagen fake-llm on $FAKE_ADDR (Gemini API simulator, 150ms±50ms per call)"
  bin/qagen fake-llm --addr "$FAKE_ADDR" --latency 150ms±50ms --seed 1 >logs/demo-fake-llm.log 2>&1 &
  pids+=($!)
  export GOOGLE_API_KEY=demo-key GOOGLE_GEMINI_BASE_URL="http://$FAKE_ADDR"
  unset GEMINI_API_KEY
fi

LOG=logs/demo-worker.log
echo "==> starting a Go worker on queue $QUEUE (log: $LOG)"
bin/qagen worker -Q "$QUEUE" -c 8 -n "demo@%h" -l info >"$LOG" 2>&1 &
WORKER=$!
pids+=("$WORKER")
for _ in $(seq 50); do grep -q "worker ready" "$LOG" && break; sleep 0.1; done

OUT=demo_output
rm -rf "$OUT"
# generate ARGS...: qagen generate on the Go worker, output indented.
generate() {
  bin/qagen generate --use-celery --queue "$QUEUE" --celery-workers 8 \
    --output "$OUT/a02" --simple-output-dir "$OUT" -l warning "$@" 2>&1 | sed 's/^/   /'
}
echo "==> qagen generate: sample corpora -> chunks -> tasks on the Go worker -> $OUT/"
echo "--- --input-file testdata/corpus/md (English Markdown; language detected per document)"
generate --input-file testdata/corpus/md
echo "--- --dataset wikipedia_ja (the Python system's preprocessed CSV, Japanese, first 4 documents)"
echo "    with --analyze-coverage: chunks and pairs embedded, each chunk scored by its closest pair"
generate --dataset wikipedia_ja --input-dir testdata/corpus/OUTPUT --max-docs 4 --analyze-coverage
echo "   $OUT/a02_qa_pairs_wikipedia_ja.csv (what downstream tools read):"
"$PYTHON" - "$OUT/a02_qa_pairs_wikipedia_ja.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))
for r in rows[:4]:
    print("     " + " | ".join(c[:60] for c in r))
print("     (%d pairs)" % (len(rows) - 1))
PY

echo "==> the Python producer's calls (unmodified Celery 5 client) -> Go worker -> Gemini API"
if "$PYTHON" -I -c 'from celery import Celery; import redis' 2>/dev/null; then
  "$PYTHON" testdata/python/demo_qa.py
else
  echo "   $PYTHON has no celery (apt-get install python3-celery); sending one chunk with qagen call instead"
  bin/qagen call celery_tasks.generate_qa_unified_async -Q "$QUEUE" --wait --timeout 30s \
    --args '[{"id": "demo_chunk_0", "text": "Redis keeps data in memory. It is fast because of that.", "tokens": 20, "doc_id": "demo", "chunk_idx": 0, "dataset_type": "demo"}, {"lang": "en", "qa_per_chunk": 2}, null, "gemini"]'
fi

echo "==> operator view"
bin/qagen status -t 1 | sed 's/^/   /'
bin/qagen inspect stats -t 1 --json | "$PYTHON" -c '
import json, sys
for node, s in json.load(sys.stdin).items():
    print("   %s: %d slots, tasks done: %s" % (node, s["pool"]["max-concurrency"], json.dumps(s["total"])))' || true
bin/qagen queues -Q "$QUEUE" | sed 's/^/   /'
if [ -z "${QAGEN_DEMO_REAL:-}" ]; then
  echo "   what the simulated provider saw: $(curl -s "http://$FAKE_ADDR/stats" 2>/dev/null || echo '(curl missing)')"
fi

echo "==> Go producer primitive (qagen call) and a failure reported with its Python type"
bin/qagen call qagen.add --args '[40, 2]' -Q "$QUEUE" --wait --timeout 10s
rc=0
bin/qagen call qagen.fail --args '["boom"]' -Q "$QUEUE" --wait --timeout 10s >/dev/null 2>&1 || rc=$?
echo "   qagen.fail -> exit code $rc (FAILURE, ValueError)"

echo "==> warm shutdown (SIGTERM)"
kill -TERM "$WORKER"
wait "$WORKER" || true
tail -n 2 "$LOG" | sed 's/^/   /'
