"""A whole course in one file: export and import without re-embedding.

The archive (``.tar.gz``) holds, for each ready document, its original file
and its points (dense and sparse vectors with their payload, one JSON line
each), and ``backup.json``: the index manifest and the registry rows.

A local Qdrant folder cannot be copied while the process has it open, so the
points are read out through the client (``scroll``) and written back through
the store on import. The manifest must match the importing index: vectors
from another embedder or chunking would be silently wrong.

Archive layout (member names are checked exactly on import, so no member can
write outside ``MENTOR_HOME``)::

    files/<sha256>.pdf             the original, as uploaded
    points/<sha256>.jsonl          {"chunk_no", "dense", "sparse": {"indices", "values"}, "payload"}
    course.json                    the course page (name, welcome, examples), when one was saved
    backup.json                    {"format", "created_at", "manifest", "documents": [...]}
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .course import COURSE_FILE, CourseError, CourseInfo
from .ingest import safe_name
from .registry import Document
from .store import ChunkRecord, point_id

log = logging.getLogger(__name__)

FORMAT = 1
HEADER = "backup.json"
SUFFIXES = (".pdf", ".txt", ".md", ".markdown")
MEMBER = re.compile(
    r"(?:backup\.json|course\.json|files/[0-9a-f]{64}\.(?:pdf|txt|md|markdown)|points/[0-9a-f]{64}\.jsonl)"
)
DOC_ID = re.compile(r"[0-9a-f]{64}")
WRITE_BATCH = 256
MAX_HEADER_BYTES = 64 * 1024 * 1024


class BackupError(ValueError):
    """An archive that cannot be imported here; the message says why."""


@dataclass
class ImportSummary:
    added: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    points: int = 0
    course_restored: bool = False

    def lines(self) -> list[str]:
        """One human line per document, e.g. ``notes.pdf: restored``."""
        lines = [f"{name}: restored" for name in self.added]
        lines += [f"{name}: skipped — {why}" for name, why in self.skipped]
        return lines + (["course page: restored"] if self.course_restored else [])

    def to_json(self) -> dict:
        return {
            "added": self.added,
            "skipped": [list(s) for s in self.skipped],
            "points": self.points,
            "course_restored": self.course_restored,
        }


# --- Export --------------------------------------------------------------------


def export_backup(mentor, dest_dir: Path) -> Path:
    """Writes every ready document of ``mentor`` into one new archive in
    ``dest_dir`` and returns its path. A document deleted while the export
    runs is left out, never half in."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = dest_dir / f"mentor-backup-{stamp}.tar.gz"
    partial = dest_dir / f".{target.name}.part"
    exported: list[Document] = []
    try:
        with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".export-") as work, tarfile.open(partial, "w:gz") as tar:
            for doc in mentor.documents():
                if _export_document(mentor, doc, Path(work), tar):
                    exported.append(doc)
            course = mentor.settings.home / COURSE_FILE
            if course.is_file():
                tar.add(course, arcname=COURSE_FILE)
            header = {
                "format": FORMAT,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "manifest": mentor.index_manifest(),
                "documents": [d.to_json() for d in exported],
            }
            _add_bytes(tar, HEADER, json.dumps(header, indent=2, ensure_ascii=False).encode())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %d documents to %s", len(exported), target)
    return target


def _export_document(mentor, doc: Document, work: Path, tar: tarfile.TarFile) -> bool:
    stored = mentor.stored_file(doc.doc_id)
    if stored is None or stored.suffix not in SUFFIXES:
        log.warning("backup: %s has no stored original; left out", doc.name)
        return False
    points = work / f"{doc.doc_id}.jsonl"
    count = 0
    with points.open("w", encoding="utf-8") as out:
        for point in _points_of(mentor, doc):
            if point["chunk_no"] is None:  # not a point ingestion wrote: count it as a change
                continue
            out.write(json.dumps(point) + "\n")
            count += 1
    if count != doc.chunks:
        log.warning("backup: %s changed during the export (%d of %d chunks); left out", doc.name, count, doc.chunks)
        return False
    try:
        tar.add(stored, arcname=f"files/{doc.doc_id}{stored.suffix}")
    except FileNotFoundError:
        log.warning("backup: %s was deleted during the export; left out", doc.name)
        return False
    tar.add(points, arcname=f"points/{doc.doc_id}.jsonl")
    points.unlink()
    return True


