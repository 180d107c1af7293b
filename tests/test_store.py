"""The index's two backends: Qdrant Edge in this process, and a Qdrant server
through qdrant-client. The same tests run against both; the server side runs
against qdrant-client's local mode, which speaks the server's API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mentor.index.store import ChunkRecord, IndexClosed, Keywords, StoreLocked
from mentor.index.store.edge import EdgeStore
from mentor.index.store.server import ServerStore
from tests.pdfs import HANDBOOK

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [s for page in HANDBOOK for s in re.split(r"(?<=\.) ", page)]
QUESTIONS = [
    "Kepler's first law of planetary orbits",
    "escape velocity of the Earth",
    "light of a telescope",
    "the Sun",
    "office hours on Thursday",
]


def open_backend(kind: str, tmp_path: Path):
    if kind == "edge":
        return EdgeStore(tmp_path / "index", Keywords())
    from qdrant_client import QdrantClient

    return ServerStore(QdrantClient(path=str(tmp_path / "server")), Keywords())


@pytest.fixture(scope="module")
def records(embedder) -> list[ChunkRecord]:
    """The handbook's sentences as chunks of two documents, with real vectors."""
    vectors = embedder.embed(SENTENCES)
    return [
        ChunkRecord(
            doc_id=("a" if i % 2 else "b") * 64,
            file="odd.pdf" if i % 2 else "even.pdf",
            chunk_no=i // 2,
            page=i // 3 + 1,
            page_label=str(i // 3 + 1),
            text=text,
            dense=vector,
            section="Chapter › Part" if i % 3 == 0 else "",
        )
        for i, (text, vector) in enumerate(zip(SENTENCES, vectors))
    ]


@pytest.fixture(params=["edge", "server"])
def index(request, tmp_path, embedder):
    store = open_backend(request.param, tmp_path)
    yield store.open("course-1", embedder.dimension)
    store.close()


def test_records_come_back_as_written_and_deletes_are_per_document(index, records):
    index.add(records)
    index.add(records[:3])  # written again: replaced, not doubled
    odd = [r for r in records if r.doc_id == "a" * 64]

    assert index.count() == len(records) == len(SENTENCES)
    assert index.count("a" * 64) == len(odd)
    back = sorted(index.records("a" * 64), key=lambda r: r.chunk_no)
    assert [(r.chunk_no, r.text, r.section, r.page) for r in back] == [(r.chunk_no, r.text, r.section, r.page) for r in odd]
    assert back[0].dense == pytest.approx(odd[0].dense, abs=1e-6)

    index.delete_documents(["a" * 64])

    assert index.count() == len(records) - len(odd) and index.count("a" * 64) == 0


def test_one_chunk_is_fetched_by_its_document_and_number_and_hits_carry_that_number(index, records, embedder):
    index.add(records)
    wanted = records[5]

    found = index.chunk(wanted.doc_id, wanted.chunk_no)

    assert (found.doc_id, found.chunk_no, found.page, found.text) == (wanted.doc_id, wanted.chunk_no, wanted.page, wanted.text)
    assert index.chunk(wanted.doc_id, 999) is None and index.chunk("c" * 64, wanted.chunk_no) is None
    meaning, _ = index.search(embedder.embed([wanted.text])[0], wanted.text, [wanted.doc_id], 1)
    assert meaning[0].chunk_no == wanted.chunk_no


def test_search_stays_within_the_documents_asked_for(index, records, embedder):
    index.add(records)
    question = "escape velocity of the Earth"

    by_meaning, by_keywords = index.search(embedder.embed_query(question), question, ["b" * 64], 50)

    assert {h.file for h in by_meaning + by_keywords} == {"even.pdf"}
    assert len(by_meaning) == index.count("b" * 64)
    assert index.search(embedder.embed_query(question), question, [], 50) == ([], [])


def test_a_word_is_unknown_when_no_chunk_of_the_documents_asked_for_holds_it(index, records):
    index.add(records)
    a, b = "a" * 64, "b" * 64
    question = "mirrors ellipse sourdough"  # "mirrors" only in a, "ellipse" only in b, "sourdough" in neither

    assert index.unknown_words(question, [a]) == ["ellipse", "sourdough"]
    assert index.unknown_words(question, [b]) == ["mirrors", "sourdough"]
    assert index.unknown_words(question, [a, b]) == ["sourdough"]
    assert index.unknown_words(question, []) == []
    assert index.unknown_words("Is the sourdough in the ellipse?", [a, b]) == ["sourdough"]  # stopwords are no words


def test_every_hit_is_scored_by_its_cosine_to_the_question(index, records, embedder):
    """Keyword hits too: the refusal reads one scale whichever ranking found a chunk."""
    index.add(records)
    question = "escape velocity of the Earth"
    query = embedder.embed_query(question)
    cosine = {r.text: sum(a * b for a, b in zip(query, r.dense)) for r in records}

    by_meaning, by_keywords = index.search(query, question, ["a" * 64, "b" * 64], 50)

    assert by_keywords and len(by_meaning) == len(records)
    assert [h.score for h in by_meaning + by_keywords] == pytest.approx(
        [cosine[h.text] for h in by_meaning + by_keywords], abs=2e-4
    )


def test_both_backends_give_the_same_results_for_the_same_question(tmp_path, records, embedder):
    found = {}
    for kind in ("edge", "server"):
        store = open_backend(kind, tmp_path)
        index = store.open("course-1", embedder.dimension)
        index.add(records)
        found[kind] = [
            index.search(embedder.embed_query(q), q, ["a" * 64, "b" * 64], 10) for q in QUESTIONS
        ]
        store.close()

    for (edge_meaning, edge_keywords), (server_meaning, server_keywords) in zip(found["edge"], found["server"]):
        assert [(h.text, h.score) for h in edge_meaning] == [(h.text, h.score) for h in server_meaning]
        assert [h.text for h in edge_keywords] == [h.text for h in server_keywords]
    # The keyword ranking is real BM25: the shortest sentence with both rare
    # words wins ("Contents. Orbits. Escape velocity. …" was cut into sentences).
    assert [h.text for h in found["edge"][1][1][:2]] == ["Escape velocity.", SENTENCES[10]]
    assert SENTENCES[10].startswith("Escape velocity is the speed")
    assert all(kw for _, kw in found["edge"])


def test_a_dropped_index_is_gone_and_says_so_to_a_late_caller(tmp_path, records, embedder):
    store = open_backend("edge", tmp_path)
    index = store.open("old", embedder.dimension)
    index.add(records)

    store.drop("old")

    with pytest.raises(IndexClosed):
        index.count()
    assert not (tmp_path / "index" / "old").exists()
    assert store.open("old", embedder.dimension).count() == 0
    store.close()


def test_a_second_opener_of_an_edge_index_is_refused(tmp_path, embedder):
    store = open_backend("edge", tmp_path)
    store.open("course-1", embedder.dimension)
    try:
        with pytest.raises(StoreLocked, match="has the index at .*course-1 open"):
            open_backend("edge", tmp_path).open("course-1", embedder.dimension)
    finally:
        store.close()


def test_points_written_before_a_kill_9_are_there_after_the_restart(tmp_path, records, embedder):
    """Edge's write-ahead log: the child writes, never flushes nor closes,
    and kills itself."""
    script = (
        "import json, os, signal, sys\n"
        "from pathlib import Path\n"
        "from mentor.index.store import ChunkRecord, Keywords\n"
        "from mentor.index.store.edge import EdgeStore\n"
        "records = [ChunkRecord(**r) for r in json.loads(sys.stdin.read())]\n"
        "EdgeStore(Path(sys.argv[1]), Keywords()).open('course-1', len(records[0].dense)).add(records)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    import json
    from dataclasses import asdict

    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "index")],
        input=json.dumps([asdict(r) for r in records]),
        text=True,
        cwd=ROOT,
        env=os.environ,
        timeout=120,
    )

    assert child.returncode == -9
    store = open_backend("edge", tmp_path)
    assert store.open("course-1", embedder.dimension).count() == len(records)
    store.close()


