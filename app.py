"""Serves AI Mentor: ``python app.py``.

Builds the settings and the ``Mentor`` (index, embedder, model) once for
the process, says in the log where the data lives, which model answers,
the link to share and how the instructor logs in, then serves the web app
on 0.0.0.0:$PORT (7860 by default).
"""

from __future__ import annotations

import logging
import os
import sys

# Before Gradio is imported: a course pod phones nobody home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from mentor.llm import ModelNotFound  # noqa: E402
from mentor.settings import Settings, SettingsError  # noqa: E402
from mentor.store import StoreLocked  # noqa: E402

log = logging.getLogger("mentor.app")

# Errors whose message says what to do: logged as one paragraph, exit code 2.
STARTUP_ERRORS = (StoreLocked, ModelNotFound, SettingsError)
HOST = "0.0.0.0"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        mentor = open_mentor(settings)
    except STARTUP_ERRORS as e:
        log.error("AI Mentor cannot start. %s", e)
        return 2
    try:
        serve(mentor)
    finally:
        mentor.close()
    return 0


def open_mentor(settings: Settings):
    from mentor import Mentor

    log.info(
        "data: %s (index %s, uploaded files %s)", settings.home.resolve(), settings.index_location, settings.files_dir
    )
    if settings.openai_base_url:
        log.info("model: answers come from the server at %s", settings.openai_base_url)
    else:
        log.info("loading the embedder and the model; a large model takes a minute")
    mentor = Mentor.open(settings)
    if reason := mentor.library.rebuild_reason():
        log.warning("%s: rebuilding it in the background; students use the current index until it is done", reason)
    mentor.library.catch_up_in_background()
    # Student questions go once older than the course keeps them: at every
    # start (Mentor.open) and then daily.
    mentor.questions.clean_up_daily(lambda: mentor.course().teaching.retention_days)
    stats = mentor.stats()
    where = "served by " + settings.openai_base_url if settings.openai_base_url else "in this process"
    log.info(
        "model: %s (%s, %d answers at once, context %d tokens each); embedder: %s",
        stats["model"],
        where,
        mentor.model.status()["slots"],
        mentor.model.n_ctx,
        stats["embedder"],
    )
    log.info("course: %d documents, %d pages, %d chunks", stats["documents"], stats["pages"], stats["chunks"])
    return mentor


def serve(mentor) -> None:
    import uvicorn

    from mentor.web import create_app
    from mentor.web.auth import AdminAuth, admin_password, login_instructions

    settings = mentor.settings
    password, source = admin_password(settings)
    app = create_app(mentor, AdminAuth(password))
    log.info("Link to share with students: %s", settings.share_url)
    log.info(login_instructions(settings, password, source))
    log.info("serving on http://%s:%d", HOST, settings.port)
    # No access log: the UI's streaming requests would drown what matters.
    uvicorn.run(app, host=HOST, port=settings.port, access_log=False, log_level="info")


if __name__ == "__main__":
    sys.exit(main())
