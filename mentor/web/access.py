"""Who may open the course: the class key in the link the instructor shares.

The key is ``MENTOR_CLASS_KEY``, or one made on the first start and kept in
``MENTOR_HOME/class_key`` (mode 600); ``MENTOR_CLASS_KEY=off`` opens the
course to anyone. The link is ``<share url>/?key=<key>``.

``ClassGate`` is one ASGI middleware around the whole app, so every route,
today's and tomorrow's (the page, Gradio's API and event streams, ``/api``,
``/files``, ``/view``), needs the key unless it is listed in ``OPEN_PATHS``.
A request is let in with the key in ``?key=`` (a browser that opens the link
then gets a cookie, HttpOnly, SameSite=Lax, path /), in
``Authorization: Bearer <key>`` (scripts), or with that cookie. Anything
else gets a short page, "Ask your instructor for the class link" (401).

The cookie holds a digest of the key, not the key: "New link" makes a new
key, and every cookie and link made from the old one stops working at once.

The instructor reaches the course either through the same link (the start
log and the console show it) or by typing the instructor password on the
refusal page, which sets the same cookie: the password opens the course as
it opens the console, under the same lockout of wrong guesses.

Files are the instructor's alone to upload, key or no key: Gradio's upload
route answers 403, before a byte of the body is read, to a request without
the upload pass. The console gets that pass (a cookie, HttpOnly,
SameSite=Strict, for the upload route only) when the instructor signs in:
the sign-in hands the page the pass, a digest of the session's token that
opens nothing but the upload route, and the page posts it to
``INSTRUCTOR_UPLOADS`` (``upload_pass_js``). It stops working when the
session ends.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import threading
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mentor.settings import Settings
from mentor.web.auth import AdminAuth, LoginRefused, kept_secret, write_secret
from mentor.web.client import client_address
from mentor.web.limits import UPLOAD_PATHS

KEY_FILE = "class_key"
OFF = "off"
COOKIE = "mentor_class"
# A year: a student keeps the course for the term without the link.
COOKIE_SECONDS = 365 * 24 * 3600
# The one path open to anyone: a health check says nothing about the course.
OPEN_PATHS = frozenset({"/healthz"})
INSTRUCTOR_LOGIN = "/class/instructor"
INSTRUCTOR_UPLOADS = "/class/instructor-uploads"
UPLOAD_COOKIE = "mentor_uploads"
UPLOADS_REFUSED = "Only the instructor uploads files: sign in on the Instructor tab first."
# "New link" is a plain form post, not a Gradio event: the page that asks
# holds the old key, so its answer could not come back through the gate;
# the redirect to the new link gives this browser the new cookie.
NEW_LINK = "/class/new-link"
MAX_LOGIN_BODY = 4096
REFUSED = "Ask your instructor for the class link."


class KeyFixed(RuntimeError):
    """The key was set with MENTOR_CLASS_KEY, so the app cannot replace it."""


class ClassKey:
    """The current class key, checked in constant time; None: the course is open.

    >>> key = ClassKey("s3cret")
    >>> key.accepts("s3cret"), key.accepts("guess"), key.accepts(None)
    (True, False, False)
    """

    def __init__(self, key: str | None, path: Path | None = None, source: str = "given"):
        self._key = key
        self.path = path
        self.source = source  # "env", "file", "new", "off" or "given"
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ClassKey:
        """The key MENTOR_CLASS_KEY sets ("off": none), else the one kept in
        ``MENTOR_HOME/class_key``, made there on the first start."""
        if settings.class_key and settings.class_key.lower() == OFF:
            return cls(None, source=OFF)
        if settings.class_key:
            return cls(settings.class_key, source="env")
        path = settings.home / KEY_FILE
        key, source = kept_secret(path)
        return cls(key, path, source)

    @property
    def enabled(self) -> bool:
        return self._key is not None

    @property
    def key(self) -> str | None:
        return self._key

    def accepts(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the key (always, when the course is open)."""
        key = self._key
        if key is None:
            return True
        return isinstance(candidate, str) and hmac.compare_digest(candidate.encode(), key.encode())

    def cookie_value(self) -> str:
        """What the browser keeps: a digest of the key, never the key itself."""
        return hmac.new((self._key or "").encode(), b"mentor class cookie", hashlib.sha256).hexdigest()

    def accepts_cookie(self, value: str | None) -> bool:
        return isinstance(value, str) and hmac.compare_digest(value.encode(), self.cookie_value().encode())

    def link(self, share_url: str) -> str:
        """The link to give the class."""
        base = share_url.rstrip("/") + "/"
        return f"{base}?key={quote(self._key, safe='')}" if self._key else base

    def renew(self) -> str:
        """Makes a new key and keeps it; links and cookies of the old one stop working."""
        if self.source == "env":
            raise KeyFixed("The class key is set by MENTOR_CLASS_KEY: change it there and restart the pod.")
        if self._key is None:
            raise KeyFixed("The course is open to anyone (MENTOR_CLASS_KEY=off): there is no link to replace.")
        with self._lock:
            key = secrets.token_urlsafe(16)
            if self.path is not None:
                write_secret(self.path, key)
            self._key = key
        return key


