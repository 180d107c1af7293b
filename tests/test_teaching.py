"""How the mentor teaches: instructor-only documents never reach a student,
and the guide answer style changes the prompt as the course asks.

The tiny model cannot show what the guide style does to an answer (it
follows no such instruction); what is tested is the prompt it gets.
"""

from __future__ import annotations

import json
import re
from contextlib import closing

import httpx
import pytest

from mentor.course.info import ASSIGNMENTS, DIRECT, GUIDE, WHOLE_COURSE, CourseInfo, Teaching
from mentor.generate.answer import refusal
from mentor.generate.prompts import GUIDE_RULES, NOT_COVERED, RULES
from mentor.web.auth import AdminAuth
from mentor.web.ui import Conversation, MentorUI
from tests.conftest import served, small_settings
from tests.pdfs import make_pdf
from tests.spies import ModelSpy

SOLUTIONS = [
    "Solutions manual, for the instructor. Problem 1 solution: the escape velocity of the Earth is the "
    "square root of 2GM over r, which gives 11.2 kilometres per second.",
    "Problem 2 solution: by Kepler's second law the planet sweeps equal areas in equal times, so it moves "
    "fastest at perihelion. Problem 3 solution: a reflecting telescope gathers light with a mirror.",
    "Problem 4 solution: office hours are on Thursday, so the student should come on Thursday at 2pm. "
    "Problem 5 solution: the aperture decides how much light a telescope collects.",
]
# Words only the solutions manual holds: any of them in a student's answer,
# source or prompt would be a leak.
SECRET = ["Solutions manual", "Problem 1 solution", "Problem 2 solution", "Problem 4 solution", "solutions.pdf"]
QUESTIONS = [
    "What is escape velocity?",
    "What is the solution to problem 1?",
    "How fast must a rocket go to leave the Earth?",
    "What does Kepler's second law say?",
    "Why does a planet move fastest at perihelion?",
    "Give me the solution to problem 2.",
    "How does a reflecting telescope gather light?",
    "What decides how much light a telescope collects?",
    "When are office hours held?",
    "When should I come to office hours?",
    "What is the answer to problem 4?",
    "Explain Kepler's laws of planetary motion.",
    "What is the escape velocity of the Earth in km/s?",
    "Do telescopes use lenses or mirrors?",
    "Where is room B12?",
    "What is the best recipe for sourdough bread?",
    "Who won the football game last night?",
    "What is the solutions manual?",
    "Show me the worked solutions for the homework.",
    "What is the square root of 2GM over r?",
]
HOMEWORK = (
    "# Homework 2\n\nExercise 1. Compute the escape velocity of Mars, whose mass is 6.4e23 kg and radius "
    "3,390 km. Show your steps.\n"
)


@pytest.fixture(scope="module")
def course(tmp_path_factory, embedder, tiny_model):
    """The handbook for students, a solutions manual for the instructor only,
    and a homework sheet marked as an assignment."""
    from mentor import Mentor

    root = tmp_path_factory.mktemp("teaching")
    mentor = Mentor.open(small_settings(root / "home", max_answer_tokens=24), embedder=embedder, model=tiny_model)
    homework = root / "homework-2.md"
    homework.write_text(HOMEWORK)
    files = [make_pdf(root / "handbook.pdf"), make_pdf(root / "solutions.pdf", SOLUTIONS, front_matter=0), homework]
    assert all(r.ok for r in mentor.ingest(files))
    yield mentor
    mentor.close()


@pytest.fixture
def spy(course, tiny_model, monkeypatch):
    spy = ModelSpy(tiny_model)
    monkeypatch.setattr(course._answerer, "model", spy)
    return spy


@pytest.fixture
def solutions_only_for_the_instructor(course):
    course.library.set_flags("solutions.pdf", instructor_only=True, assignment=False)
    yield course.library.find("solutions.pdf")
    course.library.set_flags("solutions.pdf", instructor_only=False, assignment=False)


@pytest.fixture
def teaching(course):
    """Sets the course's teaching settings for one test."""

    def set_to(style: str, scope: str = WHOLE_COURSE) -> None:
        CourseInfo(teaching=Teaching(style, scope)).save(course.settings.home)

    yield set_to
    CourseInfo().save(course.settings.home)


def leaks(text: str) -> list[str]:
    return [s for s in SECRET if s.lower() in text.lower()]


def asked_without_answering(mentor, question: str):
    """Asks, and stops the answer before the model writes (its prompt and
    sources are settled by then): many questions in little time."""
    answer = mentor.ask(question)
    with closing(answer):
        return answer


def test_without_the_flag_the_solutions_manual_is_what_many_questions_find(course):
    """The control: the questions below would reach the manual if nothing kept it out."""
    found = [q for q in QUESTIONS if any(h.file == "solutions.pdf" for h in course.search(q))]

    assert len(found) >= 12, found


