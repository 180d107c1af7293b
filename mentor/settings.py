"""Every knob of AI Mentor, read from environment variables in one place.

Defaults work on a laptop and on a Runpod pod alike; each says why it is what
it is. Build one with ``Settings.from_env()``; tests build one directly.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_REPO = "TheBloke/Mistral-7B-Instruct-v0.2-GGUF"
DEFAULT_MODEL_FILE = "mistral-7b-instruct-v0.2.Q5_K_M.gguf"
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
    # into home/models. openai_base_url replaces the in-process model with an
    # OpenAI-compatible server (vLLM, llama.cpp server) for bigger courses.
    model_path: Path | None = None
    model_repo: str = DEFAULT_MODEL_REPO
    model_file: str = DEFAULT_MODEL_FILE
    # -1 puts every layer on the GPU when there is one; llama.cpp ignores it
    # on a CPU-only build.
    n_gpu_layers: int = -1
    # Mistral-7B-Instruct is trained to 32k, but 8k keeps the KV cache small
    # on a 24 GB card and is room enough for top_k sources plus history.
    n_ctx: int = 8192
    max_answer_tokens: int = 512
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_model: str | None = None

    # The embedder: a hub name or a local folder.
    embed_model: str = DEFAULT_EMBED_MODEL
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

    # The reranker (mentor/rerank.py): a cross-encoder's ONNX export, as a
    # Hub repo id (cross-encoder/ms-marco-MiniLM-L12-v2) or a local folder;
    # "" (RERANK_MODEL=off, the default): no reranking. On the held-out
    # Octave questions that cross-encoder ranks worse than the first stage
    # alone, and fused with it gains nothing measurable (bench/tuning.py).
    rerank_model: str = ""
    # Pages it reads per question, and the word pieces of each (question,
    # best chunk of the page) pair: the best on the tuning half within the
    # CPU budget (~660 ms of CPU p95 on these cores; a GPU takes a few ms).
    rerank_pages: int = 10
    rerank_tokens: int = 256

    # Retrieval and answering.
    top_k: int = 5
    # Cosine of the chunk nearest the question under which the mentor
    # refuses without calling the model. Chosen on the tuning half of the
    # Octave dev set: 0.41 again; on the held-out half it refuses 14 of 18
    # off-course questions and 1 of 46 answerable ones (BENCHMARKS.md). The
    # reranker's score did not separate them better (bench/tuning.py).
    min_score: float = 0.41
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
    admin_password: str | None = None
    port: int = 7860
    runpod_pod_id: str | None = None

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
        env = os.environ if env is None else env
        d = cls()

        def get(name, convert=str, default=None):
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return convert(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a valid {convert.__name__}") from None

        return cls(
            home=get("MENTOR_HOME", Path, d.home),
            model_path=get("MODEL_PATH", Path),
            model_repo=get("MODEL_REPO", str, d.model_repo),
            model_file=get("MODEL_FILE", str, d.model_file),
            n_gpu_layers=get("N_GPU_LAYERS", int, d.n_gpu_layers),
            n_ctx=get("N_CTX", int, d.n_ctx),
            max_answer_tokens=get("MAX_ANSWER_TOKENS", int, d.max_answer_tokens),
            openai_base_url=get("OPENAI_BASE_URL"),
            openai_api_key=get("OPENAI_API_KEY"),
            openai_model=get("OPENAI_MODEL"),
            embed_model=get("EMBED_MODEL", str, d.embed_model),
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
            min_rerank_score=get("MIN_RERANK_SCORE", float, d.min_rerank_score),
            history_turns=get("HISTORY_TURNS", int, d.history_turns),
            max_question_chars=get("MAX_QUESTION_CHARS", int, d.max_question_chars),
            max_upload_mb=get("MAX_UPLOAD_MB", int, d.max_upload_mb),
            page_seconds=get("PAGE_SECONDS", float, d.page_seconds),
            admin_password=get("MENTOR_ADMIN_PASSWORD"),
            port=get("PORT", int, d.port),
            runpod_pod_id=get("RUNPOD_POD_ID"),
        )


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
