"""The browser's view of a cited PDF (``static/viewer.css``):
``pdf_view_html``, a page that runs PDF.js (``static/viewer.js``, vendored
in ``static/pdfjs``) to draw one page at a time at the cited physical page,
with the cited passage marked, page navigation, zoom, the page label as the
course prints it, and the original a click away.

A slide deck or a Word file is shown as the text view the library kept at
ingest (``mentor.course.views``), which marks the cited slide by its
``#page=N``. All text is escaped; the page loads nothing but the app's own
files (``PDF_POLICY``).
"""

from __future__ import annotations

import html
from pathlib import Path

STATIC = Path(__file__).with_name("static")
# Where the viewers' own files are served (``viewer_routes``).
ASSETS = "/viewer-assets"
# PDF.js: its module and worker from this app, the PDF and the passage
# fetched from it, its image decoders compiled from WebAssembly; the PDF's
# pictures arrive as blobs. No script from anywhere else, no eval.
PDF_POLICY = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self' blob: data:; font-src 'self' blob: data:"
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
