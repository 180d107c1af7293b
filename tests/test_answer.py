"""Answers: grounded prompts, cheap refusals, follow-ups, context fitting."""

from __future__ import annotations

import pytest

from mentor.generate.answer import Answer, QuestionError, refusal
from mentor.generate.prompts import NOT_COVERED
from mentor.index.store import Hit
from tests.spies import ModelSpy


@pytest.fixture
def spied(mentor, tiny_model, handbook):
    mentor.ingest([handbook])
    spy = ModelSpy(tiny_model)
    mentor._answerer.model = spy
    return mentor, spy


def test_an_answer_streams_and_cites_the_page_that_holds_it(spied):
    mentor, spy = spied
    answer = mentor.ask("When are the office hours held?")
    pieces = list(answer)

    assert len(pieces) > 1 and "".join(pieces) == answer.text
    assert (answer.sources[0].page, answer.sources[0].page_label) == (6, "4")
    prompt = spy.calls[-1][-1]["content"]
    assert "[1] handbook.pdf, page 4\nOffice hours are held every Thursday" in prompt
    assert prompt.endswith("Question: When are the office hours held?")


def test_an_off_topic_question_is_refused_without_calling_the_model(spied):
    mentor, spy = spied
    answer = mentor.ask("What is the best recipe for sourdough bread?").finish()

    assert answer.refused
    assert spy.calls == []
    assert answer.text.startswith(NOT_COVERED)
    assert "handbook.pdf, page" in answer.text  # points to the closest sections


def test_no_documents_says_there_is_nothing_yet(mentor):
    answer = mentor.ask("What is escape velocity?").finish()

    assert answer.refused and "No course materials" in answer.text


# A first turn that a follow-up ("And what is it for the Earth?") continues.
ESCAPE_VELOCITY_TURN = [
    {"role": "user", "content": "What is escape velocity?"},
    {"role": "assistant", "content": "It is the speed needed to leave a body's gravity [1]."},
]


def test_a_follow_up_is_rewritten_before_retrieval(spied):
    mentor, spy = spied
    history = list(ESCAPE_VELOCITY_TURN)  # a copy: a test may not change it for the next
    answer = mentor.ask("And what is it for the Earth?", history)
    answer.finish()

    assert spy.calls[0][0]["content"].startswith("Rewrite the student's last question")
    assert "Student: What is escape velocity?" in spy.calls[0][-1]["content"]
    assert answer.query != "And what is it for the Earth?"  # never the follow-up alone
    assert answer.sources[0].page == 4


class Rewrites:
    """A model that rewrites the follow-up as asked, always the same way."""

    name, n_ctx = "rewrites", 2048

    def count_tokens(self, text):
        return len(text) // 3

    def stream_chat(self, messages, max_tokens, **options):
        yield ' "What is the escape velocity of the Earth?"\nAnything after the first line is dropped.'


def test_a_rewrite_that_is_a_question_is_the_query_with_the_earlier_question_beside_it(mentor):
    from mentor.generate.answer import Answerer

    history = list(ESCAPE_VELOCITY_TURN)  # a copy: a test may not change it for the next
    answerer = Answerer(mentor.retriever, Rewrites(), mentor.settings)

    query = answerer.standalone("And what is it for the Earth?", history)

    assert query == "What is the escape velocity of the Earth? (What is escape velocity?)"


class Answers:
    """A model that answers the rewrite request instead of rewriting, as
    small models do: the failure the fallback exists for."""

    name, n_ctx = "answers-instead", 2048

    def count_tokens(self, text):
        return len(text) // 3

    def stream_chat(self, messages, max_tokens, **options):
        yield "Escape velocity on Earth is about 11.2 km/s."


def test_a_rewrite_that_is_no_question_falls_back_to_the_earlier_question(mentor, handbook):
    from mentor.generate.answer import Answerer

    mentor.ingest([handbook])
    history = list(ESCAPE_VELOCITY_TURN)  # a copy: a test may not change it for the next
    answerer = Answerer(mentor.retriever, Answers(), mentor.settings)

    query = answerer.standalone("And what is it for the Earth?", history)

    assert query == "What is escape velocity? And what is it for the Earth?"


def test_sources_and_history_always_fit_the_context(mentor, tiny_model):
    from mentor.generate.answer import Answerer

    answerer = Answerer(mentor.retriever, tiny_model, mentor.settings.replace(max_answer_tokens=256))
    big = "Orbital mechanics explained at length. " * 120
    hits = [Hit("d", "f.pdf", n, str(n), big, 0.9) for n in range(1, 8)]
    history = [{"role": r, "content": big} for r in ("user", "assistant") * 3]

    messages, used = answerer.prompt("What is an orbit?", hits, history, "Astro")

    total = sum(tiny_model.count_tokens(m["content"]) + 16 for m in messages)
    assert total + 256 <= tiny_model.n_ctx
    assert 1 <= len(used) < len(hits)
    assert messages[-1]["content"].endswith("Question: What is an orbit?")
    assert [m["role"] for m in messages][:2] in (["system", "user"],)


def test_a_follow_up_prompt_begins_with_the_turn_before_it_as_the_model_read_it(mentor, tiny_model):
    from mentor.generate.answer import Answerer

    answerer = Answerer(mentor.retriever, tiny_model, mentor.settings)
    first_hits = [Hit("d", "f.pdf", n, str(n), f"Page {n} says orbits are ellipses, fact {n}.", 0.9) for n in (1, 2, 3)]
    first, _ = answerer.prompt("What is an orbit?", first_hits, [], "Astro")
    history = [
        {"role": "user", "content": "What is an orbit?", "prompted": first[-1]["content"]},
        {"role": "assistant", "content": "An ellipse [1]."},
    ]
    new_hit = Hit("d", "f.pdf", 9, "9", "Page 9 says the Moon's orbit is nearly round.", 0.8)

    follow, used = answerer.prompt("And the Moon's?", [first_hits[1], new_hit], history, "Astro")

    # The rules, then the earlier turn word for word: the prompt before, continued.
    assert follow[:3] == [first[0], first[1], {"role": "assistant", "content": "An ellipse [1]."}]
    # A source the conversation holds is named, not repeated; a new one is given whole.
    assert used == [first_hits[1], new_hit]
    assert first_hits[1].text not in follow[-1]["content"] and "[1] f.pdf" in follow[-1]["content"]
    assert new_hit.text in follow[-1]["content"]


def test_citations_resolve_to_their_sources():
    hits = [Hit("d", "f.pdf", n, str(n), f"text {n}", 0.8) for n in (1, 2, 3)]
    answer = Answer("q", "q", hits, False, iter(["It is so [2], and also so [1, 3]."])).finish()

    assert [n for n, _ in answer.cited()] == [1, 2, 3]
    only_two = Answer("q", "q", hits, False, iter(["Only [2]."])).finish()
    assert [(n, h.page) for n, h in only_two.cited()] == [(2, 2)]
    assert only_two.to_json()["sources"][0]["page"] == 2


def test_an_empty_or_overlong_question_gets_a_clear_message(mentor):
    with pytest.raises(QuestionError, match="Type a question"):
        mentor.ask("   ")
    with pytest.raises(QuestionError, match="limit is 2000"):
        mentor.ask("why " * 600)


def test_refusal_points_to_the_closest_sections():
    hits = [Hit("d", "notes.pdf", 7, "5", "x", 0.1)]
    assert refusal(hits) == f"{NOT_COVERED} The closest sections I found are: notes.pdf, page 5."
