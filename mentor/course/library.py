"""The course library: the one owner of every write to the course's data.

The course's data is the registry, the kept originals and the indexes.
Every write goes through here, under one lock, in an order that leaves a
state the next start can finish or undo, wherever a crash (``kill -9``, a
pod stopped, Ctrl-C) falls:

- **add**: register (ingesting, with its flags: an instructor-only upload
  is never visible to students) → keep the original → write the points →
  keep its text view (a slide deck, a Word file) → ready, with an older
  version of the same name marked deleting in the same transaction →
  delete the older version.
- **delete**: mark deleting → the points → the original → the row.
- **rebuild**: a new index beside the live one (building) → each ready
  document into it, recorded as it finishes → activate it (one transaction)
  → drop the old index. Students search the old index until the swap.
- **restore** (a backup): register → the original, checked against its
  hash → the points → ready.
- **recover** (every start): finish what was being deleted; take the points
  of what was being ingested out again and keep its original for ``resume``;
  delete half-written copies; drop indexes a swap retired.

The instructor's flags are the exception to the one lock: ``set_flags`` is
one registry transaction, serialised by the registry itself, so it takes
effect at once even while an upload batch holds the lock for minutes.

``_erase`` is the one place that deletes an original, and it refuses a
document students can see: only one the instructor deleted, or that a
complete new version replaced (both marked deleting first), or one that
never became ready.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from mentor.course.originals import Originals
from mentor.course.registry import (
    ACTIVE,
    BUILDING,
    DELETING,
    INGESTING,
    INTERRUPTED,
    READY,
    RETIRED,
    Document,
    IndexRow,
    Registry,
)
from mentor.course.views import VIEWED, Views, document_html
from mentor.index.embed import Embedder, Embedders, OnnxEmbedder
from mentor.index.manifest import SCHEMA, IndexSpec, describe
from mentor.index.store import ChunkRecord, Index, Store, StoreLocked, legacy
from mentor.ingest.documents import DocumentError, read_pages, sha256_of
from mentor.ingest.pipeline import (
    IngestResult,
    Outcome,
    Pipeline,
    Progress,
    ProgressCallback,
    check_file,
    expand,
    safe_name,
)
from mentor.settings import Settings

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
# Points written per call when a document is copied or restored.
WRITE_BATCH = 256


class RestoreSkipped(Exception):
    """A backed-up document that is not restored here; the message says why."""


@dataclass
class LiveIndex:
    """An index the library writes to, with what it was built with."""

    name: str
    spec: IndexSpec
    index: Index
    pipeline: Pipeline

    @property
    def embedder(self) -> Embedder:
        return self.pipeline.embedder

    @property
    def second(self) -> OnnxEmbedder | None:
        """The second embedder, whose ranking is fused in; None in an index without one."""
        return self.pipeline.second


@dataclass
class RebuildStatus:
    """What a rebuild has done so far, for the console and the CLI."""

    running: bool = False
    reason: str = ""
    documents_done: int = 0
    documents_total: int = 0
    current: Progress | None = None
    failed: dict[str, str] = field(default_factory=dict)  # file name → why
    finished_at: str = ""

    def line(self) -> str:
        """One human line, e.g. ``rebuilding the index: 3 of 7 documents``."""
        if self.running:
            now = ""
            if self.current:
                now = f"; {self.current.file}: {self.current.pages_parsed}/{self.current.pages_total} pages"
            return f"Rebuilding the index: {self.documents_done} of {self.documents_total} documents done{now}."
        if self.failed:
            names = ", ".join(f"{name} ({why})" for name, why in self.failed.items())
            return (
                f"The rebuild is not finished: {names}. Students still use the previous index. "
                "Fix the cause (or delete that document) and rebuild again; finished documents are kept."
            )
        return f"Index rebuilt at {self.finished_at}." if self.finished_at else ""


class Library:
    """The course's documents and indexes; see the module's docstring."""

    def __init__(self, settings: Settings, registry: Registry, store: Store, embedders: Embedders):
        self.settings = settings
        self.registry = registry
        self.store = store
        self.embedders = embedders
        self.originals = Originals(settings.files_dir)
        self.views = Views(settings.home / "views")
        self.rebuild_status = RebuildStatus()
        # One write at a time: two uploads of the same name must not race to
        # replace each other, and the CPU is saturated by one anyway. A
        # rebuild holds it one document at a time, so uploads and deletes
        # go on meanwhile.
        self._lock = threading.RLock()
        self._rebuilding = threading.Lock()
        self._active: LiveIndex | None = None
        self._building: LiveIndex | None = None

    # --- opening -------------------------------------------------------------------

    def open(self) -> None:
        """Finds the live index (upgrading one made by an earlier version, or
        making the first), then recovers from whatever a crash left."""
        with self._lock:
            self._upgrade_legacy_index()
            active = self.registry.index(ACTIVE)
            if active is None:
                active = self._new_index(self.wanted_spec(), ACTIVE)
            self._active = self._live(active)
            if building := self.registry.index(BUILDING):
                self._building = self._live(building)
            self.recover()

    def wanted_spec(self) -> IndexSpec:
        """What the settings ask the index to be built with."""
        s, second = self.settings, self._wanted_second
        dimension = self.embedders.get(s.embed_model).dimension
        return IndexSpec(
            s.embed_model,
            dimension,
            s.chunk_tokens,
            s.chunk_overlap,
            s.section_context,
            second.name if second else "",
            second.dimension if second else 0,
        )

    @functools.cached_property
    def _wanted_second(self) -> OnnxEmbedder | None:
        """The second embedder the settings ask for (SECOND_EMBED_MODEL), loaded once."""
        name = self.settings.second_embed_model
        return self.embedders.second(name) if name else None

    def _live(self, row: IndexRow) -> LiveIndex:
        spec = row.spec
        second = self.embedders.second(spec.second_embed_model) if spec.second_embed_model else None
        return LiveIndex(
            row.name,
            spec,
            self.store.open(row.name, spec.dimension, spec.second_dimension),
            Pipeline.for_spec(spec, self.embedders.get(spec.embed_model), self.settings, second),
        )

    def _new_index(self, spec: IndexSpec, state: str) -> IndexRow:
        """Registers a new, empty index. Its name carries the course id, so
        two courses on one Qdrant server never share one."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
        name = f"{self.settings.collection}-{self.registry.course_id()}-{stamp}"
        self.registry.add_index(name, spec, state)
        return IndexRow(name, spec, state)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Holds the library's lock for a block: no upload, delete or rebuild
        step runs meanwhile (a backup reads a still course)."""
        with self._lock:
            yield

    # --- reading -------------------------------------------------------------------

    def documents(self) -> list[Document]:
        """Every ready document, the instructor-only ones included (the console's list)."""
        return self.registry.ready()

    def student_documents(self) -> list[Document]:
        """The ready documents students may get answers, sources and files
        from: all but the instructor-only ones. Every student-facing path
        (retrieval, ``/files``, the chat's example questions) asks this."""
        return [d for d in self.registry.ready() if not d.instructor_only]

    def student_doc_ids(self) -> list[str]:
        return [d.doc_id for d in self.student_documents()]

    def assignment_doc_ids(self) -> list[str]:
        return [d.doc_id for d in self.registry.ready() if d.assignment]

    def interrupted(self) -> list[Document]:
        """Uploads a crash cut off; ``resume`` finishes them."""
        return self.registry.with_status(INTERRUPTED)

    def find(self, name_or_id: str) -> Document:
        return self.registry.find(name_or_id)

    def live(self) -> LiveIndex:
        """The index students search now."""
        return self._active

    def stored_file(self, doc_id: str) -> Path | None:
        return self.originals.path(doc_id)

    def stored_view(self, doc_id: str) -> Path | None:
        """The kept text view of a slide deck or a Word file (None: none yet)."""
        return self.views.path(doc_id)

    def ocr_words(self, doc_id: str, page: int) -> list | None:
        """The lines of words OCR read on a scanned page, with their boxes;
        None for a page with a text layer (``Originals.words``)."""
        return self.originals.words(doc_id, page)

    def all_ocr_words(self, doc_id: str) -> dict[int, list]:
        """Every scanned page's words, by page (what a backup carries)."""
        return self.originals.all_words(doc_id)

    def optimize(self) -> None:
        """Builds the live index's search structures for what was written
        since the last time. It stops the whole process while it runs (see
        ``Index.optimize``), so the command line calls it after its writes and
        the app never does."""
        with self._lock:
            self._active.index.optimize()

    def rebuild_reason(self) -> str:
        """Why the live index should be rebuilt, or "" when it need not be."""
        wanted, active = self.wanted_spec(), self._active
        if differences := active.spec.differences(wanted):
            return f"the index was built with other settings ({describe(differences)})"
        if self._building is not None:
            return "a rebuild was interrupted"
        docs = self.documents()
        if docs and active.index.count() == 0:
            return f"the index holds none of the {len(docs)} documents' chunks"
        return ""

    # --- adding --------------------------------------------------------------------

    def add_paths(
        self, paths: Iterable[Path], progress: ProgressCallback | None = None, *, instructor_only: bool = False
    ) -> list[IngestResult]:
        """Adds files and folders (searched recursively); one result per file."""
        return [self.add(p, progress=progress, instructor_only=instructor_only) for p in expand(paths)]

    def add(
        self,
        path: Path,
        name: str | None = None,
        progress: ProgressCallback | None = None,
        *,
        instructor_only: bool = False,
    ) -> IngestResult:
        """Adds one file under a display ``name``, or replaces the document of
        that name once the new version is complete. ``instructor_only`` is
        written with the row that registers it: students never see it, not
        even while it is being indexed. Never raises for bad input."""
        name = safe_name(name or path.name)
        try:
            suffix = check_file(path, self.settings.max_upload_mb)
            doc_id = sha256_of(path)
            with self._lock:
                return self._add(path, suffix, doc_id, name, progress, instructor_only)
        except DocumentError as e:
            return IngestResult(name, Outcome.FAILED, reason=str(e))
        except Exception as e:  # noqa: BLE001 - one broken file must not stop a batch
            log.exception("adding %s failed", name)
            return IngestResult(name, Outcome.FAILED, reason=f"unexpected error: {e}")

    def _add(self, path: Path, suffix: str, doc_id: str, name: str, progress, instructor_only: bool) -> IngestResult:
        existing = self.registry.get(doc_id)
        if existing and existing.status == READY:
            same = "" if existing.name == name else f"same content as {existing.name}"
            if instructor_only and not existing.instructor_only:
                self.registry.set_flags(doc_id, True, existing.assignment)
                same = ", ".join(filter(None, [same, "now instructor only"]))
            return IngestResult(name, Outcome.ALREADY, doc_id, existing.pages, existing.chunks, same)
        if existing and existing.status == DELETING:
            self._erase(existing)
        older = [d for d in self.registry.ready_with_name(name) if d.doc_id != doc_id]
        # A new version keeps the instructor's flags (a corrected solution
        # manual stays instructor-only), read in the same transaction.
        self.registry.begin(doc_id, name, path.stat().st_size, instructor_only=instructor_only, inherit=True)
        stored = self.originals.keep(path, doc_id, suffix)
        live = self._active
        try:
            tally = live.pipeline.index(stored, doc_id, name, live.index, progress)
            self._keep_view(stored, doc_id, name)
        except Exception:
            # Never ready, so never seen: nothing of it is kept. (A Ctrl-C or
            # a kill is no Exception: recovery keeps its original instead.)
            self._erase(self.registry.get(doc_id))
            raise
        self.originals.keep_words(doc_id, tally.words)
        self.registry.finish(doc_id, tally.pages, tally.chunks, replaces=[d.doc_id for d in older])
        for old in older:
            self._erase(replace(old, status=DELETING))
        outcome = Outcome.REPLACED if older else Outcome.ADDED
        return IngestResult(name, outcome, doc_id, tally.pages, tally.chunks, tally.note(), tally.unit)

    def resume(self, progress: ProgressCallback | None = None) -> list[IngestResult]:
        """Finishes the uploads a crash cut off, from their kept originals."""
        results = []
        for doc in self.interrupted():
            stored = self.originals.path(doc.doc_id)
            if stored is not None:
                results.append(self.add(stored, doc.name, progress, instructor_only=doc.instructor_only))
        return results

    # --- text views ----------------------------------------------------------------

    def _keep_view(self, stored: Path, doc_id: str, name: str) -> None:
        """Renders the text view of a slide deck or a Word file, once (a
        browser cannot show the original; showing the view then costs a read)."""
        if stored.suffix in VIEWED:
            pages = read_pages(stored, self._active.pipeline.limits)
            self.views.keep(doc_id, document_html(name, doc_id, VIEWED[stored.suffix], pages))

    def keep_missing_views(self) -> int:
        """Renders the views a course from before kept views lacks, one
        document at a time under the lock; returns how many. The app runs it
        in the background at start; until then such a file says so."""
        done = 0
        for doc in self.documents():
            with self._lock:
                stored = self.originals.path(doc.doc_id)
                if stored is None or stored.suffix not in VIEWED or self.views.path(doc.doc_id):
                    continue
                try:
                    self._keep_view(stored, doc.doc_id, doc.name)
                    done += 1
                except DocumentError as e:
                    log.warning("the text view of %s cannot be made: %s", doc.name, e)
        return done

    # --- flags ---------------------------------------------------------------------

    def set_flags(self, name_or_id: str, *, instructor_only: bool, assignment: bool) -> Document:
        """Marks a document instructor-only (students never get it) and/or an
        assignment (the guide style can apply to it); returns it as it is now.
        Takes effect for the next question and the next file request, which
        read the flags each time, even while an upload batch runs: this is
        one registry transaction, not behind the library's lock."""
        doc = self.registry.find(name_or_id)
        self.registry.set_flags(doc.doc_id, instructor_only, assignment)
        return replace(doc, instructor_only=instructor_only, assignment=assignment)

    # --- deleting ------------------------------------------------------------------

    def delete(self, name_or_id: str) -> Document:
        """Deletes a document: invisible at once, then its points and its file."""
        with self._lock:
            doc = self.registry.find(name_or_id)
            self.registry.set_status(doc.doc_id, DELETING)
            self._erase(replace(doc, status=DELETING))
        return doc

    def _erase(self, doc: Document | None) -> None:
        """Removes a document everywhere: its points in every index, its kept
        original, its row. The only place an original is deleted."""
        if doc is None:
            return
        if doc.status == READY:
            raise RuntimeError(f"refusing to erase {doc.name}, which students can see: mark it deleting first")
        for live in self._indexes():
            live.index.delete_documents([doc.doc_id])
        self.originals.delete(doc.doc_id)
        self.views.delete(doc.doc_id)
        self.registry.remove(doc.doc_id)

    def _indexes(self) -> list[LiveIndex]:
        return [live for live in (self._active, self._building) if live is not None]

    # --- recovery ------------------------------------------------------------------

    def recover(self) -> None:
        """Puts the course back in order after a crash (see the module's docstring)."""
        with self._lock:
            for doc in self.registry.with_status(DELETING):
                log.warning("finishing the deletion of %s, cut off by a restart", doc.name)
                self._erase(doc)
            for doc in self.registry.with_status(INGESTING):
                self._interrupt(doc)
            self.views.sweep_partials()
            if gone := self.originals.sweep_partials():
                log.warning("removed %d half-written copies left by a crash", gone)
            for row in self.registry.indexes(RETIRED):
                self.store.drop(row.name)
                self.registry.remove_index(row.name)
            known = [d.doc_id for d in self._all_documents()]
            for path in self.originals.unowned(known):
                log.warning("%s is in %s but belongs to no document; it is left alone", path.name, path.parent)

    def _interrupt(self, doc: Document) -> None:
        """An ingestion a crash cut off: its points go, its original stays for
        ``resume`` (an upload the instructor was never told failed)."""
        for live in self._indexes():
            live.index.delete_documents([doc.doc_id])
        if self.originals.path(doc.doc_id) is None:
            self.registry.remove(doc.doc_id)  # cut off before its copy was whole: nothing was kept
        else:
            log.warning("the upload of %s was cut off; it will be resumed", doc.name)
            self.registry.set_status(doc.doc_id, INTERRUPTED)

    def _all_documents(self) -> list[Document]:
        return [d for status in (READY, INGESTING, INTERRUPTED, DELETING) for d in self.registry.with_status(status)]

    # --- rebuilding ----------------------------------------------------------------

    def rebuild(self, progress: ProgressCallback | None = None, reason: str = "requested") -> RebuildStatus:
        """Rebuilds the index from the kept originals with the current
        settings, beside the live one, and swaps them when every document is
        in. A document that fails is reported and keeps its old chunks (no
        swap happens); a rebuild run again resumes where this one stopped."""
        if not self._rebuilding.acquire(blocking=False):
            raise RebuildRunning("A rebuild is already running; its progress is in the instructor console.")
        try:
            self.rebuild_status = RebuildStatus(running=True, reason=reason)
            target = self._rebuild_target()
            failed: set[str] = set()
            while todo := self._not_rebuilt(target, failed):
                self.rebuild_status.documents_total = self.rebuild_status.documents_done + len(todo)
                for doc in todo:
                    if not self._rebuild_document(target, doc, progress):
                        failed.add(doc.doc_id)
            self.rebuild_status.finished_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            return self.rebuild_status
        finally:
            self.rebuild_status.running = False
            self.rebuild_status.current = None
            self._rebuilding.release()

    def _rebuild_target(self) -> LiveIndex:
        """The index a rebuild fills: the one an interrupted rebuild left, if it
        was meant for the same settings, else a new one."""
        with self._lock:
            wanted = self.wanted_spec()
            if self._building is not None and self._building.spec == wanted:
                return self._building
            if self._building is not None:
                self._drop(self._building.name)
            self._building = self._live(self._new_index(wanted, BUILDING))
            return self._building

    def _not_rebuilt(self, target: LiveIndex, failed: set[str]) -> list[Document]:
        """The ready documents still to rebuild; when there are none left (and
        none failed), the swap, under the same lock, so nothing slips between."""
        with self._lock:
            done = self.registry.rebuilt(target.name)
            todo = [d for d in self.documents() if d.doc_id not in done and d.doc_id not in failed]
            if not todo and not failed:
                self._activate(target)
            return todo

    def _rebuild_document(self, target: LiveIndex, doc: Document, progress) -> bool:
        """Rebuilds one document into ``target``; False when it failed."""

        def report(p: Progress) -> None:
            self.rebuild_status.current = p
            if progress:
                progress(p)

        with self._lock:
            if (current := self.registry.get(doc.doc_id)) is None or current.status != READY:
                return True  # deleted or replaced meanwhile: nothing to do
            target.index.delete_documents([doc.doc_id])  # what an interrupted run left of it
            stored = self.originals.path(doc.doc_id)
            try:
                if stored is None:
                    raise DocumentError(f"its original is missing from {self.originals.folder}")
                tally = target.pipeline.index(stored, doc.doc_id, doc.name, target.index, report)
            except Exception as e:  # noqa: BLE001 - reported; the document keeps its old chunks
                log.warning("rebuilding %s failed: %s", doc.name, e)
                target.index.delete_documents([doc.doc_id])
                self.rebuild_status.failed[doc.name] = str(e)
                return False
            if tally.words:
                self.originals.keep_words(doc.doc_id, tally.words)
            self.registry.record_rebuilt(target.name, doc.doc_id, tally.pages, tally.chunks)
            self.rebuild_status.documents_done += 1
            return True

    def _activate(self, target: LiveIndex) -> None:
        old = self._active
        self.registry.activate(target.name)
        self._active, self._building = target, None
        log.info("the rebuilt index %s is live; dropping %s", target.name, old.name)
        self._drop(old.name)
        self.embedders.keep_only({target.spec.embed_model, target.spec.second_embed_model, self.settings.embed_model})

    def _drop(self, name: str) -> None:
        self.store.drop(name)
        self.registry.remove_index(name)

    def rebuild_in_background(self, reason: str) -> threading.Thread | None:
        """Starts ``rebuild`` in a thread (the console's button); None when
        one is already running."""
        if self._rebuilding.locked():
            return None
        return _in_thread("mentor-rebuild", lambda: self._rebuild_logged(reason))

    def catch_up_in_background(self) -> threading.Thread:
        """What the app does at start, in a thread: finish the uploads a crash
        cut off, then rebuild the index if it needs it. Students are served
        from the live index meanwhile."""

        def run() -> None:
            for result in self.resume():
                log.info("resumed upload: %s", result.line())
            if made := self.keep_missing_views():
                log.info("made the text views of %d slide decks and Word files added by an earlier version", made)
            if reason := self.rebuild_reason():
                log.info("rebuilding the index in the background: %s", reason)
                self._rebuild_logged(reason)

        return _in_thread("mentor-catch-up", run)

    def _rebuild_logged(self, reason: str) -> None:
        try:
            log.info(self.rebuild(reason=reason).line())
        except RebuildRunning:
            pass


    # --- restoring -----------------------------------------------------------------

    def restore(
        self, doc: Document, original: BinaryIO, suffix: str, records: Iterable[ChunkRecord], words: dict[int, list] | None = None
    ) -> int:
        """Restores one backed-up document (its original, its chunks, whose
        vectors the caller checked were made like this index's, and the
        words OCR read on its scanned pages) and returns how many chunks
        were written. Raises RestoreSkipped when it is already here, or its
        name is taken by another version."""
        with self._lock:
            existing = self.registry.get(doc.doc_id)
            if existing and existing.status == READY:
                raise RestoreSkipped("already indexed")
            if self.registry.ready_with_name(doc.name):
                raise RestoreSkipped("a different version with this name is already indexed")
            if existing:
                self._erase(replace(existing, status=DELETING))  # an upload a crash cut off: the backup wins
            self.registry.begin(
                doc.doc_id,
                doc.name,
                doc.size,
                doc.added_at,
                instructor_only=doc.instructor_only,
                assignment=doc.assignment,
            )
            try:
                stored = self.originals.keep_stream(original, doc.doc_id, suffix)
                self.originals.keep_words(doc.doc_id, words or {})
                written = self._write_all(self._active.index, records)
                self._keep_view(stored, doc.doc_id, doc.name)
                if written != doc.chunks:
                    raise ValueError(f"{doc.name}: the backup holds {written} chunks, its registry row says {doc.chunks}")
            except Exception:
                self._erase(self.registry.get(doc.doc_id))
                raise
            self.registry.finish(doc.doc_id, doc.pages, doc.chunks)
            return written

    @staticmethod
    def _write_all(index: Index, records: Iterable[ChunkRecord]) -> int:
        batch: list[ChunkRecord] = []
        written = 0
        for record in records:
            batch.append(record)
            if len(batch) == WRITE_BATCH:
                index.add(batch)
                written, batch = written + len(batch), []
        if batch:
            index.add(batch)
        return written + len(batch)

    # --- upgrading -----------------------------------------------------------------

    def _upgrade_legacy_index(self) -> None:
        """Copies the index of an earlier version (qdrant-client's local mode,
        with ``manifest.json`` beside it) into a Qdrant Edge index, without
        re-embedding; the old folder goes once the copy is live. A crash
        mid-way leaves the old index; the next start copies again."""
        manifest = self.settings.home / "manifest.json"
        folder = self.settings.legacy_qdrant_path
        if self.registry.index(ACTIVE) is not None or not manifest.is_file():
            return
        if self.settings.qdrant_url:
            client, folder = self.store.client, None
        elif folder.is_dir():
            client = legacy.open_local(folder)
        else:
            return
        try:
            if not legacy.has_index(client):
                return
            spec = replace(IndexSpec.from_json(manifest.read_text()), schema=SCHEMA)
            for row in self.registry.indexes(BUILDING):  # an earlier copy a crash cut off
                self._drop(row.name)
            target = self._live(self._new_index(spec, BUILDING))
            log.info("upgrading the index of an earlier version into %s (no re-embedding)", target.name)
            for doc in self.registry.ready():
                chunks = self._write_all(target.index, legacy.records(client, doc.doc_id, doc.name, doc.chunks))
                self.registry.record_rebuilt(target.name, doc.doc_id, doc.pages, chunks)
            log.info("building the upgraded index's search structures (once; the app is not serving yet)")
            target.index.optimize()
            self.registry.activate(target.name)
        finally:
            if folder is not None:
                client.close()
        manifest.unlink()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            log.info("the old collection %r on the Qdrant server is no longer used by this course", legacy.COLLECTION)


def _in_thread(name: str, work: Callable[[], None]) -> threading.Thread:
    """Runs ``work`` in a daemon thread, logging what it raises: a crash of
    background work must not take the app down (the next start resumes it)."""

    def run() -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 - logged; the live index stays as it was
            log.exception("%s failed; students keep the live index", name)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


class RebuildRunning(RuntimeError):
    """A second rebuild was asked for while one runs."""


class HomeLock:
    """One process per course: an exclusive lock on ``MENTOR_HOME/.lock``,
    released by the kernel when the process ends, however it ends."""

    def __init__(self, home: Path):
        self.path = Path(home) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise StoreLocked(
                f"Another AI Mentor process is already using the course in {Path(home).resolve()}. "
                "Stop that process first: a course opens in one process only "
                "(run another course with another MENTOR_HOME)."
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
