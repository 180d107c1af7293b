"""Section 3, the repeat guard: answers with and without it (bench/repetition.py)."""

from ..section import Section

SECTION = Section(
    "repetition", "### The repeat guard", "repetition.md.j2", "repetition", "python bench/repetition.py"
)
