"""Every knob of AI Mentor, read from environment variables in one place.

Defaults work on a laptop and on a Runpod pod alike; each says why it is what
it is. Build one with ``Settings.from_env()``; tests build one directly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Settings:
    """The configuration of one mentor process.

    >>> s = Settings(home=Path("/tmp/course"))
    >>> s.index_location
    '/tmp/course/index'
    """

    home: Path = Path("mentor_data")

    # The model: model_path wins, else model_repo/model_file fetched once
    # into home/models; unset, the model that suits the machine
    # (model_files.choose_model: Mistral-7B on a GPU, a 1.5B model on a CPU).
    # openai_base_url replaces the in-process model with an OpenAI-compatible
    # server (vLLM, llama.cpp server) for bigger courses.
    model_path: Path | None = None
    model_repo: str | None = None
    model_file: str | None = None
    # -1 puts every layer on the GPU when there is one; llama.cpp ignores it
    # on a CPU-only build.
    n_gpu_layers: int = -1
    # Each slot's context (see n_parallel). Mistral-7B-Instruct is trained to
    # 32k, but 8k is room enough for top_k sources plus history, and 16 slots
    # of it (16 GB of cache) just fit a 24 GB card beside the model.
    n_ctx: int = 8192
    max_answer_tokens: int = 512
    # Answers decoded at once in one batch (slots), each with n_ctx tokens of
    # room, so the context holds n_ctx x n_parallel tokens. None: what suits
    # the device, 16 on a GPU and 4 on a CPU (llm.device_defaults says why).
    # With a model server: the requests in flight to it (16 when None).
    n_parallel: int | None = None
    # Threads that decode answers. None: every core this process may use (its
    # CPU affinity) but one, at least one: on 2 shared cores one decodes as
    # fast as bare llama.cpp, and two spin whenever another process takes a
    # core (llm.default_threads has the figures).
    n_threads: int | None = None
    # Threads that read prompts (llama.cpp's n_threads_batch). None: every
    # core, as llama.cpp does (llm.default_threads says what was measured).
    n_threads_batch: int | None = None
    # Keep what each slot read, so that a follow-up reads only what is new,
    # and read the rules every prompt begins with once (scheduler.py).
    # PROMPT_REUSE=0 reads every prompt whole, as before (benchmarks).
    prompt_reuse: bool = True
    # Questions that wait for a slot, beyond those answered; one more gets
    # "busy, ask again" at once. 32: a class of 30 asking at once all wait
    # in line, even with one slot.
    queue_limit: int = 32
    # The longest a POST /api/chat waits for its whole answer before it is
    # stopped and answered 503. Runpod's proxy cuts a response at 100 s; at
    # 90 s the caller gets our message instead of the proxy's.
    chat_timeout: float = 90.0
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_model: str | None = None

    # The embedder: a hub name or a local folder.
    embed_model: str = DEFAULT_EMBED_MODEL
    # A second embedder whose ranking is fused with the first's and the
    # keywords': an ONNX export of a BERT embedder pooled at [CLS] (BGE), as
    # a Hub repo (Qdrant/bge-small-en-v1.5-onnx-Q) or a folder; "" (off,
    # the default) for none. Chosen leave-one-corpus-out (bench/tuning.py,
    # "another embedder"), BGE-small asked without its query instruction and
    # fused with MiniLM won on all 5 corpora left out (mean MRR@5 0.701 ->
    # 0.742, hit@1 0.568 -> 0.648, hit@5 0.880 -> 0.886). It is off because
    # it costs: embedding is most of an upload's time, and BGE's pass makes
    # an upload of text pages 1.6 to 1.7x slower on 2 cores (BENCHMARKS.md,
    # "A second embedder in the product"), on the pod's CPU too (the
    # image's PyTorch and ONNX Runtime are CPU builds). Changing it rebuilds
    # the index beside the live one.
    second_embed_model: str = ""
    # 64 chunks per batch keeps a CPU busy without holding the embedder lock
    # long enough to stall a student's query (about 2 s on 2 cores).
    embed_batch_size: int = 64

    # The index: Qdrant Edge shards under home/index (one pod), or a Qdrant
    # server (many). Index names are "<collection>-<course id>-<time>", so
    # courses sharing a server never touch each other's.
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    collection: str = "mentor"

    # Chunking, in the embedder's own tokens. MiniLM reads at most 256 word
    # pieces; anything past that is silently dropped from the embedding.
    # 150 found the right Octave page more often than 100 or 200
    # (bench/chunking.py, BENCHMARKS.md).
    chunk_tokens: int = 150
    chunk_overlap: int = 30
    # Index each chunk with the PDF bookmarks it sits under ("Strings ›
    # Converting Numbers"); the sections fill the rest of the window.
    section_context: bool = True

    # The reranker (mentor/index/rerank.py): a cross-encoder's ONNX export, as a
    # Hub repo id (cross-encoder/ms-marco-MiniLM-L12-v2) or a local folder;
    # "" (RERANK_MODEL=off, the default, on every device): no reranking.
    # Chosen leave-one-corpus-out (bench/tuning.py), that cross-encoder over
    # the first 5, 10, 20 or 30 pages, fused with the first stage, ranked
    # worse than the first stage alone on two of the five corpora left out
    # (MRR@5 -0.05 on the Octave manual, -0.03 on the mixed folder) and
    # better on three by less, a mean of -0.011, so it is off on a GPU too,
    # where it would cost a few ms. On a CPU it is also over budget: 5 pages
    # take 278 ms of CPU p95 on 2 cores, 10 pages 548 ms, beside the 300 ms
    # a whole search may take.
    rerank_model: str = ""
    # Pages it reads per question, and the word pieces of each (question,
    # best chunk of the page) pair, when it is turned on.
    rerank_pages: int = 10
    rerank_tokens: int = 256

    # Retrieval and answering.
    top_k: int = 5
    # The refusal, without calling the model: a question is off the course
    # when the cosine of the chunk nearest it, less the share of its meaning
    # carried by words that occur nowhere in the students' documents (at
    # most retrieve.UNKNOWN_MEANING_CAP), is under MIN_SCORE. The cosine
    # alone cannot tell "git submodule" from "git branch" in a lecture on
    # git: both land near its pages; but without "submodule" the first
    # question means little. A word it does not rest on ("supposed", a
    # typo) takes little off. Chosen on the dev-set corpora leaving each
    # out in turn (bench/tuning.py, "refusal"), it refused 64 of 80
    # off-course questions on the corpora left out and 9 of 261 answerable
    # ones; the rule of before (0.27, and 0.44 for a question naming any
    # unknown term) 64 and 12. The goal of 7 in 8 on every corpus is met on
    # the textbook and the mixed folder: the manual, the scans and the
    # slides keep near-topic questions whose every word is in the course.
    min_score: float = 0.28
    # Cosine a question needs to a question the instructor answered to get
    # that verified answer (MiniLM; bench/questions.py on
    # bench/devset/paraphrases.jsonl). The closest different question to a
    # verified one scored 0.757 ("When is the final exam?" to "When is the
    # midterm exam?"); from 0.76 none matched, and 0.78 keeps a margin. It
    # matched 30% and 60% of the other wordings (tuning and held-out
    # halves) and no different question: a missed wording gets the mentor's
    # own answer, a wrong match the instructor's answer to another question.
    verified_min_similarity: float = 0.78
    # Reranker score (a logit) under which the mentor refuses too; None: the
    # reranker's score is not used for refusing.
    min_rerank_score: float | None = None
    # Turns of history kept for follow-up questions.
    history_turns: int = 4
    max_question_chars: int = 2000

    # Uploads and access.
    max_upload_mb: int = 200
    # A page that takes longer than this to read is skipped: pypdf can
    # loop for minutes on a malformed page, while a sane page takes < 1 s.
    page_seconds: float = 30.0
    # Scanned PDF pages (no text layer) are read by OCR: Tesseract, a few
    # seconds a page on 2 cores (BENCHMARKS.md). ocr_languages are
    # Tesseract's codes joined by "+", each a package tesseract-ocr-<code>.
    ocr: bool = True
    ocr_languages: str = "eng"
    admin_password: str | None = None
    # The key in the class link (MENTOR_CLASS_KEY): None makes one on the
    # first start, kept in MENTOR_HOME/class_key; "off" opens the course.
    class_key: str | None = None
    port: int = 7860
    runpod_pod_id: str | None = None
    # Served behind a reverse proxy (BEHIND_PROXY=1, or on Runpod): a
    # client's address is then the one the proxy saw (X-Forwarded-For).
    proxied: bool = False

    @property
    def index_dir(self) -> Path:
        """Where the embedded index keeps its Edge shards."""
        return self.home / "index"

    @property
    def legacy_qdrant_path(self) -> Path:
        """The local-mode Qdrant folder of versions before Qdrant Edge,
        copied into an Edge index at the first start (``Library``)."""
        return self.home / "qdrant"

    @property
    def index_location(self) -> str:
        """The Qdrant server's URL, or the embedded index's folder."""
        return self.qdrant_url or str(self.index_dir)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def files_dir(self) -> Path:
        """Where original uploads are kept, one file per content hash."""
        return self.home / "files"

    @property
    def behind_proxy(self) -> bool:
        """Whether requests come through a proxy that names the client in
        X-Forwarded-For: Runpod's always does. Never guessed from the
        request itself, where anyone can write that header."""
        return self.proxied or bool(self.runpod_pod_id)

    @property
    def share_url(self) -> str:
        """The link an instructor gives to students."""
        if self.runpod_pod_id:
            return f"https://{self.runpod_pod_id}-{self.port}.proxy.runpod.net"
        return f"http://localhost:{self.port}"

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Reads settings from environment variables, falling back to defaults."""
        get, d = _reader(os.environ if env is None else env), cls()
        return cls(
            home=get("MENTOR_HOME", Path, d.home),
            model_path=get("MODEL_PATH", Path),
            model_repo=get("MODEL_REPO"),
            model_file=get("MODEL_FILE"),
            n_gpu_layers=get("N_GPU_LAYERS", int, d.n_gpu_layers),
            n_ctx=get("N_CTX", int, d.n_ctx),
            max_answer_tokens=get("MAX_ANSWER_TOKENS", int, d.max_answer_tokens),
            n_parallel=get("N_PARALLEL", count),
            n_threads=get("N_THREADS", count),
            n_threads_batch=get("N_THREADS_BATCH", count),
            prompt_reuse=get("PROMPT_REUSE", flag, d.prompt_reuse),
            queue_limit=get("QUEUE_LIMIT", int, d.queue_limit),
            chat_timeout=get("CHAT_TIMEOUT", float, d.chat_timeout),
            openai_base_url=get("OPENAI_BASE_URL"),
            openai_api_key=get("OPENAI_API_KEY"),
            openai_model=get("OPENAI_MODEL"),
            embed_model=get("EMBED_MODEL", str, d.embed_model),
            second_embed_model=get("SECOND_EMBED_MODEL", model_or_off, d.second_embed_model),
            embed_batch_size=get("EMBED_BATCH_SIZE", int, d.embed_batch_size),
            qdrant_url=get("QDRANT_URL"),
            qdrant_api_key=get("QDRANT_API_KEY"),
            collection=get("QDRANT_COLLECTION", str, d.collection),
            chunk_tokens=get("CHUNK_TOKENS", int, d.chunk_tokens),
            chunk_overlap=get("CHUNK_OVERLAP", int, d.chunk_overlap),
            section_context=get("SECTION_CONTEXT", flag, d.section_context),
            rerank_model=get("RERANK_MODEL", model_or_off, d.rerank_model),
            rerank_pages=get("RERANK_PAGES", int, d.rerank_pages),
            rerank_tokens=get("RERANK_TOKENS", int, d.rerank_tokens),
            top_k=get("TOP_K", int, d.top_k),
            min_score=get("MIN_SCORE", float, d.min_score),
            verified_min_similarity=get("VERIFIED_MIN_SIMILARITY", float, d.verified_min_similarity),
            min_rerank_score=get("MIN_RERANK_SCORE", float, d.min_rerank_score),
            history_turns=get("HISTORY_TURNS", int, d.history_turns),
            max_question_chars=get("MAX_QUESTION_CHARS", int, d.max_question_chars),
            max_upload_mb=get("MAX_UPLOAD_MB", int, d.max_upload_mb),
            page_seconds=get("PAGE_SECONDS", float, d.page_seconds),
            ocr=get("OCR", flag, d.ocr),
            ocr_languages=get("OCR_LANGUAGES", str, d.ocr_languages),
            admin_password=get("MENTOR_ADMIN_PASSWORD"),
            class_key=get("MENTOR_CLASS_KEY"),
            port=get("PORT", int, d.port),
            runpod_pod_id=get("RUNPOD_POD_ID"),
            proxied=get("BEHIND_PROXY", flag, d.proxied),
        )


def _reader(env) -> Callable:
    """``get(name, convert, default)``: the variable ``name`` of ``env``
    converted, or ``default`` when it is unset or blank."""

    def get(name: str, convert=str, default=None):
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            return convert(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a valid {convert.__name__}") from None

    return get


def count(raw: str) -> int:
    """A count of at least 1."""
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def flag(raw: str) -> bool:
    """An on/off environment variable: 1/0, true/false, yes/no, on/off."""
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def model_or_off(raw: str) -> str:
    """A model name, or "" for off/none/0/false/no."""
    return "" if raw.lower() in ("off", "none", "0", "false", "no") else raw


class SettingsError(ValueError):
    """An environment variable holds a value the mentor cannot use."""
