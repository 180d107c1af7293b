"""The GPU run: build, make the model, measure; one JSON.

    bash bench/gpu/run.sh                               # on the GPU machine (bench/gpu/README.md)
    python bench/gpu/run.py --cpu-dry-run --out d.json  # here and in CI: every step without CUDA, small

Steps, each a child process with its own time box, in this order:

1. ``embed``: our Embedder on a random MiniLM-shaped model (needs no build,
   so it goes first and a slow build cannot starve it);
2. ``build``: llama-cpp-python with CUDA from the trimmed sdist (dry run:
   unpack, check, CMake's configure step only);
3. ``model``: the random-weight Mistral-7B-shaped Q5_K_M GGUF (dry run: a
   small one, compared with llama.cpp's own quantization);
4. ``raw``: raw llama.cpp decoding that model, one stream;
5. ``generate``: bench/generate.py, ours and raw llama.cpp, 1 to 16 streams;
6. ``serve``: skipped, and the JSON says why.

After each step the JSON is written again, so a run cut off by the device's
time limit still returns what it measured. Each step's time is in it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import carry
from carry import GPU, NOT_CARRIED, ROOT, Cache, Work

sys.path.insert(0, str(ROOT / "bench"))
from common import code_version, log, machine  # noqa: E402

RESULT = ROOT / "bench" / "results" / "gpu.json"
# The device allows 10 minutes a command. The build may take 6, everything
# after it 3 (issue 17); the rest is margin for the call's own start.
DEADLINE_S = 570
BUDGET_S = {"build": 360, "after_build": 180}
# Seconds each step may take at most (also bounded by what is left before the deadline).
BOXES = {"embed": 90, "build": 400, "model": 120, "raw": 60, "generate": 300}
# A step is given no less than this, or it is not started.
MIN_BOX_S = 15
SKIPPED_SERVE = (
    "the app needs Gradio (a 50 MB wheel with its dependencies) and Qdrant, "
    "which the 64 MiB carry does not hold beside the sdist; the engine-level steps come first"
)
SIZES = {
    # The GPU figures: 7B model, the app's prompt size, 1 to 16 streams, a few thousand chunks.
    "gpu": {"shape": "mistral-7b", "streams": "1,4,8,16", "chunks": 4096, "batch_sizes": "64,256", "prompt": 1600, "tokens": 256, "raw_runs": 3},
    # The dry run's: small enough for 2 CPU cores in a test.
    "dry": {"shape": "small", "streams": "1,2", "chunks": 32, "batch_sizes": "16,32", "prompt": 64, "tokens": 8, "raw_runs": 1},
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-dry-run", action="store_true", help="every step that needs no CUDA, at a small size")
    p.add_argument("--out", type=Path, help="the JSON (default: bench/results/gpu.json; dry run: under --work)")
    p.add_argument("--cache", type=Path, default=carry.CACHE, help="what prepare.py wrote (carried)")
    p.add_argument("--work", type=Path, help="scratch (default bench/out/gpu, dry run bench/out/gpu/dry-run)")
    p.add_argument(
        "--deadline", type=float, help=f"seconds for all the steps (default {DEADLINE_S}; dry run 3 times that)"
    )
    args = p.parse_args(argv)
    dry = args.cpu_dry_run
    work = Work(args.work or (carry.WORK / "dry-run" if dry else carry.WORK))
    out = args.out or (work.folder / "gpu.json" if dry else RESULT)
    cache = Cache(args.cache)
    if not cache.manifest.is_file():
        raise SystemExit(f"{cache.folder} is not prepared: run python bench/gpu/prepare.py (here, with PyPI)")
    work.steps.mkdir(parents=True, exist_ok=True)

    deadline = args.deadline or DEADLINE_S * (3 if dry else 1)
    run = Run(work, cache, out, dry, deadline, argv if argv is not None else sys.argv[1:])
    run.setup()
    run.step("embed", embed_command(run))
    built = run.step("build", build_command(run))
    if built or dry:
        run.use_build()
        if run.step("model", model_command(run)):
            run.step("raw", raw_command(run))
            run.step("generate", generate_command(run))
        else:
            run.skip(["raw", "generate"], "the model step failed")
    else:
        run.skip(["model", "raw", "generate"], "the build failed")
    run.skip(["serve"], SKIPPED_SERVE)
    run.finish()
    return 0 if all(s.get("ok") is not False for s in run.record["steps"].values()) else 1


class Run:
    """The record of one run, written after every step."""

    def __init__(self, work: Work, cache: Cache, out: Path, dry: bool, deadline: float, argv: list[str]):
        self.work, self.cache, self.out, self.dry = work, cache, out, dry
        self.sizes = SIZES["dry" if dry else "gpu"]
        self.started = time.perf_counter()
        self.deadline = deadline
        self.env = child_env(dry)
        self.record = {
            "benchmark": "gpu",
            "command": "python bench/gpu/run.py " + shlex.join(argv) if dry else "bash bench/gpu/run.sh",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dry_run": dry,
            "smoke": dry,  # so that bench/report.py flags a dry run's figures as meaningless
            "finished": False,
            "budget_s": {**BUDGET_S, "deadline": deadline},
            "sizes": self.sizes,
            "prepared": prepared(cache),
            "steps": {},
        }

    def setup(self) -> None:
        """The machine, the code, the carried wheels installed; before any step."""
        started = time.perf_counter()
        os.environ["PATH"] = self.env["PATH"] = without_git_fallback(self.work, os.environ["PATH"])
        self.record["machine"] = {**machine(), "gpu_detail": gpu_detail()}
        self.record["code"] = code_version()
        wheels = sorted(self.cache.wheels.glob("*.whl"))
        shutil.rmtree(self.work.wheels, ignore_errors=True)
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        subprocess.run([*pip, "--no-cache-dir", "--target", str(self.work.wheels), *map(str, wheels)], check=True)
        self.pythonpath = [str(self.work.wheels)] + ([str(GPU / "device_like")] if self.dry else [])
        self.set_pythonpath()
        self.record["setup_s"] = round(time.perf_counter() - started, 1)
        self.write()

    def use_build(self) -> None:
        """Later steps import the llama_cpp just built (the GPU run; the dry
        run keeps the CPU one installed here), with its cuBLAS on the loader's path."""
        build = self.record["steps"]["build"]
        if not self.dry:
            self.pythonpath.insert(0, build["site"])
        self.set_pythonpath()
        if build.get("library_path"):
            self.env["LD_LIBRARY_PATH"] = os.pathsep.join(
                filter(None, [build["library_path"], os.environ.get("LD_LIBRARY_PATH")])
            )

    def set_pythonpath(self) -> None:
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [*self.pythonpath, os.environ.get("PYTHONPATH")]))

    def step(self, name: str, command: list[str]) -> bool:
        """Runs one step as a child with its time box; records its JSON."""
        left = self.deadline - (time.perf_counter() - self.started)
        box = min(BOXES[name] * (3 if self.dry else 1), left)
        if box < MIN_BOX_S:
            self.record["steps"][name] = {
                "ok": False,
                "error": f"not started: {max(left, 0):.0f} s left before the deadline",
            }
            self.write()
            log(f"{name}: {self.record['steps'][name]['error']}")
            return False
        fragment = self.work.steps / f"{name}.json"
        fragment.unlink(missing_ok=True)
        log_path = self.work.steps / f"{name}.log"
        log(f"{name}: started, {box:.0f} s at most (log: {log_path})")
        started = time.perf_counter()
        with log_path.open("w") as f:
            child = subprocess.Popen(
                [*command, "--out", str(fragment)],
                cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                code = child.wait(timeout=box)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)  # pip's compilers and CUDA contexts too
                child.wait()
                code = None
        entry = {"wall_s": round(time.perf_counter() - started, 1), "time_box_s": round(box)}
        if fragment.is_file():
            result = json.loads(fragment.read_text())
            entry |= {"result": result} if name == "generate" else result
        entry["ok"] = code == 0 and fragment.is_file() and entry.get("ok", True)
        if code is None:
            entry["error"] = f"cut off after {box:.0f} s"
        elif code != 0 and "error" not in entry:
            entry["error"] = f"exited with {code}"
        if not entry["ok"]:
            entry["log_tail"] = entry.get("log_tail") or log_path.read_text(errors="replace")[-3000:]
        self.record["steps"][name] = entry
        self.write()
        log(f"{name}: {'done' if entry['ok'] else 'FAILED: ' + entry['error']} in {entry['wall_s']} s")
        return entry["ok"]

    def skip(self, names: list[str], why: str) -> None:
        for name in names:
            self.record["steps"][name] = {"ok": None, "skipped": why}
        self.write()

    def finish(self) -> None:
        steps = self.record["steps"]
        after = [steps[s].get("wall_s", 0) for s in ("model", "raw", "generate") if s in steps]
        self.record["after_build_s"] = round(sum(after), 1)
        self.record["total_s"] = round(time.perf_counter() - self.started, 1)
        self.record["finished"] = True
        self.write()
        outcome = ", ".join(
            f"{k} {'skipped' if v['ok'] is None else 'ok' if v['ok'] else 'FAILED'}" for k, v in steps.items()
        )
        log(f"wrote {self.out} after {self.record['total_s']} s: {outcome}")

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        part = self.out.with_suffix(".part")
        part.write_text(json.dumps(self.record, indent=2) + "\n")
        part.replace(self.out)


