"""The embedded index: Qdrant's own engine in this process (Qdrant Edge).

One Edge shard per index, in its own folder under ``MENTOR_HOME/index``:
HNSW for meaning, an inverted index with IDF for keywords, a payload index
on ``doc_id`` for the filter, and a write-ahead log, so that points written
before a ``kill -9`` are there after the restart.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import qdrant_edge as qe

from mentor.index.store import (
    DENSE,
    KEYWORDS,
    SECOND,
    ChunkRecord,
    Hit,
    IndexClosed,
    Keywords,
    StoreLocked,
    hit_of,
    point_id,
    point_vectors,
    ranked_hits,
    record_of,
    scored_by_meaning,
    term_queries,
    words_with,
)

# Points fetched per scroll call (backups, upgrades).
SCROLL_BATCH = 256


class EdgeStore:
    """A folder of Edge shards, one per index."""

    def __init__(self, folder: Path, keywords: Keywords):
        self.folder = Path(folder)
        self.location = str(self.folder)
        self._keywords = keywords
        self._open: dict[str, EdgeIndex] = {}
        self._lock = threading.Lock()

    def open(self, name: str, dimension: int, second_dimension: int = 0) -> EdgeIndex:
        with self._lock:
            if name not in self._open:
                self._open[name] = EdgeIndex.open(self.folder / name, name, dimension, self._keywords, second_dimension)
            return self._open[name]

    def drop(self, name: str) -> None:
        with self._lock:
            index = self._open.pop(name, None)
        if index:
            index.close()
        shutil.rmtree(self.folder / name, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            indexes, self._open = list(self._open.values()), {}
        for index in indexes:
            index.close()


class EdgeIndex:
    """One Edge shard. Every call holds the shard's lock: calls are short
    (a search takes about a millisecond), and closing for a swap must wait
    for a search in flight."""

    def __init__(self, shard, name: str, keywords: Keywords, second: bool = False):
        self.name = name
        self._shard = shard
        self._keywords = keywords
        # The dense vectors a record carries: the second embedder's too, in an index that has one.
        self._vectors = [DENSE, SECOND] if second else [DENSE]
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, name: str, dimension: int, keywords: Keywords, second_dimension: int = 0) -> EdgeIndex:
        try:
            if (path / "edge_config.json").exists() or (path / "wal").exists():
                shard = qe.EdgeShard.load(str(path))
            else:
                shard = qe.EdgeShard.create(str(path), _config(dimension, second_dimension))
                shard.update(qe.UpdateOperation.create_field_index("doc_id", qe.PayloadSchemaType.Keyword))
        except Exception as e:  # the bindings raise plain Exception
            if "WouldBlock" in str(e):
                raise StoreLocked(f"Another process has the index at {path} open.") from e
            raise
        return cls(shard, name, keywords, second=bool(second_dimension))

    def add(self, records: Sequence[ChunkRecord]) -> None:
        points = [
            qe.Point(
                id=point_id(r.doc_id, r.chunk_no),
                vector=point_vectors(r, qe.SparseVector(*self._keywords.document(r))),
                payload=r.payload(),
            )
            for r in records
        ]
        with self._use() as shard:
            shard.update(qe.UpdateOperation.upsert_points(points))

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        if doc_ids:
            with self._use() as shard:
                shard.update(qe.UpdateOperation.delete_points_by_filter(_only(doc_ids)))

    def search(self, dense: list[float], question: str, doc_ids: Sequence[str], limit: int) -> tuple[list[Hit], list[Hit]]:
        if not doc_ids:
            return [], []
        common = dict(limit=limit, filter=_only(doc_ids), with_payload=True)
        # Only the keyword hits bring their vectors back (ranked_hits).
        requests = [qe.QueryRequest(query=qe.Query.Nearest(dense, using=DENSE), with_vector=False, **common)]
        indices, values = self._keywords.query(question)
        if indices:
            keywords = qe.SparseVector(indices, values)
            requests.append(qe.QueryRequest(query=qe.Query.Nearest(keywords, using=KEYWORDS), with_vector=[DENSE], **common))
        with self._use() as shard:
            meaning, *keyword = shard.query_batch(qe.QueryBatchRequest(requests))
        return ranked_hits(dense, meaning, keyword[0] if keyword else [])

    def search_second(self, vector: list[float], dense: list[float], doc_ids: Sequence[str], limit: int) -> list[Hit]:
        if not (doc_ids and SECOND in self._vectors):
            return []
        nearest = qe.Query.Nearest(vector, using=SECOND)
        request = qe.QueryRequest(query=nearest, limit=limit, filter=_only(doc_ids), with_payload=True, with_vector=[DENSE])
        with self._use() as shard:
            return scored_by_meaning(dense, shard.query(request))

    def unknown_words(self, question: str, doc_ids: Sequence[str]) -> list[str]:
        words = self._keywords.words(question)
        terms = term_queries(words)
        if not (terms and doc_ids):
            return []
        requests = [
            qe.QueryRequest(
                query=qe.Query.Nearest(qe.SparseVector([t], [1.0]), using=KEYWORDS),
                limit=1,
                filter=_only(doc_ids),
                with_payload=False,
                with_vector=False,
            )
            for t in terms
        ]
        with self._use() as shard:
            found = shard.query_batch(qe.QueryBatchRequest(requests))
        return words_with(words, {t for t, points in zip(terms, found) if not points})

    def chunk(self, doc_id: str, chunk_no: int) -> Hit | None:
        with self._use() as shard:
            found = shard.retrieve([point_id(doc_id, chunk_no)], True, False)
        return hit_of(found[0].payload, 0.0) if found else None

    def records(self, doc_id: str) -> Iterator[ChunkRecord]:
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=SCROLL_BATCH, filter=_only([doc_id]), with_payload=True, with_vector=self._vectors
            )
            with self._use() as shard:
                found, offset = shard.scroll(request)
            yield from (record_of(p.payload, p.vector[DENSE], p.vector.get(SECOND)) for p in found)
            if offset is None:
                return

    def count(self, doc_id: str | None = None) -> int:
        with self._use() as shard:
            return shard.count(qe.CountRequest(filter=_only([doc_id]) if doc_id else None, exact=True))

    def optimize(self) -> None:
        # Edge builds HNSW only here, never in the background, and holds the
        # GIL throughout (minutes at 20k chunks on 2 cores): between
        # optimizations new points are searched exhaustively, a few ms at
        # 20k chunks (BENCHMARKS.md).
        with self._use() as shard:
            shard.optimize()

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None

    @contextmanager
    def _use(self):
        """The shard, under this index's lock; IndexClosed once it was closed."""
        with self._lock:
            if self._shard is None:
                raise IndexClosed(f"the index {self.name} was closed")
            yield self._shard


def _config(dimension: int, second_dimension: int):
    vectors = {DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)}
    if second_dimension:
        vectors[SECOND] = qe.EdgeVectorParams(size=second_dimension, distance=qe.Distance.Cosine)
    return qe.EdgeConfig(vectors=vectors, sparse_vectors={KEYWORDS: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)})


def _only(doc_ids: Sequence[str]):
    return qe.Filter(must=[qe.FieldCondition(key="doc_id", match=qe.MatchAny(any=list(doc_ids)))])
