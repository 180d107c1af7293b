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
closed tab, a timeout) frees its slot at the next step, and the next
request in line takes it.

A prompt is never read twice when its cells are still in the cache
(``reuse``, on by default):

- **A slot keeps what it read.** Each slot remembers the tokens whose cells
  its sequence holds (its last prompt and the answer written after it).
  A new request goes to the free slot whose tokens share the longest
  beginning with its prompt, when that is more than the shared beginning
  below (a follow-up comes back to the slot that answered the question
  before it); otherwise to the free slot used least recently, whose cells
  are the oldest (eviction). The slot drops its cells past the common part
  (``llama_memory_seq_rm``) and reads only the rest.
- **The shared beginning is read once.** A request says how many of its
  first tokens every student's prompt shares (``shared``: the rules and the
  course's fixed text). One extra sequence of the context keeps those
  cells; a slot that starts a request copies them
  (``llama_memory_seq_cp``) instead of reading them. When the shared
  beginning changes (a course setting: its name, the answer style), the
  prompts that carry the new one read it, and the second in a row leaves
  it there for the next (one other prompt, a follow-up's rewriting, does
  not evict it): the key is the tokens themselves, so a stale beginning is
  never used.

The cache only saves reading: a prompt whose cells were evicted is read
whole, and at temperature 0 the answer is the same word for word
(tests/test_scheduler.py).

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
# A free slot continues a request when it holds this many more of its first
# tokens than the shared beginning gives every slot; below that, a slot
# that happens to share a few tokens ("Sources: [1]") is no conversation,
# and the least recently used slot is taken instead.
CONTINUE_MIN = 32


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
    # How many first tokens every student's prompt shares (the rules).
    shared: int = 0
    # Prompt tokens found in the cache, not read (tests, benchmarks).
    reused: int = 0
    # The steps at which it got its slot and gave it back (tests, benchmarks).
    started_step: int | None = None
    ended_step: int | None = None


