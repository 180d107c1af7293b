"""The Gradio UI: the chat page students use and the instructor console.

Thin by design: every handler calls the engine (``Mentor``), ``course`` or
``backup`` and renders the result. Per-browser state lives only in
``gr.State`` (the conversation, the instructor's session token), which
Gradio keeps on the server; nothing about one student is held elsewhere.

Every instructor handler checks the session token itself: a hidden tab's
endpoints can still be called directly.

What is shown is built by ``render``, which escapes text that comes from
documents, file names or people.
"""

from __future__ import annotations

import html
import logging
import shutil
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import gradio as gr

from mentor.course import backup
from mentor.course.info import ASSIGNMENTS, DIRECT, GUIDE, WHOLE_COURSE, CourseError, CourseInfo, Teaching
from mentor.course.questions import QuestionsError
from mentor.course.registry import Document, UnknownDocument
from mentor.engine import Mentor
from mentor.generate.admission import QueueFull
from mentor.generate.answer import QuestionError
from mentor.ingest.ocr import OcrOptions, engine_status
from mentor.ingest.pages import SUFFIXES, SUPPORTED
from mentor.ingest.pipeline import IngestResult
from mentor.web.auth import AdminAuth, LoginRefused
from mentor.web.client import client_address
from mentor.web.insights_ui import InsightsConsole
from mentor.web.render import (
    GUIDE_NOTE,
    LATEX_DELIMITERS,
    documents_table,
    empty_html,
    examples_placeholder,
    header_html,
    human_size,
    index_status_html,
    message_text,
    note,
    render_answer,
    render_verified,
    replies_markdown,
    results_html,
    safe_markdown,
    stats_markdown,
    upload_limits,
    waiting_note,
)

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
DOCUMENT_COLUMNS = ["Document", "For", "Pages", "Chunks", "Added", "Size"]
# What login and refresh_console fill in: stats, table, document choices,
# course name, welcome, examples, index status, answer style, its scope.
CONSOLE_FIELDS = 9
# Requests to the instructor one browser remembers, to show their replies.
MAX_TICKETS = 20
STYLE_CHOICES = [
    ("Direct: answer the question, citing the pages", DIRECT),
    ("Guide: hints and questions that lead the student; never a complete solution", GUIDE),
]
SCOPE_CHOICES = [
    ("For every question", WHOLE_COURSE),
    ("Only when the sources include a document marked as an assignment", ASSIGNMENTS),
]
# How often the console re-reads the index status while the instructor is
# logged in: a rebuild reports its progress, document by document.
STATUS_SECONDS = 3


@dataclass
class Conversation:
    """One browser session's chat: plain turns for follow-ups, and what each
    answer was (by its index in the chatbot) for thumbs up or down."""

    history: list[dict] = field(default_factory=list)
    answers: dict[int, dict] = field(default_factory=dict)


