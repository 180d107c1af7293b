"""Retrieval quality on the Octave dev set: ours against the LlamaIndex starter.

    python bench/quality.py

- hit@1, hit@5, MRR@5 on the answerable questions, over all of them and
  per half of the dev set (``common.half``: the settings were chosen on the
  tuning half by bench/tuning.py; the held-out half is the figure to
  trust). A hit is a returned result whose 1-based physical page is one of
  the question's pages. Ours returns pages (Hit.page); the baseline returns
  nodes whose metadata holds pypdf's printed page_label, mapped back to the
  physical page.
- Each retrieval lever in turn, on the held-out half, on an index with and
  one without section context (``--without-sections``: a second index of
  the corpus, built once).
- Refusal at the current settings (Retriever.retrieve's verdict), per half:
  recall on the unanswerable questions and the share of answerable ones
  refused. The baseline has no refusal.
- Follow-ups: hit@5 of the second turn through Answerer.standalone (the
  tiny model rewrites it), against the second turn alone, the two questions
  concatenated (no model), and the hand-written standalone question.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from common import (
    DEVSET,
    OUT,
    RESULTS,
    Baseline,
    baseline_embedder,
    begin,
    corpus,
    half,
    label_ambiguity,
    load_jsonl,
    log,
    open_mentor,
    prepared_home,
    rank_metrics,
    summary,
    timed,
    tiny_gguf,
    write_result,
)

K = 5
HALVES = ("tune", "held-out")
SIDES = ("ours", "baseline")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdf", type=Path, nargs="+", help="the indexed PDFs (default: the Octave manual)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl")
    p.add_argument("--followups", type=Path, default=DEVSET / "octave_followups.jsonl")
    p.add_argument("--work", type=Path, help="scratch folder (default bench/out/quality)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/quality.json)")
    p.add_argument("--reuse", action="store_true", help="reuse the baseline index of an earlier run in --work")
    p.add_argument(
        "--without-sections", action="store_true", help="the levers on an index without section context too (built once)"
    )
    p.add_argument("--model", type=Path, help="the GGUF that answers and rewrites the follow-ups (default: the tiny model)")
    p.add_argument("--gpu-layers", type=int, default=0, help="layers of --model on the GPU (-1: all)")
    p.add_argument("--answer-tokens", type=int, default=128, help="length of the first turn's answer")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    files = [f.resolve() for f in args.pdf] if args.pdf else corpus("octave")
    work = (args.work or OUT / ("quality-smoke" if args.smoke else "quality")).resolve()
    out = args.out or (OUT / "smoke" if args.smoke else RESULTS) / "quality.json"
    questions = load_jsonl(args.devset)
    followups = load_jsonl(args.followups) if args.followups and args.followups.exists() else []

    with ExitStack() as stack:
        mentor, unsectioned, baseline, build = open_indexes(files, work, args.reuse, stack, args.without_sections)
        answerable = [q for q in questions if not q.get("unanswerable")]
        unanswerable = [q for q in questions if q.get("unanswerable")]
        log(f"{len(answerable)} answerable, {len(unanswerable)} unanswerable, {len(followups)} follow-ups")
        ours = [ours_result(mentor, q["question"], q.get("pages", [])) for q in questions]
        base = [baseline_result(baseline, files, q["question"], q.get("pages", [])) for q in questions]
        by_id = {q["id"]: (o, b) for q, o, b in zip(questions, ours, base, strict=True)}
        retrieval = {
            "ours": metrics([by_id[q["id"]][0] for q in answerable]),
            "baseline": metrics([by_id[q["id"]][1] for q in answerable]),
            "halves": {
                h: {side: metrics([by_id[q["id"]][i] for q in answerable if half(q["id"]) == h]) for i, side in enumerate(SIDES)}
                for h in HALVES
            },
        }
        held_out = [q for q in answerable if half(q["id"]) == "held-out"]
        levers = {"with section context": lever_figures(mentor, held_out)}
        if unsectioned is not None:
            levers = {"without section context": lever_figures(unsectioned, held_out), **levers}
        refusal = refusal_figures(questions, by_id, mentor.settings)
        follow = followup_figures(mentor, baseline, files, followups, args) if followups else None

    figures = {
        "corpus": {
            "files": [f.name for f in files],
            "chunks_ours": build["ours_chunks"],
            "chunks_baseline": build["baseline_chunks"],
        },
        "devset": {
            "file": _rel(args.devset),
            "answerable": len(answerable),
            "unanswerable": len(unanswerable),
            "followups": len(followups),
        },
        "k": K,
        "baseline_page_mapping": {
            "metadata": "page_label (pypdf's printed label) and file_name, mapped to the physical page through the file's label list",
            "labels_on_several_pages": label_ambiguity(files),
        },
        "retrieval": retrieval,
        "levers": levers,
        "refusal": refusal,
        "followups": follow,
        "questions": [
            {"id": q["id"], "pages": q.get("pages", []), "ours": by_id[q["id"]][0], "baseline": by_id[q["id"]][1]}
            for q in questions
        ],
    }
    write_result("quality", figures, script=__file__, argv=argv, out=out, smoke=args.smoke)
    held = retrieval["halves"]["held-out"]
    print(f"held-out hit@5 ours {held['ours']['hit@5']:.3f}, baseline {held['baseline']['hit@5']:.3f}")
    print(f"held-out refusal: {refusal['held-out']}")
    return 0


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return str(path)


def open_indexes(files: list[Path], work: Path, reuse: bool, stack: ExitStack, without_sections: bool = False):
    """Our index (bench/out/homes, shared with coldstart and load), the
    same without section context when asked (else None), and the
    baseline's, over ``files``, each built unless already there; ``stack``
    closes them."""
    import shutil

    name = "+".join(f.stem for f in files)
    mentor = stack.enter_context(open_mentor(prepared_home(name, files)))
    off = {"SECTION_CONTEXT": "0"}
    unsectioned = None
    if without_sections:
        unsectioned = stack.enter_context(open_mentor(prepared_home(f"{name}-no-sections", files, **off), **off))
    base_path = work / "baseline"
    reusable = reuse and base_path.exists()
    if not reusable:
        shutil.rmtree(base_path, ignore_errors=True)
    baseline = Baseline(base_path, baseline_embedder())
    stack.callback(baseline.close)
    if not reusable:
        log("baseline: ingesting")
        baseline.ingest(files)
    build = {"ours_chunks": mentor.index.count(), "baseline_chunks": baseline.count()}
    return mentor, unsectioned, baseline, build


def first_rank(candidates: list[list[int]], gold: set[int]) -> int | None:
    """1-based rank of the first result whose pages meet ``gold``."""
    return next((i for i, pages in enumerate(candidates, start=1) if gold & set(pages)), None)


def ours_result(mentor, question: str, gold: list[int]) -> dict:
    found = mentor.retriever.retrieve(question, K)
    pages = [[h.page] for h in found.hits]
    return {
        "pages": [p[0] for p in pages],
        "rank": first_rank(pages, set(gold)),
        "best_score": found.best_score,
        "best_rerank": found.best_rerank,
        "refused": not found.covered,
    }


def baseline_result(baseline: Baseline, files: list[Path], question: str, gold: list[int]) -> dict:
    nodes = baseline.search(question, K)
    pages = [baseline.physical_pages(n, files) for n in nodes]
    return {
        "pages": pages,
        "rank": first_rank(pages, set(gold)),
        "best_score": round(max((n.score or 0.0 for n in nodes), default=0.0), 4),
    }


# Each retrieval lever switched on in turn, from the same index and the same
# two candidate lists: what each one adds. The last row is Retriever.search.
# All of them are measured on two indexes: chunks indexed with and without
# the PDF bookmarks they sit under (settings.section_context).
BEFORE = dict(k=5, per_page="sum")  # the fusion before the held-out tuning
LEVERS = {
    "dense: MiniLM chunks, top 5 as they come": None,
    "dense, one hit per page": ([(True, 1.0)], BEFORE),
    "keywords (BM25) alone, one hit per page": ([(False, 1.0)], BEFORE),
    "hybrid as before: keywords at 0.5, RRF k 5, a page's chunks summed": ([(True, 1.0), (False, 0.5)], BEFORE),
    "hybrid as now: KEYWORD_WEIGHT, RRF_K, PER_PAGE": ([(True, 1.0), (False, None)], None),
    "ours: Retriever.search at the defaults (a reranker only if RERANK_MODEL is set)": "search",
}


def lever_figures(mentor, answerable: list[dict]) -> dict:
    """hit@1, hit@5, MRR@5 of each row of LEVERS."""
    from mentor.index.retrieve import KEYWORD_WEIGHT, fuse_pages

    ranks: dict[str, list[dict]] = {name: [] for name in LEVERS}
    for q in answerable:
        by_meaning, by_keywords = mentor.retriever.candidates(q["question"])
        for name, lever in LEVERS.items():
            if lever is None:
                hits = by_meaning[:K]
            elif lever == "search":
                hits = mentor.search(q["question"], K)
            else:
                parts, how = lever
                rankings = [(by_meaning if dense else by_keywords, w or KEYWORD_WEIGHT) for dense, w in parts]
                hits = fuse_pages(rankings, **(how or {}))[:K]
            ranks[name].append({"rank": first_rank([[h.page] for h in hits], set(q["pages"]))})
    return {name: metrics(rows) for name, rows in ranks.items()}


def metrics(results: list[dict]) -> dict:
    return rank_metrics([r["rank"] for r in results], K)


def refusal_figures(questions: list[dict], by_id: dict, settings) -> dict:
    """The mentor's own verdict (Retriever.retrieve) per half: refusal recall
    on the unanswerable questions, and answerable questions refused."""
    figures = {
        "rule": f"refuse when the nearest chunk's cosine, less the share of the question's meaning carried by "
        f"its words found in no chunk, < MIN_SCORE ({settings.min_score})"
        + (f" or the reranker's best score < MIN_RERANK_SCORE ({settings.min_rerank_score})" if settings.min_rerank_score is not None else ""),
        "goal": "recall >= 0.9 with false_refusal_rate <= 0.05",
    }
    for h in HALVES:
        qs = [q for q in questions if half(q["id"]) == h]
        wrong = sum(by_id[q["id"]][0]["refused"] for q in qs if not q.get("unanswerable"))
        right = sum(by_id[q["id"]][0]["refused"] for q in qs if q.get("unanswerable"))
        n_un = sum(bool(q.get("unanswerable")) for q in qs)
        figures[h] = {
            "refused_unanswerable": right,
            "refused_answerable": wrong,
            "recall": round(right / n_un, 3) if n_un else None,
            "false_refusal_rate": round(wrong / (len(qs) - n_un), 3) if len(qs) > n_un else None,
        }
    best = {
        kind: [by_id[q["id"]][0]["best_score"] for q in questions if bool(q.get("unanswerable")) == (kind == "unanswerable")]
        for kind in ("answerable", "unanswerable")
    }
    figures["best_score"] = {kind: summary(scores) for kind, scores in best.items()}
    return figures


def followup_figures(mentor, baseline: Baseline, files: list[Path], dialogues: list[dict], args) -> dict:
    """hit@5 of each way of searching for a follow-up's pages."""
    from mentor.generate.answer import Answerer, recent_turns
    from mentor.generate.llm import LlamaCppModel

    settings = mentor.settings.replace(max_answer_tokens=args.answer_tokens)
    gguf = args.model or tiny_gguf()
    model = LlamaCppModel(gguf, n_ctx=settings.n_ctx, n_gpu_layers=args.gpu_layers)
    answerer = Answerer(mentor.retriever, model, settings)
    rows, rewrite_s = [], []
    for d in dialogues:
        first = answerer.ask(d["first"]).finish()
        history = recent_turns(
            [{"role": "user", "content": d["first"]}, {"role": "assistant", "content": first.text}],
            settings.history_turns,
        )
        with timed() as t:
            rewritten = answerer.standalone(d["second"], history)
        rewrite_s.append(t.seconds)
        queries = {
            "second_alone": d["second"],
            "rewrite": rewritten,
            "concat": f"{d['first']} {d['second']}",
            "standalone": d["standalone"],
        }
        gold = d["pages"]
        row = {"id": d["id"], "rewrite": rewritten}
        row["ours"] = {name: ours_result(mentor, q, gold)["rank"] for name, q in queries.items()}
        row["baseline"] = {
            name: baseline_result(baseline, files, queries[name], gold)["rank"]
            for name in ("second_alone", "concat", "standalone")
        }
        rows.append(row)
        log(f"follow-up {d['id']}: {rewritten!r} -> {row['ours']}")

    def hit5(side: str, name: str) -> float:
        ranks = [r[side][name] for r in rows]
        return round(sum(r is not None and r <= K for r in ranks) / len(ranks), 3)

    return {
        "model": gguf.name,
        "first_answer_tokens": args.answer_tokens,
        "hit@5": {
            "ours": {name: hit5("ours", name) for name in rows[0]["ours"]},
            "baseline": {name: hit5("baseline", name) for name in rows[0]["baseline"]},
        },
        "rewrite_seconds": summary(rewrite_s, digits=2),
        "dialogues": rows,
    }


if __name__ == "__main__":
    sys.exit(main())
