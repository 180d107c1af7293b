"""Finding a cited passage on its page, as boxes a viewer can highlight.

A citation names a chunk: text that pypdf (or OCR) read from one page. The
viewer needs to know where that text sits on the page. Here the chunk's
words are matched to the page's own text items (PDFium's characters for a
page with a text layer, the words Tesseract read for a scanned one), and
the matched items' boxes are merged into one rectangle per line.

Both sides are normalised the same way before matching, so that what
differs between two readings of the same page does not matter: NFKC (the
ligature "ﬁ" reads "fi"), casefold, soft hyphens dropped, a hyphen that
ends a line joined to the next line's word ("exam-\\nple" reads "example"),
and only words compared (whitespace, line breaks and punctuation ignored).
The words are then aligned in order (``difflib``): the longest common run
of words anchors the passage, and other runs count only near it. The
passage is located when that run holds at least ``MIN_RUN`` words (or the
whole of a shorter passage) and the runs near it cover at least
``MIN_COVERAGE`` of its words; otherwise nothing is highlighted, since a
highlight in the wrong place is worse than none. A passage that continues
from one column into the next is found too: the columns follow each other
in the page's text as they do in the chunk.

Boxes are fractions of the page as displayed (0 to 1, from the top left),
so a viewer scales them to whatever size it draws the page. PDFium is not
thread-safe: every use of it in this process goes through ``PDFIUM``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

# A run of this many words in a row, found on the page, anchors a passage.
MIN_RUN = 6
# Words of the passage that must be found near the anchor, in order.
MIN_COVERAGE = 0.5
# PDFium is one library state per process; calls from two threads corrupt it.
PDFIUM = threading.Lock()
# A soft hyphen anywhere, PDFium's mark for a hyphen it saw at a line's end
# (U+0002), or a hyphen right before a line break, with the break: gone.
_BREAK = re.compile(r"[\u00ad\u0002]\s*|(?<=\w)[-\u2010]\s*\n\s*(?=\w)")
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Box:
    """A rectangle on a page, as fractions of the page's width and height
    from its top left corner."""

    x0: float
    y0: float
    x1: float
    y1: float

    def to_json(self) -> list[float]:
        return [round(v, 5) for v in (self.x0, self.y0, self.x1, self.y1)]


@dataclass
class PageText:
    """A page's text items in reading order (characters, or OCR's words with
    the spaces and line breaks between them) and a way to get each one's
    box (None for a space or a line break)."""

    items: Sequence[str]
    box: Callable[[int], Box | None]


def locate(passage: str, page: PageText) -> list[Box]:
    """The boxes, one per line, of ``passage`` on ``page``, in reading order;
    [] when it cannot be located with confidence."""
    want = [word for word, _, _ in _words(_normalised([passage]))]
    have = _words(_normalised(page.items))
    span = _aligned_span(want, [word for word, _, _ in have])
    if span is None:
        return []
    first, last = span
    owners = sorted({owner for _, start, end in have[first : last + 1] for owner in range(start, end)})
    return _lines([box for owner in owners if (box := page.box(owner)) is not None])


def _normalised(items: Sequence[str]) -> tuple[str, list[int]]:
    """The items' text, normalised (see the module's docstring), and for each
    of its characters the item it comes from."""
    chars: list[str] = []
    owners: list[int] = []
    for i, item in enumerate(items):
        for char in unicodedata.normalize("NFKC", item).casefold():
            chars.append(char)
            owners.append(i)
    text = "".join(chars)
    kept = [True] * len(text)
    for found in _BREAK.finditer(text):
        kept[found.start() : found.end()] = [False] * (found.end() - found.start())
    return "".join(c for c, k in zip(text, kept) if k), [o for o, k in zip(owners, kept) if k]


def _words(normalised: tuple[str, list[int]]) -> list[tuple[str, int, int]]:
    """Each word with the first item it comes from and one past the last."""
    text, owners = normalised
    return [(m.group(), owners[m.start()], owners[m.end() - 1] + 1) for m in _WORD.finditer(text)]


def _aligned_span(want: list[str], have: list[str]) -> tuple[int, int] | None:
    """The first and last page word of the passage ``want`` found in
    ``have``, or None when it is not found with confidence."""
    if not want or not have:
        return None
    blocks = [b for b in SequenceMatcher(None, want, have, autojunk=False).get_matching_blocks() if b.size]
    if not blocks:
        return None
    anchor = max(blocks, key=lambda b: b.size)
    if anchor.size < min(MIN_RUN, len(want)):
        return None
    # Where the whole passage would lie on the page, given its anchor, with
    # room for words read differently or out of order.
    slack = 10 + len(want) // 4
    low = anchor.b - anchor.a - slack
    high = anchor.b + (len(want) - anchor.a) + slack
    near = [b for b in blocks if b is anchor or (b.size >= 2 and low <= b.b and b.b + b.size <= high)]
    if sum(b.size for b in near) < MIN_COVERAGE * len(want):
        return None
    return min(b.b for b in near), max(b.b + b.size for b in near) - 1


def _lines(boxes: list[Box]) -> list[Box]:
    """Boxes in reading order merged into one per line: the next box joins
    the current line when it sits at the same height, a little to the right."""
    lines: list[Box] = []
    for box in boxes:
        if lines and _same_line(lines[-1], box):
            line = lines[-1]
            lines[-1] = Box(min(line.x0, box.x0), min(line.y0, box.y0), max(line.x1, box.x1), max(line.y1, box.y1))
        else:
            lines.append(box)
    return lines


def _same_line(line: Box, box: Box) -> bool:
    # Against the smaller height: a hyphen or a comma is a short box.
    height = max(min(line.y1 - line.y0, box.y1 - box.y0), 1e-6)
    tall = max(line.y1 - line.y0, box.y1 - box.y0)
    overlap = min(line.y1, box.y1) - max(line.y0, box.y0)
    return overlap > 0.4 * height and line.x0 - tall <= box.x0 <= line.x1 + 3 * tall


def union(boxes: Sequence[Box]) -> Box:
    """The smallest box holding all of ``boxes`` (at least one)."""
    return Box(min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes))


# --- the page's own text --------------------------------------------------------------


def ocr_text(lines: Sequence[Sequence[Sequence]]) -> PageText:
    """The text items of a scanned page from the words OCR read on it: lines
    of ``[word, x0, y0, x1, y1]`` (fractions of the page)."""
    items: list[str] = []
    boxes: list[Box | None] = []
    for line in lines:
        for word, *box in line:
            items += [word, " "]
            boxes += [Box(*box), None]
        if items:
            items[-1] = "\n"
    return PageText(items, boxes.__getitem__)


def pdf_text(path: Path, index: int) -> PageText:
    """The characters of page ``index`` (1-based) of the PDF at ``path``,
    as PDFium reads them, with their boxes (read only for the characters a
    passage needs)."""
    import pypdfium2
    import pypdfium2.raw as pdfium

    with PDFIUM:
        document = pypdfium2.PdfDocument(str(path))
        try:
            page = document[index - 1]
            text = page.get_textpage()
            count = text.count_chars()
            items = [chr(pdfium.FPDFText_GetUnicode(text, i) or 0xFFFD) for i in range(count)]
            to_page = _display(page)
            boxes = [None if items[i].isspace() else _char_box(text, i, to_page) for i in range(count)]
        finally:
            document.close()
    return PageText(items, boxes.__getitem__)


def _char_box(text, i: int, to_page) -> Box | None:
    # Loose: the advance width and the font's height, as a marker pen covers a
    # letter, not the ink's own box (an "l" is a hair wide).
    left, bottom, right, top = text.get_charbox(i, loose=True)
    if right <= left or top <= bottom:
        return None
    (ax, ay), (bx, by) = to_page(left, top), to_page(right, bottom)
    return Box(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def _display(page) -> Callable[[float, float], tuple[float, float]]:
    """PDF user space to fractions of the page as displayed (its crop box
    and rotation applied): an affine map, read from PDFium at three points."""
    import ctypes

    import pypdfium2.raw as pdfium

    scale = 100_000  # device units across the page: precise to 1e-5

    def device(x: float, y: float) -> tuple[float, float]:
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium.FPDF_PageToDevice(page.raw, 0, 0, scale, scale, 0, x, y, ctypes.byref(dx), ctypes.byref(dy))
        return dx.value / scale, dy.value / scale

    (ox, oy), (xx, xy), (yx, yy) = device(0, 0), device(1000, 0), device(0, 1000)
    ax, ay, bx, by = (xx - ox) / 1000, (xy - oy) / 1000, (yx - ox) / 1000, (yy - oy) / 1000
    return lambda x, y: (ox + ax * x + bx * y, oy + ay * x + by * y)


# --- a cited passage, and a picture of it ---------------------------------------------


def passage_boxes(path: Path, page: int, text: str, ocr_lines: Sequence | None) -> list[Box]:
    """Where ``text``, a chunk of page ``page`` of the PDF at ``path``, lies
    on that page: among the words OCR read there (``ocr_lines``, for a
    scanned page), else among the characters of its text layer."""
    return locate(text, ocr_text(ocr_lines) if ocr_lines else pdf_text(path, page))


def preview_png(path: Path, page: int, boxes: Sequence[Box], width: int, max_height: float) -> bytes:
    """A PNG ``width`` pixels wide of the part of page ``page`` that holds
    ``boxes``, marked, at most ``max_height`` of the page tall; the top of
    the page, unmarked, when there are no boxes."""
    import io

    import pypdfium2
    from PIL import Image, ImageDraw

    if boxes:
        around = union(boxes)
        region = Box(max(0.0, around.x0 - 0.03), max(0.0, around.y0 - 0.02), min(1.0, around.x1 + 0.03), 0.0)
        region = Box(region.x0, region.y0, region.x1, min(1.0, around.y1 + 0.02, region.y0 + max_height))
    else:
        region = Box(0.0, 0.0, 1.0, max_height)
    with PDFIUM:
        document = pypdfium2.PdfDocument(str(path))
        try:
            sheet = document[page - 1]
            w, h = sheet.get_size()
            scale = width / max(1.0, (region.x1 - region.x0) * w)
            crop = (region.x0 * w, (1 - region.y1) * h, (1 - region.x1) * w, region.y0 * h)
            image = sheet.render(scale=scale, crop=crop, may_draw_forms=False).to_pil().convert("RGB")
        finally:
            document.close()
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    sx, sy = image.width / (region.x1 - region.x0), image.height / (region.y1 - region.y0)
    for box in boxes:
        corners = ((box.x0 - region.x0) * sx, (box.y0 - region.y0) * sy, (box.x1 - region.x0) * sx, (box.y1 - region.y0) * sy)
        draw.rectangle(corners, fill=(250, 204, 21, 100))
    image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
