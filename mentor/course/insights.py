"""What the instructor learns from the questions: how many over time, the
same question asked many ways grouped, what the course does not cover, and
all of it as CSV.

**Groups.** Questions are grouped by the meaning of what was searched (the
vectors the question log keeps, so nothing is embedded again), by
complete-linkage clustering over cosine similarity: two questions share a
group only if *every* two questions of the group are at least
``GROUP_SIMILARITY`` alike. A group shows its most typical question (the one
closest on average to the others), how often it was asked, refused, rated
down, and the pages its answers cited most.

**Not covered.** A question the mentor refused, or answered from weak
sources (its best source under ``WEAK_SCORE``),
points at a gap in the material; a group is *not covered* when at least
half its questions do. Questions answered by a verified answer are covered:
the instructor covered them.

Pure functions, no Gradio: the console renders what they return.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np

from mentor.course.questions import HELPFUL, UNHELPFUL, Asked, CitedPage
from mentor.index.labels import place

# Chosen with MiniLM on bench/devset/paraphrases.jsonl (bench/questions.py):
# course questions asked six ways each, questions that sound alike but ask
# something else, off-course ones. On the odd-numbered half, at the best F1
# of pairs on a 0.05 grid: at 0.55, 88% of the pairs it put in one group
# were wordings of one question, and it joined 72% of those pairs (the
# held-out half: 89% and 73%). 0.50 made more than twice the wrong pairs
# (23 against 9); 0.60 joined 49% of the wordings.
GROUP_SIMILARITY = 0.55
# An answer whose best source scored under this rests on a barely relevant
# page. On the Octave dev set the answered questions' best sources have a
# median of 0.58, and 9 of the 93 fall under 0.46. (It was MIN_SCORE + 0.05
# while MIN_SCORE was 0.41; the refusal now weighs the question's unknown
# words too and lets a question whose every word is in the course through
# from 0.28, which would leave almost nothing weak.)
WEAK_SCORE = 0.46
# Questions grouped at most (the most recent of the period): complete
# linkage holds every pair's distance, 4,000 questions take 64 MB and a
# few seconds; a term of a large class stays under it.
MAX_GROUPED = 4000
TOP_PAGES = 3
# Periods the console offers, in days (None: every question kept).
PERIODS = {"Last 7 days": 7, "Last 30 days": 30, "Everything kept": None}
# Up to this many days, the timeline has a bar a day; beyond, a bar a week.
DAILY_UP_TO = 31


class _Tally:
    """Counts over ``questions``, for a group and for a whole period alike."""

    questions: tuple[Asked, ...]

    @property
    def refused(self) -> int:
        return sum(q.refused for q in self.questions)

    @property
    def helpful(self) -> int:
        return sum(q.rating == HELPFUL for q in self.questions)

    @property
    def unhelpful(self) -> int:
        return sum(q.rating == UNHELPFUL for q in self.questions)


@dataclass(frozen=True)
class Group(_Tally):
    """Questions that ask the same thing, most typical first."""

    questions: tuple[Asked, ...]
    top_pages: tuple[tuple[CitedPage, int], ...]
    uncovered: int

    @property
    def representative(self) -> Asked:
        return self.questions[0]

    @property
    def asked(self) -> int:
        return len(self.questions)

    @property
    def verified(self) -> int:
        """Questions of the group a verified answer answered."""
        return sum(q.verified_id is not None for q in self.questions)

    @property
    def last_asked(self) -> str:
        return max(q.asked_at for q in self.questions)

    @property
    def not_covered(self) -> bool:
        return 2 * self.uncovered >= self.asked


@dataclass(frozen=True)
class Insights(_Tally):
    """What students asked in a period, summed up for the console."""

    questions: tuple[Asked, ...]
    groups: tuple[Group, ...]
    timeline: tuple[tuple[date, int, int], ...]  # (first day of the bar, asked, refused)
    grouped_from: int  # questions grouped (the most recent MAX_GROUPED)

    @property
    def not_covered(self) -> list[Group]:
        return [g for g in self.groups if g.not_covered]


def since(days: int | None, at: datetime | None = None) -> str | None:
    """The ISO time ``days`` ago (None for everything), for ``QuestionStore.asked``."""
    if days is None:
        return None
    return ((at or datetime.now(timezone.utc)) - timedelta(days=days)).isoformat(timespec="seconds")


def summarize(
    asked: Sequence[Asked],
    vectors: np.ndarray,
    days: int | None = None,
    today: date | None = None,
) -> Insights:
    """The insights of ``asked`` (oldest first) with their ``vectors``.
    ``days`` is the period's length (None: since the first question), which
    sets the timeline's bars."""
    recent = slice(max(0, len(asked) - MAX_GROUPED), len(asked))
    grouped, grouped_vectors = list(asked[recent]), vectors[recent]
    groups = [_group(grouped, grouped_vectors, members) for members in cluster(grouped_vectors)]
    groups.sort(key=lambda g: (g.asked, g.last_asked), reverse=True)  # most asked, then most recent
    return Insights(tuple(asked), tuple(groups), timeline(asked, days, today), len(grouped))


