"""Keyword vectors for hybrid search, computed here so search works offline.

Qdrant's own BM25 needs fastembed, which downloads a model from a hub. We
send BM25's term-frequency part as a sparse vector and let Qdrant apply the
inverse document frequency (``Modifier.IDF``) over the whole collection.
A local index ranks them with ``KeywordIndex`` instead (see there why).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable

WORD = re.compile(r"[a-z0-9_]+")
# BM25's usual constants; AVERAGE_TERMS is the length of a typical chunk
# (200 word pieces is about 120 words) since the true mean is not known
# while a document streams in.
K1 = 1.2
B = 0.75
AVERAGE_TERMS = 120
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from how i if in into is it its "
    "me my no not of on or so such that the their then there these they this to "
    "was what when where which who why will with you your".split()
)


def terms(text: str) -> list[str]:
    """Lower-cased words minus stopwords, with a light plural strip."""
    return [_stem(w) for w in WORD.findall(text.lower()) if w not in STOPWORDS]


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def term_id(term: str) -> int:
    """A stable 32-bit index per term (Qdrant sparse indices are u32)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "big")


def document_vector(text: str) -> tuple[list[int], list[float]]:
    counts = Counter(terms(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / AVERAGE_TERMS)
    return _merge({term_id(t): tf * (K1 + 1) / (tf + norm) for t, tf in counts.items()})


def query_vector(text: str) -> tuple[list[int], list[float]]:
    return _merge({term_id(t): 1.0 for t in set(terms(text))})


def _merge(weights: dict[int, float]) -> tuple[list[int], list[float]]:
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]


class KeywordIndex:
    """The keyword ranking of a local index, kept in memory.

    Qdrant's local mode scores a sparse query with a Python loop over every
    point, which costs most of a second per question at 15k chunks; a Qdrant
    server uses its inverted index instead. This is that inverted index for
    the local case, holding the same vectors as the store and weighting them
    with Qdrant's own IDF formula, so both rank alike.
    """

    def __init__(self) -> None:
        self._postings: dict[int, dict[str, float]] = {}
        self._points: dict[str, tuple[str, list[int]]] = {}  # point id → (doc_id, its terms)
        self._by_doc: dict[str, set[str]] = {}

    @property
    def doc_ids(self) -> set[str]:
        return set(self._by_doc)

    def add(self, point_id: str, doc_id: str, vector: tuple[list[int], list[float]]) -> None:
        self.remove_points([point_id])  # an upsert replaces the point
        indices, values = vector
        for term, weight in zip(indices, values):
            self._postings.setdefault(term, {})[point_id] = weight
        self._points[point_id] = (doc_id, list(indices))
        self._by_doc.setdefault(doc_id, set()).add(point_id)

    def remove_documents(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            self.remove_points(list(self._by_doc.get(doc_id, ())))

    def remove_points(self, point_ids: Iterable[str]) -> None:
        for point_id in point_ids:
            found = self._points.pop(point_id, None)
            if found is None:
                continue
            doc_id, indices = found
            for term in indices:
                postings = self._postings[term]
                del postings[point_id]
                if not postings:
                    del self._postings[term]
            self._by_doc[doc_id].discard(point_id)
            if not self._by_doc[doc_id]:
                del self._by_doc[doc_id]

    def search(self, query: tuple[list[int], list[float]], doc_ids: Collection[str], limit: int) -> list[str]:
        """Point ids of the best keyword matches within ``doc_ids``, best
        first; only points sharing a term with the query."""
        n = len(self._points)
        scores: dict[str, float] = {}
        for term, query_weight in zip(*query):
            postings = self._postings.get(term, {})
            weight = query_weight * _idf(len(postings), n)
            for point_id, term_weight in postings.items():
                scores[point_id] = scores.get(point_id, 0.0) + weight * term_weight
        wanted = (point_id for point_id in scores if self._points[point_id][0] in doc_ids)
        return heapq.nlargest(limit, wanted, key=scores.__getitem__)


def _idf(df: int, n: int) -> float:
    """Qdrant's ``Modifier.IDF`` (BM25's inverse document frequency)."""
    return math.log((n - df + 0.5) / (df + 0.5) + 1)
