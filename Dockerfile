# syntax=docker/dockerfile:1
#
# AI Mentor as one Runpod pod: one image, one process (python app.py), with
# everything that must survive the pod under /workspace (the pod's volume).
#
#   docker build --platform linux/amd64 -t ai-mentor:dev .
#
# A CUDA *devel* image compiles llama-cpp-python (nvcc), and CUDA's *base*
# image of the same version (Ubuntu and the CUDA runtime, cudart) runs it,
# with cuBLAS added; only the virtual environment crosses over, so the
# compiler (several GB) stays behind. runpod/README.md has the procedure and
# a table of the layers; CI (.github/workflows/image.yml) builds, checks and
# publishes the image.
#
# What the runtime does not need stays out (sizes unpacked, measured from
# the wheels and packages, as no Docker engine was at hand):
# - CUDA's *runtime* image holds 3.0 GB of CUDA libraries (cuFFT, cuSOLVER,
#   cuSPARSE, NPP, nvrtc, NCCL...). llama.cpp links two of them, cudart and
#   cuBLAS (0.9 GB); the base image plus cuBLAS is the runtime image less 2.1 GB.
# - PyPI's Linux torch 2.13 is a CUDA 13 build: 1.1 GB of torch and 3.6 GB of
#   nvidia-* wheels and triton, a second CUDA beside the image's, which also
#   needs a driver for CUDA 13 (580+) to use the GPU at all. torch serves only
#   the embedder (MiniLM), so the image takes PyTorch's CPU build (0.7 GB).

ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS toolchain

ENV DEBIAN_FRONTEND=noninteractive
# After ENV: hadolint 2.15 forgets a SHELL that an ENV follows.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Unpinned apt packages (DL3008): the base image's tag fixes the Ubuntu
# release, and Ubuntu drops superseded versions from its archive, so a pin
# would only break the build a few weeks later.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev build-essential cmake ninja-build git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /app/.venv


# llama-cpp-python's pin, alone in a file. BuildKit keys a COPY by the content
# it copies, so the llama.cpp layer below is rebuilt when this one line
# changes, not with every other change to requirements.txt: compiling the
# CUDA kernels is the hour of the build.
FROM toolchain AS llama-pin
COPY requirements.txt /tmp/requirements.txt
RUN grep -E '^llama-cpp-python==' /tmp/requirements.txt >/llama-cpp-python.txt \
    || { echo "build: requirements.txt has no llama-cpp-python== pin" >&2; exit 1; }


FROM toolchain AS build
# Inherited from toolchain already; said again for hadolint, which reads stages alone.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# GPU generations the CUDA kernels are compiled for: 80 = A100/A30,
# 86 = RTX 30xx/A4000-A6000/A40, 89 = RTX 40xx/L4/L40S, 90 = H100/H200.
# Each entry without a suffix ships machine code and PTX, and newer GPUs
# (e.g. 120, RTX 5090) run the PTX of 90 after a one-time JIT compile.
# Never "native" or "all": the build machine's GPU (if any) is not the pod's.
ARG CUDA_ARCHITECTURES="80;86;89;90"
# Parallel compile jobs; empty means one per core. nvcc takes 2-4 GB of
# memory per job, so a small build machine may need e.g. --build-arg BUILD_JOBS=4.
ARG BUILD_JOBS=""

WORKDIR /app
COPY --from=llama-pin /llama-cpp-python.txt /tmp/

# The llama-cpp-python wheel, with the CUDA flags added to those
# scripts/install.sh uses on a CPU machine:
# - GGML_NATIVE=OFF: never tune for the build machine's CPU (the pod's differs,
#   and a native build has crashed here; see DESIGN.md).
# - No GPU and no driver here. libggml-cuda links the driver library
#   (libcuda.so) for its virtual-memory pool; CMake's FindCUDAToolkit falls
#   back to the toolkit's stub, which LIBRARY_PATH also names. The stub is only
#   for linking: the pod's driver supplies the real libcuda.so.1 at run time,
#   so the stubs folder must never be on LD_LIBRARY_PATH of the image.
# - --allow-shlib-undefined: an executable linked against libggml-cuda would
#   otherwise fail on the driver symbols the stub cannot resolve (what
#   llama.cpp's own CUDA Dockerfile does; llama-cpp-python 0.3.36 builds no
#   executables, so this is a guard for future versions).
# - PIP_NO_CACHE_DIR: no cached wheel from an earlier build with other flags
#   can be reused, and the layer stays smaller.
# - llama.cpp compresses the kernels for size by default with CUDA 12.8 and
#   later (nvcc -compress-mode=size).
RUN if [ -n "$BUILD_JOBS" ]; then export CMAKE_BUILD_PARALLEL_LEVEL="$BUILD_JOBS"; fi \
    && CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES} -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined" \
       LIBRARY_PATH=/usr/local/cuda/lib64/stubs \
       PIP_NO_CACHE_DIR=1 \
       /app/.venv/bin/python -m pip wheel --no-deps --wheel-dir /wheels -r /tmp/llama-cpp-python.txt

