"""Retrieval: a question in, the best pages of the course out."""

from __future__ import annotations

import re
from collections import defaultdict

from .library import Library
from .store import Hit, IndexClosed

# Candidates fetched from each of the two searches before fusing. The
# weights were chosen on the Octave dev set (BENCHMARKS.md): keywords at
# half the weight of meaning, and a small RRF constant so that the first
# ranks of each list dominate.
DEPTH = 50
KEYWORD_WEIGHT = 0.5
RRF_K = 5


class Retriever:
    def __init__(self, library: Library):
        self.library = library

    def search(self, question: str, k: int) -> list[Hit]:
        """The ``k`` best pages for ``question``, best first, one hit per page."""
        by_meaning, by_keywords = self.candidates(question)
        return fuse_pages([(by_meaning, 1.0), (by_keywords, KEYWORD_WEIGHT)])[:k]

    def candidates(self, question: str) -> tuple[list[Hit], list[Hit]]:
        """The chunks nearest in meaning and the best keyword matches, before fusion."""
        # Students' documents only: instructor-only text never reaches a
        # prompt, a source or a link.
        ready = [d.doc_id for d in self.library.student_documents()]
        try:
            return self._search(question, ready)
        except IndexClosed:  # a rebuilt index was swapped in meanwhile: ask the new one
            return self._search(question, ready)

    def _search(self, question: str, ready: list[str]) -> tuple[list[Hit], list[Hit]]:
        live = self.library.live()
        dense = live.pipeline.embedder.embed_query(question)
        return live.index.search(dense, question, ready, DEPTH)


def fuse_pages(rankings: list[tuple[list[Hit], float]]) -> list[Hit]:
    """Pages ranked by weighted reciprocal rank fusion of chunk rankings.

    Every chunk adds its share to its page, so a page that several chunks
    of both searches point at rises above a page with one lucky chunk.
    """
    score: dict[tuple[str, int], float] = defaultdict(float)
    for hits, weight in rankings:
        for rank, hit in enumerate(hits, start=1):
            score[(hit.doc_id, hit.page)] += weight / (RRF_K + rank)
    pages = {(h.doc_id, h.page): h for h in merge_pages([h for hits, _ in rankings for h in hits])}
    return [pages[key] for key in sorted(score, key=score.get, reverse=True) if key in pages]


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
