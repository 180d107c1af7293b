"""The repeat guard: what it cuts from real answers, and that it cuts nothing else.

    python bench/repetition.py
    python bench/repetition.py --model mistral.gguf --n-gpu-layers -1

Each dev-set question gets the prompt Answerer.prompt builds, with five
sources cut from the Octave manual's pages at its answer (no index needed),
and is answered twice at temperature 0 by the same scheduler: with the
guard (the product: an answer stops when its last REPEAT_SPAN tokens
already occurred in it) and without it. Greedy decoding computes the same
tokens either way until the guard stops one, so an answer the guard lets
through must be identical, and a cut one a prefix of the unguarded one.

For each cut answer: how many tokens the unguarded answer went on for,
whether it ran to the token limit (a loop) or ended by itself, and whether
the cut lost a citation ([n]) that the unguarded answer made.
"""

from __future__ import annotations

import argparse
import re
import sys

from common import (
    CorpusMissing,
    answering_model,
    answering_options,
    begin,
    devset_prompts,
    log,
    source_pdf,
    write_result,
)

CITATION = re.compile(r"\[(\d+)\]")
UNGUARDED = 10**9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    answering_options(p, "repetition")
    p.add_argument("--questions", type=int, default=24)
    args = p.parse_args(argv)
    if args.smoke:
        args.questions, args.max_tokens = min(args.questions, 2), 16
    begin()

    from mentor.generate import scheduler
    from mentor.generate.answer import Answerer
    from mentor.generate.llm import LlamaCppModel
    from mentor.generate.scheduler import Sampling

    try:
        pdf = source_pdf(args)
    except CorpusMissing as e:
        raise SystemExit(str(e)) from None
    path, settings = answering_model(args, "repetition")
    # Every prompt read whole on both sides, so that only the guard differs:
    # the second side would otherwise find its prompts in the slots' cache
    # and read them in other batch shapes, whose float sums can turn a
    # greedy choice (seen here: the guarded answer no longer a prefix).
    with LlamaCppModel(path, n_ctx=settings.n_ctx, n_gpu_layers=args.n_gpu_layers, reuse=False) as model:
        answerer = Answerer(None, model, settings)
        questions, prompts = [], []
        for q, messages, _ in devset_prompts(answerer, pdf, args.devset, args.questions):
            formatted = model._format(messages)
            questions.append(q)
            prompts.append(model._llama.tokenize(formatted.prompt.encode(), add_bos=False, special=True))

        def answers(span: int) -> list[str]:
            scheduler.REPEAT_SPAN = span  # read as each answer starts
            streams = [model.scheduler.submit(p, args.max_tokens, Sampling(0.0)) for p in prompts]
            return ["".join(s) for s in streams]

        guard = scheduler.REPEAT_SPAN
        log(f"{len(prompts)} answers with the guard ({guard} tokens)")
        guarded = answers(guard)
        log(f"{len(prompts)} answers without it")
        unguarded = answers(UNGUARDED)
        scheduler.REPEAT_SPAN = guard
        rows = [
            answer_row(q["id"], g, u, model.count_tokens, args.max_tokens)
            for q, g, u in zip(questions, guarded, unguarded)
        ]

    figures = {"model": path.name, "repeat_span": guard, "max_tokens": args.max_tokens} | cut_figures(rows)
    log(f"cut {figures['cut']} of {len(rows)}; {figures['cut_that_ran_to_the_limit']} of those looped to the limit")
    write_result("repetition", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


def cut_figures(rows: list[dict]) -> dict:
    """What the guard cut, over every answer's row."""
    cut = [r for r in rows if r["cut"]]
    return {
        "answers": len(rows),
        # The guard only ends answers early: every cut answer is the start
        # of the unguarded one, word for word.
        "prefix_when_cut": all(r["prefix"] for r in cut),
        "cut": len(cut),
        "cut_that_ran_to_the_limit": sum(1 for r in cut if r["unguarded_hit_limit"]),
        "tokens_saved": sum(r["unguarded_tokens"] - r["guarded_tokens"] for r in cut),
        "citations_lost": sum(len(r["citations_lost"]) for r in cut),
        "rows": rows,
    }


def answer_row(qid: str, guarded: str, unguarded: str, count_tokens, limit: int) -> dict:
    g, u = count_tokens(guarded) if guarded else 0, count_tokens(unguarded) if unguarded else 0
    return {
        "id": qid,
        "cut": guarded != unguarded,
        "prefix": unguarded.startswith(guarded),
        "guarded_tokens": g,
        "unguarded_tokens": u,
        # Counted again from the text, so within a token or two of the limit.
        "unguarded_hit_limit": u >= limit - 2,
        "citations_lost": sorted(set(CITATION.findall(unguarded)) - set(CITATION.findall(guarded))),
        "cut_at": guarded[-120:] if guarded != unguarded else "",
    }


if __name__ == "__main__":
    sys.exit(main())
