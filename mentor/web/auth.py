"""The instructor's password and the sessions it opens.

The password is ``MENTOR_ADMIN_PASSWORD``, or one made on the first start
and kept in ``MENTOR_HOME/admin_password`` (readable by the owner only).
A correct login returns a session token that the UI keeps in the browser
session's server-side state; every instructor handler checks it.

Repeated wrong passwords from one client are slowed down: after
``max_failures`` within ``window`` seconds the client is refused, even with
the right password, for ``delay`` seconds, doubling with each further
failure. Refusing (rather than sleeping) keeps no worker thread busy.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mentor.settings import Settings

PASSWORD_FILE = "admin_password"
# Clients and sessions kept in memory at most; older ones are forgotten.
MAX_TRACKED = 10_000


class LoginRefused(Exception):
    """A login that failed; the message is what the instructor is shown."""


def admin_password(settings: Settings) -> tuple[str, str]:
    """Returns the password and where it comes from: ``"env"`` (the setting),
    ``"file"`` (made on an earlier start) or ``"new"`` (made just now and
    written to ``MENTOR_HOME/admin_password`` with mode 600)."""
    if settings.admin_password:
        return settings.admin_password, "env"
    return kept_secret(settings.home / PASSWORD_FILE)


def kept_secret(path: Path) -> tuple[str, str]:
    """The secret kept in ``path`` and ``"file"``, or a new one written
    there (mode 600) and ``"new"``."""
    if path.exists():
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            return stored, "file"
    secret = secrets.token_urlsafe(16)
    write_secret(path, secret)
    return secret, "new"


def write_secret(path: Path, secret: str) -> None:
    """Writes ``secret`` to ``path``, readable by the owner only, replacing
    what was there in one rename: a reader sees the old one or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    # Created with mode 600 from the start: never readable by others, not even briefly.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    os.chmod(partial, 0o600)
    partial.replace(path)


@dataclass
class _Failures:
    times: deque = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0


class AdminAuth:
    """Checks the instructor password and tracks logged-in sessions.

    >>> auth = AdminAuth("s3cret")
    >>> token = auth.login("s3cret", client="10.0.0.1")
    >>> auth.is_admin(token), auth.is_admin("forged")
    (True, False)
    """

    def __init__(
        self,
        password: str,
        *,
        max_failures: int = 5,
        window: float = 300.0,
        delay: float = 30.0,
        max_delay: float = 900.0,
        session_seconds: float = 12 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not password:
            raise ValueError("the instructor password must not be empty")
        self._password = password.encode()
        self.max_failures = max_failures
        self.window = window
        self.delay = delay
        self.max_delay = max_delay
        self.session_seconds = session_seconds
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._sessions: dict[str, float] = {}  # token -> expiry
        self._lock = threading.Lock()

    def login(self, password: str, client: str) -> str:
        """Returns a new session token for the right password; raises
        LoginRefused for a wrong one, or while ``client`` is locked out."""
        now = self._clock()
        with self._lock:
            failures = self._failures.get(client)
            if failures and now < failures.locked_until:
                wait = math.ceil(failures.locked_until - now)
                raise LoginRefused(f"Too many wrong passwords from your connection. Try again in {wait} seconds.")
            # Constant time: how long the comparison takes says nothing about the password.
            if hmac.compare_digest((password or "").encode(), self._password):
                self._failures.pop(client, None)
                return self._open_session(now)
            raise LoginRefused(self._fail(client, now))

    def is_admin(self, token: str | None) -> bool:
        """Whether ``token`` is a live session opened by a correct login."""
        if not token or not isinstance(token, str):
            return False
        with self._lock:
            expiry = self._sessions.get(token)
            if expiry is None:
                return False
            if self._clock() >= expiry:
                del self._sessions[token]
                return False
            return True

    def upload_pass(self, token: str | None) -> str | None:
        """What the browser of a live session keeps to upload files (a
        cookie): a digest of its token, never the token; None for a token
        that is not a live session."""
        return _digest(token) if self.is_admin(token) else None

    def accepts_upload_pass(self, value: str | None) -> bool:
        """Whether ``value`` is the upload pass of a live session: it stops
        working when that session ends (logout, expiry)."""
        if not isinstance(value, str):
            return False
        now = self._clock()
        with self._lock:
            live = [token for token, expiry in self._sessions.items() if now < expiry]
        return any(hmac.compare_digest(value.encode(), _digest(token).encode()) for token in live)

    def logout(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def _open_session(self, now: float) -> str:
        if len(self._sessions) >= MAX_TRACKED:
            self._sessions = {t: e for t, e in self._sessions.items() if e > now}
            while len(self._sessions) >= MAX_TRACKED:  # all live: drop the oldest
                self._sessions.pop(next(iter(self._sessions)))
        token = secrets.token_urlsafe(32)
        self._sessions[token] = now + self.session_seconds
        return token

    def _fail(self, client: str, now: float) -> str:
        if client not in self._failures and len(self._failures) >= MAX_TRACKED:
            self._forget_idle(now)
        failures = self._failures.setdefault(client, _Failures())
        while failures.times and failures.times[0] <= now - self.window:
            failures.times.popleft()
        if not failures.times:
            failures.lockouts = 0
        failures.times.append(now)
        if len(failures.times) < self.max_failures:
            return "Wrong password."
        failures.lockouts += 1
        wait = min(self.delay * 2 ** (failures.lockouts - 1), self.max_delay)
        failures.locked_until = now + wait
        return f"Wrong password. Too many attempts: wait {math.ceil(wait)} seconds before trying again."

    def _forget_idle(self, now: float) -> None:
        self._failures = {
            c: f
            for c, f in self._failures.items()
            if f.locked_until > now or (f.times and f.times[-1] > now - self.window)
        }
        while len(self._failures) >= MAX_TRACKED:
            self._failures.pop(next(iter(self._failures)))


def login_instructions(settings: Settings, password: str, source: str) -> str:
    """How the instructor logs in, for the log: the password itself only when
    it was generated here; one the operator chose is never printed."""
    where = "the Instructor tab of the link above"
    if source == "env":
        return f"Instructor login: {where}, with the password set in MENTOR_ADMIN_PASSWORD (not printed)."
    made = "generated now" if source == "new" else "generated on the first start"
    return (
        f"Instructor login: {where}, with the password {password} ({made} and kept in "
        f"{Path(settings.home) / PASSWORD_FILE}; set MENTOR_ADMIN_PASSWORD to choose your own)."
    )


def _digest(token: str) -> str:
    return hashlib.sha256(f"mentor upload pass {token}".encode()).hexdigest()
