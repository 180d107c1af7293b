"""A loopback Hugging Face Hub: just the protocol ``resolve_model_path`` speaks.

Shared by the model tests and the crash-recovery tests. Use the ``hub``
fixture by importing it into a test module.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import constants as hub_constants

from mentor.settings import Settings

REPO, FILE = "course/tiny-model", "tiny.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# huggingface_hub writes a download to disk in chunks of this size.
HUB_CHUNK = hub_constants.DOWNLOAD_CHUNK_SIZE


def payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


class Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(handler) -> tuple[Server, str]:
    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class FakeHub(BaseHTTPRequestHandler):
    """Answers what the model download asks: HEAD and GET (with Range) on
    /{repo}/resolve/{revision}/{filename}."""

    files: dict[str, bytes]  # "repo/filename" -> bytes
    requests: list[tuple[str, str | None]]  # (method, Range header)
    token: str | None = None  # when set, the repo is gated behind this token
    drop_after: int | None = None  # the next GET sends this many bytes, then hangs up
    stall_after: int | None = None  # every GET sends this many bytes, then waits for `release`
    release: threading.Event

    def do_HEAD(self):
        self.answer(send_body=False)

    def do_GET(self):
        self.answer(send_body=True)

    def answer(self, send_body: bool):
        hub = type(self)
        resolve = re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", self.path)
        if not resolve:  # huggingface_hub's own side calls, such as /api/agent-harnesses once a day
            return self.error(404, "EntryNotFound")
        hub.requests.append((self.command, self.headers.get("Range")))
        repo, _revision, name = resolve.groups()
        if hub.token and self.headers.get("Authorization") != f"Bearer {hub.token}":
            return self.error(401, "GatedRepo")
        data = hub.files.get(f"{repo}/{name}")
        if data is None:
            return self.error(404, "EntryNotFound")
        start = int(re.fullmatch(r"bytes=(\d+)-", self.headers["Range"])[1]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if send_body:
            self.send_body(data[start:])

    def send_body(self, body: bytes):
        hub = type(self)
        cut, hub.drop_after = hub.drop_after, None
        try:
            if cut is not None:
                self.wfile.write(body[:cut])  # then hang up mid-body
            elif hub.stall_after is not None:
                self.wfile.write(body[: hub.stall_after])
                self.wfile.flush()
                hub.release.wait(30)
                self.wfile.write(body[hub.stall_after :])
            else:
                self.wfile.write(body)
        except OSError:
            pass  # the client went away (killed)

    def error(self, status: int, code: str):
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(monkeypatch):
    """A fake Hub that huggingface_hub downloads from, online."""
    handler = type("Hub", (FakeHub,), {"files": {}, "requests": [], "release": threading.Event()})
    server, url = serve(handler)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, which
    # reads it then; its is_offline_mode() reads this constant on every call.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    yield handler
    handler.release.set()
    server.shutdown()
    server.server_close()


def hub_settings(tmp_path: Path, **changes) -> Settings:
    return Settings(home=tmp_path / "home", model_repo=REPO, model_file=FILE).replace(**changes)
