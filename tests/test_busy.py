"""A full classroom: the app asked more than it can hold at once.

Its own small line, so that it fills quickly: the real tiny model with two
slots and two places in line, served by uvicorn on loopback with the
handbook indexed and a short /api/chat timeout.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.conftest import eventually, served, small_settings, tiny_gguf
from tests.pdfs import make_pdf

QUESTION = "When are office hours held?"
# Room for an answer on a busy 2-core machine; the timeout test shortens it.
TIMEOUT = 60.0
SHORT_TIMEOUT = 3.0
KEY = "busy-class-key"
keyed = httpx.Client(headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture(scope="module")
def app(tmp_path_factory, embedder):
    """(url, mentor) of a served app whose model holds 2 answers and 2 waiting."""
    from mentor import Mentor
    from mentor.generate.llm import LlamaCppModel
    from mentor.web import create_app
    from mentor.web.access import ClassKey
    from mentor.web.auth import AdminAuth

    root = tmp_path_factory.mktemp("busy")
    settings = small_settings(root / "home", max_answer_tokens=8, top_k=1, chat_timeout=TIMEOUT)
    with LlamaCppModel(tiny_gguf(), n_ctx=1024, n_gpu_layers=0, n_parallel=2, queue_limit=2) as model:
        with Mentor.open(settings, embedder=embedder, model=model) as mentor:
            assert mentor.ingest_file(make_pdf(root / "handbook.pdf")).ok
            with served(create_app(mentor, AdminAuth("unused"), ClassKey(KEY))) as url:
                yield url, mentor


def test_a_burst_of_api_chats_is_answered_or_refused_at_once_while_the_page_stays_up(app):
    url, mentor = app
    replies: list[httpx.Response | Exception] = []
    health: list[float] = []
    burst_over = threading.Event()

    def ask():
        try:
            replies.append(keyed.post(f"{url}/api/chat", json={"message": QUESTION}, timeout=TIMEOUT + 30))
        except Exception as e:  # noqa: BLE001 - a hang or a dropped connection is a failure below
            replies.append(e)

    def probe():
        # Every probe is recorded, a failure or a timeout as infinitely slow:
        # an assert here, in a thread, would be lost.
        while not burst_over.is_set():
            began = time.monotonic()
            try:
                ready = httpx.get(f"{url}/healthz", timeout=10).json()["ready"]
            except (httpx.HTTPError, ValueError, KeyError):
                ready = False
            health.append(time.monotonic() - began if ready is True else float("inf"))
            time.sleep(0.2)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    askers = [threading.Thread(target=ask, daemon=True) for _ in range(45)]
    for t in askers:
        t.start()
    for t in askers:
        t.join(TIMEOUT + 30)
    page = keyed.get(f"{url}/", timeout=10)
    burst_over.set()
    prober.join(15)
    assert not prober.is_alive()

    assert len(replies) == 45 and not [r for r in replies if isinstance(r, Exception)]
    answered = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 503]
    assert len(answered) + len(refused) == 45
    assert answered and all(r.json()["answer"] for r in answered)
    # /api/chat takes half the model's line (2 + 2): the rest are refused at once.
    assert len(refused) >= 45 - 2
    assert all("Please ask again in a minute" in r.json()["detail"] for r in refused)
    assert all(r.headers["retry-after"] == "30" for r in refused)
    assert page.status_code == 200 and "Course Mentor" in page.text
    # Before the scheduler, /healthz did not answer within 30 s of such a burst.
    assert len(health) >= 3 and max(health) < 10, health


def test_an_api_chat_that_waits_too_long_is_stopped_and_leaves_the_line(app, monkeypatch):
    url, mentor = app
    monkeypatch.setattr(mentor, "settings", mentor.settings.replace(chat_timeout=SHORT_TIMEOUT))
    question = [{"role": "user", "content": "Tell me everything about the planets."}]
    blockers = [mentor.model.stream_chat(question, 900) for _ in range(3)]  # both slots, and one waiting
    try:
        assert all(next(s) for s in blockers[:2])
        began = time.monotonic()
        reply = keyed.post(f"{url}/api/chat", json={"message": QUESTION}, timeout=TIMEOUT + 30)
        took = time.monotonic() - began

        assert reply.status_code == 503
        assert reply.json()["detail"].startswith(f"No answer within {SHORT_TIMEOUT:g} s: the mentor is busy.")
        assert SHORT_TIMEOUT <= took < SHORT_TIMEOUT + 5
        # Only the blockers are left in the line: a blocker may have ended
        # meanwhile and let the third in, so their count is not fixed.
        scheduler = mentor.model.scheduler
        with scheduler._lock:
            held = scheduler._admission.running + scheduler._admission.waiting
        assert len(held) >= 2 and [r.client for r in held] == [None] * len(held)
    finally:
        for s in blockers:
            s.close()


@pytest.mark.parametrize("conversation", ["c1", "made-up-for-this-question"])
def test_a_client_that_already_has_every_slot_is_told_to_wait_with_a_429_whatever_conversation_it_names(
    app, conversation
):
    url, mentor = app
    question = [{"role": "user", "content": "Tell me everything about the planets."}]
    # The fair share counts the address: a new conversation id is the same client.
    client = "127.0.0.1 api:c1"
    scheduler = mentor.model.scheduler

    def idle() -> bool:  # a closed stream leaves its slot at the scheduler's next step
        with scheduler._lock:
            return not scheduler._admission.running + scheduler._admission.waiting

    assert eventually(idle, 60)
    mine = [mentor.model.stream_chat(question, 900, client=client) for _ in range(2)]
    try:
        reply = keyed.post(f"{url}/api/chat", json={"message": QUESTION, "conversation_id": conversation}, timeout=30)

        assert reply.status_code == 429
        assert reply.json()["detail"] == (
            "You (or others on your network) already have 2 questions in progress; wait for their answers first."
        )
    finally:
        for s in mine:
            s.close()
