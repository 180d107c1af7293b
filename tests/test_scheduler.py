"""The scheduler: many answers from one llama.cpp context, with the real tiny model.

Every test but the line's own rules runs on the session's batched model
(tests/conftest.py: 4 slots on a CPU, 2,048 tokens each), waiting first
until the tests before it left nothing running.
"""

from __future__ import annotations

import time

import pytest

from mentor.generate import scheduler as scheduler_module
from mentor.generate.admission import Admission, ClientBusy, QueueFull, Request
from mentor.generate.answer import Answerer
from mentor.generate.scheduler import RepeatGuard, Sampling
from mentor.index.store import Hit
from tests.conftest import eventually, small_settings
from tests.pdfs import HANDBOOK

TOPICS = ["orbits", "telescopes", "escape velocity", "office hours", "comets", "the Moon"]
GREEDY = Sampling(0.0)


@pytest.fixture
def model(tiny_model):
    """The session's model, once nothing is running or waiting on it."""
    assert eventually(lambda: tiny_model.scheduler.status() | {"steps": 0} == {"slots": 4, "running": 0, "waiting": 0, "steps": 0})
    return tiny_model


def prompt(model, topic: str, padding: int = 0) -> list[int]:
    """A chat prompt about ``topic``; ``padding`` sentences make it longer."""
    messages = [
        {"role": "system", "content": "You are a helpful mentor. " + "Answer briefly and cite your sources. " * padding},
        {"role": "user", "content": f"Explain {topic} to a first-year student."},
    ]
    return model._llama.tokenize(model.format_prompt(messages).encode(), add_bos=False, special=True)


# --- Answers ------------------------------------------------------------------


def test_six_answers_written_together_are_each_the_answer_written_alone(model):
    # 30 to 150 prompt tokens: most are read in more than one chunk, and the
    # last two wait for a slot and join the running batch.
    prompts = [prompt(model, topic, padding=4 * i) for i, topic in enumerate(TOPICS)]
    assert len(prompts[0]) < model.scheduler.prefill_chunk < len(prompts[-1]) // 2

    alone = ["".join(model.scheduler.submit(p, 32, GREEDY)) for p in prompts]
    streams = [model.scheduler.submit(p, 32, GREEDY) for p in prompts]
    together = ["".join(s) for s in streams]

    assert all(alone) and len(set(alone)) == len(alone)
    assert together == alone
    # The last two waited for a slot, then joined the others while they ran.
    started = [s.request.started_step for s in streams]
    assert max(started[:4]) < started[-1] < max(s.request.ended_step for s in streams[:4])


def test_a_request_that_arrives_while_another_streams_joins_it(model):
    first = model.scheduler.submit(prompt(model, "orbits"), 64, GREEDY)
    opening = next(first)
    steps_then = model.scheduler.status()["steps"]

    second = model.scheduler.submit(prompt(model, "comets"), 8, GREEDY)
    assert "".join(second) and opening + "".join(first)

    assert second.request.started_step <= steps_then + 1
    # Written while the first was: in the same batch.
    assert first.request.started_step < second.request.started_step
    assert second.request.ended_step < first.request.ended_step


def test_a_stopped_answer_frees_its_slot_and_the_next_in_line_starts_within_one_step(model):
    running = [model.scheduler.submit(prompt(model, topic), 400, GREEDY) for topic in TOPICS[:4]]
    waiting = model.scheduler.submit(prompt(model, "the Moon"), 8, GREEDY)
    assert [next(s) for s in running]  # all four are writing
    assert next(waiting.positions()) == 0 and not waiting.request.started

    steps_then = model.scheduler.status()["steps"]
    running[0].close()

    assert eventually(lambda: waiting.request.started, timeout=30)
    assert waiting.request.started_step <= steps_then + 1
    assert "".join(waiting)
    for s in running:
        s.close()


def test_an_answer_stopped_while_it_waits_leaves_the_line(model):
    running = [model.scheduler.submit(prompt(model, topic), 400, GREEDY) for topic in TOPICS[:4]]
    behind = [model.scheduler.submit(prompt(model, topic), 8, GREEDY) for topic in TOPICS[4:]]
    assert [next(s) for s in running] and model.scheduler.status()["waiting"] == 2

    behind[0].close()

    assert model.scheduler.status()["waiting"] == 1
    assert next(behind[1].positions()) == 0  # it moved up
    for s in running + behind:
        s.close()


