"""Verified answers: the instructor's answer comes first for a question close
to theirs (no model call), marked as theirs, with its citations; a different
question does not get it."""

from __future__ import annotations

import pytest

from mentor.course.questions import QuestionsError
from tests.spies import ModelSpy

VERIFIED = "When are office hours held?"
REPLY = "Thursdays from 2 to 4 pm in room B12 of the physics building. Bring your problem sets."


@pytest.fixture
def course(mentor, handbook, tiny_model):
    """The handbook, a verified answer citing its office hours page, and a
    spy on the real model."""
    assert mentor.ingest([handbook])[0].ok
    office = mentor.search(VERIFIED, 1)
    assert office[0].page == 6
    mentor.questions.save_verified(VERIFIED, REPLY, office)
    mentor._answerer.model = ModelSpy(tiny_model)
    return mentor


@pytest.mark.parametrize("asked", ["When are office hours?", "When are office hours held", "What is the office hours schedule?"])
def test_a_paraphrase_of_a_verified_question_gets_the_verified_answer_without_the_model(course, asked):
    answer = course.ask(asked).finish()

    assert answer.text == REPLY and answer.verified.question == VERIFIED and not answer.refused
    assert [(h.file, h.page, h.page_label) for h in answer.sources] == [("handbook.pdf", 6, "4")]
    assert course._answerer.model.calls == []
    assert answer.to_json()["verified"] == {"question": VERIFIED}
    (kept,), _ = course.questions.asked()
    assert kept.verified_id == answer.verified.id and kept.question == asked
    assert course.questions.verified_used() == {answer.verified.id: 1}


@pytest.mark.parametrize("asked", ["Where is the physics building?", "When is the midterm exam?", "What is escape velocity?"])
def test_a_different_question_does_not_get_it(course, asked):
    answer = course.ask(asked)
    answer.close()

    assert answer.verified is None and answer.text != REPLY


def test_the_instructor_edits_and_removes_a_verified_answer(course):
    (verified,) = course.questions.verified_answers()

    edited = course.questions.save_verified(VERIFIED, "Thursdays, 2-4 pm. Room B12.", verified.citations, verified.id)
    assert edited.id == verified.id and edited.updated_at >= verified.updated_at
    assert course.ask("When are office hours?").finish().text == "Thursdays, 2-4 pm. Room B12."

    course.questions.remove_verified(verified.id)
    assert course.questions.verified_answers() == []
    assert course.ask("When are office hours?").verified is None
    with pytest.raises(QuestionsError, match="no longer exists"):
        course.questions.save_verified(VERIFIED, "x", (), verified.id)


def test_a_verified_answer_needs_a_question_and_an_answer(course):
    with pytest.raises(QuestionsError, match="both the question and your answer"):
        course.questions.save_verified("  ", REPLY)
    with pytest.raises(QuestionsError, match="both the question and your answer"):
        course.questions.save_verified(VERIFIED, "")


def test_a_citation_of_a_document_no_longer_for_students_is_not_shown(course):
    course.library.set_flags("handbook.pdf", instructor_only=True, assignment=False)

    answer = course.ask("When are office hours?").finish()

    assert answer.text == REPLY and answer.sources == []


def test_verified_answers_work_in_sources_only_mode(settings, embedder, course):
    """Without a model the instructor's answer is still given whole; any
    other question gets the passages, and both are kept for the insights."""
    from mentor import Mentor
    from mentor.generate.prompts import SOURCES_ONLY

    course.close()
    with Mentor.open(settings, embedder=embedder, with_model=False) as sources_only:
        assert sources_only.model is None
        verified = sources_only.ask("When are office hours?").finish()
        passages = sources_only.ask("What is escape velocity?").finish()

        assert (verified.text, verified.verified.question) == (REPLY, VERIFIED)
        assert [(h.file, h.page) for h in verified.sources] == [("handbook.pdf", 6)]
        assert passages.text == SOURCES_ONLY and passages.verified is None and not passages.refused
        assert passages.sources[0].page == 4  # the escape velocity page
        kept, _ = sources_only.questions.asked()
        assert [(q.question, q.verified_id is not None) for q in kept] == [
            ("When are office hours?", True),
            ("What is escape velocity?", False),
        ]


def test_the_store_refuses_what_it_cannot_keep(course):
    with pytest.raises(QuestionsError, match="Write the question"):
        course.questions.ask_instructor("   ")
    with pytest.raises(QuestionsError, match="Write your reply"):
        course.questions.reply(course.questions.ask_instructor("Why?").id, " ")
    with pytest.raises(QuestionsError, match="no longer kept"):
        course.questions.reply(999, "An answer")


def test_a_request_is_open_until_the_instructor_replies_and_the_reply_can_become_a_verified_answer(course):
    request = course.questions.ask_instructor("  Is the   midterm open book? ", "I don't know.", "  Ada  L. ")
    course.questions.ask_instructor("How long is the final?")

    assert (request.question, request.name, request.mentor_answer, request.open) == (
        "Is the midterm open book?", "Ada L.", "I don't know.", True,
    )  # fmt: skip
    assert [r.question for r in course.questions.requests(only_open=True)] == [request.question, "How long is the final?"]

    verified = course.questions.save_verified(request.question, "Yes: one page of notes.")
    replied = course.questions.reply(request.id, "Yes: one page of notes.", verified.id)

    assert not replied.open and replied.verified_id == verified.id
    assert [r.question for r in course.questions.requests(only_open=True)] == ["How long is the final?"]
    assert course.questions.replies([request.ticket, "forged-ticket"]) == [replied]
    assert course.ask("Is the midterm exam open book?").finish().text == "Yes: one page of notes."
