"""Scanned pages: each page without a text layer, and only those, is read by
OCR (Tesseract), found by search and cited on its own page, while the kept
original, scan and all, is what the citation opens.

The scans are pictures of known sentences, drawn by Pillow and put into a
PDF without any text layer (tests/materials.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mentor.ingest.documents import read_pages
from mentor.ingest.ocr import OcrOptions, engine_status
from tests.conftest import small_env
from tests.materials import make_scan

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "Radio telescopes detect the faint hiss left over from the Big Bang."
NOT_INSTALLED = "OCR needs Tesseract, which is not installed (apt-get install tesseract-ocr, or set OCR=0)"


def mixed_pdf(folder: Path) -> Path:
    """Three pages: a text layer, a scan of SENTENCE, a text layer."""
    return make_scan(folder / "mixed.pdf", [None, SENTENCE, None])


def test_only_the_page_without_a_text_layer_is_read_by_ocr(tmp_path):
    pages = list(read_pages(mixed_pdf(tmp_path), ocr=OcrOptions()))

    assert [(p.index, p.ocr, p.problem) for p in pages] == [(1, False, ""), (2, True, ""), (3, False, "")]
    assert " ".join(pages[1].text.split()) == SENTENCE
    assert pages[0].text.startswith("Page 1 has a text layer")


def test_a_sentence_on_a_scanned_page_is_found_and_cited_on_that_page(mentor, tmp_path):
    path = mixed_pdf(tmp_path)
    seen = []

    [result] = mentor.ingest([path], progress=seen.append)

    assert result.line() == "mixed.pdf: added (3 pages, 3 chunks) — 1 of 3 pages read by OCR"
    best = mentor.search("what do radio telescopes detect from the Big Bang?", k=1)[0]
    assert (best.page, best.place) == (2, "page 2")
    assert " ".join(best.text.split()) == SENTENCE
    assert (seen[-1].pages_parsed, seen[-1].pages_ocr, seen[-1].by_ocr()) == (3, 1, " (1 by OCR)")
    # The citation opens the original as uploaded: no text layer was added to it.
    assert mentor.stored_file(result.doc_id).read_bytes() == path.read_bytes()


def test_with_ocr_off_a_scanned_page_is_skipped_with_the_reason(settings, embedder, tmp_path):
    from mentor import Mentor

    with Mentor.open(settings.replace(ocr=False), embedder=embedder, with_model=False) as off:
        [result] = off.ingest([mixed_pdf(tmp_path)])

    assert result.line() == (
        "mixed.pdf: added (3 pages, 2 chunks) — 1 page(s) skipped, "
        "e.g. page 2: the page has no text layer (a scan?), and OCR is off (OCR=0)"
    )


def test_without_tesseract_a_scan_fails_with_how_to_install_it_and_the_batch_goes_on(settings, tmp_path):
    scan = make_scan(tmp_path / "scan.pdf", [SENTENCE])
    text = tmp_path / "notes.txt"
    text.write_text("Office hours are on Thursdays.")
    # A PATH without Tesseract; the interpreter is named by its full path.
    env = small_env(settings.home, PATH=str(tmp_path / "no-tools"))

    command = [sys.executable, "-m", "mentor", "ingest", str(scan), str(text)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"scan.pdf: failed: no text could be extracted: page 1: the page has no text layer (a scan?), and {NOT_INSTALLED}",
        "notes.txt: added (1 pages, 1 chunks)",
    ]


def test_the_console_says_whether_scanned_pages_will_be_read():
    assert engine_status(True, OcrOptions()) == (
        "Scanned pages are read by OCR (Tesseract, eng): slow, a few seconds a page."
    )
    assert engine_status(False, OcrOptions()) == "OCR is off (OCR=0): pages without a text layer are skipped."
    assert engine_status(True, OcrOptions("eng+xyz")) == (
        "Scanned pages cannot be read: Tesseract has no xyz language "
        "(apt-get install tesseract-ocr-xyz, or change OCR_LANGUAGES)."
    )
