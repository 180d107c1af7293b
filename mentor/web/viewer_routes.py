"""The routes of the citation viewers.

- ``/view/{doc_id}?page=N&chunk=M``: the view a citation opens. A PDF
  opens in the app's own PDF viewer (PDF.js) at physical page N with chunk
  M marked; slides, Word and text files open at ``/files/{doc_id}#page=N``,
  the text view kept at ingest, with slide or section N marked.
- ``/view/{doc_id}/passage?chunk=M``: where chunk M lies on its page, as
  boxes in fractions of the page (``mentor.ingest.locate``), remembered for
  the next student who opens the same citation.
- ``/view/{doc_id}/preview?chunk=M``: a small picture of the cited part of
  the page, made on its first request and kept on disk
  (``MENTOR_HOME/cache/previews``, at most ``PREVIEW_CACHE_BYTES``).
- ``/viewer-assets/…``: the viewers' stylesheet and script, and PDF.js.

Who may see what: the same rule as ``/files/…`` (``viewable``): only a
document students can get answers from, never an instructor-only one; an
id is checked to be 64 hex digits and no part of a request becomes a path.
Locating and drawing happen in this process, a few at a time
(``WORKERS``); a request that would wait longer than ``WAIT_SECONDS`` is
told to try again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from mentor.engine import Mentor
from mentor.index.labels import place
from mentor.index.store import Hit, IndexClosed
from mentor.ingest.locate import Box, passage_boxes, preview_png
from mentor.web.routes import viewable
from mentor.web.viewer import ASSETS, PDF_POLICY, STATIC, pdf_view_html

log = logging.getLogger(__name__)

# The viewers' own files, by the name they are asked for: nothing else is served.
ASSET_TYPES = {
    "viewer.css": "text/css; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "pdfjs/pdf.min.mjs": "text/javascript; charset=utf-8",
    "pdfjs/pdf.worker.min.mjs": "text/javascript; charset=utf-8",
    "pdfjs/openjpeg.wasm": "application/wasm",
    "pdfjs/jbig2.wasm": "application/wasm",
}
# Passages located, remembered in memory (a few hundred bytes each).
REMEMBERED = 2000
# Locating or drawing at once; each holds PDFium for tens of milliseconds.
WORKERS = 2
WAIT_SECONDS = 10.0
# A preview: this many pixels wide (shown at half that on a phone's
# screen), at most this fraction of the page tall.
PREVIEW_WIDTH = 720
PREVIEW_HEIGHT = 0.3
PREVIEW_CACHE_BYTES = 64 * 2**20
# Asked again every time, as /files is: a document marked instructor-only
# later must not live on in a browser's cache.
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}


class Passages:
    """Where cited passages lie on their pages, and previews of them."""

    def __init__(self, mentor: Mentor, previews: Path):
        self.mentor = mentor
        self.previews = previews
        self._found: OrderedDict[tuple[str, str, int], dict] = OrderedDict()
        self._lock = threading.Lock()
        self._workers = threading.BoundedSemaphore(WORKERS)

    def chunk(self, doc_id: str, chunk_no: int) -> Hit:
        """The chunk, from the index students search; 404 when there is none."""
        for _ in range(2):  # the index may be swapped for a rebuilt one meanwhile
            try:
                hit = self.mentor.index.chunk(doc_id, chunk_no)
                break
            except IndexClosed:
                continue
        else:
            raise HTTPException(503, "The index is being swapped; try again.")
        if hit is None or hit.doc_id != doc_id:
            raise HTTPException(404, "No such passage.")
        return hit

    def find(self, doc_id: str, path: Path, chunk_no: int) -> dict:
        """``{"page", "label", "boxes"}`` of the chunk; boxes are [] when it
        cannot be located (or the file is not a PDF)."""
        # A rebuilt index numbers its chunks anew: what was found is the live index's.
        key = (self.mentor.index.name, doc_id, chunk_no)
        with self._lock:
            if key in self._found:
                self._found.move_to_end(key)
                return self._found[key]
        hit = self.chunk(doc_id, chunk_no)
        boxes = []
        if path.suffix == ".pdf":
            with self._worker():
                try:
                    words = self.mentor.library.ocr_words(doc_id, hit.page)
                    boxes = [box.to_json() for box in passage_boxes(path, hit.page, hit.text, words)]
                except Exception as e:  # noqa: BLE001 - a page PDFium cannot read: shown unmarked
                    log.warning("locating a passage on page %d of %s failed: %s", hit.page, path.name, e)
        found = {"page": hit.page, "label": place(hit.page_label), "boxes": boxes}
        with self._lock:
            self._found[key] = found
            while len(self._found) > REMEMBERED:
                self._found.popitem(last=False)
        return found

    def preview(self, doc_id: str, path: Path, chunk_no: int) -> Path:
        """The preview's file, drawn on its first request."""
        generation = hashlib.sha256(self.mentor.index.name.encode()).hexdigest()[:12]
        kept = self.previews / f"{doc_id}-{chunk_no}-{generation}.png"
        if kept.is_file():
            return kept
        found = self.find(doc_id, path, chunk_no)
        boxes = [Box(*b) for b in found["boxes"]]
        with self._worker():
            png = preview_png(path, found["page"], boxes, PREVIEW_WIDTH, PREVIEW_HEIGHT)
        self.previews.mkdir(parents=True, exist_ok=True)
        partial = kept.with_name(f".{kept.name}.{threading.get_ident()}.part")
        partial.write_bytes(png)
        partial.replace(kept)
        self._prune(kept)
        return kept

    def _prune(self, new: Path) -> None:
        """Deletes the oldest previews but ``new`` while they take more than
        PREVIEW_CACHE_BYTES."""
        kept = []
        for path in self.previews.glob("*.png"):
            try:
                stat = path.stat()
            except OSError:  # deleted by another request's pruning meanwhile
                continue
            kept.append((stat.st_mtime, stat.st_size, path))
        kept.sort()
        total = sum(size for _, size, _ in kept)
        for _, size, path in kept:
            if total <= PREVIEW_CACHE_BYTES:
                break
            if path != new:
                path.unlink(missing_ok=True)
                total -= size

    @contextmanager
    def _worker(self):
        """One of the WORKERS places, or 503 after WAIT_SECONDS."""
        if not self._workers.acquire(timeout=WAIT_SECONDS):
            raise HTTPException(503, "Busy drawing pages; try again in a moment.", headers={"Retry-After": "5"})
        try:
            yield
        finally:
            self._workers.release()


