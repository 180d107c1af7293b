"""Step 1: llama-cpp-python with CUDA, from the trimmed sdist.

    python bench/gpu/build.py --out build.json            # on the GPU machine
    python bench/gpu/build.py --out build.json --configure-only   # the CPU dry run

Unpacks the carried sdist into bench/out/gpu/src and builds it with pip
(scikit-build-core, ninja, every core, only sm_90) into bench/out/gpu/site,
which the later steps put first on PYTHONPATH. CMake's build folder is kept,
so a second call on a warm machine resumes a cut-off build, and a finished
build whose sdist and flags are unchanged is reused as it is.

The dry run unpacks and checks the sdist, then runs CMake's configure step
on the CPU flags only: that proves the trimmed tree holds every file CMake
lists, in seconds. The CUDA compile itself needs the GPU machine.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import carry
from carry import SDIST_NEEDS, Cache, Work

# The flags of issue 17: CUDA for the H200 only (sm_90), never tuned for the
# build machine's CPU (see DESIGN.md: native builds have crashed here).
CUDA_FLAGS = ["-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=90", "-DGGML_NATIVE=OFF"]
CPU_FLAGS = ["-DGGML_NATIVE=OFF"]
CUDA_ROOTS = ["/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]
DRIVER_DIRS = ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=carry.CACHE)
    p.add_argument("--work", type=Path, default=carry.WORK)
    p.add_argument("--configure-only", action="store_true", help="the CPU dry run: CMake's configure step, no compile")
    p.add_argument("--out", type=Path, required=True, help="this step's JSON")
    args = p.parse_args(argv)
    cache, work = Cache(args.cache), Work(args.work)

    result = {"sdist": unpack(cache.sdist, work)}
    result |= configure(work) if args.configure_only else build(work)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


def unpack(sdist: Path, work: Work) -> dict:
    """Unpacks ``sdist`` into ``work.src`` (once per sdist) and checks that
    it holds what the build and the model step need."""
    digest = carry.sha256(sdist)
    stamp = work.src / "sdist.sha256"
    if not (stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(work.src, ignore_errors=True)
        work.src.mkdir(parents=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(work.src, filter="data")
        stamp.write_text(digest)
    missing = [p for p in SDIST_NEEDS if not (work.sdist_root() / p).exists()]
    if missing:
        raise SystemExit(f"{sdist.name} lacks {missing}: run bench/gpu/prepare.py again")
    return {"file": sdist.name, "bytes": sdist.stat().st_size, "sha256": digest}


# ---------------------------------------------------------------- the CUDA build


def build(work: Work) -> dict:
    nvcc = find_nvcc()
    if nvcc is None:
        return {"ok": False, "error": "no nvcc on PATH nor under /usr/local/cuda*"}
    found = {"nvcc": nvcc, "nvcc_version": _line_with([nvcc, "--version"], "release")}
    flags = CUDA_FLAGS + cublas_flags(found) + driver_flags(found)
    stamp = work.site / "build-stamp.json"
    wanted = {"sdist": (work.src / "sdist.sha256").read_text(), "flags": flags}
    if _built(work) and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return {"ok": True, "reused": True, "cmake_args": flags, **found, **_built_libs(work)}

    env = {
        **os.environ,
        "CMAKE_ARGS": shlex.join(flags),
        "CMAKE_GENERATOR": "Ninja",
        "CMAKE_BUILD_PARALLEL_LEVEL": str(len(os.sched_getaffinity(0))),
        "CUDACXX": nvcc,
    }
    command = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
        "--no-cache-dir", "--upgrade", "--target", str(work.site),
        "--config-settings", f"build-dir={work.build}", "-v", str(work.sdist_root()),
    ]  # fmt: skip
    log_path = work.steps / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("w") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    result = {
        "ok": done.returncode == 0 and _built(work),
        "reused": False,
        "compile_s": round(time.perf_counter() - started, 1),
        "cores": int(env["CMAKE_BUILD_PARALLEL_LEVEL"]),
        "command": shlex.join(command),
        "cmake_args": flags,
        **found,
        **_built_libs(work),
    }
    if result["ok"]:
        stamp.write_text(json.dumps(wanted))
    else:
        result["error"] = f"pip exited with {done.returncode}; {log_path.name}'s tail follows"
        result["log_tail"] = log_path.read_text(errors="replace")[-4000:]
    return result


def find_nvcc() -> str | None:
    if found := shutil.which("nvcc"):
        return found
    return next((f"{root}/bin/nvcc" for root in CUDA_ROOTS if Path(f"{root}/bin/nvcc").is_file()), None)


def cublas_flags(found: dict) -> list[str]:
    """Nothing when the CUDA toolkit has cuBLAS; else the cuBLAS of the
    ``nvidia`` wheels that torch brought (headers and libraries), which the
    later steps also need on LD_LIBRARY_PATH."""
    if any(Path(root, "include", "cublas_v2.h").is_file() for root in CUDA_ROOTS):
        found["cublas"] = "the CUDA toolkit's"
        return []
    header = _in_nvidia_wheels("include/cublas_v2.h")
    if header is None:
        found["cublas"] = "not found: CMake will say so"
        return []
    home = header.parent.parent
    libs = {name: sorted(home.glob(f"lib/lib{name}.so*")) for name in ("cublas", "cublasLt")}
    if not all(libs.values()):
        found["cublas"] = f"headers in {home}, libraries not"
        return []
    found["cublas"] = str(home)
    found["library_path"] = str(home / "lib")
    return [
        f"-DCUDA_cublas_LIBRARY={libs['cublas'][0]}",
        f"-DCUDA_cublasLt_LIBRARY={libs['cublasLt'][0]}",
        f"-DCMAKE_CUDA_FLAGS=-I{home / 'include'}",
    ]


def driver_flags(found: dict) -> list[str]:
    """Nothing when the toolkit has the driver stub CMake looks for; else
    the driver's own libcuda; with neither, llama.cpp's build without the
    driver's virtual-memory pool (GGML_CUDA_NO_VMM), and the result says so."""
    stubs = [
        Path(root, sub, "libcuda.so")
        for root in CUDA_ROOTS
        for sub in ("lib64/stubs", "targets/x86_64-linux/lib/stubs")
    ]
    if any(s.is_file() for s in stubs):
        found["cuda_driver"] = "the CUDA toolkit's stub"
        return []
    for folder in [*DRIVER_DIRS, *_loader_dirs("libcuda.so")]:
        for name in ("libcuda.so", "libcuda.so.1"):
            if Path(folder, name).exists():
                found["cuda_driver"] = f"{folder}/{name}"
                return [f"-DCUDA_cuda_driver_LIBRARY={folder}/{name}"]
    found["cuda_driver"] = "not found: built with GGML_CUDA_NO_VMM=ON"
    return ["-DGGML_CUDA_NO_VMM=ON"]


