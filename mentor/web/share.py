"""The console's Share & back up tab: the class link (with "New link", which
replaces its key), and a backup of the whole course into one file that
restores on a new pod without re-indexing. Its handlers and its layout.

Every handler takes the instructor's session token and checks it first: a
hidden tab's endpoints can still be called directly.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from mentor.course import backup
from mentor.engine import Mentor
from mentor.web.access import ClassKey, new_link_form
from mentor.web.exports import Exports
from mentor.web.materials import discard_upload, document_choices
from mentor.web.render import documents_table, human_size, note, results_html, stats_markdown


class Share:
    """Handlers (plain methods) and ``build``, which adds the tab's layout
    and wires it."""

    def __init__(self, mentor: Mentor, require: Callable[[str | None], None], exports: Exports, class_key: ClassKey):
        """``require(token)`` raises ``gr.Error`` unless the instructor is logged in."""
        self.mentor = mentor
        self.require = require
        self.exports = exports
        self.class_key = class_key

    def class_link(self, token: str) -> str:
        """The link to share, key included: shown to the logged-in instructor only."""
        try:
            self.require(token)
        except gr.Error:
            return ""  # logged out: the link leaves the page
        return self.class_key.link(self.mentor.settings.share_url)

    def new_link_button(self, token: str) -> str:
        """The "New link" button (a form: ``access.NEW_LINK``), for the
        logged-in instructor; it replaces the key, so the old link and every
        browser that opened it are refused from then on."""
        try:
            self.require(token)
        except gr.Error:
            return ""
        if self.class_key.source in ("env", "off"):
            return note("The key is set by MENTOR_CLASS_KEY: change it there and restart to replace the link.", "ok")
        return new_link_form(token)

    def export_backup(self, token: str) -> tuple:
        """Exports the course into a folder of its own; the console gets a
        link that downloads it once, within the hour."""
        self.require(token)
        download, archive = self.exports.create(self.mentor)
        size = html.escape(human_size(archive.stat().st_size))
        link = (
            f'<a class="download" href="/exports/{download}" download="{html.escape(archive.name)}">'
            f"Download {html.escape(archive.name)} ({size})</a>"
        )
        said = "Backup ready. Download it (once, within the hour) and keep it somewhere other than this pod."
        return link, note(said, "ok")

    def import_backup(self, file: str | None, token: str) -> tuple:
        self.require(token)
        if not file:
            raise gr.Error("Choose a backup file (.tar.gz) first.")
        try:
            summary = backup.import_backup(self.mentor, Path(file))
        except backup.BackupError as e:
            raise gr.Error(html.escape(str(e))) from None
        finally:
            discard_upload(Path(file))
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

    def build(self, admin: gr.State, library: list) -> None:
        """Adds the tab (inside the console's ``gr.Tabs``) and wires it;
        ``library`` (stats, documents, their picker) is refreshed on restore."""
        with gr.Tab("Share & back up"):
            with gr.Row(elem_id="class-link-row"):
                link = gr.Textbox(
                    label="Link to share with students: only this link opens the course",
                    interactive=False,
                    buttons=["copy"],
                    elem_id="class-link",
                    scale=4,
                )
                new_link = gr.HTML(elem_id="new-link")
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
                    export_file = gr.HTML(elem_id="export-download")
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
        # Filled in once logged in: the key is never part of the page itself.
        admin.change(self.class_link, [admin], [link], api_visibility="private")
        admin.change(self.new_link_button, [admin], [new_link], api_visibility="private")
        export_button.click(self.export_backup, [admin], [export_file, export_message], api_name="export_backup")
        import_button.click(
            self.import_backup,
            [import_file, admin],
            [import_message, *library, import_file],
            api_name="import_backup",
        )
