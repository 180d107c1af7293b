"""Reading course files into pages: PDFs with pypdf, plain text and Markdown.

A page keeps both its physical index (what a PDF viewer's ``#page=N`` wants)
and its printed label ("iv", "12"), which is what a student sees on paper.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PDF = "pdf"
TEXT = "text"
TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
SUPPORTED = "PDF, .txt or .md"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Starting a page reader (a fresh interpreter importing pypdf) and opening
# the PDF; the parent has already opened the same file once.
OPEN_SECONDS = 120
# Bookmark titles joined into a page's section trail; deeper levels and
# longer titles are not headings any more.
SECTION_SEPARATOR = " › "
MAX_OUTLINE_DEPTH = 8
MAX_TITLE_CHARS = 150


class DocumentError(ValueError):
    """A file that cannot be read as course material; the message says why."""


@dataclass(frozen=True)
class Page:
    index: int  # 1-based physical page
    label: str  # the printed page label
    text: str
    problem: str = ""  # why the text is missing, when it is
    section: str = ""  # the PDF bookmarks in force here: "Strings › Converting Numbers"


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


def detect_kind(path: Path) -> str:
    """Tells PDF from text by content, so a renamed file cannot pass as a PDF."""
    with path.open("rb") as f:
        head = f.read(1024)
    if not head:
        raise DocumentError("the file is empty (0 bytes)")
    if b"%PDF-" in head:
        return PDF
    if path.suffix.lower() == ".pdf":
        raise DocumentError("not a PDF: the file does not start with a PDF header")
    if path.suffix.lower() in TEXT_SUFFIXES:
        if _looks_like_text(head):
            return TEXT
        raise DocumentError(f"not a text file: it is named {path.suffix} but holds binary data; upload {SUPPORTED}")
    raise DocumentError(f"unsupported file type {path.suffix or '(no extension)'}: upload {SUPPORTED}")


def _looks_like_text(head: bytes) -> bool:
    # UTF-16 text is full of NUL bytes; its BOM is what tells it from binary.
    return head[:2] in UTF16_BOMS or b"\x00" not in head


def read_pages(path: Path, limits: PageLimits = PageLimits()) -> Iterator[Page]:
    """Yields the pages of a course file one at a time (bounded memory)."""
    if detect_kind(path) == PDF:
        yield from _pdf_pages(path, limits)
    else:
        yield from _text_pages(path)


def count_pages(path: Path) -> int:
    if detect_kind(path) == PDF:
        return len(_open_pdf(path).pages)
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


def _pdf_pages(path: Path, limits: PageLimits) -> Iterator[Page]:
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
        worker = context.Process(target=_extract, args=(str(path), start, stop, sender, limits), daemon=True)
        worker.start()
        sender.close()
        try:
            _wait_until_open(receiver)
            while start < stop:
                if not receiver.poll(limits.seconds):
                    problem = f"text extraction took over {limits.seconds:g} s"
                    raise _PageLost(problem)
                try:
                    text, problem = receiver.recv()
                except EOFError:
                    raise _PageLost("text extraction crashed (out of memory?)") from None
                yield Page(start + 1, labels[start], text, problem, sections[start])
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
        trail = (*parents, " ".join(str(item.title).split())[:MAX_TITLE_CHARS])
        page = reader.get_destination_page_number(item)
        if page is not None and page >= 0:
            yield page, SECTION_SEPARATOR.join(trail)


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


def _extract(path: str, start: int, stop: int, sender, limits: PageLimits) -> None:
    """Child process: says it is ready, then sends (text, problem) for pages
    ``start`` to ``stop``."""
    limit = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    pages = _open_pdf(Path(path)).pages
    sender.send(None)
    for i in range(start, stop):
        try:
            sender.send(_page_text(pages[i], limits))
        except MemoryError:
            sender.send(("", f"text extraction needed over {limits.memory_mb} MB of memory"))
        except Exception as e:  # noqa: BLE001 - one unreadable page must not sink the document
            sender.send(("", f"text extraction failed ({type(e).__name__})"))


def _page_text(page, limits: PageLimits) -> tuple[str, str]:
    text = page.extract_text() or ""
    if len(text) > limits.chars:
        return "", f"the page holds {len(text):,} characters of text, more than a real page ({limits.chars:,})"
    return text, ""


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
