"""Reading slides (.pptx) and Word files (.docx) into pages, with
python-pptx and python-docx.

- A deck becomes one page per slide, labelled "slide 12": its title, the
  text of its shapes, tables and groups in order, then its speaker notes.
  A slide that shows only pictures has no text to index, and says so.
- A Word file has no pages of its own: Word lays them out when it opens the
  file. When Word saved it, it marked where each page began then
  (``w:lastRenderedPageBreak``), and the file becomes those pages, labelled
  "1", "2"… as Word showed them. A file that no Word saved (written by
  another program or a script) has no such marks: it becomes one section per
  heading, labelled "section 3", with the headings above it as its section
  trail ("Methods › Sampling"). Explicit page breaks alone are not pages:
  the text between two of them may fill several.

What is not read: pictures (no OCR here: export the deck as PDF, and its
picture-only slides are read by OCR), SmartArt, charts, text boxes inside
drawings of a Word file, headers, footers and footnotes.

The package is checked before either library opens it (``check``): a
password-protected Office file is not a zip at all but an OLE container,
and a zip that unpacks to gigabytes must be refused before it is read.
"""

from __future__ import annotations

import mmap
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

from mentor.ingest.pages import DOCX, OFFICE_NAMES, PPTX, section_trail

MAIN_TYPES = {
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": PPTX,
    "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml": PPTX,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": DOCX,
}
# An encrypted Office file is an OLE compound file holding these streams.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
CONTENT_TYPES = "[Content_Types].xml"
MAX_CONTENT_TYPES_BYTES = 1 << 20
HEADING = re.compile(r"Heading (\d)")


class OfficeError(ValueError):
    """An Office file that cannot be read; the message says why."""


def check(path: Path, max_unpacked_mb: int) -> str:
    """The kind of an Office file (PPTX or DOCX) by its content, after
    refusing what cannot be read: an encrypted or old binary file, a
    damaged zip, another kind of package, or one that unpacks to more than
    ``max_unpacked_mb``."""
    named = OFFICE_NAMES.get(path.suffix.lower().lstrip("."), "Office file")
    with path.open("rb") as f:
        head = f.read(len(OLE_MAGIC))
    if head == OLE_MAGIC:
        raise OfficeError(_ole_reason(path, named))
    try:
        with zipfile.ZipFile(path) as package:
            kind = _main_kind(package, named)
            unpacked = sum(info.file_size for info in package.infolist())
    except zipfile.BadZipFile as e:
        raise OfficeError(f"the {named} is damaged or truncated and cannot be read ({e})") from e
    if unpacked > max_unpacked_mb << 20:
        raise OfficeError(
            f"the {OFFICE_NAMES[kind]} unpacks to {unpacked / 2**20:,.0f} MB, more than the {max_unpacked_mb:,} MB "
            "a document may take while it is read: split it into smaller files (or, if it should be small, it is damaged)"
        )
    return kind


def _ole_reason(path: Path, named: str) -> str:
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        encrypted = data.find(ENCRYPTED_STREAM) >= 0
    if encrypted:
        return f"the {named} is password-protected: remove the password (File › Info › Protect) and upload it again"
    return (
        f"this is an old binary Office file (.ppt or .doc) named {path.suffix}: "
        "open it in PowerPoint, Word or LibreOffice, save it as .pptx or .docx (or PDF) and upload that"
    )


def _main_kind(package: zipfile.ZipFile, named: str) -> str:
    try:
        info = package.getinfo(CONTENT_TYPES)
    except KeyError:
        raise OfficeError(f"not a {named}: the zip holds no {CONTENT_TYPES}") from None
    if info.file_size > MAX_CONTENT_TYPES_BYTES:
        raise OfficeError(f"not a {named}: its {CONTENT_TYPES} is implausibly large")
    try:
        types = {e.get("ContentType", "") for e in ElementTree.fromstring(package.read(info))}
    except ElementTree.ParseError as e:
        raise OfficeError(f"the {named} is damaged: its {CONTENT_TYPES} cannot be read ({e})") from e
    for content_type in types:
        if content_type in MAIN_TYPES:
            return MAIN_TYPES[content_type]
    if any("spreadsheetml" in t for t in types):
        raise OfficeError("a spreadsheet is not course text the mentor reads: save the sheet as PDF and upload that")
    raise OfficeError(f"not a {named}: it is another kind of zip package")


# --- slides --------------------------------------------------------------------------


