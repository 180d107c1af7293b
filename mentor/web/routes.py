"""Plain HTTP routes beside the UI: health, a JSON chat, stats, stored files.

``/files/{doc_id}`` serves a stored original by its content hash only: the
id is checked to be 64 hex digits and the engine finds the file, so no part
of a request ever becomes a path. A slide deck or a Word file, which a
browser cannot show, is served as its text (``viewer``), with the original
at ``?download=1``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from ..answer import QuestionError
from ..documents import DocumentError, read_pages
from ..engine import Mentor
from .viewer import CONTENT_SECURITY_POLICY, document_html

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
# What a browser cannot show: served as text, page by page (``viewer``).
VIEWED = {".pptx": "these slides", ".docx": "this Word file"}
MAX_CONVERSATIONS = 1000


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

    def add(self, conversation_id: str, question: str, answer: str) -> None:
        with self._lock:
            history = self._history.pop(conversation_id, [])
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            self._history[conversation_id] = history[-2 * self.turns :] if self.turns else []
            while len(self._history) > self.limit:
                self._history.popitem(last=False)

    def __len__(self) -> int:
        return len(self._history)


def create_router(mentor: Mentor, course_name) -> APIRouter:
    """The routes, bound to ``mentor``; ``course_name()`` gives the current
    course name for the prompt."""
    router = APIRouter()
    conversations = Conversations(mentor.settings.history_turns)

    @router.get("/healthz")
    def healthz() -> dict:
        stats = mentor.stats()
        return {
            "ready": mentor.model is not None,
            "model": stats["model"],
            "documents": stats["documents"],
            "chunks": stats["chunks"],
        }

    @router.get("/api/stats")
    def stats() -> dict:
        return mentor.stats()

    # A plain (sync) route: FastAPI runs it in a worker thread, so a long
    # answer never blocks the event loop.
    @router.post("/api/chat")
    def chat(request: ChatRequest) -> dict:
        if mentor.model is None:
            raise HTTPException(503, "This mentor was started without a model.")
        conversation_id = request.conversation_id or uuid.uuid4().hex
        history = conversations.get(conversation_id)
        try:
            answer = mentor.ask(request.message, history, course_name())
        except QuestionError as e:
            raise HTTPException(400, str(e)) from None
        try:
            answer.finish()
        finally:
            answer.close()
        conversations.add(conversation_id, answer.question, answer.text)
        return {**answer.to_json(), "conversation_id": conversation_id}

    @router.get("/files/{doc_id}")
    def stored_file(doc_id: str, download: bool = False) -> Response:
        # Only documents students can get answers from; the engine finds the
        # file by hash alone (None for anything but 64 hex digits).
        name = next((d.name for d in mentor.documents() if d.doc_id == doc_id), None)
        path = mentor.stored_file(doc_id) if name else None
        if path is None or path.suffix not in CONTENT_TYPES or not path.is_file():
            raise HTTPException(404, "No such file.")
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
        if path.suffix in VIEWED and not download:
            try:
                pages = list(read_pages(path))
            except DocumentError as e:
                raise HTTPException(500, f"The file cannot be shown: {e}") from None
            view = document_html(name, doc_id, VIEWED[path.suffix], pages)
            return HTMLResponse(view, headers={**headers, "Content-Security-Policy": CONTENT_SECURITY_POLICY})
        return FileResponse(
            path,
            media_type=CONTENT_TYPES[path.suffix],
            filename=name,
            content_disposition_type="attachment" if download else "inline",
            headers=headers,
        )

    return router
