"""Course files other than text PDFs, made by the tests with known text in
known places: slide decks (python-pptx), Word files (python-docx), and PDFs
whose pages are pictures of text (scans, for OCR)."""

from __future__ import annotations

import io
from pathlib import Path
from textwrap import wrap

# Slide number → (title, body). Slide 3 is a picture alone.
DECK = {
    1: ("Orbital mechanics", "Lecture 4 of Astronomy 101."),
    2: ("Kepler's third law", "The square of the orbital period is proportional to the cube of the semi-major axis."),
    4: ("Tides", "The Moon's gravity raises two tidal bulges on opposite sides of the Earth."),
}
DECK_NOTES = {4: "Spring tides happen when the Sun and the Moon line up."}
PICTURE_SLIDE = 3

# Word pages as Word laid them out: page number → paragraphs.
WORD_PAGES = {
    1: ["Laboratory safety handbook", "Always wear goggles in the chemistry lab."],
    2: ["Acids are diluted by pouring the acid into the water, never the reverse."],
    3: ["Broken glassware goes into the yellow sharps bin by the door."],
}
# Headings and paragraphs of a Word file that no Word laid out.
WORD_SECTIONS = [
    ("Title", "Field course guide"),
    (None, "This guide covers the spring field trip."),
    ("Heading 1", "Methods"),
    ("Heading 2", "Sampling"),
    (None, "Soil cores are taken every fifty metres along the transect."),
    ("Heading 2", "Storage"),
    (None, "Samples are frozen at minus twenty degrees within six hours."),
    ("Heading 1", "Safety"),
    (None, "Every group carries a first aid kit and a radio."),
]


def make_pptx(path: Path, deck: dict = DECK, notes: dict = DECK_NOTES, picture_slide: int | None = PICTURE_SLIDE) -> Path:
    """A deck whose slides hold ``deck``'s titles and bodies, with speaker
    ``notes``, and one slide that shows only a picture."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    for number in range(1, max([*deck, picture_slide or 0]) + 1):
        if number == picture_slide:
            slide = prs.slides.add_slide(prs.slide_layouts[6])  # blank
            slide.shapes.add_picture(io.BytesIO(_png()), Inches(1), Inches(1))
            continue
        title, body = deck[number]
        slide = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if number in notes:
            slide.notes_slide.notes_text_frame.text = notes[number]
    path.parent.mkdir(parents=True, exist_ok=True)
    prs.save(path)
    return path


def make_docx(path: Path, pages: dict = WORD_PAGES) -> Path:
    """A Word file as Word saves it: each page after the first starts with
    the ``w:lastRenderedPageBreak`` mark Word writes where it began a page."""
    from docx import Document
    from docx.oxml import OxmlElement

    document = Document()
    for number, paragraphs in pages.items():
        for i, text in enumerate(paragraphs):
            run = document.add_paragraph().add_run()
            if i == 0 and number > 1:
                run._r.append(OxmlElement("w:lastRenderedPageBreak"))
            run._r.append(_text_element(text))
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(path)
    return path


def make_sectioned_docx(path: Path, blocks: list = WORD_SECTIONS) -> Path:
    """A Word file as a script writes it: headings and paragraphs, no pages."""
    from docx import Document

    document = Document()
    for style, text in blocks:
        document.add_paragraph(text, style=style)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(path)
    return path


def make_scan(path: Path, pages: list[str | None], dpi: int = 150) -> Path:
    """A PDF whose page i is a picture of ``pages[i]`` (a scan, no text
    layer), or, where the entry is None, a page with a text layer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    path.parent.mkdir(parents=True, exist_ok=True)
    c = canvas.Canvas(str(path), pagesize=A4)
    for number, text in enumerate(pages, start=1):
        if text is None:
            c.drawString(50, 800, f"Page {number} has a text layer about the history of astronomy.")
        else:
            c.drawImage(ImageReader(scanned_image(text, dpi)), 0, 0, *A4)
        c.showPage()
    c.save()
    return path


def scanned_image(text: str, dpi: int = 150):
    """An A4 page at ``dpi``: black 12-point text on white, in lines."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = int(8.27 * dpi), int(11.69 * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=int(12 / 72 * dpi))
    y = int(dpi)
    for line in wrap(text, 70):
        draw.text((int(dpi), y), line, fill=0, font=font)
        y += int(18 / 72 * dpi)
    return image


def _text_element(text: str):
    from docx.oxml import OxmlElement

    element = OxmlElement("w:t")
    element.text = text
    return element


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()