def test_one_client_gets_no_more_than_its_share_of_the_slots(model):
    blockers = [model.scheduler.submit(prompt(model, t), 400, GREEDY, client="x") for t in TOPICS[:4]]
    assert [next(s) for s in blockers]
    greedy = [model.scheduler.submit(prompt(model, t), 200, GREEDY, client="a") for t in TOPICS[:4]]
    fair = [model.scheduler.submit(prompt(model, t), 200, GREEDY, client="b") for t in TOPICS[4:]]

    for s in blockers:
        s.close()

    assert eventually(lambda: all(s.request.ended_step is not None for s in blockers), timeout=30)
    assert eventually(lambda: model.scheduler.status()["running"] == 4, timeout=30)
    # Two clients want the four slots: two each, although "a" asked first.
    assert [s.request.started for s in greedy] == [True, True, False, False]
    assert [s.request.started for s in fair] == [True, True]
    for s in greedy + fair:
        s.close()


def test_the_line_keeps_order_shares_fairly_and_refuses_past_its_limit():
    line = Admission(slots=2, queue_limit=3)
    a1, a2, b1, c1 = Request("a"), Request("a"), Request("b"), Request("c")
    for r in (a1, a2, b1, c1):
        line.enqueue(r)

    assert line.admit() == [a1, b1]  # a2 came before b1, but one slot is "a"'s share
    assert [line.ahead(r) for r in (a1, a2, c1)] == [None, 0, 1]
    with pytest.raises(ClientBusy, match="already have 2 questions in progress"):
        line.enqueue(Request("a"))
    line.enqueue(Request("d"))
    with pytest.raises(QueueFull, match="answering 2 questions and 3 are waiting"):
        line.enqueue(Request("e"))
    line.release(b1)
    assert line.admit() == [c1]  # a2 is first in line, but "a" holds its share


def test_a_client_alone_may_use_every_slot():
    line = Admission(slots=2, queue_limit=0)
    x1, x2 = Request("x"), Request("x")
    line.enqueue(x1)
    line.enqueue(x2)

    assert line.admit() == [x1, x2]
    with pytest.raises(QueueFull):
        line.enqueue(Request("y"))


def test_counting_tokens_never_waits_behind_a_generation(model):
    long = prompt(model, "orbits", padding=150)  # about 1,200 tokens: many chunks
    stream = model.scheduler.submit(long, 16, GREEDY)
    before = dict(model.scheduler.timings), model.scheduler.status()["steps"]

    counts, question = [], "How do I read a CSV file?"
    expected = model.count_tokens(question)
    while model.scheduler.status()["steps"] < before[1] + 5:
        began = time.perf_counter()
        assert model.count_tokens(question) == expected
        counts.append(time.perf_counter() - began)
        time.sleep(0.02)

    step_s = (model.scheduler.timings["step_s"] - before[0]["step_s"]) / (model.scheduler.status()["steps"] - before[1])
    assert max(counts) < step_s / 4, (max(counts), step_s)
    stream.close()


# --- A repeating answer ----------------------------------------------------------


def test_the_repeat_guard_fires_at_the_first_repeat_of_a_block():
    guard = RepeatGuard(span=3)
    text = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3]

    assert [guard.seen(t) for t in text] == [False] * 9 + [True]


def test_a_looping_answer_stops_at_its_first_repeated_block_and_is_otherwise_unchanged(model, tmp_path, monkeypatch):
    # With the handbook as its sources, the tiny model writes one paragraph
    # about the course over and over at temperature 0 (with flash attention
    # off on the CPU; the escape-velocity question it looped on before no
    # longer loops).
    answerer = Answerer(None, model, small_settings(tmp_path))
    hits = [Hit("d", "handbook.pdf", n, str(n), text, 0.6) for n, text in enumerate(HANDBOOK, start=1)]
    messages, _ = answerer.prompt("Explain orbits.", hits, [], "Astronomy 101")
    tokens = model._llama.tokenize(model.format_prompt(messages).encode(), add_bos=False, special=True)

    monkeypatch.setattr(scheduler_module, "REPEAT_SPAN", 10_000)
    unguarded = "".join(model.scheduler.submit(tokens, 200, GREEDY))
    monkeypatch.undo()
    guarded = "".join(model.scheduler.submit(tokens, 200, GREEDY))

    opening = 'The course is called "Astronomy 101". It is a course that teaches you about the science of astronomy.'
    assert unguarded.count(opening) >= 3  # it loops until max_tokens
    assert unguarded.startswith(guarded) and len(guarded) < len(unguarded)
    # Cut a few words into the first repeat of the paragraph.
    assert guarded.count(opening) == 2 and guarded[-80:] in guarded[:-80]


