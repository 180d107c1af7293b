"""A whole course in one file: export and import without re-embedding.

The archive (``.tar.gz``) holds, for each ready document, its original file
and its chunks (dense vector and payload, one JSON line each), and
``backup.json``: the live index's spec and the registry rows.

The points are read out of the live index and restored through the library
(``Library.restore``), under the same lock and in the same order of steps as
an upload; the keyword vectors are made again on the way in. The spec must
match the importing index: vectors from another embedder or chunking would
be silently wrong. The same archive imports into an embedded index and onto
a Qdrant server alike.

Archive layout (member names are checked exactly on import, so no member can
write outside ``MENTOR_HOME``)::

    files/<sha256>.pdf             the original, as uploaded (.pdf, .pptx, .docx, .txt, .md)
    points/<sha256>.jsonl          {"chunk_no", "dense", "payload"}, and "second" from an index with a
                                   second embedder (format 1 also had "sparse", ignored now)
    words/<sha256>.json            {page index: lines of [word, x0, y0, x1, y1]}: what OCR read on the
                                   document's scanned pages, for the viewer's highlights (format 4)
    course.json                    the course page (name, welcome, examples, teaching), when one was saved
    instructor.json                {"verified": [...], "requests": [...]}: the verified answers and the
                                   students' open questions to the instructor (format 3)
    backup.json                    {"format", "created_at", "manifest", "documents": [...]}

The students' question log is not in it: it is theirs, kept only for the
course's retention, and an archive would outlive that.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from mentor.course.info import COURSE_FILE, CourseError, CourseInfo, Teaching
from mentor.course.library import RestoreSkipped
from mentor.course.originals import DOC_ID
from mentor.course.registry import Document
from mentor.index.manifest import IndexSpec, describe
from mentor.index.store import ChunkRecord, Hit
from mentor.ingest.pages import SUFFIXES
from mentor.ingest.pipeline import safe_name

log = logging.getLogger(__name__)

# 2: no keyword vectors (Qdrant's BM25 makes them again). 3: instructor.json
# and the documents' flags. 4: the words OCR read on scanned pages. 1 to 3
# are still read (a scan restored from one shows its pages unmarked until a
# rebuild reads them again).
FORMAT = 4
READABLE_FORMATS = (1, 2, 3, 4)
HEADER = "backup.json"
INSTRUCTOR = "instructor.json"
MEMBER = re.compile(
    r"(?:backup\.json|course\.json|instructor\.json"
    rf"|files/[0-9a-f]{{64}}\.(?:{'|'.join(sorted(s.lstrip('.') for s in SUFFIXES))})|points/[0-9a-f]{{64}}\.jsonl"
    r"|words/[0-9a-f]{64}\.json)"
)
HIT_FIELDS = ("doc_id", "file", "page", "page_label", "text", "score", "section")
MAX_HEADER_BYTES = 64 * 1024 * 1024


class BackupError(ValueError):
    """An archive that cannot be imported here; the message says why."""


@dataclass
class ImportSummary:
    added: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    points: int = 0
    course_restored: bool = False
    verified: int = 0  # verified answers restored
    requests: int = 0  # open questions to the instructor restored

    def lines(self) -> list[str]:
        """One human line per document, e.g. ``notes.pdf: restored``."""
        lines = [f"{name}: restored" for name in self.added]
        lines += [f"{name}: skipped — {why}" for name, why in self.skipped]
        lines += [f"verified answers: {self.verified} restored"] if self.verified else []
        lines += [f"questions for the instructor: {self.requests} restored"] if self.requests else []
        return lines + (["course page: restored"] if self.course_restored else [])

    def to_json(self) -> dict:
        return {
            "added": self.added,
            "skipped": [list(s) for s in self.skipped],
            "points": self.points,
            "course_restored": self.course_restored,
            "verified": self.verified,
            "requests": self.requests,
        }


# --- Export --------------------------------------------------------------------


def export_backup(mentor, dest_dir: Path) -> Path:
    """Writes every ready document of ``mentor`` into one new archive in
    ``dest_dir`` and returns its path, under the library's lock: no upload
    or delete changes the course while it is read."""
    with mentor.library.exclusive():
        return _export(mentor, Path(dest_dir))


def _export(mentor, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = dest_dir / f"mentor-backup-{stamp}.tar.gz"
    partial = dest_dir / f".{target.name}.part"
    exported: list[Document] = []
    try:
        with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".export-") as work, tarfile.open(partial, "w:gz") as tar:
            live = mentor.library.live()
            for doc in mentor.documents():
                if _export_document(mentor, live.index, doc, Path(work), tar):
                    exported.append(doc)
            course = mentor.settings.home / COURSE_FILE
            if course.is_file():
                tar.add(course, arcname=COURSE_FILE)
            _add_bytes(tar, INSTRUCTOR, json.dumps(_instructor(mentor), indent=2, ensure_ascii=False).encode())
            header = {
                "format": FORMAT,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "manifest": live.spec.to_json(),
                "documents": [d.to_json() for d in exported],
            }
            _add_bytes(tar, HEADER, json.dumps(header, indent=2, ensure_ascii=False).encode())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    log.info("exported %d documents to %s", len(exported), target)
    return target


def _export_document(mentor, index, doc: Document, work: Path, tar: tarfile.TarFile) -> bool:
    stored = mentor.stored_file(doc.doc_id)
    if stored is None or stored.suffix not in SUFFIXES:
        log.warning("backup: %s has no stored original; left out", doc.name)
        return False
    points = work / f"{doc.doc_id}.jsonl"
    count = 0
    with points.open("w", encoding="utf-8") as out:
        for record in index.records(doc.doc_id):
            point = {"chunk_no": record.chunk_no, "dense": record.dense, "payload": record.payload()}
            if record.second is not None:
                point["second"] = record.second
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
    if words := mentor.library.all_ocr_words(doc.doc_id):
        _add_bytes(tar, f"words/{doc.doc_id}.json", json.dumps(words).encode())
    return True


def _instructor(mentor) -> dict:
    """The verified answers and the open requests, without their vectors
    (the importing mentor embeds again, with its own embedder)."""
    questions = mentor.questions
    return {
        "verified": [v.to_json() for v in reversed(questions.verified_answers())],
        "requests": [r.to_json() for r in questions.requests(only_open=True)],
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
            spec = _checked_spec(header.get("manifest"), mentor.library.live().spec)
            summary = ImportSummary()
            for row in header.get("documents") or []:
                _import_document(mentor, tar, members, row, spec, summary)
            summary.course_restored = _restore_course(mentor, tar, members)
            summary.verified, summary.requests = _restore_instructor(mentor, tar, members)
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
    if found not in READABLE_FORMATS:
        raise BackupError(f"This backup's format ({found}) is not one this version reads ({READABLE_FORMATS}).")
    return header


def _checked_spec(found, live: IndexSpec) -> IndexSpec:
    """The backup's index spec, when its vectors can go into the live index."""
    try:
        spec = IndexSpec.from_json(found)
    except (TypeError, ValueError, AttributeError):
        raise BackupError("The backup does not say what its vectors were made with (no manifest).") from None
    if not spec.same_vectors(live):
        raise BackupError(
            f"This backup was made with other index settings ({describe(spec.differences(live, ignore=('schema',)), now='here')}); "
            "its vectors would be wrong here. Start the mentor with the backup's settings to import it, "
            "or upload the original files instead."
        )
    return spec


