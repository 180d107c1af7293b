"""A first run anywhere: offline, without a GPU, the app still starts and serves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

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
from mentor.embed import Embedder
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
    assert result == {
        "source": str(minilm_folder()),
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "dimension": 384,
        "attempts": [],
    }
