"""The language model: prompts, token counts and answers, in process or on a server.

``load_chat_model(settings)`` returns a ``ChatModel``: the GGUF file run in
process by llama.cpp, or an OpenAI-compatible server when ``OPENAI_BASE_URL``
is set. Both stream a reply to OpenAI-style messages piece by piece. Where
the file comes from is ``model_files``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
from jinja2 import TemplateError

from mentor.generate.admission import END, Admission, QueueFull, Request, Stream
from mentor.generate.model_files import ModelNotFound, choose_model, resolve_model_path
from mentor.settings import Settings

log = logging.getLogger(__name__)

# ModelNotFound, resolve_model_path and QueueFull are re-exported: the CLI,
# app.py and the web routes import them from here.
__all__ = [
    "ChatModel",
    "LlamaCppModel",
    "ModelNotFound",
    "OpenAICompatibleModel",
    "PromptTooLong",
    "QueueFull",
    "load_chat_model",
    "resolve_model_path",
]

# Grounded answers want little randomness; 0.2 is also what llama-cpp-python's
# own create_chat_completion defaults to.
TEMPERATURE = 0.2
# Tokens a chat template adds around each message, for estimates only.
MESSAGE_OVERHEAD = 8
# Requests in flight to a model server when N_PARALLEL is not set: vLLM and
# llama.cpp's server batch them; more would only queue there instead of here,
# where the line is fair and shows each student's place.
SERVER_IN_FLIGHT = 16
ZERO_WIDTH_SPACE = "\u200b"


class PromptTooLong(ValueError):
    """The messages leave no room for an answer in the model's context."""


class ChatModel(Protocol):
    """What answering needs from a model, in process or behind a server."""

    name: str
    n_ctx: int
    # Requests taken at once, answering or waiting in line.
    capacity: int

    def count_tokens(self, text: str) -> int:
        """Returns how many tokens ``text`` takes in a prompt."""
        ...

    def status(self) -> dict:
        """How busy it is: ``slots``, and the requests ``running`` and ``waiting``."""
        ...

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int, *, client: str | None = None) -> Stream:
        """Queues the reply to ``messages`` (roles system/user/assistant) and
        returns it as a stream of text pieces; ``client`` (a browser session
        or API conversation, with its address) gets a fair share of the
        model. Raises ``QueueFull`` when the model's line is full."""
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
    """A GGUF model run in this process by llama.cpp, many answers at once.

    The weights and the vocabulary are loaded once; a ``Scheduler`` owns
    the one llama.cpp context and decodes up to ``n_parallel`` answers in
    one batch, each slot with ``n_ctx`` tokens of room. Rendering prompts and
    counting tokens use the vocabulary alone, so they never wait behind a
    generation.
    """

    def __init__(
        self,
        path: Path,
        n_ctx: int,
        n_gpu_layers: int = -1,
        chat_template: str | None = None,
        *,
        n_parallel: int | None = None,
        n_threads: int | None = None,
        queue_limit: int = Settings.queue_limit,
        n_threads_batch: int | None = None,
        reuse: bool = Settings.prompt_reuse,
    ):
        """Loads ``path``; ``chat_template`` (jinja) replaces the GGUF's. ``n_parallel``
        and the threads default to what suits the device (``device_defaults``,
        ``default_threads``); ``reuse`` False reads every prompt whole."""
        # Imported here: a process that talks to a server never loads llama.cpp.
        import llama_cpp
        from llama_cpp._internals import LlamaModel
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from mentor.generate.scheduler import Scheduler

        path = Path(path)
        # What Llama(verbose=False) does: llama.cpp logs errors only.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        # The weights and the vocabulary (named _llama since it replaced a
        # llama_cpp.Llama: the tests tokenize with it as they did).
        self._llama = LlamaModel(path_model=str(path), params=params, verbose=False)
        gpu = n_gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload()
        slots, chunk = device_defaults(gpu)
        threads = (n_threads, n_threads_batch)
        decode_threads, read_threads = (given or default for given, default in zip(threads, default_threads(gpu)))
        self.scheduler = Scheduler(
            self._llama, n_ctx=n_ctx, n_parallel=n_parallel or slots, n_threads=decode_threads,
            n_threads_batch=read_threads, queue_limit=queue_limit, prefill_chunk=chunk, reuse=reuse,
            flash_attn=FLASH_ATTN_GPU if gpu else FLASH_ATTN_CPU,
        )  # fmt: skip
        self.name = path.name
        self.n_ctx = self.scheduler.n_ctx
        self.capacity = self.scheduler.capacity
        template = chat_template or self._llama.metadata().get("tokenizer.chat_template")
        if not template:
            self.close()
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
        """Returns how many tokens ``text`` takes inside a prompt (no BOS).

        No lock: tokenizing reads the vocabulary only, which nothing writes
        after loading, so a count never waits for the decoding thread.
        """
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

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int, *, client: str | None = None) -> Stream:
        """Queues the reply to ``messages`` and returns its stream of pieces;
        ``max_tokens`` is cut to the room the prompt leaves in ``n_ctx``.
        Raises ``QueueFull`` when every slot is busy and the line is full."""
        from mentor.generate.scheduler import Sampling

        prompt = self._tokens(messages)
        formatted = self._format(messages)
        return self.scheduler.submit(
            prompt,
            _answer_budget(self.n_ctx, len(prompt), max_tokens),
            # Read at each call: a test or benchmark may make it greedy.
            Sampling(TEMPERATURE),
            stop=tuple(formatted.stop or ()),
            client=client,
            shared=self.shared_length(messages, prompt),
        )

    def _tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt's tokens for ``messages``, as the scheduler reads them."""
        formatted = self._format(messages)
        return self._llama.tokenize(formatted.prompt.encode(), add_bos=not formatted.added_special, special=True)

    def shared_length(self, messages: list[dict[str, str]], prompt: list[int]) -> int:
        """How many first tokens of ``prompt`` (the tokens of ``messages``)
        every prompt with the same system message begins with: the rules,
        up to where the first student's words go. 0 without a system message.

        Found, whatever the chat template, as the tokens the prompt shares
        with the same system message before two different user messages.
        """
        from mentor.generate.scheduler import common_length

        system = [m for m in messages[:1] if m["role"] == "system"]
        if not system:
            return 0
        one, two = (self._tokens([*system, {"role": "user", "content": word}]) for word in ("A", "Z"))
        return min(common_length(prompt, one), common_length(prompt, two), common_length(one, two))

    def status(self) -> dict:
        return self.scheduler.status()

    def close(self) -> None:
        """Stops the scheduler and frees the context and the weights."""
        self.scheduler.close()
        self._llama.close()

    def __enter__(self) -> LlamaCppModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def device_defaults(gpu: bool) -> tuple[int, int]:
    """The slots (``N_PARALLEL``) and prompt tokens read per step that suit
    the device.

    A CPU is compute-bound: 4 streams already give 1.7x one stream's
    tokens/s on 2 cores (8 give 1.87x, the ceiling), while each stream still
    writes faster than a student reads; more slots would mostly cost memory
    (a 7B model's 8k-token slot is 1 GB). A 64-token prompt chunk keeps each
    step near a third of a second there. A GPU has room for many more
    sequences per pass: 16 slots seat half a class at once and, at N_CTX
    8192, fit a 24 GB card beside Mistral-7B Q5 (1 GB each); it reads
    prompts 512 tokens at a time, the size it computes in one pass.
    """
    return (16, 512) if gpu else (4, 64)


