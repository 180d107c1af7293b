"""Answering: retrieval, a prompt with numbered sources, a streamed reply.

Knows nothing of Gradio: the UI, the HTTP routes and the CLI all consume
``Answer`` the same way, and the question log (``questions``) keeps each
answer's question when its last piece has been read, whoever reads it.

A question close enough to one the instructor answered gets the verified
answer, without retrieval or the model. Otherwise the prompt follows the
course's answer style: *direct* answers, or *guide* (hints and questions,
never a complete solution), for the whole course or only when the sources
include an assignment.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mentor.course.info import DIRECT, GUIDE, WHOLE_COURSE, Teaching
from mentor.generate.llm import ChatModel
from mentor.generate.prompts import CITATION, GUIDE_RULES, NO_DOCUMENTS, NOT_COVERED, REWRITE, RULES, SOURCES_ONLY
from mentor.index.retrieve import Retriever
from mentor.index.store import Hit
from mentor.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from mentor.course.questions import QuestionStore, Verified

log = logging.getLogger(__name__)

# Tokens kept free for the chat template's own markup around each message.
TEMPLATE_MARGIN = 64


class QuestionError(ValueError):
    """A question the mentor will not take; the message says why."""


@dataclass
class Answer:
    """A streamed answer: iterate it for text pieces; ``text`` then holds all.

    ``sources`` are known before the first token, so a UI can show them
    while the model writes.
    """

    question: str
    query: str
    sources: list[Hit]
    refused: bool
    pieces: Iterator[str] = field(repr=False)
    text: str = ""
    # Random, never derived from who asked: the thumbs and "Ask the
    # instructor" refer to the answer by it.
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The instructor's answer this is, when a verified answer matched.
    verified: Verified | None = None
    # The answer style its prompt used: DIRECT or GUIDE.
    style: str = DIRECT
    # The query's vector, when answering already computed it.
    vector: np.ndarray | None = field(default=None, repr=False)
    # Called once with the answer when its last piece has been read.
    on_complete: Callable[[Answer], None] | None = field(default=None, repr=False)
    # The student's turn as the model read it (its sources, then the
    # question): kept in the history as "prompted", a follow-up repeats it
    # word for word, so that its prompt begins with this one's and the model
    # reads only what is new (see Answerer.prompt).
    prompted: str = field(default="", repr=False)

    def __iter__(self) -> Iterator[str]:
        for piece in self.pieces:
            self.text += piece
            yield piece
        # The model may itself find that the sources do not answer.
        self.refused = self.refused or NOT_COVERED.lower() in self.text.lower()
        # Only a complete answer is kept: a stopped one never gets here.
        if self.on_complete is not None:
            complete, self.on_complete = self.on_complete, None
            try:
                complete(self)
            except Exception:  # noqa: BLE001 - the student still gets the answer; the log says why
                log.exception("keeping the question %r failed", self.question[:200])

    def close(self) -> None:
        """Stops generation early (a Stop button) and frees the model's slot."""
        close = getattr(self.pieces, "close", None)
        if close:
            close()

    def waiting(self) -> Iterator[int]:
        """Yields how many questions wait ahead of this answer for the model,
        each time that changes, until it starts; nothing if it never waits."""
        positions = getattr(self.pieces, "positions", None)
        return positions() if positions else iter(())

    @property
    def cut(self) -> bool:
        """Whether the model stopped at the answer's token limit
        (``MAX_ANSWER_TOKENS``, or the room the prompt left), not at its end."""
        return bool(getattr(self.pieces, "cut", False))

    def finish(self) -> Answer:
        for _ in self:
            pass
        return self

    def cited(self) -> list[tuple[int, Hit]]:
        """The sources the answer cites, by number; all of them if it cites none."""
        numbers = {int(n) for group in CITATION.findall(self.text) for n in group.split(",")}
        numbered = list(enumerate(self.sources, start=1))
        picked = [(n, hit) for n, hit in numbered if n in numbers]
        return picked or numbered

    def to_json(self) -> dict:
        return {
            "answer": self.text,
            "sources": [{"n": n, **hit.to_json()} for n, hit in self.cited()],
            "refused": self.refused,
            # Stopped at the length limit: the text ends mid-sentence.
            "cut": self.cut,
            "id": self.id,
            # The question the instructor answered, when this is their answer.
            "verified": {"question": self.verified.question} if self.verified else None,
        }


