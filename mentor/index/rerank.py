"""The reranker: a cross-encoder reads the question beside each candidate
passage and scores the pair again.

It runs an ONNX export of the model (``mentor.index.onnx``: a folder or a
Hub repo, on the GPU when ONNX Runtime has CUDA). A cross-encoder is a BERT
with one output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from mentor.index.onnx import GPU, TOKENIZER, feed, first_graph, locate, open_session, providers
from mentor.settings import Settings

log = logging.getLogger(__name__)

# Where an ONNX export keeps its graph, in the order looked for: the CPU
# prefers the INT8 export the Hub's cross-encoders carry (``quint8_avx2``
# runs on any x86-64 CPU with AVX2, about 3× faster than float), a GPU the
# float one; then a bare folder's ``model.onnx``.
INT8_FILE = "onnx/model_quint8_avx2.onnx"
FLOAT_FILE = "onnx/model.onnx"


def onnx_files(on_gpu: bool) -> tuple[str, ...]:
    return (FLOAT_FILE, "model.onnx") if on_gpu else (INT8_FILE, FLOAT_FILE, "model.onnx")


class RerankerError(RuntimeError):
    """The reranker cannot be loaded; the message says what to set."""


class Reranker:
    """Scores (question, passage) pairs: higher is more relevant. Safe to
    share between threads (an ONNX Runtime session runs calls concurrently).

    ``max_tokens`` caps each pair (question and passage together, in the
    model's word pieces): the cost of a pair grows with its length, and on a
    CPU that cost decides how many pages can be reranked in time.
    """

    def __init__(self, model: str, *, max_tokens: int = 256, cache_dir: Path | None = None):
        from tokenizers import Tokenizer

        wanted = onnx_files(on_gpu=GPU in providers())
        folder = locate(model, wanted, "RERANK_MODEL", RerankerError, cache_dir)
        graph = first_graph(folder, wanted)
        if graph is None or not (folder / TOKENIZER).is_file():
            raise RerankerError(
                f"RERANK_MODEL={model}: {folder} needs an ONNX export ({' or '.join(wanted)}) and its {TOKENIZER}."
            )
        self.name = model
        self.max_tokens = max_tokens
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        # Exports often pad every pair to 512: pad a batch to its longest pair only.
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id("[PAD]") or 0)
        # The longer of the two is cut first: a long question keeps room for the passage.
        self._tokenizer.enable_truncation(max_length=max_tokens, strategy="longest_first")
        self._session = open_session(graph)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.on_gpu = GPU in self._session.get_providers()
        log.info("reranker %s on the %s", model, "GPU" if self.on_gpu else "CPU")

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        """One relevance score (the model's logit) per passage, in order."""
        import numpy as np

        if not passages:
            return []
        encodings = self._tokenizer.encode_batch([(question, p) for p in passages])
        logits = self._session.run(None, feed(encodings, self._inputs))[0]
        return [round(float(x), 4) for x in np.asarray(logits).reshape(len(passages), -1)[:, 0]]


def load_reranker(settings: Settings) -> Reranker | None:
    """The reranker the settings name, or None: when RERANK_MODEL is off,
    or when it cannot be loaded. A course without its reranker still
    answers, from the first stage's ranking, so a failure to load is logged
    (with what to set) rather than stopping the app."""
    if not settings.rerank_model:
        return None
    try:
        return Reranker(settings.rerank_model, max_tokens=settings.rerank_tokens)
    except RerankerError as e:
        log.error("searching without a reranker: %s", e)
        return None
