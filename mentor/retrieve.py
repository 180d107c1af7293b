"""Retrieval: a question in, the best pages of the course out."""

from __future__ import annotations

import re

from . import sparse
from .embed import Embedder
from .registry import Registry
from .store import Hit, Store

# Hybrid search looks this many times deeper than it returns, so that pages
# can be merged and duplicates dropped without running short.
DEPTH = 4
MIN_DEPTH = 20


class Retriever:
    def __init__(self, embedder: Embedder, store: Store, registry: Registry):
        self.embedder = embedder
        self.store = store
        self.registry = registry

    def search(self, question: str, k: int) -> list[Hit]:
        """The ``k`` best pages for ``question``, best first, one hit per page."""
        ready = [d.doc_id for d in self.registry.ready()]
        hits = self.store.search(
            self.embedder.embed_query(question),
            sparse.query_vector(question),
            ready,
            limit=max(k * DEPTH, MIN_DEPTH),
        )
        return merge_pages(hits)[:k]


def merge_pages(hits: list[Hit]) -> list[Hit]:
    """One hit per page, in rank order, its texts joined, the best score kept.

    Overlapping windows of one page would otherwise fill the sources with the
    same passage; identical text in two files (a re-exported handout) is kept
    once.
    """
    pages: dict[tuple[str, int], Hit] = {}
    seen_text: set[str] = set()
    for hit in hits:
        key = (hit.doc_id, hit.page)
        fingerprint = _fingerprint(hit.text)
        if fingerprint in seen_text:
            continue
        seen_text.add(fingerprint)
        if key in pages:
            first = pages[key]
            pages[key] = Hit(**{**first.to_json(), "text": f"{first.text}\n…\n{hit.text}", "score": max(first.score, hit.score)})
        else:
            pages[key] = hit
    return list(pages.values())


def _fingerprint(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()
