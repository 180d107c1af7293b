"""The console's Materials tab: upload course files, delete or mark a
document, and watch or rebuild the index. Its handlers and its layout.

Every handler takes the instructor's session token and checks it first: a
hidden tab's endpoints can still be called directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from mentor.course.registry import Document, UnknownDocument
from mentor.engine import Mentor
from mentor.ingest.ocr import OcrOptions, engine_status
from mentor.ingest.pages import SUFFIXES, SUPPORTED
from mentor.ingest.pipeline import IngestResult
from mentor.web.render import documents_table, index_status_html, note, results_html, stats_markdown, upload_limits

DOCUMENT_COLUMNS = ["Document", "For", "Pages", "Chunks", "Added", "Size"]
# How often the console re-reads the index status while the instructor is
# logged in: a rebuild reports its progress, document by document.
STATUS_SECONDS = 3


@dataclass
class MaterialsParts:
    """What the console bar fills in on login, and what other tabs refresh."""

    documents: gr.Dataframe
    to_delete: gr.Dropdown
    index_status: gr.HTML
    status_timer: gr.Timer


@dataclass
class DeleteConfirmation:
    """Delete's second step: its row, and the buttons that confirm or cancel."""

    box: gr.Column
    question: gr.HTML
    yes: gr.Button
    cancel: gr.Button
    # The document the question is about, kept on the server (a State is
    # read when its event runs, not when it is sent).
    asked: gr.State