class Answerer:
    def __init__(
        self,
        retriever: Retriever,
        model: ChatModel | None,
        settings: Settings,
        questions: QuestionStore | None = None,
        teaching: Callable[[], Teaching] = Teaching,
    ):
        """``model`` None: sources-only mode, the passages without an answer
        (verified answers are still given whole). ``questions`` gives verified
        answers and keeps each completed answer's question; ``teaching()`` is
        the course's answer style now."""
        self.retriever = retriever
        self.model = model
        self.settings = settings
        self.questions = questions
        self.teaching = teaching

    def ask(
        self, question: str, history: Sequence[dict] = (), course: str = "this course", *, client: str | None = None
    ) -> Answer:
        """Answers ``question`` from the course; ``history`` holds earlier turns
        as ``{"role": "user"|"assistant", "content": str}``. ``client`` (a
        browser session or API conversation, with its address) gets its fair
        share of the model; a full line raises ``QueueFull``."""
        question = self.check(question)
        history = recent_turns(history, self.settings.history_turns)
        query = self.standalone(question, history, client=client)
        keep = self.keeping(query)
        if verified := self.verified(keep.get("vector")):
            sources = self.visible(verified.citations)
            return Answer(question, query, sources, False, iter([verified.answer]), verified=verified, **keep)
        found = self.retriever.retrieve(query, self.settings.top_k)
        hits = found.hits
        if not found.covered:
            return Answer(question, query, hits, True, iter([refusal(hits)]), **keep)
        if self.model is None:
            return Answer(question, query, hits, False, iter([SOURCES_ONLY]), **keep)
        style = self.style(hits)
        messages, used = self.prompt(question, hits, history, course, style)
        pieces = self.model.stream_chat(messages, self.settings.max_answer_tokens, client=client)
        return Answer(question, query, used, False, pieces, style=style, prompted=messages[-1]["content"], **keep)

    def keeping(self, query: str) -> dict:
        """What an answer needs for its question to be kept when it completes:
        the query's vector (computed once, for verified answers too) and the
        log to keep it in. Nothing without a question log."""
        if self.questions is None:
            return {}
        return {"vector": self.questions.vector(query), "on_complete": self.questions.record}

    def verified(self, vector) -> Verified | None:
        """The instructor's answer to a question close enough to this one."""
        found = self.questions.match(vector) if self.questions is not None and vector is not None else None
        return found[0] if found else None

    def visible(self, citations: Sequence[Hit]) -> list[Hit]:
        """A verified answer's citations that students may still open: not a
        document deleted since, nor one marked instructor-only."""
        shown = set(self.retriever.course.student_doc_ids())
        return [hit for hit in citations if hit.doc_id in shown]

    def style(self, hits: Sequence[Hit]) -> str:
        """The answer style for a question with these sources: guide when the
        course asks for it everywhere, or only for assignments and one of the
        sources is an assignment; else direct."""
        teaching = self.teaching()
        if teaching.style != GUIDE:
            return DIRECT
        if teaching.guide_scope == WHOLE_COURSE:
            return GUIDE
        assignments = set(self.retriever.course.assignment_doc_ids())
        return GUIDE if any(hit.doc_id in assignments for hit in hits) else DIRECT

    def check(self, question: str) -> str:
        question = " ".join(question.split())
        if not question:
            raise QuestionError("Type a question first.")
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise QuestionError(f"That question is {len(question)} characters long; the limit is {limit}. Please shorten it.")
        return question

    def standalone(self, question: str, history: Sequence[dict], *, client: str | None = None) -> str:
        """A follow-up rewritten with one short generation so that retrieval
        understands it; the earlier question is kept beside it."""
        earlier = [m["content"] for m in history if m["role"] == "user"]
        if not earlier:
            return question
        # A small model often answers instead of rewriting; on the dev set
        # the plain "earlier question + follow-up" then retrieves better.
        fallback = f"{earlier[-1]} {question}"
        if self.model is None:
            return fallback
        conversation = "\n".join(f"{'Student' if m['role'] == 'user' else 'Mentor'}: {m['content'][:500]}" for m in history)
        messages = [
            {"role": "system", "content": REWRITE},
            {"role": "user", "content": f"{conversation}\n\nLast question: {question}\n\nRewritten question:"},
        ]
        with closing(self.model.stream_chat(messages, 48, client=client)) as rewrite:
            lines = "".join(rewrite).strip().splitlines()
        rewritten = lines[0].strip(' "') if lines else ""
        if not rewritten.endswith("?"):
            return fallback
        return f"{rewritten} ({earlier[-1]})"

    def prompt(
        self, question: str, hits: list[Hit], history: Sequence[dict], course: str, style: str = DIRECT
    ) -> tuple[list[dict], list[Hit]]:
        """Messages that fit the model's context, and the sources they hold.

        The answer's tokens are reserved first; then the question, as many
        sources as fit in rank order, and as much recent history as is left.

        The layout puts what stays first, so that prompts share long
        beginnings the model reads once: the rules (the same for every
        student of the course), then the earlier turns as the model read
        them (a user turn's ``prompted`` text, with its sources), then the
        new sources and the question. A follow-up's prompt thus begins with
        the whole prompt and answer before it.
        """
        count = self.model.count_tokens
        rules = GUIDE_RULES if style == GUIDE else RULES
        system = {"role": "system", "content": rules.format(course=course, not_covered=NOT_COVERED)}
        budget = self.model.n_ctx - self.settings.max_answer_tokens - TEMPLATE_MARGIN
        budget -= count(system["content"]) + count(question) + TEMPLATE_MARGIN
        # A source the conversation already holds is named, not repeated:
        # the model reads it above, and reads only what is new.
        earlier = "\n".join(turn.get("prompted", "") for turn in history)
        block = lambda n, hit: source_block(n, hit, earlier)  # noqa: E731
        used: list[Hit] = []
        for hit in hits:
            cost = count(block(len(used) + 1, hit))
            if cost > budget:
                break
            used.append(hit)
            budget -= cost
        if not used:  # a tiny context still gets the best source, cut to fit
            used = [_cut(hits[0], max(budget, 0) * 3)]
        kept: list[dict] = []
        for turn in reversed(history):
            turn = {"role": turn["role"], "content": turn.get("prompted") or turn["content"]}
            budget -= count(turn["content"]) + TEMPLATE_MARGIN // 4
            if budget < 0:
                break
            kept.insert(0, turn)
        if kept and kept[0]["role"] != "user":  # templates want user first
            kept = kept[1:]
        sources = "\n\n".join(block(n, hit) for n, hit in enumerate(used, start=1))
        user = {"role": "user", "content": f"Sources:\n\n{sources}\n\nQuestion: {question}"}
        return [system, *kept, user], used


