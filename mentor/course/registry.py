"""The registry: what the course holds, and the state of every write to it.

SQLite under ``MENTOR_HOME``; the library (``mentor.library``) is its only
writer. Its tables:

- ``documents``: one row per document, whose ``status`` says where its
  write stands. Retrieval sees ``ready`` documents only, so a crash never
  shows half a document::

      ingesting ──▶ ready ──▶ deleting ──▶ (row gone)
          │                      ▲
          ▼ (found at a start)   │ (a complete new version replaced it)
      interrupted ──▶ ingesting

- ``indexes``: every index of the course (a Qdrant collection or an Edge
  shard) with the spec it was built with, and its state: ``active`` (the one
  students search), ``building`` (a rebuild beside it), ``retired``
  (replaced, to be dropped).
- ``rebuilt``: which documents a rebuild has finished, so that an
  interrupted rebuild resumes where it stopped.
- ``meta``: the course id, which names the course's indexes on a shared
  Qdrant server.

Each document carries two flags the instructor sets: ``instructor_only``
(a solution manual, say: never retrieved for students, so never shown,
quoted or cited to them) and ``assignment`` (an exercise sheet: the guide
answer style can apply to questions its pages answer).

The schema moves forward by numbered migrations, applied in order at open
(``PRAGMA user_version`` records how far), so an upgrade needs no manual step.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from mentor.course.schema import migrate, now
from mentor.index.manifest import IndexSpec

INGESTING = "ingesting"
INTERRUPTED = "interrupted"
READY = "ready"
DELETING = "deleting"

ACTIVE = "active"
BUILDING = "building"
RETIRED = "retired"

# Each entry takes the schema one version further; never edit one that has
# shipped, add the next.
MIGRATIONS = (
    # 1: the documents (created IF NOT EXISTS: databases from before
    # versioning already have this table, at user_version 0).
    """
    CREATE TABLE IF NOT EXISTS documents (
        doc_id   TEXT PRIMARY KEY,  -- SHA-256 of the file's bytes
        name     TEXT NOT NULL,
        size     INTEGER NOT NULL,
        pages    INTEGER NOT NULL DEFAULT 0,
        chunks   INTEGER NOT NULL DEFAULT 0,
        added_at TEXT NOT NULL,
        status   TEXT NOT NULL
    );
    """,
    # 2: the indexes and their rebuilds, and the course id.
    """
    CREATE TABLE indexes (
        name       TEXT PRIMARY KEY,
        spec       TEXT NOT NULL,   -- IndexSpec as JSON
        state      TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE rebuilt (
        index_name TEXT NOT NULL,
        doc_id     TEXT NOT NULL,
        pages      INTEGER NOT NULL,
        chunks     INTEGER NOT NULL,
        PRIMARY KEY (index_name, doc_id)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 3: the instructor's flags on a document.
    """
    ALTER TABLE documents ADD COLUMN instructor_only INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE documents ADD COLUMN assignment INTEGER NOT NULL DEFAULT 0;
    """,
)


@dataclass(frozen=True)
class Document:
    doc_id: str
    name: str
    size: int
    pages: int
    chunks: int
    added_at: str
    status: str
    instructor_only: bool = False
    assignment: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IndexRow:
    name: str
    spec: IndexSpec
    state: str


class UnknownDocument(KeyError):
    def __str__(self) -> str:
        return f"no document named or with id {self.args[0]!r}: see `python -m mentor docs`"


class Registry:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the UI's worker threads, behind a lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._db, MIGRATIONS)

    # --- documents ---------------------------------------------------------------

    def begin(
        self,
        doc_id: str,
        name: str,
        size: int,
        added_at: str | None = None,
        *,
        instructor_only: bool = False,
        assignment: bool = False,
        inherit: bool = False,
    ) -> None:
        """Registers a document as being ingested (invisible to retrieval);
        ``added_at`` keeps a restored document's original date. The flags are
        set here, before the document can be seen, so that an instructor-only
        document is never visible to students, not even for a moment.
        ``inherit``: a new version also keeps the flags of the ready version
        of the same name, read in the same transaction (so a ``set_flags``
        on that version lands before or after, never in between)."""
        with self._transaction() as db:
            if inherit:
                older = db.execute(
                    "SELECT MAX(instructor_only), MAX(assignment) FROM documents "
                    "WHERE status = ? AND name = ? AND doc_id != ?",
                    (READY, name, doc_id),
                ).fetchone()
                instructor_only, assignment = instructor_only or bool(older[0]), assignment or bool(older[1])
            db.execute(
                "INSERT OR REPLACE INTO documents (doc_id, name, size, added_at, status, instructor_only, assignment) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (doc_id, name, size, added_at or now(), INGESTING, int(instructor_only), int(assignment)),
            )

    def finish(self, doc_id: str, pages: int, chunks: int, replaces: Sequence[str] = ()) -> None:
        """Makes a document visible and marks the versions it replaces for
        deletion, in one transaction: students see exactly one version."""
        with self._transaction() as db:
            db.execute(
                "UPDATE documents SET pages = ?, chunks = ?, status = ? WHERE doc_id = ?", (pages, chunks, READY, doc_id)
            )
            db.executemany("UPDATE documents SET status = ? WHERE doc_id = ?", [(DELETING, d) for d in replaces])

    def set_flags(self, doc_id: str, instructor_only: bool, assignment: bool) -> None:
        """Sets a document's flags, and those of a new version of it being
        ingested under the same name, in one transaction."""
        with self._transaction() as db:
            found = db.execute("SELECT name FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if found is None:
                return
            db.execute(
                "UPDATE documents SET instructor_only = ?, assignment = ? WHERE doc_id = ? OR (name = ? AND status = ?)",
                (int(instructor_only), int(assignment), doc_id, found[0], INGESTING),
            )

    def set_status(self, doc_id: str, status: str) -> None:
        with self._lock:
            self._db.execute("UPDATE documents SET status = ? WHERE doc_id = ?", (status, doc_id))

    def remove(self, doc_id: str) -> None:
        """Forgets a document, and a rebuild's record of it."""
        with self._transaction() as db:
            db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM rebuilt WHERE doc_id = ?", (doc_id,))

    def get(self, doc_id: str) -> Document | None:
        found = self._select("WHERE doc_id = ?", doc_id)
        return found[0] if found else None

    def ready(self) -> list[Document]:
        return self._select("WHERE status = ? ORDER BY added_at, name", READY)

    def with_status(self, status: str) -> list[Document]:
        return self._select("WHERE status = ? ORDER BY added_at, name", status)

    def ready_with_name(self, name: str) -> list[Document]:
        return self._select("WHERE status = ? AND name = ?", READY, name)

    def find(self, name_or_id: str) -> Document:
        """A ready document by exact name, by id, or by a unique id prefix."""
        found = self._select(
            "WHERE status = ? AND (name = ? OR doc_id LIKE ?)", READY, name_or_id, f"{name_or_id}%"
        )
        if len(found) != 1 or len(name_or_id) < 6 and found[0].name != name_or_id:
            raise UnknownDocument(name_or_id)
        return found[0]

    # --- indexes -----------------------------------------------------------------

    def indexes(self, state: str | None = None) -> list[IndexRow]:
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT name, spec, state FROM indexes {where} ORDER BY created_at", args).fetchall()
        return [IndexRow(name, IndexSpec.from_json(spec), state) for name, spec, state in rows]

    def index(self, state: str) -> IndexRow | None:
        found = self.indexes(state)
        return found[-1] if found else None

    def add_index(self, name: str, spec: IndexSpec, state: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO indexes (name, spec, state, created_at) VALUES (?, ?, ?, ?)",
                (name, json.dumps(spec.to_json()), state, now()),
            )

    def remove_index(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM indexes WHERE name = ?", (name,))
            db.execute("DELETE FROM rebuilt WHERE index_name = ?", (name,))

    def record_rebuilt(self, index: str, doc_id: str, pages: int, chunks: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO rebuilt (index_name, doc_id, pages, chunks) VALUES (?, ?, ?, ?)",
                (index, doc_id, pages, chunks),
            )

    def rebuilt(self, index: str) -> dict[str, tuple[int, int]]:
        """``{doc_id: (pages, chunks)}`` of the documents a rebuild has finished."""
        with self._lock:
            rows = self._db.execute("SELECT doc_id, pages, chunks FROM rebuilt WHERE index_name = ?", (index,)).fetchall()
        return {doc_id: (pages, chunks) for doc_id, pages, chunks in rows}

    def activate(self, name: str) -> None:
        """Makes index ``name`` the one students search, in one transaction:
        the active one is retired, and the documents' counts become the
        rebuilt ones."""
        with self._transaction() as db:
            db.execute("UPDATE indexes SET state = ? WHERE state = ?", (RETIRED, ACTIVE))
            db.execute("UPDATE indexes SET state = ? WHERE name = ?", (ACTIVE, name))
            db.execute(
                "UPDATE documents SET (pages, chunks) = (SELECT pages, chunks FROM rebuilt "
                "WHERE rebuilt.doc_id = documents.doc_id AND index_name = ?) "
                "WHERE doc_id IN (SELECT doc_id FROM rebuilt WHERE index_name = ?)",
                (name, name),
            )
            db.execute("DELETE FROM rebuilt WHERE index_name = ?", (name,))

    # --- meta --------------------------------------------------------------------

    def course_id(self) -> str:
        """A random id made once per course: the course's indexes carry it in
        their names, so two courses on one Qdrant server never touch each
        other's."""
        with self._transaction() as db:
            found = db.execute("SELECT value FROM meta WHERE key = 'course_id'").fetchone()
            if found:
                return found[0]
            course_id = secrets.token_hex(4)
            db.execute("INSERT INTO meta (key, value) VALUES ('course_id', ?)", (course_id,))
            return course_id

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction under the registry's lock: committed on
        leaving, rolled back on an error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _select(self, where: str, *args) -> list[Document]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, name, size, pages, chunks, added_at, status, instructor_only, assignment "
                f"FROM documents {where}",
                args,
            ).fetchall()
        return [Document(*row[:7], bool(row[7]), bool(row[8])) for row in rows]