def create_viewer_router(mentor: Mentor) -> APIRouter:
    """The viewers' routes (see the module's docstring), bound to ``mentor``."""
    router = APIRouter()
    passages = Passages(mentor, Path(mentor.settings.home) / "cache" / "previews")

    def allowed(doc_id: str) -> tuple[str, Path]:
        if (found := viewable(mentor, doc_id)) is None:
            raise HTTPException(404, "No such file.")
        return found

    @router.get("/view/{doc_id}")
    def view(doc_id: str, page: int = 1, chunk: int | None = None) -> Response:
        name, path = allowed(doc_id)
        if path.suffix == ".pdf":
            body = pdf_view_html(name, doc_id, page, chunk)
            return HTMLResponse(body, headers={**HEADERS, "Content-Security-Policy": PDF_POLICY})
        # The kept text view (or the text file itself): read, never parsed here.
        return RedirectResponse(f"/files/{doc_id}#page={int(page)}", status_code=303)

    @router.get("/view/{doc_id}/passage")
    def passage(doc_id: str, chunk: int) -> dict:
        _, path = allowed(doc_id)
        return passages.find(doc_id, path, chunk)

    @router.get("/view/{doc_id}/preview")
    def preview(doc_id: str, chunk: int) -> Response:
        _, path = allowed(doc_id)
        if path.suffix != ".pdf":
            raise HTTPException(404, "No preview for this file.")
        return FileResponse(passages.preview(doc_id, path, chunk), media_type="image/png", headers=HEADERS)

    @router.get(ASSETS + "/{name:path}")
    def asset(name: str) -> Response:
        if name not in ASSET_TYPES:
            raise HTTPException(404, "No such file.")
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}
        return FileResponse(STATIC / name, media_type=ASSET_TYPES[name], headers=headers)

    return router


__all__ = ["create_viewer_router", "viewable"]
