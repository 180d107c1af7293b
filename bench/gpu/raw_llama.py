"""Step 3a: raw llama.cpp on the random model, one stream, no code of ours.

    python bench/gpu/raw_llama.py --model M.gguf --out raw.json

``llama_cpp.Llama`` loads the model with every layer on the GPU, evaluates a
prompt of course text the length of a typical answer's prompt, then decodes.
It is the floor bench/generate.py's figures are read against, and it stands
even when that script fails: a GPU run always says how fast llama.cpp itself
is on this build.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import carry

sys.path.insert(0, str(carry.ROOT))
from mentor.generate.llm import TEMPERATURE  # noqa: E402
from mentor.settings import Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--n-gpu-layers", type=int, default=-1)
    p.add_argument("--n-ctx", type=int, default=Settings().n_ctx, help="default: the app's N_CTX")
    # About five 150-token sources, the system prompt and a question.
    p.add_argument("--prompt-tokens", type=int, default=1600)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import llama_cpp

    started = time.perf_counter()
    llama = llama_cpp.Llama(model_path=str(args.model), n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, verbose=False)
    load_s = time.perf_counter() - started
    text = carry.course_text().encode()
    prompt = llama.tokenize(text)[: args.prompt_tokens]
    if len(prompt) < args.prompt_tokens:
        raise SystemExit(f"the course text holds only {len(prompt)} tokens")
    runs = [decode(llama, prompt, args.max_tokens) for _ in range(args.runs)]
    result = {
        "model": args.model.name,
        "llama_cpp": llama_cpp.__version__,
        "llama_cpp_from": str(Path(llama_cpp.__file__).parent),  # the build's, on the GPU machine
        "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
        "n_gpu_layers": args.n_gpu_layers,
        "n_ctx": llama.n_ctx(),
        "load_s": round(load_s, 2),
        "gpu_memory_used_mib": gpu_memory_used_mib(),
        "prompt_tokens": len(prompt),
        "max_tokens": args.max_tokens,
        "runs": runs,
        "ttft_s_best": min(r["ttft_s"] for r in runs),
        "prompt_tokens_per_s_best": max(r["prompt_tokens_per_s"] for r in runs),
        "tokens_per_s_best": max((r["tokens_per_s"] or 0) for r in runs),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def decode(llama, prompt: list[int], max_tokens: int) -> dict:
    """``max_tokens`` tokens sampled after ``prompt`` (``Llama.generate``, the
    loop under create_completion, so every token is counted): time to the
    first token (the prompt's evaluation) and tokens/s after it."""
    llama.reset()  # no prefix cache between runs: each evaluates the whole prompt
    began = time.perf_counter()
    first = None
    tokens = 0
    for _ in llama.generate(prompt, temp=TEMPERATURE):
        tokens += 1
        if first is None:
            first = time.perf_counter()
        if tokens == max_tokens:
            break
    end = time.perf_counter()
    first = first or end
    return {
        "ttft_s": round(first - began, 4),
        "prompt_tokens_per_s": round(len(prompt) / (first - began), 1),
        "tokens": tokens,
        "tokens_per_s": round((tokens - 1) / (end - first), 1) if tokens > 1 and end > first else None,
    }


def gpu_memory_used_mib() -> int | None:
    """What nvidia-smi says the GPU holds (the model's weights, once loaded)."""
    if not shutil.which("nvidia-smi"):
        return None
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True
    )
    return int(done.stdout.split()[0]) if done.returncode == 0 and done.stdout.strip() else None


if __name__ == "__main__":
    sys.exit(main())
