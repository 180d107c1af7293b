"""The index on a Qdrant server (``QDRANT_URL``), through qdrant-client.

One collection per index. Several courses may share one server: each
course's indexes carry its own id in their names (see ``mentor.library``),
and nothing here touches a collection by any other name.

The keyword vectors are made on our side by the same BM25 as the embedded
index, and the server applies the IDF (``Modifier.IDF``), so both backends
rank alike. The tests run this class against qdrant-client's local mode,
which speaks the server's API.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mentor.index.store import (
    DENSE,
    KEYWORDS,
    SECOND,
    ChunkRecord,
    Hit,
    Keywords,
    hit_of,
    point_id,
    point_vectors,
    ranked_hits,
    record_of,
    scored_by_meaning,
    term_queries,
    words_with,
)

SCROLL_BATCH = 256


class ServerStore:
    def __init__(self, client, keywords: Keywords):
        self.client = client
        self.location = str(getattr(client, "init_options", {}).get("url") or "a Qdrant server")
        self._keywords = keywords

    @classmethod
    def connect(cls, url: str, api_key: str | None, keywords: Keywords) -> ServerStore:
        from qdrant_client import QdrantClient

        store = cls(QdrantClient(url=url, api_key=api_key), keywords)
        store.location = url
        return store

    def open(self, name: str, dimension: int, second_dimension: int = 0) -> ServerIndex:
        from qdrant_client import models

        if not self.client.collection_exists(name):
            vectors = {DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)}
            if second_dimension:
                vectors[SECOND] = models.VectorParams(size=second_dimension, distance=models.Distance.COSINE)
            self.client.create_collection(
                name,
                vectors_config=vectors,
                sparse_vectors_config={KEYWORDS: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            self.client.create_payload_index(name, "doc_id", models.PayloadSchemaType.KEYWORD)
        return ServerIndex(self.client, name, self._keywords, second=bool(second_dimension))

    def drop(self, name: str) -> None:
        if self.client.collection_exists(name):
            self.client.delete_collection(name)

    def close(self) -> None:
        self.client.close()


class ServerIndex:
    """One collection. qdrant-client is safe to share between threads."""

    def __init__(self, client, name: str, keywords: Keywords, second: bool = False):
        self.client = client
        self.name = name
        self._keywords = keywords
        # The dense vectors a record carries: the second embedder's too, in an index that has one.
        self._vectors = [DENSE, SECOND] if second else [DENSE]

    def add(self, records: Sequence[ChunkRecord]) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(
                id=point_id(r.doc_id, r.chunk_no),
                vector=point_vectors(r, _sparse(self._keywords.document(r))),
                payload=r.payload(),
            )
            for r in records
        ]
        self.client.upsert(self.name, points=points, wait=True)

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        from qdrant_client import models

        if doc_ids:
            self.client.delete(self.name, points_selector=models.FilterSelector(filter=_only(doc_ids)), wait=True)

    def search(self, dense: list[float], question: str, doc_ids: Sequence[str], limit: int) -> tuple[list[Hit], list[Hit]]:
        from qdrant_client import models

        if not doc_ids:
            return [], []
        common = dict(filter=_only(doc_ids), limit=limit, with_payload=True)
        # Only the keyword hits bring their vectors back (ranked_hits).
        requests = [models.QueryRequest(query=dense, using=DENSE, with_vector=False, **common)]
        keywords = self._keywords.query(question)
        if keywords[0]:
            requests.append(models.QueryRequest(query=_sparse(keywords), using=KEYWORDS, with_vector=[DENSE], **common))
        meaning, *keyword = self.client.query_batch_points(self.name, requests=requests)
        return ranked_hits(dense, meaning.points, keyword[0].points if keyword else [])

    def search_second(self, vector: list[float], dense: list[float], doc_ids: Sequence[str], limit: int) -> list[Hit]:
        if not (doc_ids and SECOND in self._vectors):
            return []
        found = self.client.query_points(
            self.name, vector, using=SECOND, query_filter=_only(doc_ids), limit=limit, with_payload=True, with_vectors=[DENSE]
        )
        return scored_by_meaning(dense, found.points)

    def unknown_words(self, question: str, doc_ids: Sequence[str]) -> list[str]:
        from qdrant_client import models

        words = self._keywords.words(question)
        terms = term_queries(words)
        if not (terms and doc_ids):
            return []
        requests = [
            models.QueryRequest(query=_sparse(([t], [1.0])), using=KEYWORDS, filter=_only(doc_ids), limit=1, with_payload=False)
            for t in terms
        ]
        found = self.client.query_batch_points(self.name, requests=requests)
        return words_with(words, {t for t, r in zip(terms, found) if not r.points})

    def chunk(self, doc_id: str, chunk_no: int) -> Hit | None:
        found = self.client.retrieve(self.name, ids=[point_id(doc_id, chunk_no)], with_payload=True, with_vectors=False)
        return hit_of(found[0].payload, 0.0) if found else None

    def records(self, doc_id: str) -> Iterator[ChunkRecord]:
        offset = None
        while True:
            found, offset = self.client.scroll(
                self.name,
                scroll_filter=_only([doc_id]),
                limit=SCROLL_BATCH,
                offset=offset,
                with_payload=True,
                with_vectors=self._vectors,
            )
            yield from (record_of(p.payload, p.vector[DENSE], p.vector.get(SECOND)) for p in found)
            if offset is None:
                return

    def count(self, doc_id: str | None = None) -> int:
        return self.client.count(self.name, count_filter=_only([doc_id]) if doc_id else None, exact=True).count

    def optimize(self) -> None:
        """Nothing to do: a Qdrant server optimizes in the background."""

    def close(self) -> None:
        """Nothing to release: the client belongs to the store."""


def _sparse(vector: tuple[list[int], list[float]]):
    from qdrant_client import models

    return models.SparseVector(indices=vector[0], values=vector[1])


def _only(doc_ids: Sequence[str]):
    from qdrant_client import models

    return models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids)))])
