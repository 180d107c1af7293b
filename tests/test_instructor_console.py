"""The console's Insights, Verified answers and Questions for you tabs, and
the chat's "Ask the instructor", through the UI's own handlers (what the
Gradio events call), logged in: the round trip a teacher makes in a week.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import gradio as gr
import pytest

from mentor.web.auth import AdminAuth
from mentor.web.ui import Conversation, MentorUI

PASSWORD = "console-test-password"
OFFICE = ["When are office hours held?", "What time are office hours?", "When are the office hours?"]
TYPICAL = OFFICE[2]  # the wording closest to the other two: the group's face
OFF_COURSE = ["What is the best pizza near campus?", "Where can I get good pizza around campus?"]


@pytest.fixture
def settings(short_answers):
    return short_answers


@pytest.fixture
def ui(course):
    return MentorUI(course, AdminAuth(PASSWORD))


def ask(ui, question: str, conversation: Conversation | None = None) -> tuple[list, Conversation]:
    *_, (chat, conversation) = ui.answer(question, [], conversation or Conversation())
    return chat, conversation


def test_a_week_of_questions_becomes_a_verified_answer_a_student_then_gets(ui, mentor, tmp_path):
    token = ui.login(PASSWORD, None)[0]
    for question in [*OFFICE, *OFF_COURSE]:
        ask(ui, question)

    summary, gaps, asked, picker, drafts, retention = ui.insights.insights("Last 7 days", token)

    assert '<div class="figure"><b>5</b><span>questions</span></div>' in summary
    assert '<div class="figure"><b>2</b><span>groups</span></div>' in summary
    assert "pizza" in gaps and "office hours" not in gaps.lower()
    assert [label for label, _ in picker.choices] == [
        f"#1 {TYPICAL} (3×)",
        "#2 What is the best pizza near campus? (2×)",
    ]
    assert retention == 120 and drafts[0]["question"] == TYPICAL

    # The instructor writes the verified answer from the office hours group.
    _, _, question, answer, pages, candidates, _ = ui.insights.draft_verified(0, drafts, token)
    assert question == TYPICAL and answer == drafts[0]["answer"]
    office_page = next(key for key, hit in candidates.items() if hit["page"] == 6)
    saved_id, listed, *_ = ui.insights.save_verified(
        None, question, "Thursdays, 2 to 4 pm, room B12.", [office_page], candidates, token
    )
    assert "Thursdays, 2 to 4 pm, room B12." in listed and "handbook.pdf, page 4" in listed

    # A student asking it another way gets it, marked as the instructor's.
    chat, _ = ask(ui, "When are office hours?")
    shown = chat[-1]["content"]
    assert "Answer from your instructor" in shown and "Thursdays, 2 to 4 pm, room B12." in shown
    assert "handbook.pdf, page 4" in shown and "relevance" not in shown

    # The CSV holds every question with its group, and the groups.
    exported = ui.insights.export_csv("Last 7 days", token).value
    questions_file, groups_file = (f["path"] if isinstance(f, dict) else f for f in exported)
    assert [Path(f).name for f in (questions_file, groups_file)] == ["questions.csv", "groups.csv"]
    rows = list(csv.DictReader(io.StringIO(Path(questions_file).read_text(encoding="utf-8-sig"))))
    groups = list(csv.DictReader(io.StringIO(Path(groups_file).read_text(encoding="utf-8-sig"))))
    assert len(rows) == 6 and [r["verified_answer"] for r in rows].count("yes") == 1
    assert [(g["question"], g["times_asked"], g["not_covered"]) for g in groups] == [
        ("When are office hours?", "4", "no"),  # the student's wording is now the most typical
        (OFF_COURSE[0], "2", "yes"),
    ]
    assert saved_id == mentor.questions.verified_answers()[0].id


def test_ask_the_instructor_shows_as_open_until_the_reply_which_reaches_that_browser_only(ui, mentor):
    token = ui.login(PASSWORD, None)[0]
    _, conversation = ask(ui, OFF_COURSE[0])
    panel, question, _ = ui.open_ask_instructor(conversation)
    assert question.value == OFF_COURSE[0]

    _, _, sent, tickets = ui.ask_instructor(OFF_COURSE[0], "", conversation, [])
    assert "Sent to your instructor" in sent and len(tickets) == 1
    inbox, picker = ui.insights.inbox(token)
    assert "pizza" in inbox and "anonymous" in inbox
    assert ui.replies(tickets).visible is False  # nothing answered yet

    (request_id,) = [value for _, value in picker.choices]
    ui.insights.reply(request_id, "Try the place on Main Street.", True, token)

    reply = ui.replies(tickets)
    assert reply.visible and "Try the place on Main Street." in reply.value
    assert ui.replies([]).visible is False  # another browser sees nothing
    assert mentor.questions.requests(only_open=True) == []
    assert mentor.ask("Where is the best pizza near campus?").finish().text == "Try the place on Main Street."
    with pytest.raises(gr.Error, match="Log in"):
        ui.insights.inbox("")
