"""One llama.cpp context, many students: continuous batching in process.

The ``Scheduler`` owns a llama.cpp context of ``n_parallel`` sequences
(slots), each with room for a whole conversation (``n_ctx`` tokens), and
one background thread that runs the step loop. Any thread may ``submit`` a
prompt and read the reply from the ``Stream`` it gets back.

Each step is one ``llama_decode`` of one batch: the next token of every
answer being written, then up to ``prefill_chunk`` tokens of the prompts
still being read, oldest first, so that a long prompt is read in chunks
between the others' tokens instead of freezing their streams. Each answer
then picks its next token with its own sampler chain. A request that
arrives joins the batch at the next step; a stream that is closed (Stop, a
closed tab, a timeout) frees its slot at the next step
(``llama_memory_seq_rm``), and the next request in line takes it.

llama-cpp-python's ``Llama`` decodes one sequence at a time, so this
drives llama.cpp's own batch API, as llama.cpp's server and its
``examples/parallel`` do.
"""

from __future__ import annotations

import atexit
import codecs
import ctypes
import logging
import threading
import time
from dataclasses import dataclass, field

import llama_cpp

from mentor.generate.admission import END, Admission, Request, Stream

log = logging.getLogger(__name__)

# An answer whose last REPEAT_SPAN tokens already occurred, in the same
# order, earlier in it is looping: the tiny model repeats one paragraph
# until it runs out of tokens. 32 tokens is about two lines of prose; a
# real answer does not repeat that much verbatim (bench/repetition.py).
REPEAT_SPAN = 32
# llama.cpp lays out each sequence's cache in blocks of 256 tokens.
CONTEXT_STEP = 256
# The most tokens llama.cpp computes in one pass; a larger batch is split.
MAX_UBATCH = 512


@dataclass(frozen=True)
class Sampling:
    """How each next token is picked: greedy at temperature 0; otherwise
    llama-cpp-python's own chain for a completion (top-k 40, top-p 0.95,
    min-p 0.05, then the temperature), so answers read as they did before."""

    temperature: float
    seed: int = llama_cpp.LLAMA_DEFAULT_SEED  # llama.cpp's "a random seed"

    def chain(self):
        """Returns a new llama.cpp sampler chain (free it with ``llama_sampler_free``)."""
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if self.temperature <= 0:
            steps = [llama_cpp.llama_sampler_init_greedy()]
        else:
            steps = [
                llama_cpp.llama_sampler_init_top_k(40),
                llama_cpp.llama_sampler_init_top_p(0.95, 1),
                llama_cpp.llama_sampler_init_min_p(0.05, 1),
                llama_cpp.llama_sampler_init_temp(self.temperature),
                llama_cpp.llama_sampler_init_dist(self.seed),
            ]
        for step in steps:
            llama_cpp.llama_sampler_chain_add(chain, step)
        return chain


@dataclass(eq=False)
class Prompt(Request):
    """A request to the scheduler: the prompt's tokens and how to answer."""

    tokens: list[int] = field(default_factory=list, repr=False)
    max_tokens: int = 0
    sampling: Sampling = Sampling(0.0)
    stop: tuple[str, ...] = ()
    # The steps at which it got its slot and gave it back (tests, benchmarks).
    started_step: int | None = None
    ended_step: int | None = None


