"""The console's Course page tab: what students see above the chat (name,
welcome, example questions) and how the mentor teaches (the answer style).
Its handlers and its layout.

Every handler takes the instructor's session token and checks it first: a
hidden tab's endpoints can still be called directly.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, replace

import gradio as gr

from mentor.course.info import ASSIGNMENTS, DIRECT, GUIDE, WHOLE_COURSE, CourseError, CourseInfo, Teaching
from mentor.engine import Mentor
from mentor.web.render import note

STYLE_CHOICES = [
    ("Direct: answer the question, citing the pages", DIRECT),
    ("Guide: hints and questions that lead the student; never a complete solution", GUIDE),
]
SCOPE_CHOICES = [
    ("For every question", WHOLE_COURSE),
    ("Only when the sources include a document marked as an assignment", ASSIGNMENTS),
]


@dataclass
class CoursePageParts:
    """The fields the console bar fills in on login."""

    course_name: gr.Textbox
    welcome: gr.Textbox
    examples: gr.Textbox
    style: gr.Radio
    scope: gr.Radio


class CoursePage:
    """Handlers (plain methods) and ``build``, which adds the tab's layout
    and wires it."""

    def __init__(self, mentor: Mentor, require: Callable[[str | None], None], page: Callable[[], tuple]):
        """``require(token)`` raises ``gr.Error`` unless the instructor is
        logged in; ``page()`` gives the chat's header and empty state."""
        self.mentor = mentor
        self.home = mentor.settings.home
        self.require = require
        self.page = page

    def save_course(self, name: str, welcome: str, examples: str, token: str) -> tuple:
        self.require(token)
        try:
            course = CourseInfo.from_form(name, welcome, examples)
        except CourseError as e:
            raise gr.Error(html.escape(str(e))) from None
        replace(course, teaching=CourseInfo.load(self.home).teaching).save(self.home)
        return note("Saved. Students see the changes the next time they open the page.", "ok"), *self.page()

    def save_teaching(self, style: str, scope: str, token: str) -> str:
        """Saves the answer style; it applies from the next question on."""
        self.require(token)
        current = CourseInfo.load(self.home)
        try:
            teaching = Teaching.from_form(style, scope, current.teaching.retention_days)
        except CourseError as e:
            raise gr.Error(html.escape(str(e))) from None
        replace(current, teaching=teaching).save(self.home)
        return note("Saved. The mentor answers the next question this way.", "ok")

    def build(self, admin: gr.State, header: gr.HTML, chatbot: gr.Chatbot) -> CoursePageParts:
        """Adds the tab (inside the console's ``gr.Tabs``) and wires it;
        saving the course page redraws the chat's ``header`` and ``chatbot``."""
        with gr.Tab("Course page"):
            gr.Markdown("What students see above the chat.", elem_classes="help")
            course_name = gr.Textbox(label="Course name", max_length=200)
            welcome = gr.Textbox(label="Welcome text", lines=3, max_length=3000)
            examples = gr.Textbox(
                label="Example questions, one a line (leave empty to suggest some from the document names)",
                lines=4,
            )
            save_button = gr.Button("Save", variant="primary")
            course_message = gr.HTML()
            gr.Markdown("#### How the mentor teaches")
            style = gr.Radio(STYLE_CHOICES, value=DIRECT, label="Answer style")
            scope = gr.Radio(SCOPE_CHOICES, value=WHOLE_COURSE, label="The guide style applies")
            gr.Markdown(
                "Documents you mark **instructor only** in Materials never enter an answer: "
                "not quoted, not cited, not even as a hint. A model repeats what it is "
                "given, so a solution manual in its prompt would reach students, cited or not.",
                elem_classes="help",
            )
            teaching_button = gr.Button("Save answer style", variant="primary")
            teaching_message = gr.HTML()
        save_button.click(
            self.save_course,
            [course_name, welcome, examples, admin],
            [course_message, header, chatbot],
            api_name="save_course",
        )
        teaching_button.click(self.save_teaching, [style, scope, admin], [teaching_message], api_name="save_teaching")
        return CoursePageParts(course_name, welcome, examples, style, scope)
