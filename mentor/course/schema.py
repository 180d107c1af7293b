"""Numbered schema migrations for the course's SQLite files.

Each file (the registry, the question log) lists its migrations in order;
``PRAGMA user_version`` records how many a database has had, and ``migrate``
applies the rest at open, so an upgrade needs no manual step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone


def migrate(db: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """Applies the ``migrations`` this database has not had, each in its own
    transaction with its version number; returns the version reached.

    A migration is split into statements at each ``;``, so its SQL comments
    must hold none."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(migrations[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return len(migrations)


def now() -> str:
    """The time a row is written, as the course's databases store it (UTC, ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
