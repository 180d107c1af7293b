"""The reranker: a cross-encoder reads the question beside each candidate
passage and scores the pair again.

It runs an ONNX export of the model with ONNX Runtime, on the GPU when
ONNX Runtime has CUDA (``onnxruntime-gpu``), else on the CPU. The model is a
local folder (read as it is, never a download) or a Hub repo id whose
ONNX export is fetched once into the Hugging Face cache (``HF_HOME``, on
the pod's volume), as the embedder is.

Not sentence-transformers' ``CrossEncoder``: its ONNX backend needs
optimum-onnx, which does not import against transformers 5; and not
fastembed, which pins huggingface-hub below 2 (this project pins 2.4).
A cross-encoder is a BERT with one output, so ONNX Runtime and the model's
own ``tokenizer.json`` are all it takes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from mentor.settings import Settings

log = logging.getLogger(__name__)

# Where an ONNX export keeps its graph, in the order looked for: the CPU
# prefers the INT8 export the Hub's cross-encoders carry (``quint8_avx2``
# runs on any x86-64 CPU with AVX2, about 3× faster than float), a GPU the
# float one; then a bare folder's ``model.onnx``.
INT8_FILE = "onnx/model_quint8_avx2.onnx"
FLOAT_FILE = "onnx/model.onnx"
TOKENIZER_FILES = ["tokenizer.json", "config.json"]
GPU = "CUDAExecutionProvider"


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
        import onnxruntime as ort
        from tokenizers import Tokenizer

        providers = [p for p in (GPU, "CPUExecutionProvider") if p in ort.get_available_providers()]
        wanted = onnx_files(on_gpu=GPU in providers)
        folder = locate(model, cache_dir, wanted)
        graph = next((folder / name for name in wanted if (folder / name).is_file()), None)
        if graph is None or not (folder / "tokenizer.json").is_file():
            raise RerankerError(
                f"RERANK_MODEL={model}: {folder} needs an ONNX export ({' or '.join(wanted)}) "
                "and its tokenizer.json."
            )
        self.name = model
        self.max_tokens = max_tokens
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # Exports often pad every pair to 512: pad a batch to its longest pair only.
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id("[PAD]") or 0)
        # The longer of the two is cut first: a long question keeps room for the passage.
        self._tokenizer.enable_truncation(max_length=max_tokens, strategy="longest_first")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # no warnings about unused initializers
        # Its threads sleep between calls instead of spinning: the embedder
        # and the model share these cores, and a spinning pool starves them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(graph), options, providers=providers)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.on_gpu = GPU in self._session.get_providers()
        log.info("reranker %s on the %s", model, "GPU" if self.on_gpu else "CPU")

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        """One relevance score (the model's logit) per passage, in order."""
        import numpy as np

        if not passages:
            return []
        encodings = self._tokenizer.encode_batch([(question, p) for p in passages])
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        logits = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        return [round(float(x), 4) for x in np.asarray(logits).reshape(len(passages), -1)[:, 0]]


def locate(model: str, cache_dir: Path | None = None, graphs: Sequence[str] = (FLOAT_FILE,)) -> Path:
    """The folder holding ``model``: the folder itself, or the Hub repo's
    tokenizer and the first of ``graphs`` it has, downloaded (once) under
    ``cache_dir``."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") != 1:
        raise RerankerError(f"RERANK_MODEL={model} is neither a folder on this machine nor a Hub repo id (owner/name).")
    from huggingface_hub import snapshot_download

    try:
        for graph in graphs:  # the tokenizer, and the first graph the repo has
            folder = Path(snapshot_download(model, allow_patterns=[*TOKENIZER_FILES, graph], cache_dir=cache_dir))
            if (folder / graph).is_file():
                return folder
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, refused: one message says what to do
        raise RerankerError(
            f"Cannot fetch the reranker {model} from the Hub ({type(e).__name__}: {str(e).splitlines()[0]}). "
            "Set RERANK_MODEL to a folder holding its ONNX export, or RERANK_MODEL=off to rerank nothing."
        ) from e
    raise RerankerError(f"The Hub repo {model} has no {' or '.join(graphs)}: pick a cross-encoder with an ONNX export.")


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
