"""Crashes and restarts: pods are stopped, processes are killed with -9, and
the mentor comes back with every finished document and nothing half-made."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from reportlab.pdfgen import canvas

from mentor import Mentor
from mentor.generate import llm as llm_module
from mentor.generate.llm import LlamaCppModel, ModelNotFound, resolve_model_path
from mentor.ingest.documents import sha256_of
from mentor.ingest.pipeline import Outcome
from tests.conftest import small_env, tiny_gguf
from tests.fakehub import FILE, HUB_CHUNK, REPO, hub_settings, payload
from tests.pdfs import HANDBOOK

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def long_manual(path: Path, pages: int) -> Path:
    """A manual of ``pages`` pages, one chunk each: slow enough to kill mid-way."""
    c = canvas.Canvas(str(path))
    for n in range(1, pages + 1):
        c.drawString(50, 800, f"Chapter {n}. The pump in bay {n} is serviced every {n % 12 + 1} weeks by team {n % 7}.")
        c.showPage()
    c.save()
    return path


def cli_env(settings) -> dict[str, str]:
    return small_env(settings.home)


# --- kill -9 during ingestion --------------------------------------------------


def test_kill_9_mid_ingestion_then_restart_shows_no_partial_document(settings, embedder, handbook, tmp_path):
    with Mentor.open(settings, embedder=embedder, with_model=False) as mentor:
        [kept] = mentor.ingest([handbook])
    manual = long_manual(tmp_path / "manual.pdf", 256)  # four embedding batches
    child = subprocess.Popen(
        [sys.executable, "-m", "mentor", "ingest", str(manual)],
        env=cli_env(settings),
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    progress = _read_in_background(child.stderr)
    try:
        # The progress line is printed after each batch is written to Qdrant.
        embedded = wait_for(lambda: _chunks_embedded(progress), what="the first batch of points")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # What the crash left on disk: a registered half document, its points, its file.
    assert 0 < embedded < 256
    assert _registry_rows(settings.home) == {(kept.doc_id, "ready"), (sha256_of(manual), "ingesting")}
    assert (settings.files_dir / f"{sha256_of(manual)}.pdf").is_file()

    with Mentor.open(settings, embedder=embedder, with_model=False) as mentor:
        assert [d.doc_id for d in mentor.documents()] == [kept.doc_id]
        # The upload's points are gone; its original is kept, to be resumed.
        assert [d.doc_id for d in mentor.library.interrupted()] == [sha256_of(manual)]
        assert mentor.index.count() == mentor.index.count(kept.doc_id) == kept.chunks == len(HANDBOOK)
        assert sorted(p.name for p in settings.files_dir.iterdir()) == sorted(
            [mentor.stored_file(kept.doc_id).name, f"{sha256_of(manual)}.pdf"]
        )
        assert [h.file for h in mentor.search("pump serviced in bay 12", k=3)] == ["handbook.pdf"] * 3

        [again] = mentor.library.resume()

        assert (again.outcome, again.pages, again.chunks) == (Outcome.ADDED, 256, 256)
        assert mentor.library.interrupted() == []
        assert mentor.index.count(again.doc_id) == 256
        assert mentor.index.count() == 256 + len(HANDBOOK)
        assert mentor.search("pump serviced in bay 12", k=1)[0].page == 12


def test_a_half_copy_is_swept_and_a_whole_file_nobody_owns_is_left_alone(settings, embedder, handbook, caplog):
    """A kill mid-copy leaves a ``.part`` file: the next start removes it. A
    whole original that no document owns did not come from us (the registry
    is written before the copy): it is reported, never deleted."""
    with Mentor.open(settings, embedder=embedder, with_model=False) as mentor:
        [kept] = mentor.ingest([handbook])
    orphan = settings.files_dir / f"{'e' * 64}.pdf"
    half_copy = settings.files_dir / f".{'d' * 64}.pdf.part"
    orphan.write_bytes(b"%PDF-1.7 never registered")
    half_copy.write_bytes(b"%PDF-1.7 half")

    with Mentor.open(settings, embedder=embedder, with_model=False) as mentor:
        assert sorted(p.name for p in settings.files_dir.iterdir()) == sorted([f"{kept.doc_id}.pdf", orphan.name])
        assert mentor.index.count() == kept.chunks
    assert f"{orphan.name} is in {settings.files_dir} but belongs to no document; it is left alone" in caplog.text


def _read_in_background(stream) -> list[bytes]:
    received: list[bytes] = []

    def pump():
        for block in iter(lambda: stream.read1(4096), b""):
            received.append(block)

    threading.Thread(target=pump, daemon=True).start()
    return received


def _chunks_embedded(progress: list[bytes]) -> int:
    counts = re.findall(rb"(\d+) chunks", b"".join(progress))
    return int(counts[-1]) if counts and int(counts[-1]) > 0 else 0


def _registry_rows(home: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(home / "registry.sqlite3") as db:
        return set(db.execute("SELECT doc_id, status FROM documents"))


# --- kill -9 during the model download -----------------------------------------


def test_kill_9_mid_download_then_restart_resumes_with_a_range_request(tmp_path, hub):
    data = payload(2 * HUB_CHUNK + 2**20)
    hub.files[f"{REPO}/{FILE}"] = data
    hub.stall_after = HUB_CHUNK + 2**20  # the first chunk reaches the disk, then the Hub stalls
    settings = hub_settings(tmp_path)
    final = settings.models_dir / FILE
    child = subprocess.Popen(
        [sys.executable, "-c", DOWNLOAD, str(settings.home), REPO, FILE],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "0"},
    )
    try:
        [partial] = wait_for(lambda: _partials(settings, HUB_CHUNK), what="a partial download")
    finally:
        child.kill()
        child.wait()
    assert not final.exists()
    hub.stall_after = None
    hub.release.set()

    path = resolve_model_path(settings, progress=False)

    assert path == final and path.read_bytes() == data
    assert [rng for method, rng in hub.requests if method == "GET"] == [None, f"bytes={HUB_CHUNK}-"]
    assert not partial.exists() and _partials(settings) == []


def test_a_corrupt_partial_download_is_never_loaded(tmp_path, hub):
    data = payload(HUB_CHUNK + 2**20)
    hub.files[f"{REPO}/{FILE}"] = data
    settings = hub_settings(tmp_path)
    final = settings.models_dir / FILE
    settings.models_dir.mkdir(parents=True)
    etag = hashlib.sha256(data).hexdigest()
    (settings.models_dir / f".{FILE}.{etag}.incomplete").write_bytes(b"\0" * HUB_CHUNK)  # a first chunk of wrong bytes
    stale = settings.models_dir / f".{FILE}.{'0' * 64}.incomplete"  # an older version's leftover
    stale.write_bytes(b"old")

    with pytest.raises(ModelNotFound, match=r"corrupt \(SHA-256 .*\) and has been deleted.*Start again to resume"):
        resolve_model_path(settings, progress=False)

    assert not final.exists() and _partials(settings) == []
    assert resolve_model_path(settings, progress=False).read_bytes() == data


def _partials(settings, at_least: int = 0) -> list[Path]:
    return [p for p in settings.models_dir.glob(".*.incomplete") if p.stat().st_size >= at_least]


DOWNLOAD = """
import sys
from pathlib import Path
from mentor.generate.llm import resolve_model_path
from mentor.settings import Settings
home, repo, file = sys.argv[1:]
resolve_model_path(Settings(home=Path(home), model_repo=repo, model_file=file), progress=False)
"""


# --- stop and start ------------------------------------------------------------


def test_stop_and_start_gives_the_same_documents_and_the_same_answers(settings, embedder, handbook, monkeypatch):
    settings = settings.replace(top_k=2, max_answer_tokens=24)  # a short prompt: two fresh models read it
    # Greedy decoding: at the default temperature two runs may sample
    # different words from the same prompt, restart or not.
    monkeypatch.setattr(llm_module, "TEMPERATURE", 0.0)
    question = "When and where are office hours held?"

    def session():
        # A fresh model each time, as after a real restart (no KV cache).
        with (
            LlamaCppModel(tiny_gguf(), n_ctx=settings.n_ctx, n_gpu_layers=0, n_parallel=1) as model,
            Mentor.open(settings, embedder=embedder, model=model) as mentor,
        ):
            if not mentor.documents():
                mentor.ingest([handbook])
            answer = mentor.ask(question).finish()
            return mentor.documents(), mentor.search(question), answer, mentor.index.count()

    docs, hits, answer, points = session()
    docs_again, hits_again, answer_again, points_again = session()

    assert docs_again == docs and [d.name for d in docs] == ["handbook.pdf"]
    assert points_again == points == len(HANDBOOK)
    assert hits_again == hits and hits[0].page == 6
    assert answer.text.strip() and not answer.refused
    # The same answer; only its id is new (random, so thumbs refer to one answer).
    same = lambda a: {k: v for k, v in a.to_json().items() if k != "id"}  # noqa: E731
    assert same(answer_again) == same(answer) and answer_again.id != answer.id


# --- a second process ----------------------------------------------------------


def test_a_second_process_on_the_same_home_gets_a_clear_message(mentor):
    done = subprocess.run(
        [sys.executable, "-m", "mentor", "docs"],
        env=cli_env(mentor.settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"error: Another AI Mentor process is already using the course in {mentor.settings.home.resolve()}. "
        "Stop that process first: a course opens in one process only "
        "(run another course with another MENTOR_HOME)."
    )
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert mentor.index.count() == 0 and mentor.search("anything") == []  # the first process is unharmed