@pytest.fixture(params=["edge", "server"])
def index_with_second(request, tmp_path, embedder):
    store = open_backend(request.param, tmp_path)
    yield store.open("course-2", embedder.dimension, second_dimension=embedder.dimension)
    store.close()


def with_second(records: list[ChunkRecord]) -> list[ChunkRecord]:
    """Each record with the next record's dense vector as its second one:
    a second embedder that ranks otherwise than the first."""
    return [replace(r, second=records[(i + 1) % len(records)].dense) for i, r in enumerate(records)]


def test_the_second_embedders_vectors_are_kept_searched_and_scored_by_the_first_embedders_cosine(
    index_with_second, records, embedder
):
    index = index_with_second
    index.add(with_second(records))
    question = "escape velocity of the Earth"
    query = embedder.embed_query(question)
    nearest = max(range(len(records)), key=lambda i: sum(a * b for a, b in zip(query, records[i].dense)))
    # The record whose second vector is the nearest record's dense one.
    holder = records[nearest - 1]

    found = index.search_second(query, query, [r.doc_id for r in records], 3)

    assert (found[0].doc_id, found[0].chunk_no) == (holder.doc_id, holder.chunk_no)
    assert found[0].score == pytest.approx(sum(a * b for a, b in zip(query, holder.dense)), abs=2e-4)
    assert {h.file for h in index.search_second(query, query, ["b" * 64], 50)} == {"even.pdf"}
    back = {r.chunk_no: r for r in index.records(holder.doc_id)}
    assert back[holder.chunk_no].second == pytest.approx(records[nearest].dense, abs=1e-6)


def test_an_index_without_a_second_embedder_finds_nothing_by_one(index, records, embedder):
    index.add(records)
    query = embedder.embed_query("the Sun")

    assert index.search_second(query, query, ["a" * 64, "b" * 64], 50) == []
    assert all(r.second is None for r in index.records("a" * 64))