class Scheduler:
    """Decodes up to ``n_parallel`` prompts at once on one llama.cpp context.

    ``model`` is a loaded ``llama_cpp._internals.LlamaModel``. ``n_ctx`` is
    each slot's room (rounded up to llama.cpp's 256); requests beyond the
    free slots wait in line, at most ``queue_limit`` of them (see
    ``Admission``). If llama.cpp cannot allocate ``n_parallel`` slots (a
    GPU's memory), it tries half as many, down to one. ``n_threads``
    decode the answers, ``n_threads_batch`` read the prompts. ``reuse``
    False reads every prompt whole (benchmarks compare the two).
    """

    def __init__(
        self,
        model,
        n_ctx: int,
        n_parallel: int,
        n_threads: int,
        queue_limit: int,
        prefill_chunk: int = 64,
        *,
        n_threads_batch: int | None = None,
        reuse: bool = True,
        flash_attn: int = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
    ):
        self._model = model  # held: the weights must outlive the context
        self._vocab = model.vocab
        self.prefill_chunk = prefill_chunk
        self.reuse = reuse
        n_ctx = -(-n_ctx // CONTEXT_STEP) * CONTEXT_STEP
        threads = (n_threads, n_threads_batch or n_threads)
        self._ctx, n_parallel = _new_context(
            model, n_ctx, n_parallel, int(reuse), threads, n_parallel + prefill_chunk, flash_attn
        )
        self.n_parallel = n_parallel
        self.n_ctx = llama_cpp.llama_n_ctx_seq(self._ctx)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(n_parallel + prefill_chunk, 0, 1)
        self._slots = [_Slot(seq) for seq in range(n_parallel)]
        # The sequence after the slots' keeps the shared beginning, and these
        # are its tokens.
        self._prefix_seq = n_parallel
        self._prefix: list[int] = []
        # Prompts in a row that brought another shared beginning: the kept
        # one is replaced at the second, so that a rare other one (the
        # rewriting of a follow-up) does not evict the answers' rules.
        self._prefix_misses = 0
        self._admission = Admission(n_parallel, queue_limit)
        self._piece = ctypes.create_string_buffer(64)
        # Guards the line, the slots' requests and the counters; never held
        # while llama.cpp decodes, so submitting and cancelling do not wait.
        self._lock = threading.Condition(threading.Lock())
        self._closed = False
        self._uses = 0
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

    @property
    def shared_tokens(self) -> int:
        """How many tokens the shared beginning's sequence holds now."""
        return len(self._prefix)

    # --- any thread ---------------------------------------------------------

    def submit(
        self,
        tokens: list[int],
        max_tokens: int,
        sampling: Sampling,
        *,
        stop: tuple[str, ...] = (),
        client: str | None = None,
        shared: int = 0,
    ) -> Stream:
        """Queues a prompt; returns the stream of its reply's text. ``shared``:
        how many of its first tokens every student's prompt begins with (the
        rules), read once for all. Raises ``QueueFull`` when the line is full,
        ``ValueError`` when the prompt and ``max_tokens`` do not fit a slot."""
        if not tokens or max_tokens < 1 or len(tokens) + max_tokens > self.n_ctx:
            raise ValueError(f"{len(tokens)} prompt tokens and {max_tokens} to answer do not fit {self.n_ctx}")
        request = Prompt(
            client=client,
            tokens=list(tokens),
            max_tokens=max_tokens,
            sampling=sampling,
            stop=stop,
            shared=min(max(shared, 0), len(tokens) - 1),
        )
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
                # What the cache holds is no longer known: forget it all.
                for seq in range(self.n_parallel + int(self.reuse)):
                    llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)
                for slot in self._slots:
                    slot.cached = []
                self._prefix, self._prefix_misses = [], 0

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
                    self._seat(request)
                if self._closed:
                    return False
                if any(slot.request for slot in self._slots):
                    return True
                self._lock.wait()

    def _seat(self, request: Prompt) -> None:
        """Gives ``request`` a free slot and drops that slot's cells past the
        part of its prompt they hold; the rest is read in the coming steps.

        The slot is the one holding the longest beginning of the prompt, if
        that is ``CONTINUE_MIN`` tokens more than the shared beginning gives;
        else the least recently used. A slot holding less than the shared
        beginning gets it copied from its sequence.
        """
        tokens = request.tokens
        free = [slot for slot in self._slots if slot.request is None]
        shared = len(self._prefix) if self._holds_prefix(tokens) else 0
        if request.shared:
            self._prefix_misses = 0 if shared == request.shared else self._prefix_misses + 1
        slot = max(free, key=lambda s: (common_length(s.cached, tokens), -s.used_at))
        keep = common_length(slot.cached, tokens)
        if keep < shared + CONTINUE_MIN:
            slot = min(free, key=lambda s: s.used_at)
            keep = common_length(slot.cached, tokens)
        # The last prompt token is always read: its logits give the first token.
        keep = min(keep, len(tokens) - 1) if self.reuse else 0
        if shared > keep:
            llama_cpp.llama_memory_seq_cp(self._memory, self._prefix_seq, slot.seq, -1, -1)
            slot.cached, keep = list(self._prefix), shared
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, keep, -1)
        del slot.cached[keep:]
        request.reused = keep
        self._uses += 1
        slot.start(request, keep, self._uses)

    def _holds_prefix(self, tokens: list[int]) -> bool:
        """Whether the shared beginning's sequence holds a beginning of ``tokens``
        (and not all of them: the last is always read)."""
        n = len(self._prefix)
        return self.reuse and 0 < n < len(tokens) and tokens[:n] == self._prefix

    def _keep_prefix(self, slot: _Slot) -> None:
        """Copies the shared beginning of the prompt ``slot`` just read into
        the sequence that keeps it, when that holds another (or none)."""
        request = slot.request
        shared = request.tokens[: request.shared]
        if not self.reuse or not shared or shared == self._prefix or (self._prefix and self._prefix_misses < 2):
            return
        # A copy between sequences copies the whole cache of one: then drop
        # the cells past the shared beginning.
        llama_cpp.llama_memory_seq_cp(self._memory, slot.seq, self._prefix_seq, -1, -1)
        llama_cpp.llama_memory_seq_rm(self._memory, self._prefix_seq, len(shared), -1)
        self._prefix = shared

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
            if end == len(tokens):
                self._keep_prefix(slot)
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
        slot.cached.append(token)
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
        """Empties the slot; returns its request. Its cells stay, for a
        follow-up (the next request it gets drops what it does not share)."""
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
        # The tokens whose cells the sequence holds, in order of position.
        self.cached: list[int] = []
        self.used_at = 0  # when it last started a request (a count)

    def start(self, request: Prompt, pos: int, used_at: int) -> None:
        """Starts ``request``, whose first ``pos`` tokens the cache holds."""
        self.request = request
        self.used_at = used_at
        self.pos = pos  # tokens of this sequence in the cache
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


def common_length(a: list[int], b: list[int]) -> int:
    """How many first tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the common case, at C speed
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if a[:mid] == b[:mid] else (lo, mid)
    return lo


def _new_context(model, n_ctx: int, n_parallel: int, extra: int, threads: tuple[int, int], n_batch: int, flash_attn: int):
    """Returns a llama.cpp context of ``n_parallel`` sequences of ``n_ctx``
    tokens plus ``extra`` ones, and the number of slots it has: halved until
    it fits. ``threads``: those that decode answers, those that read prompts."""
    while True:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * (n_parallel + extra)
        params.n_seq_max = n_parallel + extra
        # One cache per sequence, not one shared: a sequence attends to its
        # own tokens only, and computes exactly what it computes alone.
        params.kv_unified = False
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, MAX_UBATCH)
        params.n_threads, params.n_threads_batch = threads
        params.flash_attn_type = flash_attn
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
