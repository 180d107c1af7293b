"""OCR of scanned pages: pages per second, and how many of their words come back.

    python bench/ocr.py

The scans are made here: each page a 300-dpi picture of about 360 words of
known text at 12 points (a dense textbook page), all in one PDF without a
text layer. They are read by the product's own path,
``mentor.ingest.documents.read_pages`` with OCR on: the page reader's child
process renders each page with PDFium at 300 dpi and Tesseract reads it,
with one thread. The split (rendering alone, Tesseract alone) is taken on
the same pages afterwards, in this process.

Tesseract has no GPU path: on a pod it runs on the pod's CPU cores, one
page at a time per document.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import OUT, begin, fresh_dir, log, summary, write_result

# 36 lines of 70 characters fill an A4 page between one-inch margins at
# 12 points with 18-point leading.
LINES_PER_PAGE = 36
CHARS_PER_LINE = 70
WORD = re.compile(r"[a-z0-9]+")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=12, help="scanned pages to read")
    p.add_argument("--scan-dpi", type=int, default=300, help="resolution of the scans themselves")
    p.add_argument("--languages", default="eng", help="Tesseract's languages (OCR_LANGUAGES)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/ocr.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()
    if args.smoke:
        args.pages, args.scan_dpi = 1, 100

    from mentor.ingest.documents import read_pages
    from mentor.ingest.ocr import OcrOptions, check_engine

    options = OcrOptions(args.languages)
    check_engine(options)
    texts = [page_text(random.Random(n), LINES_PER_PAGE // (4 if args.smoke else 1)) for n in range(args.pages)]
    pdf = scans(fresh_dir(OUT / "ocr") / "scans.pdf", texts, args.scan_dpi)
    log(f"{args.pages} scanned pages at {args.scan_dpi} dpi: {pdf.stat().st_size / 2**20:.1f} MB")

    started = time.perf_counter()
    pages = list(read_pages(pdf, ocr=options))
    wall = time.perf_counter() - started
    assert all(page.ocr for page in pages), [page.problem for page in pages if not page.ocr]
    recalls = [word_recall(expected, page.text) for expected, page in zip(texts, pages)]
    log(f"read by OCR: {wall:.1f} s, {args.pages / wall:.2f} pages/s, word recall {min(recalls):.3f} at worst")

    figures = {
        "engine": tesseract_version(),
        "languages": args.languages,
        "threads": 1,
        "scan_dpi": args.scan_dpi,
        "pages": args.pages,
        "words_per_page": round(sum(len(WORD.findall(t.lower())) for t in texts) / len(texts)),
        "wall_s": round(wall, 2),
        "pages_per_s": round(args.pages / wall, 3),
        "seconds_per_page": round(wall / args.pages, 2),
        "split_s_per_page": split(pdf, options),
        "word_recall": summary(recalls),
    }
    out = write_result("ocr", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    log(f"wrote {out}")
    return 0


def page_text(rng: random.Random, lines: int) -> str:
    """Words of the handbook in a random order, one page's worth."""
    from tests.pdfs import HANDBOOK

    vocabulary = sorted({w for page in HANDBOOK for w in WORD.findall(page.lower()) if len(w) > 1})
    words, length = [], 0
    while length < lines * CHARS_PER_LINE * 0.9:  # wrapping leaves each line a little short
        word = rng.choice(vocabulary)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def scans(path: Path, texts: list[str], dpi: int) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    from tests.materials import scanned_image

    c = canvas.Canvas(str(path), pagesize=A4)
    for text in texts:
        c.drawImage(ImageReader(scanned_image(text, dpi)), 0, 0, *A4)
        c.showPage()
    c.save()
    return path


def word_recall(expected: str, read: str) -> float:
    """The share of the page's words that OCR gave back (as a multiset)."""
    want, got = Counter(WORD.findall(expected.lower())), Counter(WORD.findall(read.lower()))
    return round(sum(min(n, got[w]) for w, n in want.items()) / sum(want.values()), 4)


def split(pdf: Path, options) -> dict:
    """Seconds a page for PDFium's rendering alone, and for the whole OCR of
    a page (rendering and Tesseract), outside the page reader."""
    from pypdf import PdfReader

    from mentor.ingest.ocr import read_page, render

    rendering, reading = [], []
    for index in range(len(PdfReader(pdf).pages)):
        started = time.perf_counter()
        render(str(pdf), index)
        rendering.append(time.perf_counter() - started)
        started = time.perf_counter()
        read_page(pdf, index, options, seconds=600)
        reading.append(time.perf_counter() - started)
    return {"render": summary(rendering), "render_and_tesseract": summary(reading)}


def tesseract_version() -> str:
    done = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
