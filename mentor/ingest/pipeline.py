"""Ingestion: a course file in, searchable chunks out.

parse and chunk (a producer thread) → embed and write (this thread, in
batches). Parsing and embedding overlap, so a document costs about
max(parse, embed), not the sum. What comes before and after (the hash, the
kept original, the registry) is the library's.
"""

from __future__ import annotations

import queue
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path

from mentor.index.embed import Embedder, OnnxEmbedder
from mentor.index.labels import place
from mentor.index.manifest import IndexSpec
from mentor.index.store import ChunkRecord, Index
from mentor.ingest.chunking import Chunk, Chunker
from mentor.ingest.documents import DocumentError, PageLimits, count_pages, detect_kind, read_pages
from mentor.ingest.ocr import OcrOptions
from mentor.ingest.pages import SUFFIXES, TEXT, Page
from mentor.settings import Settings

# How often progress is reported while pages are read more slowly than a
# batch of chunks fills (OCR takes seconds a page).
REPORT_SECONDS = 1.0


class Outcome(str, Enum):
    ADDED = "added"
    ALREADY = "already indexed"
    REPLACED = "replaced"
    FAILED = "failed"


@dataclass(frozen=True)
class IngestResult:
    name: str
    outcome: Outcome
    doc_id: str | None = None
    pages: int = 0
    chunks: int = 0
    reason: str = ""
    unit: str = "page"  # what was counted as pages: "page", "slide" or "section"

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.FAILED

    def line(self) -> str:
        """One human line, e.g. ``notes.pdf: added (12 pages, 40 chunks)``."""
        if not self.ok:
            return f"{self.name}: failed: {self.reason}"
        detail = f" ({self.pages} {self.unit}s, {self.chunks} chunks)" if self.outcome is not Outcome.ALREADY else ""
        note = f" — {self.reason}" if self.reason else ""
        return f"{self.name}: {self.outcome.value}{detail}{note}"

    def to_json(self) -> dict:
        return {**asdict(self), "outcome": self.outcome.value}


@dataclass(frozen=True)
class Progress:
    """What a UI or the CLI shows while one file is ingested."""

    file: str
    pages_parsed: int
    pages_total: int
    chunks_embedded: int
    pages_ocr: int = 0  # of the pages parsed, those read by OCR
    # Chunks cut from the pages read so far: every chunk once all pages are read.
    chunks_made: int = 0

    @property
    def share_done(self) -> float:
        """How much of the file is done, 0 to 1: reading its pages is the
        first half, embedding its chunks the second (on a CPU the longer)."""
        read = self.pages_parsed / self.pages_total if self.pages_total else 0.0
        embedded = self.chunks_embedded / self.chunks_made if self.chunks_made else 0.0
        return min(1.0, (read + read * embedded) / 2)

    def chunks_line(self) -> str:
        """E.g. "40 of 120 chunks embedded"; the total still growing while
        pages are read ("of 120 so far")."""
        so_far = " so far" if self.pages_parsed < self.pages_total else ""
        return f"{self.chunks_embedded} of {self.chunks_made}{so_far} chunks embedded"

    def by_ocr(self) -> str:
        """" (2 by OCR)" once OCR has read pages (seconds each), else ""."""
        return f" ({self.pages_ocr} by OCR)" if self.pages_ocr else ""


ProgressCallback = Callable[[Progress], None]


class Pipeline:
    """Reads, chunks and embeds course files into one index, with that
    index's embedder and chunking. It writes nothing but the index's points:
    the registry and the kept originals are the library's (``mentor.library``),
    which is the only caller."""

    def __init__(
        self,
        embedder: Embedder,
        chunker: Chunker,
        batch_size: int,
        page_seconds: float,
        ocr: OcrOptions | None = None,
        second: OnnxEmbedder | None = None,
    ):
        self.embedder = embedder
        self.second = second  # the second embedder, when the index has one
        self.chunker = chunker
        self.batch_size = batch_size
        self.limits = PageLimits(seconds=page_seconds)
        self.ocr = ocr

    @classmethod
    def for_spec(
        cls, spec: IndexSpec, embedder: Embedder, settings: Settings, second: OnnxEmbedder | None = None
    ) -> Pipeline:
        chunker = Chunker(
            embedder.tokenize, embedder.max_tokens, spec.chunk_tokens, spec.chunk_overlap, spec.section_context
        )
        ocr = OcrOptions(settings.ocr_languages) if settings.ocr else None
        return cls(embedder, chunker, settings.embed_batch_size, settings.page_seconds, ocr, second)

    def index(self, path: Path, doc_id: str, name: str, index: Index, progress: ProgressCallback | None) -> Tally:
        """Writes the chunks of ``path`` into ``index`` in batches; raises
        DocumentError when the file holds no text to index."""
        tally = Tally(pages=count_pages(path, self.limits))
        chunks = _prefetch(tally.made(self.chunker.chunks(tally.count(read_pages(path, self.limits, self.ocr)))))
        last = None

        def report() -> None:
            nonlocal last
            last = _report(progress, tally.progress(name))

        for batch in _batches(_every(REPORT_SECONDS, chunks, report), self.batch_size):
            texts = [c.indexed_text for c in batch]
            vectors = self.embedder.embed(texts)
            seconds = self.second.embed(texts) if self.second else [None] * len(batch)
            first = tally.chunks
            index.add(
                [_record(doc_id, name, first + i, c, v, s) for i, (c, v, s) in enumerate(zip(batch, vectors, seconds))]
            )
            tally.chunks += len(batch)
            report()
        done = replace(tally.progress(name), pages_parsed=tally.pages)
        if done != last:
            _report(progress, done)
        if tally.chunks == 0:
            raise DocumentError(tally.why_empty())
        return tally


