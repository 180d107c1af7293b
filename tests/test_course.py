"""The course page settings and the feedback log."""

from __future__ import annotations

import json

import pytest

from mentor.course import (
    COURSE_FILE,
    DEFAULT_NAME,
    DEFAULT_WELCOME,
    FEEDBACK_FILE,
    CourseError,
    CourseInfo,
    feedback_summary,
    record_feedback,
    title_of,
)
from mentor.store import Hit


def test_a_new_course_has_sane_defaults(tmp_path):
    course = CourseInfo.load(tmp_path)

    assert (course.name, course.welcome, course.examples) == (DEFAULT_NAME, DEFAULT_WELCOME, ())


def test_course_settings_survive_a_save_and_a_load(tmp_path):
    CourseInfo.from_form("  Astronomy   101 ", "Welcome!\nAsk away.", "What is an orbit?\n\n  Who grades?  \n").save(
        tmp_path
    )

    course = CourseInfo.load(tmp_path)
    assert course == CourseInfo("Astronomy 101", "Welcome!\nAsk away.", ("What is an orbit?", "Who grades?"))
    assert json.loads((tmp_path / COURSE_FILE).read_text())["examples"] == ["What is an orbit?", "Who grades?"]


def test_an_unreadable_course_file_falls_back_to_the_defaults(tmp_path):
    (tmp_path / COURSE_FILE).write_text("{not json")

    assert CourseInfo.load(tmp_path) == CourseInfo()


@pytest.mark.parametrize(
    ("name", "welcome", "examples", "message"),
    [
        ("", "w", "", "Give the course a name"),
        ("x" * 121, "w", "", "the limit is 120"),
        ("Astro", "w" * 1501, "", "welcome text"),
        ("Astro", "w", "\n".join(f"q{i}?" for i in range(7)), "at most 6"),
        ("Astro", "w", "q" * 201, "limited to 200 characters"),
    ],
)
def test_course_settings_the_page_cannot_show_are_refused_with_a_reason(name, welcome, examples, message):
    with pytest.raises(CourseError, match=message):
        CourseInfo.from_form(name, welcome, examples)


def test_an_empty_welcome_text_gets_the_default():
    assert CourseInfo.from_form("Astro", "  ", "").welcome == DEFAULT_WELCOME


def test_the_instructors_examples_win_over_derived_ones():
    course = CourseInfo(examples=("What is an orbit?",))

    assert course.example_questions(["handbook.pdf"]) == ["What is an orbit?"]


def test_without_examples_questions_are_made_from_the_newest_meaningful_document_names():
    names = [
        "syllabus.pdf",
        "scan0001.pdf",
        "week_02-orbits.pdf",
        "3f9a.pdf",
        "Telescopes and optics.md",
        "lab-notes.txt",
    ]

    questions = CourseInfo().example_questions(names)

    assert questions == [
        "What are the key ideas in “lab notes”?",
        "What are the key ideas in “Telescopes and optics”?",
        "What are the key ideas in “week 02 orbits”?",
    ]
    assert CourseInfo().example_questions([]) == []


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("week_03-orbits.pdf", "week 03 orbits"),
        ("scan0001.pdf", ""),
        ("IMG_2231.pdf", ""),
        ("ab.pdf", ""),
        ("Notes", "Notes"),
    ],
)
def test_titles_come_from_file_names_that_say_something(name, title):
    assert title_of(name) == title


def test_feedback_is_appended_as_one_json_line_per_rating_with_the_sources_but_not_their_text(tmp_path):
    hit = Hit("d" * 64, "handbook.pdf", 6, "4", "Office hours are held every Thursday", 0.71)

    record_feedback(tmp_path, "When are office hours?", "Thursdays [1].", [hit], "up", answer_id="a1")
    record_feedback(tmp_path, "Who grades?", "Nobody.", [{"n": 1, **hit.to_json()}], False, answer_id="a2")

    lines = [json.loads(line) for line in (tmp_path / FEEDBACK_FILE).read_text().splitlines()]
    assert [(e["answer_id"], e["rating"], e["question"]) for e in lines] == [
        ("a1", "up", "When are office hours?"),
        ("a2", "down", "Who grades?"),
    ]
    assert lines[0]["sources"] == [
        {"doc_id": "d" * 64, "file": "handbook.pdf", "page": 6, "page_label": "4", "score": 0.71}
    ]
    assert lines[1]["sources"][0]["n"] == 1 and "text" not in lines[1]["sources"][0]


def test_a_rating_must_be_up_or_down(tmp_path):
    with pytest.raises(ValueError, match="rating"):
        record_feedback(tmp_path, "q", "a", [], "meh")


def test_the_summary_counts_each_answers_latest_rating_and_lists_recent_unhelpful_ones(tmp_path):
    record_feedback(tmp_path, "q1", "a1", [], "down", answer_id="1")
    record_feedback(tmp_path, "q2", "a2", [], "up", answer_id="2")
    record_feedback(tmp_path, "q1", "a1", [], "up", answer_id="1")  # changed their mind
    record_feedback(tmp_path, "q3", "a3", [], "down", answer_id="3")
    record_feedback(tmp_path, "q4", "a4", [], "down", answer_id="4")
    with open(tmp_path / FEEDBACK_FILE, "a") as f:
        f.write('{"rating": "down", "quest')  # a line cut by a crash

    summary = feedback_summary(tmp_path)

    assert (summary.helpful, summary.unhelpful, summary.total) == (2, 2, 4)
    assert [e["question"] for e in summary.recent_unhelpful] == ["q4", "q3"]
    assert feedback_summary(tmp_path, recent=1).recent_unhelpful[0]["question"] == "q4"


def test_no_feedback_file_means_an_empty_summary(tmp_path):
    assert feedback_summary(tmp_path).total == 0
