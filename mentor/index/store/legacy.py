"""Reading the index that versions before Qdrant Edge made: qdrant-client's
local mode in ``MENTOR_HOME/qdrant``, one collection named ``course`` (on a
Qdrant server too, when ``QDRANT_URL`` was set).

The library copies its points into a new index at the first start of this
version, without re-embedding (``Library.upgrade``): the dense vectors and
the payloads carry over, and the keyword vectors are made again by Qdrant's
BM25, which replaced the hand-written ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mentor.index.store import DENSE, ChunkRecord, StoreLocked, point_id

COLLECTION = "course"
SCROLL_BATCH = 256


def open_local(path: Path):
    """A qdrant-client on the old local folder; StoreLocked if another
    process holds it."""
    from qdrant_client import QdrantClient

    try:
        return QdrantClient(path=str(path))
    except RuntimeError as e:
        if "already accessed" in str(e):
            raise StoreLocked(f"Another process has the index at {path} open.") from e
        raise


def has_index(client) -> bool:
    return client.collection_exists(COLLECTION)


def records(client, doc_id: str, name: str, chunks: int) -> Iterator[ChunkRecord]:
    """The chunks of one document in the old index. Their numbers come from
    the point ids, which were made from (document, chunk number)."""
    from qdrant_client import models

    number = {point_id(doc_id, n): n for n in range(chunks)}
    only = models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))])
    offset = None
    while True:
        found, offset = client.scroll(
            COLLECTION, scroll_filter=only, limit=SCROLL_BATCH, offset=offset, with_payload=True, with_vectors=[DENSE]
        )
        for p in found:
            if str(p.id) in number:
                yield ChunkRecord(
                    doc_id=doc_id,
                    file=name,
                    chunk_no=number[str(p.id)],
                    page=p.payload["page"],
                    page_label=p.payload["page_label"],
                    text=p.payload["text"],
                    dense=list(p.vector[DENSE]),
                    section=p.payload.get("section", ""),
                )
        if offset is None:
            return
