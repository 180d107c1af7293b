"""The Gradio UI: the chat page students use and the instructor console.

This module lays out the page (the course header, the Ask tab, the
Instructor tab with its login and console bar) and owns the chat's and the
login's handlers. Each console tab is a module of its own, with its handlers
beside its layout: ``materials``, ``course_page``, ``share``, ``insights_ui``.

Thin by design: every handler calls the engine (``Mentor``), ``course`` or
``backup`` and renders the result. Per-browser state lives in ``gr.State``
(the conversation, the instructor's session token), which Gradio keeps on
the server for the page's life, and the conversation also in the browser's
own storage (``gr.BrowserState``), so that a reload or a locked phone does
not lose it; the server keeps no identity for it.

Every instructor handler checks the session token itself: a hidden tab's
endpoints can still be called directly.

What is shown is built by ``render``, which escapes text that comes from
documents, file names or people.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gradio as gr

from mentor.course.info import GUIDE, CourseInfo
from mentor.course.questions import QuestionsError
from mentor.engine import Mentor
from mentor.generate.admission import QueueFull
from mentor.generate.answer import Answer, QuestionError
from mentor.web.access import ClassKey, upload_pass_js
from mentor.web.auth import AdminAuth, LoginRefused
from mentor.web.client import client_address
from mentor.web.course_page import CoursePage
from mentor.web.exports import Exports
from mentor.web.insights_ui import InsightsConsole
from mentor.web.limits import RateLimit
from mentor.web.materials import Materials, document_choices
from mentor.web.render import (
    CUT_NOTE,
    GUIDE_NOTE,
    LATEX_DELIMITERS,
    documents_table,
    empty_html,
    examples_placeholder,
    header_html,
    message_text,
    note,
    render_answer,
    render_verified,
    replies_markdown,
    safe_markdown,
    stats_markdown,
    waiting_note,
)
from mentor.web.share import Share

log = logging.getLogger(__name__)

LOGIN_REQUIRED = "Log in as the instructor first (Instructor tab)."
NO_MATERIALS = "The instructor hasn't uploaded course materials yet."
# Answers the chat runs at once, at most: each holds a thread of the
# shared pool (40) while it waits for its next piece, and the page, the
# uploads and /healthz need the others. Students past the model's capacity
# or this wait in Gradio's own queue, which shows them their place.
MAX_CHAT_EVENTS = 24
# Earlier messages kept per browser session; the engine uses the last few.
HISTORY_MESSAGES = 40
# What login and refresh_console fill in: stats, table, document choices,
# course name, welcome, examples, index status, answer style, its scope.
CONSOLE_FIELDS = 9
# Requests to the instructor one browser remembers, to show their replies.
MAX_TICKETS = 20
# What one client (address) may write in an hour: questions passed on to
# the instructor, and thumbs up or down.
ASKS_PER_HOUR = 10
RATINGS_PER_HOUR = 120
SLOW_DOWN = "You have sent your instructor many questions in the last hour. Please wait a while before sending more."
# The end of a finished answer, invisible: the chat shows the thumbs only
# under a message that has it (style.css), never under a waiting note or an
# answer still being written.
ANSWERED = '<span class="answered"></span>'
# Where the browser keeps the conversation (localStorage), and the key it
# is sealed with: a reload finds it; the server keeps nothing.
CONVERSATION_KEY = "mentor-conversation"
# Brings "Ask the instructor" into view once it opens, its question focused.
SHOW_PANEL = """() => {
  const panel = document.getElementById("ask-instructor");
  if (!panel) return;
  panel.scrollIntoView({block: "center"});
  panel.querySelector("textarea")?.focus({preventScroll: true});
}"""


@dataclass
class AskInstructorPanel:
    """The "Ask the instructor" panel under the chat."""

    column: gr.Column
    question: gr.Textbox
    name: gr.Textbox
    send: gr.Button
    cancel: gr.Button
    message: gr.HTML


@dataclass
class Conversation:
    """One browser session's chat: plain turns for follow-ups, and what each
    answer was (by its index in the chatbot) for thumbs up or down."""

    history: list[dict] = field(default_factory=list)
    answers: dict[int, dict] = field(default_factory=dict)

    def saved(self, chat: list) -> dict:
        """The conversation as the browser keeps it (JSON): the chat's last
        ``HISTORY_MESSAGES`` messages, the turns and the answers still in it."""
        dropped = max(0, len(chat) - HISTORY_MESSAGES)
        answers = {str(i - dropped): a for i, a in self.answers.items() if i >= dropped}
        return {"chat": list(chat[dropped:]), "history": self.history, "answers": answers}

    @classmethod
    def restored(cls, saved: dict | None) -> tuple[list, Conversation]:
        """The chat and the conversation from what the browser kept; empty
        when it kept nothing, or something this version cannot read."""
        try:
            chat = [m for m in saved["chat"] if m.get("role") in ("user", "assistant")]
            answers = {int(i): dict(a) for i, a in saved["answers"].items()}
            history = [dict(m) for m in saved["history"]][-HISTORY_MESSAGES:]
        except (KeyError, TypeError, ValueError, AttributeError):
            return [], cls()
        return chat, cls(history, answers)


class MentorUI:
    """The chat's and the console bar's handlers, as plain methods (tests
    call them directly), and ``build()``, which lays out every tab and wires
    it into a ``gr.Blocks``. The console's tabs are objects of their own
    (``materials``, ``course_page``, ``share``, ``insights``)."""

    def __init__(
        self, mentor: Mentor, auth: AdminAuth, exports: Exports | None = None, class_key: ClassKey | None = None
    ):
        self.mentor = mentor
        self.auth = auth
        self.home = mentor.settings.home
        # Student writes, per client address: questions for the instructor
        # and thumbs (the engine caps each question's length).
        self.asking_limit = RateLimit(ASKS_PER_HOUR, 3600)
        self.rating_limit = RateLimit(RATINGS_PER_HOUR, 3600)
        # The console's tabs, each with its handlers and its layout.
        self.materials = Materials(mentor, self._require)
        self.course_page = CoursePage(mentor, self._require, self.page)
        exports = exports or Exports(self.home / "exports")
        self.share = Share(mentor, self._require, exports, class_key or ClassKey.from_settings(mentor.settings))
        # The console's Insights, Verified answers and Questions for you tabs.
        self.insights = InsightsConsole(mentor, self._require)

    # --- Chat page -------------------------------------------------------------

    def course(self) -> CourseInfo:
        return CourseInfo.load(self.home)

    def page(self) -> tuple[str, gr.Chatbot]:
        """The course header and the chat's empty state, read on every page load."""
        course = self.course()
        return header_html(course), self._chat_empty_state(course)

    def replies(self, tickets: list | None) -> gr.Markdown:
        """The instructor's replies to the questions this browser passed on
        (its tickets, kept in the browser only), read on every page load."""
        shown = replies_markdown(self.mentor.questions.replies(tickets or []))
        return gr.Markdown(shown, visible=bool(shown))

    def _chat_empty_state(self, course: CourseInfo) -> gr.Chatbot:
        names = [d.name for d in self.mentor.library.student_documents()]
        if not names:
            return gr.Chatbot(placeholder=empty_html(NO_MATERIALS, "Check back soon."), examples=None)
        examples = [{"text": q} for q in course.example_questions(names)]
        return gr.Chatbot(
            placeholder=empty_html(
                "Ask anything about the course.", "Every answer cites the file and page it comes from."
            ),
            examples=examples or None,
        )

    def ask(self, question: str, chat: list) -> tuple:
        """Shows the question at once (before any queue) and locks the box
        until the answer is done or stopped. A question over the length
        limit stays in the box, whole, with a line that says why."""
        question = (question or "").strip()
        if not question:
            return gr.Textbox(), chat, "", gr.skip()
        limit = self.mentor.settings.max_question_chars
        if len(question) > limit:
            said = f"Your question is {len(question):,} characters long; the limit is {limit:,}. Please shorten it."
            return gr.Textbox(), chat, "", self._limit_html(note(said, "error"))
        chat = [*chat, {"role": "user", "content": safe_markdown(question)}]
        locked = gr.Textbox(value="", interactive=False, submit_btn=False, stop_btn=True)
        return locked, chat, question, self._limit_html()

    def _limit_html(self, message: str = "") -> str:
        """Under the question box: the counter (``page.js`` fills it in as
        the limit nears), then ``message``."""
        return f'<div id="question-count" data-limit="{self.mentor.settings.max_question_chars}"></div>{message}'

    def pick_example(self, chat: list, evt: gr.SelectData) -> tuple:
        question = (evt.value or {}).get("text", "") if isinstance(evt.value, dict) else str(evt.value or "")
        return self.ask(question, chat)

    def answer(self, question: str, chat: list, conversation: Conversation, request: gr.Request = None):
        """Streams the answer to ``question`` into ``chat``: while it waits
        for the model, how many questions are ahead of it; then the assistant
        message grows piece by piece and ends with its numbered sources.

        Yields ``(chat, conversation)``. Closing this generator (the Stop
        button, a closed tab) closes the answer, which frees its slot.
        """
        question = (question or "").strip()
        chat = list(chat or [])
        if not question:
            yield chat, conversation
            return
        if not chat or chat[-1].get("role") != "user" or message_text(chat[-1]) != safe_markdown(question):
            chat.append({"role": "user", "content": safe_markdown(question)})  # an API call
        try:
            answer = self.mentor.ask(question, conversation.history, self.course().name, client=self._client(request))
        except (QuestionError, QueueFull) as e:
            chat.append({"role": "assistant", "content": safe_markdown(str(e))})
            yield chat, conversation
            return
        # No message of the mentor's until there is something to say: the
        # chat's own "…" shows meanwhile, and a waiting note only when the
        # question really waits behind others'.
        said = lambda content: [*chat, {"role": "assistant", "content": content}]  # noqa: E731
        try:
            for ahead in answer.waiting():
                yield said(waiting_note(ahead)), conversation
            for _ in answer:
                yield said(safe_markdown(answer.text)), conversation
        except Exception:  # noqa: BLE001 - the student sees a sentence, the log the traceback
            log.exception("answering %r failed", question[:200])
            failed = "\n\n*The mentor could not finish this answer. Please ask again.*"
            yield said(safe_markdown(answer.text) + failed), conversation
            return
        finally:
            answer.close()
        chat = said(self._shown(answer))
        self._remember(question, answer, len(chat) - 1, conversation)
        yield chat, conversation

    def _shown(self, answer: Answer) -> str:
        """A finished answer as the chat shows it, with its numbered sources
        (and a note when the length limit cut it), marked ``ANSWERED``."""
        if answer.verified:
            return render_verified(answer.text, answer.verified.question, answer.sources) + ANSWERED
        cited, min_score = answer.cited(), self.mentor.settings.min_score
        text = answer.text + (CUT_NOTE if answer.cut else "")
        shown = render_answer(text, cited, answer.sources, answer.refused, min_score)
        return (GUIDE_NOTE + shown if answer.style == GUIDE else shown) + ANSWERED

    @staticmethod
    def _remember(question: str, answer: Answer, index: int, conversation: Conversation) -> None:
        """Keeps the turn for follow-ups, and what the answer at ``index`` in
        the chatbot was, for its thumbs up or down."""
        conversation.history = [
            *conversation.history,
            {"role": "user", "content": question} | ({"prompted": answer.prompted} if answer.prompted else {}),
            {"role": "assistant", "content": answer.text},
        ][-HISTORY_MESSAGES:]
        conversation.answers[index] = {
            "id": answer.id,
            "question": question,
            "answer": answer.text,
            "sources": [{"n": n, **hit.to_json()} for n, hit in answer.cited()],
        }

    def _client(self, request: gr.Request | None) -> str | None:
        """Who asks, for the fair share: the address (which counts) and the
        browser session (which Gradio's client chooses, so it only breaks ties)."""
        if request is None:
            return None
        return f"{self._address(request)} session:{request.session_hash}"

    def _address(self, request: gr.Request | None) -> str:
        if request is None:
            return "unknown"
        return client_address(request, self.mentor.settings.behind_proxy)

    def answered(self) -> gr.Textbox:
        return gr.Textbox(interactive=True, submit_btn=True, stop_btn=False)

    @staticmethod
    def keep(chat: list, conversation: Conversation) -> dict:
        """What the browser keeps of the conversation after each answer."""
        return conversation.saved(chat or [])

    @staticmethod
    def restore(saved: dict | None) -> tuple[list, Conversation]:
        """The conversation the browser kept, on every page load."""
        return Conversation.restored(saved)

    def new_conversation(self) -> tuple[list, Conversation, gr.Textbox, dict]:
        """An empty chat, here and in the browser's storage (emptied, not
        None: Gradio keeps the last value a BrowserState was given)."""
        question = gr.Textbox(value="", interactive=True, submit_btn=True, stop_btn=False)
        return [], Conversation(), question, Conversation().saved([])

    def feedback(self, conversation: Conversation, evt: gr.LikeData, request: gr.Request = None) -> None:
        """Records a thumbs up or down on one of this session's answers
        (``RATINGS_PER_HOUR`` per client at most)."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        entry = conversation.answers.get(index)
        if entry is None or evt.liked not in (True, False, "Like", "Dislike"):
            return  # a stopped answer, or a thumb taken back
        if not self.rating_limit.allow(self._address(request)):
            return
        self.mentor.questions.rate(entry["id"], evt.liked in (True, "Like"))

    def open_ask_instructor(self, conversation: Conversation) -> tuple:
        """Opens "Ask the instructor" with the last question asked here."""
        last = list(conversation.answers.values())[-1]["question"] if conversation.answers else ""
        return gr.Column(visible=True), gr.Textbox(value=last), ""

    def ask_instructor(
        self, question: str, name: str, conversation: Conversation, tickets: list | None, request: gr.Request = None
    ) -> tuple:
        """Passes a question on to the instructor: anonymous unless the
        student gives a name; no address or session is kept with it (the
        address only counts, in memory, towards ``ASKS_PER_HOUR``). The
        ticket goes back to this browser only, to show the reply later."""
        if not self.asking_limit.allow(self._address(request)):
            return gr.skip(), gr.skip(), note(SLOW_DOWN, "error"), gr.skip()
        answers = list(conversation.answers.values())
        said = [a["answer"] for a in answers if a["question"] == (question or "").strip()]
        # The question edited in the panel: the answer it followed, the last one.
        said = said or [a["answer"] for a in answers[-1:]]
        try:
            request = self.mentor.questions.ask_instructor(question, said[-1] if said else "", name)
        except QuestionsError as e:
            return gr.skip(), gr.skip(), note(str(e), "error"), gr.skip()
        tickets = [*(tickets or []), request.ticket][-MAX_TICKETS:]
        sent = "Sent to your instructor. Their reply will appear at the top of this page, in this browser."
        return gr.Column(visible=False), gr.Textbox(value=""), note(sent, "ok"), tickets

    # --- Instructor console ----------------------------------------------------

    def _require(self, token: str | None) -> None:
        if not self.auth.is_admin(token):
            raise gr.Error(LOGIN_REQUIRED, title="Instructor only")

    def login(self, password: str, request: gr.Request) -> tuple:
        # Behind Runpod's proxy every connection comes from the proxy: the
        # lockout keys on the address the proxy saw, so a stranger guessing
        # passwords locks out only themselves, never the instructor.
        client = client_address(request, self.mentor.settings.behind_proxy) if request is not None else "unknown"
        try:
            token = self.auth.login(password or "", client)
        except LoginRefused as e:
            log.warning("instructor login refused for %s: %s", client, e)
            refused = (
                "",
                gr.Column(visible=True),
                gr.Column(visible=False),
                note(str(e), "error"),
                gr.Textbox(value=""),
            )
            return refused + tuple(gr.skip() for _ in range(CONSOLE_FIELDS + 2))
        log.info("instructor logged in from %s", client)
        opened = (token, gr.Column(visible=False), gr.Column(visible=True), "", gr.Textbox(value=""))
        return opened + self._console_values() + (gr.Timer(active=True), self.auth.upload_pass(token))

    def logout(self, token: str) -> tuple:
        self.auth.logout(token)
        return "", gr.Column(visible=True), gr.Column(visible=False), gr.Timer(active=False), ""

    def refresh_console(self, token: str) -> tuple:
        self._require(token)
        return self._console_values()

    def _console_values(self) -> tuple:
        course = self.course()
        docs = self.mentor.documents()
        return (
            stats_markdown(self.mentor.stats()),
            documents_table(docs),
            document_choices(docs),
            course.name,
            course.welcome,
            gr.Textbox(value="\n".join(course.examples), placeholder=examples_placeholder(docs)),
            self.materials.index_status_now(),
            course.teaching.style,
            course.teaching.guide_scope,
        )

    # --- Layout ----------------------------------------------------------------

    def build(self) -> gr.Blocks:
        """The page: the course header, the Ask tab and the Instructor tab."""
        with gr.Blocks(title="Course Mentor", delete_cache=(3600, 6 * 3600)) as demo:
            header = gr.HTML(header_html(self.course()), elem_id="course-header", js_on_load=None)
            with gr.Tabs(elem_id="main-tabs"):
                with gr.Tab("Ask", id="ask", elem_id="ask-tab"):
                    chatbot = self._build_chat(demo, header)
                with gr.Tab("Instructor", id="instructor", elem_id="instructor-tab"):
                    admin, console_outputs = self._build_console(header, chatbot)
            # The console's data again, e.g. for a script; the UI refreshes on login.
            refresh = gr.Button(visible=False)
            refresh.click(self.refresh_console, [admin], console_outputs, api_name="refresh_console")
        return demo

    def _build_chat(self, demo: gr.Blocks, header: gr.HTML) -> gr.Chatbot:
        """The Ask tab, wired: the instructor's replies, the chat, the
        question box and "Ask the instructor". Returns the chatbot, which
        the course page redraws."""
        replies = gr.Markdown(visible=False, elem_id="replies")
        chatbot = gr.Chatbot(
            elem_id="chat",
            show_label=False,
            height="62vh",
            min_height=360,
            buttons=["copy"],
            sanitize_html=True,
            latex_delimiters=LATEX_DELIMITERS,
            allow_tags=False,
            placeholder=empty_html("Ask anything about the course.", ""),
            feedback_options=("Like", "Dislike"),
            layout="bubble",
        )
        question = gr.Textbox(
            elem_id="question",
            show_label=False,
            placeholder="Ask a question about the course…",
            lines=1,
            max_lines=6,
            # No maxlength: the browser would cut a pasted question silently.
            # The counter under the box (page.js) warns as the limit nears,
            # and ``ask`` keeps a longer question in the box and says why.
            max_length=None,
            submit_btn=True,
            stop_btn=False,
            autofocus=True,
            container=False,
        )
        limit = gr.HTML(self._limit_html(), elem_id="question-limit", padding=False, container=False)
        with gr.Row(elem_id="chat-footer"):
            gr.Markdown(
                "Answers come only from the course materials. Open a source to read the page it cites.",
                elem_classes="footnote",
            )
            ask_teacher = gr.Button("Ask the instructor", size="sm", variant="secondary", scale=0, min_width=160)
            new_chat = gr.Button("New conversation", size="sm", variant="secondary", scale=0, min_width=160)
        panel = self._ask_instructor_panel()
        pending = gr.Textbox(visible=False)
        conversation = gr.State(Conversation())
        # The tickets of the questions this browser passed on, and the
        # conversation, in its own storage: the server keeps no link to it.
        tickets = gr.BrowserState([], storage_key="mentor-instructor-tickets", secret="mentor-tickets")
        saved = gr.BrowserState(None, storage_key=CONVERSATION_KEY, secret=CONVERSATION_KEY)
        self._wire_chat(chatbot, question, pending, conversation, new_chat, saved, limit)
        demo.load(self.page, None, [header, chatbot], api_name="page", api_visibility="undocumented")
        demo.load(self.restore, [saved], [chatbot, conversation], api_visibility="private")
        demo.load(self.replies, [tickets], [replies], api_visibility="private")
        self._wire_ask_instructor(panel, ask_teacher, conversation, tickets)
        return chatbot

    def _wire_chat(self, chatbot, question, pending, conversation, new_chat, saved, limit) -> None:
        """Shows the question at once, then queues the answer, and keeps the
        conversation in the browser; Stop, New conversation and the
        chatbot's clear cancel it (and empty what the browser keeps)."""
        capacity = self.mentor.model.capacity if self.mentor.model else 1
        chat_limit = min(capacity, MAX_CHAT_EVENTS)
        answer_kwargs = dict(
            fn=self.answer,
            inputs=[pending, chatbot, conversation],
            outputs=[chatbot, conversation],
            concurrency_limit=chat_limit,
            concurrency_id="answer",
            show_progress="minimal",
        )
        asked_outputs = [question, chatbot, pending, limit]
        asked = question.submit(self.ask, [question, chatbot], asked_outputs, queue=False, api_visibility="private")
        answering = asked.then(**answer_kwargs, api_name="chat")
        picked = chatbot.example_select(
            self.pick_example, [chatbot], asked_outputs, queue=False, api_visibility="private"
        )
        answering_example = picked.then(**answer_kwargs, api_visibility="private")
        for event in (answering, answering_example):
            event.then(self.answered, None, [question], queue=False, api_visibility="private")
            event.then(self.keep, [chatbot, conversation], [saved], queue=False, api_visibility="private")
        question.stop(None, None, None, cancels=[answering, answering_example], api_visibility="private")
        emptied = [chatbot, conversation, question, saved]
        new_chat.click(
            self.new_conversation,
            None,
            emptied,
            cancels=[answering, answering_example],
            queue=False,
            api_visibility="private",
        )
        chatbot.clear(self.new_conversation, None, emptied, queue=False, api_visibility="private")
        chatbot.like(self.feedback, [conversation], None, api_name="feedback", api_visibility="undocumented")

    @staticmethod
    def _ask_instructor_panel() -> AskInstructorPanel:
        with gr.Column(visible=False, elem_id="ask-instructor") as column:
            gr.Markdown(
                "**Ask the instructor.** Not satisfied with the answer? Your instructor sees this "
                "question in their console. It is anonymous unless you add your name.",
                elem_classes="help",
            )
            question = gr.Textbox(label="Your question", lines=2, max_length=2000)
            name = gr.Textbox(label="Your name (optional)", max_length=80)
            with gr.Row():
                send = gr.Button("Send to the instructor", variant="primary", scale=0, min_width=230)
                cancel = gr.Button("Cancel", variant="secondary", scale=0, min_width=100)
        message = gr.HTML(elem_id="ask-instructor-message")
        return AskInstructorPanel(column, question, name, send, cancel, message)

    def _wire_ask_instructor(self, panel: AskInstructorPanel, open_button, conversation, tickets) -> None:
        opened = open_button.click(
            self.open_ask_instructor,
            [conversation],
            [panel.column, panel.question, panel.message],
            queue=False,
            api_visibility="private",
        )
        # The panel opens under the chat, below the fold: bring it into view.
        opened.then(None, None, None, js=SHOW_PANEL, queue=False, api_visibility="private")
        panel.cancel.click(lambda: gr.Column(visible=False), None, [panel.column], queue=False, api_visibility="private")
        panel.send.click(
            self.ask_instructor,
            [panel.question, panel.name, conversation, tickets],
            [panel.column, panel.question, panel.message, tickets],
            api_name="ask_instructor",
            api_visibility="undocumented",
        )

    def _build_console(self, header: gr.HTML, chatbot: gr.Chatbot) -> tuple[gr.State, list]:
        """The Instructor tab, wired: the login panel, then the console (its
        bar and its tabs). Every handler takes the session token and checks
        it. Returns the token's state and what ``refresh_console`` fills in."""
        admin = gr.State("")
        # The upload pass of the session (access.py): the page hands it to
        # the server for the cookie Gradio's upload route asks for.
        upload_pass = gr.Textbox(visible=False)
        with gr.Column(visible=True, elem_id="login-panel") as login_panel:
            gr.Markdown(
                "### Instructor console\nLog in to add course materials, edit the course page and make backups."
            )
            password = gr.Textbox(type="password", label="Instructor password", max_length=200)
            login_button = gr.Button("Log in", variant="primary")
            login_message = gr.HTML()
        with gr.Column(visible=False, elem_id="console") as console:
            with gr.Row(elem_id="console-bar"):
                stats = gr.Markdown(elem_id="console-stats")
                # How many requests wait: the Questions for you tab shows it (page.js).
                open_requests = gr.HTML(elem_id="open-requests-count", container=False, padding=False)
                logout_button = gr.Button("Log out", size="sm", scale=0, min_width=100)
            # On a phone the six tabs wrap onto more lines, all in sight: Gradio's
            # "..." menu for the ones that do not fit drew a picked one twice, clipped.
            with gr.Tabs(elem_id="console-tabs", overflow_behavior="wrap") as console_tabs:
                materials = self.materials.build(admin, stats)
                course_page = self.course_page.build(admin, header, chatbot)
                self.share.build(admin, [stats, materials.documents, materials.to_delete])
                self.insights.build(admin, console_tabs, open_requests)
        console_outputs = [
            stats,
            materials.documents,
            materials.to_delete,
            course_page.course_name,
            course_page.welcome,
            course_page.examples,
            materials.index_status,
            course_page.style,
            course_page.scope,
        ]
        timer = materials.status_timer
        login_outputs = [admin, login_panel, console, login_message, password, *console_outputs, timer, upload_pass]
        for logged_in in (
            login_button.click(self.login, [password], login_outputs, api_name="login"),
            password.submit(self.login, [password], login_outputs, api_visibility="private"),
        ):
            # The tab's name says how many students wait for an answer (and,
            # with the console's timer, keeps saying it while you work).
            logged_in.success(self.insights.open_requests, [admin], [open_requests], api_visibility="private")
            logged_in.success(None, [upload_pass], None, js=upload_pass_js(), api_visibility="private")
        timer.tick(self.insights.open_requests, [admin], [open_requests], show_progress="hidden", api_visibility="private")
        logout_button.click(self.logout, [admin], [admin, login_panel, console, timer, upload_pass], api_name="logout")
        return admin, console_outputs