class MentorUI:
    """The handlers of the UI, as plain methods (tests call them directly),
    and ``build()``, which wires them into a ``gr.Blocks``."""

    def __init__(self, mentor: Mentor, auth: AdminAuth, exports_dir: Path | None = None):
        self.mentor = mentor
        self.auth = auth
        self.home = mentor.settings.home
        # The console's Insights, Verified answers and Questions for you tabs.
        self.insights = InsightsConsole(mentor, self._require)
        # Exports are written straight into Gradio's upload folder, which it
        # serves without copying (an archive can be gigabytes); a random
        # folder name keeps the link unguessable.
        self.exports_dir = exports_dir or Path(gr.utils.get_upload_folder()) / "mentor-exports"

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
        until the answer is done or stopped."""
        question = (question or "").strip()
        if not question:
            return gr.Textbox(), chat, ""
        chat = [*chat, {"role": "user", "content": safe_markdown(question)}]
        return gr.Textbox(value="", interactive=False, submit_btn=False, stop_btn=True), chat, question

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
        chat.append({"role": "assistant", "content": ""})
        try:
            for ahead in answer.waiting():
                chat[-1] = {"role": "assistant", "content": waiting_note(ahead)}
                yield chat, conversation
            chat[-1] = {"role": "assistant", "content": ""}
            for _ in answer:
                chat[-1] = {"role": "assistant", "content": safe_markdown(answer.text)}
                yield chat, conversation
        except Exception:  # noqa: BLE001 - the student sees a sentence, the log the traceback
            log.exception("answering %r failed", question[:200])
            chat[-1] = {
                "role": "assistant",
                "content": safe_markdown(answer.text)
                + "\n\n*The mentor could not finish this answer. Please ask again.*",
            }
            yield chat, conversation
            return
        finally:
            answer.close()
        if answer.verified:
            shown = render_verified(answer.text, answer.verified.question, answer.sources)
        else:
            shown = render_answer(
                answer.text, answer.cited(), answer.sources, answer.refused, self.mentor.settings.min_score
            )
            shown = GUIDE_NOTE + shown if answer.style == GUIDE else shown
        chat[-1] = {"role": "assistant", "content": shown}
        conversation.history = [
            *conversation.history,
            {"role": "user", "content": question} | ({"prompted": answer.prompted} if answer.prompted else {}),
            {"role": "assistant", "content": answer.text},
        ][-HISTORY_MESSAGES:]
        conversation.answers[len(chat) - 1] = {
            "id": answer.id,
            "question": question,
            "answer": answer.text,
            "sources": [{"n": n, **hit.to_json()} for n, hit in answer.cited()],
        }
        yield chat, conversation

    def _client(self, request: gr.Request | None) -> str | None:
        """The fair-share key of a chat: its browser session, with its address."""
        if request is None:
            return None
        return f"{client_address(request, self.mentor.settings.behind_proxy)} session:{request.session_hash}"

    def answered(self) -> gr.Textbox:
        return gr.Textbox(interactive=True, submit_btn=True, stop_btn=False)

    def new_conversation(self) -> tuple[list, Conversation, gr.Textbox]:
        return [], Conversation(), gr.Textbox(value="", interactive=True, submit_btn=True, stop_btn=False)

    def feedback(self, conversation: Conversation, evt: gr.LikeData) -> None:
        """Records a thumbs up or down on one of this session's answers."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        entry = conversation.answers.get(index)
        if entry is None or evt.liked not in (True, False, "Like", "Dislike"):
            return  # a stopped answer, or a thumb taken back
        self.mentor.questions.rate(entry["id"], evt.liked in (True, "Like"))

    def open_ask_instructor(self, conversation: Conversation) -> tuple:
        """Opens "Ask the instructor" with the last question asked here."""
        last = list(conversation.answers.values())[-1]["question"] if conversation.answers else ""
        return gr.Column(visible=True), gr.Textbox(value=last), ""

    def ask_instructor(self, question: str, name: str, conversation: Conversation, tickets: list | None) -> tuple:
        """Passes a question on to the instructor: anonymous unless the
        student gives a name; no address or session is kept with it. The
        ticket goes back to this browser only, to show the reply later."""
        said = [a["answer"] for a in conversation.answers.values() if a["question"] == (question or "").strip()]
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
            return refused + tuple(gr.skip() for _ in range(CONSOLE_FIELDS + 1))
        log.info("instructor logged in from %s", client)
        opened = (token, gr.Column(visible=False), gr.Column(visible=True), "", gr.Textbox(value=""))
        return opened + self._console_values() + (gr.Timer(active=True),)

    def logout(self, token: str) -> tuple:
        self.auth.logout(token)
        return "", gr.Column(visible=True), gr.Column(visible=False), gr.Timer(active=False)

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
            self._index_status(),
            course.teaching.style,
            course.teaching.guide_scope,
        )

    def _index_status(self) -> str:
        library = self.mentor.library
        return index_status_html(
            library.live().spec, library.rebuild_status, library.rebuild_reason(), library.interrupted()
        )

    def index_status(self, token: str) -> str:
        """The index's state, for the console's timer: quiet when it is fine,
        a progress line while a rebuild runs, the failures when one stopped."""
        self._require(token)
        return self._index_status()

    def rebuild_index(self, token: str) -> str:
        """Starts rebuilding the index from the kept originals, in the
        background; students keep the current index until it is done."""
        self._require(token)
        self.mentor.library.rebuild_in_background("asked for in the instructor console")
        return self._index_status()

    def upload(self, files: list[str] | None, token: str, progress=gr.Progress()):
        """Ingests each file in turn; yields the result lines so far, the
        stats, the table and the delete choices after each one."""
        self._require(token)
        paths = [Path(f) for f in files or []]
        if not paths:
            raise gr.Error("Choose or drop course files first.")
        results: list[IngestResult] = []
        for i, path in enumerate(paths):
            progress(i / len(paths), desc=f"{path.name}: reading")

            def report(p, i=i):
                share = p.pages_parsed / p.pages_total if p.pages_total else 0
                progress(
                    (i + share) / len(paths),
                    desc=f"{p.file}: {p.pages_parsed} of {p.pages_total} pages read{p.by_ocr()}, {p.chunks_embedded} chunks embedded",
                )

            results.append(self.mentor.ingest_file(path, path.name, report))
            _discard_upload(path)
            docs = self.mentor.documents()
            done = i + 1 == len(paths)
            yield (
                results_html([(r.line(), "ok" if r.ok else "failed") for r in results], pending=len(paths) - i - 1),
                stats_markdown(self.mentor.stats()),
                documents_table(docs),
                document_choices(docs),
                None if done else gr.skip(),
            )

    def delete_document(self, doc_id: str | None, token: str) -> tuple:
        self._require(token)
        if not doc_id:
            raise gr.Error("Pick the document to delete.")
        try:
            doc = self.mentor.remove(doc_id)
        except UnknownDocument:
            raise gr.Error("That document is no longer in the course.") from None
        docs = self.mentor.documents()
        return (
            note(f"Deleted {doc.name}. Students can no longer get answers from it.", "ok"),
            stats_markdown(self.mentor.stats()),
            documents_table(docs),
            document_choices(docs, clear=True),
        )

    def save_course(self, name: str, welcome: str, examples: str, token: str) -> tuple:
        self._require(token)
        try:
            course = CourseInfo.from_form(name, welcome, examples)
        except CourseError as e:
            raise gr.Error(html.escape(str(e))) from None
        replace(course, teaching=self.course().teaching).save(self.home)
        return note("Saved. Students see the changes the next time they open the page.", "ok"), *self.page()

    def save_teaching(self, style: str, scope: str, token: str) -> str:
        """Saves the answer style; it applies from the next question on."""
        self._require(token)
        current = self.course()
        try:
            teaching = Teaching.from_form(style, scope, current.teaching.retention_days)
        except CourseError as e:
            raise gr.Error(html.escape(str(e))) from None
        replace(current, teaching=teaching).save(self.home)
        return note("Saved. The mentor answers the next question this way.", "ok")

    def document_flags(self, doc_id: str | None, token: str) -> tuple:
        """The flags of the document picked in Materials."""
        self._require(token)
        doc = next((d for d in self.mentor.documents() if d.doc_id == doc_id), None)
        return (doc.instructor_only, doc.assignment) if doc else (False, False)

    def set_document_flags(self, doc_id: str | None, instructor_only: bool, assignment: bool, token: str) -> tuple:
        """Marks a document instructor-only and/or an assignment."""
        self._require(token)
        if not doc_id:
            raise gr.Error("Pick the document first.")
        try:
            doc = self.mentor.library.set_flags(doc_id, instructor_only=instructor_only, assignment=assignment)
        except UnknownDocument:
            raise gr.Error("That document is no longer in the course.") from None
        if doc.instructor_only:
            said = f"{doc.name} is now for you only: students never get answers, quotes, citations or links from it."
        else:
            said = f"{doc.name} is for students{' and marked as an assignment' if doc.assignment else ''}."
        return note(said, "ok"), documents_table(self.mentor.documents())

    def export_backup(self, token: str) -> tuple:
        self._require(token)
        shutil.rmtree(self.exports_dir, ignore_errors=True)  # one export at a time on disk
        archive = backup.export_backup(self.mentor, self.exports_dir / uuid.uuid4().hex)
        size = human_size(archive.stat().st_size)
        return (
            gr.DownloadButton(f"Download {archive.name} ({size})", value=archive.as_posix(), visible=True),
            note("Backup ready. Download it and keep it somewhere other than this pod.", "ok"),
        )

    def import_backup(self, file: str | None, token: str) -> tuple:
        self._require(token)
        if not file:
            raise gr.Error("Choose a backup file (.tar.gz) first.")
        try:
            summary = backup.import_backup(self.mentor, Path(file))
        except backup.BackupError as e:
            raise gr.Error(html.escape(str(e))) from None
        finally:
            _discard_upload(Path(file))
        docs = self.mentor.documents()
        rows = [(f"{name}: restored", "ok") for name in summary.added]
        rows += [(f"{name}: skipped — {why}", "skipped") for name, why in summary.skipped]
        rows += [("Course page: restored", "ok")] if summary.course_restored else []
        return (
            results_html(rows or [("The backup holds no documents.", "ok")]),
            stats_markdown(self.mentor.stats()),
            documents_table(docs),
            document_choices(docs),
            None,
        )

    # --- Layout ----------------------------------------------------------------

    def build(self) -> gr.Blocks:
        settings = self.mentor.settings
        with gr.Blocks(title="Course Mentor", delete_cache=(3600, 6 * 3600)) as demo:
            header = gr.HTML(header_html(self.course()), elem_id="course-header", js_on_load=None)
            with gr.Tabs(elem_id="main-tabs"):
                with gr.Tab("Ask", id="ask", elem_id="ask-tab"):
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
                        max_length=settings.max_question_chars,
                        submit_btn=True,
                        stop_btn=False,
                        autofocus=True,
                        container=False,
                    )
                    with gr.Row(elem_id="chat-footer"):
                        gr.Markdown(
                            "Answers come only from the course materials. Open a source to read the page it cites.",
                            elem_classes="footnote",
                        )
                        ask_teacher = gr.Button(
                            "Ask the instructor", size="sm", variant="secondary", scale=0, min_width=160
                        )
                        new_chat = gr.Button("New conversation", size="sm", variant="secondary", scale=0, min_width=160)
                    with gr.Column(visible=False, elem_id="ask-instructor") as ask_panel:
                        gr.Markdown(
                            "**Ask the instructor.** Not satisfied with the answer? Your instructor sees this "
                            "question in their console. It is anonymous unless you add your name.",
                            elem_classes="help",
                        )
                        teacher_question = gr.Textbox(label="Your question", lines=2, max_length=2000)
                        teacher_name = gr.Textbox(label="Your name (optional)", max_length=80)
                        with gr.Row():
                            send_teacher = gr.Button("Send to the instructor", variant="primary", scale=0, min_width=200)
                            cancel_teacher = gr.Button("Cancel", variant="secondary", scale=0, min_width=100)
                    teacher_message = gr.HTML(elem_id="ask-instructor-message")
                    pending = gr.Textbox(visible=False)
                    conversation = gr.State(Conversation())
                    # The tickets of the questions this browser passed on,
                    # in its own storage: the server keeps no link to it.
                    tickets = gr.BrowserState([], storage_key="mentor-instructor-tickets", secret="mentor-tickets")

                with gr.Tab("Instructor", id="instructor", elem_id="instructor-tab"):
                    admin = gr.State("")
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
                            logout_button = gr.Button("Log out", size="sm", scale=0, min_width=100)
                        with gr.Tabs(elem_id="console-tabs") as console_tabs:
                            with gr.Tab("Materials", id="materials"):
                                ocr_status = engine_status(settings.ocr, OcrOptions(settings.ocr_languages))
                                gr.Markdown(upload_limits(settings.max_upload_mb, ocr_status), elem_classes="help")
                                files = gr.File(
                                    label=f"Course files ({SUPPORTED})",
                                    file_count="multiple",
                                    file_types=sorted(SUFFIXES),
                                    type="filepath",
                                    height=160,
                                )
                                upload_button = gr.Button("Add to the course", variant="primary")
                                upload_results = gr.HTML()
                                documents = gr.Dataframe(
                                    headers=DOCUMENT_COLUMNS,
                                    datatype=["str"] * len(DOCUMENT_COLUMNS),
                                    interactive=False,
                                    wrap=True,
                                    label="Course documents (For: who gets answers from each)",
                                    column_widths=["34%", "18%", "8%", "8%", "20%", "12%"],
                                )
                                with gr.Row(elem_id="delete-row"):
                                    to_delete = gr.Dropdown(
                                        label="Pick a document to mark or delete",
                                        choices=[],
                                        value=None,
                                        allow_custom_value=True,
                                        scale=4,
                                    )
                                    delete_button = gr.Button(
                                        "Delete", variant="stop", size="md", scale=1, min_width=110
                                    )
                                with gr.Row(elem_id="flags-row"):
                                    instructor_only = gr.Checkbox(
                                        label="Instructor only (a solution manual, say): never shown, quoted or cited to students",
                                        scale=3,
                                    )
                                    assignment = gr.Checkbox(
                                        label="Assignment: the guide style can apply to it", scale=2
                                    )
                                    flags_button = gr.Button("Save", size="md", scale=0, min_width=110)
                                delete_message = gr.HTML()
                                with gr.Row(elem_id="index-row"):
                                    index_status = gr.HTML(elem_id="index-status")
                                    rebuild_button = gr.Button(
                                        "Rebuild the index", size="sm", variant="secondary", scale=0, min_width=170
                                    )
                                status_timer = gr.Timer(STATUS_SECONDS, active=False)
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
                            with gr.Tab("Share & back up"):
                                gr.Textbox(
                                    value=settings.share_url,
                                    label="Link to share with students (the same page, without the password)",
                                    interactive=False,
                                    buttons=["copy"],
                                )
                                gr.Markdown(
                                    "**Back up** everything (documents, index, course page) into one file, and "
                                    "**restore** it on a new pod without re-indexing. Only `/workspace` survives a pod; "
                                    "keep the backup somewhere else.",
                                    elem_classes="help",
                                )
                                with gr.Row(elem_id="backup-row"):
                                    with gr.Column():
                                        gr.Markdown("#### Back up")
                                        export_button = gr.Button("Create a backup", variant="primary")
                                        export_file = gr.DownloadButton("Download the backup", visible=False)
                                        export_message = gr.HTML()
                                    with gr.Column():
                                        gr.Markdown("#### Restore")
                                        import_file = gr.File(
                                            label="Backup file (.tar.gz)",
                                            file_types=[".gz"],
                                            type="filepath",
                                            height=120,
                                        )
                                        import_button = gr.Button("Restore")
                                        import_message = gr.HTML()
                            self.insights.build(admin, console_tabs)

            # Chat: show the question at once, then queue the answer.
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
            asked = question.submit(
                self.ask, [question, chatbot], [question, chatbot, pending], queue=False, api_visibility="private"
            )
            answering = asked.then(**answer_kwargs, api_name="chat")
            picked = chatbot.example_select(
                self.pick_example, [chatbot], [question, chatbot, pending], queue=False, api_visibility="private"
            )
            answering_example = picked.then(**answer_kwargs, api_visibility="private")
            for event in (answering, answering_example):
                event.then(self.answered, None, [question], queue=False, api_visibility="private")
            question.stop(None, None, None, cancels=[answering, answering_example], api_visibility="private")
            new_chat.click(
                self.new_conversation,
                None,
                [chatbot, conversation, question],
                cancels=[answering, answering_example],
                queue=False,
                api_visibility="private",
            )
            chatbot.clear(
                self.new_conversation, None, [chatbot, conversation, question], queue=False, api_visibility="private"
            )
            chatbot.like(self.feedback, [conversation], None, api_name="feedback", api_visibility="undocumented")
            demo.load(self.page, None, [header, chatbot], api_name="page", api_visibility="undocumented")
            demo.load(self.replies, [tickets], [replies], api_visibility="private")
            ask_teacher.click(
                self.open_ask_instructor,
                [conversation],
                [ask_panel, teacher_question, teacher_message],
                queue=False,
                api_visibility="private",
            )
            cancel_teacher.click(lambda: gr.Column(visible=False), None, [ask_panel], queue=False, api_visibility="private")
            send_teacher.click(
                self.ask_instructor,
                [teacher_question, teacher_name, conversation, tickets],
                [ask_panel, teacher_question, teacher_message, tickets],
                api_name="ask_instructor",
                api_visibility="undocumented",
            )

            # Console: every handler takes the session token and checks it.
            console_outputs = [stats, documents, to_delete, course_name, welcome, examples, index_status, style, scope]
            login_outputs = [admin, login_panel, console, login_message, password, *console_outputs, status_timer]
            login_button.click(self.login, [password], login_outputs, api_name="login")
            password.submit(self.login, [password], login_outputs, api_visibility="private")
            logout_button.click(self.logout, [admin], [admin, login_panel, console, status_timer], api_name="logout")
            status_timer.tick(
                self.index_status, [admin], [index_status], api_name="index_status", show_progress="hidden"
            )
            rebuild_button.click(self.rebuild_index, [admin], [index_status], api_name="rebuild_index")
            library = [stats, documents, to_delete]
            upload_button.click(
                self.upload,
                [files, admin],
                [upload_results, *library, files],
                api_name="upload",
                show_progress_on=[upload_results],
            )
            delete_button.click(
                self.delete_document, [to_delete, admin], [delete_message, *library], api_name="delete_document"
            )
            to_delete.change(
                self.document_flags, [to_delete, admin], [instructor_only, assignment], api_name="document_flags"
            )
            flags_button.click(
                self.set_document_flags,
                [to_delete, instructor_only, assignment, admin],
                [delete_message, documents],
                api_name="set_document_flags",
            )
            save_button.click(
                self.save_course,
                [course_name, welcome, examples, admin],
                [course_message, header, chatbot],
                api_name="save_course",
            )
            teaching_button.click(
                self.save_teaching, [style, scope, admin], [teaching_message], api_name="save_teaching"
            )
            export_button.click(self.export_backup, [admin], [export_file, export_message], api_name="export_backup")
            import_button.click(
                self.import_backup,
                [import_file, admin],
                [import_message, *library, import_file],
                api_name="import_backup",
            )
            # The console's data again, e.g. for a script; the UI refreshes on login.
            refresh = gr.Button(visible=False)
            refresh.click(self.refresh_console, [admin], console_outputs, api_name="refresh_console")
        return demo


def document_choices(docs: list[Document], clear: bool = False) -> gr.Dropdown:
    choices = [(f"{d.name} ({d.pages} pages)", d.doc_id) for d in reversed(docs)]
    return gr.Dropdown(choices=choices, value=None) if clear else gr.Dropdown(choices=choices)


def _discard_upload(path: Path) -> None:
    """Deletes an upload from Gradio's cache once read (the engine keeps its
    own copy), so that a large course is not kept twice on the pod."""
    if Path(gr.utils.get_upload_folder()).resolve() in path.resolve().parents:
        path.unlink(missing_ok=True)