def _import_document(mentor, tar, members, row, spec: IndexSpec, summary: ImportSummary) -> None:
    try:
        doc = Document(
            **{k: row[k] for k in ("doc_id", "name", "size", "pages", "chunks", "added_at", "status")},
            # Archives from before the flags have none: every document was for students.
            instructor_only=bool(row.get("instructor_only", False)),
            assignment=bool(row.get("assignment", False)),
        )
    except (KeyError, TypeError) as e:
        raise BackupError(f"{HEADER} lists a document without {e}") from e
    name = safe_name(str(doc.name))
    if not (isinstance(doc.doc_id, str) and DOC_ID.fullmatch(doc.doc_id)):
        raise BackupError(f"{HEADER} lists a document with a malformed id: {str(doc.doc_id)[:80]!r}")
    if not all(isinstance(n, int) and n >= 0 for n in (doc.size, doc.pages, doc.chunks)):
        raise BackupError(f"{HEADER} lists {name} with malformed counts.")
    original = next((members[f"files/{doc.doc_id}{s}"] for s in sorted(SUFFIXES) if f"files/{doc.doc_id}{s}" in members), None)
    points = members.get(f"points/{doc.doc_id}.jsonl")
    if original is None or points is None:
        summary.skipped.append((name, "its file or its vectors are missing from the backup"))
        return
    points_of = _records(tar, points, replace(doc, name=name), spec)
    words = _words(tar, members.get(f"words/{doc.doc_id}.json"), name, doc.pages)
    try:
        written = mentor.library.restore(replace(doc, name=name), tar.extractfile(original), _suffix(original), points_of, words)
    except RestoreSkipped as e:
        summary.skipped.append((name, str(e)))
        return
    except BackupError:
        raise
    except ValueError as e:  # a damaged original or a wrong chunk count; nothing of it was kept
        raise BackupError(f"{name}: {e}: the backup is damaged.") from e
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
        course = replace(course, teaching=Teaching.from_json(data.get("teaching")))
    except (ValueError, AttributeError, CourseError) as e:
        log.warning("backup: the course page in the backup is unusable (%s); keeping the defaults", e)
        return False
    course.save(mentor.settings.home)
    return True


