"""The instructor's view in a real browser: the Insights tab after twenty
questions, and a verified answer as a student sees it.

The course is made before ``python app.py`` starts on it (the handbook and
one verified answer, through the engine); twenty questions then go through
``/api/chat`` of the running app, as students' would, and Debian's Chromium
opens the console and the chat page. Screenshots land in ``test-artifacts/``
(not committed), like the other browser test's.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import small_settings
from tests.pdfs import make_pdf
from tests.test_browser import ARTIFACTS, CLASS_KEY, PASSWORD, browser, page, running_app  # noqa: F401 - the fixtures, shared

VERIFIED_QUESTION = "When are office hours held?"
VERIFIED_ANSWER = "Every Thursday, 2 to 4 pm, in room B12 of the physics building. Bring your problem sets."
OFF_COURSE = [
    "What is the best recipe for sourdough bread?",
    "How do I bake sourdough bread at home?",
    "Who won the football game last night?",
    "What is the capital of France?",
]
# Twenty questions as a class might ask them: four topics of the handbook,
# several wordings each, and the four it does not cover.
QUESTIONS = [
    "What is escape velocity?",
    "How is escape velocity computed?",
    "What does escape velocity mean?",
    "Explain escape velocity.",
    "What is the escape velocity of the Earth?",
    "How do reflecting telescopes work?",
    "What is the difference between refracting and reflecting telescopes?",
    "Do refracting telescopes use lenses?",
    "What does the aperture of a telescope decide?",
    "What is Kepler's first law?",
    "What does Kepler's second law say?",
    "Explain Kepler's laws of planetary motion.",
    "What are Kepler's laws?",
    "When are office hours?",
    VERIFIED_QUESTION,
    "Where are office hours held?",
    *OFF_COURSE,
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, embedder):
    """``python app.py`` on a course with the handbook and one verified answer."""
    from mentor import Mentor

    root = tmp_path_factory.mktemp("insights-browser")
    home = root / "home"
    with Mentor.open(small_settings(home), embedder=embedder, with_model=False) as mentor:
        assert mentor.ingest_file(make_pdf(root / "handbook.pdf")).ok
        office = [h for h in mentor.search(VERIFIED_QUESTION, 3) if h.page_label == "4"]
        mentor.questions.save_verified(VERIFIED_QUESTION, VERIFIED_ANSWER, office[:1])
    with running_app(root, MAX_ANSWER_TOKENS="16") as url:
        yield url


@pytest.fixture(scope="module")
def answers(app_url) -> list[dict]:
    """The twenty questions asked through ``/api/chat``: their answers."""
    keyed = {"Authorization": f"Bearer {CLASS_KEY}"}
    answers = [httpx.post(f"{app_url}/api/chat", json={"message": q}, headers=keyed, timeout=180).json() for q in QUESTIONS]
    assert [a["verified"] is not None for a in answers].count(True) >= 1
    # The four off-course questions are refused before the model is called.
    assert all(a["refused"] for a in answers[-len(OFF_COURSE):])
    return answers


def test_the_insights_page_after_twenty_questions(app_url, answers, page):  # noqa: F811 - the fixture
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{app_url}/?key={CLASS_KEY}")
    page.get_by_role("tab", name="Instructor").click()
    page.get_by_label("Instructor password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#console")).to_be_visible()

    page.get_by_role("tab", name="Insights").click()
    summary = page.locator("#insights-summary")
    expect(summary).to_contain_text("20questions")
    assert summary.locator(".bar").count() == 30  # a bar a day of the last 30
    gaps = page.locator("#insights-gaps")
    expect(gaps).to_contain_text("Not covered")
    expect(gaps).to_contain_text("sourdough")
    expect(gaps).not_to_contain_text("escape velocity")
    # The four off-course questions, all refused (sourdough twice, one
    # group; football; France), and any the tiny model refused in its own words.
    expect(summary).to_contain_text(f"{sum(a['refused'] for a in answers)}refused")
    expect(summary).to_contain_text("3not covered")
    assert gaps.locator("tbody tr").count() == 3
    groups = page.locator("#insights-groups")
    expect(groups).to_contain_text("verified answer")  # the group the instructor answered
    expect(groups).to_contain_text("handbook.pdf p. 2")  # escape velocity, the page cited most
    page.screenshot(path=ARTIFACTS / "browser-insights.png", full_page=True)

    page.get_by_role("tab", name="Verified answers").click()
    expect(page.locator("#verified-list")).to_contain_text(VERIFIED_QUESTION)
    expect(page.locator("#verified-list")).to_contain_text("handbook.pdf, page 4")
    page.screenshot(path=ARTIFACTS / "browser-verified-answers.png", full_page=True)


def test_a_student_gets_the_verified_answer_marked_as_the_instructors(app_url, page):  # noqa: F811 - the fixture
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{app_url}/?key={CLASS_KEY}")
    page.locator("#question textarea").fill("When are the office hours held?")
    page.locator("#question textarea").press("Enter")

    bot = page.locator("#chat .message.bot").last
    expect(bot.locator(".verified-badge")).to_have_text("Answer from your instructor", timeout=120_000)
    expect(bot).to_contain_text(VERIFIED_ANSWER)
    expect(bot).to_contain_text(f"for “{VERIFIED_QUESTION}”")
    expect(bot.locator("a.source-link")).to_have_text("handbook.pdf, page 4")
    assert bot.locator(".source-score").count() == 0  # the instructor chose the page: no relevance score
    page.screenshot(path=ARTIFACTS / "browser-verified-answer-student.png", full_page=True)
