#!/usr/bin/env bash
# make demo: a Go worker serves an unmodified Python Celery client.
#
# Until the Q&A task lands (issue 4), the demo runs the diagnostic tasks:
# the Python client sends them exactly as the Python producer sends its
# tasks (send_task to the qa_generation-style queue), the Go worker runs
# them, and the client reads results with AsyncResult.get() and with a
# direct GET of celery-task-meta-<id>, as a02_make_qa_para.py does.
set -euo pipefail
cd "$(dirname "$0")/.."

BROKER=${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}
BACKEND=${CELERY_RESULT_BACKEND:-$BROKER}
QUEUE=${QAGEN_DEMO_QUEUE:-qagen_demo}
PYTHON=${PYTHON:-/usr/bin/python3}
mkdir -p logs
LOG=logs/demo-worker.log

if ! command -v redis-cli >/dev/null || ! redis-cli -u "$BROKER" ping >/dev/null 2>&1; then
  echo "demo: Redis at $BROKER does not answer (start it, or run .ci/run once)" >&2
  exit 1
fi

echo "==> starting a Go worker on queue $QUEUE (log: $LOG)"
bin/qagen worker -Q "$QUEUE" -c 8 -n "demo@%h" --broker "$BROKER" --result-backend "$BACKEND" -l info >"$LOG" 2>&1 &
WORKER=$!
trap 'kill -TERM $WORKER 2>/dev/null || true; wait $WORKER 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "worker ready" "$LOG" && break; sleep 0.1; done

if "$PYTHON" -c 'import celery' 2>/dev/null; then
  echo "==> Python Celery client -> Go worker"
  CELERY_BROKER_URL="$BROKER" CELERY_RESULT_BACKEND="$BACKEND" QAGEN_DEMO_QUEUE="$QUEUE" \
    "$PYTHON" testdata/python/demo_client.py
else
  echo "==> $PYTHON has no celery (apt-get install python3-celery); skipping the Python client part"
fi

echo "==> Go producer (qagen call) -> Go worker"
bin/qagen call qagen.add --args '[40, 2]' -Q "$QUEUE" --wait --timeout 10s --broker "$BROKER" --result-backend "$BACKEND"
bin/qagen call qagen.echo --args '["日本語もそのまま ✓"]' -Q "$QUEUE" --wait --timeout 10s --broker "$BROKER" --result-backend "$BACKEND"
rc=0
bin/qagen call qagen.fail --args '["a failure, reported with its Python type"]' -Q "$QUEUE" --wait --timeout 10s --broker "$BROKER" --result-backend "$BACKEND" || rc=$?
echo "   (qagen call exits with $rc for a FAILURE)"

echo "==> warm shutdown (SIGTERM)"
kill -TERM $WORKER
wait $WORKER || true
trap - EXIT
tail -n 4 "$LOG"
