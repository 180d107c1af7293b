"""Keyword vectors for hybrid search, computed here so search works offline.

Qdrant's own BM25 needs fastembed, which downloads a model from a hub. We
send BM25's term-frequency part as a sparse vector and let Qdrant apply the
inverse document frequency (``Modifier.IDF``) over the whole collection.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

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