class Scheduler:
    """Decodes up to ``n_parallel`` prompts at once on one llama.cpp context.

    ``model`` is a loaded ``llama_cpp._internals.LlamaModel``. ``n_ctx`` is
    each slot's room (rounded up to llama.cpp's 256); requests beyond the
    free slots wait in line, at most ``queue_limit`` of them (see
    ``Admission``). If llama.cpp cannot allocate ``n_parallel`` slots (a
    GPU's memory), it tries half as many, down to one.
    """

    def __init__(
        self,
        model,
        n_ctx: int,
        n_parallel: int,
        n_threads: int,
        queue_limit: int,
        prefill_chunk: int = 64,
    ):
        self._model = model  # held: the weights must outlive the context
        self._vocab = model.vocab
        self.prefill_chunk = prefill_chunk
        n_ctx = -(-n_ctx // CONTEXT_STEP) * CONTEXT_STEP
        self._ctx, n_parallel = _new_context(model, n_ctx, n_parallel, n_threads, n_parallel + prefill_chunk)
        self.n_parallel = n_parallel
        self.n_ctx = llama_cpp.llama_n_ctx_seq(self._ctx)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(n_parallel + prefill_chunk, 0, 1)
        self._slots = [_Slot(seq) for seq in range(n_parallel)]
        self._admission = Admission(n_parallel, queue_limit)
        self._piece = ctypes.create_string_buffer(64)
        # Guards the line, the slots' requests and the counters; never held
        # while llama.cpp decodes, so submitting and cancelling do not wait.
        self._lock = threading.Condition(threading.Lock())
        self._closed = False
        self.steps = 0
        self.timings = {"step_s": 0.0, "decode_s": 0.0, "sample_s": 0.0}
        self._thread = threading.Thread(target=self._run, name="llama-scheduler", daemon=True)
        self._thread.start()
        # A context freed while its thread decodes crashes the interpreter
        # on exit: stop the loop first.
        atexit.register(self.close)

    @property
    def capacity(self) -> int:
        """Requests held at once, running or waiting; one more is refused."""
        return self._admission.capacity

    # --- any thread ---------------------------------------------------------

    def submit(
        self,
        tokens: list[int],
        max_tokens: int,
        sampling: Sampling,
        *,
        stop: tuple[str, ...] = (),
        client: str | None = None,
    ) -> Stream:
        """Queues a prompt; returns the stream of its reply's text. Raises
        ``QueueFull`` when the line is full, ``ValueError`` when the prompt
        and ``max_tokens`` do not fit a slot."""
        if not tokens or max_tokens < 1 or len(tokens) + max_tokens > self.n_ctx:
            raise ValueError(f"{len(tokens)} prompt tokens and {max_tokens} to answer do not fit {self.n_ctx}")
        request = Prompt(client=client, tokens=list(tokens), max_tokens=max_tokens, sampling=sampling, stop=stop)
        with self._lock:
            if self._closed:
                raise RuntimeError("the model has been closed")
            self._admission.enqueue(request)
            self._lock.notify()
        return Stream(request, self)

    def cancel(self, request: Request) -> None:
        """Takes ``request`` out of line, or frees its slot at the next step."""
        with self._lock:
            request.cancelled = True
            if not request.started:
                self._admission.release(request)
            self._lock.notify()

    def ahead(self, request: Request) -> int | None:
        with self._lock:
            return self._admission.ahead(request)

    def status(self) -> dict:
        """Slots, requests running and waiting, and steps decoded so far."""
        with self._lock:
            return {
                "slots": self.n_parallel,
                "running": len(self._admission.running),
                "waiting": len(self._admission.waiting),
                "steps": self.steps,
            }

    def close(self) -> None:
        """Stops the loop, ends every reply, and frees the context."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify()
        atexit.unregister(self.close)
        if self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            for request in [*self._admission.running, *self._admission.waiting]:
                request.out.put(RuntimeError("the model was closed before the answer ended"))
            for slot in self._slots:
                slot.stop()
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)

    # --- the loop thread ----------------------------------------------------

    def _run(self) -> None:
        while self._wait_for_work():
            try:
                self._step()
            except Exception as e:  # noqa: BLE001 - every reply gets the error; the loop goes on
                log.exception("a decoding step failed")
                for slot in self._slots:
                    if slot.request:
                        slot.request.out.put(e)
                        self._release(self._free(slot))

    def _wait_for_work(self) -> bool:
        """Frees the slots of cancelled requests and gives free slots to
        waiting ones; waits while no slot has work. False once closed."""
        with self._lock:
            while True:
                for slot in self._slots:
                    if slot.request and slot.request.cancelled:
                        self._admission.release(self._free(slot))
                for request in self._admission.admit():
                    request.started_step = self.steps
                    next(s for s in self._slots if s.request is None).start(request)
                if self._closed:
                    return False
                if any(slot.request for slot in self._slots):
                    return True
                self._lock.wait()

    def _step(self) -> None:
        """One step: a pass for the next token of every answer being written,
        then a pass per prompt chunk, oldest prompt first, up to
        ``prefill_chunk`` prompt tokens in all.

        A pass holds the answers' tokens or one prompt's chunk, never both:
        llama.cpp splits a mixed batch differently, which changes a
        sequence's arithmetic and, at temperature 0, its answer. Apart, each
        sequence computes exactly what it computes alone.
        """
        began = time.perf_counter()
        self._spent = {"decode_s": 0.0, "sample_s": 0.0}
        writing = [slot for slot in self._slots if slot.request and slot.next_token is not None]
        if writing:
            self._batch.n_tokens = 0
            for slot in writing:
                slot.logits_at = self._add(slot, slot.next_token, True)
                slot.next_token = None
            self._decode(writing)
        budget = self.prefill_chunk
        for slot in sorted((s for s in self._slots if s.request and s.reading), key=lambda s: s.request.started_step):
            tokens = slot.request.tokens
            # Whole chunks only, so that a prompt is cut where it is cut when
            # read alone.
            end = min(len(tokens), slot.pos + self.prefill_chunk)
            if end - slot.pos > budget:
                break
            budget -= end - slot.pos
            self._batch.n_tokens = 0
            while slot.pos < end:
                slot.logits_at = self._add(slot, tokens[slot.pos], slot.pos == len(tokens) - 1)
            self._decode([slot] if end == len(tokens) else [])
        with self._lock:
            self.steps += 1
            self.timings["step_s"] += time.perf_counter() - began
            for name, seconds in self._spent.items():
                self.timings[name] += seconds

    def _decode(self, readers: list[_Slot]) -> None:
        """Runs the batch through the model; each reader then picks its next token."""
        began = time.perf_counter()
        status = llama_cpp.llama_decode(self._ctx, self._batch)
        decoded = time.perf_counter()
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        for slot in readers:
            self._take(slot, llama_cpp.llama_sampler_sample(slot.sampler, self._ctx, slot.logits_at))
        self._spent["decode_s"] += decoded - began
        self._spent["sample_s"] += time.perf_counter() - decoded

    def _add(self, slot: _Slot, token: int, logits: bool) -> int:
        """Appends ``token`` at the slot's next position; returns its index in the batch."""
        batch, i = self._batch, self._batch.n_tokens
        batch.token[i] = token
        batch.pos[i] = slot.pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = slot.seq
        batch.logits[i] = logits
        batch.n_tokens = i + 1
        slot.pos += 1
        return i

    def _take(self, slot: _Slot, token: int) -> None:
        """Streams the text of a sampled token, or ends the answer: at the
        end-of-turn token, a stop string, ``max_tokens``, or a repeat."""
        request = slot.request
        if llama_cpp.llama_vocab_is_eog(self._vocab, token) or slot.repeats.seen(token):
            self._finish(slot)
            return
        slot.generated += 1
        text, stopped = slot.reply.add(self._token_bytes(token))
        if text:
            request.out.put(text)
        if stopped or slot.generated >= request.max_tokens:
            request.cut = not stopped
            self._finish(slot, stopped)
        else:
            slot.next_token = token

    def _token_bytes(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        if n < 0:  # a piece longer than the buffer
            self._piece = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[:n]

    def _finish(self, slot: _Slot, stopped: bool = False) -> None:
        if not stopped and (rest := slot.reply.rest()):
            slot.request.out.put(rest)
        request = self._free(slot)
        self._release(request)
        request.out.put(END)  # last: a reader that sees it sees the slot free

    def _free(self, slot: _Slot) -> Prompt:
        """Forgets the slot's sequence and empties the slot; returns its request."""
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
        request = slot.stop()
        request.ended_step = self.steps
        return request

    def _release(self, request: Prompt) -> None:
        with self._lock:
            self._admission.release(request)


class _Slot:
    """One sequence of the context and the request it is answering."""

    def __init__(self, seq: int):
        self.seq = seq
        self.request: Prompt | None = None
        self.sampler = None

    def start(self, request: Prompt) -> None:
        self.request = request
        self.pos = 0  # tokens of this sequence in the cache
        self.generated = 0
        self.next_token: int | None = None
        self.logits_at = -1
        self.sampler = request.sampling.chain()
        self.reply = _ReplyText(request.stop)
        self.repeats = RepeatGuard(REPEAT_SPAN)

    @property
    def reading(self) -> bool:
        """Whether the prompt is still being read (prefilled)."""
        return self.pos < len(self.request.tokens)

    def stop(self) -> Prompt | None:
        """Empties the slot; returns the request it held."""
        request, self.request = self.request, None
        if self.sampler is not None:
            llama_cpp.llama_sampler_free(self.sampler)
            self.sampler = None
        return request


class _ReplyText:
    """An answer's text as its tokens come: whole UTF-8 characters only,
    cut before the first stop string, holding back what may begin one."""

    def __init__(self, stop: tuple[str, ...]):
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._stop = [s for s in stop if s]
        self._held = ""

    def add(self, data: bytes) -> tuple[str, bool]:
        """Returns the text that may be shown now, and whether a stop string ended the answer."""
        text = self._held + self._utf8.decode(data)
        cut = min((i for s in self._stop if (i := text.find(s)) >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            return text[:cut], True
        keep = max((k for s in self._stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep], False

    def rest(self) -> str:
        """The text held back, once the answer has ended otherwise."""
        return self._held + self._utf8.decode(b"", final=True)


class RepeatGuard:
    """Tells when an answer has started to loop: its last ``span`` tokens
    already occurred, in the same order, earlier in the answer."""

    def __init__(self, span: int):
        self.span = span
        self._tokens: list[int] = []
        self._windows: set[tuple[int, ...]] = set()

    def seen(self, token: int) -> bool:
        """Adds ``token``; True when the window it ends was seen before."""
        self._tokens.append(token)
        if len(self._tokens) < self.span:
            return False
        window = tuple(self._tokens[-self.span :])
        if window in self._windows:
            return True
        self._windows.add(window)
        return False


def _new_context(model, n_ctx: int, n_parallel: int, n_threads: int, n_batch: int):
    """Returns a llama.cpp context of ``n_parallel`` sequences of ``n_ctx``
    tokens, and the number of sequences it has: halved until it fits."""
    while True:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * n_parallel
        params.n_seq_max = n_parallel
        # One cache per sequence, not one shared: a sequence attends to its
        # own tokens only, and computes exactly what it computes alone.
        params.kv_unified = False
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, MAX_UBATCH)
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model.model, params)
        if ctx is not None:
            return ctx, n_parallel
        if n_parallel == 1:
            raise RuntimeError(
                f"llama.cpp could not allocate a context of {n_ctx} tokens: lower N_CTX, "
                "or use a smaller model or quantisation."
            )
        log.warning(
            "llama.cpp could not allocate %d slots of %d tokens; trying %d (lower N_CTX for more)",
            n_parallel,
            n_ctx,
            n_parallel // 2,
        )
        n_parallel //= 2