# ---------------------------------------------------------------- the steps' commands


def embed_command(run: Run) -> list[str]:
    s = run.sizes
    return [sys.executable, str(GPU / "embedding.py"), "--cache", str(run.cache.folder), "--chunks", str(s["chunks"]),
            "--batch-sizes", s["batch_sizes"]]  # fmt: skip


def build_command(run: Run) -> list[str]:
    command = [sys.executable, str(GPU / "build.py"), "--cache", str(run.cache.folder), "--work", str(run.work.folder)]
    return command + (["--configure-only"] if run.dry else [])


def model_command(run: Run) -> list[str]:
    script = str(GPU / "mistral_gguf.py")
    command = [sys.executable, script, "--shape", run.sizes["shape"], "--work", str(run.work.folder)]
    return command + (["--check"] if run.dry else [])


def raw_command(run: Run) -> list[str]:
    s = run.sizes
    return [sys.executable, str(GPU / "raw_llama.py"), "--model", str(run.work.model(s["shape"])),
            "--n-gpu-layers", "-1", "--prompt-tokens", str(s["prompt"]), "--max-tokens", str(s["tokens"]),
            "--runs", str(s["raw_runs"])]  # fmt: skip


def generate_command(run: Run) -> list[str]:
    """bench/generate.py as issue 17 calls it, with prompts cut from the
    carried course PDF (the Octave manual is not on the device)."""
    s = run.sizes
    command = [sys.executable, "bench/generate.py", "--model", str(run.work.model(s["shape"])),
               "--n-gpu-layers", "-1", "--streams", s["streams"],
               "--pdf", str(run.cache.course_pdf), "--devset", str(run.cache.devset)]  # fmt: skip
    return command + (["--smoke", "--runs", "2", "--max-tokens", str(s["tokens"])] if run.dry else [])


