"""The library's own promises: a registry that migrates itself, an index of
an earlier version upgraded without re-embedding, a Qdrant server shared by
two courses, and a rebuild that students never notice."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from mentor import Mentor
from mentor.course.library import Library
from mentor.course.registry import MIGRATIONS, Registry
from mentor.index.embed import Embedders
from mentor.index.store import DENSE, Keywords, point_id
from mentor.index.store.server import ServerStore
from tests.conftest import small_settings
from tests.pdfs import HANDBOOK, make_pdf

OLD_SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0,
    added_at TEXT NOT NULL, status TEXT NOT NULL
);
"""


def test_a_registry_from_before_versioning_is_migrated_in_order_and_keeps_its_rows(tmp_path):
    path = tmp_path / "registry.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO documents VALUES ('a', 'notes.pdf', 10, 2, 3, '2026-01-01T00:00:00+00:00', 'ready')")

    registry = Registry(path)
    registry.close()
    registry = Registry(path)  # a second open applies nothing again

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 3
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"documents", "indexes", "rebuilt", "meta"}
    assert [(d.name, d.pages, d.chunks, d.status) for d in registry.ready()] == [("notes.pdf", 2, 3, "ready")]
    assert [(d.instructor_only, d.assignment) for d in registry.ready()] == [(False, False)]  # for students
    assert registry.course_id() == registry.course_id() and len(registry.course_id()) == 8
    registry.close()


def test_an_index_of_an_earlier_version_is_upgraded_without_re_embedding(tmp_path, embedder, handbook):
    """A home as versions before Qdrant Edge left it: qdrant-client's local
    mode in ``qdrant/`` (collection ``course``), ``manifest.json``, and a
    registry without a schema version."""
    from qdrant_client import QdrantClient, models

    home = tmp_path / "home"
    settings = small_settings(home)
    doc_id = "c" * 64
    texts = [page for page in HANDBOOK]
    vectors = embedder.embed(texts)
    client = QdrantClient(path=str(home / "qdrant"))
    client.create_collection(
        "course",
        vectors_config={DENSE: models.VectorParams(size=embedder.dimension, distance=models.Distance.COSINE)},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.upsert(
        "course",
        [
            models.PointStruct(
                id=point_id(doc_id, n),
                vector={DENSE: vectors[n], "bm25": models.SparseVector(indices=[n + 1], values=[1.0])},
                payload={"doc_id": doc_id, "file": "handbook.pdf", "page": n + 1, "page_label": str(n + 1), "text": text},
            )
            for n, text in enumerate(texts)
        ],
    )
    client.close()
    (home / "files").mkdir()
    (home / "files" / f"{doc_id}.pdf").write_bytes(handbook.read_bytes())
    (home / "manifest.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "embed_model": settings.embed_model,
                "dimension": embedder.dimension,
                "chunk_tokens": settings.chunk_tokens,
                "chunk_overlap": settings.chunk_overlap,
                "section_context": settings.section_context,
            }
        )
    )
    with sqlite3.connect(home / "registry.sqlite3") as db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO documents VALUES (?, 'handbook.pdf', 1, ?, ?, '2026-01-01T00:00:00+00:00', 'ready')",
            (doc_id, len(texts), len(texts)),
        )

    with Mentor.open(settings, embedder=embedder, with_model=False) as mentor:
        assert not (home / "qdrant").exists() and not (home / "manifest.json").exists()
        assert mentor.library.rebuild_reason() == ""
        assert mentor.index.count() == mentor.index.count(doc_id) == len(texts)
        copied = sorted(mentor.index.records(doc_id), key=lambda r: r.chunk_no)
        assert len(copied) == len(vectors)
        for record, vector in zip(copied, vectors):  # the same vectors, not new ones
            assert record.dense == pytest.approx(vector, abs=1e-6)
        best = mentor.search("When are office hours held?", k=1)[0]
        assert (best.file, best.page) == ("handbook.pdf", 6)
        # Keywords work on the copy: Qdrant's BM25 made its vectors again.
        by_keywords = mentor.retriever.candidates("Thursday B12 physics building")[1]
        assert by_keywords[0].page == 6


