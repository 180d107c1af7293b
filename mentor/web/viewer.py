"""The browser's views of a cited file, in one look (``static/viewer.css``).

- A PDF: ``pdf_view_html``, a page that runs PDF.js (``static/viewer.js``,
  vendored in ``static/pdfjs``) to draw one page at a time at the cited
  physical page, with the cited passage marked, page navigation, zoom, the
  page label as the course prints it, and the original a click away.
- A slide deck or a Word file, which a browser cannot show: ``document_html``,
  its text, slide by slide (or page by page, section by section), as one
  HTML page without any script. Each slide is an element whose id is
  ``page=N``, so ``#page=N`` scrolls to slide N, and the cited one is marked.
  The original is one click away, to see the pictures and the layout.

All text is escaped. Both pages load nothing but the app's own files
(``CONTENT_SECURITY_POLICY``, ``PDF_POLICY``).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

from mentor.index.labels import place
from mentor.ingest.pages import Page

STATIC = Path(__file__).with_name("static")
# Where the viewers' own files are served (``viewer_routes``).
ASSETS = "/viewer-assets"
# No script, nothing from elsewhere: the page is text and the app's stylesheet.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'self'"
# PDF.js: its module and worker from this app, the PDF and the passage
# fetched from it, its image decoders compiled from WebAssembly; the PDF's
# pictures arrive as blobs. No script from anywhere else, no eval.
PDF_POLICY = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self' blob: data:; font-src 'self' blob: data:"
)


def document_html(name: str, doc_id: str, what: str, pages: Iterable[Page], cited: int | None = None) -> str:
    """The whole view of the document ``name`` (``what``: "these slides",
    "this Word file"), with slide or page ``cited`` marked, and a link to
    download its original."""
    sections = "".join(_section(page, page.index == cited) for page in pages)
    download = f"/files/{html.escape(doc_id)}?download=1"
    note = f"The text of {html.escape(what)}, as the mentor reads it; the original has its pictures and layout."
    return (
        _head(name, "")
        + f'<header class="bar"><h1>{html.escape(name)}</h1>'
        f'<a class="original" href="{download}">Download the original</a><p class="note">{note}</p></header>'
        f'<main class="text-view">{sections}</main></body></html>'
    )


def pdf_view_html(name: str, doc_id: str, page: int, chunk: int | None) -> str:
    """The PDF viewer of ``doc_id`` opening at physical page ``page``, with
    chunk ``chunk``'s passage marked when it is given."""
    data = f'data-doc="{html.escape(doc_id)}" data-page="{int(page)}" data-name="{html.escape(name)}"'
    if chunk is not None:
        data += f' data-chunk="{int(chunk)}"'
    return (
        _head(name, f'<script type="module" src="{ASSETS}/viewer.js"></script>')
        + f'<div id="viewer" {data}><header class="bar"><h1>{html.escape(name)}</h1>'
        '<div class="controls"><button id="prev" type="button" aria-label="Previous page">‹</button>'
        '<span class="where"><span id="label">Page</span> <span class="of" id="of"></span></span>'
        '<button id="next" type="button" aria-label="Next page">›</button></div>'
        '<div class="controls"><button id="zoom-out" type="button" aria-label="Zoom out">−</button>'
        '<span class="zoom-level" id="zoom-level"></span>'
        '<button id="zoom-in" type="button" aria-label="Zoom in">+</button>'
        '<button id="fit" type="button">Fit</button></div>'
        f'<a class="original" id="original" href="/files/{html.escape(doc_id)}#page={int(page)}">Original</a>'
        '<p class="note" id="note" role="status"></p></header>'
        '<main class="stage"><p class="loading" id="loading">Opening the page…</p>'
        '<div class="sheet" id="sheet"><canvas id="page"></canvas><div class="marks" id="marks"></div></div>'
        "</main></div></body></html>"
    )


def _head(name: str, extra: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{ASSETS}/viewer.css">{extra}</head><body>'
    )


def _section(page: Page, cited: bool) -> str:
    trail = f'<div class="trail">{html.escape(page.section)}</div>' if page.section else ""
    body = f"<p>{html.escape(page.text.strip())}</p>" if page.text.strip() else ""
    problem = f'<div class="problem">{html.escape(page.problem)}</div>' if page.problem else ""
    mark = ' class="cited"' if cited else ""
    return (
        f'<section id="page={page.index}"{mark}><h2>{html.escape(place(page.label).capitalize())}</h2>'
        f"{trail}{body}{problem}</section>"
    )