class ClassGate:
    """The ASGI middleware that lets in only requests with the class key."""

    def __init__(self, app, key: ClassKey, auth: AdminAuth, behind_proxy: bool):
        self.app = app
        self.key = key
        self.auth = auth
        self.behind_proxy = behind_proxy

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.key.enabled or scope["path"] in OPEN_PATHS:
            return await self._let_in(scope, receive, send)
        conn = HTTPConnection(scope)
        if scope["type"] == "http" and scope["path"] in (INSTRUCTOR_LOGIN, NEW_LINK):
            answer = self._instructor_login if scope["path"] == INSTRUCTOR_LOGIN else self._new_link
            response = await answer(conn, receive)
            return await response(scope, receive, send)
        linked = self.key.accepts(conn.query_params.get("key"))
        bearer = conn.headers.get("authorization", "")
        scheme, _, given = bearer.partition(" ")
        if linked or (scheme.lower() == "bearer" and self.key.accepts(given.strip())):
            fresh = linked and not self.key.accepts_cookie(conn.cookies.get(COOKIE))
            return await self._let_in(scope, receive, self._with_cookie(send, conn) if fresh else send)
        if self.key.accepts_cookie(conn.cookies.get(COOKIE)):
            return await self._let_in(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        return await refusal(conn)(scope, receive, send)

    async def _let_in(self, scope, receive, send) -> None:
        """A request of the class on its way to the app, but for what is the
        instructor's alone: an upload without the upload pass is refused
        (403) before its body is read, and the pass is given here."""
        if scope["type"] == "http" and scope["path"] == INSTRUCTOR_UPLOADS:
            response = await self._upload_pass(HTTPConnection(scope), receive)
            return await response(scope, receive, send)
        if scope["type"] == "http" and scope["path"].startswith(UPLOAD_PATHS):
            if not self.auth.accepts_upload_pass(HTTPConnection(scope).cookies.get(UPLOAD_COOKIE)):
                refused = JSONResponse({"detail": UPLOADS_REFUSED}, status_code=403, headers={"Cache-Control": "no-store"})
                return await refused(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _upload_pass(self, conn: HTTPConnection, receive) -> Response:
        """The console's sign-in posts the upload pass here; a live session's is kept as a cookie."""
        value = await _form_field(receive, "pass") if conn.scope["method"] == "POST" else ""
        if not self.auth.accepts_upload_pass(value):
            return JSONResponse({"detail": "Log in as the instructor first (Instructor tab)."}, status_code=401)
        response = Response(status_code=204, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            UPLOAD_COOKIE,
            value,
            max_age=int(self.auth.session_seconds),
            path=UPLOAD_PATHS[0],
            httponly=True,
            samesite="strict",
            secure=self._https(conn),
        )
        return response

    def _with_cookie(self, send, conn: HTTPConnection):
        """``send``, adding the class cookie to the response's headers."""
        cookie = self._cookie_header(conn)

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        return sending

    def _cookie_header(self, conn: HTTPConnection) -> bytes:
        response = Response()
        response.set_cookie(
            COOKIE,
            self.key.cookie_value(),
            max_age=COOKIE_SECONDS,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._https(conn),
        )
        return response.headers["set-cookie"].encode("latin-1")

    def _https(self, conn: HTTPConnection) -> bool:
        forwarded = conn.headers.get("x-forwarded-proto", "") if self.behind_proxy else ""
        return conn.url.scheme == "https" or forwarded.split(",")[-1].strip() == "https"

    async def _instructor_login(self, conn: HTTPConnection, receive) -> Response:
        """The refusal page's form: the instructor password opens the course."""
        if conn.scope["method"] != "POST":
            return refusal(conn)
        password = await _form_field(receive, "password")
        try:
            token = self.auth.login(password, client_address(conn, self.behind_proxy))
        except LoginRefused as e:
            return refusal(conn, str(e))
        self.auth.logout(token)  # only the course was asked for; the console logs in on its own
        response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        response.raw_headers.append((b"set-cookie", self._cookie_header(conn)))
        return response


    async def _new_link(self, conn: HTTPConnection, receive) -> Response:
        """The console's "New link": with a live instructor session, a new
        key, and this browser sent to the new link (which gives it the cookie)."""
        session = await _form_field(receive, "session") if conn.scope["method"] == "POST" else ""
        if not self.auth.is_admin(session):
            return refusal(conn, "Log in as the instructor first (Instructor tab).")
        try:
            key = self.key.renew()
        except KeyFixed as e:
            return HTMLResponse(refusal_page(str(e)), status_code=409, headers={"Cache-Control": "no-store"})
        return RedirectResponse(f"/?key={quote(key, safe='')}", status_code=303, headers={"Cache-Control": "no-store"})


async def _form_field(receive, name: str) -> str:
    """One field of a small url-encoded form body (at most ``MAX_LOGIN_BODY`` bytes read)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_LOGIN_BODY or not message.get("more_body"):
            break
    return (parse_qs(body[:MAX_LOGIN_BODY].decode("utf-8", "replace")).get(name) or [""])[0]


def upload_pass_js() -> str:
    """What the console runs once signed in, with the upload pass: it posts
    the pass to ``INSTRUCTOR_UPLOADS``, which answers with the cookie the
    upload route wants (a page cannot set an HttpOnly cookie itself)."""
    return (
        "(pass) => { if (pass) fetch(%r, {method: 'POST', credentials: 'same-origin', "
        "body: new URLSearchParams({pass})}); }" % INSTRUCTOR_UPLOADS
    )


def new_link_form(session: str) -> str:
    """The console's "New link" button, a form that carries the instructor's session."""
    return (
        f'<form method="post" action="{NEW_LINK}" class="new-link">'
        f'<input type="hidden" name="session" value="{html.escape(session)}">'
        '<button type="submit" class="lg secondary">New link</button></form>'
    )


def refusal(conn: HTTPConnection, problem: str = "") -> Response:
    """The answer to a request without the key: a page for a browser, JSON for a script."""
    headers = {"Cache-Control": "no-store", "WWW-Authenticate": 'Bearer realm="class"'}
    if "text/html" not in conn.headers.get("accept", ""):
        return JSONResponse({"detail": REFUSED}, status_code=401, headers=headers)
    headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    return HTMLResponse(refusal_page(problem), status_code=401, headers=headers)


PAGE_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; background: #f6f7fb; color: #1f2328; margin: 0; }
main { max-width: 28rem; margin: 12vh auto; padding: 2rem; background: #fff; border-radius: 12px;
       border: 1px solid #d0d7de; }
h1 { font-size: 1.35rem; margin: 0 0 .5rem; }
p { color: #59636e; margin: .25rem 0 1rem; }
details { border-top: 1px solid #d0d7de; padding-top: 1rem; }
summary { cursor: pointer; color: #4f46e5; }
input { font: inherit; width: 100%; box-sizing: border-box; padding: .5rem; margin: .75rem 0; border: 1px solid #d0d7de;
        border-radius: 6px; }
button { font: inherit; background: #4f46e5; color: #fff; border: 0; border-radius: 6px; padding: .5rem 1rem; }
.problem { color: #b42318; }
"""


def refusal_page(problem: str = "") -> str:
    """The page a browser without the key sees: no course name, nothing of the course."""
    note = f'<p class="problem">{html.escape(problem)}</p>' if problem else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Course mentor</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{PAGE_STYLE}</style></head>'
        f"<body><main><h1>{REFUSED}</h1>"
        "<p>This course mentor opens with the link your instructor shares with the class. "
        "Open that link once in this browser and it remembers the course.</p>"
        f"<details{' open' if problem else ''}><summary>I am the instructor</summary>{note}"
        f'<form method="post" action="{INSTRUCTOR_LOGIN}"><label>Instructor password'
        '<input type="password" name="password" autocomplete="current-password" required></label>'
        "<button type=submit>Open the course</button></form></details></main></body></html>"
    )
