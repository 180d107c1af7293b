"""What the console's Insights, Verified answers and Questions for you tabs
show, as pure functions: escaped HTML from the insights and the question
store. Questions, answers, names and file names all come from people or
documents, so every one is escaped here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from mentor.course.insights import Group, Insights, page_name
from mentor.course.questions import Request, Verified
from mentor.index.store import Hit
from mentor.web.render import snippet, when

# Groups shown in the console (the CSV has them all).
SHOWN_GROUPS = 30
BAR_PX = 72


def summary_html(insights: Insights, open_requests: int, period: str) -> str:
    """The period in figures, and its questions over time as bars."""
    n = len(insights.questions)
    if not n:
        return f'<div class="insights-empty">No questions in this period ({html.escape(period.lower())}).</div>'
    figures = [
        (n, "question" if n == 1 else "questions"),
        (len(insights.groups), "group" if len(insights.groups) == 1 else "groups"),
        (insights.refused, "refused"),
        (len(insights.not_covered), "not covered"),
        (insights.helpful, "rated helpful"),
        (insights.unhelpful, "rated unhelpful"),
    ]
    cards = "".join(f'<div class="figure"><b>{value}</b><span>{label}</span></div>' for value, label in figures)
    waiting = ""
    if open_requests:
        waiting = (
            f'<div class="note note-busy">{open_requests} question{"" if open_requests == 1 else "s"} from students '
            "wait for your answer in <b>Questions for you</b>.</div>"
        )
    grouped = ""
    if insights.grouped_from < n:
        grouped = f'<div class="help">Grouped: the latest {insights.grouped_from:,} questions of the period.</div>'
    return f'<div class="figures">{cards}</div>{waiting}{timeline_html(insights.timeline)}{grouped}'


def timeline_html(bars: Sequence[tuple]) -> str:
    """Questions per day (or week) as bars, refused ones as the darker part."""
    if not bars:
        return ""
    top = max(max(n for _, n, _ in bars), 1)
    weekly = len(bars) > 1 and (bars[1][0] - bars[0][0]).days == 7
    items = []
    for day, n, refused in bars:
        label = f"{'week of ' if weekly else ''}{day:%b %d}: {n} asked, {refused} refused"
        answered_px, refused_px = round(BAR_PX * (n - refused) / top), round(BAR_PX * refused / top)
        items.append(
            f'<div class="bar" title="{html.escape(label)}">'
            f'<div class="bar-refused" style="height:{refused_px}px"></div>'
            f'<div class="bar-answered" style="height:{answered_px}px"></div></div>'
        )
    first, last = bars[0][0], bars[-1][0]
    unit = "week" if weekly else "day"
    return (
        f'<div class="timeline" aria-label="questions per {unit}">{"".join(items)}</div>'
        f'<div class="timeline-axis"><span>{first:%b %d}</span>'
        f'<span class="legend"><i class="swatch answered"></i>answered <i class="swatch refused"></i>refused '
        f"· one bar a {unit}</span><span>{last:%b %d}</span></div>"
    )


def groups_html(numbered: Sequence[tuple[int, Group]], title: str, empty: str) -> str:
    """A table of groups, each with its number: the typical question (and
    how else it was asked), how often, refused, rated down, and the pages
    cited most."""
    if not numbered:
        return f'<div class="insights-section"><h4>{html.escape(title)}</h4><p class="help">{html.escape(empty)}</p></div>'
    rows = "".join(_group_row(n, g) for n, g in numbered[:SHOWN_GROUPS])
    left = len(numbered) - SHOWN_GROUPS
    more = f'<p class="help">{left} more in the CSV.</p>' if left > 0 else ""
    return (
        f'<div class="insights-section"><h4>{html.escape(title)}</h4><table class="groups"><thead><tr>'
        "<th>#</th><th>Question</th><th>Asked</th><th>Refused</th><th>Unhelpful</th><th>Pages cited most</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>{more}</div>"
    )


def _group_row(n: int, group: Group) -> str:
    others = [q.question for q in group.questions[1:4] if q.question != group.representative.question]
    also = f'<div class="also">also: {html.escape(" · ".join(snippet(o, 80) for o in others))}</div>' if others else ""
    verified = ' <span class="tag">verified answer</span>' if group.verified else ""
    pages = ", ".join(f"{html.escape(page_name(p))} ({count}×)" for p, count in group.top_pages) or "—"
    return (
        f"<tr><td>{n}</td><td>{html.escape(snippet(group.representative.question, 160))}{verified}{also}</td>"
        f"<td>{group.asked}</td><td>{group.refused}</td><td>{group.unhelpful}</td><td>{pages}</td></tr>"
    )


def group_label(n: int, group: Group) -> str:
    return f"#{n} {snippet(group.representative.question, 90)} ({group.asked}×)"


def verified_html(answers: Sequence[Verified], used: dict[int, int]) -> str:
    """The verified answers, newest first, with how often each was given."""
    if not answers:
        return (
            '<p class="help">No verified answers yet. Write one here, or from a group in <b>Insights</b>: '
            "students whose question is close to it get your answer first, marked as yours.</p>"
        )
    items = []
    for v in answers:
        cited = ", ".join(html.escape(f"{h.file}, {h.place}") for h in v.citations) or "no citations"
        times = used.get(v.id, 0)
        items.append(
            f'<li><div class="verified-q">{html.escape(v.question)}</div>'
            f'<div class="verified-a">{html.escape(snippet(v.answer, 220))}</div>'
            f'<div class="help">{cited} · given {times} time{"" if times == 1 else "s"} · '
            f"updated {html.escape(when(v.updated_at))}</div></li>"
        )
    return f'<ul class="verified-list">{"".join(items)}</ul>'


def verified_label(v: Verified) -> str:
    return snippet(v.question, 100)


def citation_label(hit: Hit) -> str:
    return f"{hit.file}, {hit.place}: {snippet(hit.text, 90)}"


def citation_key(hit: Hit) -> str:
    return f"{hit.doc_id}:{hit.page}"


def inbox_html(requests: Sequence[Request]) -> str:
    """Open requests, oldest first, then the last answered ones."""
    open_ = [r for r in requests if r.open]
    answered = [r for r in requests if not r.open][-10:]
    if not requests:
        return '<p class="help">No questions from students yet. They reach you with "Ask the instructor" under the chat.</p>'
    parts = []
    if open_:
        parts.append(f"<h4>Open ({len(open_)})</h4><ul class=\"inbox\">{''.join(_request_item(r) for r in open_)}</ul>")
    else:
        parts.append('<p class="note note-ok">Every question has an answer.</p>')
    if answered:
        parts.append(
            f"<details><summary>Answered recently ({len(answered)})</summary>"
            f"<ul class=\"inbox\">{''.join(_request_item(r) for r in reversed(answered))}</ul></details>"
        )
    return "".join(parts)


def _request_item(r: Request) -> str:
    who = html.escape(r.name) if r.name else "anonymous"
    # What the student found wanting: the mentor's answer, shown, not folded.
    said = (
        f'<div class="mentor-said"><div class="mentor-said-title">The mentor answered</div>'
        f"<blockquote>{html.escape(snippet(r.mentor_answer, 600))}</blockquote></div>"
        if r.mentor_answer
        else '<div class="help">The student asked before getting an answer from the mentor.</div>'
    )
    reply = f'<div class="reply"><b>Your reply:</b> {html.escape(r.reply)}</div>' if r.reply else ""
    return (
        f'<li><div class="request-q">{html.escape(r.question)}</div>'
        f'<div class="help">{who} · {html.escape(when(r.asked_at))}</div>{said}{reply}</li>'
    )


def open_requests_html(open_requests: int) -> str:
    """How many requests wait for an answer, for the Questions for you
    tab's name: ``page.js`` copies it onto the tab, the stylesheet shows it."""
    return f'<span class="open-requests" data-open="{int(open_requests)}"></span>'


def request_label(r: Request) -> str:
    return f"{snippet(r.question, 90)} ({r.name or 'anonymous'}, {when(r.asked_at)})"
