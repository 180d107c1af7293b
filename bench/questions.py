"""Thresholds for student questions: grouping them, and matching verified answers.

Reads ``devset/paraphrases.jsonl``: course questions, each asked six ways
(``questions``, the first its plain wording), questions that sound alike
but ask something else (``near``), and off-course ones (the set ``off``).
Embeds them with MiniLM as the question log does, then:

- **grouping**: clusters them with ``mentor.course.insights.cluster`` at each
  similarity and counts pairs: a pair of wordings of one question in one
  group is right, any other pair in one group is wrong. Chosen: the best
  F1 of pair precision and recall.
- **verified answers**: treats each question's plain wording as a verified
  question and counts the other wordings whose cosine reaches the threshold
  (recall) and the different questions that do (false matches). Chosen:
  the lowest threshold with no false match, plus a margin of 0.02, since a
  wrong match gives a student the instructor's answer to another question
  while a miss only gets them the mentor's own.

Both are chosen on the odd-numbered questions (with half the off-course
ones) and reported on the even-numbered ones too.

    python bench/questions.py            # writes results/questions.json
"""

from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
from common import DEVSET, begin, load_jsonl, log, minilm_folder, write_result

# Verified answers: a fine grid, for the first threshold with no false match.
GRID = [round(0.30 + 0.01 * i, 2) for i in range(61)]  # 0.30 .. 0.90
MARGIN = 0.02
# Grouping: a coarse grid. F1 over some 90 pairs of wordings moves by a few
# pairs between neighbouring steps; a fine grid would pick that noise.
GROUP_GRID = [round(0.30 + 0.05 * i, 2) for i in range(13)]  # 0.30 .. 0.90


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devset", type=Path, default=DEVSET / "paraphrases.jsonl")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/questions.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    from mentor.index.embed import Embedder

    sets = load_jsonl(args.devset)
    embedder = Embedder(str(minilm_folder()), batch_size=64)
    halves = {"tuning": split(sets, 1), "held_out": split(sets, 0)}
    figures = {"embedder": "all-MiniLM-L6-v2", "devset": args.devset.name}
    for name, part in halves.items():
        texts, labels, plain = flatten(part)
        log(f"{name}: {len(texts)} questions, {len(plain)} with paraphrases")
        vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
        figures[name] = {
            "questions": len(texts),
            "grouping": grouping_sweep(vectors, labels),
            "verified": verified_sweep(vectors, labels, plain, texts),
        }
    tuning = figures["tuning"]
    figures["chosen"] = {
        "group_similarity": max(tuning["grouping"], key=lambda r: (r["f1"], r["similarity"]))["similarity"],
        "verified_min_similarity": round(tuning["verified"]["no_false_match_from"] + MARGIN, 2),
    }
    for name in halves:
        figures[name]["at_chosen"] = {
            "grouping": row_at(figures[name]["grouping"], figures["chosen"]["group_similarity"]),
            "verified": row_at(figures[name]["verified"]["sweep"], figures["chosen"]["verified_min_similarity"]),
        }
    log(f"chosen: {figures['chosen']}")
    write_result("questions", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


def split(sets: list[dict], odd: int) -> list[dict]:
    """The course questions with odd (1) or even (0) numbers, and every
    other off-course question."""
    part = [s for s in sets if s["questions"] and int(s["id"][1:]) % 2 == odd]
    off = [s for s in sets if not s["questions"]]
    part += [{**s, "near": s["near"][1 - odd :: 2]} for s in off]
    return part


def flatten(sets: list[dict]) -> tuple[list[str], list[str], dict[str, int]]:
    """Every question, its label (the set's id for its wordings, a label of
    its own for any other), and where each set's plain wording is."""
    texts, labels, plain = [], [], {}
    for s in sets:
        for i, q in enumerate(s["questions"]):
            if i == 0:
                plain[s["id"]] = len(texts)
            texts.append(q)
            labels.append(s["id"])
        for i, q in enumerate(s["near"]):
            texts.append(q)
            labels.append(f"{s['id']}~{i}")
    return texts, labels, plain


def grouping_sweep(vectors: np.ndarray, labels: list[str]) -> list[dict]:
    from mentor.course.insights import cluster

    rows = []
    for similarity in GROUP_GRID:
        group_of = {i: g for g, members in enumerate(cluster(vectors, similarity)) for i in members}
        right = wrong = missed = 0
        for i, j in combinations(range(len(labels)), 2):
            same, together = labels[i] == labels[j], group_of[i] == group_of[j]
            right += same and together
            wrong += together and not same
            missed += same and not together
        precision = right / (right + wrong) if right + wrong else 1.0
        recall = right / (right + missed) if right + missed else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {
                "similarity": similarity,
                "groups": len(set(group_of.values())),
                "pairs_right": right,
                "pairs_wrong": wrong,
                "precision": round(precision, 3),
                "recall": round(recall, 3),
                "f1": round(f1, 3),
            }
        )
    return rows


def verified_sweep(vectors: np.ndarray, labels: list[str], plain: dict[str, int], texts: list[str]) -> dict:
    """Each set's plain wording as a verified question, against everything else."""
    scores = vectors @ vectors.T
    paraphrases, others = [], []
    for label, v in plain.items():
        for i in range(len(labels)):
            if i != v:
                (paraphrases if labels[i] == label else others).append((float(scores[v, i]), texts[i], texts[v]))
    worst = max(others)
    sweep = [
        {
            "similarity": t,
            "recall": round(sum(s >= t for s, _, _ in paraphrases) / len(paraphrases), 3),
            "false_matches": sum(s >= t for s, _, _ in others),
        }
        for t in GRID
    ]
    return {
        "paraphrases": len(paraphrases),
        "different_questions": len(others),
        "closest_different": {"cosine": round(worst[0], 3), "question": worst[1], "verified": worst[2]},
        "no_false_match_from": next(r["similarity"] for r in sweep if r["false_matches"] == 0),
        "sweep": sweep,
    }


def row_at(rows: list[dict], similarity: float) -> dict:
    return next(r for r in rows if r["similarity"] == similarity)


if __name__ == "__main__":
    sys.exit(main())
