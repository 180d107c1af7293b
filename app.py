"""Serves AI Mentor: ``python app.py``.

Builds the settings and the ``Mentor`` (index, embedder, model) once for
the process, says in the log where the data lives, which model answers,
the link to share (with the class key: ``mentor.web.access``) and how
the instructor logs in, then serves the web app
on 0.0.0.0:$PORT (7860 by default).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import sys

# Before Gradio is imported: a course pod phones nobody home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from mentor.index.embed import EmbedderUnavailable  # noqa: E402
from mentor.index.store import StoreLocked  # noqa: E402
from mentor.settings import Settings, SettingsError  # noqa: E402

log = logging.getLogger("mentor.app")

# Errors whose message says what to do: logged as one line, exit code 2.
# (No model is not one of them: the app then serves passages only.)
STARTUP_ERRORS = (StoreLocked, SettingsError, EmbedderUnavailable)
HOST = "0.0.0.0"


class PortInUse(RuntimeError):
    """Another program listens on the port the app would serve on."""


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        check_port(settings.port)
        mentor = open_mentor(settings)
    except (*STARTUP_ERRORS, PortInUse) as e:
        log.error("AI Mentor cannot start. %s", e)
        return 2
    except (OSError, sqlite3.OperationalError) as e:
        if not (problem := disk_problem(e, settings)):
            raise
        log.error("AI Mentor cannot start. %s", problem)
        return 2
    try:
        serve(mentor)
    finally:
        mentor.close()
    return 0


def check_port(port: int) -> None:
    """Fails at once, before minutes of loading, when the port is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(
                f"Port {port} is already in use (another AI Mentor, or another program): "
                "stop it, or set PORT to a free port."
            ) from None


def disk_problem(error: Exception, settings: Settings) -> str:
    """One line saying what to do about a full or read-only data folder, or ""."""
    home = settings.home.resolve()
    full = getattr(error, "errno", None) == errno.ENOSPC or "disk is full" in str(error)
    if full:
        return f"The disk holding MENTOR_HOME ({home}) is full: free some space, or point MENTOR_HOME at a larger volume."
    if getattr(error, "errno", None) in (errno.EACCES, errno.EROFS):
        return f"MENTOR_HOME ({home}) cannot be written to ({error.strerror}): make it writable, or point MENTOR_HOME elsewhere."
    return ""


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
    if mentor.model:
        log.info(
            "model: %s (%s, %d answers at once, context %d tokens each); embedder: %s",
            stats["model"],
            where,
            mentor.model.status()["slots"],
            mentor.model.n_ctx,
            stats["embedder"],
        )
    else:
        log.warning("sources-only mode: students get the best passages, not answers; embedder: %s", stats["embedder"])
    log.info("course: %d documents, %d pages, %d chunks", stats["documents"], stats["pages"], stats["chunks"])
    return mentor


def serve(mentor) -> None:
    import uvicorn

    from mentor.web import create_app
    from mentor.web.access import ClassKey
    from mentor.web.auth import AdminAuth, admin_password, login_instructions

    settings = mentor.settings
    password, source = admin_password(settings)
    class_key = ClassKey.from_settings(settings)
    app = create_app(mentor, AdminAuth(password), class_key)
    log.info("Link to share with students: %s", class_key.link(settings.share_url))
    if not class_key.enabled:
        log.warning("MENTOR_CLASS_KEY=off: anyone who finds the address can use the course")
    log.info(login_instructions(settings, password, source))
    log.info("serving on http://%s:%d", HOST, settings.port)
    # No access log: the UI's streaming requests would drown what matters.
    uvicorn.run(app, host=HOST, port=settings.port, access_log=False, log_level="info")


if __name__ == "__main__":
    sys.exit(main())
