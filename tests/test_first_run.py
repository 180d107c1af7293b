"""A first run anywhere: offline, without a GPU, the app still starts and serves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mentor.generate.prompts import SOURCES_ONLY
from tests.conftest import minilm_folder

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    """A loopback port nothing listens on: the Hub, unreachable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No Hub (a closed port), an empty Hub cache, and no HF_HUB_OFFLINE to
    hide a call that would be made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MODEL_", "EMBED_"))}
    return env | {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"} | extra


NO_NETWORK = """
import json, socket
attempts = []
def refuse(self, address, *a, **k):
    attempts.append(str(address))
    raise OSError("no network in this test")
socket.socket.connect = refuse
socket.create_connection = lambda address, *a, **k: refuse(None, address)
from mentor.index.embed import Embedder
from mentor.settings import DEFAULT_EMBED_MODEL
embedder = Embedder(DEFAULT_EMBED_MODEL)
vector = embedder.embed_query("What is escape velocity?")
print(json.dumps({"source": embedder.source, "name": embedder.name, "dimension": len(vector), "attempts": attempts}))
"""


def test_the_default_embedder_loads_its_bundled_copy_without_any_network_call(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK], env=offline_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    # The same folder, however the virtual environment is reached (a venv
    # linked into a fresh clone resolves to its real path in the child).
    result["source"] = str(Path(result["source"]).resolve())
    assert result == {
        "source": str(minilm_folder().resolve()),
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "dimension": 384,
        "attempts": [],
    }


# --- app.py, offline, without a model --------------------------------------------


KEY = "first-run-class-key"
KEYED = {"Authorization": f"Bearer {KEY}"}


def start_app(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path, int]:
    port = closed_port()
    log = tmp_path / "app.log"
    app = subprocess.Popen(
        [sys.executable, "app.py"],
        env=env | {"PORT": str(port), "MENTOR_ADMIN_PASSWORD": "pw", "MENTOR_CLASS_KEY": KEY, "PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return app, log, port


def healthz(port: int, app: subprocess.Popen, log: Path, seconds: float) -> dict:
    """/healthz's answer, waited for, with /api/stats's (the model, its
    problem, the course's size: /healthz tells nothing about the course);
    fails with the log if it never comes."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and app.poll() is None:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            stats = httpx.get(f"http://127.0.0.1:{port}/api/stats", headers=KEYED, timeout=10).json()
            return {**health, "problem": stats["model_problem"] or None, **stats}
        except httpx.HTTPError:
            time.sleep(0.25)
    raise AssertionError(f"no /healthz within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


def test_offline_without_a_model_the_app_serves_the_passages_with_their_pages(tmp_path, handbook):
    import httpx

    env = offline_env(tmp_path, MENTOR_HOME=str(tmp_path / "home"), N_GPU_LAYERS="0")
    ingested = subprocess.run(
        [sys.executable, "-m", "mentor", "ingest", str(handbook)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert ingested.stdout.strip() == "handbook.pdf: added (6 pages, 6 chunks)", ingested.stderr
    app, log, port = start_app(tmp_path, env)
    try:
        started = time.monotonic()
        health = healthz(port, app, log, 60)
        assert time.monotonic() - started < 60
        answer = httpx.post(
            f"http://127.0.0.1:{port}/api/chat", json={"message": "When are office hours held?"}, headers=KEYED, timeout=60
        )
    finally:
        app.terminate()
        app.wait(30)

    assert (health["ready"], health["mode"], health["model"], health["documents"]) == (True, "sources-only", None, 1)
    assert health["problem"].startswith(
        "Cannot reach the Hub to download bartowski/Qwen2.5-1.5B-Instruct-GGUF/Qwen2.5-1.5B-Instruct-Q4_K_M.gguf"
    )
    body = answer.json()
    assert answer.status_code == 200 and body["answer"] == SOURCES_ONLY and body["refused"] is False
    assert (body["sources"][0]["file"], body["sources"][0]["page"]) == ("handbook.pdf", 6)
    text = log.read_text()
    assert "Traceback" not in text
    assert "model: Qwen2.5-1.5B-Instruct-Q4_K_M.gguf" not in text  # nothing was loaded
    assert "No language model, so the mentor answers with passages only (sources-only mode). Cannot reach the Hub" in text


def test_the_default_model_is_the_cpu_one_without_a_gpu_and_the_settings_win(tmp_path):
    from mentor.generate.model_files import CPU_MODEL, GPU_MODEL, choose_model
    from mentor.settings import Settings

    cpu = choose_model(Settings(home=tmp_path, n_gpu_layers=0))
    chosen = choose_model(Settings(home=tmp_path, model_repo="me/mine-GGUF", model_file="mine.gguf"))

    assert (cpu.repo, cpu.file) == CPU_MODEL and "without a GPU" in cpu.why
    assert (chosen.repo, chosen.file, chosen.why) == ("me/mine-GGUF", "mine.gguf", "set by MODEL_REPO/MODEL_FILE")
    assert GPU_MODEL == ("TheBloke/Mistral-7B-Instruct-v0.2-GGUF", "mistral-7b-instruct-v0.2.Q5_K_M.gguf")


# --- start-up failures: one line that says the fix -------------------------------------

DISK_FULL = """
import errno, runpy, sys
import mentor.course.library
def full(self, home):
    raise OSError(errno.ENOSPC, "No space left on device")
mentor.course.library.HomeLock.__init__ = full
sys.argv = ["app.py"]
runpy.run_path("app.py", run_name="__main__")
"""


@pytest.mark.parametrize("failure", ["port in use", "course locked", "disk full", "model corrupt"])
def test_each_start_up_failure_is_one_line_that_says_the_fix(tmp_path, failure, embedder):
    from contextlib import ExitStack

    from tests.conftest import small_env

    home = tmp_path / "home"
    env = offline_env(tmp_path) | small_env(home) | {"HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "app.py"]
    held = ExitStack()
    if failure == "port in use":
        taken = held.enter_context(socket.socket())
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        env["PORT"] = str(taken.getsockname()[1])
    elif failure == "course locked":
        from mentor.course.library import HomeLock

        held.callback(HomeLock(home).release)
    elif failure == "disk full":
        command = [sys.executable, "-c", DISK_FULL]
    else:
        (tmp_path / "cut.gguf").write_bytes(b"GGUF" + b"\0" * 1000)
        env["MODEL_PATH"] = str(tmp_path / "cut.gguf")

    if failure == "model corrupt":  # not fatal: the app serves passages and says why
        app, log, port = start_app(tmp_path, env)
        try:
            health = healthz(port, app, log, 120)
        finally:
            app.terminate()
            app.wait(30)
        text = log.read_text()
        assert health["mode"] == "sources-only"
        assert health["problem"].startswith(f"The model file {tmp_path / 'cut.gguf'} cannot be used (")
        assert health["problem"].endswith("): point MODEL_PATH at a whole instruct GGUF file.")
    else:
        with held:
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        text = done.stdout + done.stderr
        assert done.returncode == 2, text
        [line] = [line for line in text.splitlines() if "AI Mentor cannot start." in line]
        assert line.split("AI Mentor cannot start. ", 1)[1] == EXPECTED[failure].format(home=home.resolve(), port=env.get("PORT"))
    assert "Traceback" not in text


EXPECTED = {
    "port in use": "Port {port} is already in use (another AI Mentor, or another program): stop it, or set PORT to a free port.",
    "course locked": "Another AI Mentor process is already using the course in {home}. Stop that process first: "
    "a course opens in one process only (run another course with another MENTOR_HOME).",
    "disk full": "The disk holding MENTOR_HOME ({home}) is full: free some space, or point MENTOR_HOME at a larger volume.",
}
