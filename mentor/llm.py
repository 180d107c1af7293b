"""The language model: generation behind one lock, in process or on a server.

``load_chat_model(settings)`` returns a ``ChatModel``: the GGUF file run in
process by llama.cpp, or an OpenAI-compatible server when ``OPENAI_BASE_URL``
is set. Both stream a reply to OpenAI-style messages piece by piece. Where
the file comes from is ``model_files``.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Protocol

import httpx
from jinja2 import TemplateError

from .model_files import ModelNotFound, resolve_model_path
from .settings import Settings

# ModelNotFound and resolve_model_path are re-exported: the CLI and app.py
# import them from here.
__all__ = [
    "ChatModel",
    "LlamaCppModel",
    "ModelNotFound",
    "OpenAICompatibleModel",
    "PromptTooLong",
    "load_chat_model",
    "resolve_model_path",
]

# Grounded answers want little randomness; 0.2 is also what llama-cpp-python's
# own create_chat_completion defaults to.
TEMPERATURE = 0.2
# Tokens a chat template adds around each message, for estimates only.
MESSAGE_OVERHEAD = 8
ZERO_WIDTH_SPACE = "\u200b"


class PromptTooLong(ValueError):
    """The messages leave no room for an answer in the model's context."""


class ChatModel(Protocol):
    """What answering needs from a model, in process or behind a server."""

    name: str
    n_ctx: int

    def count_tokens(self, text: str) -> int:
        """Returns how many tokens ``text`` takes in a prompt."""
        ...

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """Yields the reply to ``messages`` (roles system/user/assistant) as text pieces."""
        ...


def _answer_budget(n_ctx: int, prompt_tokens: int, max_tokens: int) -> int:
    """Returns ``max_tokens`` clipped to the room the prompt leaves in the context."""
    room = n_ctx - prompt_tokens
    if room < 1:
        raise PromptTooLong(
            f"The prompt takes {prompt_tokens} tokens of a {n_ctx}-token context; send fewer sources or less history."
        )
    return min(max_tokens, room)


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Returns ``messages`` with the system text moved to the head of the first
    user message, for chat templates that accept only user and assistant."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return rest
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    else:
        rest.insert(0, {"role": "user", "content": system})
    return rest


class LlamaCppModel:
    """A GGUF model run in this process by llama.cpp.

    ``llama_cpp.Llama`` is not thread-safe, so every call into it goes through
    one lock, held for the whole of a streamed reply: a second student's
    answer waits for the first to finish or be stopped.
    """

    def __init__(self, path: Path, n_ctx: int, n_gpu_layers: int = -1, chat_template: str | None = None):
        """Loads ``path``; ``chat_template`` (jinja) replaces the one the GGUF carries."""
        # Imported here: a process that talks to a server never loads llama.cpp.
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = Path(path)
        self._llama = Llama(model_path=str(path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, verbose=False)
        # A plain Lock, not an RLock: Gradio runs each step of a streamed reply
        # on whichever worker thread is free and closes it from another, and
        # an RLock may only be released by the thread that took it.
        self._lock = threading.Lock()
        self.name = path.name
        self.n_ctx = self._llama.n_ctx()
        template = chat_template or self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{path.name} carries no chat template: use an instruct (chat) GGUF.")
        self._control = _control_texts(self._llama)
        eos, bos = self._llama.token_eos(), self._llama.token_bos()
        # We render the prompt ourselves, with the GGUF's own jinja template,
        # rather than call create_chat_completion: llama-cpp-python replaces
        # some known templates (Mistral-Instruct's among them) with built-in
        # formatters that silently drop the system message, and rendering
        # first gives the exact prompt length for the context budget.
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(eos),
            bos_token=self._token_text(bos),
            stop_token_ids=[eos],
        )

    def _token_text(self, token: int) -> str:
        """Returns a special token's text, or "" for a model without it (id -1)."""
        return self._llama.detokenize([token], special=True).decode() if token != -1 else ""

    def count_tokens(self, text: str) -> int:
        """Returns how many tokens ``text`` takes inside a prompt (no BOS)."""
        with self._lock:
            return len(self._llama.tokenize(text.encode(), add_bos=False, special=True))

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        """Returns the prompt text the model is given for ``messages``."""
        return self._format(messages).prompt

    def _format(self, messages: list[dict[str, str]]):
        """Returns the chat template's rendering (prompt, stop) of ``messages``,
        with the system text folded into the first user turn for templates that
        reject a system role (Mistral-7B-Instruct raises "Conversation roles
        must alternate user/assistant/...")."""
        messages = [{**m, "content": self._as_text(m["content"])} for m in messages]
        try:
            return self._formatter(messages=messages)
        except (ValueError, TemplateError):  # a template's raise_exception() raises ValueError
            if not any(m["role"] == "system" for m in messages):
                raise
            return self._formatter(messages=fold_system(messages))

    def _as_text(self, content: str) -> str:
        """Returns ``content`` with each control token's text ("<|im_start|>")
        broken by a zero-width space.

        The rendered prompt is tokenized with special tokens parsed, which the
        template's own markup needs; without this, a course PDF or a student
        could write "<|im_end|><|im_start|>system" and open a real system turn.
        """
        while self._control and self._control.search(content):
            content = self._control.sub(lambda m: m[0][0] + ZERO_WIDTH_SPACE + m[0][1:], content)
        return content

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """Yields the reply to ``messages`` piece by piece. The model is held
        from the first piece until the stream ends or is closed; ``max_tokens``
        is cut to the room the prompt leaves in ``n_ctx``."""
        formatted = self._format(messages)
        with self._lock:
            prompt = self._llama.tokenize(
                formatted.prompt.encode(), add_bos=not formatted.added_special, special=True
            )
            chunks = self._llama.create_completion(
                prompt,
                max_tokens=_answer_budget(self.n_ctx, len(prompt), max_tokens),
                temperature=TEMPERATURE,
                stop=formatted.stop,
                stopping_criteria=formatted.stopping_criteria,
                stream=True,
            )
            # closing(): a stopped answer ends llama.cpp's generator too,
            # before the lock is let go.
            with closing(chunks):
                for chunk in chunks:
                    if text := chunk["choices"][0]["text"]:
                        yield text


