"""What an index was built with (its spec), so that vectors are never mixed.

Vectors from one embedder mean nothing to another, and chunks cut for one
window are truncated by a smaller one. Every index records its spec in the
registry when it is made; at every start the live index's spec is compared
with what the settings ask for, and a difference starts a rebuild beside it
(``Library.rebuild``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

# Bump when the payload or the keyword vectors change meaning. 1: our own
# BM25 vectors in qdrant-client's local mode; 2: Qdrant's BM25 (Edge).
SCHEMA = 2


@dataclass(frozen=True)
class IndexSpec:
    embed_model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    section_context: bool
    # The second embedder fused in, and its vectors' size ("", 0: none; the
    # spec of an index made before there was one).
    second_embed_model: str = ""
    second_dimension: int = 0
    schema: int = SCHEMA

    @classmethod
    def from_json(cls, data: dict | str) -> IndexSpec:
        data = json.loads(data) if isinstance(data, str) else data
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict:
        return asdict(self)

    def differences(self, other: IndexSpec, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
        """``{field: (mine, theirs)}`` for every field that differs."""
        mine, theirs = self.to_json(), other.to_json()
        return {k: (mine[k], theirs[k]) for k in mine if k not in ignore and mine[k] != theirs[k]}

    def same_vectors(self, other: IndexSpec) -> bool:
        """Whether chunks and dense vectors are interchangeable (the keyword
        vectors are made again on every write, so the schema does not matter)."""
        return not self.differences(other, ignore=("schema",))


def describe(differences: dict[str, tuple], now: str = "now") -> str:
    """``chunk_tokens was 200, now 150, …`` for a log line or an error."""
    return ", ".join(f"{k} was {old!r}, {now} {new!r}" for k, (old, new) in differences.items())
