"""The console's view of what students ask: the Insights, Verified answers
and Questions for you tabs, their handlers and their layout.

Thin like the rest of the UI: the handlers call ``mentor.questions`` (the
question store) and ``mentor.insights`` and render what they return with
``insights_render``. Every handler takes the instructor's session token and
checks it first: a hidden tab's endpoints can still be called directly.
"""

from __future__ import annotations

import html
import shutil
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import gradio as gr

from mentor.course.info import CourseError, Teaching
from mentor.course.insights import PERIODS, Group, groups_csv, questions_csv, since, summarize
from mentor.course.questions import QuestionsError
from mentor.engine import Mentor
from mentor.index.store import Hit
from mentor.web.insights_render import (
    citation_key,
    citation_label,
    group_label,
    groups_html,
    inbox_html,
    open_requests_html,
    request_label,
    summary_html,
    verified_html,
    verified_label,
)
from mentor.web.render import note

DEFAULT_PERIOD = "Last 30 days"
# Pages offered as citations for a verified answer.
SUGGESTED_PAGES = 6


class InsightsConsole:
    """Handlers (plain methods: tests call them) and ``build``, which adds
    the three tabs to the console."""

    def __init__(self, mentor: Mentor, require: Callable[[str | None], None], exports_dir: Path | None = None):
        """``require(token)`` raises ``gr.Error`` unless the instructor is logged in."""
        self.mentor = mentor
        self.questions = mentor.questions
        self.require = require
        self.exports_dir = exports_dir or Path(gr.utils.get_upload_folder()) / "mentor-insights"

    # --- Insights ---------------------------------------------------------------------

    def insights(self, period: str, token: str) -> tuple:
        """The period's figures and timeline, the groups not covered, the
        most asked groups, and the groups to write a verified answer for."""
        self.require(token)
        found = self._summarize(period)
        numbered = list(enumerate(found.groups, start=1))
        open_requests = len(self.questions.requests(only_open=True))
        gaps = groups_html(
            [(n, g) for n, g in numbered if g.not_covered],
            "Not covered: gaps in the material",
            "Nothing here: every group was answered from relevant pages.",
        )
        asked = groups_html(numbered, "Most asked", "No questions yet.")
        choices = [(group_label(n, g), n - 1) for n, g in numbered]
        drafts = [self._draft(g) for g in found.groups]
        return (
            summary_html(found, open_requests, period),
            gaps,
            asked,
            gr.Dropdown(choices=choices, value=None),
            drafts,
            self.mentor.course().teaching.retention_days,
        )

    def _summarize(self, period: str):
        days = PERIODS.get(period, PERIODS[DEFAULT_PERIOD])
        asked, vectors = self.questions.asked(since(days))
        return summarize(asked, vectors, days)

    @staticmethod
    def _draft(group: Group) -> dict:
        """What "Write a verified answer" starts from: the group's typical
        question and the best answer the mentor gave it (rated helpful
        first, then the latest), with the pages that answer cited. An
        answer students rated unhelpful is no start: the draft is empty."""
        answered = [q for q in group.questions if not q.refused and q.verified_id is None and q.rating != "down"]
        answered.sort(key=lambda q: (q.rating == "up", q.asked_at), reverse=True)
        best = answered[0] if answered else None
        return {
            "question": group.representative.question,
            "answer": best.answer if best else "",
            "cited": [f"{p.doc_id}:{p.page}" for p in best.cited] if best else [],
            "rated": best.rating if best else None,
        }

    def export_csv(self, period: str, token: str) -> gr.File:
        """The period's questions and groups as two CSV files."""
        self.require(token)
        found = self._summarize(period)
        shutil.rmtree(self.exports_dir, ignore_errors=True)  # the last export only
        folder = self.exports_dir / uuid.uuid4().hex  # unguessable: Gradio serves it
        folder.mkdir(parents=True)
        paths = []
        for name, text in (("questions.csv", questions_csv(found)), ("groups.csv", groups_csv(found))):
            (folder / name).write_text(text, encoding="utf-8-sig")  # the BOM: Excel reads UTF-8
            paths.append(str(folder / name))
        return gr.File(value=paths, visible=True)

    def draft_verified(self, group: int | None, drafts: list, token: str) -> tuple:
        """Fills the Verified answers editor from a group and switches to it."""
        self.require(token)
        if group is None or not isinstance(group, int) or not 0 <= group < len(drafts or []):
            raise gr.Error("Pick a group first.")
        draft = drafts[group]
        choices, candidates = self._pages_for(draft["question"])
        checked = [key for key in draft["cited"] if key in candidates]
        return (
            gr.Tabs(selected="verified"),
            None,
            draft["question"],
            draft["answer"],
            gr.CheckboxGroup(choices=choices, value=checked),
            candidates,
            draft_note(draft),
        )

    def ask_delete(self, token: str) -> tuple:
        """The first step of "Delete all student questions": how many, and
        the button that confirms."""
        self.require(token)
        count = self.questions.count() + len(self.questions.requests())
        if not count:
            return gr.Button(visible=False), note("There are no student questions to delete.", "ok")
        return (
            gr.Button(f"Yes, delete all {count} student questions and requests", visible=True),
            note("This cannot be undone. Your verified answers stay.", "error"),
        )

    def delete_student_questions(self, token: str) -> tuple:
        self.require(token)
        gone = self.questions.delete_student_questions()
        return gr.Button(visible=False), note(f"Deleted {gone} student questions and requests.", "ok")

    def save_retention(self, days, token: str) -> str:
        """Saves how long student questions are kept, and deletes the older
        ones now."""
        self.require(token)
        course = self.mentor.course()
        try:
            teaching = Teaching.from_form(course.teaching.style, course.teaching.guide_scope, days)
        except CourseError as e:
            raise gr.Error(html.escape(str(e))) from None
        replace(course, teaching=teaching).save(self.mentor.settings.home)
        gone = self.questions.clean_up(teaching.retention_days)
        older = f" {gone} older questions were deleted." if gone else ""
        return note(f"Saved: student questions are kept {teaching.retention_days} days.{older}", "ok")

    # --- Verified answers -----------------------------------------------------------------

    def verified(self, token: str) -> tuple:
        """The verified answers, and the editor's list of them."""
        self.require(token)
        answers = self.questions.verified_answers()
        choices = [(verified_label(v), v.id) for v in answers]
        return verified_html(answers, self.questions.verified_used()), gr.Dropdown(choices=choices, value=None)

    def edit_verified(self, verified_id: int | None, token: str) -> tuple:
        """Loads a verified answer into the editor (None: a new one)."""
        self.require(token)
        if verified_id is None:
            return None, "", "", gr.CheckboxGroup(choices=[], value=[]), {}, ""
        try:
            v = self.questions.get_verified(verified_id)
        except QuestionsError as e:
            raise gr.Error(str(e)) from None
        choices, candidates = self._pages_for(v.question, v.citations)
        checked = [citation_key(h) for h in v.citations]
        return v.id, v.question, v.answer, gr.CheckboxGroup(choices=choices, value=checked), candidates, ""

    def cited_documents(self, token: str) -> gr.Dropdown:
        """The documents a verified answer may cite: those students may open."""
        self.require(token)
        docs = self.mentor.library.student_documents()
        return gr.Dropdown(choices=[(d.name, d.doc_id) for d in reversed(docs)], value=None)

    def document_pages(self, doc_id: str | None, token: str) -> gr.Dropdown:
        """The pages of the document picked, by their printed labels."""
        self.require(token)
        pages = self._pages_of(doc_id) if doc_id else {}
        return gr.Dropdown(choices=[(Hit(**h).place, page) for page, h in pages.items()], value=None)

    def add_page(self, doc_id, page, chosen: list | None, candidates: dict | None, token: str) -> tuple:
        """Adds any page of any document to the citations, checked."""
        self.require(token)
        hit = self._pages_of(doc_id).get(int(page)) if doc_id and str(page).isdigit() else None
        if hit is None:
            raise gr.Error("Pick a document and one of its pages first.")
        key = citation_key(Hit(**hit))
        found = {**(candidates or {}), key: hit}
        checked = [k for k in chosen or [] if k in found and k != key] + [key]
        choices = [(citation_label(Hit(**h)), key) for key, h in found.items()]
        return gr.CheckboxGroup(choices=choices, value=checked), found

    def _pages_of(self, doc_id: str) -> dict[int, dict]:
        """Each page of a student document, by its physical number, as a
        citation (its first chunk's text)."""
        if doc_id not in self.mentor.library.student_doc_ids():
            return {}
        pages: dict[int, dict] = {}
        for r in sorted(self.mentor.index.records(doc_id), key=lambda r: r.chunk_no):
            pages.setdefault(r.page, Hit(r.doc_id, r.file, r.page, r.page_label, r.text, 0.0, r.section).to_json())
        return dict(sorted(pages.items()))

    def find_pages(self, question: str, chosen: list | None, candidates: dict | None, token: str) -> tuple:
        """Pages that could back the answer to ``question``; chosen ones stay."""
        self.require(token)
        if not (question or "").strip():
            raise gr.Error("Write the question first.")
        kept = [Hit(**candidates[k]) for k in chosen or [] if k in (candidates or {})]
        choices, found = self._pages_for(question, kept)
        return gr.CheckboxGroup(choices=choices, value=[k for k in chosen or [] if k in found]), found

    def _pages_for(self, question: str, keep: tuple | list = ()) -> tuple[list, dict]:
        """Citation choices: pages ``keep`` already cites, then the best pages
        for ``question`` among the documents students may open."""
        hits = list(keep) + self.mentor.search(question, SUGGESTED_PAGES)
        candidates: dict[str, dict] = {}
        for hit in hits:
            candidates.setdefault(citation_key(hit), hit.to_json())
        return [(citation_label(Hit(**h)), key) for key, h in candidates.items()], candidates

    def save_verified(
        self, verified_id: int | None, question: str, answer: str, chosen: list | None, candidates: dict | None, token: str
    ) -> tuple:
        """Saves the editor's verified answer (new, or the one being edited)."""
        self.require(token)
        citations = [Hit(**candidates[k]) for k in chosen or [] if k in (candidates or {})]
        try:
            saved = self.questions.save_verified(question, answer, citations, verified_id)
        except QuestionsError as e:
            raise gr.Error(html.escape(str(e))) from None
        shown, picker = self.verified(token)
        said = "Saved. Students who ask something close to this question now get your answer first."
        return saved.id, shown, picker, note(said, "ok")

    def remove_verified(self, verified_id: int | None, token: str) -> tuple:
        self.require(token)
        if verified_id is None:
            raise gr.Error("Pick the verified answer to remove.")
        self.questions.remove_verified(verified_id)
        shown, picker = self.verified(token)
        return None, "", "", gr.CheckboxGroup(choices=[], value=[]), {}, shown, picker, note("Removed.", "ok")

    # --- Questions for you ------------------------------------------------------------------

    def inbox(self, token: str) -> tuple:
        """Open requests (oldest first) and the recently answered ones."""
        self.require(token)
        requests = self.questions.requests()
        choices = [(request_label(r), r.id) for r in requests if r.open]
        return inbox_html(requests), gr.Dropdown(choices=choices, value=None)

    def reply(self, request_id: int | None, text: str, make_verified: bool, token: str) -> tuple:
        """Answers a request (the student sees it in their browser); with
        ``make_verified``, the reply also becomes a verified answer."""
        self.require(token)
        if request_id is None:
            raise gr.Error("Pick the question you are answering.")
        try:
            request = self.questions.request(int(request_id))
            verified = self.questions.save_verified(request.question, text) if make_verified else None
            self.questions.reply(request.id, text, verified.id if verified else None)
        except QuestionsError as e:
            raise gr.Error(html.escape(str(e))) from None
        shown, picker = self.inbox(token)
        said = "Sent." + (" It is a verified answer now too." if verified else "")
        return shown, picker, "", False, note(said, "ok"), self.open_requests(token)

    def open_requests(self, token: str) -> str:
        """How many requests are open, for the Questions for you tab's name
        (unchanged for a session not logged in: a refused login runs it too)."""
        try:
            self.require(token)
        except gr.Error:
            return gr.skip()
        return open_requests_html(len(self.questions.requests(only_open=True)))

    # --- Layout -------------------------------------------------------------------------------

    def build(self, admin: gr.State, console_tabs: gr.Tabs, open_requests: gr.HTML) -> None:
        """Adds the three tabs to the console (inside its ``gr.Tabs``), each
        wired; "Write a verified answer" crosses from Insights to the editor.
        ``open_requests`` (the console bar's) counts the open requests."""
        group, drafts, draft = self._build_insights(admin)
        editor, verified_message = self._build_verified(admin)
        draft.click(
            self.draft_verified,
            [group, drafts, admin],
            [console_tabs, *editor, verified_message],
            api_name="draft_verified",
        )
        self._build_inbox(admin, open_requests)

    def _build_insights(self, admin: gr.State) -> tuple:
        """The Insights tab, wired but for its draft button. Returns the
        group picker, the drafts and "Write a verified answer"."""
        with gr.Tab("Insights", id="insights") as insights_tab:
            with gr.Row(elem_id="insights-bar"):
                period = gr.Radio(list(PERIODS), value=DEFAULT_PERIOD, show_label=False, container=False, scale=4)
                refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100)
                export = gr.Button("Export CSV", size="sm", scale=0, min_width=120)
            csv_files = gr.File(label="CSV files (questions, groups)", file_count="multiple", visible=False)
            summary = gr.HTML(elem_id="insights-summary")
            gaps = gr.HTML(elem_id="insights-gaps")
            groups = gr.HTML(elem_id="insights-groups")
            with gr.Row(elem_id="draft-row"):
                group = gr.Dropdown(label="Answer a group yourself", choices=[], value=None, scale=4)
                draft = gr.Button("Write a verified answer", scale=1, min_width=200)
            drafts = gr.State([])
            retention = self._build_privacy(admin)
        shown = [summary, gaps, groups, group, drafts, retention]
        insights_tab.select(self.insights, [period, admin], shown, api_name="insights")
        refresh.click(self.insights, [period, admin], shown, api_visibility="private")
        period.change(self.insights, [period, admin], shown, api_visibility="private")
        export.click(self.export_csv, [period, admin], [csv_files], api_name="export_insights")
        return group, drafts, draft

    def _build_privacy(self, admin: gr.State) -> gr.Number:
        """The Privacy accordion, wired: what is kept, for how long, and
        deleting it all. Returns the retention field (Insights fills it in)."""
        with gr.Accordion("Privacy", open=False, elem_id="privacy"):
            gr.Markdown(
                "The mentor keeps each question's text, time, whether it was refused, the pages it cited "
                "and its thumbs up or down, to show you these insights. It keeps nothing about who asked: "
                'no address, no account, no name (unless a student adds one to "Ask the instructor").',
                elem_classes="help",
            )
            with gr.Row(elem_id="retention-row"):
                retention = gr.Number(label="Keep student questions for (days)", precision=0, minimum=1, scale=2)
                save_retention = gr.Button("Save", size="md", scale=0, min_width=100)
            with gr.Row():
                delete = gr.Button("Delete all student questions", variant="stop", size="sm", scale=0)
                confirm = gr.Button("Yes, delete them", variant="stop", size="sm", visible=False, scale=0)
            privacy_message = gr.HTML()
        delete.click(self.ask_delete, [admin], [confirm, privacy_message], api_name="ask_delete")
        confirm.click(
            self.delete_student_questions, [admin], [confirm, privacy_message], api_name="delete_student_questions"
        )
        save_retention.click(self.save_retention, [retention, admin], [privacy_message], api_name="save_retention")
        return retention

    def _build_verified(self, admin: gr.State) -> tuple[list, gr.HTML]:
        """The Verified answers tab, wired. Returns the editor (id, question,
        answer, pages, candidates) and its message, which Insights fills in."""
        with gr.Tab("Verified answers", id="verified") as verified_tab:
            gr.Markdown(
                "When a student asks something close to one of these questions (cosine similarity of at least "
                f"{self.mentor.settings.verified_min_similarity:.2f} by meaning), they get your answer first, "
                "marked as yours, with the pages you cite; the model is not asked.",
                elem_classes="help",
            )
            verified_list = gr.HTML(elem_id="verified-list")
            with gr.Row():
                pick = gr.Dropdown(label="Edit a verified answer", choices=[], value=None, scale=4)
                new = gr.Button("New", size="md", scale=0, min_width=100)
            editing = gr.State(None)
            candidates = gr.State({})
            question = gr.Textbox(label="Question", max_length=2000, elem_id="verified-question")
            answer = gr.Textbox(label="Your answer (Markdown)", lines=6, max_length=8000, elem_id="verified-answer")
            pages = gr.CheckboxGroup(label="Cite these pages", choices=[], elem_id="verified-pages")
            find = gr.Button("Find pages for this question", size="sm", scale=0)
            with gr.Row(elem_id="any-page-row"):
                # Custom values allowed, as in Materials: the handler checks the
                # login first, and then whether the document and page exist.
                document = gr.Dropdown(
                    label="Or cite any page: document", choices=[], value=None, allow_custom_value=True, scale=3
                )
                page = gr.Dropdown(
                    label="Page", choices=[], value=None, allow_custom_value=True, scale=1, min_width=140
                )
                add = gr.Button("Add this page", size="md", scale=0, min_width=140)
            with gr.Row():
                save = gr.Button("Save verified answer", variant="primary", scale=0, min_width=200)
                remove = gr.Button("Remove", variant="stop", scale=0, min_width=110)
            verified_message = gr.HTML()
        editor = [editing, question, answer, pages, candidates]
        listed = [verified_list, pick]
        verified_tab.select(self.verified, [admin], listed, api_name="verified_answers")
        verified_tab.select(self.cited_documents, [admin], [document], api_name="cited_documents")
        document.change(self.document_pages, [document, admin], [page], api_name="document_pages")
        add.click(self.add_page, [document, page, pages, candidates, admin], [pages, candidates], api_name="add_page")
        pick.input(self.edit_verified, [pick, admin], [*editor, verified_message], api_name="edit_verified")
        new.click(self.edit_verified, [gr.State(None), admin], [*editor, verified_message], api_visibility="private")
        find.click(self.find_pages, [question, pages, candidates, admin], [pages, candidates], api_name="find_pages")
        save.click(
            self.save_verified,
            [editing, question, answer, pages, candidates, admin],
            [editing, *listed, verified_message],
            api_name="save_verified",
        )
        remove.click(
            self.remove_verified, [editing, admin], [*editor, *listed, verified_message], api_name="remove_verified"
        )
        return editor, verified_message

    def _build_inbox(self, admin: gr.State, open_requests: gr.HTML) -> None:
        """The Questions for you tab, wired; a reply updates ``open_requests``."""
        with gr.Tab("Questions for you", id="inbox") as inbox_tab:
            inbox = gr.HTML(elem_id="inbox")
            request = gr.Dropdown(label="Answer a question", choices=[], value=None)
            reply = gr.Textbox(label="Your reply", lines=4, max_length=8000)
            make_verified = gr.Checkbox(
                label="Also make it a verified answer: students who ask something close get it first"
            )
            send = gr.Button("Send reply", variant="primary", scale=0, min_width=160)
            reply_message = gr.HTML()
        inbox_shown = [inbox, request]
        inbox_tab.select(self.inbox, [admin], inbox_shown, api_name="requests")
        send.click(
            self.reply,
            [request, reply, make_verified, admin],
            [*inbox_shown, reply, make_verified, reply_message, open_requests],
            api_name="reply_request",
        )


def draft_note(draft: dict) -> str:
    """What the editor says of a draft: whose words it starts from."""
    if not draft["answer"]:
        said = "No answer of the mentor's to start from (none yet, or rated unhelpful): write yours, then save it."
        return note(said, "ok")
    rated = " Students rated it helpful." if draft.get("rated") == "up" else " No student rated it."
    said = (
        "The draft below is the mentor's own answer, unchecked: read it against the pages before you save it, "
        "or clear it and write your own." + rated
    )
    return note(said, "busy")