def _restore_instructor(mentor, tar, members) -> tuple[int, int]:
    """Adds the archive's verified answers and open requests that are not
    here yet (the same question, asked or answered, is not added twice);
    returns how many of each."""
    info = members.get(INSTRUCTOR)
    if info is None:
        return 0, 0
    if info.size > MAX_HEADER_BYTES:
        raise BackupError(f"{INSTRUCTOR} is implausibly large ({info.size} bytes).")
    try:
        data = json.loads(tar.extractfile(info).read())
        verified = [_verified(v) for v in data.get("verified") or []]
        requests = [_request(r) for r in data.get("requests") or []]
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise BackupError(f"{INSTRUCTOR} is damaged: {e}") from e
    questions = mentor.questions
    known = {v.question for v in questions.verified_answers()}
    added = 0
    for question, answer, citations in verified:
        if question not in known:
            questions.save_verified(question, answer, citations)
            known.add(question)
            added += 1
    return added, questions.restore_requests(requests)


def _verified(row: dict) -> tuple[str, str, list[Hit]]:
    citations = [Hit(**{k: c[k] for k in HIT_FIELDS}) for c in row.get("citations") or []]
    for hit in citations:
        if not DOC_ID.fullmatch(str(hit.doc_id)) or not isinstance(hit.page, int):
            raise ValueError(f"a citation of {str(row['question'])[:60]!r} is malformed")
    return str(row["question"]), str(row["answer"]), citations


def _request(row: dict) -> dict:
    return {
        "asked_at": str(row["asked_at"]),
        "question": str(row["question"]),
        "mentor_answer": str(row.get("mentor_answer") or ""),
        "name": str(row["name"]) if row.get("name") else None,
    }


def _words(tar, info: tarfile.TarInfo | None, name: str, pages: int) -> dict[int, list]:
    """The words OCR read on a document's scanned pages, checked: a page
    number (1-based) within the document, and lines of ``[word, x0, y0, x1, y1]``."""
    if info is None:
        return {}
    if info.size > MAX_HEADER_BYTES:
        raise BackupError(f"{info.name} is implausibly large ({info.size} bytes).")
    try:
        kept = json.loads(tar.extractfile(info).read())
        words = {int(page): lines for page, lines in kept.items()}
        for page, lines in words.items():
            if not 1 <= page <= pages or not all(_word_line(line) for line in lines):
                raise ValueError(f"page {page} is malformed")
    except (ValueError, TypeError, AttributeError) as e:
        raise BackupError(f"{name}: the words read on its scanned pages are damaged ({e}).") from e
    return words


def _word_line(line) -> bool:
    return isinstance(line, list) and all(
        isinstance(w, list) and len(w) == 5 and isinstance(w[0], str) and all(isinstance(x, (int, float)) for x in w[1:])
        for w in line
    )


def _suffix(info: tarfile.TarInfo) -> str:
    return info.name[info.name.rindex(".") :]


def _records(tar, info: tarfile.TarInfo, doc: Document, spec: IndexSpec) -> Iterator[ChunkRecord]:
    """The chunks of ``doc`` in the backup, each checked, read as they are written."""
    seen: set[int] = set()
    for number, line in enumerate(io.TextIOWrapper(tar.extractfile(info), encoding="utf-8"), start=1):
        try:
            record = _record(json.loads(line), doc.doc_id, doc.name, doc.chunks, spec)
        except (ValueError, KeyError, TypeError) as e:
            raise BackupError(f"{info.name}, line {number}: not a valid point ({e}).") from e
        if record.chunk_no in seen:
            raise BackupError(f"{info.name}: chunk {record.chunk_no} appears twice.")
        seen.add(record.chunk_no)
        yield record


def _record(point: dict, doc_id: str, name: str, chunks: int, spec: IndexSpec) -> ChunkRecord:
    chunk_no, payload = point["chunk_no"], point["payload"]
    if not isinstance(chunk_no, int) or not 0 <= chunk_no < chunks:
        raise ValueError(f"chunk number {chunk_no!r} is out of range")
    if payload["doc_id"] != doc_id:
        raise ValueError("it belongs to another document")
    dense = _vector(point["dense"], spec.dimension, "its vector")
    second = _vector(point["second"], spec.second_dimension, "its second vector") if spec.second_dimension else None
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
        section=str(payload.get("section") or ""),
        second=second,
    )


def _vector(values, dimension: int, what: str) -> list[float]:
    vector = [float(x) for x in values]
    if len(vector) != dimension:
        raise ValueError(f"{what} has {len(vector)} dimensions, not {dimension}")
    return vector