def cluster(vectors: np.ndarray, similarity: float = GROUP_SIMILARITY) -> list[list[int]]:
    """Rows of ``vectors`` (unit length) grouped by complete linkage: in each
    group every two rows have a cosine of at least ``similarity``. Groups
    and their members keep the rows' order."""
    n = len(vectors)
    if n < 2:
        return [[i] for i in range(n)]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0).astype(np.float64)
    np.fill_diagonal(distances, 0.0)
    labels = fcluster(linkage(squareform(distances, checks=False), method="complete"), 1.0 - similarity, "distance")
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return list(groups.values())


def _group(asked: Sequence[Asked], vectors: np.ndarray, members: list[int]) -> Group:
    """A group, its most typical question first (the highest mean cosine to
    the others; the earliest on a tie)."""
    own = vectors[members]
    alike = own @ own.T
    np.fill_diagonal(alike, 0.0)
    typical = alike.sum(axis=1) / max(len(members) - 1, 1)
    # Rounded: two wordings alike to 4 decimals tie, and the earlier wins.
    order = sorted(range(len(members)), key=lambda i: (-round(float(typical[i]), 4), i))
    questions = tuple(asked[members[i]] for i in order)
    pages = Counter(page for q in questions for page in q.cited)
    uncovered = sum(_uncovered(q) for q in questions)
    return Group(questions, tuple(pages.most_common(TOP_PAGES)), uncovered)


def _uncovered(question: Asked) -> bool:
    """Refused, or answered from a barely relevant source."""
    if question.verified_id is not None:
        return False
    weak = question.best_score is not None and question.best_score < WEAK_SCORE
    return question.refused or weak


def timeline(asked: Sequence[Asked], days: int | None, today: date | None = None) -> tuple[tuple[date, int, int], ...]:
    """Questions asked and refused per day (per week, Monday first, when the
    period is longer than a month), every bar of the period present."""
    today = today or datetime.now(timezone.utc).date()
    first = today - timedelta(days=days - 1) if days else min((_day(q) for q in asked), default=today)
    weekly = (today - first).days >= DAILY_UP_TO
    step = timedelta(days=7 if weekly else 1)
    start = first - timedelta(days=first.weekday()) if weekly else first
    bars: dict[date, list[int]] = {}
    day = start
    while day <= today:
        bars[day] = [0, 0]
        day += step
    for q in asked:
        d = _day(q)
        key = d - timedelta(days=d.weekday()) if weekly else d
        if key in bars:
            bars[key][0] += 1
            bars[key][1] += q.refused
    return tuple((d, n, refused) for d, (n, refused) in bars.items())


def _day(question: Asked) -> date:
    return datetime.fromisoformat(question.asked_at).astimezone(timezone.utc).date()


# --- CSV ---------------------------------------------------------------------------------


def questions_csv(insights: Insights) -> str:
    """One row per question, with its group: everything the console shows."""
    number = {q.id: (n, g) for n, g in enumerate(insights.groups, start=1) for q in g.questions}
    rows = [
        ["asked_at", "question", "searched_as", "group", "group_question", "refused", "best_score", "rating",
         "verified_answer", "cited_pages"],
    ]  # fmt: skip
    for q in insights.questions:
        n, group = number.get(q.id, ("", None))
        rows.append(
            [
                q.asked_at,
                q.question,
                q.query if q.query != q.question else "",
                n,
                group.representative.question if group else "",
                "yes" if q.refused else "no",
                "" if q.best_score is None else f"{q.best_score:.3f}",
                q.rating or "",
                "yes" if q.verified_id is not None else "no",
                "; ".join(page_name(p) for p in q.cited),
            ]
        )
    return _csv(rows)


def groups_csv(insights: Insights) -> str:
    """One row per group, most asked first."""
    rows = [
        ["group", "question", "times_asked", "refused", "weak_or_refused", "thumbs_down", "thumbs_up",
         "verified_answers", "not_covered", "pages_cited_most", "last_asked", "other_wordings"],
    ]  # fmt: skip
    for n, g in enumerate(insights.groups, start=1):
        rows.append(
            [
                n,
                g.representative.question,
                g.asked,
                g.refused,
                g.uncovered,
                g.unhelpful,
                g.helpful,
                g.verified,
                "yes" if g.not_covered else "no",
                "; ".join(f"{page_name(p)} ({count}x)" for p, count in g.top_pages),
                g.last_asked,
                " | ".join(q.question for q in g.questions[1:6]),
            ]
        )
    return _csv(rows)


def page_name(page: CitedPage) -> str:
    """ "handbook.pdf p. 4", "slides.pptx slide 12": how the chat cites it, shortened."""
    return f"{page.file} {place(page.page_label).replace('page ', 'p. ', 1)}"


def _csv(rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return out.getvalue()


def _cell(value) -> str:
    """A cell a spreadsheet shows as text: a question starting with = + - or
    @ would otherwise run as a formula (CSV injection)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