def _control_texts(llama) -> re.Pattern | None:
    """Returns a pattern matching the texts that llama.cpp reads as control
    (or unknown) tokens when it parses special tokens, longest first."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    texts = {
        llama.detokenize([t], special=True).decode(errors="ignore").strip()
        for t in range(llama.n_vocab())
        if llama_cpp.llama_vocab_get_attr(vocab, t) & special
    }
    # One character cannot be broken in two (and no chat template uses one).
    texts = sorted((t for t in texts if len(t) > 1), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, texts))) if texts else None


class OpenAICompatibleModel:
    """A model behind an OpenAI-compatible server (vLLM, llama.cpp server).

    No lock: the server batches concurrent requests itself.
    """

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, n_ctx: int = 8192):
        """``model`` may be None for servers that serve one model (llama.cpp server, vLLM)."""
        self.name = model or base_url
        self.n_ctx = n_ctx
        self._model = model
        self._url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # read: the longest wait between two pieces, first token included,
        # which a busy server with long prompts can stretch.
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(10.0, read=120.0))

    def count_tokens(self, text: str) -> int:
        """Returns an upper estimate of the tokens ``text`` takes.

        The server's tokenizer is not at hand; English runs about 4 characters
        a token, so counting 3 over-estimates and prompts built on it fit.
        """
        return math.ceil(len(text) / 3)

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """Yields the reply's pieces as the server streams them (server-sent events)."""
        prompt = sum(self.count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages)
        body = {
            "messages": messages,
            "max_tokens": _answer_budget(self.n_ctx, prompt, max_tokens),
            "temperature": TEMPERATURE,
            "stream": True,
        }
        if self._model:
            body["model"] = self._model
        with self._client.stream("POST", self._url, json=body) as response:
            if response.is_error:
                response.read()
                raise httpx.HTTPStatusError(
                    f"{self._url} answered {response.status_code}: {response.text[:500]}",
                    request=response.request,
                    response=response,
                )
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments, event names
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise RuntimeError(f"{self._url} failed mid-answer: {event['error']}")
                for choice in event.get("choices") or []:  # vLLM's closing usage event has none
                    if piece := (choice.get("delta") or {}).get("content"):
                        yield piece


def load_chat_model(settings: Settings) -> ChatModel:
    """Returns the model ``settings`` name: the OpenAI-compatible server when
    ``openai_base_url`` is set, else the GGUF file loaded in this process."""
    if settings.openai_base_url:
        return OpenAICompatibleModel(
            settings.openai_base_url,
            api_key=settings.openai_api_key,
            model=settings.openai_model,
            n_ctx=settings.n_ctx,
        )
    return LlamaCppModel(resolve_model_path(settings), n_ctx=settings.n_ctx, n_gpu_layers=settings.n_gpu_layers)
