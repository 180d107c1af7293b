"""Retrieval latency at two index sizes: ours against the LlamaIndex starter.

    python bench/latency.py

Builds one index of each kind and measures twice as it grows:

- small: the seven R manuals (677 pages; about 3k of our chunks)
- large: the same plus the Octave manual and the R reference (4,250 real
  pages; no duplicated documents)

At each size every dev-set question is asked ``--reps`` times, warm (the
models loaded, a few questions asked first), one at a time, top 5. Ours is
Mentor.search (embed the question, hybrid dense + keyword search in local
Qdrant, page merge); the baseline is ``index.as_retriever(similarity_top_k=5)``
(embed, dense search). Our time is also split into embedding the question
and the store's search.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import (
    DEVSET,
    OUT,
    Baseline,
    baseline_embedder,
    begin,
    corpus,
    fresh_dir,
    load_jsonl,
    log,
    open_mentor,
    ratio,
    summary,
    timed,
    write_result,
)

K = 5
WARMUP = 5


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small-files", type=Path, nargs="+", help="the first index (default: the R manuals)")
    p.add_argument("--extra-files", type=Path, nargs="+", help="added for the second (default: octave + refman)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl", help="the questions asked")
    p.add_argument("--reps", type=int, default=2, help="times each question is asked per size")
    p.add_argument("--work", type=Path, help="scratch folder (default bench/out/latency)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/latency.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    stages = [
        ("small", [f.resolve() for f in args.small_files] if args.small_files else corpus("r-manuals")),
        ("large", [f.resolve() for f in args.extra_files] if args.extra_files else corpus("octave") + corpus("refman")),
    ]
    questions = [q["question"] for q in load_jsonl(args.devset)]
    work = fresh_dir((args.work or OUT / ("latency-smoke" if args.smoke else "latency")).resolve())

    mentor = open_mentor(work / "ours")
    baseline = Baseline(work / "baseline" / "qdrant", baseline_embedder())
    split = _split_ours(mentor)
    sizes, files_so_far = {}, []
    try:
        for name, files in stages:
            files_so_far += files
            log(f"{name}: ingesting {len(files)} files into both indexes")
            with timed() as t_ours:
                failed = [r.line() for r in mentor.ingest(files) if not r.ok]
            if failed:
                raise SystemExit(f"ingestion failed: {failed}")
            with timed() as t_base:
                baseline.ingest(files)
            log(f"{name}: {mentor.index.count()} / {baseline.count()} chunks; asking {len(questions)} x {args.reps}")
            sizes[name] = measure(mentor, baseline, split, questions, args.reps)
            sizes[name] |= {
                "files": [f.name for f in files_so_far],
                "pages": sum(d.pages for d in mentor.documents()),
                "build_s": {"ours": round(t_ours.seconds, 1), "baseline": round(t_base.seconds, 1)},
            }
    finally:
        mentor.close()
        baseline.close()
    figures = {"k": K, "questions": len(questions), "reps": args.reps, "sizes": sizes}
    write_result("latency", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


def _split_ours(mentor) -> dict[str, list[float]]:
    """Times the question's embedding and the store's search inside
    Mentor.search, by wrapping the two objects' methods (bench-side only)."""
    spent = {"embed_query": [], "store_search": []}
    for owner, method, key in (
        (mentor.embedder, "embed_query", "embed_query"),
        (mentor.index, "search", "store_search"),
    ):
        inner = getattr(owner, method)

        def wrapper(*a, _inner=inner, _key=key, **kw):
            with timed() as t:
                result = _inner(*a, **kw)
            spent[_key].append(t.seconds)
            return result

        setattr(owner, method, wrapper)
    return spent


def measure(mentor, baseline: Baseline, split: dict, questions: list[str], reps: int) -> dict:
    for q in questions[:WARMUP]:
        mentor.search(q, K)
        baseline.search(q, K)
    for values in split.values():
        values.clear()
    ours, base = [], []
    for _ in range(reps):
        for q in questions:  # interleaved, so both see the same machine
            with timed() as t:
                mentor.search(q, K)
            ours.append(t.seconds)
            with timed() as t:
                baseline.search(q, K)
            base.append(t.seconds)
    ours_ms, base_ms = summary(ours, 1000, 1), summary(base, 1000, 1)
    return {
        "chunks": {"ours": mentor.index.count(), "baseline": baseline.count()},
        "ours_ms": ours_ms,
        "ours_split_ms": {key: summary(values, 1000, 1) for key, values in split.items()},
        "baseline_ms": base_ms,
        "ratio_p50": ratio(ours_ms["p50"], base_ms["p50"]),
        "ratio_p95": ratio(ours_ms["p95"], base_ms["p95"]),
    }


if __name__ == "__main__":
    sys.exit(main())