def source_block(n: int, hit: Hit, earlier: str = "") -> str:
    """Source ``n`` as the prompt gives it; named only (its text "above")
    when ``earlier`` turns of the conversation already hold its text."""
    section = f" ({hit.section})" if hit.section else ""
    if hit.text and hit.text in earlier:
        return f"[{n}] {hit.file}, {hit.place}{section}: the same text as above, in an earlier question"
    return f"[{n}] {hit.file}, {hit.place}{section}\n{hit.text}"


def refusal(hits: list[Hit]) -> str:
    """The cheap answer when nothing relevant was found: say so, and point
    to the closest sections, so the student knows where to look."""
    if not hits:
        return NO_DOCUMENTS
    closest = "; ".join(f"{h.file}, {h.place}" for h in hits[:3])
    return f"{NOT_COVERED} The closest sections I found are: {closest}."


def recent_turns(history: Sequence[dict], turns: int) -> list[dict]:
    """The last ``turns`` question-answer pairs, as plain role/content dicts
    (with a user turn's ``prompted`` text, when it has one)."""
    plain = [
        {"role": m["role"], "content": str(m["content"])} | ({"prompted": str(m["prompted"])} if m.get("prompted") else {})
        for m in history
        if m.get("role") in ("user", "assistant")
    ]
    return plain[-2 * turns :] if turns else []


def _cut(hit: Hit, chars: int) -> Hit:
    return Hit(**{**hit.to_json(), "text": hit.text[:chars]})
