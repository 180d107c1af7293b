"""What every reader of a course file produces: pages, the kinds of file
they come from, and the section trail a page sits under. A leaf: the
readers (``documents``, ``office``, ``ocr``) and the pipeline import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PDF = "pdf"
TEXT = "text"
PPTX = "pptx"
DOCX = "docx"
TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
OFFICE_SUFFIXES = {".pptx", ".docx"}
SUFFIXES = {".pdf", *OFFICE_SUFFIXES, *TEXT_SUFFIXES}
SUPPORTED = "PDF, .pptx, .docx, .txt or .md"
OFFICE_NAMES = {PPTX: "PowerPoint file", DOCX: "Word file"}
# Headings joined into a page's section trail; longer titles are not
# headings any more.
SECTION_SEPARATOR = " › "
MAX_TITLE_CHARS = 150


@dataclass(frozen=True)
class Page:
    index: int  # 1-based physical page
    label: str  # the printed page label
    text: str
    problem: str = ""  # why the text is missing, when it is
    section: str = ""  # the headings in force here: "Strings › Converting Numbers"
    ocr: bool = False  # the text was read by OCR from the page's image
    # For a page read by OCR, its lines of words: (word, x0, y0, x1, y1) in
    # fractions of the page, kept so a viewer can highlight a passage on the scan.
    words: tuple = ()


def section_trail(titles: Iterable[str]) -> str:
    """Headings, outermost first, as one trail: each title on one line and
    cut to MAX_TITLE_CHARS."""
    return SECTION_SEPARATOR.join(" ".join(str(title).split())[:MAX_TITLE_CHARS] for title in titles)
