"""BERT models as ONNX exports, run with ONNX Runtime: the reranker's
cross-encoder (``rerank``) and the second embedder (``embed``).

A model is a local folder (read as it is, never a download) or a Hub repo id
whose tokenizer and ONNX graph are fetched once into the Hugging Face cache
(``HF_HOME``, on the pod's volume). It runs on the GPU when ONNX Runtime has
CUDA (``onnxruntime-gpu``), else on the CPU.

Not sentence-transformers' ONNX backend: it needs optimum-onnx, which does
not import against transformers 5; and not fastembed, which pins
huggingface-hub below 2 (this project pins 2.4). A BERT's graph and its own
``tokenizer.json`` are all it takes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

GPU = "CUDAExecutionProvider"
TOKENIZER = "tokenizer.json"


def locate(model: str, graphs: Sequence[str], setting: str, error: type[Exception], cache_dir: Path | None = None) -> Path:
    """The folder holding ``model``'s tokenizer and the first of ``graphs`` it
    has: the folder itself, or the Hub repo's files, downloaded (once) under
    ``cache_dir``. Raises ``error``, saying what to set ``setting`` to."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") != 1:
        raise error(f"{setting}={model} is neither a folder on this machine nor a Hub repo id (owner/name).")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    # huggingface_hub reads HF_ENDPOINT once, when it is imported; read here,
    # a mirror set later (or a test's loopback Hub) is the one asked.
    fetch = dict(cache_dir=cache_dir, endpoint=(os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None)
    try:
        tokenizer = Path(hf_hub_download(model, TOKENIZER, **fetch))
        for graph in graphs:
            try:
                hf_hub_download(model, graph, **fetch)
            except EntryNotFoundError:
                continue
            return tokenizer.parent
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, refused: one message says what to do
        raise error(
            f"Cannot fetch {setting}={model} from the Hub ({type(e).__name__}: {str(e).splitlines()[0]}). "
            f"Set {setting} to a folder holding its ONNX export, or {setting}=off to go without it."
        ) from e
    raise error(f"The Hub repo {model} has no {' or '.join(graphs)}: {setting} needs a model with an ONNX export.")


def first_graph(folder: Path, graphs: Sequence[str]) -> Path | None:
    return next((folder / name for name in graphs if (folder / name).is_file()), None)


def providers() -> list[str]:
    """ONNX Runtime's providers here, the GPU's first."""
    import onnxruntime as ort

    return [p for p in (GPU, "CPUExecutionProvider") if p in ort.get_available_providers()]


def open_session(graph: Path):
    """An ONNX Runtime session for ``graph``, on the GPU when there is one."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initializers
    # Its threads sleep between calls instead of spinning: the embedders and
    # the model share these cores, and a spinning pool starves them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(graph), options, providers=providers())


def feed(encodings, inputs: set[str]) -> dict:
    """The graph's ``inputs`` for a batch of tokenizer ``encodings``."""
    import numpy as np

    arrays = {
        "input_ids": [e.ids for e in encodings],
        "attention_mask": [e.attention_mask for e in encodings],
        "token_type_ids": [e.type_ids for e in encodings],
    }
    return {name: np.array(values, dtype=np.int64) for name, values in arrays.items() if name in inputs}
