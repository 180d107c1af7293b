"""Ingestion: a course file in, searchable chunks out.

hash → dedup → keep the original → parse and chunk (a producer thread) →
embed and write (this thread, in batches) → mark the document ready. Parsing
and embedding overlap, so a document costs about max(parse, embed), not the
sum.
"""

from __future__ import annotations

import logging
import queue
import re
import shutil
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from . import sparse
from .chunking import Chunk, Chunker
from .documents import TEXT_SUFFIXES, DocumentError, Page, PageLimits, count_pages, detect_kind, read_pages, sha256_of
from .embed import Embedder
from .registry import Registry
from .settings import Settings
from .store import ChunkRecord, Store

log = logging.getLogger(__name__)

SUFFIXES = {".pdf", *TEXT_SUFFIXES}


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

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.FAILED

    def line(self) -> str:
        """One human line, e.g. ``notes.pdf: added (12 pages, 40 chunks)``."""
        if not self.ok:
            return f"{self.name}: failed: {self.reason}"
        detail = f" ({self.pages} pages, {self.chunks} chunks)" if self.outcome is not Outcome.ALREADY else ""
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


ProgressCallback = Callable[[Progress], None]


class Ingestor:
    def __init__(self, settings: Settings, embedder: Embedder, store: Store, registry: Registry, chunker: Chunker):
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.registry = registry
        self.chunker = chunker
        # One document at a time: two uploads of the same name must not race
        # to replace each other, and the CPU is saturated by one anyway.
        self._lock = threading.Lock()

    def ingest_paths(self, paths: Iterable[Path], progress: ProgressCallback | None = None) -> list[IngestResult]:
        """Ingests files and folders (searched recursively); one result per file."""
        return [self.ingest(p, progress=progress) for p in expand(paths)]

    def ingest(self, path: Path, name: str | None = None, progress: ProgressCallback | None = None) -> IngestResult:
        """Ingests one file under a display ``name``; never raises for bad input."""
        name = safe_name(name or path.name)
        try:
            self._check_size(path)
            detect_kind(path)
            doc_id = sha256_of(path)
            with self._lock:
                return self._ingest_new(path, name, doc_id, progress)
        except DocumentError as e:
            return IngestResult(name, Outcome.FAILED, reason=str(e))
        except Exception as e:  # noqa: BLE001 - one broken file must not stop a batch
            log.exception("ingesting %s failed", name)
            return IngestResult(name, Outcome.FAILED, reason=f"unexpected error: {e}")

    def recover(self) -> int:
        """Removes what an interrupted ingestion left (rows, points, kept
        files); returns how many stray points went."""
        for doc in self.registry.unfinished():
            self.discard(doc.doc_id)
        ready = [d.doc_id for d in self.registry.ready()]
        self._remove_stray_files(set(ready))
        return self.store.delete_all_except(ready)

    def _remove_stray_files(self, ready: set[str]) -> None:
        """Deletes kept originals that no ready document owns: a crash between
        copying a file and registering it, or mid-copy, leaves them."""
        if not self.settings.files_dir.is_dir():
            return
        for path in self.settings.files_dir.iterdir():
            ours = re.fullmatch(r"\.?([0-9a-f]{64})\.\w+(\.part)?", path.name)
            if ours and (ours[2] or ours[1] not in ready):
                path.unlink(missing_ok=True)

    def stored_file(self, doc_id: str) -> Path | None:
        """The kept original of a document, found by its hash alone."""
        if not re.fullmatch(r"[0-9a-f]{64}", doc_id):
            return None
        return next(self.settings.files_dir.glob(f"{doc_id}.*"), None)

    def _check_size(self, path: Path) -> None:
        limit = self.settings.max_upload_mb
        size = path.stat().st_size
        if size > limit * 1024 * 1024:
            raise DocumentError(f"the file is {size / 2**20:.1f} MB, over the {limit} MB limit (MAX_UPLOAD_MB)")

    def _ingest_new(self, path: Path, name: str, doc_id: str, progress: ProgressCallback | None) -> IngestResult:
        existing = self.registry.get(doc_id)
        if existing and existing.status == "ready":
            same = "" if existing.name == name else f"same content as {existing.name}"
            return IngestResult(name, Outcome.ALREADY, doc_id, existing.pages, existing.chunks, same)
        older = [d.doc_id for d in self.registry.ready_with_name(name)]
        stored = self._keep_original(path, doc_id)
        self.registry.begin(doc_id, name, path.stat().st_size)
        try:
            tally = self._index(stored, doc_id, name, progress)
            if tally.chunks == 0:
                raise DocumentError(tally.why_empty())
        except BaseException:
            self.discard(doc_id)
            raise
        self.registry.finish(doc_id, tally.pages, tally.chunks, replaces=older)
        for old in older:
            self.discard(old)
        outcome = Outcome.REPLACED if older else Outcome.ADDED
        return IngestResult(name, outcome, doc_id, tally.pages, tally.chunks, tally.note())

    def _keep_original(self, path: Path, doc_id: str) -> Path:
        suffix = ".pdf" if detect_kind(path) == "pdf" else path.suffix.lower()
        target = self.settings.files_dir / f"{doc_id}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        # Hidden, so that stored_file()'s "<hash>.*" never finds a half copy.
        partial = target.with_name(f".{target.name}.part")
        shutil.copyfile(path, partial)
        partial.replace(target)
        return target

    def discard(self, doc_id: str) -> None:
        """Removes a document everywhere: registry first, so it vanishes at once."""
        self.registry.remove(doc_id)
        self.store.delete_documents([doc_id])
        stored = self.stored_file(doc_id)
        if stored:
            stored.unlink(missing_ok=True)

    def _index(self, path: Path, doc_id: str, name: str, progress: ProgressCallback | None) -> _Tally:
        tally = _Tally(pages=count_pages(path))
        limits = PageLimits(seconds=self.settings.page_seconds)
        chunks = _prefetch(self.chunker.chunks(tally.count(read_pages(path, limits))))
        last = None
        for batch in _batches(chunks, self.settings.embed_batch_size):
            vectors = self.embedder.embed([c.indexed_text for c in batch])
            first = tally.chunks
            self.store.add([_record(doc_id, name, first + i, c, v) for i, (c, v) in enumerate(zip(batch, vectors))])
            tally.chunks += len(batch)
            last = _report(progress, Progress(name, tally.parsed, tally.pages, tally.chunks))
        done = Progress(name, tally.pages, tally.pages, tally.chunks)
        if done != last:
            _report(progress, done)
        return tally


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


