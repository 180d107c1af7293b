"""The console's backups on their way to the instructor's computer.

Each export is written into a folder of its own, ``MENTOR_HOME/exports/
<token>/``, named by a random token that only the logged-in console is
given: ``/exports/<token>`` downloads it once, and the folder goes when the
download ends, or an hour after the export, whichever comes first. "Once"
holds for two requests at the same moment too: the first claims the folder
by renaming it, so the second finds nothing to send. An
archive holds the instructor-only originals too, so it never lies in a
folder that anything else serves (Gradio's upload cache is served to
anyone who knows a path), and two exports never touch each other's files.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import time
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from mentor.course import backup
from mentor.engine import Mentor

log = logging.getLogger(__name__)

KEEP_SECONDS = 3600
TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
TAKEN = "taken-"  # a claimed export's folder; never a token (too short), so never served again


class Exports:
    """The backups made in the console and not yet downloaded."""

    def __init__(self, folder: Path, keep_seconds: float = KEEP_SECONDS):
        self.folder = Path(folder)
        self.keep_seconds = keep_seconds

    def create(self, mentor: Mentor) -> tuple[str, Path]:
        """Exports the course (under the library's lock) into a folder of its
        own; returns its download token and the archive."""
        self.sweep()
        token = secrets.token_urlsafe(24)
        archive = backup.export_backup(mentor, self.folder / token)
        timer = threading.Timer(self.keep_seconds, self.remove, args=(token,))
        timer.daemon = True
        timer.start()
        return token, archive

    def archive(self, token: str) -> Path | None:
        """The archive of the export ``token``, or None (unknown, downloaded or expired)."""
        if not TOKEN.fullmatch(token or ""):
            return None
        return self._archive_in(self.folder / token)

    def claim(self, token: str) -> Path | None:
        """Takes the export ``token`` for one download: its archive, moved out
        of the token's reach, or None when it is unknown or already taken. The
        caller removes the archive's folder once it is sent."""
        if not TOKEN.fullmatch(token or ""):
            return None
        taken = self.folder / f"{TAKEN}{secrets.token_hex(8)}"
        try:
            (self.folder / token).rename(taken)  # atomic: of two requests, one wins
        except OSError:  # unknown, expired, or taken a moment ago
            return None
        return self._archive_in(taken)

    def remove(self, token: str) -> None:
        if TOKEN.fullmatch(token or ""):
            shutil.rmtree(self.folder / token, ignore_errors=True)

    @staticmethod
    def _archive_in(folder: Path) -> Path | None:
        try:
            found = sorted(folder.glob("mentor-backup-*.tar.gz"))
        except FileNotFoundError:  # claimed or removed while it was read
            return None
        return found[0] if found else None

    def sweep(self) -> None:
        """Removes the exports older than ``keep_seconds`` (a restart forgets its timers)."""
        if not self.folder.is_dir():
            return
        old = time.time() - self.keep_seconds
        for path in self.folder.iterdir():
            if path.is_dir() and path.stat().st_mtime < old:
                shutil.rmtree(path, ignore_errors=True)


def create_export_router(exports: Exports) -> APIRouter:
    """``GET /exports/{token}``: one download of one backup, then it is gone."""
    router = APIRouter()

    @router.get("/exports/{token}")
    def download(token: str) -> FileResponse:
        archive = exports.claim(token)
        if archive is None:
            raise HTTPException(404, "No such backup: it was downloaded already or is over an hour old. Make another.")
        return FileResponse(
            archive,
            media_type="application/gzip",
            filename=archive.name,
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
            background=BackgroundTask(shutil.rmtree, archive.parent, ignore_errors=True),
        )

    return router
