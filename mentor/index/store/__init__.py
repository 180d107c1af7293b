"""The index: the course's chunks as Qdrant points, in one of two backends.

Each point is one chunk: a dense vector (the embedder), a keyword vector
(Qdrant's BM25, with the IDF applied by Qdrant over the whole index), the
second embedder's vector when the index has one, and a payload naming its
document, page and section.

- Embedded (the default): Qdrant's own engine in this process, one Edge
  shard per index under ``MENTOR_HOME/index`` (``edge.py``).
- ``QDRANT_URL``: a Qdrant server through qdrant-client, one collection per
  index (``server.py``).

Both give the same results for the same question: they hold the same
vectors, and the keyword vectors are computed here for both, by the same
BM25 (``Keywords``). Which index is live, and what may be written to it, is
the library's business (``mentor.library``); this package only stores.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mentor.index.labels import place
from mentor.settings import Settings

DENSE = "dense"
KEYWORDS = "bm25"
SECOND = "second"
PAYLOAD_FIELDS = ("doc_id", "file", "chunk_no", "page", "page_label", "text", "section")


class StoreLocked(RuntimeError):
    """Another process holds the index."""


class IndexClosed(RuntimeError):
    """The index was swapped for a rebuilt one while a caller held it."""


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk. ``page`` is the 1-based physical page."""

    doc_id: str
    file: str
    page: int
    page_label: str
    text: str
    score: float
    section: str = ""  # the PDF bookmarks over the page, when it has them
    chunk_no: int = -1  # its number in the document (-1: not known), which a citation's viewer asks for

    @property
    def place(self) -> str:
        """Where it points, in words: "page 4", "slide 12", "section 3"."""
        return place(self.page_label)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk to store: its place in the course, its text and its vector."""

    doc_id: str
    file: str
    chunk_no: int
    page: int
    page_label: str
    text: str
    dense: list[float]
    section: str = ""
    second: list[float] | None = None  # the second embedder's vector, in an index that has one

    def payload(self) -> dict:
        return {name: getattr(self, name) for name in PAYLOAD_FIELDS}


def indexed_text(section: str, text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its section trail
    first, so that a passage is found by its section's topic too."""
    return f"{section}\n\n{text}" if section else text


class Keywords:
    """Keyword (BM25) vectors, made by Qdrant's own BM25 (``qdrant_edge.Bm25``):
    English tokens, stopwords dropped, Snowball stems, term-frequency weights.
    Qdrant applies the inverse document frequency over the index at search
    time (``Modifier.IDF``), so a document's vector never changes when others
    are added."""

    def __init__(self) -> None:
        from qdrant_edge import Bm25

        self._bm25 = Bm25()

    def document(self, record: ChunkRecord) -> tuple[list[int], list[float]]:
        vector = self._bm25.embed_document(indexed_text(record.section, record.text))
        return list(vector.indices), list(vector.values)

    def query(self, text: str) -> tuple[list[int], list[float]]:
        vector = self._bm25.embed_query(text)
        return list(vector.indices), list(vector.values)

    def words(self, text: str) -> dict[str, list[int]]:
        """Each word of the question with its keyword terms, stopwords left
        out: a word is unknown to the course when one of its terms is in no
        chunk."""
        words = {w: self.query(w)[0] for w in dict.fromkeys(WORD.findall(text))}
        return {w: terms for w, terms in words.items() if terms}


# A word of a question, as the refusal weighs it: "pre-commit", "don't" and
# "C++" stay whole.
WORD_CHARS = r"[\w'+-]"
WORD = re.compile(WORD_CHARS + "+")


def term_queries(words: dict[str, list[int]]) -> list[int]:
    """The distinct terms of ``words``: each is asked alone, limit 1, so a
    search for it finds a chunk only if the chunk holds it."""
    return list(dict.fromkeys(t for terms in words.values() for t in terms))


def words_with(words: dict[str, list[int]], missing: set[int]) -> list[str]:
    """The words that have a term in ``missing``, in the question's order."""
    return [w for w, terms in words.items() if missing.intersection(terms)]


