"""What students asked, the instructor's verified answers, and the questions
students passed on to the instructor.

One SQLite file, ``MENTOR_HOME/questions.sqlite3``, and this module is its
only writer (``QuestionStore``). Its tables, moved forward by numbered
migrations like the registry's:

- ``asked``: one row per answered question: its text, when, whether the
  mentor refused, the best source's score, the pages the answer cited, the
  student's thumbs up or down, and the question's vector (so that grouping
  never embeds again). Written when an answer completes (``record``).
- ``verified``: the instructor's answers to questions that come back, with
  their citations; a student's question close enough to one gets it first.
- ``requests``: questions a student passed on ("Ask the instructor"), open
  until the instructor replies.

**Nothing about who asked is stored**: no address, no session, no browser
id; a name only when a student types one into "Ask the instructor". Student
questions and requests are deleted once older than the course's retention
(``clean_up``, at start and daily), or all at once
(``delete_student_questions``). Verified answers are the instructor's own
text and stay until the instructor removes them.

Each write is one committed SQLite transaction: it survives a restart and
``kill -9``.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from mentor.course.schema import migrate, now
from mentor.index.store import Hit

log = logging.getLogger(__name__)

QUESTIONS_FILE = "questions.sqlite3"
# Where thumbs up and down went before this store (one JSON object a line);
# moved in at the first open, then removed.
FEEDBACK_FILE = "feedback.jsonl"
HELPFUL, UNHELPFUL = "up", "down"
# Characters of a cited passage kept with a verified answer (what the
# student sees under it), and of a name given with a request.
SNIPPET_CHARS = 400
MAX_NAME = 80
# The longest question a student may pass on to the instructor, and the
# mentor's answer kept with it: the console shows them whole.
MAX_REQUEST_CHARS = 2000
MAX_MENTOR_ANSWER_CHARS = 20_000
DAY = 24 * 3600

MIGRATIONS = (
    # 1: questions asked, verified answers, requests to the instructor.
    """
    CREATE TABLE asked (
        id          TEXT PRIMARY KEY,   -- the answer's random id (its thumbs refer to it)
        asked_at    TEXT NOT NULL,      -- UTC, ISO 8601
        question    TEXT NOT NULL,      -- as the student wrote it
        query       TEXT NOT NULL,      -- what was searched: a follow-up made standalone
        answer      TEXT NOT NULL,
        refused     INTEGER NOT NULL,
        best_score  REAL,               -- the best source's score (NULL: none, or a verified answer)
        cited       TEXT NOT NULL,      -- JSON [[doc_id, page, page_label, file], ...]
        verified_id INTEGER,            -- answered by this verified answer
        rating      TEXT,               -- 'up', 'down' or NULL
        embedder    TEXT,               -- what made the vector (NULL: not embedded yet)
        vector      BLOB                -- float32, unit length
    );
    CREATE INDEX asked_by_time ON asked (asked_at);
    CREATE TABLE verified (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        question   TEXT NOT NULL,
        answer     TEXT NOT NULL,
        citations  TEXT NOT NULL,       -- JSON list of sources (Hit fields, text cut to a snippet)
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        embedder   TEXT,
        vector     BLOB
    );
    CREATE TABLE requests (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        ticket        TEXT NOT NULL UNIQUE,  -- random: what the student's own browser keeps
        asked_at      TEXT NOT NULL,
        question      TEXT NOT NULL,
        mentor_answer TEXT NOT NULL,         -- what the mentor had said
        name          TEXT,                  -- only when the student gave one
        reply         TEXT,                  -- NULL while open
        replied_at    TEXT,
        verified_id   INTEGER
    );
    """,
)


class QuestionsError(ValueError):
    """Something the instructor or a student asked the store that it cannot
    do; the message says why."""


@dataclass(frozen=True)
class CitedPage:
    doc_id: str
    page: int
    page_label: str
    file: str


@dataclass(frozen=True)
class Asked:
    """One answered question, as the insights read it."""

    id: str
    asked_at: str
    question: str
    query: str
    answer: str
    refused: bool
    best_score: float | None
    cited: tuple[CitedPage, ...]
    verified_id: int | None
    rating: str | None


@dataclass(frozen=True)
class Verified:
    """An answer the instructor wrote or approved, for a question and the
    questions close to it."""

    id: int
    question: str
    answer: str
    citations: tuple[Hit, ...]
    created_at: str
    updated_at: str

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "citations": [h.to_json() for h in self.citations],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Request:
    """A question a student passed on to the instructor."""

    id: int
    ticket: str
    asked_at: str
    question: str
    mentor_answer: str
    name: str | None
    reply: str | None
    replied_at: str | None
    verified_id: int | None

    @property
    def open(self) -> bool:
        return self.reply is None

    def to_json(self) -> dict:
        return {
            "ticket": self.ticket,
            "asked_at": self.asked_at,
            "question": self.question,
            "mentor_answer": self.mentor_answer,
            "name": self.name,
        }


class QuestionStore:
    """The course's question log, verified answers and requests; see the module."""

    def __init__(self, path: Path, embedder, min_similarity: float):
        """``embedder`` embeds questions (the settings' own, the one
        retrieval uses); ``min_similarity`` is the cosine a question needs to
        a verified question to get its answer."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.embedder = embedder
        self.min_similarity = min_similarity
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._verified_cache: tuple[list[Verified], np.ndarray] | None = None
        self._stop = threading.Event()
        with self._lock:
            migrate(self._db, MIGRATIONS)

    @classmethod
    def open(cls, home: Path, embedder, min_similarity: float) -> QuestionStore:
        """The store of the course in ``home``, with any feedback log of an
        earlier version moved in."""
        store = cls(Path(home) / QUESTIONS_FILE, embedder, min_similarity)
        store.move_in_feedback(Path(home) / FEEDBACK_FILE)
        return store

    # --- what was asked ---------------------------------------------------------------

    def vector(self, text: str) -> np.ndarray:
        """The meaning of a question, as grouping and verified answers compare it."""
        return np.asarray(self.embedder.embed_query(text), dtype=np.float32)

    def record(self, answer) -> None:
        """Keeps a completed answer's question (an ``answer.Answer``): called
        once, when its last piece has been read, by whoever reads it."""
        vector = answer.vector if answer.vector is not None else self.vector(answer.query)
        cited = [] if answer.refused else [[h.doc_id, h.page, h.page_label, h.file] for _, h in answer.cited()]
        best = None if answer.verified or not answer.sources else max(h.score for h in answer.sources)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO asked (id, asked_at, question, query, answer, refused, best_score, cited, "
                "verified_id, embedder, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    answer.id,
                    now(),
                    answer.question,
                    answer.query,
                    answer.text,
                    int(answer.refused),
                    best,
                    json.dumps(cited),
                    answer.verified.id if answer.verified else None,
                    self.embedder.name,
                    _blob(vector),
                ),
            )

    def rate(self, answer_id: str, rating: str | bool) -> bool:
        """Records a thumbs up or down on an answer (a later one replaces an
        earlier one); False when the question is no longer kept."""
        rating = _rating(rating)
        with self._lock:
            changed = self._db.execute("UPDATE asked SET rating = ? WHERE id = ?", (rating, answer_id)).rowcount
        return changed == 1

    def asked(self, since: str | None = None) -> tuple[list[Asked], np.ndarray]:
        """The questions asked since ``since`` (ISO time; all kept when None),
        oldest first, and their vectors as one matrix (a row each). Questions
        without a vector of the current embedder (moved in from an old
        feedback log, or asked before the embedder changed) are embedded
        now, once, and kept."""
        where, args = ("WHERE asked_at >= ?", (since,)) if since else ("", ())
        with self._lock:
            rows = self._db.execute(
                "SELECT id, asked_at, question, query, answer, refused, best_score, cited, verified_id, rating, "
                f"embedder, vector FROM asked {where} ORDER BY asked_at, rowid",
                args,
            ).fetchall()
        vectors = self._current_vectors("asked", [(r[0], r[3], r[10], r[11]) for r in rows])
        return [_asked(row) for row in rows], vectors

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM asked").fetchone()[0]

    def _current_vectors(self, table: str, rows: Sequence[tuple]) -> np.ndarray:
        """The vectors of ``rows`` (key, text, embedder, blob), embedding again
        and saving the ones another embedder (or none) made."""
        name, dimension = self.embedder.name, self.embedder.dimension
        vectors = np.zeros((len(rows), dimension), dtype=np.float32)
        stale = []
        for i, (key, text, embedder, blob) in enumerate(rows):
            if embedder == name and blob is not None:
                vectors[i] = np.frombuffer(blob, dtype=np.float32)
            else:
                stale.append((i, key, text))
        if stale:
            fresh = np.asarray(self.embedder.embed([text for _, _, text in stale]), dtype=np.float32)
            with self._lock:
                self._db.executemany(
                    f"UPDATE {table} SET embedder = ?, vector = ? WHERE id = ?",
                    [(name, _blob(v), key) for (_, key, _), v in zip(stale, fresh)],
                )
            for (i, _, _), v in zip(stale, fresh):
                vectors[i] = v
        return vectors

    def move_in_feedback(self, path: Path) -> int:
        """Moves the ratings of an earlier version's ``feedback.jsonl`` into
        this store (each as an answered question, its latest rating kept),
        then removes the file; returns how many answers it held. Run again
        after a crash, it adds nothing twice (the answer id is the key)."""
        if not path.is_file():
            return 0
        latest: dict[str, dict] = {}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                _rating(entry["rating"])
                latest[str(entry.get("answer_id") or line)] = entry
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut by a crash
        rows = [_feedback_row(key, entry) for key, entry in latest.items()]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR REPLACE INTO asked (id, asked_at, question, query, answer, refused, best_score, cited, "
                "rating) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
        path.unlink()
        log.info("moved %d rated answers from %s into %s", len(rows), path.name, QUESTIONS_FILE)
        return len(rows)

    # --- verified answers --------------------------------------------------------------

    def verified_answers(self) -> list[Verified]:
        """Every verified answer, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, question, answer, citations, created_at, updated_at FROM verified ORDER BY id DESC"
            ).fetchall()
        return [_verified(row) for row in rows]

    def get_verified(self, verified_id: int) -> Verified:
        found = [v for v in self.verified_answers() if v.id == verified_id]
        if not found:
            raise QuestionsError("That verified answer no longer exists.")
        return found[0]

    def save_verified(
        self, question: str, answer: str, citations: Iterable[Hit] = (), verified_id: int | None = None
    ) -> Verified:
        """Adds a verified answer, or replaces the question, answer and
        citations of verified answer ``verified_id``; returns it."""
        question, answer = " ".join((question or "").split()), (answer or "").strip()
        if not question or not answer:
            raise QuestionsError("A verified answer needs both the question and your answer.")
        cited = json.dumps([{**h.to_json(), "text": h.text[:SNIPPET_CHARS]} for h in citations])
        vector, stamp = _blob(self.vector(question)), now()
        with self._lock:
            if verified_id is None:
                cursor = self._db.execute(
                    "INSERT INTO verified (question, answer, citations, created_at, updated_at, embedder, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (question, answer, cited, stamp, stamp, self.embedder.name, vector),
                )
                verified_id = cursor.lastrowid
            elif not self._db.execute(
                "UPDATE verified SET question = ?, answer = ?, citations = ?, updated_at = ?, embedder = ?, "
                "vector = ? WHERE id = ?",
                (question, answer, cited, stamp, self.embedder.name, vector, verified_id),
            ).rowcount:
                raise QuestionsError("That verified answer no longer exists.")
            self._verified_cache = None
        return self.get_verified(verified_id)

    def verified_used(self) -> dict[int, int]:
        """How many kept questions each verified answer answered."""
        with self._lock:
            rows = self._db.execute(
                "SELECT verified_id, COUNT(*) FROM asked WHERE verified_id IS NOT NULL GROUP BY verified_id"
            ).fetchall()
        return dict(rows)

    def remove_verified(self, verified_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM verified WHERE id = ?", (verified_id,))
            self._verified_cache = None

    def match(self, vector: np.ndarray) -> tuple[Verified, float] | None:
        """The verified answer whose question is closest to ``vector``, and
        their cosine, when it reaches ``min_similarity``; else None."""
        with self._lock:
            if self._verified_cache is None:
                answers = self.verified_answers()
                rows = self._db.execute("SELECT id, question, embedder, vector FROM verified ORDER BY id DESC").fetchall()
                self._verified_cache = (answers, self._current_vectors("verified", rows))
            answers, vectors = self._verified_cache
        if not answers:
            return None
        scores = vectors @ np.asarray(vector, dtype=np.float32)
        best = int(np.argmax(scores))
        return (answers[best], float(scores[best])) if scores[best] >= self.min_similarity else None

    # --- requests to the instructor ----------------------------------------------------

    def ask_instructor(self, question: str, mentor_answer: str = "", name: str = "") -> Request:
        """Passes a student's question on to the instructor, anonymously
        unless ``name`` is given; returns the request, whose ``ticket`` only
        the student's own browser keeps."""
        question = " ".join((question or "").split())
        if not question:
            raise QuestionsError("Write the question you want to ask your instructor.")
        if len(question) > MAX_REQUEST_CHARS:
            raise QuestionsError(
                f"Your question is {len(question)} characters long; the limit is {MAX_REQUEST_CHARS}. Please shorten it."
            )
        mentor_answer = (mentor_answer or "")[:MAX_MENTOR_ANSWER_CHARS]
        name = " ".join((name or "").split())[:MAX_NAME] or None
        ticket = secrets.token_urlsafe(16)
        with self._lock:
            self._db.execute(
                "INSERT INTO requests (ticket, asked_at, question, mentor_answer, name) VALUES (?, ?, ?, ?, ?)",
                (ticket, now(), question, mentor_answer or "", name),
            )
        return self.request(ticket)

    def requests(self, only_open: bool = False) -> list[Request]:
        """Requests, open ones first, each group oldest first."""
        where = "WHERE reply IS NULL" if only_open else ""
        return self._requests(f"{where} ORDER BY reply IS NOT NULL, asked_at, id")

    def request(self, ticket_or_id: str | int) -> Request:
        column = "id" if isinstance(ticket_or_id, int) else "ticket"
        found = self._requests(f"WHERE {column} = ?", ticket_or_id)
        if not found:
            raise QuestionsError("That question is no longer kept.")
        return found[0]

    def replies(self, tickets: Iterable[str]) -> list[Request]:
        """The answered requests among ``tickets`` (what one student's browser
        asked), newest reply first."""
        tickets = [t for t in tickets if isinstance(t, str)][:50]
        if not tickets:
            return []
        marks = ",".join("?" * len(tickets))
        return self._requests(f"WHERE ticket IN ({marks}) AND reply IS NOT NULL ORDER BY replied_at DESC", *tickets)

    def reply(self, request_id: int, reply: str, verified_id: int | None = None) -> Request:
        """The instructor's reply to a request, which closes it."""
        reply = (reply or "").strip()
        if not reply:
            raise QuestionsError("Write your reply first.")
        with self._lock:
            changed = self._db.execute(
                "UPDATE requests SET reply = ?, replied_at = ?, verified_id = ? WHERE id = ?",
                (reply, now(), verified_id, request_id),
            ).rowcount
        if not changed:
            raise QuestionsError("That question is no longer kept.")
        return self.request(request_id)

    def restore_requests(self, requests: Iterable[dict]) -> int:
        """Adds open requests from a backup (``asked_at``, ``question``,
        ``mentor_answer``, ``name``), each with a new ticket; one asked at the
        same time with the same text is here already. Returns how many were added."""
        added = 0
        with self._lock:
            for r in requests:
                if self._db.execute(
                    "SELECT 1 FROM requests WHERE asked_at = ? AND question = ?", (r["asked_at"], r["question"])
                ).fetchone():
                    continue
                self._db.execute(
                    "INSERT INTO requests (ticket, asked_at, question, mentor_answer, name) VALUES (?, ?, ?, ?, ?)",
                    (secrets.token_urlsafe(16), r["asked_at"], r["question"], r["mentor_answer"], r["name"]),
                )
                added += 1
        return added

    def _requests(self, where: str, *args) -> list[Request]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, ticket, asked_at, question, mentor_answer, name, reply, replied_at, verified_id "
                f"FROM requests {where}",
                args,
            ).fetchall()
        return [Request(*row) for row in rows]

    # --- privacy ------------------------------------------------------------------------

    def clean_up(self, retention_days: int, at: datetime | None = None) -> int:
        """Deletes the student questions and requests older than
        ``retention_days``; returns how many went."""
        cutoff = ((at or datetime.now(timezone.utc)) - timedelta(days=retention_days)).isoformat(timespec="seconds")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            gone = self._db.execute("DELETE FROM asked WHERE asked_at < ?", (cutoff,)).rowcount
            gone += self._db.execute("DELETE FROM requests WHERE asked_at < ?", (cutoff,)).rowcount
            self._db.execute("COMMIT")
        if gone:
            log.info("deleted %d student questions older than %d days", gone, retention_days)
        return gone

    def delete_student_questions(self) -> int:
        """Deletes every student question and request (the instructor's
        verified answers stay); returns how many went."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            gone = self._db.execute("DELETE FROM asked").rowcount
            gone += self._db.execute("DELETE FROM requests").rowcount
            self._db.execute("COMMIT")
            self._db.execute("VACUUM")  # the deleted text leaves the file, not just the index
        log.info("the instructor deleted all %d student questions", gone)
        return gone

    def clean_up_daily(self, retention_days: Callable[[], int], every: float = DAY) -> threading.Thread:
        """Runs ``clean_up`` once a day (``every`` seconds) in a thread, with
        the retention the course has at that moment; ``close`` stops it. (The
        mentor cleans up once when it opens.)"""

        def run() -> None:
            while not self._stop.wait(every):
                try:
                    self.clean_up(retention_days())
                except Exception:  # noqa: BLE001 - logged; tried again tomorrow
                    log.exception("the daily clean-up of student questions failed")

        thread = threading.Thread(target=run, name="mentor-clean-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._db.close()


def _blob(vector) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _rating(rating: str | bool) -> str:
    if rating is True or rating == HELPFUL:
        return HELPFUL
    if rating is False or rating == UNHELPFUL:
        return UNHELPFUL
    raise ValueError(f"rating must be {HELPFUL!r} or {UNHELPFUL!r}, not {rating!r}")


def _asked(row) -> Asked:
    cited = tuple(CitedPage(str(d), int(p), str(label), str(f)) for d, p, label, f in json.loads(row[7]))
    return Asked(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6], cited, row[8], row[9])


def _verified(row) -> Verified:
    citations = tuple(Hit(**c) for c in json.loads(row[3]))
    return Verified(row[0], row[1], row[2], citations, row[4], row[5])


# The words the mentor refused with when feedback was kept as JSON. A
# migration reads old data, so it keeps the text of its own day.
OLD_REFUSAL = "the course materials don't cover this."


def _feedback_row(key: str, entry: dict) -> tuple:
    """An ``asked`` row from an old feedback entry (which knew no refusal
    flag: the answer's own words say it)."""
    answer = str(entry.get("answer") or "")
    sources = [s for s in entry.get("sources") or [] if isinstance(s, dict) and "doc_id" in s]
    scores = [float(s["score"]) for s in sources if isinstance(s.get("score"), (int, float))]
    cited = [[s["doc_id"], int(s.get("page") or 0), str(s.get("page_label") or ""), str(s.get("file") or "")] for s in sources]
    question = str(entry.get("question") or "")
    return (
        key,
        str(entry.get("at") or now()),
        question,
        question,
        answer,
        int(OLD_REFUSAL in answer.lower()),
        max(scores) if scores else None,
        json.dumps(cited),
        _rating(entry["rating"]),
    )
