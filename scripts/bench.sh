#!/usr/bin/env bash
# Go worker vs Python Celery 5.2.6, measured in one session on the same Redis
# with the shared harness (../shared/bench, README inside). Python runs with
# /usr/bin/python3 (Debian's python3-celery). Results: $BENCH_OUT (default
# bench-results/): <label>.jsonl per worker and compare.md.
#
#   scripts/bench.sh              # compact comparison (~15 min)
#   REPS=5 scripts/bench.sh       # more repetitions
#   FULL_PYTHON=1 scripts/bench.sh  # also the harness's full Python suite (~45 min)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${QAGEN_BENCH_DIR:-../shared/bench}
export BENCH_OUT=${BENCH_OUT:-$PWD/bench-results}
REPS=${REPS:-3}
PY=/usr/bin/python3
mkdir -p "$BENCH_OUT"
[ -x bin/qagen ] || make build
GO_CMD="$PWD/bin/qagen worker -Q {queue} -c {concurrency} --broker {broker} --result-backend {backend} -l warning"

# Go: noop drain (results and ignore_result), sessions (latency, e2e), io.
LABEL=go-worker BENCH_WORKER_CMD="$GO_CMD" CMDS_CONFIG=go:8 SKIP_CEILING=1 \
  "$BENCH/run_all.sh" --noop-configs go:8,go:64,go:256 --noop-reps "$REPS" \
  --session-configs go:8,go:64 --session-reps "$REPS" \
  --io-configs go:64,go:1000 --io-ms 200,1000 --io-reps "$REPS"

# Python: the same scenarios on its usual configurations.
if [ -n "${FULL_PYTHON:-}" ]; then
  "$BENCH/run_all.sh"
else
  LABEL=python-celery-5.2.6 SKIP_CEILING=1 \
    "$BENCH/run_all.sh" --noop-configs prefork:2,prefork:8,threads:8,solo:1 --noop-reps "$REPS" \
    --session-configs prefork:8,threads:8 --session-reps "$REPS" \
    --io-configs prefork:8,threads:64 --io-ms 200,1000 --io-reps "$REPS"
fi

"$PY" "$BENCH/report.py" "$BENCH_OUT/python-celery-5.2.6.jsonl" "$BENCH_OUT/go-worker.jsonl" \
  --cmds "$BENCH_OUT/cmds-python-celery-5.2.6.json" "$BENCH_OUT/cmds-go-worker.json" \
  --out "$BENCH_OUT/compare.md"
echo "comparison: $BENCH_OUT/compare.md"