class Index(Protocol):
    """One index: every chunk of the course, embedded with one embedder and
    cut with one chunking (its spec, kept by the library)."""

    name: str

    def add(self, records: Sequence[ChunkRecord]) -> None:
        """Writes ``records``; a record written again replaces itself."""
        ...

    def delete_documents(self, doc_ids: Sequence[str]) -> None: ...

    def search(self, dense: list[float], question: str, doc_ids: Sequence[str], limit: int) -> tuple[list[Hit], list[Hit]]:
        """The best chunks of ``doc_ids`` by meaning and by keywords, each
        best first; every hit's score is its cosine similarity to the
        question, comparable across questions (the refusal threshold needs it)."""
        ...

    def search_second(self, vector: list[float], dense: list[float], doc_ids: Sequence[str], limit: int) -> list[Hit]:
        """The chunks of ``doc_ids`` nearest ``vector`` by the second
        embedder, best first; none in an index without one. Each is scored
        by its cosine to ``dense`` (the question by the first embedder), as
        a keyword hit is: every hit's score is on one scale."""
        ...

    def unknown_words(self, question: str, doc_ids: Sequence[str]) -> list[str]:
        """The question's words that occur in no chunk of ``doc_ids`` (none
        when ``doc_ids`` is empty): a course that never names what the
        question asks about does not cover it, however near in meaning its
        pages are."""
        ...

    def chunk(self, doc_id: str, chunk_no: int) -> Hit | None:
        """Chunk ``chunk_no`` of ``doc_id`` (score 0), or None."""
        ...

    def records(self, doc_id: str) -> Iterator[ChunkRecord]:
        """Every chunk of one document, with its vectors (backups, upgrades)."""
        ...

    def count(self, doc_id: str | None = None) -> int: ...

    def optimize(self) -> None:
        """Builds the search structures (HNSW) for what was written since the
        last call. Blocking, and with Qdrant Edge it holds the whole process:
        only for a process that serves nobody (the command line)."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    """Where indexes live: a folder of Edge shards, or a Qdrant server."""

    location: str

    def open(self, name: str, dimension: int, second_dimension: int = 0) -> Index:
        """The index called ``name``, created empty if it does not exist,
        with room for a second embedder's vectors when ``second_dimension``."""
        ...

    def drop(self, name: str) -> None:
        """Deletes the index called ``name`` (closing it first if open)."""
        ...

    def close(self) -> None: ...


def open_store(settings: Settings) -> Store:
    """The store ``settings`` name: a Qdrant server when ``QDRANT_URL`` is set,
    else Edge shards under ``MENTOR_HOME/index``."""
    keywords = Keywords()
    if settings.qdrant_url:
        from mentor.index.store.server import ServerStore

        return ServerStore.connect(settings.qdrant_url, settings.qdrant_api_key, keywords)
    from mentor.index.store.edge import EdgeStore

    return EdgeStore(Path(settings.index_dir), keywords)


def hit_of(payload: dict, score: float) -> Hit:
    """A hit from a stored point and its cosine similarity to the question."""
    return Hit(
        doc_id=payload["doc_id"],
        file=payload["file"],
        page=payload["page"],
        page_label=payload["page_label"],
        text=payload["text"],
        section=payload.get("section", ""),
        score=round(float(score), 4),
        chunk_no=payload.get("chunk_no", -1),
    )


def ranked_hits(query: Sequence[float], by_meaning: Sequence, by_keywords: Sequence) -> tuple[list[Hit], list[Hit]]:
    """Both rankings' points (a ``payload`` and a ``score`` each; a keyword
    point also its dense ``vector``) as hits scored by meaning. The engine's
    score is a dense hit's cosine; a keyword hit is scored here, in one
    product, so that the refusal reads one scale whichever ranking found the
    chunk."""
    return [hit_of(p.payload, p.score) for p in by_meaning], scored_by_meaning(query, by_keywords)


def scored_by_meaning(query: Sequence[float], points: Sequence) -> list[Hit]:
    """Points that another ranking found (each with its dense ``vector``),
    as hits scored by their dense cosine to ``query``."""
    if not points:
        return []
    vectors = np.asarray([p.vector[DENSE] for p in points], dtype=np.float32)
    scores = (vectors @ np.asarray(query, dtype=np.float32)).tolist()
    return [hit_of(p.payload, score) for p, score in zip(points, scores)]


def record_of(payload: dict, vector: Sequence[float], second: Sequence[float] | None = None) -> ChunkRecord:
    return ChunkRecord(
        doc_id=payload["doc_id"],
        file=payload["file"],
        chunk_no=payload["chunk_no"],
        page=payload["page"],
        page_label=payload["page_label"],
        text=payload["text"],
        dense=list(vector),
        section=payload.get("section", ""),
        second=None if second is None else list(second),
    )


def point_vectors(record: ChunkRecord, keywords) -> dict:
    """A point's named vectors: the dense one, ``keywords`` (as the backend
    takes a sparse vector) and the second embedder's when it has one."""
    vectors = {DENSE: list(record.dense), KEYWORDS: keywords}
    if record.second is not None:
        vectors[SECOND] = list(record.second)
    return vectors


def point_id(doc_id: str, chunk_no: int) -> str:
    """Deterministic, so re-writing a chunk overwrites instead of duplicating."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mentor:{doc_id}:{chunk_no}"))
