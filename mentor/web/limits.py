"""Bounds on what a client can make the server do: the size of a request
body, and how often one client may write (questions to the instructor,
thumbs up or down).

``BodyLimit`` is an ASGI middleware around the whole app: a body larger
than its path's cap is refused with 413 before anything parses it, whether
it says its length (Content-Length) or streams without one. Uploads
(Gradio's upload route) may be as large as ``MAX_UPLOAD_MB``; every other
request is a form or a JSON message of a few kilobytes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

# Any request but an upload: a question and a conversation's chat history
# (which Gradio sends back with every question) fit well within this.
DEFAULT_BODY_BYTES = 2 * 1024 * 1024
UPLOAD_PATHS = ("/gradio_api/upload",)
# Clients remembered at most by a rate limit; the idle ones go first.
MAX_TRACKED = 10_000


class BodyLimit:
    """Refuses request bodies over ``default_bytes`` (``upload_bytes`` on
    the upload routes) with 413."""

    def __init__(self, app, upload_bytes: int, default_bytes: int = DEFAULT_BODY_BYTES):
        self.app = app
        self.upload_bytes = upload_bytes
        self.default_bytes = default_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cap = self.upload_bytes if scope["path"].startswith(UPLOAD_PATHS) else self.default_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > cap):
            return await too_large(cap)(scope, receive, send)
        received = 0
        started = False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > cap:
                raise HTTPException(413, too_large_message(cap))
            return message

        async def sending(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except HTTPException as e:
            if e.status_code != 413 or started:
                raise
            await too_large(cap)(scope, receive, send)


def too_large(cap: int) -> JSONResponse:
    return JSONResponse({"detail": too_large_message(cap)}, status_code=413)


def too_large_message(cap: int) -> str:
    return f"The request is larger than the {cap / 1024 / 1024:g} MB this server takes."


class RateLimit:
    """At most ``count`` events per ``seconds`` for each key (a client's address).

    >>> limit = RateLimit(2, 60)
    >>> [limit.allow("10.0.0.1") for _ in range(3)], limit.allow("10.0.0.2")
    ([True, True, False], True)
    """

    def __init__(self, count: int, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.count = count
        self.seconds = seconds
        self._clock = clock
        self._events: dict[str, deque] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Counts one event for ``key``; False (and not counted) when it is over the limit."""
        now = self._clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= MAX_TRACKED:
                    self._forget_idle(now)
                events = self._events[key] = deque()
            while events and events[0] <= now - self.seconds:
                events.popleft()
            if len(events) >= self.count:
                return False
            events.append(now)
            return True

    def _forget_idle(self, now: float) -> None:
        self._events = {k: e for k, e in self._events.items() if e and e[-1] > now - self.seconds}
        while len(self._events) >= MAX_TRACKED:
            self._events.pop(next(iter(self._events)))
