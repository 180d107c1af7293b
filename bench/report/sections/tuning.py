"""Section 2, retrieval tuning across corpora: every lever chosen leaving
one corpus out and reported on the corpus left out (bench/tuning.py)."""

from __future__ import annotations

import statistics

from ..formatting import fmt
from ..section import Section

LEVERS = {
    "keyword_weight": "Keyword weight (0: meaning alone)",
    "per_page": "A page's score from its chunks (sum, best, floor, decay)",
    "k": "RRF k",
    "reranker": "Reranker: pages reranked × first-stage weight",
}
INDEX_TITLE = "How the index is built (chunk size in word pieces, the section trail indexed with each chunk), at the shipped first stage"
SHIPPED_EMBEDDER = "all-MiniLM-L6-v2, shipped"
RULES = ("dense", "dense+gap", "dense+unknown", "dense−unknown meaning", "dense−unknown meaning, uncapped", "rerank", "dense+rerank")
MIN_RECALL, MAX_FALSE_REFUSALS, MIN_GAIN = 0.875, 0.1, 0.02  # bench/tuning.py


def setting_name(s: dict) -> str:
    keywords = f"keywords at {fmt(s['keyword_weight'])}" if s["keyword_weight"] else "meaning alone"
    page = {"sum": "a page's chunks summed", "best": "a page at its best chunk"}.get(s["per_page"], f"a page by {s['per_page']}")
    rerank = f"reranker over {s['rerank_pages']} pages, first stage at {fmt(s['first_stage_weight'], 1)}"
    return f"{keywords}, RRF k {s['k']}, {page}, " + (rerank if s["rerank_pages"] else "no reranker")


def two(m: dict | None) -> str:
    """hit@5 / MRR@5."""
    return "—" if not m else f"{fmt(m['hit@5'], 3)} / {fmt(m['mrr@5'], 3)}"


def gain(chosen: dict, before: dict) -> str:
    return f"{chosen['mrr@5'] - before['mrr@5']:+.3f}"


def context(r: dict, results: dict) -> dict:
    names = list(r["corpora"])
    return {
        "names": names,
        "setting_name": setting_name,
        "loo_table": loo_rows(r, results),
        "has_baseline": octave_baseline(r, results) is not None and not r.get("baseline"),
        "has_starter": bool(r.get("baseline")),
        "starter_unread": [f for m in (r.get("baseline") or {}).values() for f in m.get("unread", [])],
        "loo_gpu_differs": r.get("leave_one_out_gpu") != r["leave_one_out"],
        "levers": [lever_tables(key, title, r["levers"][key], names) for key, title in LEVERS.items() if key in r["levers"]]
        + ([lever_tables("index", INDEX_TITLE, r["index"], names)] if r.get("index") else []),
        "embedders": embedder_rows(r) if r.get("embedders") else None,
        "min_gain": MIN_GAIN,
        "refusal": refusal_rows(r["refusal"], names),
        "refusal_goal": {rule: r["refusal"]["rules"][rule]["goal_met_left_out"] for rule in RULES if rule in r["refusal"]["rules"]},
        "before_goal": [n for n in names if goal_met(r["refusal"]["before"]["per_corpus"][n])],
        "cost": cost_rows(r["reranker"]),
        "chosen": chosen_rows(r["chosen"]),
    }


def loo_rows(r: dict, results: dict) -> list[list[str]]:
    """Per corpus left out: before, and as chosen on the other corpora."""
    loo, starter = r["leave_one_out"], r.get("baseline") or {}
    rows = [
        [
            f"{row['left_out']} ({row['before']['n']})",
            two(starter.get(row["left_out"])),
            two(row["before"]),
            setting_name(row["chosen"]),
            two(row["chosen_figures"]),
            gain(row["chosen_figures"], row["before"]),
        ]
        for row in loo["rows"]
    ]
    mean = loo["mean"]
    starter_mean = {k: statistics.fmean(m[k] for m in starter.values()) for k in ("hit@5", "mrr@5")} if starter else None
    rows.append(["**Mean, each corpus the same**", two(starter_mean), two(mean["before"]), "—", two(mean["chosen_figures"]),
                 gain(mean["chosen_figures"], mean["before"])])
    base = octave_baseline(r, results)
    if base and not starter:
        rows.append(["octave: the LlamaIndex starter (quality.json)", two(base), "—", "—", "—", "—"])
    return rows


def octave_baseline(r: dict, results: dict) -> dict | None:
    """The LlamaIndex starter's figures, from quality.json, which measures
    them on the Octave dev set only: there when it is the same dev set."""
    q = results.get("quality") or {}
    octave = r["corpora"].get("octave")
    if not octave or (q.get("devset") or {}).get("file") != octave["devset"]:
        return None
    return (q.get("retrieval") or {}).get("baseline")