# Flash attention. On the CPU llama.cpp's "auto" turns it on, and after a
# 1,250-token prompt it decodes 20-45% slower than without (SmolLM2 on 2
# cores, interleaved: 16.1 vs 19.4, 7.6 vs 14.6, 12.6 vs 16.1 tokens/s):
# off, as llama-cpp-python's Llama has it. On a GPU llama.cpp's "auto".
FLASH_ATTN_CPU = 0  # LLAMA_FLASH_ATTN_TYPE_DISABLED
FLASH_ATTN_GPU = -1  # LLAMA_FLASH_ATTN_TYPE_AUTO


def default_threads(gpu: bool) -> tuple[int, int]:
    """The threads that decode answers (``N_THREADS``) and that read
    prompts (``N_THREADS_BATCH``) when they are not set.

    Decoding: every core but one, which the app's own Python threads need
    (the scheduler's loop, the streams, the web server, the embedder); at
    least one. A ggml thread that loses its core makes the others spin at
    the next barrier: on 2 shared cores (SmolLM2-135M, interleaved runs)
    decoding after a 1,250-token prompt gave 19.4, 14.6, 16.1 tokens/s with
    1 thread and 3.6, 0.4, 0.7 with 2.

    Reading: every core, as llama.cpp itself does. A prompt is read while
    the Python threads wait on it, and on a quiet machine one thread read
    it at half the speed: on 2 quiet cores, 8 questions of ~1,250 tokens,
    time to first token p50 7.27 s with 1 reading thread against bare
    ``Llama``'s 4.27 s with 2 (bench/generate.py, 2026-12-07).

    A GPU does the work itself: the threads only feed it.
    """
    cores = available_cores()
    return max(1, cores - 1), cores


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a
    container's CPU set narrows): llama-cpp-python's default of half the
    machine's cores gave 34 tokens/s on 2 cores where 2 threads give 56."""
    return len(os.sched_getaffinity(0))