class Materials:
    """Handlers (plain methods) and ``build``, which adds the tab's layout
    and wires it."""

    def __init__(self, mentor: Mentor, require: Callable[[str | None], None]):
        """``require(token)`` raises ``gr.Error`` unless the instructor is logged in."""
        self.mentor = mentor
        self.require = require

    def index_status_now(self) -> str:
        library = self.mentor.library
        return index_status_html(
            library.live().spec, library.rebuild_status, library.rebuild_reason(), library.interrupted()
        )

    def index_status(self, token: str) -> str:
        """The index's state, for the console's timer: quiet when it is fine,
        a progress line while a rebuild runs, the failures when one stopped."""
        self.require(token)
        return self.index_status_now()

    def rebuild_index(self, token: str) -> str:
        """Starts rebuilding the index from the kept originals, in the
        background; students keep the current index until it is done."""
        self.require(token)
        self.mentor.library.rebuild_in_background("asked for in the instructor console")
        return self.index_status_now()

    def upload(self, files: list[str] | None, instructor_only: bool, token: str, progress=gr.Progress()):
        """Ingests each file in turn (``instructor_only``: never visible to
        students, from the first byte); yields the result lines so far, the
        stats, the table and the delete choices after each one."""
        self.require(token)
        paths = [Path(f) for f in files or []]
        if not paths:
            raise gr.Error("Choose or drop course files first.")
        results: list[IngestResult] = []
        for i, path in enumerate(paths):
            progress(i / len(paths), desc=f"{path.name}: reading")

            def report(p, i=i):
                # The bar counts embedding too: on a CPU it is the longer half.
                pages = f"{p.pages_parsed} of {p.pages_total} pages read{p.by_ocr()}"
                progress((i + p.share_done) / len(paths), desc=f"{p.file}: {pages}, {p.chunks_line()}")

            results.append(self.mentor.ingest_file(path, path.name, report, instructor_only=bool(instructor_only)))
            discard_upload(path)
            docs = self.mentor.documents()
            done = i + 1 == len(paths)
            yield (
                results_html([(r.line(), "ok" if r.ok else "failed") for r in results], pending=len(paths) - i - 1),
                stats_markdown(self.mentor.stats()),
                documents_table(docs),
                document_choices(docs),
                None if done else gr.skip(),
            )

    def ask_delete_document(self, doc_id: str | None, token: str) -> tuple:
        """The first step of Delete: what deleting the picked document does,
        and the buttons that confirm or cancel it."""
        self.require(token)
        doc = next((d for d in self.mentor.documents() if d.doc_id == doc_id), None)
        if doc is None:
            raise gr.Error("Pick the document to delete." if not doc_id else "That document is no longer in the course.")
        said = (
            f"Delete {doc.name}? Students will no longer get answers from it, and the links to its pages in "
            "earlier answers stop working. Its file is deleted too: to undo, you would upload it again."
        )
        return gr.Column(visible=True), note(said, "error"), gr.Button(value=f"Yes, delete {doc.name}"), "", doc_id

    @staticmethod
    def hide_question_unless_about(picked: str | None, asked: str | None):
        """Hides Delete's question when another document is picked. The pick
        and Delete… may reach the server in either order (each is its own
        request): a pick of the very document asked about leaves the
        question up, so a quick pick-then-Delete… always shows it."""
        return gr.skip() if picked and picked == asked else gr.Column(visible=False)

    def delete_document(self, doc_id: str | None, token: str) -> tuple:
        """Deletes the picked document (the second step: the instructor confirmed)."""
        self.require(token)
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

    def document_flags(self, doc_id: str | None, token: str) -> tuple:
        """The flags of the document picked in Materials."""
        self.require(token)
        doc = next((d for d in self.mentor.documents() if d.doc_id == doc_id), None)
        return (doc.instructor_only, doc.assignment) if doc else (False, False)

    def set_document_flags(self, doc_id: str | None, instructor_only: bool, assignment: bool, token: str) -> tuple:
        """Marks a document instructor-only and/or an assignment."""
        self.require(token)
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

    # --- Layout ----------------------------------------------------------------

    def build(self, admin: gr.State, stats: gr.Markdown) -> MaterialsParts:
        """Adds the tab (inside the console's ``gr.Tabs``) and wires it;
        ``stats`` is the console bar's, refreshed after every change."""
        with gr.Tab("Materials", id="materials"):
            files, upload_private, upload_button, upload_results = self._upload_area()
            documents = gr.Dataframe(
                headers=DOCUMENT_COLUMNS,
                datatype=["str"] * len(DOCUMENT_COLUMNS),
                interactive=False,
                wrap=True,
                label="Course documents (For: who gets answers from each)",
                elem_id="documents",
                # In pixels, not shares: on a phone the table scrolls sideways
                # instead of squeezing "Pages" into a letter a line.
                column_widths=["300px", "110px", "70px", "76px", "200px", "90px"],
            )
            to_delete, delete_button, confirm, delete_message = self._document_rows(admin, documents)
            with gr.Row(elem_id="index-row"):
                index_status = gr.HTML(elem_id="index-status")
                rebuild_button = gr.Button(
                    "Rebuild the index", size="sm", variant="secondary", scale=0, min_width=170
                )
            status_timer = gr.Timer(STATUS_SECONDS, active=False)
        status_timer.tick(self.index_status, [admin], [index_status], api_name="index_status", show_progress="hidden")
        rebuild_button.click(self.rebuild_index, [admin], [index_status], api_name="rebuild_index")
        library = [stats, documents, to_delete]
        upload_button.click(
            self.upload,
            [files, upload_private, admin],
            [upload_results, *library, files],
            api_name="upload",
            # Over the files being added, not over the result lines above.
            show_progress_on=[files],
        )
        # The question and the hiding that follows a pick run one at a time,
        # so each reads the document the other one last asked about.
        one_at_a_time = {"concurrency_id": "delete-confirm", "concurrency_limit": 1}
        delete_button.click(
            self.ask_delete_document,
            [to_delete, admin],
            [confirm.box, confirm.question, confirm.yes, delete_message, confirm.asked],
            api_name="ask_delete_document",
            **one_at_a_time,
        )
        deleted = confirm.yes.click(
            self.delete_document, [to_delete, admin], [delete_message, *library], api_name="delete_document"
        )
        hidden = lambda: gr.Column(visible=False)  # noqa: E731
        deleted.then(hidden, None, [confirm.box], queue=False, api_visibility="private")
        confirm.cancel.click(hidden, None, [confirm.box], queue=False, api_visibility="private")
        to_delete.change(
            self.hide_question_unless_about,
            [to_delete, confirm.asked],
            [confirm.box],
            api_visibility="private",
            **one_at_a_time,
        )
        return MaterialsParts(documents, to_delete, index_status, status_timer)

    def _upload_area(self) -> tuple:
        """The limits, the drop zone, the instructor-only choice and the button."""
        settings = self.mentor.settings
        ocr_status = engine_status(settings.ocr, OcrOptions(settings.ocr_languages))
        gr.Markdown(upload_limits(settings.max_upload_mb, ocr_status), elem_classes="help")
        files = gr.File(
            label=f"Course files ({SUPPORTED})",
            file_count="multiple",
            file_types=sorted(SUFFIXES),
            type="filepath",
            height=160,
        )
        with gr.Row(elem_id="upload-row"):
            upload_private = gr.Checkbox(
                label="Instructor only (a solution manual, say): students never see these files, "
                "not even while they are being added",
                elem_id="upload-instructor-only",
                scale=3,
            )
            upload_button = gr.Button("Add to the course", variant="primary", scale=1)
        return files, upload_private, upload_button, gr.HTML()

    def _document_rows(self, admin: gr.State, documents: gr.Dataframe) -> tuple:
        """The rows that pick a document to delete or mark, with the marking
        wired; returns the picker, the delete button and the message."""
        with gr.Row(elem_id="delete-row"):
            to_delete = gr.Dropdown(
                label="Pick a document to mark or delete",
                choices=[],
                value=None,
                allow_custom_value=True,
                scale=4,
            )
            delete_button = gr.Button("Delete…", variant="stop", size="md", scale=1, min_width=110)
        # Delete asks first: a document and its file go for good.
        with gr.Column(visible=False, elem_id="delete-confirm") as confirm_box:
            question = gr.HTML()
            with gr.Row():
                yes = gr.Button("Yes, delete it", variant="stop", size="sm", scale=0, min_width=200)
                cancel = gr.Button("Cancel", variant="secondary", size="sm", scale=0, min_width=100)
        confirm = DeleteConfirmation(confirm_box, question, yes, cancel, gr.State(None))
        with gr.Row(elem_id="flags-row"):
            instructor_only = gr.Checkbox(
                label="Instructor only (a solution manual, say): never shown, quoted or cited to students",
                scale=3,
            )
            assignment = gr.Checkbox(label="Assignment: the guide style can apply to it", scale=2)
            flags_button = gr.Button("Save", size="md", scale=0, min_width=110)
        delete_message = gr.HTML()
        to_delete.change(
            self.document_flags, [to_delete, admin], [instructor_only, assignment], api_name="document_flags"
        )
        flags_button.click(
            self.set_document_flags,
            [to_delete, instructor_only, assignment, admin],
            [delete_message, documents],
            api_name="set_document_flags",
        )
        return to_delete, delete_button, confirm, delete_message


def document_choices(docs: list[Document], clear: bool = False) -> gr.Dropdown:
    choices = [(f"{d.name} ({d.pages} pages)", d.doc_id) for d in reversed(docs)]
    return gr.Dropdown(choices=choices, value=None) if clear else gr.Dropdown(choices=choices)


def discard_upload(path: Path) -> None:
    """Deletes an upload from Gradio's cache once read (the engine keeps its
    own copy), so that a large course is not kept twice on the pod."""
    if Path(gr.utils.get_upload_folder()).resolve() in path.resolve().parents:
        path.unlink(missing_ok=True)