def lever_tables(key: str, title: str, lever: dict, names: list[str]) -> dict:
    """One lever, the others at the shipped values: every value on every
    corpus; then the value chosen on the other corpora, on the one left out."""
    per_corpus = [
        [f"**{fmt(row['value'])}**" if row["value"] == lever["before"] else fmt(row["value"]),
         *(two(row[n]) for n in names), two(row["mean"])]
        for row in lever["per_corpus"]
    ]
    loo = lever["leave_one_out"]
    left_out = [
        [row["left_out"], fmt(row["value"]), two(row["before"]), two(row["chosen_figures"]),
         gain(row["chosen_figures"], row["before"])]
        for row in loo["rows"]
    ]
    return {"key": key, "title": title, "before": fmt(lever["before"]), "per_corpus": per_corpus,
            "left_out": left_out, "verdict": loo["verdict"]}


def embedder_rows(r: dict) -> dict:
    """Each embedder's figures on each corpus left out (its own first stage
    and refusal chosen on the others), beside the shipped embedder's."""
    others = r["embedders"]
    labels = [SHIPPED_EMBEDDER, *others]
    loo = [r["leave_one_out"], *(e["leave_one_out"] for e in others.values())]
    refusals = [r["refusal"]["rules"], *(e["refusal"] for e in others.values())]
    rows = [[row["left_out"], *(two(fig["rows"][i]["chosen_figures"]) for fig in loo)] for i, row in enumerate(loo[0]["rows"])]
    rows.append(["**Mean**", *(two(fig["mean"]["chosen_figures"]) for fig in loo)])
    shipped = r["refusal"]["ships"]
    rows.append([f"Refused left out ({shipped}): off-course · answerable",
                 *(total_cell(rules[shipped]["leave_one_out"]) for rules in refusals)])
    verdicts = {label: e["against_the_product_embedder"]["verdict"] for label, e in others.items()}
    return {"labels": labels, "rows": rows, "verdicts": verdicts}


def goal_met(x: dict) -> bool:
    return (x["recall"] or 0) >= MIN_RECALL and (x["false_refusal_rate"] or 0) <= MAX_FALSE_REFUSALS


def refusal_cell(x: dict) -> str:
    cell = f"{x['refused_off_course']} · {x['refused_answerable']}"
    return f"{cell} ✓" if goal_met(x) else cell


def refusal_rows(ref: dict, names: list[str]) -> list[list[str]]:
    """Per corpus: off-course refused · answerable refused, before and by
    each rule with its thresholds chosen on the other corpora."""
    rules = {rule: {row["left_out"]: row for row in ref["rules"][rule]["leave_one_out"]} for rule in RULES if rule in ref["rules"]}
    rows = []
    for n in names:
        cells = []
        for by in rules.values():
            row = by[n]
            th = ", ".join(f"{k} {fmt(v)}" for k, v in row["thresholds"].items())
            cells.append(f"{refusal_cell(row)} ({th})")
        rows.append([n, refusal_cell(ref["before"]["per_corpus"][n]), *cells])
    before = [ref["before"]["per_corpus"][n] for n in names]
    rows.append(["**All corpora**", total_cell(before), *(total_cell([by[n] for n in names]) for by in rules.values())])
    return rows


def total_cell(results: list[dict]) -> str:
    """Off-course refused · answerable refused, summed over corpora."""
    def add(key: str) -> str:
        pairs = [tuple(int(x) for x in r[key].split(" of ")) for r in results]
        return f"{sum(a for a, _ in pairs)} of {sum(b for _, b in pairs)}"

    return f"{add('refused_off_course')} · {add('refused_answerable')}"


def cost_rows(rr: dict) -> list[list[str]]:
    """The reranker's cost per question by pages, against the CPU budget."""
    budget = rr.get("reranker_budget_ms")
    rows = []
    for pages, c in (rr.get("cost_by_pages") or {}).items():
        cpu, wall = c["cpu_ms"], c["wall_ms"]
        fits = "—" if budget is None or cpu.get("p95") is None else ("yes" if cpu["p95"] <= budget else "**no**")
        rows.append([pages, cpu.get("n", 0), f"{fmt(cpu.get('p50'), 0)} / {fmt(cpu.get('p95'), 0)}",
                     f"{fmt(wall.get('p50'), 0)} / {fmt(wall.get('p95'), 0)}", fits])
    return rows


def chosen_rows(ch: dict) -> list[list[str]]:
    keys = ("keyword_weight", "k", "per_page", "rerank_pages", "first_stage_weight")
    cols = ("cpu", "gpu", "ships", "ships_on_gpu")
    return [[k, *(fmt(ch[c][k]) for c in cols)] for k in keys]


SECTION = Section(
    "tuning",
    "### Retrieval tuning across corpora (leave one corpus out)",
    "tuning.md.j2",
    "tuning",
    "python bench/tuning.py",
    context=context,
)
