"""What the students see of the course besides answers, and what they say back.

``CourseInfo`` is the course's name, welcome text and example questions,
kept in ``MENTOR_HOME/course.json``. Feedback on answers (thumbs up or down)
is appended to ``MENTOR_HOME/feedback.jsonl``, one JSON object a line, and
``feedback_summary`` reads it back for the instructor console.

No Gradio here: the web UI and any script use the same functions.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

COURSE_FILE = "course.json"
FEEDBACK_FILE = "feedback.jsonl"

DEFAULT_NAME = "Course Mentor"
DEFAULT_WELCOME = (
    "Ask a question about the course. Answers come only from the course materials, "
    "and each one names the file and page it is based on."
)
# Limits that keep the chat page readable, not security limits.
MAX_NAME = 120
MAX_WELCOME = 1500
MAX_EXAMPLES = 6
MAX_EXAMPLE_CHARS = 200
# Questions made up from document names when the instructor wrote none.
DERIVED_EXAMPLES = 3

HELPFUL = "up"
UNHELPFUL = "down"


class CourseError(ValueError):
    """Course settings the console will not save; the message says why."""


@dataclass(frozen=True)
class CourseInfo:
    """The course as the chat page presents it.

    >>> CourseInfo.from_form("Astronomy 101", "Hello", "What is an orbit?\\n\\n").examples
    ('What is an orbit?',)
    """

    name: str = DEFAULT_NAME
    welcome: str = DEFAULT_WELCOME
    examples: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def load(cls, home: Path) -> CourseInfo:
        """The saved course settings, or the defaults when there are none
        (or the file cannot be read, which is logged, not raised: the chat
        page must open either way)."""
        path = Path(home) / COURSE_FILE
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                name=str(data.get("name") or DEFAULT_NAME)[:MAX_NAME],
                welcome=str(data.get("welcome") or DEFAULT_WELCOME)[:MAX_WELCOME],
                examples=tuple(str(q)[:MAX_EXAMPLE_CHARS] for q in data.get("examples") or ())[:MAX_EXAMPLES],
            )
        except (OSError, ValueError, TypeError, AttributeError) as e:
            log.warning("%s is unreadable (%s); showing the default course settings", path, e)
            return cls()

    @classmethod
    def from_form(cls, name: str, welcome: str, examples: str | Sequence[str]) -> CourseInfo:
        """Course settings from the console's fields, validated; ``examples``
        is one question a line (or a list). Raises CourseError."""
        name = " ".join((name or "").split())
        welcome = (welcome or "").strip()
        lines = examples.splitlines() if isinstance(examples, str) else list(examples or ())
        questions = tuple(q for q in (" ".join(str(line).split()) for line in lines) if q)
        if not name:
            raise CourseError("Give the course a name; students see it at the top of the chat page.")
        if len(name) > MAX_NAME:
            raise CourseError(f"The course name is {len(name)} characters long; the limit is {MAX_NAME}.")
        if len(welcome) > MAX_WELCOME:
            raise CourseError(f"The welcome text is {len(welcome)} characters long; the limit is {MAX_WELCOME}.")
        if len(questions) > MAX_EXAMPLES:
            raise CourseError(
                f"There are {len(questions)} example questions; the chat page shows at most {MAX_EXAMPLES}."
            )
        long = [q for q in questions if len(q) > MAX_EXAMPLE_CHARS]
        if long:
            raise CourseError(f"Example questions are limited to {MAX_EXAMPLE_CHARS} characters: {long[0][:60]}…")
        return cls(name=name, welcome=welcome or DEFAULT_WELCOME, examples=questions)

    def save(self, home: Path) -> None:
        """Writes ``course.json`` atomically (a reader never sees half a file)."""
        path = Path(home) / COURSE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"name": self.name, "welcome": self.welcome, "examples": list(self.examples)}
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        partial.replace(path)

    def example_questions(self, document_names: Iterable[str]) -> list[str]:
        """The instructor's examples; without any, a few questions made from
        the names of the documents (newest first), which at least point
        students at what is really there."""
        if self.examples:
            return list(self.examples)
        questions = []
        for name in reversed(list(document_names)):
            title = title_of(name)
            if title and (question := f"What are the key ideas in “{title}”?") not in questions:
                questions.append(question)
            if len(questions) == DERIVED_EXAMPLES:
                break
        return questions


def title_of(file_name: str) -> str:
    """A readable title from a file name: ``week_03-orbits.pdf`` → ``week 03 orbits``.

    Names that say nothing (``scan0001.pdf``, a hash) give "".
    """
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    title = " ".join(re.sub(r"[_\-.+]+", " ", stem).split())
    letters = sum(c.isalpha() for c in title)
    if letters < 3 or re.fullmatch(r"(?i)(scan|img|image|document|file|untitled)\s*\d*", title):
        return ""
    return title[:80]


# --- Feedback ------------------------------------------------------------------

_feedback_lock = threading.Lock()


def record_feedback(
    home: Path,
    question: str,
    answer: str,
    sources: Sequence,
    rating: str | bool,
    answer_id: str | None = None,
) -> dict:
    """Appends one rating of an answer to ``feedback.jsonl`` and returns the entry.

    ``rating`` is "up"/"down" (or True/False); ``sources`` are ``Hit``\\ s or
    their JSON dicts, kept without their text. A later rating with the same
    ``answer_id`` replaces an earlier one in the summary.
    """
    if rating is True or rating == HELPFUL:
        rating = HELPFUL
    elif rating is False or rating == UNHELPFUL:
        rating = UNHELPFUL
    else:
        raise ValueError(f"rating must be {HELPFUL!r} or {UNHELPFUL!r}, not {rating!r}")
    entry = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "answer_id": answer_id or uuid.uuid4().hex,
        "rating": rating,
        "question": question,
        "answer": answer,
        "sources": [_source_ref(s) for s in sources],
    }
    path = Path(home) / FEEDBACK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    with _feedback_lock, open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    return entry


def _source_ref(source) -> dict:
    data = source.to_json() if hasattr(source, "to_json") else dict(source)
    return {k: data.get(k) for k in ("n", "doc_id", "file", "page", "page_label", "score") if k in data}


@dataclass(frozen=True)
class FeedbackSummary:
    helpful: int = 0
    unhelpful: int = 0
    # The latest answers rated unhelpful, newest first: what to look at.
    recent_unhelpful: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.helpful + self.unhelpful

    def to_json(self) -> dict:
        return asdict(self)


def feedback_summary(home: Path, recent: int = 10) -> FeedbackSummary:
    """Counts of helpful and unhelpful answers (the latest rating of each
    answer counts) and the most recent unhelpful ones. Broken lines (a
    crash mid-write) are skipped."""
    path = Path(home) / FEEDBACK_FILE
    if not path.exists():
        return FeedbackSummary()
    latest: dict[str, dict] = {}
    with _feedback_lock:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines:
        try:
            entry = json.loads(line)
            if entry.get("rating") in (HELPFUL, UNHELPFUL):
                latest.pop(entry.get("answer_id") or line, None)  # re-insert: order by latest rating
                latest[entry.get("answer_id") or line] = entry
        except (ValueError, AttributeError):
            continue
    entries = list(latest.values())
    unhelpful = [e for e in entries if e["rating"] == UNHELPFUL]
    return FeedbackSummary(
        helpful=len(entries) - len(unhelpful),
        unhelpful=len(unhelpful),
        recent_unhelpful=unhelpful[::-1][:recent],
    )