def _points_of(mentor, doc: Document) -> Iterator[dict]:
    """The document's points as JSON-ready dicts."""
    chunk_of = {point_id(doc.doc_id, n): n for n in range(doc.chunks)}
    for point in mentor.store.points(doc.doc_id):
        yield {
            "chunk_no": chunk_of.get(point.id),
            "dense": point.dense,
            "sparse": {"indices": point.sparse[0], "values": point.sparse[1]},
            "payload": point.payload,
        }


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(timezone.utc).timestamp())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


# --- Import --------------------------------------------------------------------


def import_backup(mentor, archive: Path) -> ImportSummary:
    """Restores the documents of ``archive`` into the running ``mentor``
    without re-embedding, and returns what was restored and skipped.

    Documents already indexed (same content), or whose name is taken by a
    different indexed version, are skipped: an import never replaces what
    is there. Each document becomes visible only once all its points are
    written. Raises BackupError for an archive that is not a mentor backup,
    is damaged, or was made with other index settings.
    """
    try:
        tar = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BackupError(f"This file is not an AI Mentor backup (a .tar.gz made by Export): {e}") from e
    with tar:
        try:
            members = _checked_members(tar)
            header = _read_header(tar, members)
            _check_manifest(header.get("manifest"), mentor.index_manifest())
            summary = ImportSummary()
            for row in header.get("documents") or []:
                _import_document(mentor, tar, members, row, summary)
            summary.course_restored = _restore_course(mentor, tar, members)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise BackupError(f"The backup is damaged or truncated: {e}") from e
    log.info("imported backup %s: %s", Path(archive).name, "; ".join(summary.lines()) or "nothing")
    return summary


