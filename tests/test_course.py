"""The course settings: the course page, and how the mentor teaches."""

from __future__ import annotations

import json

import pytest

from mentor.course.info import (
    ASSIGNMENTS,
    COURSE_FILE,
    DEFAULT_NAME,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_WELCOME,
    DIRECT,
    GUIDE,
    WHOLE_COURSE,
    CourseError,
    CourseInfo,
    Teaching,
    title_of,
)


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


def test_a_new_course_answers_directly_and_keeps_questions_for_a_term():
    assert Teaching() == Teaching(DIRECT, WHOLE_COURSE, DEFAULT_RETENTION_DAYS) and DEFAULT_RETENTION_DAYS == 120


def test_teaching_settings_survive_a_save_and_a_load_beside_the_course_page(tmp_path):
    CourseInfo("Astronomy 101", "Hello", ("Why?",), Teaching.from_form(GUIDE, ASSIGNMENTS, "30")).save(tmp_path)

    course = CourseInfo.load(tmp_path)
    assert course.teaching == Teaching(GUIDE, ASSIGNMENTS, 30) and course.examples == ("Why?",)
    assert json.loads((tmp_path / COURSE_FILE).read_text())["teaching"] == {
        "style": "guide",
        "guide_scope": "assignments",
        "retention_days": 30,
    }


@pytest.mark.parametrize(
    ("style", "scope", "days", "message"),
    [
        ("socratic", WHOLE_COURSE, 30, "answer style"),
        (GUIDE, "some", 30, "assignments only"),
        (DIRECT, WHOLE_COURSE, "a term", "number of days"),
        (DIRECT, WHOLE_COURSE, 0, "from 1 to 730"),
        (DIRECT, WHOLE_COURSE, 731, "from 1 to 730"),
    ],
)
def test_teaching_settings_the_mentor_cannot_use_are_refused_with_a_reason(style, scope, days, message):
    with pytest.raises(CourseError, match=message):
        Teaching.from_form(style, scope, days)


def test_unusable_saved_teaching_settings_fall_back_to_the_defaults(tmp_path):
    (tmp_path / COURSE_FILE).write_text(json.dumps({"name": "Astro", "teaching": {"style": "shout"}}))

    assert CourseInfo.load(tmp_path) == CourseInfo(name="Astro")