def _record(doc_id: str, name: str, chunk_no: int, chunk: Chunk, vector: list[float]) -> ChunkRecord:
    return ChunkRecord(
        doc_id=doc_id,
        file=name,
        chunk_no=chunk_no,
        page=chunk.page.index,
        page_label=chunk.page.label,
        text=chunk.text,
        dense=vector,
        sparse=sparse.document_vector(chunk.indexed_text),
        section=chunk.context,
    )


class _Tally:
    """What one document's ingestion has seen so far."""

    def __init__(self, pages: int):
        self.pages = pages
        self.parsed = 0
        self.chunks = 0
        self.problems: list[Page] = []

    def count(self, pages: Iterable[Page]) -> Iterator[Page]:
        for page in pages:
            self.parsed = page.index
            if page.problem:
                self.problems.append(page)
            yield page

    def why_empty(self) -> str:
        if self.problems and len(self.problems) == self.parsed:
            return f"no text could be extracted: {self.problems[0].problem}"
        return (
            "no extractable text: it looks like a scanned or image-only PDF; "
            "run OCR on it (e.g. ocrmypdf) and upload the result"
        )

    def note(self) -> str:
        if not self.problems:
            return ""
        first = self.problems[0]
        return f"{len(self.problems)} page(s) skipped, e.g. page {first.label}: {first.problem}"


def _report(progress: ProgressCallback | None, report: Progress) -> Progress:
    if progress:
        progress(report)
    return report


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
