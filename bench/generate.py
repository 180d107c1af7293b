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

3. Follow-ups (``followup``): the time to first token of a follow-up on
   the same topic (3 of its 5 source pages were the first question's, and
   are named, not repeated), whose prompt (Answerer.prompt with the earlier
   turn as the model read it) begins with the whole prompt and answer
   before it, against a new
   question of the same length (the same prompt with its first turn
   changed at its first character, so only the rules are shared), ours
   and bare ``Llama`` (which keeps its last prompt's cache too), alternating.

4. A crowd (``crowd``): --students prompts of the sources' size (one per
   dev-set question) submitted at once to our scheduler with the device's
   slots, with reuse (the rules read once, each slot's cells kept) and
   without (PROMPT_REUSE=0), alternating rounds: time to first token p50
   and p95, and wall time.
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
    load_jsonl,
    log,
    page_sources,
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
    p.add_argument(
        "--parts", default="prompts,followup,crowd,streams", help="what to measure, comma-separated (default: all four)"
    )
    p.add_argument("--pairs", type=int, default=3, help="question and follow-up pairs per side (default 3)")
    p.add_argument("--students", type=int, default=20, help="prompts submitted at once in the crowd (default 20)")
    p.add_argument("--crowd-sources", type=int, default=5, help="sources in each crowd prompt (default 5)")
    p.add_argument("--crowd-rounds", type=int, default=1, help="crowd rounds per side, alternating (default 1)")
    args = p.parse_args(argv)
    begin()

    path, settings = answering_model(args, "generate")
    streams = sorted({int(s) for s in args.streams.split(",")})
    if args.smoke:
        streams, args.stream_tokens = [1, 2], 8
        # More students than a CPU's 4 slots: the last ones start from the kept rules.
        args.pairs, args.students, args.max_tokens = 1, 6, min(args.max_tokens, 16)
        args.crowd_sources = 1  # and one source a turn in the follow-ups: a quick check, not a figure
    figures = {
        "model": path.name,
        "n_gpu_layers": args.n_gpu_layers,
        "n_ctx": settings.n_ctx,
        "max_tokens": args.max_tokens,
        "stream_tokens": args.stream_tokens,
    }
    parts = set(args.parts.split(","))
    if "prompts" in parts:
        figures |= prompt_figures(path, args, settings)
    figures |= reuse_figures(path, args, settings, parts)
    if "streams" in parts:
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


# ---------------------------------------------------------------- reuse


def reuse_figures(path: Path, args, settings, parts: set[str]) -> dict:
    """Parts 3 and 4: a follow-up against a new question of the same
    length (ours and bare Llama), and a crowd with and without reuse."""
    try:
        pdf = source_pdf(args)
    except CorpusMissing as e:
        return {"reuse_skipped": str(e)}
    questions = [q for q in load_jsonl(args.devset) if q.get("pages")]
    figures = {}
    if "followup" in parts:
        figures["followup"] = followup_figures(path, args, settings, pdf, questions[: 2 * args.pairs])
    if "crowd" in parts:
        figures["crowd"] = crowd_figures(path, args, settings, pdf, questions[: args.students])
    return figures


def followup_figures(path: Path, args, settings, pdf: Path, questions: list[dict]) -> dict:
    """Each pair: the first question, its follow-up, then a new question
    as long as the follow-up; ours and bare Llama alternate by pair."""
    from llama_cpp import Llama

    from mentor.generate.answer import Answerer
    from mentor.generate.llm import LlamaCppModel

    # Room for two turns of five sources and their answers.
    n_ctx = 2 * settings.n_ctx
    rows = {"ours": [], "baseline": []}
    with LlamaCppModel(path, n_ctx=n_ctx, n_gpu_layers=args.n_gpu_layers) as ours:
        raw = Llama(model_path=str(path), n_ctx=n_ctx, n_gpu_layers=args.n_gpu_layers, verbose=False)
        # top_k 1 marks a smoke run: one source a turn.
        answerer = Answerer(None, ours, settings.replace(n_ctx=n_ctx, top_k=1 if args.smoke else settings.top_k))
        sides = {
            "ours": lambda m: ours.stream_chat(m, args.max_tokens),
            "baseline": lambda m: _raw_stream(raw, m, args.max_tokens),
        }
        for first, second in zip(questions[::2], questions[1::2]):
            for side, start in sides.items():
                row = conversation_times(answerer, start, ours.count_tokens, pdf, first, second)
                rows[side].append(row)
                log(
                    f"{side} {first['id']}+{second['id']}: new question {row['new_ttft_s']:.2f} s, follow-up "
                    f"{row['followup_ttft_s']:.2f} s ({row['followup_tokens']} prompt tokens)"
                )
        raw.close()
    figures = {"n_ctx": n_ctx, "pairs": len(rows["ours"]), "rows": rows}
    for side, runs in rows.items():
        new = summary([r["new_ttft_s"] for r in runs], digits=3)
        follow = summary([r["followup_ttft_s"] for r in runs], digits=3)
        figures[side] = {
            "new_ttft_s": new,
            "followup_ttft_s": follow,
            "followup_vs_new": ratio(follow.get("p50"), new.get("p50")),
            "prompt_tokens": summary([r["followup_tokens"] for r in runs], digits=0),
        }
    return figures


def conversation_times(answerer, start, count_tokens, pdf: Path, first: dict, second: dict) -> dict:
    """Asks ``first``, then ``second`` as its follow-up, then a new question
    of the follow-up's length; returns the times to first token."""
    course = "GNU Octave"
    cap = 1 if answerer.settings.top_k == 1 else None
    messages, _ = answerer.prompt(first["question"], page_sources(pdf, first["pages"][0])[:cap], [], course)
    reply = timed_text(lambda: start(messages), count_tokens)
    history = [
        {"role": "user", "content": first["question"], "prompted": messages[-1]["content"]},
        {"role": "assistant", "content": reply["text"]},
    ]
    # A follow-up on the same topic: its retrieval finds 3 of the 5 earlier
    # pages again (named, not repeated, in the prompt) and 2 new ones.
    follow, _ = answerer.prompt(second["question"], page_sources(pdf, first["pages"][0] + 2)[:cap], history, course)
    followup = timed_stream(lambda: start(follow), count_tokens)
    # The same prompt with its first turn changed at its first character:
    # as long, and nothing past the rules is in any cache.
    new = [dict(m) for m in follow]
    text = new[1]["content"]
    new[1]["content"] = ("s" if text[:1] != "s" else "S") + text[1:]
    fresh = timed_stream(lambda: start(new), count_tokens)
    return {
        "first_ttft_s": reply["ttft_s"],
        "followup_ttft_s": followup["ttft_s"],
        "new_ttft_s": fresh["ttft_s"],
        "followup_tokens": sum(count_tokens(m["content"]) for m in follow),
    }


def timed_text(start, count_tokens) -> dict:
    """timed_stream, with the text."""
    pieces: list[str] = []

    def collect():
        for piece in start():
            pieces.append(piece)
            yield piece

    run = timed_stream(collect, count_tokens)
    return run | {"text": "".join(pieces)}


def crowd_figures(path: Path, args, settings, pdf: Path, questions: list[dict]) -> dict:
    """``--students`` prompts at once, with reuse and without, alternating."""
    from mentor.generate.answer import Answerer
    from mentor.generate.llm import LlamaCppModel

    sides = {}
    with (
        LlamaCppModel(path, n_ctx=settings.n_ctx, n_gpu_layers=args.n_gpu_layers, reuse=True) as reusing,
        LlamaCppModel(path, n_ctx=settings.n_ctx, n_gpu_layers=args.n_gpu_layers, reuse=False) as reading,
    ):
        answerer = Answerer(None, reusing, settings)
        prompts = [
            answerer.prompt(q["question"], page_sources(pdf, q["pages"][0])[: args.crowd_sources], [], "GNU Octave")[0]
            for q in questions
        ]
        for _ in range(args.crowd_rounds):
            for side, model in (("reuse", reusing), ("no_reuse", reading)):
                sides.setdefault(side, []).append(crowd_round(model, prompts, args.max_tokens))
                log(f"crowd of {len(prompts)}, {side}: first token p95 {summary(sides[side][-1]['firsts'])['p95']} s")
        slots = reusing.scheduler.n_parallel
        # Counted here: a closed model's vocabulary is freed.
        lengths = [len(reusing._tokens(m)) for m in prompts]
    figures = {
        "students": len(prompts),
        "slots": slots,
        "max_tokens": args.max_tokens,
        "prompt_tokens": summary(lengths, digits=0),
    }
    for side, rounds in sides.items():
        firsts = [t for r in rounds for t in r["firsts"]]
        figures[side] = {
            "ttft_s": summary(firsts, digits=2),
            "wall_s": summary([r["wall_s"] for r in rounds], digits=2),
            "reused_tokens": summary([t for r in rounds for t in r["reused"]], digits=0),
        }
    figures["ttft_p95_reuse_vs_not"] = ratio(figures["reuse"]["ttft_s"].get("p95"), figures["no_reuse"]["ttft_s"].get("p95"))
    return figures


def crowd_round(model, prompts: list[list[dict]], max_tokens: int) -> dict:
    """Submits every prompt at once; each reply read on its own thread."""
    began = time.perf_counter()
    streams = [model.stream_chat(m, max_tokens) for m in prompts]
    firsts: list[float] = [0.0] * len(streams)

    def read(i: int) -> None:
        for n, _ in enumerate(streams[i]):
            if n == 0:
                firsts[i] = time.perf_counter() - began

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(streams))]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    return {
        "firsts": [round(f, 3) for f in firsts],
        "wall_s": time.perf_counter() - began,
        "reused": [s.request.reused for s in streams],
    }


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

    from mentor.generate.llm import FLASH_ATTN_CPU, FLASH_ATTN_GPU, default_threads

    n = len(prompts)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = -(-(256 + tokens) // 256) * 256 * n  # whole blocks of 256 a sequence, as llama.cpp lays them out
    params.n_seq_max = n
    params.kv_unified = False
    params.n_batch = params.n_ubatch = 512
    # The threads and attention ours uses on this device: the same work, bare.
    params.n_threads, params.n_threads_batch = default_threads(bool(n_gpu_layers))
    params.flash_attn_type = FLASH_ATTN_GPU if n_gpu_layers else FLASH_ATTN_CPU
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
