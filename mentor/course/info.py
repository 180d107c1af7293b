"""The course's settings: what students see besides answers, and how the
mentor teaches.

``CourseInfo`` is the course's name, welcome text and example questions, and
its ``Teaching``: the answer style and how long student questions are kept.
All of it lives in ``MENTOR_HOME/course.json``, set in the instructor console.
(What students ask and rate is kept by ``mentor.questions``.)

No Gradio here: the web UI and any script use the same functions.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

COURSE_FILE = "course.json"

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

# Answer styles: the answer itself, or hints and questions that lead the
# student to it; the guide style for the whole course, or only when the
# sources include a document marked as an assignment.
DIRECT, GUIDE = "direct", "guide"
WHOLE_COURSE, ASSIGNMENTS = "course", "assignments"
# How long student questions are kept. A term is about 16 weeks of teaching
# and its exams: 120 days keeps a term's questions for the whole term (the
# insights compare its weeks) and lets them go before the next one starts.
DEFAULT_RETENTION_DAYS = 120
MAX_RETENTION_DAYS = 730


class CourseError(ValueError):
    """Course settings the console will not save; the message says why."""


@dataclass(frozen=True)
class Teaching:
    """How the mentor teaches, and how long it keeps what students ask.

    >>> Teaching.from_form("guide", "assignments", 30)
    Teaching(style='guide', guide_scope='assignments', retention_days=30)
    """

    style: str = DIRECT
    guide_scope: str = WHOLE_COURSE
    retention_days: int = DEFAULT_RETENTION_DAYS

    @classmethod
    def from_form(cls, style: str, guide_scope: str, retention_days) -> Teaching:
        """Settings from the console's fields, validated; raises CourseError."""
        if style not in (DIRECT, GUIDE):
            raise CourseError(f"The answer style is {DIRECT!r} or {GUIDE!r}.")
        if guide_scope not in (WHOLE_COURSE, ASSIGNMENTS):
            raise CourseError("The guide style applies to the whole course or to assignments only.")
        try:
            days = int(retention_days)
        except (TypeError, ValueError):
            raise CourseError("Give the number of days to keep student questions, e.g. 120.") from None
        if not 1 <= days <= MAX_RETENTION_DAYS:
            raise CourseError(f"Keep student questions from 1 to {MAX_RETENTION_DAYS} days (a term is about 120).")
        return cls(style, guide_scope, days)

    @classmethod
    def from_json(cls, data) -> Teaching:
        """The saved settings; anything unusable falls back to the default."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls.from_form(
                data.get("style", DIRECT),
                data.get("guide_scope", WHOLE_COURSE),
                data.get("retention_days", DEFAULT_RETENTION_DAYS),
            )
        except CourseError as e:
            log.warning("the saved teaching settings are unusable (%s); using the defaults", e)
            return cls()

    def to_json(self) -> dict:
        return {"style": self.style, "guide_scope": self.guide_scope, "retention_days": self.retention_days}


@dataclass(frozen=True)
class CourseInfo:
    """The course as the chat page presents it.

    >>> CourseInfo.from_form("Astronomy 101", "Hello", "What is an orbit?\\n\\n").examples
    ('What is an orbit?',)
    """

    name: str = DEFAULT_NAME
    welcome: str = DEFAULT_WELCOME
    examples: tuple[str, ...] = field(default_factory=tuple)
    teaching: Teaching = field(default_factory=Teaching)

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
                teaching=Teaching.from_json(data.get("teaching")),
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
        data = {
            "name": self.name,
            "welcome": self.welcome,
            "examples": list(self.examples),
            "teaching": self.teaching.to_json(),
        }
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
