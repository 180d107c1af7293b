"""BENCHMARKS.md as a whole: every section in order, each followed by its
block of bench/commentary.md (templates/page.md.j2)."""

from __future__ import annotations

from .sections import SECTIONS
from .templating import commentary_blocks
from .templating import render as render_template


def render(results: dict[str, dict], commentary: str) -> str:
    notes = commentary_blocks(commentary, results)
    sections = [(s.name, s.render(results)) for s in SECTIONS]
    return render_template("page.md.j2", sections=sections, notes=notes).rstrip() + "\n"
