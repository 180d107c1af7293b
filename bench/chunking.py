"""Chunk size on the Octave dev set: which CHUNK_TOKENS finds the right page.

    python bench/chunking.py                 # sizes 100, 150 and 200
    python bench/chunking.py --sizes 120 250

Each size gets its own index of the Octave manual (bench/out/homes, kept
for the next run), with the overlap at a fifth of the size and the section
context on, and is asked the dev set's answerable questions through
Mentor.search: hit@1, hit@5, MRR@5 (all, and per half of the dev set), with
the chunk count and the refusal figures at the current settings. The default size's index is the one
quality.py, coldstart.py and load.py use. MiniLM reads 254 word pieces per
chunk; what a size leaves free holds the section trail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import DEVSET, OUT, RESULTS, begin, corpus, half, load_jsonl, log, open_mentor, prepared_home, write_result
from quality import metrics, ours_result

DEFAULT_SIZES = (100, 150, 200)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdf", type=Path, nargs="+", help="the indexed PDFs (default: the Octave manual)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl")
    p.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="CHUNK_TOKENS values to try")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/chunking.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    from mentor.settings import Settings

    files = [f.resolve() for f in args.pdf] if args.pdf else corpus("octave")
    out = args.out or (OUT / "smoke" if args.smoke else RESULTS) / "chunking.json"
    questions = load_jsonl(args.devset)
    default = Settings()
    rows = [measure(files, size, default, questions) for size in args.sizes]
    figures = {
        "corpus": [f.name for f in files],
        "questions": sum(not q.get("unanswerable") for q in questions),
        "default": {"chunk_tokens": default.chunk_tokens, "chunk_overlap": default.chunk_overlap},
        "sizes": rows,
    }
    write_result("chunking", figures, script=__file__, argv=argv, out=out, smoke=args.smoke)
    return 0


def measure(files: list[Path], size: int, default, questions: list[dict]) -> dict:
    """The dev set's figures on an index cut into ``size``-token chunks."""
    overlap = size // 5
    stem = "+".join(f.stem for f in files)
    is_default = (size, overlap) == (default.chunk_tokens, default.chunk_overlap)
    env = {"CHUNK_TOKENS": str(size), "CHUNK_OVERLAP": str(overlap)}
    home = prepared_home(stem if is_default else f"{stem}-chunks{size}", files, **env)
    with open_mentor(home, **env) as mentor:
        results = {q["id"]: ours_result(mentor, q["question"], q.get("pages", [])) for q in questions}
        chunks = mentor.index.count()
    answerable = [q for q in questions if not q.get("unanswerable")]
    row = {"chunk_tokens": size, "chunk_overlap": overlap, "chunks": chunks, **metrics([results[q["id"]] for q in answerable])}
    row["halves"] = {h: metrics([results[q["id"]] for q in answerable if half(q["id"]) == h]) for h in ("tune", "held-out")}
    unanswerable = [q for q in questions if q.get("unanswerable")]
    refused_un = sum(results[q["id"]]["refused"] for q in unanswerable)
    refused_ans = sum(results[q["id"]]["refused"] for q in answerable)
    row["refusal"] = {
        "refused_unanswerable": refused_un,
        "refused_answerable": refused_ans,
        "recall": round(refused_un / len(unanswerable), 3) if unanswerable else None,
        "false_refusal_rate": round(refused_ans / len(answerable), 3) if answerable else None,
    }
    log(f"{size} tokens: {chunks} chunks, hit@5 {row['hit@5']}, mrr@5 {row['mrr@5']}")
    return row


if __name__ == "__main__":
    sys.exit(main())
