"""Section 3, retrieval latency: the store's part of a search, the whole
search, opening and memory, in local mode and on Qdrant Edge
(bench/latency.py)."""

from __future__ import annotations

from ..formatting import fmt, ms
from ..section import Section
from ..verdicts import store_verdict, whole_verdict

ENGINES = {
    "local": "local mode",
    "edge_app": "Edge, as the app leaves it",
    "edge_optimized": "Edge, optimized",
}


def size_label(key: str, s: dict) -> str:
    return f"{key}: {s['chunks']:,} chunks"


def engines(r: dict):
    """Each index size and engine state: (size key, size, state, engine)."""
    for key, s in r["sizes"].items():
        for state, e in s["engines"].items():
            yield key, s, state, e


def context(r: dict, results: dict) -> dict:
    return {"store_rows": store_rows(r), "whole_rows": whole_rows(r), "open_rows": open_rows(r)}


def store_rows(r: dict) -> list[list[str]]:
    rows = []
    for key, s, state, e in engines(r):
        st = e["store_ms"]
        label = size_label(key, s)
        verdict = store_verdict(key, state, s)
        rows.append([label, ENGINES[state], ms(st["dense"], 3), ms(st["keywords"], 3), ms(st["search"], 3), verdict])
    return rows


def whole_rows(r: dict) -> list[list[str]]:
    """``Mentor.search`` split into its parts; local mode, which serves no
    search any more, has MiniLM alone."""
    rows = []
    for key, s, state, e in engines(r):
        w = e.get("whole")
        if w:
            rows.append(
                [
                    size_label(key, s),
                    ENGINES[state],
                    ms(w["search_ms"], 1),
                    embedding(w),
                    *(ms(w[part], 1) for part in ("without_embedding_ms", "store_ms", "rest_ms")),
                    ms(w["embed_alone_ms"], 1),
                    fmt(w["gc"]["per_call_ms"], 2),
                    whole_verdict(key, w),
                ]
            )
        elif e.get("embed_alone_ms"):
            alone = e["embed_alone_ms"]
            rows.append([size_label(key, s), ENGINES[state], *["—"] * 5, ms(alone, 1), fmt(alone["gc"]["per_call_ms"], 2), ""])
    return rows


def embedding(w: dict) -> str:
    """The embedding's part, with how many searches embedded twice (a
    question with words found nowhere in the course, again without them)."""
    shown = ms(w["embed_ms"], 1)
    if "embedded_twice" in w:  # measured since the refusal weighs unknown words
        shown += f" ({w['embedded_twice']:.0%} twice)"
    return shown


def open_rows(r: dict) -> list[list[str]]:
    rows = []
    for key, s, state, e in engines(r):
        rss = e["rss_mib"]
        rows.append(
            [
                size_label(key, s),
                ENGINES[state],
                fmt(e["open_s"], 2, " s"),
                fmt(e["first_query_ms"], 1, " ms"),
                f"{fmt(rss['after_searches'], 0)} (+{fmt(rss['after_searches'] - rss['before_open'], 0)})",
                fmt(s["disk_mib"][state], 0),
                fmt(s["optimize"]["seconds"], 1, " s") if state == "edge_optimized" else "—",
            ]
        )
    return rows


SECTION = Section(
    "latency",
    "## 3. Latency\n\n### Retrieval",
    "latency.md.j2",
    "latency",
    "python bench/latency.py",
    context=context,
)
