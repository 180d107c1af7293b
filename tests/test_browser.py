"""The whole app in a real browser, the way an instructor and a student use it.

``python app.py`` runs as a child process on a loopback port (the tiny model,
MiniLM, an empty MENTOR_HOME), and Debian's Chromium, driven by Playwright,
logs in to the console, drops the handbook, waits for "added", asks a
question on the chat page, watches the answer stream and follows a citation
to the stored PDF at the cited page; then drops a slide deck with a formula
on a slide, and follows a citation of that slide to the deck's text. An
answer with each kind of formula is rendered by the chat's own settings.
Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mentor.index.store import Hit
from mentor.web.ui import NO_MATERIALS
from tests.conftest import small_env
from tests.materials import make_pptx
from tests.pdfs import HANDBOOK, label_of, make_pdf

CHROMIUM = Path("/usr/bin/chromium")
OFFICE_HOURS_PAGE = next(n for n, text in enumerate(HANDBOOK, start=1) if text.startswith("Office hours"))
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "browser-test-password"
CLASS_KEY = "browser-class-key"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """``python app.py`` on a free loopback port with an empty course."""
    root = tmp_path_factory.mktemp("browser")
    with running_app(root, MAX_ANSWER_TOKENS="48") as url:
        yield url


@contextmanager
def running_app(root: Path, **env: str) -> Iterator[str]:
    """``python app.py`` on a free loopback port, its course in
    ``root/home`` and its log in ``root/app.log``, until the block ends;
    yields its URL once it is ready."""
    port = _free_port()
    env = {"MENTOR_CLASS_KEY": CLASS_KEY, **env}
    environment = small_env(root / "home", PORT=str(port), MENTOR_ADMIN_PASSWORD=PASSWORD, **env)
    log = (root / "app.log").open("w")
    command = [sys.executable, "app.py"]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, root / "app.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Not a skip: `make test` installs it, and a skipped browser test would hide a broken UI.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    yield context.new_page()
    context.close()


def test_instructor_uploads_a_pdf_and_a_student_follows_a_streamed_answer_to_the_cited_page(app_url, page, tmp_path):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{app_url}/?key={CLASS_KEY}")
    expect(page.locator("#chat")).to_contain_text(NO_MATERIALS)

    # The instructor logs in and drops the handbook.
    _upload(page, make_pdf(tmp_path / "handbook.pdf"), "handbook.pdf: added")
    expect(page.locator("#console table")).to_contain_text("handbook.pdf")
    page.screenshot(path=ARTIFACTS / "browser-instructor-console.png", full_page=True)

    # A student asks on the chat page and watches the answer grow.
    bot = _ask(page, "When are office hours held?")
    lengths = _text_lengths_until(bot, page.locator("#chat .sources a.source-link"))
    assert len(set(lengths)) >= 3, f"the answer did not stream: lengths seen {lengths}"

    link = page.locator("#chat .sources a.source-link").first
    expect(link).to_contain_text(f"handbook.pdf, page {label_of(OFFICE_HOURS_PAGE)}")
    page.screenshot(path=ARTIFACTS / "browser-chat-answer.png", full_page=True)

    # The citation opens the app's viewer at its physical page, printed label
    # shown (tests/test_browser_viewer.py checks the marked passage); the
    # original is a click away.
    with page.context.expect_page() as opened:
        link.click()
    viewer = opened.value
    view = rf"{re.escape(app_url)}/view/([0-9a-f]{{64}})\?page={OFFICE_HOURS_PAGE}&chunk=\d+#page={OFFICE_HOURS_PAGE}"
    assert (found := re.fullmatch(view, viewer.url)), viewer.url
    expect(viewer.locator("#label")).to_have_text(f"Page {label_of(OFFICE_HOURS_PAGE)}")
    expect(viewer.locator("#original")).to_have_attribute("href", f"/files/{found[1]}#page={OFFICE_HOURS_PAGE}")
    request = urllib.request.Request(f"{app_url}/files/{found[1]}", headers={"Authorization": f"Bearer {CLASS_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"] == "application/pdf"
        assert response.read() == (tmp_path / "handbook.pdf").read_bytes()


def test_a_student_follows_a_citation_to_a_slide_and_its_formula_renders(app_url, page, tmp_path):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    deck = make_pptx(
        tmp_path / "orbits.pptx",
        deck={
            1: ("Course outline", "Orbits, tides and telescopes, one topic a week."),
            2: ("Kepler's third law", "Kepler's third law: $T^2 \\propto a^3$ for every planet. Renting a telescope costs $5 and $10."),
        },
        notes={},
        picture_slide=None,
    )
    page.goto(f"{app_url}/?key={CLASS_KEY}")
    _upload(page, deck, "orbits.pptx: added (2 slides, 2 chunks)")

    bot = _ask(page, "What does Kepler's third law say about a planet's period?")
    link = bot.locator("a.source-link", has_text="orbits.pptx, slide 2")
    expect(link).to_have_count(1, timeout=180_000)
    if not link.is_visible():  # among the passages searched, folded
        bot.locator("details.sources-more summary").click()
    cited = page.locator("a.source-link", has_text="orbits.pptx, slide 2")  # relative: inside each source
    snippet = bot.locator("li.source", has=cited).locator(".source-snippet")
    expect(snippet.locator(".katex")).to_have_count(1)
    expect(snippet).to_contain_text("Renting a telescope costs $5 and $10.")
    page.screenshot(path=ARTIFACTS / "browser-slide-citation.png", full_page=True)

    # The citation opens the deck's text kept at ingest, at slide 2, marked.
    with page.context.expect_page() as opened:
        link.click()
    view = opened.value
    view.wait_for_load_state()
    assert re.fullmatch(rf"{re.escape(app_url)}/files/[0-9a-f]{{64}}#page=2", view.url), view.url
    target = view.locator("section:target")
    expect(target.locator("h2")).to_have_text("Slide 2")
    expect(target).to_contain_text("Renting a telescope costs $5 and $10.")
    view.screenshot(path=ARTIFACTS / "browser-slide-view.png", full_page=True)


def test_an_answer_renders_each_kind_of_formula_and_leaves_prices_alone(page):
    """The chat's own settings (LATEX_DELIMITERS) and ``render_answer`` in a
    Gradio chatbot of their own: no model writes formulas on demand."""
    from playwright.sync_api import expect

    from mentor.web.render import render_answer

    ARTIFACTS.mkdir(exist_ok=True)
    answer = (
        "Inline $E = mc^2$ and \\(a^2 + b^2 = c^2\\). Displayed: $$\\int_0^1 x\\,dx = \\frac{1}{2}$$ and "
        "\\[\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}\\] [1]. A ticket costs $5 and $10."
    )
    hit = Hit("d" * 64, "notes.md", 1, "1", "Kepler: $T^2 \\propto a^3$. The lab fee is $5 and $10.", 0.9)
    shown = render_answer(answer, [(1, hit)], [hit], False, 0.4)
    with rendered_chat(page, "Formulas?", shown) as bot:
        # Four formulas in the answer, two of them displayed, and one in the source.
        expect(bot.locator(".katex")).to_have_count(5)
        expect(bot.locator(".katex-display")).to_have_count(2)
        expect(bot.locator(".source-snippet .katex")).to_have_count(1)
        expect(bot).to_contain_text("A ticket costs $5 and $10.")
        expect(bot).to_contain_text("The lab fee is $5 and $10.")
        page.screenshot(path=ARTIFACTS / "browser-math.png", full_page=True)


@contextmanager
def rendered_chat(page, question: str, shown: str) -> Iterator:
    """``shown``, an answer as the chat renders it, in a Gradio chatbot with
    the chat's settings, opened in ``page``: the answer's message."""
    import gradio as gr

    from mentor.web.render import LATEX_DELIMITERS

    with gr.Blocks() as demo:
        gr.Chatbot(
            value=[{"role": "user", "content": question}, {"role": "assistant", "content": shown}],
            latex_delimiters=LATEX_DELIMITERS,
            sanitize_html=True,
            allow_tags=False,
            elem_id="chat",
        )
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True)
    try:
        page.goto(url)
        yield page.locator("#chat .message.bot").last
    finally:
        demo.close()


def _upload(page, path: Path, done: str) -> None:
    """Logs in as the instructor and adds ``path``; waits for ``done``."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Instructor").click()
    page.get_by_label("Instructor password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#console")).to_be_visible()
    page.locator("#console input[type=file]").first.set_input_files(path)
    page.get_by_role("button", name="Add to the course").click()
    expect(page.locator("#console")).to_contain_text(done, timeout=180_000)


def _ask(page, question: str):
    """Asks ``question`` on the chat page; the answer's message."""
    page.get_by_role("tab", name="Ask").click()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    return page.locator("#chat .message.bot").last


def _text_lengths_until(message, done, seconds: float = 180) -> list[int]:
    """The lengths of a message's text, sampled until ``done`` appears."""
    lengths: list[int] = []
    deadline = time.monotonic() + seconds
    while not done.count():
        assert time.monotonic() < deadline, f"no sources after {seconds:.0f} s; lengths seen {lengths}"
        if message.count():
            lengths.append(len(message.inner_text()))
        time.sleep(0.05)
    return lengths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"app.py did not answer /healthz in {seconds:.0f} s:\n{log.read_text()[-3000:]}")
