"""A spy around the real tiny model: it records what the model is sent."""

from __future__ import annotations


class ModelSpy:
    """The real model, with the messages of every call and the stream each
    returned recorded, with its text (a spy, not a fake)."""

    def __init__(self, model):
        self.model, self.name, self.n_ctx, self.capacity = model, model.name, model.n_ctx, model.capacity
        self.calls: list[list[dict]] = []
        self.streams: list[Recorded] = []

    @property
    def replies(self) -> list[str]:
        """What each call's stream gave so far."""
        return [stream.text for stream in self.streams]

    def count_tokens(self, text):
        return self.model.count_tokens(text)

    def status(self):
        return self.model.status()

    def stream_chat(self, messages, max_tokens, *, client=None):
        self.calls.append(messages)
        self.streams.append(Recorded(self.model.stream_chat(messages, max_tokens, client=client)))
        return self.streams[-1]


class Recorded:
    """A model's stream, unchanged (``close``, ``request``, ``positions``
    pass through), with the text it gave kept in ``text``."""

    def __init__(self, stream):
        self.stream, self.text = stream, ""

    def __iter__(self):
        return self

    def __next__(self) -> str:
        piece = next(self.stream)
        self.text += piece
        return piece

    def __getattr__(self, name):
        return getattr(self.stream, name)