def _control_texts(llama) -> re.Pattern | None:
    """Returns a pattern matching the texts that llama.cpp reads as control
    (or unknown) tokens when it parses special tokens, longest first."""
    import llama_cpp

    vocab = llama.vocab
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

    The server batches concurrent requests itself; this only caps how many
    are in flight (``in_flight``), with the same line, limit and fair share
    as the in-process scheduler (``Admission``). Each request in flight is
    relayed from the server's event stream by a thread of its own.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        n_ctx: int = 8192,
        *,
        in_flight: int = SERVER_IN_FLIGHT,
        queue_limit: int = Settings.queue_limit,
    ):
        """``model`` may be None for servers that serve one model (llama.cpp server, vLLM)."""
        self.name = model or base_url
        self.n_ctx = n_ctx
        self._model = model
        self._url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # read: the longest wait between two pieces, first token included,
        # which a busy server with long prompts can stretch.
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(10.0, read=120.0))
        self._admission = Admission(in_flight, queue_limit)
        self._lock = threading.Lock()
        self.capacity = self._admission.capacity

    def count_tokens(self, text: str) -> int:
        """Returns an upper estimate of the tokens ``text`` takes.

        The server's tokenizer is not at hand; English runs about 4 characters
        a token, so counting 3 over-estimates and prompts built on it fit.
        """
        return math.ceil(len(text) / 3)

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int, *, client: str | None = None) -> Stream:
        """Queues the request and returns the stream of the server's reply
        (server-sent events). Raises ``QueueFull`` when the line is full."""
        prompt = sum(self.count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages)
        body = {
            "messages": messages,
            "max_tokens": _answer_budget(self.n_ctx, prompt, max_tokens),
            "temperature": TEMPERATURE,
            "stream": True,
        }
        if self._model:
            body["model"] = self._model
        request = _ServerRequest(client=client, body=body)
        with self._lock:
            self._admission.enqueue(request)
        self._start_waiting()
        return Stream(request, self)

    def cancel(self, request: Request) -> None:
        """Frees the request's place at once; its relay stops at the next event."""
        with self._lock:
            request.cancelled = True
            self._admission.release(request)
        self._start_waiting()

    def ahead(self, request: Request) -> int | None:
        with self._lock:
            return self._admission.ahead(request)

    def status(self) -> dict:
        with self._lock:
            line = self._admission
            return {"slots": line.slots, "running": len(line.running), "waiting": len(line.waiting)}

    def _start_waiting(self) -> None:
        with self._lock:
            started = self._admission.admit()
        for request in started:
            threading.Thread(target=self._relay, args=(request,), name="openai-relay", daemon=True).start()

    def _relay(self, request: _ServerRequest) -> None:
        """Puts the server's pieces into the request's queue, then END (or the error)."""
        try:
            for piece in self._pieces(request):
                if request.cancelled:
                    break
                request.out.put(piece)
            request.out.put(END)
        except Exception as e:  # noqa: BLE001 - handed to the reader
            request.out.put(e)
        finally:
            self.cancel(request)  # releases the slot (a no-op if already released)

    def _pieces(self, request: _ServerRequest) -> Iterator[str]:
        with self._client.stream("POST", self._url, json=request.body) as response:
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
                    request.cut = request.cut or choice.get("finish_reason") == "length"
                    if piece := (choice.get("delta") or {}).get("content"):
                        yield piece


@dataclass(eq=False)
class _ServerRequest(Request):
    body: dict = field(default_factory=dict, repr=False)


def load_chat_model(settings: Settings) -> ChatModel:
    """Returns the model ``settings`` name: the OpenAI-compatible server when
    ``openai_base_url`` is set, else the GGUF file loaded in this process."""
    if settings.openai_base_url:
        return OpenAICompatibleModel(
            settings.openai_base_url,
            api_key=settings.openai_api_key,
            model=settings.openai_model,
            n_ctx=settings.n_ctx,
            in_flight=settings.n_parallel or SERVER_IN_FLIGHT,
            queue_limit=settings.queue_limit,
        )
    choice = choose_model(settings)
    path = resolve_model_path(settings)
    log.info("model: %s (%s)", path, "MODEL_PATH" if settings.model_path else choice.why)
    try:
        return LlamaCppModel(
            path,
            n_ctx=settings.n_ctx,
            n_gpu_layers=settings.n_gpu_layers,
            n_parallel=settings.n_parallel,
            n_threads=settings.n_threads,
            n_threads_batch=settings.n_threads_batch,
            queue_limit=settings.queue_limit,
            reuse=settings.prompt_reuse,
        )
    except ValueError as e:  # llama.cpp's "Failed to load model", or no chat template
        fix = (
            "point MODEL_PATH at a whole instruct GGUF file"
            if settings.model_path
            else "delete it and run `python -m mentor fetch-model` to download it again, or set MODEL_PATH"
        )
        raise ModelNotFound(f"The model file {path} cannot be used ({e}): {fix}.") from e