# ---------------------------------------------------------------- the machine


def child_env(dry: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",  # nothing can be fetched there; nothing should be here
        "TOKENIZERS_PARALLELISM": "false",
        "TQDM_DISABLE": "1",
    }
    if dry:
        env["GPU_DRY_RUN_HIDE"] = ",".join(NOT_CARRIED)
    return env


def without_git_fallback(work: Work, path: str) -> str:
    """bench/common.py asks git for the commit; where there is no git (a
    bare GPU machine) a stand-in that fails, so the commit is recorded as
    unknown instead of the step crashing."""
    if shutil.which("git", path=path):
        return path
    folder = work.folder / "no-git"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "git").write_text("#!/bin/sh\nexit 1\n")
    (folder / "git").chmod(0o755)
    return f"{folder}{os.pathsep}{path}"


def gpu_detail() -> dict | None:
    """nvidia-smi's name, driver, CUDA version and memory of the GPU."""
    if not shutil.which("nvidia-smi"):
        return None
    query = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True, text=True,
    )  # fmt: skip
    header = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    name, driver, memory = ([*map(str.strip, query.stdout.splitlines()[0].split(","))] + [None] * 3)[:3]
    return {"name": name, "driver": driver, "memory": memory, "cuda": cuda.group(1) if cuda else None}


def prepared(cache: Cache) -> dict:
    """What prepare.py recorded: when, at which commit, the sdist's digest."""
    m = json.loads(cache.manifest.read_text())
    return {k: m.get(k) for k in ("date", "git", "uncommitted_changes", "carried_bytes")} | {
        "sdist_sha256": m["sdist"]["sha256"]
    }


if __name__ == "__main__":
    sys.exit(main())
