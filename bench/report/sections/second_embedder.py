"""Section 2, the second embedder end to end: what it costs an upload and
what the product finds with it (bench/second_embedder.py)."""

from __future__ import annotations

from ..section import Section

METRICS = ("hit@1", "hit@5", "mrr@5")


def context(r: dict, results: dict) -> dict:
    rows = []
    for name, both in r["corpora"].items():
        shipped, second = both["shipped"], both["second"]
        rows.append(
            {
                "name": name,
                "shipped": shipped,
                "second": second,
                "wall_ratio": second["ingest_wall_s"] / shipped["ingest_wall_s"],
                "cpu_ratio": second["ingest_cpu_s"] / shipped["ingest_cpu_s"],
            }
        )
    return {
        "rows": rows,
        "mean": {v: {k: sum(row[v][k] for row in rows) / len(rows) for k in METRICS} for v in ("shipped", "second")},
        "wall_ratio": sum(row["wall_ratio"] for row in rows) / len(rows),
        "cpu_ratio": sum(row["cpu_ratio"] for row in rows) / len(rows),
    }


SECTION = Section(
    "second_embedder",
    "### A second embedder in the product (SECOND_EMBED_MODEL)",
    "second_embedder.md.j2",
    "second_embedder",
    "python bench/second_embedder.py",
    context=context,
)
