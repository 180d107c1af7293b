"""A spy around the real tiny model: it records what the model is sent."""

from __future__ import annotations


class ModelSpy:
    """The real model, with the messages of every call and the stream each
    returned recorded (a spy, not a fake)."""

    def __init__(self, model):
        self.model, self.name, self.n_ctx, self.capacity = model, model.name, model.n_ctx, model.capacity
        self.calls: list[list[dict]] = []
        self.streams: list = []

    def count_tokens(self, text):
        return self.model.count_tokens(text)

    def status(self):
        return self.model.status()

    def stream_chat(self, messages, max_tokens, *, client=None):
        self.calls.append(messages)
        self.streams.append(self.model.stream_chat(messages, max_tokens, client=client))
        return self.streams[-1]
