"""The document registry: which documents exist and whether they are whole.

SQLite under ``MENTOR_HOME``. A document is registered as ``ingesting``
before its first chunk is written and becomes ``ready`` in one transaction
after the last; retrieval only sees ready documents, so a crash mid-way
never shows half a document.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

INGESTING = "ingesting"
READY = "ready"

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id   TEXT PRIMARY KEY,  -- SHA-256 of the file's bytes
    name     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    pages    INTEGER NOT NULL DEFAULT 0,
    chunks   INTEGER NOT NULL DEFAULT 0,
    added_at TEXT NOT NULL,
    status   TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Document:
    doc_id: str
    name: str
    size: int
    pages: int
    chunks: int
    added_at: str
    status: str

    def to_json(self) -> dict:
        return asdict(self)


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
            self._db.executescript(SCHEMA)

    def begin(self, doc_id: str, name: str, size: int, added_at: str | None = None) -> None:
        """Registers a document as being ingested (invisible to retrieval);
        ``added_at`` keeps a restored document's original date."""
        now = added_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO documents (doc_id, name, size, added_at, status) VALUES (?, ?, ?, ?, ?)",
                (doc_id, name, size, now, INGESTING),
            )

    def finish(self, doc_id: str, pages: int, chunks: int, replaces: list[str]) -> None:
        """Makes a document visible and drops the versions it replaces, atomically."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE documents SET pages = ?, chunks = ?, status = ? WHERE doc_id = ?",
                (pages, chunks, READY, doc_id),
            )
            self._db.executemany("DELETE FROM documents WHERE doc_id = ?", [(d,) for d in replaces])

    def remove(self, doc_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    def get(self, doc_id: str) -> Document | None:
        found = self._select("WHERE doc_id = ?", doc_id)
        return found[0] if found else None

    def ready(self) -> list[Document]:
        return self._select("WHERE status = ? ORDER BY added_at, name", READY)

    def unfinished(self) -> list[Document]:
        return self._select("WHERE status = ?", INGESTING)

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

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, where: str, *args) -> list[Document]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT doc_id, name, size, pages, chunks, added_at, status FROM documents {where}", args
            ).fetchall()
        return [Document(*row) for row in rows]
