"""Section 2: retrieval quality on the Octave dev set, ours against the
baseline; the levers, refusal, chunk sizes and follow-ups
(bench/quality.py, bench/chunking.py)."""

from __future__ import annotations

from ..formatting import fmt
from ..section import Section
from ..verdicts import targets_verdict

KEYS = ("hit@1", "hit@5", "mrr@5")
# How far a returned page may be from a right one to count as a near miss.
NEAR_PAGES = 2
FOLLOWUPS = {
    "second_alone": "second turn alone",
    "rewrite": "Answerer.standalone (tiny-model rewrite + previous question)",
    "concat": "previous question + second turn (no model)",
    "standalone": "hand-written standalone question (upper bound)",
}


def context(r: dict, results: dict) -> dict:
    halves = r["retrieval"].get("halves")
    missed, near = near_misses(r["questions"], r["k"])
    return {
        "keys": KEYS,
        "halves": halves,
        "where": "held-out half" if halves else "all questions",
        "missed": missed,
        "near": near,
        "NEAR_PAGES": NEAR_PAGES,
        "levers": levers(r["levers"]) if r.get("levers") else None,
        "chunking": results.get("chunking"),
        "FOLLOWUPS": FOLLOWUPS,
    }


def near_misses(questions: list[dict], k: int) -> tuple[list[dict], list[dict]]:
    """Our misses, and those of them that returned a page next to a right one."""
    missed = [q for q in questions if q["pages"] and (q["ours"]["rank"] is None or q["ours"]["rank"] > k)]
    near = [q for q in missed if any(abs(p - g) <= NEAR_PAGES for p in q["ours"]["pages"] for g in q["pages"])]
    return missed, near


def levers(levers: dict) -> dict:
    """Before/after of each retrieval lever, measured in the same run, on
    the index without and with section context."""
    with_ = levers["with section context"]
    without = levers.get("without section context")
    rows = [
        [name, *((fmt(without[name][k], 3) for k in KEYS) if without else ()), *(fmt(with_[name][k], 3) for k in KEYS)]
        for name in with_
    ]
    header = ["Retrieval", *((f"{k}, no sections" for k in KEYS) if without else ()), *(f"{k}, with sections" for k in KEYS)]
    verdict = targets_verdict(list(with_.values())[-1], "meets the targets", "below target")
    return {"rows": rows, "header": header, "without": without, "verdict": verdict}


SECTION = Section(
    "quality",
    "## 2. Retrieval quality (Octave dev set)",
    "quality.md.j2",
    "quality",
    "python bench/quality.py",
    context=context,
)
