"""Reading scanned PDF pages: which pages need it, and the OCR itself.

A page needs OCR when its text layer is (nearly) empty and it draws an
image: a scan, or a photographed handout. A blank page draws nothing and is
left alone. Each such page is rendered by PDFium (``pypdfium2``) and read by
Tesseract (Debian's ``tesseract-ocr``), one page at a time, inside the page
reader's child process: the page's time and memory limits hold for OCR too,
and progress counts OCR'd pages as they come. The PDF itself is never
changed: the kept original, without a text layer, is what a citation's
viewer shows. Tesseract's TSV output gives each word with its box, so the
viewer can mark a cited passage on the scan (``words``, ``locate``).

Tesseract runs with one thread. Measured on 2 shared cores, its OpenMP
threads spun against the other work and took a page from 4 s to 147 s.
"""

from __future__ import annotations

import ctypes
import functools
import io
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

COMMAND = "tesseract"
# Tesseract reads best at about 300 dots per inch; a poster-sized page is
# scaled down so that its longer side stays under MAX_SIDE pixels.
DPI = 300
MAX_SIDE = 5000
# A text layer this short is a scanner's stamp ("Scanned by …", a page
# number), not the page's text.
MIN_LAYER_CHARS = 20
INSTALL_HINT = "apt-get install tesseract-ocr"


@dataclass(frozen=True)
class OcrOptions:
    """How scanned pages are read: Tesseract's language codes, joined by
    "+" ("eng", "eng+deu"), each one a Debian package tesseract-ocr-<code>."""

    languages: str = "eng"


class OcrUnavailable(RuntimeError):
    """The OCR engine, or one of its languages, is missing; the message says how to install it."""


def needs_ocr(page, text: str) -> bool:
    """True for a pypdf page whose text layer is (nearly) empty and which
    draws at least one image."""
    if len("".join(text.split())) >= MIN_LAYER_CHARS:
        return False
    try:
        return len(page.images) > 0
    except Exception:  # noqa: BLE001 - an unreadable image list: treat as a page without images
        return False


def check_engine(options: OcrOptions) -> None:
    """Raises OcrUnavailable when Tesseract or one of the languages is missing."""
    _check_engine(options.languages)


@functools.lru_cache(maxsize=4)
def _check_engine(languages: str) -> None:
    if shutil.which(COMMAND) is None:
        raise OcrUnavailable(f"OCR needs Tesseract, which is not installed ({INSTALL_HINT}, or set OCR=0)")
    listed = subprocess.run([COMMAND, "--list-langs"], capture_output=True, text=True, timeout=60)
    installed = set(listed.stdout.split()[1:]) if listed.returncode == 0 else set()
    missing = [code for code in languages.split("+") if code not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{code}" for code in missing)
        raise OcrUnavailable(f"Tesseract has no {'+'.join(missing)} language (apt-get install {packages}, or change OCR_LANGUAGES)")


def engine_status(enabled: bool, options: OcrOptions) -> str:
    """One line for the instructor: whether scanned pages will be read."""
    if not enabled:
        return "OCR is off (OCR=0): pages without a text layer are skipped."
    try:
        check_engine(options)
    except OcrUnavailable as e:
        return f"Scanned pages cannot be read: {e}."
    return f"Scanned pages are read by OCR (Tesseract, {options.languages}): slow, a few seconds a page."


def read_page(path: Path, index: int, options: OcrOptions, seconds: float) -> tuple[str, tuple]:
    """The text Tesseract reads on page ``index`` (0-based) of the PDF at
    ``path``, and its words with their boxes (``words``); raises
    OcrUnavailable, or RuntimeError when it fails."""
    check_engine(options)
    image, size = render(str(path), index)
    done = subprocess.run(
        [COMMAND, "stdin", "stdout", "-l", options.languages, "tsv"],
        input=image,
        capture_output=True,
        timeout=seconds,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        preexec_fn=_die_with_parent,
    )
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"OCR failed ({last[:200]})")
    return words(done.stdout.decode("utf-8", errors="replace"), size)


def words(tsv: str, size: tuple[int, int]) -> tuple[str, tuple]:
    """Tesseract's TSV of an image of ``size`` pixels as the page's text
    (its lines, a blank line between paragraphs, as Tesseract's own text
    output lays them out) and its lines of words, each ``(word, x0, y0, x1,
    y1)`` in fractions of the page from its top left: what a viewer needs
    to highlight a passage read here (``locate.ocr_text``)."""
    width, height = size
    lines: dict[tuple, list] = {}
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        left, top, w, h = (int(v) for v in cells[6:10])
        box = (round(left / width, 5), round(top / height, 5), round((left + w) / width, 5), round((top + h) / height, 5))
        lines.setdefault(tuple(int(v) for v in cells[1:5]), []).append((cells[11].strip(), *box))
    text, paragraph = [], None
    for key, line in lines.items():
        if paragraph is not None and key[:3] != paragraph:
            text.append("")
        paragraph = key[:3]
        text.append(" ".join(word for word, *_ in line))
    return "\n".join(text).strip(), tuple(tuple(line) for line in lines.values())


def render(path: str, index: int) -> tuple[bytes, tuple[int, int]]:
    """Page ``index`` (0-based) as the grey-scale PGM image Tesseract reads,
    at DPI or less, and its size in pixels. The PDF is opened for the page
    alone: milliseconds, against seconds of OCR."""
    import pypdfium2

    document = pypdfium2.PdfDocument(path)
    try:
        page = document[index]
        width, height = page.get_size()  # in points, 72 to the inch
        scale = min(DPI / 72, MAX_SIDE / max(width, height, 1))
        image = page.render(scale=scale, grayscale=True).to_pil().convert("L")
    finally:
        document.close()
    out = io.BytesIO()
    image.save(out, format="PPM")  # a PGM for "L": no compression to wait for
    return out.getvalue(), image.size


def _die_with_parent() -> None:
    """Tesseract is killed with the page reader: the reader is killed when
    a page outruns its time, and an orphaned OCR would go on for nothing."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
