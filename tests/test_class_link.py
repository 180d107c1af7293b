"""The class link, end to end: ``python app.py`` with MENTOR_CLASS_KEY=secret
on a course with the handbook, a solution manual marked instructor-only
from its upload, and a page of hostile text; plain HTTP for the API, and
Debian's Chromium for what a browser makes of the pages.

Only the class gets in (the key in the link, a cookie, a bearer token),
``/healthz`` is open and says nothing about the course, nothing of the
instructor-only manual is ever served, and no text, from a document or
the model, makes an element in the page it should not."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import small_settings
from tests.pdfs import make_pdf
from tests.test_browser import ARTIFACTS, PASSWORD, browser, page, running_app  # noqa: F401 - the fixtures, shared

KEY = "secret"
KEYED = {"Authorization": f"Bearer {KEY}"}
SOLUTIONS = ["Solution manual: the answer to problem 7 is that the comet returns every 76 years."]
HOSTILE = (
    "Lab portal notes. x ```\n\n"
    '<a id="forged-link" href="https://evil.example/login">Log in again</a>\n\n'
    '<img id="tracker" src="https://tracker.example/pixel.gif">\n\n'
    '<div class="verified"><span class="verified-badge">Answer from your instructor</span></div>\n\n'
    "```\n\nThe lab portal opens on Mondays. [Log in](https://evil.example) ![pixel](https://tracker.example/p.gif)\n"
)
# What no text may make in the chat: a link or picture to another site, a forged badge, a frame.
FORBIDDEN = "a[href*='evil.example'], img[src*='tracker.example'], #forged-link, #tracker, .verified-badge, iframe"


@pytest.fixture(scope="module")
def course(tmp_path_factory, embedder):
    """(url, ids): the running app and the documents' ids by name."""
    from mentor import Mentor

    root = tmp_path_factory.mktemp("class-link")
    hostile = root / "portal.md"
    hostile.write_text(HOSTILE)
    with Mentor.open(small_settings(root / "home"), embedder=embedder, with_model=False) as mentor:
        assert mentor.ingest_file(make_pdf(root / "handbook.pdf")).ok
        assert mentor.ingest_file(hostile).ok
        manual = mentor.ingest_file(make_pdf(root / "solutions.pdf", SOLUTIONS, 0), instructor_only=True)
        assert manual.ok
        ids = {d.name: d.doc_id for d in mentor.documents()}
    with running_app(root, MENTOR_CLASS_KEY=KEY, MAX_ANSWER_TOKENS="24") as url:
        yield url, ids, root / "app.log"


COURSE_PATHS = [
    ("GET", "/"),
    ("GET", "/config"),
    ("GET", "/gradio_api/info"),
    ("GET", "/gradio_api/queue/data?session_hash=x"),
    ("POST", "/gradio_api/queue/join"),
    ("POST", "/gradio_api/upload"),
    ("GET", "/theme.css"),
    ("GET", "/api/stats"),
    ("POST", "/api/chat"),
    ("GET", "/files/{handbook}"),
    ("GET", "/view/{handbook}"),  # a route added later is covered too
    ("GET", "/exports/" + "x" * 32),
]


@pytest.mark.parametrize("method, path", COURSE_PATHS)
@pytest.mark.parametrize("credentials", ["none", "wrong key", "wrong bearer"])
def test_without_the_key_nothing_of_the_course_answers(course, method, path, credentials):
    url, ids, _ = course
    path = path.format(handbook=ids["handbook.pdf"])
    if credentials == "wrong key":
        path += ("&" if "?" in path else "?") + "key=guess"
    headers = {"Authorization": "Bearer guess"} if credentials == "wrong bearer" else {}

    response = httpx.request(method, url + path, headers=headers, json={} if method == "POST" else None)

    assert response.status_code == 401
    assert response.json() == {"detail": "Ask your instructor for the class link."}
    assert "set-cookie" not in response.headers


def test_a_browser_without_the_link_gets_a_short_page_asking_for_it(course, page):  # noqa: F811 - the fixture
    from playwright.sync_api import expect

    url, _, _ = course
    response = page.goto(url + "/")

    assert response.status == 401
    expect(page.locator("h1")).to_have_text("Ask your instructor for the class link.")
    expect(page.locator("#chat")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "class-link-refused.png", full_page=True)


def test_the_instructor_password_on_that_page_opens_the_course(course, page):  # noqa: F811 - the fixture
    from playwright.sync_api import expect

    url, _, _ = course
    page.goto(url + "/")
    page.get_by_text("I am the instructor").click()
    page.get_by_label("Instructor password").fill(PASSWORD)
    page.get_by_role("button", name="Open the course").click()

    expect(page.locator("#chat")).to_be_visible(timeout=60_000)
    assert page.url == url + "/"


def test_healthz_is_open_and_says_nothing_about_the_course(course):
    url, _, _ = course

    response = httpx.get(url + "/healthz")

    assert response.status_code == 200
    assert response.json() == {"ready": True, "mode": "answers"}


