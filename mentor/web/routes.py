"""Plain HTTP routes beside the UI: health, a JSON chat, stats, stored files.

``POST /api/chat`` waits in the model's line like a student in the chat,
answers within ``CHAT_TIMEOUT`` or says why not (503: busy or too slow, 429:
this conversation already has questions in progress), and gives its slot
back as soon as its caller hangs up. Its answers are worked in threads of
their own, so a burst of them never takes the threads that serve the page
and ``/healthz``.

``/files/{doc_id}`` serves a stored original by its content hash only: the
id is checked to be 64 hex digits and the engine finds the file, so no part
of a request ever becomes a path. A slide deck or a Word file, which a
browser cannot show, is served as its text (``course.views``, rendered once
at ingest), with the original at ``?download=1``. A browser that follows a
stale or blocked link gets a page that says what happened
(``unavailable_html``); an API caller, JSON. Every route here but
``/healthz`` is behind the class key (``access.ClassGate``).
"""

from __future__ import annotations

import asyncio
import html
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field

from mentor.course.views import CONTENT_SECURITY_POLICY, VIEWED
from mentor.engine import Mentor
from mentor.generate.admission import ClientBusy, QueueFull
from mentor.generate.answer import Answer, QuestionError
from mentor.web.client import client_address

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".pdf": "application/pdf",
    # Markdown is served as plain text: a browser shows it, never runs it.
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".markdown": "text/plain; charset=utf-8",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
MAX_CONVERSATIONS = 1000
# How often a waiting /api/chat checks whether its caller is still there.
WATCH_SECONDS = 0.25
# Seconds a refused caller is told to wait (Retry-After): about one answer.
RETRY_AFTER = 30


class ChatRequest(BaseModel):
    message: str = Field(max_length=100_000)
    conversation_id: str | None = Field(default=None, max_length=128)


class Conversations:
    """The recent turns of the last ``limit`` API conversations, in memory.

    A bounded LRU: an abandoned conversation costs nothing after 1000 newer
    ones; a restart forgets them all (follow-ups are a convenience).
    """

    def __init__(self, turns: int, limit: int = MAX_CONVERSATIONS):
        self.turns = turns
        self.limit = limit
        self._history: OrderedDict[str, list[dict]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conversation_id: str) -> list[dict]:
        with self._lock:
            history = self._history.get(conversation_id, [])
            return list(history)

    def add(self, conversation_id: str, question: str, answer: str, prompted: str = "") -> None:
        """Adds a turn; ``prompted``: the question as the model read it, with its sources."""
        with self._lock:
            history = self._history.pop(conversation_id, [])
            user = {"role": "user", "content": question} | ({"prompted": prompted} if prompted else {})
            history += [user, {"role": "assistant", "content": answer}]
            self._history[conversation_id] = history[-2 * self.turns :] if self.turns else []
            while len(self._history) > self.limit:
                self._history.popitem(last=False)

    def __len__(self) -> int:
        return len(self._history)


def create_router(mentor: Mentor, course_name) -> APIRouter:
    """The routes, bound to ``mentor``; ``course_name()`` gives the current
    course name for the prompt."""
    router = APIRouter()
    add_status_routes(router, mentor)
    add_chat_route(router, mentor, course_name)
    add_file_route(router, mentor)
    return router


def add_status_routes(router: APIRouter, mentor: Mentor) -> None:
    """``/healthz`` (public, tells nothing about the course) and ``/api/stats``
    (behind the class key, counting only what students may see)."""

    @router.get("/healthz")
    def healthz() -> dict:
        # Ready in either mode: without a model, students still get the
        # passages (sources-only). Anyone may ask, so it says nothing of the
        # course (no name, no documents, no model problem naming its paths).
        return {"ready": True, "mode": "answers" if mentor.model else "sources-only"}

    @router.get("/api/stats")
    def stats() -> dict:
        # How busy the model is: its slots, the answers being written, the
        # questions waiting for one. Instructor-only documents are not counted.
        stats = mentor.stats(students=True)
        return {**stats, "model_status": mentor.model.status() if mentor.model else None}


