"""The console's Share & back up tab: the class link, and a backup of the
whole course into one file that restores on a new pod without re-indexing.
Its handlers and its layout.

Every handler takes the instructor's session token and checks it first: a
hidden tab's endpoints can still be called directly.
"""

from __future__ import annotations

import html
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from mentor.course import backup
from mentor.engine import Mentor
from mentor.web.materials import discard_upload, document_choices
from mentor.web.render import documents_table, human_size, note, results_html, stats_markdown


class Share:
    """Handlers (plain methods) and ``build``, which adds the tab's layout
    and wires it."""

    def __init__(self, mentor: Mentor, require: Callable[[str | None], None], exports_dir: Path | None = None):
        """``require(token)`` raises ``gr.Error`` unless the instructor is logged in."""
        self.mentor = mentor
        self.require = require
        # Exports are written straight into Gradio's upload folder, which it
        # serves without copying (an archive can be gigabytes); a random
        # folder name keeps the link unguessable.
        self.exports_dir = exports_dir or Path(gr.utils.get_upload_folder()) / "mentor-exports"

    def export_backup(self, token: str) -> tuple:
        self.require(token)
        shutil.rmtree(self.exports_dir, ignore_errors=True)  # one export at a time on disk
        archive = backup.export_backup(self.mentor, self.exports_dir / uuid.uuid4().hex)
        size = human_size(archive.stat().st_size)
        return (
            gr.DownloadButton(f"Download {archive.name} ({size})", value=archive.as_posix(), visible=True),
            note("Backup ready. Download it and keep it somewhere other than this pod.", "ok"),
        )

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
            gr.Textbox(
                value=self.mentor.settings.share_url,
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
        export_button.click(self.export_backup, [admin], [export_file, export_message], api_name="export_backup")
        import_button.click(
            self.import_backup,
            [import_file, admin],
            [import_message, *library, import_file],
            api_name="import_backup",
        )
