"""The index manifest: what the stored vectors were made with.

Vectors from one embedder mean nothing to another, and chunks cut for one
window are truncated by a smaller one. The manifest is written with the
first index and checked at every start.
"""

from __future__ import annotations

import json
from pathlib import Path

# Bump when the payload or the sparse vectors change meaning.
SCHEMA = 1


class IndexMismatch(RuntimeError):
    """The stored index was built with other settings than the current ones."""


def expected(embed_model: str, dimension: int, chunk_tokens: int, chunk_overlap: int, section_context: bool) -> dict:
    return {
        "schema": SCHEMA,
        "embed_model": embed_model,
        "dimension": dimension,
        "chunk_tokens": chunk_tokens,
        "chunk_overlap": chunk_overlap,
        "section_context": section_context,
    }


def check(path: Path, wanted: dict, index_is_empty: bool) -> None:
    """Writes the manifest for a new index; raises IndexMismatch for an old
    index built differently, saying how to fix it."""
    if path.exists() and not index_is_empty:
        found = json.loads(path.read_text())
        differences = {k: (found.get(k), v) for k, v in wanted.items() if found.get(k) != v}
        if differences:
            listed = ", ".join(f"{k} was {old!r}, now {new!r}" for k, (old, new) in differences.items())
            raise IndexMismatch(
                f"The index in {path.parent} was built with other settings ({listed}). "
                "Either restore the old settings, or rebuild the index from the stored files "
                "with `python -m mentor reindex` (the documents are kept)."
            )
    write(path, wanted)


def write(path: Path, wanted: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=2) + "\n")