def add_chat_route(router: APIRouter, mentor: Mentor, course_name) -> None:
    """``POST /api/chat``, with its conversations and its share of the model."""
    conversations = Conversations(mentor.settings.history_turns)
    # Answers worked at once for /api/chat, each in a thread of its own (not
    # the shared pool, which serves the page and /healthz). Half the model's
    # line at most: a script cannot fill it and leave the class no room.
    # Without a model (sources-only) an answer is a search, some tens of
    # milliseconds: a few at once are plenty.
    api_answers = threading.BoundedSemaphore(max(1, mentor.model.capacity // 2) if mentor.model else 4)

    @router.post("/api/chat")
    async def chat(body: ChatRequest, request: Request):
        if not api_answers.acquire(blocking=False):
            raise busy(503, "The mentor is answering as many questions as it can hold. Please ask again in a minute.")
        conversation_id = body.conversation_id or uuid.uuid4().hex
        # The fair share counts the address; the conversation, which the
        # caller chooses, only breaks ties within it (``admission.Request``).
        client = f"{client_address(request, mentor.settings.behind_proxy)} api:{conversation_id}"
        history = conversations.get(conversation_id)
        job = AnswerJob(lambda: mentor.ask(body.message, history, course_name(), client=client), api_answers)
        outcome = await job.run_until(mentor.settings.chat_timeout, request.is_disconnected)
        if outcome == "gone":
            log.info("an /api/chat caller hung up; its answer was stopped")
            return Response(status_code=499)
        if outcome == "late":
            raise busy(503, f"No answer within {mentor.settings.chat_timeout:g} s: the mentor is busy. Please ask again in a minute.")
        try:
            answer = job.result()
        except QuestionError as e:
            raise HTTPException(400, str(e)) from None
        except ClientBusy as e:
            raise busy(429, str(e)) from None
        except QueueFull as e:
            raise busy(503, str(e)) from None
        conversations.add(conversation_id, answer.question, answer.text, answer.prompted)
        return {**answer.to_json(), "conversation_id": conversation_id}


def add_file_route(router: APIRouter, mentor: Mentor) -> None:
    """``/files/{doc_id}``: a stored original students may open. A slide
    deck or a Word file is shown as the text view the library kept at
    ingest: a request reads a file, never parses one."""

    @router.get("/files/{doc_id}")
    def stored_file(doc_id: str, request: Request, download: bool = False) -> Response:
        found = viewable(mentor, doc_id)
        name, path = found if found else (None, None)
        if path is None or path.suffix not in CONTENT_TYPES:
            if wants_html(request):
                return HTMLResponse(unavailable_html(), status_code=404, headers={"Cache-Control": "no-store"})
            raise HTTPException(404, "No such file.")
        # Asked again every time: a document marked instructor-only later
        # must not live on in a browser's cache.
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}
        if path.suffix in VIEWED and not download:
            view = mentor.library.stored_view(doc_id)
            if view is None:  # a course from before kept views: made at start, in the background
                raise HTTPException(503, "This file's text view is being prepared. Try again in a minute.")
            headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            return FileResponse(view, media_type="text/html; charset=utf-8", headers=headers)
        return FileResponse(
            path,
            media_type=CONTENT_TYPES[path.suffix],
            filename=name,
            content_disposition_type="attachment" if download else "inline",
            headers=headers,
        )


def wants_html(request: Request) -> bool:
    """Whether the caller is a browser following a link (it asks for a
    page first), not a script that wants JSON."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept.split(",")[0] or accept.startswith("text/html")


def unavailable_html() -> str:
    """The page a stale or blocked citation opens: what happened, what to do."""
    title = "This file is not available"
    detail = (
        "The page this link points to is no longer in the course: the instructor removed or replaced the file, "
        "or keeps it for themselves. Ask your question again in the chat: the new answer cites the course's "
        "current files."
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ margin: 0; background: #f6f7fb; color: #1e293b; font: 16px/1.55 ui-sans-serif, system-ui, -apple-system,
  "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
main {{ max-width: 560px; margin: 12vh auto 0; padding: 28px 28px 24px; background: #fff;
  border: 1px solid #e2e8f0; border-radius: 14px; }}
.eyebrow {{ font-size: .78rem; letter-spacing: .08em; text-transform: uppercase; color: #4338ca; font-weight: 600; }}
h1 {{ font-size: 1.5rem; line-height: 1.25; margin: 4px 0 10px; }}
p {{ margin: 0 0 18px; color: #475569; }}
a {{ display: inline-block; padding: 8px 16px; border-radius: 8px; background: #4338ca; color: #fff;
  text-decoration: none; font-weight: 600; }}
a:focus-visible {{ outline: 3px solid #a5b4fc; outline-offset: 2px; }}
</style></head>
<body><main><div class="eyebrow">Course mentor</div><h1>{html.escape(title)}</h1>
<p>{html.escape(detail)}</p><a href="/">Back to the chat</a></main></body></html>"""


def viewable(mentor: Mentor, doc_id: str) -> tuple[str, Path] | None:
    """The name and kept original of the document ``doc_id`` if students may
    see it, else None: only documents students can get answers from (never
    an instructor-only one), and the engine finds the file by hash alone
    (None for anything but 64 hex digits). ``/files`` and the viewers ask this."""
    name = next((d.name for d in mentor.library.student_documents() if d.doc_id == doc_id), None)
    path = mentor.stored_file(doc_id) if name else None
    if path is None or not path.is_file():
        return None
    return name, path


def busy(status: int, message: str) -> HTTPException:
    return HTTPException(status, message, headers={"Retry-After": str(RETRY_AFTER)})


class AnswerJob:
    """One /api/chat answer, worked to its end in a thread of its own, and
    stoppable from the event loop (a timeout, a caller gone): stopping
    closes the answer, which frees its slot in the model at the next step.
    ``seat`` (already acquired) is released when the thread ends."""

    def __init__(self, ask: Callable[[], Answer], seat: threading.Semaphore):
        self._ask = ask
        self._seat = seat
        self._lock = threading.Lock()
        self._answer: Answer | None = None
        self._stopped = False
        self._outcome: tuple[Answer | None, BaseException | None] = (None, None)

    async def run_until(self, timeout: float, gone: Callable) -> str:
        """Runs the job; returns "done", "late" (stopped after ``timeout``
        seconds) or "gone" (stopped when ``await gone()`` says the caller left)."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        threading.Thread(target=self._work, args=(lambda: loop.call_soon_threadsafe(done.set),), daemon=True).start()
        deadline = loop.time() + timeout
        while True:
            try:
                await asyncio.wait_for(done.wait(), WATCH_SECONDS)
                return "done"
            except TimeoutError:
                pass
            if await gone():
                self.stop()
                return "gone"
            if loop.time() > deadline:
                self.stop()
                return "late"

    def result(self) -> Answer:
        """The finished answer; raises what asking raised."""
        answer, error = self._outcome
        if error is not None:
            raise error
        return answer

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            answer = self._answer
        if answer is not None:
            answer.close()

    def _work(self, finished: Callable[[], None]) -> None:
        try:
            answer = self._ask()
            with self._lock:
                self._answer = answer
                stopped = self._stopped
            try:
                if not stopped:
                    answer.finish()
            finally:
                answer.close()
            self._outcome = (answer, None)
        except BaseException as e:  # noqa: BLE001 - handed to the request
            self._outcome = (None, e)
        finally:
            self._seat.release()
            try:
                finished()
            except RuntimeError:  # the server stopped meanwhile: nobody waits
                pass
