"""Insights: questions grouped by meaning, what the course does not cover,
questions over time, and the CSV. Questions go through the real question
log (MiniLM embeds them) and, where the mentor answers, the real tiny model."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mentor.course.insights import WEAK_SCORE, groups_csv, questions_csv, summarize, timeline
from mentor.course.questions import QUESTIONS_FILE, QuestionStore
from mentor.generate.answer import Answer
from mentor.index.store import Hit
from tests.conftest import small_settings

PARAPHRASES = Path(__file__).resolve().parent.parent / "bench" / "devset" / "paraphrases.jsonl"
PIZZA = ["What's the best pizza place near campus?", "Where can I get good pizza around campus?", "best pizza near the university?"]
OFFICE_HOURS = ["When are office hours held?", "What time are office hours?"]


def paraphrase_sets() -> dict[str, dict]:
    return {s["id"]: s for s in map(json.loads, PARAPHRASES.read_text().splitlines())}


@pytest.fixture
def settings(tmp_path):
    """Short answers: what is kept of a question does not depend on its length."""
    return small_settings(tmp_path / "home", max_answer_tokens=16)


@pytest.fixture
def store(tmp_path, embedder):
    s = QuestionStore(tmp_path / QUESTIONS_FILE, embedder, 0.78)
    yield s
    s.close()


def keep(store, question: str, *, refused: bool = False, sources: list[Hit] = (), rating: str | None = None) -> Answer:
    """A completed answer to ``question``, kept by ``store`` as the mentor keeps one."""
    answer = Answer(question, question, list(sources), refused, iter(["An answer."]), on_complete=store.record)
    answer.finish()
    if rating:
        store.rate(answer.id, rating)
    return answer


def page(n: int, score: float, file: str = "handbook.pdf") -> Hit:
    return Hit("d" * 64, file, n, str(n - 2), f"text of page {n}", score)


def summary(store, **options):
    asked, vectors = store.asked()
    return summarize(asked, vectors, **options)


def test_paraphrases_of_four_questions_land_in_four_groups_and_off_course_questions_stay_alone(store):
    sets = paraphrase_sets()
    chosen = [sets[i]["questions"] for i in ("p01", "p02", "p03", "p12")]
    off_course = sets["off"]["near"]
    # Asked in an interleaved order, as a class asks them.
    for round_ in zip(*chosen):
        for question in round_:
            keep(store, question)
    for question in off_course:
        keep(store, question)

    groups = summary(store).groups

    assert [g.asked for g in groups] == [6, 6, 6, 6] + [1] * 8
    assert sorted(sorted(q.question for q in g.questions) for g in groups[:4]) == sorted(sorted(c) for c in chosen)
    assert sorted(g.representative.question for g in groups[4:]) == sorted(off_course)
    for g in groups[:4]:
        wordings = next(c for c in chosen if g.representative.question in c)
        assert {q.question for q in g.questions} == set(wordings)


def test_the_most_typical_wording_represents_its_group_and_the_pages_cited_most_are_counted(store):
    keep(store, "when r office hrs", sources=[page(6, 0.7)])
    keep(store, "When are office hours held?", sources=[page(6, 0.8), page(3, 0.5)])
    keep(store, "What time are office hours?", sources=[page(6, 0.75)])

    (group,) = summary(store).groups

    assert group.representative.question == "When are office hours held?"
    assert [(p.page, count) for p, count in group.top_pages] == [(6, 3), (3, 1)]


def test_refused_and_weakly_answered_groups_are_not_covered_and_verified_ones_are(store):
    keep(store, "What is escape velocity?", sources=[page(4, WEAK_SCORE + 0.2)])
    keep(store, "Can you explain escape velocity?", sources=[page(4, WEAK_SCORE + 0.2)])
    keep(store, "How do I fix a flat tire on my bike?", refused=True, sources=[page(5, 0.2)])
    keep(store, "How do mirror telescopes work?", sources=[page(5, WEAK_SCORE - 0.02)])
    keep(store, "Why do reflecting telescopes use mirrors?", sources=[page(5, WEAK_SCORE - 0.02)])

    found = summary(store)

    assert sorted(g.representative.question for g in found.not_covered) == [
        "How do I fix a flat tire on my bike?",
        "How do mirror telescopes work?",
    ]
    assert [g.refused for g in found.not_covered] in ([1, 0], [0, 1])
    covered = next(g for g in found.groups if "escape" in g.representative.question)
    assert covered.asked == 2 and not covered.not_covered


def test_off_course_questions_the_mentor_refused_appear_in_not_covered(mentor, handbook):
    assert mentor.ingest([handbook])[0].ok
    for question in [*PIZZA, *OFFICE_HOURS]:
        mentor.ask(question).finish()

    found = summary(mentor.questions)

    assert [g.asked for g in found.groups] == [3, 2]
    (gap,) = found.not_covered
    assert sorted(q.question for q in gap.questions) == sorted(PIZZA) and gap.refused == 3
    office = found.groups[1]
    assert office.refused == 0 and not office.not_covered
    assert [(p.file, p.page_label) for p, _ in office.top_pages][:1] == [("handbook.pdf", "4")]


def age(store, days_by_question: dict[str, int], home: Path) -> None:
    now = datetime.now(timezone.utc)
    with sqlite3.connect(home / QUESTIONS_FILE) as db:
        for question, days in days_by_question.items():
            then = (now - timedelta(days=days)).isoformat(timespec="seconds")
            db.execute("UPDATE asked SET asked_at = ? WHERE question = ?", (then, question))


def test_questions_over_time_count_each_day_and_each_weeks_refusals(store, tmp_path):
    for question, refused in [("a?", False), ("b?", True), ("c?", False), ("d?", False), ("e?", True)]:
        keep(store, question, refused=refused)
    age(store, {"a?": 0, "b?": 0, "c?": 2, "d?": 40, "e?": 45}, tmp_path)
    today = datetime.now(timezone.utc).date()
    asked, _ = store.asked()

    daily = timeline(asked, 7, today)
    assert [(d, n, r) for d, n, r in daily if n] == [(today - timedelta(days=2), 1, 0), (today, 2, 1)]
    assert len(daily) == 7 and daily[0][0] == today - timedelta(days=6)

    weekly = timeline(asked, None, today)
    assert all(d.weekday() == 0 for d, _, _ in weekly) and sum(n for _, n, _ in weekly) == 5
    assert sum(r for _, _, r in weekly) == 2 and weekly[-1][0] == today - timedelta(days=today.weekday())


def test_the_csv_holds_every_question_with_its_group_and_cannot_run_formulas(store):
    keep(store, "When are office hours held?", sources=[page(6, 0.8)], rating="down")
    keep(store, "What time are office hours?", sources=[page(6, 0.7)])
    keep(store, "=HYPERLINK(\"http://evil\")", refused=True)

    found = summary(store)
    questions = list(csv.reader(io.StringIO(questions_csv(found))))
    groups = list(csv.reader(io.StringIO(groups_csv(found))))

    assert questions[0] == [
        "asked_at", "question", "searched_as", "group", "group_question", "refused", "best_score", "rating",
        "verified_answer", "cited_pages",
    ]  # fmt: skip
    assert [(r[1], r[3], r[5], r[6], r[7], r[9]) for r in questions[1:]] == [
        ("When are office hours held?", "1", "no", "0.800", "down", "handbook.pdf p. 4"),
        ("What time are office hours?", "1", "no", "0.700", "", "handbook.pdf p. 4"),
        ("'=HYPERLINK(\"http://evil\")", "2", "yes", "", "", ""),
    ]
    assert [(r[0], r[1], r[2], r[5], r[8], r[9]) for r in groups[1:]] == [
        ("1", "When are office hours held?", "2", "1", "no", "handbook.pdf p. 4 (2x)"),
        ("2", "'=HYPERLINK(\"http://evil\")", "1", "0", "yes", ""),
    ]


def test_no_questions_make_empty_insights(store):
    found = summary(store, days=30, today=date(2026, 3, 1))

    assert found.groups == () and found.not_covered == [] and len(found.timeline) == 30
    assert questions_csv(found).count("\n") == 1
