"""Reading course files into pages: PDFs with pypdf (and OCR for scanned
pages), slides and Word files (``office``), plain text and Markdown.

A page keeps both its physical index (what a PDF viewer's ``#page=N`` wants)
and its printed label ("iv", "12"), which is what a student sees on paper.
A slide's label is "slide 12" and a Word section's "section 3": a label
that names its unit is shown as it is, a bare one is a page's (``place``).
PDFs and Office files are read in a child process that is killed when it
outruns its time or memory.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing
import resource
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from mentor.ingest import office
from mentor.ingest.ocr import OcrOptions, OcrUnavailable, needs_ocr, read_page
from mentor.ingest.pages import (
    DOCX,
    OFFICE_NAMES,
    OFFICE_SUFFIXES,
    PDF,
    PPTX,
    SUPPORTED,
    TEXT,
    TEXT_SUFFIXES,
    Page,
    section_trail,
)

log = logging.getLogger(__name__)

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Starting a page reader (a fresh interpreter importing pypdf) and opening
# the PDF; the parent has already opened the same file once.
OPEN_SECONDS = 120
# Bookmarks deeper than this are not headings any more.
MAX_OUTLINE_DEPTH = 8


class DocumentError(ValueError):
    """A file that cannot be read as course material; the message says why."""


@dataclass(frozen=True)
class PageLimits:
    """Bounds on extracting one page: a hostile or broken page can make
    pypdf loop for minutes or eat gigabytes."""

    seconds: float = 30.0
    memory_mb: int = 4096
    # A dense printed page holds about 5,000 characters; millions come from
    # a broken or hostile content stream, and would swamp the chunker.
    chars: int = 200_000
    # pypdf keeps every parsed page cached; a fresh reader every few hundred
    # pages keeps a 3,000-page manual's memory flat.
    pages_per_worker: int = 500


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_kind(path: Path, limits: PageLimits | None = None) -> str:
    """Tells PDF, slides, Word and text apart by content, so a renamed file
    cannot pass as what it is not."""
    with path.open("rb") as f:
        head = f.read(1024)
    if not head:
        raise DocumentError("the file is empty (0 bytes)")
    if b"%PDF-" in head:
        return PDF
    if path.suffix.lower() == ".pdf":
        raise DocumentError("not a PDF: the file does not start with a PDF header")
    if path.suffix.lower() in OFFICE_SUFFIXES:

        try:
            return office.check(path, (limits or PageLimits()).memory_mb)
        except office.OfficeError as e:
            raise DocumentError(str(e)) from None
    if path.suffix.lower() in TEXT_SUFFIXES:
        if _looks_like_text(head):
            return TEXT
        raise DocumentError(f"not a text file: it is named {path.suffix} but holds binary data; upload {SUPPORTED}")
    hint = OLD_FORMATS.get(path.suffix.lower(), "")
    raise DocumentError(f"unsupported file type {path.suffix or '(no extension)'}: upload {SUPPORTED}{hint}")


OLD_FORMATS = {
    ".ppt": " (save the slides as .pptx or PDF)",
    ".doc": " (save the document as .docx or PDF)",
    ".odp": " (save the slides as .pptx or PDF)",
    ".odt": " (save the document as .docx or PDF)",
}


def _looks_like_text(head: bytes) -> bool:
    # UTF-16 text is full of NUL bytes; its BOM is what tells it from binary.
    return head[:2] in UTF16_BOMS or b"\x00" not in head


def read_pages(path: Path, limits: PageLimits = PageLimits(), ocr: OcrOptions | None = None) -> Iterator[Page]:
    """Yields the pages of a course file one at a time (bounded memory).
    ``ocr``: how scanned PDF pages are read; None skips them, with a note."""
    kind = detect_kind(path, limits)
    if kind == PDF:
        yield from _pdf_pages(path, limits, ocr)
    elif kind in (PPTX, DOCX):
        yield from _office_pages(path, kind, limits)
    else:
        yield from _text_pages(path)


def count_pages(path: Path, limits: PageLimits = PageLimits()) -> int:
    kind = detect_kind(path, limits)
    if kind == PDF:
        return len(_open_pdf(path).pages)
    if kind in (PPTX, DOCX):
        return len(_office_pages(path, kind, limits))
    return len(_decode_text(path.read_bytes()).split("\f"))


def _open_pdf(path: Path):
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError("the PDF is password-protected: remove the password and upload it again")
        reader.pages  # forces the page tree to be read, where corruption shows
        return reader
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise DocumentError(f"the PDF is damaged or truncated and cannot be read ({e})") from e


def _pdf_pages(path: Path, limits: PageLimits, ocr: OcrOptions | None) -> Iterator[Page]:
    """Extracts pages in a child process that is killed when one page
    outruns its limits; that page comes back empty with the reason, and a
    fresh child goes on from the next page."""
    reader = _open_pdf(path)
    labels = reader.page_labels
    sections = page_sections(reader)
    # spawn, not fork: the parent holds torch and llama.cpp threads.
    context = multiprocessing.get_context("spawn")
    start = 0
    while start < len(labels):
        receiver, sender = context.Pipe(duplex=False)
        stop = min(start + limits.pages_per_worker, len(labels))
        worker = context.Process(target=_extract, args=(str(path), start, stop, sender, limits, ocr), daemon=True)
        worker.start()
        sender.close()
        try:
            _wait_until_open(receiver)
            while start < stop:
                if not receiver.poll(limits.seconds):
                    problem = f"text extraction took over {limits.seconds:g} s"
                    raise _PageLost(problem)
                try:
                    text, problem, words = receiver.recv()
                except EOFError:
                    raise _PageLost("text extraction crashed (out of memory?)") from None
                yield Page(start + 1, labels[start], text, problem, sections[start], bool(words), words)
                start += 1
        except _PageLost as lost:
            log.warning("%s, page %d: %s", path.name, start + 1, lost)
            yield Page(start + 1, labels[start], "", str(lost), sections[start])
            start += 1
        finally:
            worker.kill()
            worker.join()
            receiver.close()


def page_sections(reader) -> list[str]:
    """The bookmark trail in force on each page, "" before the first one
    and in a PDF without bookmarks. A page where a section starts carries
    that section. A broken outline gives no sections, not a failed upload."""
    try:
        starts = sorted(_outline_starts(reader, reader.outline, ()), key=lambda start: start[0])
    except Exception as e:  # noqa: BLE001 - bookmarks are a bonus; the text is what matters
        log.warning("ignoring the PDF's bookmarks, which cannot be read (%s: %s)", type(e).__name__, e)
        starts = []
    sections, current, i = [], "", 0
    for page in range(len(reader.pages)):
        while i < len(starts) and starts[i][0] <= page:
            current = starts[i][1]
            i += 1
        sections.append(current)
    return sections


def _outline_starts(reader, items: list, parents: tuple[str, ...], depth: int = 0) -> Iterator[tuple[int, str]]:
    """(0-based page, trail) of each bookmark. pypdf lists a bookmark's
    children as a list right after it."""
    trail = parents
    for item in items:
        if isinstance(item, list):
            if depth < MAX_OUTLINE_DEPTH:
                yield from _outline_starts(reader, item, trail, depth + 1)
            continue
        trail = (*parents, str(item.title))
        page = reader.get_destination_page_number(item)
        if page is not None and page >= 0:
            yield page, section_trail(trail)


class _PageLost(Exception):
    pass


def _wait_until_open(receiver) -> None:
    """Waits for the child to have started and opened the PDF, so that a
    page's time limit counts the page alone, not process start-up (seconds
    on a busy machine)."""
    if not receiver.poll(OPEN_SECONDS):
        raise DocumentError(f"the PDF could not be opened for reading within {OPEN_SECONDS} s")
    try:
        receiver.recv()
    except EOFError:
        raise DocumentError("the PDF could not be opened for reading (the reader crashed)") from None


def _extract(path: str, start: int, stop: int, sender, limits: PageLimits, ocr: OcrOptions | None) -> None:
    """Child process: says it is ready, then sends (text, problem, OCR's
    words) for pages ``start`` to ``stop``."""
    _limit_memory(limits)
    pages = _open_pdf(Path(path)).pages
    sender.send(None)
    for i in range(start, stop):
        try:
            sender.send(_page_text(Path(path), i, pages[i], limits, ocr))
        except MemoryError:
            sender.send(("", f"text extraction needed over {limits.memory_mb} MB of memory", ()))
        except Exception as e:  # noqa: BLE001 - one unreadable page must not sink the document
            sender.send(("", f"text extraction failed ({type(e).__name__})", ()))


def _limit_memory(limits: PageLimits) -> None:
    limit = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _page_text(path: Path, index: int, page, limits: PageLimits, ocr: OcrOptions | None) -> tuple[str, str, tuple]:
    """The page's text layer or, for a scanned page, what OCR reads on it
    and its words with their boxes (empty for a text layer)."""
    text = page.extract_text() or ""
    if len(text) > limits.chars:
        return "", f"the page holds {len(text):,} characters of text, more than a real page ({limits.chars:,})", ()
    if not needs_ocr(page, text):
        return text, "", ()
    if ocr is None:
        return text, "the page has no text layer (a scan?), and OCR is off (OCR=0)", ()
    try:
        read, words = read_page(path, index, ocr, limits.seconds)
    except OcrUnavailable as e:
        return text, f"the page has no text layer (a scan?), and {e}", ()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return text, f"the page has no text layer, and OCR failed ({e})", ()
    if not read:
        return text, "the page has no text layer, and OCR found no text on it", ()
    return read, "", words


# --- slides and Word files -------------------------------------------------------------


def _office_pages(path: Path, kind: str, limits: PageLimits) -> tuple[Page, ...]:
    """Every page of an Office file, read once in a child process (python-pptx
    and python-docx load the whole package) and remembered for the next call
    with the same file: ingestion counts the pages, then reads them, and the
    document view reads them again."""
    stat = path.stat()
    return _office_pages_of(str(path), stat.st_size, stat.st_mtime_ns, kind, limits)


@functools.lru_cache(maxsize=4)
def _office_pages_of(path: str, size: int, mtime_ns: int, kind: str, limits: PageLimits) -> tuple[Page, ...]:

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_read_office, args=(path, kind, sender, limits), daemon=True)
    worker.start()
    sender.close()
    try:
        if not receiver.poll(OPEN_SECONDS):
            raise DocumentError(f"reading the {OFFICE_NAMES[kind]} took over {OPEN_SECONDS} s")
        try:
            pages, problem = receiver.recv()
        except EOFError:
            raise DocumentError(f"reading the {OFFICE_NAMES[kind]} crashed (out of memory?)") from None
    finally:
        worker.kill()
        worker.join()
        receiver.close()
    if problem:
        raise DocumentError(problem)
    return pages


def _read_office(path: str, kind: str, sender, limits: PageLimits) -> None:
    """Child process: sends (pages, "") or ((), why not)."""

    _limit_memory(limits)
    name = OFFICE_NAMES[kind]
    try:
        sender.send((tuple(_office_page_list(Path(path), kind, limits)), ""))
    except MemoryError:
        sender.send(((), f"reading the {name} needed over {limits.memory_mb} MB of memory: split it into smaller files"))
    except Exception as e:  # noqa: BLE001 - python-pptx and python-docx raise many kinds for a broken file
        sender.send(((), f"the {name} is damaged and cannot be read ({type(e).__name__}: {str(e)[:200]})"))


def _office_page_list(path: Path, kind: str, limits: PageLimits) -> Iterator[Page]:

    if kind == PPTX:
        rows = ((label, "", text, problem) for label, text, problem in office.slides(path))
    else:
        rows = ((label, section, text, "") for label, section, text in office.word_pages(path))
    for index, (label, section, text, problem) in enumerate(rows, start=1):
        page = Page(index, label, text, problem, section)
        if len(text) > limits.chars:
            too_long = f"it holds {len(text):,} characters of text, more than a real page ({limits.chars:,})"
            page = replace(page, text="", problem=too_long)
        yield page


def _text_pages(path: Path) -> Iterator[Page]:
    # A form feed is the page break of plain-text documents.
    for i, text in enumerate(_decode_text(path.read_bytes()).split("\f")):
        yield Page(index=i + 1, label=str(i + 1), text=text)


def _decode_text(data: bytes) -> str:
    for encoding in ("utf-16",) if data[:2] in UTF16_BOMS else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise DocumentError("the text file's encoding could not be recognised: save it as UTF-8")
    return str(best)
