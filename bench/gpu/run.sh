#!/usr/bin/env bash
# The GPU run as one command on the device machine (bench/gpu/README.md):
#   device run: command "bash bench/gpu/run.sh", carry ["bench/gpu/cache"], timeout_s 600
# Writes gpu.json and the logs under $OUT, which the device tool sends back.
# Extra arguments go to run.py (e.g. --deadline 300 for a second call).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}  # the device's python3 is the one with torch
OUT=${OUT:-bench/out/gpu/out}
mkdir -p "$OUT"
status=0
"$PYTHON" bench/gpu/run.py --out "$OUT/gpu.json" "$@" 2>&1 | tee "$OUT/run.log" || status=$?
# The steps' own logs, for a failure's whole story (each is also tailed in gpu.json).
for f in bench/out/gpu/steps/*.log; do [ -f "$f" ] && tail -c 2000000 "$f" > "$OUT/step-$(basename "$f")"; done
exit $status
