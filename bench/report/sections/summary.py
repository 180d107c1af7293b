"""The summary: the headline figure of every results file, ours against
the baseline, with its verdict."""

from __future__ import annotations

from ..formatting import burst_line, fmt, ms, p50_p95, pct, ratio, x, x_small
from ..section import Section
from ..verdicts import (
    STORE_TARGET_SIZE,
    WHOLE_TARGET_SIZE,
    any_gpu,
    bad,
    burst_verdict,
    idle_verdict,
    ingest_verdict,
    load_verdict,
    refusal_verdict,
    reingest_verdict,
    store_verdict,
    streams_top,
    streams_verdict,
    whole_verdict,
    worse_if,
)
from .latency import ENGINES


def context(r: None, results: dict) -> dict:
    rows = ingest_rows(results)
    for name, make in (
        ("quality", quality_rows),
        ("tuning", tuning_rows),
        ("latency", latency_rows),
        ("generate", generate_rows),
    ):
        if results.get(name):
            rows += make(results[name])
    c = results.get("coldstart")
    if c:
        rows.append(["Cold start to /healthz ready (p50)", fmt(c["ready_s"]["p50"], 1, " s"), "—", "—", ""])
    for name, make in (("load", load_rows), ("ocr", ocr_rows)):
        if results.get(name):
            rows += make(results[name])
    rows.append(["GPU", "not measured: no GPU in this run" if not any_gpu(results) else "see below", "—", "—", ""])
    return {"rows": rows}


def ingest_rows(results: dict) -> list[list[str]]:
    rows = []
    for corpus in ("r-manuals", "refman"):
        r = results.get(f"ingest-{corpus}")
        if r:
            o, b = r["ours"], r["baseline"]
            wall = [fmt(o["wall_s"], 1, " s"), fmt(b["wall_s"], 1, " s"), x(ratio(o["wall_s"], b["wall_s"]))]
            again = [fmt(o["reingest_s"], 3, " s"), fmt(b.get("reingest_s"), 1, " s"), x(ratio(o["reingest_s"], b.get("reingest_s")))]
            rows.append([f"Ingest {corpus} ({r['corpus']['pages']:,} pages), wall", *wall, ingest_verdict(r)])
            rows.append([f"Re-ingest {corpus}, same files", *again, reingest_verdict(r)])
    return rows


# The retrieval issue's goal on a course nobody tuned on.
GOAL_HIT5, GOAL_MRR5, GOAL_RECALL = 0.90, 0.68, 0.875


def tuning_rows(t: dict) -> list[list[str]]:
    """Retrieval on every dev-set corpus, each left out of the choice of the
    settings, against the LlamaIndex starter on the same corpora."""
    chosen, starter = t["leave_one_out"]["mean"]["chosen_figures"], list((t.get("baseline") or {}).values())
    n = len(t["leave_one_out"]["rows"])
    rows = []
    for key, goal in (("hit@5", GOAL_HIT5), ("mrr@5", GOAL_MRR5)):
        base = sum(m[key] for m in starter) / len(starter) if starter else None
        verdict = "meets the goal" if chosen[key] >= goal else bad(f"under the goal of {fmt(goal, 2)}")
        rows.append([f"Retrieval {key}, {n} corpora each left out (mean)", fmt(chosen[key], 3), fmt(base, 3), x(ratio(chosen[key], base)), verdict])
    refusal = t["refusal"]["rules"][t["refusal"]["ships"]]["leave_one_out"]
    met = sum(r["recall"] >= GOAL_RECALL for r in refusal)
    rows.append(
        [
            f"Off-course questions refused, {n} corpora each left out",
            " · ".join(f"{r['left_out']} {r['refused_off_course']}" for r in refusal),
            "no refusal",
            "—",
            "meets the goal" if met == len(refusal) else bad(f"7 of 8 met on {met} of {len(refusal)} corpora"),
        ]
    )
    return rows


def quality_rows(q: dict) -> list[list[str]]:
    halves = q["retrieval"].get("halves", {}).get("held-out")
    o, b = (halves["ours"], halves["baseline"]) if halves else (q["retrieval"]["ours"], q["retrieval"]["baseline"])
    where = "held-out half" if halves else "all questions"
    rows = [
        [f"Octave dev set {key} ({where})", fmt(o[key], 3), fmt(b[key], 3), x(ratio(o[key], b[key])), worse_if(o[key] < b[key])]
        for key in ("hit@1", "hit@5", "mrr@5")
    ]
    a = q["refusal"].get("held-out") or q["refusal"].get("at_min_score")
    refusal = f"{fmt(a['recall'], 2)} / {pct(a['false_refusal_rate'])}"
    return rows + [[f"Refusal recall / false refusals ({where})", refusal, "no refusal", "—", refusal_verdict(a)]]


def latency_rows(lat: dict) -> list[list[str]]:
    """The issue's targets, and what 100k chunks cost in each engine; the
    baseline column holds qdrant-client's local mode, the starter's store."""
    rows = []
    big, mid = lat["sizes"].get(STORE_TARGET_SIZE), lat["sizes"].get(WHOLE_TARGET_SIZE)
    if big:
        local = big["engines"]["local"]["store_ms"]["search"]
        for state in ("edge_optimized", "edge_app"):
            e = big["engines"][state]["store_ms"]["search"]
            name = f"Store's part of a search p50 / p95, {big['chunks']:,} chunks, {ENGINES[state]} (baseline: local mode)"
            rows.append([name, ms(e) + " ms", ms(local) + " ms", x_small(e["p50"], local["p50"]), store_verdict(STORE_TARGET_SIZE, state, big)])
    if mid:
        for state in ("edge_optimized", "edge_app"):
            w = mid["engines"][state]["whole"]
            name = f"Whole search without the question's embedding p50 / p95, {mid['chunks']:,} chunks, {ENGINES[state]}"
            figure = f"{ms(w['without_embedding_ms'], 1)} ms (+ embedding {fmt(w['embed_ms']['p50'], 1)} ms p50)"
            rows.append([name, figure, "—", "—", whole_verdict(WHOLE_TARGET_SIZE, w)])
    if big:
        rows += big_index_rows(big)
    return rows