def slides(path: Path) -> Iterator[tuple[str, str, str]]:
    """(label, text, problem) of each slide, in the deck's order."""
    from pptx import Presentation

    for number, slide in enumerate(Presentation(str(path)).slides, start=1):
        texts = list(_slide_texts(slide))
        text = "\n\n".join(t for t in texts if t)
        problem = ""
        if not text and any(_pictures(slide.shapes)):
            problem = "the slide shows only pictures, and pictures are not read (upload the deck as PDF to OCR them)"
        yield f"slide {number}", text, problem


def _slide_texts(slide) -> Iterator[str]:
    title = slide.shapes.title
    if title is not None:
        yield _plain(title.text_frame.text)
    yield from _shape_texts(s for s in slide.shapes if title is None or s.shape_id != title.shape_id)
    notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    if notes is not None and notes.text.strip():
        yield "Notes: " + _plain(notes.text)


def _shape_texts(shapes) -> Iterator[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if _shape_type(shape) == MSO_SHAPE_TYPE.GROUP:
            yield from _shape_texts(shape.shapes)
        elif shape.has_text_frame:
            yield _plain(shape.text_frame.text)
        elif getattr(shape, "has_table", False):
            yield "\n".join(" | ".join(_plain(c.text) for c in row.cells) for row in shape.table.rows)


def _pictures(shapes) -> Iterator[object]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        kind = _shape_type(shape)
        if kind == MSO_SHAPE_TYPE.GROUP:
            yield from _pictures(shape.shapes)
        elif kind == MSO_SHAPE_TYPE.PICTURE or type(shape).__name__ == "PlaceholderPicture":
            yield shape


def _shape_type(shape):
    """The shape's MSO_SHAPE_TYPE, or None where python-pptx does not know
    it: one odd shape must not sink the deck."""
    try:
        return shape.shape_type
    except NotImplementedError:
        return None


def _plain(text: str) -> str:
    # python-pptx gives a line break inside a paragraph as a vertical tab.
    return text.replace("\v", "\n").strip()


# --- Word files ----------------------------------------------------------------------


def word_pages(path: Path) -> Iterator[tuple[str, str, str]]:
    """(label, section, text) of each page Word laid out when it saved the
    file or, in a file without that record, of each section under a heading."""
    import docx

    document = docx.Document(str(path))
    body = document.element.body
    if body.xpath(".//w:lastRenderedPageBreak"):
        yield from _rendered_pages(document)
    else:
        yield from _sections(document)


def _rendered_pages(document) -> Iterator[tuple[str, str, str]]:
    number, lines = 1, []
    for block in document.iter_inner_content():
        for piece in _pieces(block):
            if piece is None:  # Word started a new page here
                yield str(number), "", "\n".join(lines)
                number, lines = number + 1, []
            elif piece:
                lines.append(piece)
    yield str(number), "", "\n".join(lines)


def _pieces(block) -> Iterator[str | None]:
    """The text of a paragraph or a table, with None where a page began."""
    from docx.table import Table

    if isinstance(block, Table):
        # A table is kept whole on the page where it starts; the pages that
        # begin inside it are counted after it.
        yield _table_text(block)
        for _ in block._tbl.xpath(".//w:lastRenderedPageBreak"):
            yield None
        return
    line = []
    for item in block.iter_inner_content():
        for run in getattr(item, "runs", None) or [item]:
            for content in run.iter_inner_content():
                if isinstance(content, str):
                    line.append(content)
                elif type(content).__name__ == "RenderedPageBreak":
                    yield "".join(line).strip()
                    yield None
                    line = []
    yield "".join(line).strip()


def _sections(document) -> Iterator[tuple[str, str, str]]:
    from docx.table import Table

    trail: list[tuple[int, str]] = []
    number, lines, has_body = 1, [], False
    for block in document.iter_inner_content():
        level = None if isinstance(block, Table) else _heading_level(block)
        text = _table_text(block) if isinstance(block, Table) else block.text.strip()
        if level is not None and text:
            if has_body:
                yield f"section {number}", section_trail(title for _, title in trail), "\n".join(lines)
                number, lines, has_body = number + 1, [], False
            trail = [(lvl, title) for lvl, title in trail if lvl < level] + [(level, text)]
        elif text:
            has_body = True
        if text:
            lines.append(text)
    if lines:
        yield f"section {number}", section_trail(title for _, title in trail), "\n".join(lines)


def _heading_level(paragraph) -> int | None:
    """1 for "Heading 1" and so on, None for body text. The document's
    title is body text: in every section's trail it would say nothing."""
    name = paragraph.style.name if paragraph.style is not None else ""
    found = HEADING.fullmatch(name.strip())
    return int(found[1]) if found else None


def _table_text(table) -> str:
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:  # a merged cell is listed once per grid column
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(" ".join(cell.text.split()))
        rows.append(" | ".join(cells))
    return "\n".join(rows)
