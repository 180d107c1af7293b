#!/usr/bin/env bash
# Checks an AI Mentor image without a GPU and without network, as CI does
# before it pushes one:
#
#   docker run --rm --network none IMAGE /app/scripts/smoke-image.sh [STEP...]
#
# Steps, all of them by default, in this order:
#   libs     ldd finds every library llama.cpp links, except the driver's
#            libcuda.so.1, which the pod's NVIDIA runtime mounts
#   imports  every module that mentor/ and app.py import, anywhere in their
#            code, imports (llama_cpp aside: loading it needs that driver)
#   cli      python -m mentor --help runs
#   ocr      Tesseract (the OCR of scanned pages) runs and reads English
#   app      the pod's start script, offline, on empty folders. It passes when
#            the app answers /healthz (with no model: sources-only), or when
#            the start script reached its GPU check ("No GPU found") and then
#            stopped by itself (offline, the model cannot be fetched) without
#            a Python traceback
#
# It uses the `python` on PATH (the image's venv), so it also runs on a
# checkout with its venv first on PATH, as tests/test_image.py runs it.
# SMOKE_SECONDS (240) bounds the app step.
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMOKE_SECONDS=${SMOKE_SECONDS:-240}

say() { printf '[smoke] %s\n' "$*"; }
fail() {
    printf '[smoke] FAILED: %s\n' "$*" >&2
    exit 1
}

step_libs() {
    local lib missing
    lib=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/llama_cpp/lib
    mapfile -t libs < <(find "$lib" -name 'lib*.so*' -type f)
    [ "${#libs[@]}" -gt 0 ] || fail "no native libraries in $lib"
    missing=$(ldd "${libs[@]}" | grep 'not found' | grep -v 'libcuda\.so\.1' || true)
    [ -z "$missing" ] || fail "libraries llama.cpp links are missing:"$'\n'"$missing"
    say "libs: the ${#libs[@]} llama.cpp libraries find everything they link but the driver's libcuda.so.1"
}

step_imports() {
    (cd "$APP_DIR" && python - <<'PY')
import ast
import importlib
import sys
import traceback
from pathlib import Path

# Loading llama_cpp loads libggml-cuda, which needs the driver's libcuda.so.1.
NEEDS_DRIVER = {"llama_cpp"}

modules = set()
for path in [Path("app.py"), *sorted(Path("mentor").rglob("*.py"))]:
    # mentor/__main__.py runs the command line when imported: the cli step runs it.
    if path.parts[0] == "mentor" and path.name != "__main__.py":
        parts = path.with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
third_party = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names | NEEDS_DRIVER}
failed = []
for name in sorted(third_party):
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name)
        traceback.print_exc()
if failed:
    sys.exit(f"[smoke] FAILED: imports: {', '.join(failed)}")
import torch

device = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
print(f"[smoke] imports: {len(third_party)} modules import; torch {torch.__version__} ({device})")
PY
}

step_cli() {
    local usage
    usage=$(cd "$APP_DIR" && python -m mentor --help) || fail "python -m mentor --help failed"
    say "cli: ${usage%%$'\n'*}"
}

step_ocr() {
    local version
    version=$(tesseract --version 2>&1 | head -n 1) || fail "ocr: tesseract is missing (apt-get install tesseract-ocr)"
    tesseract --list-langs 2>/dev/null | grep -qx eng || fail "ocr: $version has no English (apt-get install tesseract-ocr-eng)"
    say "ocr: $version, with English"
}

healthz() {
    python - "$1" <<'PY'
import sys
import urllib.request

with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2) as response:
    print(response.read().decode())
PY
}

step_app() {
    local home port log pid health="" running=0 deadline
    home=$(mktemp -d)
    log=$home/start.log
    port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # In a session of its own, so the whole tree (the app, start.sh's tee)
    # can be stopped at once.
    env -u RUNPOD_POD_ID -u MODEL_PATH -u OPENAI_BASE_URL -u QDRANT_URL \
        MENTOR_HOME="$home/mentor" HF_HOME="$home/hf" MENTOR_LOG_DIR="$home/logs" \
        PORT="$port" HF_HUB_OFFLINE=1 \
        setsid bash "$APP_DIR/runpod/start.sh" >"$log" 2>&1 &
    pid=$!
    deadline=$((SECONDS + SMOKE_SECONDS))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        health=$(healthz "$port" 2>/dev/null) && break
        health=""
        sleep 2
    done
    if kill -0 "$pid" 2>/dev/null; then
        running=1
        kill -TERM -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true

    if [ -n "$health" ]; then
        say "app: /healthz answered $health"
    elif [ "$running" = 1 ]; then
        tail -n 40 "$log" >&2
        fail "app: neither answered /healthz nor stopped within ${SMOKE_SECONDS} s"
    elif grep -q 'Traceback' "$log"; then
        tail -n 60 "$log" >&2
        fail "app: a Python traceback"
    elif grep -qE '^\[start\] (WARNING: No GPU found|GPU: )' "$log"; then
        say "app: the start script reached its GPU check: $(grep -m 1 -E '^\[start\] (WARNING: No GPU found|GPU: )' "$log")"
        say "app: then stopped by itself: $(grep -E '^\[start\] ERROR|^error:' "$log" | head -n 1)"
    else
        tail -n 40 "$log" >&2
        fail "app: the start script stopped before its GPU check"
    fi
    rm -rf "$home"
}

steps=("$@")
[ "${#steps[@]}" -gt 0 ] || steps=(libs imports cli ocr app)
for step in "${steps[@]}"; do
    case $step in
        libs | imports | cli | ocr | app) "step_$step" ;;
        *) fail "unknown step '$step' (libs, imports, cli, ocr, app)" ;;
    esac
done
say "ok: ${steps[*]}"
