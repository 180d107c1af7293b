"""The browser's view of a kept slide deck or Word file: its text, slide by
slide (or page by page, section by section), as one HTML page, rendered
once when the document is added and kept beside the originals under
``MENTOR_HOME/views/<sha256>.html`` (``Views``; the library writes it), so
that showing it costs a file read, never a parse.

A browser cannot show a .pptx or a .docx; a citation must still open
something a student can read at the place it cites. Each slide is an
element whose id is ``page=N``, so the link every citation has,
``/files/<sha256>#page=N``, scrolls to slide N here as it scrolls a PDF
viewer to page N; ``:target`` marks it. The original is one click away, to
see the pictures and the layout. All text is escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from pathlib import Path

from mentor.course.originals import DOC_ID
from mentor.index.labels import place
from mentor.ingest.pages import Page

# What a browser cannot show, and how the view names it.
VIEWED = {".pptx": "these slides", ".docx": "this Word file"}

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328; }
header { border-bottom: 1px solid #d0d7de; margin-bottom: 1rem; }
section { padding: .5rem 1rem; margin: 0 -1rem 1rem; border-left: 4px solid transparent; }
section:target { background: #fff8c5; border-left-color: #d4a72c; }
h2 { font-size: 1.1rem; margin: .5rem 0; }
.trail, .problem { color: #59636e; font-size: .9rem; }
p { white-space: pre-wrap; margin: .25rem 0; }
"""
# No script, no outside resource: the page is text and its own style.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def document_html(name: str, doc_id: str, what: str, pages: Iterable[Page]) -> str:
    """The whole view of the document ``name`` (``what``: "these slides",
    "this Word file"), with a link to download its original."""
    sections = "".join(_section(page) for page in pages)
    download = f"/files/{html.escape(doc_id)}?download=1"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>'
        f"<header><h1>{html.escape(name)}</h1><p>The text of {html.escape(what)}, as the mentor reads it. "
        f'<a href="{download}">Download the original</a> to see its pictures and layout.</p></header>'
        f"{sections}</body></html>"
    )


def _section(page: Page) -> str:
    trail = f'<div class="trail">{html.escape(page.section)}</div>' if page.section else ""
    body = f"<p>{html.escape(page.text.strip())}</p>" if page.text.strip() else ""
    problem = f'<div class="problem">{html.escape(page.problem)}</div>' if page.problem else ""
    return f'<section id="page={page.index}"><h2>{html.escape(place(page.label).capitalize())}</h2>{trail}{body}{problem}</section>'


class Views:
    """The kept views, one HTML file per document hash in ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, doc_id: str) -> Path | None:
        """The kept view of a document, found by its hash alone; None when there is none."""
        if not DOC_ID.fullmatch(doc_id or ""):
            return None
        found = self.folder / f"{doc_id}.html"
        return found if found.is_file() else None

    def keep(self, doc_id: str, page: str) -> Path:
        """Writes the view of ``doc_id``, whole or not at all (a rename)."""
        if not DOC_ID.fullmatch(doc_id):
            raise ValueError(f"not a document id: {doc_id!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{doc_id}.html"
        partial = self.folder / f".{doc_id}.html.part"
        try:
            with partial.open("w", encoding="utf-8") as out:
                out.write(page)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def delete(self, doc_id: str) -> None:
        if found := self.path(doc_id):
            found.unlink(missing_ok=True)

    def sweep_partials(self) -> None:
        """Deletes half-written views (a crash mid-write)."""
        for path in self.folder.glob(".*.html.part") if self.folder.is_dir() else ():
            path.unlink(missing_ok=True)