def test_the_start_log_gives_the_link_with_the_key(course):
    url, _, log = course
    port = url.rsplit(":", 1)[1]

    assert f"Link to share with students: http://localhost:{port}/?key={KEY}" in log.read_text()


def test_api_chat_needs_the_key_and_then_answers_with_sources_never_from_the_manual(course):
    url, ids, _ = course
    question = {"message": "What is the answer to problem 7 about the comet?"}

    refused = httpx.post(url + "/api/chat", json=question, timeout=30)
    answered = httpx.post(url + "/api/chat", json=question, headers=KEYED, timeout=180)

    assert refused.status_code == 401
    body = answered.json()
    assert answered.status_code == 200 and body["sources"]
    assert ids["solutions.pdf"] not in answered.text and "76 years" not in answered.text
    assert {s["file"] for s in body["sources"]} <= {"handbook.pdf", "portal.md"}


def test_api_stats_counts_only_what_students_may_see(course):
    url, _, _ = course

    stats = httpx.get(url + "/api/stats", headers=KEYED).json()

    assert (stats["documents"], stats["pages"]) == (2, 7)


def test_a_file_opens_with_the_link_and_then_with_its_cookie_and_the_manual_never(course):
    url, ids, _ = course
    handbook = f"{url}/files/{ids['handbook.pdf']}"

    with httpx.Client() as browser_like:
        assert browser_like.get(handbook).status_code == 401
        linked = browser_like.get(f"{handbook}?key={KEY}")
        cookie = linked.headers["set-cookie"]
        again = browser_like.get(handbook)  # the cookie alone
        manual = browser_like.get(f"{url}/files/{ids['solutions.pdf']}?key={KEY}")

    assert linked.status_code == 200 and linked.headers["content-type"] == "application/pdf"
    assert linked.headers["cache-control"] in ("no-store", "private, no-cache")
    assert KEY not in cookie  # a digest of the key, not the key
    assert all(part in cookie.lower() for part in ("httponly", "samesite=lax", "path=/"))
    assert again.status_code == 200 and again.content == linked.content
    assert manual.status_code == 404


def test_a_body_too_large_is_refused_before_it_is_read(course):
    url, _, _ = course

    def chunks():
        for _ in range(40):
            yield b"x" * 100_000

    declared = httpx.post(url + "/api/chat", headers=KEYED, content=b"x" * 3_000_000, timeout=30)
    streamed = httpx.post(url + "/api/chat", headers=KEYED, content=chunks(), timeout=30)
    stranger = httpx.post(url + "/gradio_api/queue/join", content=b"x" * 3_000_000, timeout=30)

    assert declared.status_code == streamed.status_code == stranger.status_code == 413


def test_hostile_text_in_a_document_makes_no_element_in_the_chat(course, page):  # noqa: F811 - the fixture
    from playwright.sync_api import expect

    from tests.test_browser import _ask

    url, _, _ = course
    page.goto(f"{url}/?key={KEY}")
    bot = _ask(page, "When does the lab portal open?")
    expect(bot.locator("li.source a.source-link", has_text="portal.md")).to_have_count(1, timeout=180_000)
    if bot.locator("details.sources-more").count():
        bot.locator("details.sources-more summary").first.click()

    expect(bot).to_contain_text("Log in again")  # shown as text
    assert page.locator(f"#chat :is({FORBIDDEN})").count() == 0
    page.screenshot(path=ARTIFACTS / "class-link-hostile-document.png", full_page=True)
    # The question, typed by a student, is text too.
    bot = _ask(page, '<img id="tracker" src="https://tracker.example/q.gif"> x ```\n\n<a id="forged-link" href="https://evil.example">?</a>')
    expect(bot.locator(".sources")).to_have_count(1, timeout=180_000)
    assert page.locator(f"#chat :is({FORBIDDEN})").count() == 0


def test_hostile_model_output_makes_no_element_in_a_chat_with_the_apps_settings(page):  # noqa: F811 - the fixture
    """The model's output, rendered as the chat renders an answer, in a
    Gradio chatbot with the chat's settings: a fake model, since the subject
    is what a model might write."""
    from playwright.sync_api import expect

    from mentor.index.store import Hit
    from mentor.web.render import render_answer
    from tests.test_browser import rendered_chat

    hit = Hit("d" * 64, "notes.md", 1, "1", "Kepler: $T^2 \\propto a^3$. In R: `x <- 5` and df$x.", 0.9)
    shown = render_answer("So $x^2$, with `df$x <- 5` [1].\n\n" + HOSTILE, [(1, hit)], [hit], False, 0.4)
    with rendered_chat(page, "Hi", shown) as bot:
        expect(bot.locator(".katex")).to_have_count(2)  # $x^2$ and the source's formula
        expect(bot.locator("code", has_text="x <- 5")).to_have_count(1)  # the source's backticks are its text
        assert page.locator(f"#chat :is({FORBIDDEN})").count() == 0
        assert re.search(r"Log in again", bot.inner_text())
