"""The single Qdrant client of the process and the course collection.

Each point is one chunk: a dense vector (the embedder), a sparse one
(keywords, see ``sparse``) and a payload naming its document and page.
Locally Qdrant keeps an exclusive lock on its folder, so a process opens it
once and every part shares this object.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

from .settings import Settings
from .sparse import KeywordIndex

DENSE = "dense"
SPARSE = "bm25"


class StoreLocked(RuntimeError):
    """Another process holds the local index."""


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

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ChunkRecord:
    doc_id: str
    file: str
    chunk_no: int
    page: int
    page_label: str
    text: str
    dense: list[float]
    sparse: tuple[list[int], list[float]]
    section: str = ""


@dataclass(frozen=True)
class StoredPoint:
    id: str
    dense: list[float]
    sparse: tuple[list[int], list[float]]
    payload: dict


class Store:
    def __init__(self, settings: Settings):
        from qdrant_client import QdrantClient

        self.collection = settings.collection
        self.is_local = not settings.qdrant_url
        if self.is_local:
            self.client = self._open_local(QdrantClient, settings.qdrant_location)
        else:
            self.client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
        # Local mode keeps its points in plain Python structures: one lock
        # makes every call atomic for the chat and ingestion threads alike.
        self._lock = threading.RLock()
        self._keywords: KeywordIndex | None = None  # local only; see prepare_search

    @staticmethod
    def _open_local(client_class, path: str):
        try:
            return client_class(path=path)
        except RuntimeError as e:
            if "already accessed" not in str(e):
                raise
            raise StoreLocked(
                f"Another AI Mentor process is already using the index at {path}. "
                "Stop that process first (a local index opens in one process only), "
                "or set QDRANT_URL to share a Qdrant server between processes."
            ) from e

    def ensure_collection(self, dimension: int) -> None:
        from qdrant_client import models

        with self._lock:
            if self.client.collection_exists(self.collection):
                return
            self.client.create_collection(
                self.collection,
                vectors_config={DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            if not self.is_local:  # local mode has no payload indexes
                self.client.create_payload_index(self.collection, "doc_id", models.PayloadSchemaType.KEYWORD)

    def drop_collection(self) -> None:
        with self._lock:
            self.client.delete_collection(self.collection)
            self._keywords = None

    def add(self, records: Sequence[ChunkRecord]) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(
                id=point_id(r.doc_id, r.chunk_no),
                vector={DENSE: r.dense, SPARSE: models.SparseVector(indices=r.sparse[0], values=r.sparse[1])},
                payload={
                    "doc_id": r.doc_id,
                    "file": r.file,
                    "page": r.page,
                    "page_label": r.page_label,
                    "text": r.text,
                    "section": r.section,
                },
            )
            for r in records
        ]
        with self._lock:
            self.client.upsert(self.collection, points=points, wait=True)
            if self._keywords is not None:
                for point, r in zip(points, records):
                    self._keywords.add(point.id, r.doc_id, r.sparse)

    def search(
        self, dense: list[float], sparse: tuple[list[int], list[float]], doc_ids: Sequence[str], limit: int
    ) -> tuple[list[Hit], list[Hit]]:
        """The best chunks by meaning (dense) and by keywords (sparse), each
        list best first; fusing them is retrieval's job.

        Every hit's score is its cosine similarity to the question, which
        stays comparable across questions (the refusal threshold needs that).
        """
        if not doc_ids:
            return [], []
        with self._lock:
            if self.is_local:
                return self._search_local(dense, sparse, doc_ids, limit)
            return self._search_server(dense, sparse, doc_ids, limit)

    def _search_server(self, dense, sparse, doc_ids, limit) -> tuple[list[Hit], list[Hit]]:
        from qdrant_client import models

        common = dict(filter=_doc_filter(doc_ids), limit=limit, with_payload=True, with_vector=[DENSE])
        requests = [models.QueryRequest(query=dense, using=DENSE, **common)]
        if sparse[0]:
            keywords = models.SparseVector(indices=sparse[0], values=sparse[1])
            requests.append(models.QueryRequest(query=keywords, using=SPARSE, **common))
        responses = self.client.query_batch_points(self.collection, requests=requests)
        by_meaning, *by_keywords = ([_hit(p, dense) for p in r.points] for r in responses)
        return by_meaning, by_keywords[0] if by_keywords else []

    def _search_local(self, dense, sparse, doc_ids, limit) -> tuple[list[Hit], list[Hit]]:
        keywords, allowed = self._keyword_index(), set(doc_ids)
        # Local filtering is a Python loop over every point too: skip it when
        # every stored document may be searched (nothing half-ingested).
        only = None if keywords.doc_ids <= allowed else _doc_filter(doc_ids)
        response = self.client.query_points(
            self.collection, query=dense, using=DENSE, query_filter=only, limit=limit, with_payload=True, with_vectors=[DENSE]
        )
        ids = keywords.search(sparse, allowed, limit)
        found = {str(p.id): p for p in self.client.retrieve(self.collection, ids, with_payload=True, with_vectors=[DENSE])}
        return [_hit(p, dense) for p in response.points], [_hit(found[i], dense) for i in ids if i in found]

    def prepare_search(self) -> None:
        """Builds the local keyword index now (about 2 s at 15k chunks), so
        that the first question does not wait for it."""
        with self._lock:
            if self.is_local and self.client.collection_exists(self.collection):
                self._keyword_index()

    def _keyword_index(self) -> KeywordIndex:
        if self._keywords is None:
            keywords = KeywordIndex()
            for p in self._scroll(None, with_payload=["doc_id"], with_vectors=[SPARSE], batch=1024):
                keywords.add(str(p.id), p.payload["doc_id"], _sparse_of(p))
            self._keywords = keywords
        return self._keywords

    def points(self, doc_id: str) -> Iterator[StoredPoint]:
        """Every point of one document, with its vectors (for backups)."""
        for p in self._scroll(_doc_filter([doc_id]), with_payload=True, with_vectors=True):
            yield StoredPoint(str(p.id), list(p.vector[DENSE]), _sparse_of(p), p.payload)

    def _scroll(self, only, with_payload, with_vectors, batch: int = 256) -> Iterator:
        """The points matching ``only``, a batch per lock hold, so that a
        long scroll never holds up a search."""
        offset = None
        while True:
            with self._lock:
                found, offset = self.client.scroll(
                    self.collection,
                    scroll_filter=only,
                    limit=batch,
                    offset=offset,
                    with_payload=with_payload,
                    with_vectors=with_vectors,
                )
            yield from found
            if offset is None:
                return

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        from qdrant_client import models

        with self._lock:
            self.client.delete(self.collection, points_selector=models.FilterSelector(filter=_doc_filter(doc_ids)))
            if self._keywords is not None:
                self._keywords.remove_documents(doc_ids)

    def delete_all_except(self, doc_ids: Sequence[str]) -> int:
        """Removes points of documents not in ``doc_ids``; returns how many."""
        from qdrant_client import models

        stray = models.Filter(must_not=[_doc_condition(doc_ids)]) if doc_ids else models.Filter()
        with self._lock:
            count = self.client.count(self.collection, count_filter=stray, exact=True).count
            if count:
                self.client.delete(self.collection, points_selector=models.FilterSelector(filter=stray))
                self._keywords = None  # rare (crash recovery): rebuilt at the next search
        return count

    def count(self, doc_id: str | None = None) -> int:
        with self._lock:
            only = _doc_filter([doc_id]) if doc_id else None
            return self.client.count(self.collection, count_filter=only, exact=True).count

    def close(self) -> None:
        with self._lock:
            self.client.close()


def point_id(doc_id: str, chunk_no: int) -> str:
    """Deterministic, so re-writing a chunk overwrites instead of duplicating."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mentor:{doc_id}:{chunk_no}"))


def _doc_condition(doc_ids: Sequence[str]):
    from qdrant_client import models

    return models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids)))


def _doc_filter(doc_ids: Sequence[str]):
    from qdrant_client import models

    return models.Filter(must=[_doc_condition(doc_ids)])


def _sparse_of(point) -> tuple[list[int], list[float]]:
    vector = point.vector.get(SPARSE)
    return (list(vector.indices), list(vector.values)) if vector else ([], [])


def _hit(point, query: list[float]) -> Hit:
    vector = point.vector[DENSE]
    p = point.payload
    return Hit(
        doc_id=p["doc_id"],
        file=p["file"],
        page=p["page"],
        page_label=p["page_label"],
        text=p["text"],
        section=p.get("section", ""),
        score=round(sum(a * b for a, b in zip(query, vector)), 4),
    )
