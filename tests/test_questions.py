"""The question log: what is kept of each answered question, when, for how
long, and nothing about who asked. With the real tiny model, MiniLM and
Qdrant Edge under ``tmp_path``."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from mentor.course.info import CourseInfo, Teaching
from mentor.course.questions import FEEDBACK_FILE, MIGRATIONS, QUESTIONS_FILE, QuestionStore
from mentor.generate.prompts import NOT_COVERED
from tests.conftest import minilm_folder
from tests.spies import ModelSpy

OFFICE_HOURS = "When are office hours held?"
OFF_COURSE = "What is the best recipe for sourdough bread?"


@pytest.fixture
def settings(short_answers):
    return short_answers


def columns(home, table: str) -> list[str]:
    with sqlite3.connect(home / QUESTIONS_FILE) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def age(home, table: str, question: str, days: int) -> None:
    """Moves a kept question ``days`` into the past (time passing, for the clean-up)."""
    then = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")
    with sqlite3.connect(home / QUESTIONS_FILE) as db:
        assert db.execute(f"UPDATE {table} SET asked_at = ? WHERE question = ?", (then, question)).rowcount == 1


def test_a_completed_answer_keeps_its_question_refusal_score_and_cited_pages(course):
    answer = course.ask(OFFICE_HOURS).finish()

    asked, vectors = course.questions.asked()
    assert len(asked) == 1 and vectors.shape == (1, 384)
    kept = asked[0]
    assert (kept.id, kept.question, kept.query, kept.answer) == (answer.id, OFFICE_HOURS, OFFICE_HOURS, answer.text)
    assert kept.refused is False and kept.rating is None and kept.verified_id is None
    assert kept.best_score == max(h.score for h in answer.sources) > course.settings.min_score
    assert [(p.file, p.page, p.page_label) for p in kept.cited] == [(h.file, h.page, h.page_label) for _, h in answer.cited()]
    assert abs(float(vectors[0] @ course.questions.vector(OFFICE_HOURS)) - 1) < 1e-5
    assert datetime.fromisoformat(kept.asked_at) > datetime.now(timezone.utc) - timedelta(minutes=5)


def test_nothing_about_who_asked_is_stored(course):
    course.ask(OFFICE_HOURS, client="81.2.69.160 session:abc123").finish()
    course.questions.ask_instructor("Can you explain it again?", "", "")

    home = course.settings.home
    assert columns(home, "asked") == [
        "id", "asked_at", "question", "query", "answer", "refused", "best_score", "cited", "verified_id",
        "rating", "embedder", "vector",
    ]  # fmt: skip
    assert columns(home, "requests") == [
        "id", "ticket", "asked_at", "question", "mentor_answer", "name", "reply", "replied_at", "verified_id",
    ]  # fmt: skip
    raw = (home / QUESTIONS_FILE).read_bytes()
    assert b"81.2.69.160" not in raw and b"abc123" not in raw
    assert course.questions.requests()[0].name is None


def test_a_refused_question_is_kept_without_cited_pages_and_without_the_model(course, tiny_model):
    spy = ModelSpy(tiny_model)
    course._answerer.model = spy

    course.ask(OFF_COURSE).finish()

    (kept,), _ = course.questions.asked()
    assert kept.refused and kept.cited == () and kept.answer.startswith(NOT_COVERED)
    assert kept.best_score < course.settings.min_score and spy.calls == []


def test_a_stopped_answer_is_not_kept(course):
    answer = course.ask(OFFICE_HOURS)
    pieces = iter(answer)
    next(pieces)
    pieces.close()  # the Stop button
    answer.close()

    assert course.questions.count() == 0


def test_a_thumb_rates_the_kept_question_and_a_later_one_replaces_it(course):
    answer = course.ask(OFFICE_HOURS).finish()

    assert course.questions.rate(answer.id, False)
    assert course.questions.rate(answer.id, "up")
    assert not course.questions.rate("no-such-answer", True)
    assert [q.rating for q in course.questions.asked()[0]] == ["up"]
    with pytest.raises(ValueError, match="rating"):
        course.questions.rate(answer.id, "meh")


def test_questions_older_than_the_retention_are_gone_after_the_next_clean_up(course):
    for question in ("What is escape velocity?", OFF_COURSE, OFFICE_HOURS):
        course.ask(question).finish()
    for question in ("old request", "recent request"):
        course.questions.ask_instructor(question)
    home = course.settings.home
    age(home, "asked", "What is escape velocity?", 121)
    age(home, "asked", OFF_COURSE, 119)
    age(home, "requests", "old request", 200)

    assert course.questions.clean_up(120) == 2

    assert [q.question for q in course.questions.asked()[0]] == [OFF_COURSE, OFFICE_HOURS]
    assert [r.question for r in course.questions.requests()] == ["recent request"]


def test_opening_the_course_cleans_up_with_the_courses_own_retention(settings, embedder, course):
    from mentor import Mentor

    course.ask(OFF_COURSE).finish()
    course.ask(OFFICE_HOURS).finish()
    age(course.settings.home, "asked", OFF_COURSE, 31)
    CourseInfo(teaching=Teaching(retention_days=30)).save(course.settings.home)
    course.close()

    with Mentor.open(settings, embedder=embedder, with_model=False) as reopened:
        assert [q.question for q in reopened.questions.asked()[0]] == [OFFICE_HOURS]


def test_the_daily_clean_up_runs_in_the_background_until_the_store_closes(tmp_path, embedder):
    store = QuestionStore(tmp_path / QUESTIONS_FILE, embedder, 0.78)
    store.ask_instructor("an old question")
    age(tmp_path, "requests", "an old question", 10)

    thread = store.clean_up_daily(lambda: 5, every=0.05)
    thread.join(timeout=0.5)
    assert store.requests() == [] and thread.is_alive()
    store.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_delete_all_student_questions_keeps_the_verified_answers(course):
    course.ask(OFFICE_HOURS).finish()
    course.questions.ask_instructor("Can you explain Kepler again?", "", "Ada")
    course.questions.save_verified(OFFICE_HOURS, "Thursdays, 2 to 4 pm, room B12.")

    assert course.questions.delete_student_questions() == 2

    assert course.questions.count() == 0 and course.questions.requests() == []
    assert [v.question for v in course.questions.verified_answers()] == [OFFICE_HOURS]
    assert b"Ada" not in (course.settings.home / QUESTIONS_FILE).read_bytes()


def test_the_feedback_log_of_an_earlier_version_moves_in_once(tmp_path, embedder):
    hit = {"n": 1, "doc_id": "d" * 64, "file": "handbook.pdf", "page": 6, "page_label": "4", "score": 0.71}
    entries = [
        {"at": "2026-01-05T10:00:00+00:00", "answer_id": "a1", "rating": "down", "question": "q1", "answer": "a", "sources": [hit]},
        {"at": "2026-01-05T11:00:00+00:00", "answer_id": "a2", "rating": "up", "question": "q2", "answer": NOT_COVERED, "sources": []},
        {"at": "2026-01-05T12:00:00+00:00", "answer_id": "a1", "rating": "up", "question": "q1", "answer": "a", "sources": [hit]},
    ]  # fmt: skip
    lines = "".join(json.dumps(e) + "\n" for e in entries) + '{"rating": "down", "quest'  # a line cut by a crash
    (tmp_path / FEEDBACK_FILE).write_text(lines)

    store = QuestionStore.open(tmp_path, embedder, 0.78)
    asked, vectors = store.asked()
    assert [(q.id, q.question, q.rating, q.refused, q.best_score) for q in asked] == [
        ("a2", "q2", "up", True, None),
        ("a1", "q1", "up", False, 0.71),
    ]
    assert [(p.doc_id, p.page, p.page_label) for p in asked[1].cited] == [("d" * 64, 6, "4")]
    assert vectors.shape == (2, 384)  # embedded on first read, and kept
    assert not (tmp_path / FEEDBACK_FILE).exists()
    store.close()

    again = QuestionStore.open(tmp_path, embedder, 0.78)
    assert again.count() == 2 and again.asked()[1].shape == (2, 384)
    again.close()


def test_the_store_migrates_itself_to_the_current_schema(tmp_path, embedder):
    QuestionStore(tmp_path / QUESTIONS_FILE, embedder, 0.78).close()
    QuestionStore(tmp_path / QUESTIONS_FILE, embedder, 0.78).close()  # nothing applied twice

    with sqlite3.connect(tmp_path / QUESTIONS_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 1


KILLED_CHILD = """
import os, signal, sys
from pathlib import Path
from mentor.index.embed import Embedder
from mentor.course.questions import QuestionStore
store = QuestionStore.open(Path(sys.argv[1]), Embedder(sys.argv[2]), 0.78)
store.ask_instructor("Is the midterm open book?", "", "")
store.save_verified("When are office hours held?", "Thursdays 2-4 pm.")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_was_written_survives_kill_9(tmp_path, embedder):
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(tmp_path), str(minilm_folder())], timeout=300)

    assert child.returncode == -9
    store = QuestionStore.open(tmp_path, embedder, 0.78)
    assert [r.question for r in store.requests()] == ["Is the midterm open book?"]
    assert [v.answer for v in store.verified_answers()] == ["Thursdays 2-4 pm."]
    store.close()