def test_an_instructor_only_document_never_reaches_a_source_a_prompt_or_a_refusal(
    course, spy, solutions_only_for_the_instructor
):
    manual = solutions_only_for_the_instructor
    assert manual.instructor_only

    answers = []
    for question in QUESTIONS:
        assert all(h.doc_id != manual.doc_id for h in course.search(question, 10)), question
        answers.append(asked_without_answering(course, question))
        shown = answers[-1].text + json.dumps(answers[-1].to_json())
        assert manual.doc_id not in shown and leaks(shown) == [], question

    answered = [a for a in answers if not a.refused]
    refused = [a for a in answers if a.refused]
    prompts = json.dumps(spy.calls)
    assert len(spy.calls) == len(answered) >= 10 and len(refused) >= 3
    assert manual.doc_id not in prompts and leaks(prompts) == []
    # A refusal names the closest sections: the students' documents, never the manual.
    # (Stopped before it was read, a refusal's text is what refusal() makes of its sources.)
    for a in refused:
        named = set(re.findall(r"([\w.-]+\.(?:pdf|md)), page", refusal(a.sources)))
        assert named and named <= {"handbook.pdf", "homework-2.md"}, a.question


def test_an_instructor_only_document_is_not_served_linked_or_suggested_through_the_web(
    course, solutions_only_for_the_instructor
):
    from mentor.web import create_app

    manual = solutions_only_for_the_instructor
    ui = MentorUI(course, AdminAuth("pw"))
    *_, (chat, _) = ui.answer("What is the solution to problem 1?", [], Conversation())
    assert manual.doc_id not in json.dumps(chat) and leaks(json.dumps(chat)) == []
    assert all("solutions" not in e["text"].lower() for e in ui.page()[1].examples)

    from mentor.web.access import ClassKey

    keyed = httpx.Client(headers={"Authorization": "Bearer k"}, timeout=180)
    with served(create_app(course, AdminAuth("pw"), ClassKey("k"))) as url:
        assert keyed.get(f"{url}/files/{manual.doc_id}").status_code == 404
        # The questions that ask for the manual most directly, and two it answers.
        asked = [q for q in QUESTIONS if "solution" in q.lower() or "problem" in q.lower()]
        asked += ["What is escape velocity?", "When are office hours held?"]
        assert len(asked) == 7
        for question in asked:
            body = keyed.post(f"{url}/api/chat", json={"message": question}).json()
            assert body["answer"] and manual.doc_id not in json.dumps(body) and leaks(json.dumps(body)) == [], body
            assert all(s["file"] in ("handbook.pdf", "homework-2.md") for s in body["sources"]), body
        handbook = course.library.find("handbook.pdf")
        assert keyed.get(f"{url}/files/{handbook.doc_id}").status_code == 200


def test_the_instructor_can_give_a_document_back_to_students(course):
    course.library.set_flags("solutions.pdf", instructor_only=True, assignment=False)
    assert all(h.file != "solutions.pdf" for h in course.search(QUESTIONS[1]))

    course.library.set_flags("solutions.pdf", instructor_only=False, assignment=False)
    assert course.search(QUESTIONS[1])[0].file == "solutions.pdf"


def test_the_direct_style_asks_for_a_cited_answer(course, spy, teaching):
    teaching(DIRECT)

    answer = asked_without_answering(course, "What is escape velocity?")

    assert answer.style == DIRECT
    assert spy.calls[-1][0] == {"role": "system", "content": RULES.format(course="this course", not_covered=NOT_COVERED)}


def test_the_guide_style_for_the_whole_course_asks_for_hints_and_a_question_never_a_solution(course, spy, teaching):
    teaching(GUIDE, WHOLE_COURSE)

    answer = asked_without_answering(course, "What is escape velocity?")

    system = spy.calls[-1][0]["content"]
    assert answer.style == GUIDE
    assert system == GUIDE_RULES.format(course="this course", not_covered=NOT_COVERED)
    assert "Never give a complete solution" in system and "End with one short question" in system
    assert "[1]" in system and f'"{NOT_COVERED}"' in system  # still grounded, still cited


def test_the_guide_style_for_assignments_applies_only_when_an_assignment_is_among_the_sources(
    course, spy, teaching
):
    teaching(GUIDE, ASSIGNMENTS)
    course.library.set_flags("homework-2.md", instructor_only=False, assignment=True)
    try:
        exercise = asked_without_answering(course, "How do I compute the escape velocity of Mars for exercise 1?")
        other = asked_without_answering(course, "When are office hours held?")
    finally:
        course.library.set_flags("homework-2.md", instructor_only=False, assignment=False)

    assert any(h.file == "homework-2.md" for h in exercise.sources)
    assert all(h.file != "homework-2.md" for h in other.sources)
    assert (exercise.style, other.style) == (GUIDE, DIRECT)
    assert spy.calls[-2][0]["content"].startswith('You are the mentor for the course "this course". Help the student')
    assert spy.calls[-1][0]["content"] == RULES.format(course="this course", not_covered=NOT_COVERED)


def test_flags_survive_a_new_version_of_the_document_and_a_restart(settings, embedder, tmp_path):
    from mentor import Mentor

    first = make_pdf(tmp_path / "v1" / "solutions.pdf", SOLUTIONS[:2], front_matter=0)
    second = make_pdf(tmp_path / "v2" / "solutions.pdf", SOLUTIONS, front_matter=0)
    with Mentor.open(settings, embedder=embedder, with_model=False) as mentor:
        mentor.ingest_file(first)
        mentor.library.set_flags("solutions.pdf", instructor_only=True, assignment=True)
        assert mentor.ingest_file(second).outcome.value == "replaced"
    with Mentor.open(settings, embedder=embedder, with_model=False) as mentor:
        (doc,) = mentor.documents()
        assert (doc.pages, doc.instructor_only, doc.assignment) == (3, True, True)
        assert mentor.library.student_documents() == [] and mentor.search("escape velocity") == []