def check_file(path: Path, max_upload_mb: int) -> str:
    """The suffix a file is kept under, after refusing what cannot be course
    material (too large, empty, not what its name says); raises DocumentError."""
    size = path.stat().st_size
    if size > max_upload_mb * 1024 * 1024:
        raise DocumentError(f"the file is {size / 2**20:.1f} MB, over the {max_upload_mb} MB limit (MAX_UPLOAD_MB)")
    kind = detect_kind(path)
    return path.suffix.lower() if kind == TEXT else f".{kind}"


def expand(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given, and the supported files inside folders, in name order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def safe_name(name: str) -> str:
    """A display name with no folders and no control characters.

    NFC, because macOS sends "é" as two code points where Windows sends one:
    the same name must replace the same document. Format characters (Cf)
    go too: a right-to-left override (U+202E) makes "notes<RLO>fdp.exe"
    show as "notesexe.pdf".
    """
    base = unicodedata.normalize("NFC", re.split(r"[\\/]", name)[-1])
    base = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cf")).strip().lstrip(".")
    return base[:200] or "document"


def _record(
    doc_id: str, name: str, chunk_no: int, chunk: Chunk, vector: list[float], second: list[float] | None
) -> ChunkRecord:
    return ChunkRecord(
        doc_id=doc_id,
        file=name,
        chunk_no=chunk_no,
        page=chunk.page.index,
        page_label=chunk.page.label,
        text=chunk.text,
        dense=vector,
        section=chunk.context,
        second=second,
    )


class Tally:
    """What one document's ingestion has seen so far."""

    def __init__(self, pages: int):
        self.pages = pages
        self.parsed = 0
        self.chunks = 0
        self.chunks_made = 0
        self.ocr = 0
        self.unit = "page"
        self.problems: list[Page] = []
        # Page index → the lines of words OCR read there, with their boxes.
        self.words: dict[int, tuple] = {}

    def count(self, pages: Iterable[Page]) -> Iterator[Page]:
        for page in pages:
            self.parsed = page.index
            self.unit = place(page.label).split(" ", 1)[0]
            self.ocr += page.ocr
            if page.words:
                self.words[page.index] = page.words
            if page.problem:
                self.problems.append(page)
            yield page

    def made(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        for chunk in chunks:
            self.chunks_made += 1
            yield chunk

    def progress(self, name: str) -> Progress:
        return Progress(name, self.parsed, self.pages, self.chunks, self.ocr, self.chunks_made)

    def why_empty(self) -> str:
        if self.problems:
            first = self.problems[0]
            return f"no text could be extracted: {place(first.label)}: {first.problem}"
        return f"no extractable text: its {self.unit}s hold no text"

    def note(self) -> str:
        notes = [f"{self.ocr} of {self.pages} pages read by OCR"] if self.ocr else []
        if self.problems:
            first = self.problems[0]
            notes.append(f"{len(self.problems)} {self.unit}(s) skipped, e.g. {place(first.label)}: {first.problem}")
        return "; ".join(notes)


def _report(progress: ProgressCallback | None, report: Progress) -> Progress:
    if progress:
        progress(report)
    return report


def _every(seconds: float, items: Iterable, callback: Callable[[], None]) -> Iterator:
    """Yields ``items``, calling ``callback`` between two of them once
    ``seconds`` have passed since the last call."""
    last = time.monotonic()
    for item in items:
        if time.monotonic() - last >= seconds:
            callback()
            last = time.monotonic()
        yield item


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_DONE = object()


def _prefetch(items: Iterator, depth: int = 256) -> Iterator:
    """Runs ``items`` in a thread, so parsing overlaps embedding.

    The bounded queue keeps memory flat on a 3,000-page PDF; an exception in
    the producer is re-raised here, in the consumer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    threading.Thread(target=produce, daemon=True, name="mentor-parse").start()
    try:
        while (item := q.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not q.empty():  # unblock a producer waiting on a full queue
            q.get_nowait()