def _loader_dirs(name: str) -> list[str]:
    """The folders where the dynamic loader's cache (ldconfig -p) has ``name``."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(Path(line.split("=>")[-1].strip()).parent) for line in listing.splitlines() if f"{name}" in line]


def _in_nvidia_wheels(relative: str) -> Path | None:
    try:
        import nvidia  # the namespace package of NVIDIA's CUDA wheels
    except ImportError:
        return None
    for folder in nvidia.__path__:
        if hits := sorted(Path(folder).glob(f"*/{relative}")):
            return hits[0]
    return None


def _built(work: Work) -> bool:
    return any((work.site / "llama_cpp" / "lib").glob("libggml-cuda.so*"))


def _built_libs(work: Work) -> dict:
    lib = work.site / "llama_cpp" / "lib"
    return {"site": str(work.site), "libs": sorted(p.name for p in lib.glob("*.so*"))} if lib.is_dir() else {}


# ---------------------------------------------------------------- the dry run


def configure(work: Work) -> dict:
    """CMake's configure step of the same tree, CPU flags only."""
    cmake = shutil.which("cmake")
    if cmake is None:
        return {"ok": True, "configured": False, "why": "no cmake here: the configure check is skipped"}
    folder = work.folder / "configure"
    shutil.rmtree(folder, ignore_errors=True)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    command = [cmake, "-S", str(work.sdist_root()), "-B", str(folder), *generator, *CPU_FLAGS, "-Wno-dev"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    result = {
        "ok": done.returncode == 0,
        "configured": done.returncode == 0,
        "configure_s": round(time.perf_counter() - started, 1),
        "command": shlex.join(command),
        "cmake_version": _line_with([cmake, "--version"], "version"),
        "would_build_with": CUDA_FLAGS,
    }
    if done.returncode != 0:
        result["log_tail"] = (done.stdout + done.stderr)[-4000:]
    return result


def _line_with(command: list[str], word: str) -> str | None:
    """The first line of ``command``'s output that holds ``word``."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return next((line.strip() for line in out.splitlines() if word in line), None)


if __name__ == "__main__":
    sys.exit(main())
