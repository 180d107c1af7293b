#!/usr/bin/env bash
# Every benchmark, then BENCHMARKS.md. About an hour on 2 CPU cores; each
# step also runs on its own (see bench/README.md). Needs the Debian corpora:
#   apt-get install -y r-doc-pdf octave-doc
# and the dev install (scripts/install.sh --dev), which brings MiniLM, the
# tiny model and requirements-bench.txt.
#
#   bench/run_all.sh            all of them
#   bench/run_all.sh quality    only the named steps, then the report
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(ingest-r-manuals ingest-refman profile tuning quality chunking latency generate repetition coldstart load ocr)

for step in "${steps[@]}"; do
  echo "== $step ($(date -u +%H:%M:%S))"
  case "$step" in
    ingest-r-manuals) $PY bench/ingest.py --corpus r-manuals ;;
    ingest-refman)    $PY bench/ingest.py --corpus refman ;;
    profile)          $PY bench/profile_ingest.py --corpus r-manuals ;;
    tuning)           $PY bench/tuning.py ;;
    quality)          $PY bench/quality.py ;;
    chunking)         $PY bench/chunking.py ;;
    latency)          $PY bench/latency.py ;;
    generate)         $PY bench/generate.py ;;
    repetition)       $PY bench/repetition.py ;;
    coldstart)        $PY bench/coldstart.py ;;
    load)             $PY bench/load.py ;;
    ocr)              $PY bench/ocr.py ;;
    *) echo "unknown step: $step" >&2; exit 2 ;;
  esac
done
$PY bench/report.py
