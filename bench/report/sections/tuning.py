"""Section 2, tuning that holds out: each lever chosen on the tuning half,
reported on the held-out half (bench/tuning.py)."""

from __future__ import annotations

from ..formatting import fmt, pct
from ..section import Section
from ..verdicts import refusal_verdict, targets_verdict

KEYS = ("hit@1", "hit@5", "mrr@5")


def config_name(c: dict) -> str:
    keywords = f"keywords at {c['keyword_weight']}" if c["keyword_weight"] else "dense alone"
    return f"{keywords}, RRF k {c['k']}, a page's chunks {'summed' if c['per_page'] == 'sum' else 'at the best one'}"


def rerank_name(r: dict) -> str:
    weight = "the reranker's order" if not r["first_stage_weight"] else f"first-stage rank fused at {r['first_stage_weight']}"
    return f"{r['pages']} pages, {r['tokens']} tokens, {weight}; over {config_name(r['first_stage'])}"


def context(r: dict, results: dict) -> dict:
    f, rr = r["first_stage"], r["reranker"]
    return {
        "keys": KEYS,
        "f": f,
        "rr": rr,
        "config_name": config_name,
        "levers": lever_rows(r, results),
        "targets": targets_verdict((rr["chosen"].get("cpu") or f["chosen"])["held-out"], "met", "not met"),
        "held_out_header": [f"{k}, held-out" for k in KEYS] + ["mrr@5, tuning"],
        "sweep": [[fmt(g["config"]["keyword_weight"], 2), *held_out(g)] for g in f["keyword_weight_sweep"]],
        "qdrant": [[g["config"], *held_out(g)] for g in f["qdrant_fusion"]],
        **reranker_grid(rr),
        "refusal": refusal_rows(r["refusal"]),
        "store_change": store_change_rows(r.get("store_change") or {}),
    }


def held_out(figures: dict) -> list[str]:
    """hit@1, hit@5 and mrr@5 on the held-out half, then mrr@5 on the tuning half."""
    return [*(fmt(figures["held-out"][k], 3) for k in KEYS), fmt(figures["tune"]["mrr@5"], 3)]


def lever_rows(r: dict, results: dict) -> list[list[str]]:
    """The main table: the baseline, the first stage before and as chosen,
    Qdrant's fusion, bge-small and the reranker, on the held-out half."""
    f, e, rr = r["first_stage"], r["embedder"], r["reranker"]
    base = (results.get("quality") or {}).get("retrieval", {}).get("halves", {}).get("held-out", {}).get("baseline")
    qbest = f["fusion_in_qdrant_vs_ours"]["best of Qdrant's (on the tuning half)"]
    rows = [["Baseline: the LlamaIndex starter (quality.json)", *(fmt(base[k], 3) for k in KEYS), "—", "—"]] if base else []
    rows += [
        [f"Before: {config_name(f['today']['config'])}", *held_out(f["today"]), "—"],
        ["Dense alone (MiniLM), one hit per page", *held_out(f["dense_alone"]), "—"],
        [f"First stage as chosen: {config_name(f['chosen']['config'])}", *held_out(f["chosen"]), "—"],
        [f"Fused in Qdrant (Prefetch + Fusion.Rrf, {qbest['config']})", *held_out(qbest), "—"],
    ]
    for name, figures in (e or {}).get("rows", {}).items():
        if name.startswith("bge"):
            cost = f"query {fmt(e['bge_query_ms'].get('p50'), 1)} ms p50"
            rows.append([name.replace("fused as chosen", "fused as the first stage"), *held_out(figures), cost])
    for device in ("cpu", "gpu"):
        c = rr["best"].get(device)
        if c:
            cpu_ms = rr["cost"][str(c["tokens"])][str(c["pages"])]["cpu_ms"]["p50"]
            cost = f"{fmt(cpu_ms, 0)} / {fmt(c['cost_ms_p95'], 0)} ms p50 / p95 (CPU)"
            verdict = "on by default" if rr["chosen"].get(device) else "off by default"
            name = f"+ reranker, best for the {device.upper()} on the tuning half ({verdict}): {rerank_name(c)}"
            rows.append([name, *held_out(c), cost])
    return rows


def reranker_grid(rr: dict) -> dict:
    """Held-out mrr@5 of the reranker by pages, pair length and fusion
    weight, over the first stage its best setting was chosen on."""
    over = (rr["best"].get("cpu") or rr["best"]["gpu"])["first_stage"]
    grid = {(g["pages"], g["tokens"], g["first_stage_weight"]): g for g in rr["grid"] if g["first_stage"] == over}
    weights = sorted({g["first_stage_weight"] for g in rr["grid"]})
    rows = []
    for t in sorted({g["tokens"] for g in rr["grid"]}):
        for n in sorted({g["pages"] for g in rr["grid"]}):
            cost = rr["cost"][str(t)][str(n)]
            rows.append(
                [
                    f"{n} pages × {t} tokens",
                    *(fmt(grid[(n, t, w)]["held-out"]["mrr@5"], 3) for w in weights),
                    f"{fmt(cost['cpu_ms']['p50'], 0)} / {fmt(cost['cpu_ms']['p95'], 0)}",
                    f"{fmt(cost['wall_ms']['p50'], 0)} / {fmt(cost['wall_ms']['p95'], 0)}",
                ]
            )
    return {"rerank_over": over, "rerank_header": [f"w = {w}" for w in weights], "rerank_rows": rows}


def refusal_rows(ref: dict) -> list[list[str]]:
    rows = []
    for name, rule in ref["rules"].items():
        th = ", ".join(f"{'MIN_SCORE' if k == 'dense' else 'MIN_RERANK_SCORE'} {v}" for k, v in rule["thresholds"].items())
        h, t = rule["held-out"], rule["tune"]
        rows.append(
            [
                name + (" (chosen)" if name == ref["chosen"] else ""),
                th,
                f"{fmt(t['recall'], 3)} / {pct(t['false_refusal_rate'])}",
                f"{fmt(h['recall'], 3)} / {pct(h['false_refusal_rate'])}",
                refusal_verdict(h),
            ]
        )
    return rows


def store_change_rows(sc: dict) -> list[list[str]]:
    """Before and after the move from local mode to Qdrant Edge."""
    if not sc.get("local_mode"):
        return []
    lm, ed = sc["local_mode"], sc["edge"]
    rows = [[k, fmt(lm[k], 3), fmt(ed[k], 3)] for k in ("hit@1", "hit@5", "mrr@5", "refusal_recall")]
    return rows + [["false refusals", pct(lm["false_refusal_rate"]), pct(ed["false_refusal_rate"])]]


SECTION = Section(
    "tuning",
    "### Retrieval tuning that holds out",
    "tuning.md.j2",
    "tuning",
    "python bench/tuning.py",
    context=context,
)