# Only what the install reads, so editing the app does not reinstall.
COPY requirements.txt ./
COPY scripts/install.sh scripts/slim-llama-libs.sh scripts/

# The same install script CI runs on a CPU machine:
# - PIP_FIND_LINKS and PIP_ONLY_BINARY: llama-cpp-python is the wheel built
#   above, never compiled a second time (and without CUDA).
# - TORCH_INDEX_URL: torch from PyTorch's CPU-only index (see the top). The
#   embedder then runs on the pod's CPU cores: MiniLM embeds about 50 chunks
#   a second on 2 cores (measured), several times that on a pod's 8 to 16
#   (extrapolated), about the pace at which the PDFs are read, and a
#   question's embedding takes ~10 ms. For a GPU
#   embedder, build with TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
#   (about 3 GB more); empty takes PyPI's torch.
# Nothing here imports llama_cpp: loading it needs the driver the build lacks.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN TORCH_INDEX_URL=${TORCH_INDEX_URL} \
    VENV=/app/.venv \
    PIP_FIND_LINKS=/wheels \
    PIP_ONLY_BINARY=llama-cpp-python \
    PIP_NO_CACHE_DIR=1 \
    bash scripts/install.sh
RUN find /app/.venv -path '*/llama_cpp/lib/*' -name 'libggml-cuda.so*' | grep -q . \
    || { echo "build: llama-cpp-python was built without CUDA (no libggml-cuda.so)" >&2; exit 1; }
# llama-cpp-python's wheel installs each library six times (three names as
# full copies, twice over); with libggml-cuda at some 150 MB that is 0.7 GB
# for nothing. One copy each stays, its other names become links.
RUN bash scripts/slim-llama-libs.sh /app/.venv/lib/python3*/site-packages


FROM nvidia/cuda:${CUDA_VERSION}-base-ubuntu${UBUNTU_VERSION}
ARG CUDA_VERSION

# python3 must be the same interpreter the virtual environment was made with
# (same Ubuntu release as the build stage); libgomp1 is llama.cpp's OpenMP;
# tini is PID 1 so the pod's stop signal reaches Python and children are
# reaped; libcublas-12-8 (for CUDA 12.8.x) is cuBLAS from NVIDIA's apt
# repository, which the base image has set up: NVIDIA's runtime image
# installs it the same way; tesseract-ocr (which brings its English data)
# reads scanned PDF pages: another language of OCR_LANGUAGES is its package
# tesseract-ocr-<code>, added here.
ENV DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN cuda_minor=${CUDA_VERSION%.*} \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 tini ca-certificates tesseract-ocr \
        "libcublas-${cuda_minor/./-}" \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    MENTOR_HOME=/workspace/mentor \
    HF_HOME=/workspace/hf \
    MENTOR_LOG_DIR=/workspace/logs \
    PORT=7860 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_ANALYTICS_ENABLED=False

# The app lives in /app: the volume is mounted over /workspace at run time
# and would hide anything the image put there. Tests and benchmarks stay out
# (.dockerignore).
WORKDIR /app
COPY . /app
# Every library llama.cpp needs must be in this image, except the driver's
# libcuda.so.1, which the pod mounts at run time: checked with ldd, without
# loading anything. CI runs the whole smoke test on the built image.
RUN chmod 755 /app/runpod/start.sh /app/scripts/*.sh \
    && /app/scripts/smoke-image.sh libs

EXPOSE 7860

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/app/runpod/start.sh"]
