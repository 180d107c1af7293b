"""Step 4: our Embedder on the GPU, with MiniLM's shape and random weights.

    python bench/gpu/embedding.py --out embed.json

A BERT of all-MiniLM-L6-v2's configuration (6 layers, 384 wide, 12 heads),
initialised at random by transformers, is saved beside MiniLM's own
tokenizer and sentence-transformers files (carried; the 90 MB of weights
are not) and loaded by ``mentor.index.embed.Embedder`` as the app loads a model
folder. Chunks of about 150 word pieces, the app's chunk size, cut from the
repository's prose, are embedded at the app's batch size and at a larger one.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import carry
from carry import MINILM_FILES, Cache

sys.path.insert(0, str(carry.ROOT))
from mentor.index.embed import Embedder  # noqa: E402
from mentor.settings import Settings  # noqa: E402

SETTINGS = Settings()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=carry.CACHE)
    p.add_argument("--chunks", type=int, default=4096)
    p.add_argument("--batch-sizes", default=f"{SETTINGS.embed_batch_size},256", help="comma-separated")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import torch

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        random_minilm(Cache(args.cache).minilm, Path(folder))
        made_s = time.perf_counter() - started
        embedders = [Embedder(folder, batch_size=int(size)) for size in args.batch_sizes.split(",")]
        embedder = embedders[0]
        chunks = cut_chunks(embedder, carry.course_text(), args.chunks)
        runs = [timed(e, chunks) for e in embedders]
    cuda = torch.cuda.is_available()
    result = {
        "model": "BERT of all-MiniLM-L6-v2's configuration, random weights",
        "dimension": embedder.dimension,
        "max_tokens": embedder.max_tokens,
        "make_s": round(made_s, 2),
        "chunks": len(chunks),
        "chunk_tokens": _tokens(embedder, chunks),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": importlib.metadata.version("transformers"),
        "sentence_transformers": importlib.metadata.version("sentence-transformers"),
        "runs": runs,
        "chunks_per_s_best": max(r["chunks_per_s"] for r in runs),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def random_minilm(tokenizer_files: Path, folder: Path) -> None:
    """A sentence-transformers folder: MiniLM's files, random BERT weights."""
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(tokenizer_files)
    BertModel(config).save_pretrained(folder)
    for name in MINILM_FILES:
        if name != "config.json":  # save_pretrained wrote the same configuration
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tokenizer_files / name, folder / name)


def cut_chunks(embedder: Embedder, text: str, count: int) -> list[str]:
    """``count`` chunks of about ``CHUNK_TOKENS`` word pieces, each starting
    a little further into ``text`` (wrapping round)."""
    words = text.split()
    per_chunk = len(words) * SETTINGS.chunk_tokens // embedder.count_tokens(text)
    step = max(1, per_chunk // 3)
    doubled = words + words
    starts = [(i * step) % len(words) for i in range(count)]
    return [" ".join(doubled[s : s + per_chunk]) for s in starts]


def timed(embedder: Embedder, chunks: list[str]) -> dict:
    """One batch to warm up (CUDA's start, cuBLAS's handles), then all."""
    import torch

    embedder.embed(chunks[: embedder.batch_size])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    vectors = embedder.embed(chunks)  # returns lists: the GPU's work is done
    seconds = time.perf_counter() - started
    return {
        "batch_size": embedder.batch_size,
        "seconds": round(seconds, 3),
        "chunks_per_s": round(len(vectors) / seconds, 1),
        "gpu_peak_mib": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
    }


def _tokens(embedder: Embedder, chunks: list[str]) -> dict:
    counts = sorted(embedder.count_tokens(c) for c in chunks[:256])
    return {"p50": counts[len(counts) // 2], "min": counts[0], "max": counts[-1]}


if __name__ == "__main__":
    sys.exit(main())
