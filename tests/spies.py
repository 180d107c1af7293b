"""A spy around the real tiny model: it records what the model is sent."""

from __future__ import annotations


class ModelSpy:
    """The real model, with the messages of every call and every reply
    recorded (a spy, not a fake)."""

    def __init__(self, model):
        self.model, self.name, self.n_ctx = model, model.name, model.n_ctx
        self.calls: list[list[dict]] = []
        self.replies: list[str] = []

    def count_tokens(self, text):
        return self.model.count_tokens(text)

    def stream_chat(self, messages, max_tokens, **options):
        self.calls.append(messages)
        self.replies.append("")
        number = len(self.replies) - 1
        for piece in self.model.stream_chat(messages, max_tokens, **options):
            self.replies[number] += piece
            yield piece
