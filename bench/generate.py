"""Time to first token and tokens/s with the tiny model on the CPU.

    python bench/generate.py

Ours is mentor.llm.LlamaCppModel.stream_chat (the GGUF's own chat template
rendered by us, generation behind the model lock); the baseline is what a
user would write without us: llama_cpp.Llama.create_chat_completion(stream=True)
on the same file with the same messages. The messages are what Answerer.prompt
builds for a dev-set question, with five sources cut from the Octave manual's
pages (about the size of our chunks), so each run has a different prompt
that shares the system prompt, as in a real chat. Runs alternate ours and
baseline.

Time to first token counts from the call to the first non-empty piece (it
is mostly prompt evaluation); tokens/s is the tokens after the first over
the time after the first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import (
    DEVSET,
    OUT,
    begin,
    corpus,
    load_jsonl,
    log,
    mentor_settings,
    ratio,
    summary,
    tiny_gguf,
    write_result,
)

SOURCES = 5
SOURCE_CHARS = 900  # about 200 MiniLM word pieces, one of our chunks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdf", type=Path, help="where the sources come from (default: the Octave manual)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl")
    p.add_argument("--runs", type=int, default=8, help="prompts per side")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/generate.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    from llama_cpp import Llama

    from mentor.answer import Answerer
    from mentor.llm import LlamaCppModel

    pdf = args.pdf.resolve() if args.pdf else corpus("octave")[0]
    settings = mentor_settings(OUT / "generate-unused")
    path = tiny_gguf()
    ours = LlamaCppModel(path, n_ctx=settings.n_ctx, n_gpu_layers=0)
    raw = Llama(model_path=str(path), n_ctx=settings.n_ctx, n_gpu_layers=0, verbose=False)
    answerer = Answerer(None, ours, settings)

    questions = [q for q in load_jsonl(args.devset) if q.get("pages")][: args.runs]
    results = {"ours": [], "baseline": []}
    for q in questions:
        messages, used = answerer.prompt(q["question"], sources(pdf, q["pages"][0]), [], "GNU Octave")
        prompt_tokens = sum(ours.count_tokens(m["content"]) for m in messages)
        for side, stream in (
            ("ours", lambda m=messages: ours.stream_chat(m, args.max_tokens)),
            ("baseline", lambda m=messages: _raw_stream(raw, m, args.max_tokens)),
        ):
            run = timed_stream(stream, ours.count_tokens)
            run |= {"prompt_tokens": prompt_tokens, "sources": len(used)}
            results[side].append(run)
            log(
                f"{side} {q['id']}: first token {run['ttft_s']:.2f} s, {run['tokens']} tokens, {run['tokens_per_s']} tok/s"
            )

    figures = {
        "model": path.name,
        "n_ctx": settings.n_ctx,
        "max_tokens": args.max_tokens,
        "runs": len(questions),
        "ours": aggregate(results["ours"]),
        "baseline": aggregate(results["baseline"]),
        "runs_detail": results,
    }
    figures["ratios"] = {
        "ttft_p50": ratio(figures["ours"]["ttft_s"]["p50"], figures["baseline"]["ttft_s"]["p50"]),
        "tokens_per_s_p50": ratio(figures["ours"]["tokens_per_s"]["p50"], figures["baseline"]["tokens_per_s"]["p50"]),
    }
    write_result("generate", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


def sources(pdf: Path, page: int) -> list:
    """Five hits cut from consecutive pages, starting at ``page``."""
    from pypdf import PdfReader

    from mentor.store import Hit

    reader = PdfReader(pdf)
    pages = range(page - 1, min(page - 1 + SOURCES, len(reader.pages)))
    return [
        Hit("bench", pdf.name, i + 1, reader.page_labels[i], (reader.pages[i].extract_text() or "")[:SOURCE_CHARS], 0.5)
        for i in pages
    ]


def _raw_stream(llama, messages: list[dict], max_tokens: int):
    from mentor.llm import TEMPERATURE

    for chunk in llama.create_chat_completion(messages, max_tokens=max_tokens, temperature=TEMPERATURE, stream=True):
        if text := chunk["choices"][0]["delta"].get("content"):
            yield text


def timed_stream(start, count_tokens) -> dict:
    import time

    began = time.perf_counter()
    first = None
    text = ""
    for piece in start():
        if first is None:
            first = time.perf_counter()
        text += piece
    end = time.perf_counter()
    first = first or end
    tokens = count_tokens(text) if text else 0
    decode = end - first
    return {
        "ttft_s": round(first - began, 3),
        "total_s": round(end - began, 3),
        "tokens": tokens,
        "tokens_per_s": round((tokens - 1) / decode, 1) if tokens > 1 and decode > 0 else None,
    }


def aggregate(runs: list[dict]) -> dict:
    speeds = [r["tokens_per_s"] for r in runs if r["tokens_per_s"]]
    return {
        "ttft_s": summary([r["ttft_s"] for r in runs], digits=3),
        "tokens_per_s": summary(speeds, digits=1),
        "tokens": summary([r["tokens"] for r in runs], digits=0),
        "prompt_tokens": summary([r["prompt_tokens"] for r in runs], digits=0),
    }


if __name__ == "__main__":
    sys.exit(main())
