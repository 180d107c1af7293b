"""Generation: one answer's time to first token and tokens/s, and many answers at once.

    python bench/generate.py
    python bench/generate.py --model mistral.gguf --n-gpu-layers -1 --streams 1,4,8,16 --out gpu.json

Two parts, one run:

1. Prompts (``ours``, ``baseline``): one answer at a time. Ours is
   mentor.generate.llm.LlamaCppModel.stream_chat (the GGUF's own chat template
   rendered by us, decoded by our scheduler); the baseline is what a user
   would write without us: llama_cpp.Llama.create_chat_completion(stream=True)
   on the same file with the same messages. The messages are what
   Answerer.prompt builds for a dev-set question, with five sources cut from
   the Octave manual's pages (about the size of our chunks). Runs alternate
   ours and baseline. Time to first token counts from the call to the first
   non-empty piece (mostly prompt evaluation); tokens/s is the tokens after
   the first over the time after the first. Skipped, and said so, when the
   corpus is not installed and no --pdf is given.

2. Streams (``streams``): S short chat prompts at once, greedy, for each S
   of --streams, three ways:
   - batched: our scheduler with S or more slots, all S together;
   - serial: our scheduler with one slot (N_PARALLEL=1), the same S
     prompts, which then run one after another;
   - raw: llama.cpp's batch API driven by a bare loop (one context with S
     sequences, every sequence decoded every step, no sampler chain, no
     queue, no text): the ceiling of batching on this machine.
   Aggregate decode tokens/s counts, for batched, the tokens written while
   all S streams were writing over that time; for serial, each stream's
   tokens after its first over its time after the first. The scheduler's
   own time per step (the loop, batch filling, detokenizing, the queues:
   everything but llama_decode and the samplers) is reported beside.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from common import (
    CorpusMissing,
    answering_model,
    answering_options,
    begin,
    devset_prompts,
    log,
    ratio,
    source_pdf,
    summary,
    write_result,
)

TOPICS = [
    "orbits", "telescopes", "escape velocity", "comets", "the Moon", "tides", "eclipses", "galaxies",
    "black holes", "the Sun", "meteors", "seasons", "stars", "planets", "nebulae", "gravity",
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    answering_options(p, "generate")
    p.add_argument("--streams", default="1,4,8", help="stream counts to measure, comma-separated (default 1,4,8)")
    p.add_argument("--stream-tokens", type=int, default=128, help="tokens each stream writes at most")
    p.add_argument("--runs", type=int, default=8, help="prompts per side")
    args = p.parse_args(argv)
    begin()

    path, settings = answering_model(args, "generate")
    streams = sorted({int(s) for s in args.streams.split(",")})
    if args.smoke:
        streams, args.stream_tokens = [1, 2], 8
    figures = {
        "model": path.name,
        "n_gpu_layers": args.n_gpu_layers,
        "n_ctx": settings.n_ctx,
        "max_tokens": args.max_tokens,
        "stream_tokens": args.stream_tokens,
    }
    figures |= prompt_figures(path, args, settings)
    figures["streams"] = stream_figures(path, streams, args.stream_tokens, args.n_gpu_layers)
    write_result("generate", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


# ---------------------------------------------------------------- one answer


def prompt_figures(path: Path, args, settings) -> dict:
    """Part 1: ours and the baseline, one answer at a time, alternating."""
    from llama_cpp import Llama

    from mentor.generate.answer import Answerer
    from mentor.generate.llm import LlamaCppModel

    try:
        pdf = source_pdf(args)
    except CorpusMissing as e:
        log(f"prompts skipped: {e}")
        return {"prompts_skipped": str(e)}
    results = {"ours": [], "baseline": []}
    with LlamaCppModel(path, n_ctx=settings.n_ctx, n_gpu_layers=args.n_gpu_layers, n_parallel=1) as ours:
        raw = Llama(model_path=str(path), n_ctx=settings.n_ctx, n_gpu_layers=args.n_gpu_layers, verbose=False)
        answerer = Answerer(None, ours, settings)
        for q, messages, used in devset_prompts(answerer, pdf, args.devset, args.runs):
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
        raw.close()
    figures = {
        "runs": len(results["ours"]),  # one a question
        "ours": aggregate(results["ours"]),
        "baseline": aggregate(results["baseline"]),
        "runs_detail": results,
    }
    figures["ratios"] = {
        "ttft_p50": ratio(figures["ours"]["ttft_s"]["p50"], figures["baseline"]["ttft_s"]["p50"]),
        "tokens_per_s_p50": ratio(figures["ours"]["tokens_per_s"]["p50"], figures["baseline"]["tokens_per_s"]["p50"]),
    }
    return figures


def _raw_stream(llama, messages: list[dict], max_tokens: int):
    from mentor.generate.llm import TEMPERATURE

    for chunk in llama.create_chat_completion(messages, max_tokens=max_tokens, temperature=TEMPERATURE, stream=True):
        if text := chunk["choices"][0]["delta"].get("content"):
            yield text


def timed_stream(start, count_tokens) -> dict:
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


# ---------------------------------------------------------------- many at once


def stream_figures(path: Path, counts: list[int], tokens: int, n_gpu_layers: int) -> dict:
    """Part 2: for each stream count, batched, serial and raw llama.cpp."""
    from mentor.generate.llm import LlamaCppModel

    # Room for a short prompt and the answer; a slot per stream at most.
    n_ctx = 256 + tokens
    rows: dict[str, dict] = {}
    with (
        LlamaCppModel(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_parallel=max(counts)) as batched,
        LlamaCppModel(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_parallel=1) as serial,
    ):
        prompts = [chat_prompt(batched, TOPICS[i % len(TOPICS)], i) for i in range(max(counts))]
        for s in counts:
            row = {"batched": run_streams(batched, prompts[:s], tokens), "serial": run_streams(serial, prompts[:s], tokens)}
            row["raw_llama_cpp"] = raw_streams(batched._llama, prompts[:s], tokens, n_gpu_layers)
            rows[str(s)] = row
            log(
                f"{s} streams: batched {row['batched']['decode_tokens_per_s']} tok/s, serial "
                f"{row['serial']['decode_tokens_per_s']}, raw llama.cpp {row['raw_llama_cpp']['decode_tokens_per_s']}"
            )
        steps = batched.scheduler.steps
        timings = batched.scheduler.timings
        overhead = {
            "steps": steps,
            "decode_ms": round(1000 * timings["decode_s"] / steps, 3),
            "sample_ms": round(1000 * timings["sample_s"] / steps, 3),
            # What the scheduler itself adds to a step: filling the batch,
            # detokenizing, the queues and the lock.
            "python_ms": round(1000 * (timings["step_s"] - timings["decode_s"] - timings["sample_s"]) / steps, 3),
        }
    for side in ("batched", "serial", "raw_llama_cpp"):
        one = rows["1"][side]["decode_tokens_per_s"] if "1" in rows else None
        for row in rows.values():
            row[side]["vs_one_stream"] = ratio(row[side]["decode_tokens_per_s"], one)
    # The most streams measured, for prose that must not name a count.
    most = {"streams": max(counts), **rows[str(max(counts))]}
    return {"n_ctx": n_ctx, "counts": counts, "rows": rows, "most": most, "scheduler_per_step": overhead}


def chat_prompt(model, topic: str, n: int) -> list[int]:
    messages = [
        {"role": "system", "content": "You are a helpful mentor."},
        {"role": "user", "content": f"Question {n}: explain {topic} to a first-year student, in detail."},
    ]
    return model._llama.tokenize(model.format_prompt(messages).encode(), add_bos=False, special=True)


def run_streams(model, prompts: list[list[int]], tokens: int) -> dict:
    """Submits every prompt at once (greedy) and reads each reply on its own
    thread; returns time to first token, wall time and decode tokens/s."""
    from mentor.generate.scheduler import Sampling

    began = time.perf_counter()
    streams = [model.scheduler.submit(p, tokens, Sampling(0.0)) for p in prompts]
    stamps: list[list[float]] = [[] for _ in streams]

    def read(i: int) -> None:
        for _ in streams[i]:
            stamps[i].append(time.perf_counter())

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(streams))]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    ended = time.perf_counter()
    firsts, lasts = [s[0] for s in stamps], [s[-1] for s in stamps]
    if len(prompts) > 1 and model.scheduler.n_parallel > 1:
        # While every stream was writing: the batch at its full size.
        start, end = max(firsts), min(lasts)
        written = sum(1 for s in stamps for t in s if start < t <= end)
        rate = written / (end - start) if end > start else None
    else:
        written = sum(len(s) - 1 for s in stamps)
        rate = written / sum(last - first for first, last in zip(firsts, lasts))
    return {
        "streams": len(prompts),
        "pieces": sum(len(s) for s in stamps),
        "wall_s": round(ended - began, 3),
        "ttft_s": summary([f - began for f in firsts], digits=3),
        "decode_tokens_per_s": round(rate, 1) if rate else None,
    }


def raw_streams(model, prompts: list[list[int]], tokens: int, n_gpu_layers: int) -> dict:
    """The same prompts through llama.cpp's batch API in a bare loop: one
    context of len(prompts) sequences, greedy, every sequence every step."""
    import llama_cpp

    from mentor.generate.llm import available_cores

    n = len(prompts)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = -(-(256 + tokens) // 256) * 256 * n  # whole blocks of 256 a sequence, as llama.cpp lays them out
    params.n_seq_max = n
    params.kv_unified = False
    params.n_batch = params.n_ubatch = 512
    params.n_threads = params.n_threads_batch = available_cores()
    params.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model.model, params)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    greedy = llama_cpp.llama_sampler_init_greedy()
    try:

        def decode(entries: list[tuple[int, int, int, bool]]) -> None:
            batch.n_tokens = len(entries)
            for i, (token, pos, seq, logits) in enumerate(entries):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
                batch.seq_id[i][0] = seq
            assert llama_cpp.llama_decode(ctx, batch) == 0

        last = []
        for seq, p in enumerate(prompts):  # each prompt in its own pass
            decode([(t, pos, seq, pos == len(p) - 1) for pos, t in enumerate(p)])
            last.append(llama_cpp.llama_sampler_sample(greedy, ctx, len(p) - 1))
        began = time.perf_counter()
        for step in range(tokens - 1):
            decode([(last[seq], len(prompts[seq]) + step, seq, True) for seq in range(n)])
            last = [llama_cpp.llama_sampler_sample(greedy, ctx, i) for i in range(n)]
        seconds = time.perf_counter() - began
    finally:
        llama_cpp.llama_sampler_free(greedy)
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    return {"streams": n, "steps": tokens - 1, "decode_tokens_per_s": round(n * (tokens - 1) / seconds, 1)}


if __name__ == "__main__":
    sys.exit(main())