def _checked_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The archive's members by name, after refusing anything but the
    plain files of the layout: no links, folders, absolute or ``..`` paths."""
    members: dict[str, tarfile.TarInfo] = {}
    for m in tar.getmembers():
        if not m.isfile() or not MEMBER.fullmatch(m.name):
            raise BackupError(
                f"The backup holds an unexpected entry {m.name[:200]!r}; it was not made by AI Mentor's Export."
            )
        if m.name in members:
            raise BackupError(f"The backup holds {m.name!r} twice.")
        members[m.name] = m
    if HEADER not in members:
        raise BackupError(f"The archive has no {HEADER}; it was not made by AI Mentor's Export.")
    return members


def _read_header(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict:
    info = members[HEADER]
    if info.size > MAX_HEADER_BYTES:
        raise BackupError(f"{HEADER} is implausibly large ({info.size} bytes).")
    try:
        header = json.loads(tar.extractfile(info).read())
    except ValueError as e:
        raise BackupError(f"{HEADER} is not valid JSON: {e}") from e
    found = header.get("format") if isinstance(header, dict) else None
    if found != FORMAT:
        raise BackupError(f"This backup's format ({found}) is not one this version reads ({FORMAT}).")
    return header


def _check_manifest(found, wanted: dict) -> None:
    if not isinstance(found, dict):
        raise BackupError("The backup does not say what its vectors were made with (no manifest).")
    differences = {k: (found.get(k), v) for k, v in wanted.items() if found.get(k) != v}
    if differences:
        listed = ", ".join(f"{k} was {old!r}, here {new!r}" for k, (old, new) in differences.items())
        raise BackupError(
            f"This backup was made with other index settings ({listed}); its vectors would be wrong here. "
            "Start the mentor with the backup's settings to import it, or upload the original files instead."
        )


def _import_document(mentor, tar, members, row, summary: ImportSummary) -> None:
    try:
        doc = Document(**{k: row[k] for k in ("doc_id", "name", "size", "pages", "chunks", "added_at", "status")})
    except (KeyError, TypeError) as e:
        raise BackupError(f"{HEADER} lists a document without {e}") from e
    name = safe_name(str(doc.name))
    if not (isinstance(doc.doc_id, str) and DOC_ID.fullmatch(doc.doc_id)):
        raise BackupError(f"{HEADER} lists a document with a malformed id: {str(doc.doc_id)[:80]!r}")
    if not all(isinstance(n, int) and n >= 0 for n in (doc.size, doc.pages, doc.chunks)):
        raise BackupError(f"{HEADER} lists {name} with malformed counts.")
    original = next((members[f"files/{doc.doc_id}{s}"] for s in SUFFIXES if f"files/{doc.doc_id}{s}" in members), None)
    points = members.get(f"points/{doc.doc_id}.jsonl")
    if original is None or points is None:
        summary.skipped.append((name, "its file or its vectors are missing from the backup"))
        return
    if mentor.registry.get(doc.doc_id) is not None:
        summary.skipped.append((name, "already indexed"))
        return
    if mentor.registry.ready_with_name(name):
        summary.skipped.append((name, "a different version with this name is already indexed"))
        return

    mentor.registry.begin(doc.doc_id, name, doc.size, doc.added_at)  # invisible until finish()
    try:
        _restore_file(mentor, tar, original, doc.doc_id)
        written = _restore_points(mentor, tar, points, doc, name)
        if written != doc.chunks:
            raise BackupError(f"{name}: the backup holds {written} chunks, its registry row says {doc.chunks}.")
    except BaseException:
        mentor.ingestor.discard(doc.doc_id)
        raise
    mentor.registry.finish(doc.doc_id, doc.pages, doc.chunks, replaces=[])
    summary.added.append(name)
    summary.points += written


def _restore_course(mentor, tar, members) -> bool:
    """Restores the course page when this mentor has none of its own yet
    (an import never overwrites what the instructor set here)."""
    target = mentor.settings.home / COURSE_FILE
    info = members.get(COURSE_FILE)
    if info is None or target.exists() or info.size > MAX_HEADER_BYTES:
        return False
    try:
        data = json.loads(tar.extractfile(info).read())
        course = CourseInfo.from_form(data.get("name", ""), data.get("welcome", ""), data.get("examples") or [])
    except (ValueError, AttributeError, CourseError) as e:
        log.warning("backup: the course page in the backup is unusable (%s); keeping the defaults", e)
        return False
    course.save(mentor.settings.home)
    return True


def _restore_file(mentor, tar, info: tarfile.TarInfo, doc_id: str) -> None:
    """Copies the original into ``files/`` under a name made here from the
    checked id, and checks its bytes hash to that id."""
    suffix = info.name[info.name.rindex(".") :]
    target = mentor.settings.files_dir / f"{doc_id}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest = hashlib.sha256()
    source = tar.extractfile(info)
    with partial.open("wb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != doc_id:
        partial.unlink(missing_ok=True)
        raise BackupError(f"{info.name} does not match its checksum: the backup is damaged.")
    partial.replace(target)


def _restore_points(mentor, tar, info: tarfile.TarInfo, doc: Document, name: str) -> int:
    dimension = mentor.embedder.dimension
    seen: set[int] = set()
    batch: list[ChunkRecord] = []
    for number, line in enumerate(io.TextIOWrapper(tar.extractfile(info), encoding="utf-8"), start=1):
        try:
            record = _record(json.loads(line), doc.doc_id, name, doc.chunks, dimension)
        except (ValueError, KeyError, TypeError) as e:
            raise BackupError(f"{info.name}, line {number}: not a valid point ({e}).") from e
        if record.chunk_no in seen:
            raise BackupError(f"{info.name}: chunk {record.chunk_no} appears twice.")
        seen.add(record.chunk_no)
        batch.append(record)
        if len(batch) == WRITE_BATCH:
            mentor.store.add(batch)
            batch = []
    if batch:
        mentor.store.add(batch)
    return len(seen)


def _record(point: dict, doc_id: str, name: str, chunks: int, dimension: int) -> ChunkRecord:
    chunk_no, payload, sparse = point["chunk_no"], point["payload"], point["sparse"]
    if not isinstance(chunk_no, int) or not 0 <= chunk_no < chunks:
        raise ValueError(f"chunk number {chunk_no!r} is out of range")
    if payload["doc_id"] != doc_id:
        raise ValueError("it belongs to another document")
    dense = [float(x) for x in point["dense"]]
    if len(dense) != dimension:
        raise ValueError(f"its vector has {len(dense)} dimensions, not {dimension}")
    indices, values = [int(i) for i in sparse["indices"]], [float(v) for v in sparse["values"]]
    if len(indices) != len(values):
        raise ValueError("its keyword vector is malformed")
    page = payload["page"]
    if not isinstance(page, int) or isinstance(page, bool):
        raise ValueError("its page is not a number")
    return ChunkRecord(
        doc_id=doc_id,
        file=name,
        chunk_no=chunk_no,
        page=page,
        page_label=str(payload["page_label"]),
        text=str(payload["text"]),
        dense=dense,
        sparse=(indices, values),
    )
