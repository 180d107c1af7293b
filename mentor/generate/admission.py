"""A request's way through a busy model: it waits in line, runs in a slot,
and streams its pieces back to whoever reads them.

``Admission`` decides who runs next: a fixed number of slots, a first-come
first-served queue with a limit, and a fair share of the slots per client.
``Stream`` is what a caller holds: an iterator of text pieces that also
says how many requests wait ahead of it, and whose ``close()`` gives the
slot back at once, from any thread.

The in-process scheduler (a slot is a llama.cpp sequence) and the
OpenAI-compatible backend (a slot is a request in flight to the server)
both use them.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

# Put in a request's queue after its last piece.
END = object()


class QueueFull(RuntimeError):
    """Every slot is busy and the waiting line is full; the message says to ask again."""


class ClientBusy(QueueFull):
    """This client already has as many requests in progress as there are slots."""


@dataclass(eq=False)
class Request:
    """One request: who asked, whether it was cancelled, and its pieces on the way out.

    ``client`` says who asked: the client's address, then, after a space,
    which of its sessions (``"81.2.69.160 session:ab12"``). The fair share
    is keyed on the address alone, which the client cannot choose (a
    script that makes up a new session or conversation for every question
    is still one client); the session only breaks ties within it. None
    makes the request a client of its own.
    """

    client: str | None = None
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue, repr=False)
    cancelled: bool = False
    started: bool = False
    # The answer ended at its token limit, not where the model ended it.
    cut: bool = False

    @property
    def key(self) -> object:
        """Who the fair share counts: the client's address."""
        return self.client.split(" ", 1)[0] if self.client is not None else id(self)

    @property
    def session(self) -> object:
        """Which of the client's sessions asked (the whole ``client``)."""
        return self.client if self.client is not None else id(self)


class Admission:
    """Who runs next. Not thread-safe: its owner calls it under one lock.

    A client holds at most its fair share of the slots, ``ceil(slots /
    clients)`` with ``clients`` the distinct clients running or waiting; a
    request over its client's share waits while another client's request
    waits, but never leaves a slot idle that nobody else wants.
    """

    def __init__(self, slots: int, queue_limit: int):
        if slots < 1 or queue_limit < 0:
            raise ValueError(f"need at least one slot and a queue limit of 0 or more, not {slots} and {queue_limit}")
        self.slots = slots
        self.queue_limit = queue_limit
        self.waiting: list[Request] = []
        self.running: list[Request] = []

    @property
    def capacity(self) -> int:
        """Requests held at once, running or waiting; one more is refused."""
        return self.slots + self.queue_limit

    def enqueue(self, request: Request) -> None:
        """Puts ``request`` at the end of the line; raises ``QueueFull``
        when the line is full, or when its client already holds as many
        requests as there are slots."""
        free = self.slots - len(self.running)
        if len(self.waiting) - free >= self.queue_limit:
            raise QueueFull(
                f"The mentor is answering {len(self.running)} questions and {len(self.waiting)} are waiting, "
                "the most it takes at once. Please ask again in a minute."
            )
        own = sum(1 for r in (*self.running, *self.waiting) if r.key == request.key)
        if own >= self.slots:
            raise ClientBusy(
                f"You (or others on your network) already have {own} questions in progress; "
                "wait for their answers first."
            )
        self.waiting.append(request)

    def admit(self) -> list[Request]:
        """Starts waiting requests while slots are free, in their order of
        arrival, each client within its share, and within a client the
        session that runs fewest first; returns those started."""
        started = []
        while self.waiting and len(self.running) < self.slots:
            share = math.ceil(self.slots / len({r.key for r in (*self.running, *self.waiting)}))
            held: dict = {}
            for r in self.running:
                held[r.key] = held.get(r.key, 0) + 1
                held[r.key, r.session] = held.get((r.key, r.session), 0) + 1
            within = [r for r in self.waiting if held.get(r.key, 0) < share] or self.waiting
            pick = min(within, key=lambda r: held.get((r.key, r.session), 0))
            self.waiting.remove(pick)
            self.running.append(pick)
            pick.started = True
            started.append(pick)
        return started

    def release(self, request: Request) -> None:
        """Takes ``request`` out, running or waiting (finished or cancelled)."""
        if request in self.running:
            self.running.remove(request)
        elif request in self.waiting:
            self.waiting.remove(request)

    def ahead(self, request: Request) -> int | None:
        """How many requests wait ahead of ``request``; None once it runs (or left)."""
        try:
            return self.waiting.index(request)
        except ValueError:
            return None


class Owner(Protocol):
    """What a ``Stream`` needs from whatever runs its request."""

    def cancel(self, request: Request) -> None: ...

    def ahead(self, request: Request) -> int | None: ...


class Stream:
    """The reply to one request, piece by piece.

    Iterate it for text; ``close()`` (from any thread, even while another
    thread waits for the next piece) cancels the request and frees its slot
    at the next step. ``positions()`` tells a waiting caller its place.
    """

    def __init__(self, request: Request, owner: Owner):
        self._request = request
        self._owner = owner
        self._ended = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._ended:
            raise StopIteration
        item = self._request.out.get()
        if item is END:
            self._ended = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        return item

    def close(self) -> None:
        """Stops the reply: a waiting request leaves the line, a running one
        gives its slot back. Harmless when the reply is already complete."""
        if not self._ended:
            self._ended = True
            self._owner.cancel(self._request)
            self._request.out.put(END)  # wakes a reader blocked in __next__

    @property
    def request(self) -> Request:
        return self._request

    @property
    def cut(self) -> bool:
        """Whether the reply stopped at its token limit (mid-sentence, most likely)."""
        return self._request.cut

    def positions(self, every: float = 1.0, poll: float = 0.1, grace: float = 0.5) -> Iterator[int]:
        """Yields how many requests wait ahead of this one, each time that
        changes and at least every ``every`` seconds, until it starts (or
        ends); nothing if it never waits. The repeats give a reader the
        chance to notice that its caller left (Gradio closes a generator
        only when it yields).

        Nothing in the first ``grace`` seconds: on an idle model a request
        waits only for the loop's next step, and "your question is next"
        would flash for a question that never queued."""
        began = time.monotonic()
        while not self._ended and self._owner.ahead(self._request) is not None and time.monotonic() - began < grace:
            time.sleep(min(poll, grace))
        shown, at = None, 0.0
        while not self._ended and (ahead := self._owner.ahead(self._request)) is not None:
            if ahead != shown or time.monotonic() - at >= every:
                shown, at = ahead, time.monotonic()
                yield ahead
            time.sleep(poll)

