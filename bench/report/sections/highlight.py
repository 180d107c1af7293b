"""Section 7: the cited passage located on its page (bench/highlight.py)."""

from ..section import Section

SECTION = Section(
    "highlight", "## 7. The cited passage on its page", "highlight.md.j2", "highlight", "python bench/highlight.py"
)