def big_index_rows(big: dict) -> list[list[str]]:
    """Opening, memory and optimizing the largest index, Edge against local mode."""
    e, local, n = big["engines"]["edge_optimized"], big["engines"]["local"], f"{big['chunks']:,} chunks"
    rss, local_rss = e["rss_mib"]["after_searches"], local["rss_mib"]["after_searches"]
    return [
        [
            f"Opening the index + first query, {n}, fresh process (baseline: local mode)",
            f"{fmt(e['open_s'], 2)} s + {fmt(e['first_query_ms'], 1)} ms",
            f"{fmt(local['open_s'], 1)} s + {fmt(local['first_query_ms'], 1)} ms",
            x_small(e["open_s"], local["open_s"]),
            "",
        ],
        [
            f"Memory (RSS) of a process holding the index, {n} (baseline: local mode)",
            fmt(rss, 0, " MiB"),
            fmt(local_rss, 0, " MiB"),
            x_small(rss, local_rss),
            "",
        ],
        [
            f"Optimize (HNSW), {n}: the command line only, the process stands still",
            fmt(big["optimize"]["seconds"], 1, " s"),
            "—",
            "—",
            "",
        ],
    ]


def generate_rows(g: dict) -> list[list[str]]:
    rows = []
    top = streams_top(g) if g.get("streams") else None
    if top:
        count, row = top
        bt, raw = row["batched"], row["raw_llama_cpp"]
        rows.append(
            [
                f"Decode tokens/s, {count} streams at once vs one (tiny model, CPU)",
                f"{fmt(bt['decode_tokens_per_s'], 1)} ({x(bt['vs_one_stream'])})",
                f"raw llama.cpp: {fmt(raw['decode_tokens_per_s'], 1)} ({x(raw['vs_one_stream'])})",
                x(ratio(bt["decode_tokens_per_s"], raw["decode_tokens_per_s"])),
                streams_verdict(g),
            ]
        )
    if g.get("ours"):
        o, b, ratios = g["ours"], g["baseline"], g["ratios"]
        ttft, tps = ratios["ttft_p50"], ratios["tokens_per_s_p50"]
        ttft_p50 = [fmt(o["ttft_s"]["p50"], 2, " s"), fmt(b["ttft_s"]["p50"], 2, " s"), x(ttft)]
        tps_p50 = [fmt(o["tokens_per_s"]["p50"], 1), fmt(b["tokens_per_s"]["p50"], 1), x(tps)]
        rows += [
            ["Time to first token p50 (tiny model, CPU)", *ttft_p50, worse_if(ttft and ttft > 1.1)],
            ["Tokens/s p50 (tiny model, CPU)", *tps_p50, worse_if(tps and tps < 0.9)],
        ]
    return rows


def load_rows(ld: dict) -> list[list[str]]:
    students, alone, one = ld["students"], ld["crowd_without_ingestion"], ld.get("crowd_one_slot")
    rows = [[f"{students} students at once during ingestion: completed / errors", f"{ld['completed']} / {ld['errors']}", "—", "—", load_verdict(ld)]]
    if one:
        rows.append(
            [
                f"{students} students at once: wall, first token p50 / p95 (ours: {ld['n_parallel']} slots; baseline column: one slot)",
                f"{fmt(alone['wall_s'], 1, ' s')}; {p50_p95(alone['ttft_s'])}",
                f"{fmt(one['wall_s'], 1, ' s')}; {p50_p95(one['ttft_s'])}",
                x(ratio(alone["wall_s"], one["wall_s"])) + " (wall)",
                worse_if(alone["wall_s"] > one["wall_s"] * 1.1),
            ]
        )
    rows.append(
        [
            f"{students} students at once, no ingestion: wall time vs students × one answer",
            fmt(alone["wall_s"], 1, " s") + f" vs {fmt(ld['serial_s'], 1, ' s')}",
            "—",
            x(alone["wall_vs_serial"]) + " (wall ÷ serial)",
            idle_verdict(alone),
        ]
    )
    burst = ld.get("api_burst")
    if burst:
        answered = f"{burst_line(burst)} / {fmt(burst['healthz_s'].get('p95'), 2, ' s')}"
        name = f"{burst['requests']} POST /api/chat at once: answered / refused at once / /healthz p95"
        rows.append([name, answered, "the server froze (DESIGN.md)", "—", burst_verdict(burst)])
    return rows


def ocr_rows(o: dict) -> list[list[str]]:
    pages = fmt(o["pages_per_s"], 2) + f" ({fmt(o['seconds_per_page'], 1, ' s')} a page)"
    return [[f"OCR of scanned pages ({o['engine']}, {o['threads']} thread): pages/s", pages, "no text from a scan", "—", ""]]


SECTION = Section("summary", "## Summary", "summary.md.j2", context=context)
