"""The web app: the plain HTTP routes, and the Gradio UI mounted at ``/``.

``create_app(mentor)`` returns one FastAPI app; ``app.py`` serves it with
uvicorn, and the tests serve it on loopback the same way.

The top of the tree: it may import the engine and the parts below it (their
value types and errors); nothing below imports it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from mentor.course.info import CourseInfo
from mentor.engine import Mentor
from mentor.web.access import ClassGate, ClassKey
from mentor.web.auth import AdminAuth, admin_password
from mentor.web.limits import BodyLimit

STYLE = Path(__file__).with_name("style.css")
# What the page does in the browser beside Gradio: the question's counter,
# plain-text labels for the chat's messages (see its comments).
SCRIPT = Path(__file__).with_name("page.js")
# System fonts only: the page loads nothing from other sites, which keeps
# it fast and tells no third party who the students are.
FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def create_app(mentor: Mentor, auth: AdminAuth | None = None, class_key: ClassKey | None = None) -> FastAPI:
    """The whole web app for ``mentor``: ``/healthz``, ``/api/*``,
    ``/files/*``, the citation viewers (``/view/*``) and the UI, all but
    ``/healthz`` behind the class key (``access``). ``auth`` defaults to the
    configured instructor password (see ``auth.admin_password``),
    ``class_key`` to the configured key."""
    import gradio as gr

    from mentor.web.exports import Exports, create_export_router
    from mentor.web.render import PROXY_UPLOAD_MB
    from mentor.web.routes import create_router
    from mentor.web.ui import MentorUI
    from mentor.web.viewer_routes import create_viewer_router

    settings = mentor.settings
    if auth is None:
        auth = AdminAuth(admin_password(settings)[0])
    if class_key is None:
        class_key = ClassKey.from_settings(settings)
    app = FastAPI(title="AI Mentor", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.class_key = class_key
    # Registered before the UI is mounted at "/", so these paths win.
    app.include_router(create_router(mentor, lambda: CourseInfo.load(settings.home).name))
    app.include_router(create_viewer_router(mentor))
    exports = Exports(settings.home / "exports")
    exports.sweep()
    app.include_router(create_export_router(exports))
    blocks = MentorUI(mentor, auth, exports, class_key).build()
    # Around everything, the outermost last: the size of a body is checked
    # before anything reads it, then the key before anything answers.
    app.add_middleware(ClassGate, key=class_key, auth=auth, behind_proxy=settings.behind_proxy)
    upload_mb = max(settings.max_upload_mb, PROXY_UPLOAD_MB) + 1
    app.add_middleware(BodyLimit, upload_bytes=upload_mb * 1024 * 1024)
    return gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        theme=theme(),
        css_paths=[STYLE],
        head=f"<script>{SCRIPT.read_text(encoding='utf-8')}</script>",
        footer_links=[],
        run_history=False,
        # Gradio refuses bigger files before they reach the engine; every
        # visitor can upload to Gradio's cache, so this also bounds abuse.
        max_file_size=f"{mentor.settings.max_upload_mb}mb",
        ssr_mode=False,
        mcp_server=False,
    )


def theme():
    import gradio as gr

    return gr.themes.Soft(
        primary_hue=gr.themes.colors.indigo,
        secondary_hue=gr.themes.colors.slate,
        neutral_hue=gr.themes.colors.slate,
        radius_size=gr.themes.sizes.radius_md,
        font=FONTS,
        font_mono=MONO,
    ).set(
        body_background_fill="#f6f7fb",
        block_shadow="none",
        button_primary_shadow="none",
        # White on indigo-500 is 4.46:1, under WCAG AA's 4.5: one shade darker
        # for the primary buttons and a picked radio choice.
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        button_primary_border_color="*primary_600",
        button_primary_border_color_hover="*primary_700",
        checkbox_label_background_fill_selected="*primary_600",
        # Quiet labels: plain text above a field, not coloured chips.
        block_label_background_fill="transparent",
        block_label_text_color="*neutral_600",
        block_label_text_size="*text_sm",
        block_label_padding="0 0 4px 0",
        block_title_background_fill="transparent",
        block_title_text_color="*neutral_600",
        block_title_padding="0 0 4px 0",
    )


__all__ = ["create_app"]