def test_a_script_that_makes_up_a_new_conversation_for_every_question_gets_one_clients_share():
    line = Admission(slots=4, queue_limit=10)
    script = [Request(f"6.6.6.6 api:{n}") for n in range(4)]
    students = [Request("81.2.69.160 session:s1"), Request("81.2.69.161 session:s2")]
    for r in (*script, *students):
        line.enqueue(r)

    started = line.admit()

    # Three clients: the script, whatever ids it makes up, gets its share,
    # ceil(4 slots / 3 clients) = 2, and both students get theirs. (A slot
    # nobody else waits for is not left idle: a lone client may use it.)
    assert all(s in started for s in students) and sum(r in started for r in script) == 2
    with pytest.raises(ClientBusy):
        line.enqueue(Request("6.6.6.6 api:made-up"))


def test_within_one_address_the_session_running_fewest_goes_first():
    # Three slots: one address may hold three questions (as many as slots).
    line = Admission(slots=3, queue_limit=4)
    first, again, classmate = Request("10.0.0.1 session:a"), Request("10.0.0.1 session:a"), Request("10.0.0.1 session:b")
    for r in (first, again, classmate):
        line.enqueue(r)

    # The classmate's first question overtakes session a's second.
    assert line.admit() == [first, classmate, again]


# --- Reading a prompt once --------------------------------------------------------

RULES = "You are the mentor for the course Astronomy. Answer using ONLY the numbered sources. " * 3


def ask(model, messages: list[dict], tokens: int = 32) -> tuple[str, int]:
    """The greedy answer to ``messages`` and how many prompt tokens were found in the cache."""
    prompt = model._tokens(messages)
    stream = model.scheduler.submit(prompt, tokens, GREEDY, shared=model.shared_length(messages, prompt))
    return "".join(stream), stream.request.reused


def turn(topic: str) -> dict:
    facts = " ".join(f"Fact {i} about {topic}: it matters for the exam." for i in range(12))
    return {"role": "user", "content": f"Sources:\n\n[1] notes.pdf, p. 3\n{facts}\n\nQuestion: What is {topic}?"}


@pytest.fixture(scope="module")
def fresh_model():
    """The same model with no reuse: every prompt read whole."""
    from mentor.generate.llm import LlamaCppModel
    from tests.conftest import tiny_gguf

    with LlamaCppModel(tiny_gguf(), n_ctx=2048, n_gpu_layers=0, n_parallel=2, reuse=False) as fresh:
        yield fresh


def conversation(model) -> list[tuple[str, int]]:
    """Two students, a follow-up, the same question again, and a new course name."""
    system = {"role": "system", "content": RULES}
    first = ask(model, [system, turn("comets")])
    other = ask(model, [system, turn("tides")])
    follow = ask(model, [system, turn("comets"), {"role": "assistant", "content": first[0]}, turn("the comet's tail")])
    again = ask(model, [system, turn("comets")])
    renamed = ask(model, [{"role": "system", "content": RULES.replace("Astronomy", "Physics")}, turn("comets")])
    return [first, other, follow, again, renamed]


def test_answers_from_the_cache_are_word_for_word_those_read_whole(model, fresh_model):
    with_reuse = conversation(model)
    without = conversation(fresh_model)

    assert [text for text, _ in with_reuse] == [text for text, _ in without]
    assert all(text for text, _ in with_reuse)
    assert all(reused == 0 for _, reused in without)


def test_a_follow_up_reads_only_what_is_new_and_every_student_shares_the_rules(model):
    system = {"role": "system", "content": RULES}
    rules = model.shared_length([system, turn("x")], model._tokens([system, turn("x")]))
    first_prompt = model._tokens([system, turn("orbits")])
    first, _ = ask(model, [system, turn("orbits")])
    _, other = ask(model, [system, turn("eclipses")])
    _, follow = ask(model, [system, turn("orbits"), {"role": "assistant", "content": first}, turn("the orbit's shape")])
    optics = {"role": "system", "content": RULES.replace("Astronomy", "Optics")}
    new_rules = model.shared_length([optics, turn("x")], model._tokens([optics, turn("x")]))
    _, renamed = ask(model, [optics, turn("orbits")])
    _, renamed_again = ask(model, [optics, turn("eclipses")])
    _, next_one = ask(model, [optics, turn("gravity")])

    assert rules > 40
    # Another student's question starts from the rules, read once for all.
    assert other >= rules
    # The follow-up finds its whole last prompt, and the answer after it.
    assert follow > len(first_prompt)
    # A new course name is a new beginning: read again, then kept for the next.
    assert renamed < rules
    assert renamed_again >= new_rules and next_one >= new_rules
    assert model.scheduler.shared_tokens == new_rules