@pytest.fixture
def server(tmp_path):
    """One Qdrant "server" shared by courses (qdrant-client's local mode
    speaks its API)."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "server"))
    yield ServerStore(client, Keywords())
    client.close()


def open_course(home, server, embedder) -> Library:
    settings = small_settings(home, qdrant_url="http://qdrant.invalid:6333")
    library = Library(settings, Registry(home / "registry.sqlite3"), server, Embedders(16, embedder))
    library.open()
    return library


def test_two_courses_on_one_qdrant_server_never_touch_each_others_points(tmp_path, server, embedder, handbook):
    astronomy = open_course(tmp_path / "astronomy", server, embedder)
    [result] = astronomy.add_paths([handbook])
    chemistry = open_course(tmp_path / "chemistry", server, embedder)
    lab = make_pdf(tmp_path / "lab.pdf", ["Titration uses a burette."] * 2, 0)
    chemistry.add_paths([lab])
    # Chemistry crashes mid-upload of another copy of the handbook, and restarts.
    chemistry.registry.begin(result.doc_id, "handbook.pdf", 1)
    chemistry.live().index.add(list(astronomy.live().index.records(result.doc_id))[:2])

    chemistry.recover()

    assert astronomy.live().name != chemistry.live().name
    assert astronomy.live().index.count() == astronomy.live().index.count(result.doc_id) == len(HANDBOOK)
    assert chemistry.live().index.count() == 2  # the lab sheet; the crashed upload's points are gone
    assert [d.name for d in chemistry.documents()] == ["lab.pdf"]
    for library in (astronomy, chemistry):
        library.registry.close()


def test_students_search_the_old_index_while_the_new_one_is_built_and_uploads_go_on(
    mentor, handbook, tmp_path, monkeypatch
):
    """The rebuild takes the library one document at a time: between two, an
    upload and a delete get through, and the swap includes them."""
    extra = [make_pdf(tmp_path / f"week{n}.pdf", [f"Week {n} covers comet number {n}."], 0) for n in range(3)]
    mentor.ingest([handbook, *extra])
    old = mentor.library.live().name
    reached, go_on = threading.Event(), threading.Event()
    rebuild_document = Library._rebuild_document
    calls, waited = [], []

    def paced(self, target, doc, progress):
        calls.append(doc.name)
        if len(calls) == 2:  # one document rebuilt, the second not begun
            reached.set()
            # Recorded, not asserted: the rebuild thread logs what it raises.
            waited.append(go_on.wait(60))
        return rebuild_document(self, target, doc, progress)

    monkeypatch.setattr(Library, "_rebuild_document", paced)
    rebuild = mentor.library.rebuild_in_background("test")
    assert reached.wait(60)

    assert mentor.library.live().name == old
    assert mentor.search("comet number 2", k=1)[0].file == "week2.pdf"
    late = mentor.ingest([make_pdf(tmp_path / "late.pdf", ["A late handout about nebulae."], 0)])[0]
    mentor.remove("week0.pdf")
    assert mentor.library.rebuild_status.running
    go_on.set()
    rebuild.join(120)
    assert not rebuild.is_alive() and waited == [True]

    live = mentor.library.live()
    assert live.name != old and not mentor.library.rebuild_status.failed
    assert sorted(d.name for d in mentor.documents()) == ["handbook.pdf", "late.pdf", "week1.pdf", "week2.pdf"]
    # Added to the old index during the rebuild, so in the new one only through it.
    assert live.index.count(late.doc_id) == late.chunks == 1
    assert mentor.index.count() == sum(d.chunks for d in mentor.documents())
    assert mentor.search("nebulae", k=1)[0].file == "late.pdf"
    assert calls.count("late.pdf") == 1
