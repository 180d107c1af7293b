"""What the UI shows, as pure functions: text in, escaped HTML out.

Text that comes from documents, file names or people (questions, answers
quoting the PDFs, course settings) is escaped here before it is shown.
Markdown (answers, questions, replies) goes through a real CommonMark
parser, markdown-it-py, with raw HTML, links and images turned off: what
a document or the model writes is shown as written, never made into an
element (no link, no tracking image, no forged badge). Its output is one
HTML block without blank lines, which Gradio's own Markdown passes through
untouched.

Mathematics: the chat renders TeX with KaTeX, between the delimiters of
``LATEX_DELIMITERS``. Gradio's KaTeX pairs any two of a delimiter in a
message, so with ``$`` among them "$5 and $10" would become a formula. It
is given no single ``$``: ``$x^2$`` is recognised here instead, by Pandoc's
rule (no space just inside either ``$``, no digit right after the closing
one, and here also no word character glued to either side, so that R's
``df$x + df$y`` stays code), and written as ``\\(x^2\\)``. KaTeX leaves
``<code>`` and ``<pre>`` alone, so code keeps its ``$`` and ``<-``.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from urllib.parse import quote

from markdown_it import MarkdownIt

from mentor.course.info import DEFAULT_NAME, CourseInfo
from mentor.course.registry import Document
from mentor.generate.prompts import CITATION
from mentor.index.store import Hit
from mentor.ingest.pages import SUPPORTED

SNIPPET_CHARS = 240
# Runpod's proxy cuts one upload request at about this size, and Gradio
# sends a whole drag-and-drop batch as one request.
PROXY_UPLOAD_MB = 100

LATEX_DELIMITERS = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]
_MATH = re.compile(
    r"\$\$(?P<display>.+?)\$\$"
    r"|\\\[(?P<bracket>.+?)\\\]"
    r"|\\\((?P<paren>.+?)\\\)"
    r"|(?<![\\\w$])\$(?P<inline>[^\s$](?:[^$\n]*?[^\s$\\])?)\$(?![\w$])",
    re.S,
)
_PRE = re.compile(r"<pre>.*?</pre>", re.S)


def _math_rule(state, silent: bool) -> bool:
    """markdown-it's inline rule for a formula: kept whole, as KaTeX reads it
    (before the backslash escapes, which would eat ``\\(``)."""
    if state.src[state.pos] not in "$\\":
        return False
    found = _MATH.match(state.src, state.pos)
    if not found:
        return False
    if not silent:
        state.push("math", "", 0).content = _formula(found)
    state.pos = found.end()
    return True


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True})
    md.enable(["table", "strikethrough"])
    # What text could make besides text and its formatting: nothing.
    md.disable(["html_block", "html_inline", "link", "image", "autolink", "reference"])
    md.inline.ruler.before("escape", "math", _math_rule)
    md.add_render_rule("math", lambda _renderer, tokens, i, options, env: html.escape(tokens[i].content, quote=False))
    return md


_MARKDOWN = _parser()


def safe_markdown(text: str) -> str:
    """``text`` as Markdown, rendered to HTML that holds no element the text
    did not make with Markdown (any HTML in it is shown, not run), its TeX
    kept for KaTeX and its code literal (``x <- 5``, ``df$x``)."""
    rendered = _MARKDOWN.render(text or "").strip()
    # No blank line inside a code block: Gradio's Markdown would end the
    # HTML block there and read the rest as Markdown again.
    return _PRE.sub(lambda m: m.group(0).replace("\n", "&#10;"), rendered)


def math_text(text: str) -> str:
    """``text`` escaped for HTML, with each TeX formula in it between the
    delimiters KaTeX renders, and a ``$`` that opens no formula left as text."""
    out, end = [], 0
    for found in _MATH.finditer(text):
        out += [html.escape(text[end : found.start()], quote=False), _formula(found)]
        end = found.end()
    out.append(html.escape(text[end:], quote=False))
    return "".join(out)


def _formula(found: re.Match) -> str:
    """A formula, with ``<`` and ``>`` as TeX's ``\\lt`` and ``\\gt`` (so
    that no tag can form in it, and KaTeX still shows them) and ``$x$``
    written as ``\\(x\\)``."""
    tex = found.group(0) if found["inline"] is None else f"\\({found['inline']}\\)"
    return tex.replace("<", "\\lt ").replace(">", "\\gt ")


def message_text(message: dict) -> str:
    """The text of a chatbot message, whether Gradio gave it as a string or
    as a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.replace("\n…\n", " … ").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def source_link(hit: Hit) -> str:
    """The cited file's view at the cited physical page, with the chunk whose
    passage it marks (``viewer_routes``); ``#page=`` scrolls a text view
    (slides, Word) to its slide or section."""
    chunk = f"&chunk={int(hit.chunk_no)}" if hit.chunk_no >= 0 else ""
    return f"/view/{quote(hit.doc_id, safe='')}?page={int(hit.page)}{chunk}#page={int(hit.page)}"


def source_preview(hit: Hit) -> str:
    """A picture of the cited part of a PDF's page, folded under the source:
    drawn by the server on the first unfolding only (a closed ``<details>``
    and ``loading="lazy"`` fetch nothing); "" for other files."""
    if hit.chunk_no < 0 or not hit.file.lower().endswith(".pdf"):
        return ""
    src = f"/view/{quote(hit.doc_id, safe='')}/preview?chunk={int(hit.chunk_no)}"
    return (
        '<details class="source-preview"><summary>Show the passage on the page</summary>'
        f'<img src="{html.escape(src)}" alt="The cited passage on {html.escape(hit.place)}" loading="lazy"></details>'
    )


def source_item(n: int, hit: Hit, relevance: bool = True) -> str:
    """One numbered source; ``relevance`` shows its score (not for the
    instructor's own citations, which they chose)."""
    section = f'<div class="source-section">{html.escape(hit.section)}</div>' if hit.section else ""
    score = (
        f'<span class="source-score" title="How closely this passage matches the question (0 to 1)">'
        f"relevance {hit.score:.2f}</span>"
        if relevance
        else ""
    )
    return (
        f'<li class="source"><span class="source-n">{n}</span><div class="source-body">'
        f'<a class="source-link" href="{html.escape(source_link(hit))}" target="_blank" rel="noopener noreferrer">'
        f"{html.escape(hit.file)}, {html.escape(hit.place)}</a>"
        f"{score}{section}"
        f'<div class="source-snippet">{math_text(snippet(hit.text))}</div>{source_preview(hit)}</div></li>'
    )


def render_answer(text: str, cited: list[tuple[int, Hit]], sources: list[Hit], refused: bool, min_score: float) -> str:
    """The final assistant message: the answer, then its numbered sources,
    keeping their numbers, then the other passages it was given, folded.

    The sources shown are the ones the answer cites; when it cites none,
    the passages that matched the question well (``min_score``, at least
    the best one), and for a refusal the three closest sections.

    No score beside them: the numbers follow the fused ranking that chose
    the passages, and a per-passage similarity beside them (source 1 at
    0.51, source 2 at 0.58) invites a comparison the order does not make.
    """
    body = safe_markdown(text)
    if not sources:
        return body
    title = "Closest sections" if refused else "Sources"
    if refused:
        shown = cited[:3]
    elif CITATION.search(text):
        shown = cited
    else:
        shown = [(n, h) for n, h in cited if h.score >= min_score] or cited[:1]
    shown_numbers = {n for n, _ in shown}
    others = [(n, h) for n, h in enumerate(sources, start=1) if n not in shown_numbers]
    items = "".join(source_item(n, h, relevance=False) for n, h in shown)
    block = f'<div class="sources"><div class="sources-title">{title}</div><ol>{items}</ol>'
    if others:
        block += (
            f'<details class="sources-more"><summary>{len(others)} more {"passages" if len(others) > 1 else "passage"} searched</summary>'
            f"<ol>{''.join(source_item(n, h, relevance=False) for n, h in others)}</ol></details>"
        )
    return f"{body}\n\n{block}</div>"


def render_verified(text: str, question: str, citations: list[Hit]) -> str:
    """An answer the instructor wrote for ``question``, marked as theirs,
    with the pages they cited."""
    badge = (
        '<div class="verified"><span class="verified-badge">Answer from your instructor</span>'
        f'<span class="verified-question">for “{html.escape(question)}”</span></div>'
    )
    body = f"{badge}\n\n{safe_markdown(text)}"
    if not citations:
        return body
    items = "".join(source_item(n, h, relevance=False) for n, h in enumerate(citations, start=1))
    return f'{body}\n\n<div class="sources"><div class="sources-title">Sources</div><ol>{items}</ol></div>'


# Above an answer written in the guide style, so that a student knows why
# it asks them questions instead of giving the answer.
GUIDE_NOTE = "<p><em>Hints, not solutions: your instructor asked the mentor to guide you to the answer.</em></p>\n\n"
# After an answer the model stopped at its length limit (MAX_ANSWER_TOKENS),
# which ends mid-sentence: the student knows it was cut, and what to do.
CUT_NOTE = (
    "\n\n*The answer was cut at the length limit. Ask about one part of it at a time for the rest.*"
)


def replies_markdown(replies) -> str:
    """The instructor's replies to the questions this browser passed on
    (``questions.Request``\\ s), newest first, as HTML; "" when there are none."""
    if not replies:
        return ""
    items = "".join(
        f"<blockquote><p><em>{math_text(snippet(r.question, 300))}</em></p>{safe_markdown(r.reply)}</blockquote>"
        for r in replies
    )
    return f'<div class="replies"><p><strong>Your instructor replied</strong></p>{items}</div>'


def waiting_note(ahead: int) -> str:
    """What a student sees while their question waits for the model."""
    if ahead == 0:
        return "*Waiting for the mentor: your question is next.*"
    return f"*Waiting for the mentor: {ahead} question{'' if ahead == 1 else 's'} ahead of yours.*"


def header_html(course: CourseInfo) -> str:
    welcome = "<br>".join(html.escape(line) for line in course.welcome.splitlines())
    eyebrow = "" if course.name == DEFAULT_NAME else '<div class="course-eyebrow">Course mentor</div>'
    return f'<div class="course-header">{eyebrow}<h1>{html.escape(course.name)}</h1><p>{welcome}</p></div>'


def empty_html(title: str, detail: str) -> str:
    detail = f"<p>{html.escape(detail)}</p>" if detail else ""
    return f'<div class="chat-empty"><p class="chat-empty-title">{html.escape(title)}</p>{detail}</div>'


def note(text: str, kind: str) -> str:
    """A one-line status message in the console (kind: ok, error)."""
    return f'<div class="note note-{kind}">{html.escape(text)}</div>'


def results_html(rows: list[tuple[str, str]], pending: int = 0) -> str:
    """One line per file, each with its kind: ok, failed or skipped."""
    items = "".join(f'<li class="{kind}">{html.escape(line)}</li>' for line, kind in rows)
    more = f'<li class="pending">{pending} more to go…</li>' if pending else ""
    return f'<ul class="results">{items}{more}</ul>'


def stats_markdown(stats: dict) -> str:
    """The console's top line; without a model, why, and what to set."""
    docs = stats["documents"]
    line = f"**{docs} document{'' if docs == 1 else 's'}** · {stats['pages']} pages · {stats['chunks']} chunks · "
    if stats.get("model"):
        return line + f"model {html.escape(stats['model'])}"
    why = html.escape(stats.get("model_problem") or "this mentor was started without a model.")
    return (
        line + "**no language model**: students get the best passages with their page links, not answers.\n\n"
        f"Why: {why}"
    )


def documents_table(docs: list[Document]) -> list[list[str]]:
    return [
        [d.name, use_of(d), str(d.pages), str(d.chunks), when(d.added_at), human_size(d.size)] for d in reversed(docs)
    ]


def use_of(doc: Document) -> str:
    """Who a document is for, as the documents table says it."""
    if doc.instructor_only:
        return "Instructor only"
    return "Students · assignment" if doc.assignment else "Students"


def examples_placeholder(docs: list[Document]) -> str:
    suggested = CourseInfo(examples=()).example_questions([d.name for d in docs])
    if not suggested:
        return "What is escape velocity?\nWhen are office hours?"
    return "\n".join(suggested)


def upload_limits(max_upload_mb: int, ocr_status: str) -> str:
    return (
        f"Drop course files: {SUPPORTED}. Each file can be up to **{max_upload_mb} MB** (MAX_UPLOAD_MB). "
        f"The pod's proxy stops a single upload at about **{PROXY_UPLOAD_MB} MB**, and all the files you drop "
        f"at once travel together, so add a large collection in batches under {PROXY_UPLOAD_MB} MB. "
        f"Students can ask about a document as soon as it is fully indexed. {ocr_status}"
    )


def when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def index_status_html(spec, status, reason: str, interrupted: list[Document]) -> str:
    """The console's line on the index: what it is built with, a rebuild's
    progress or failures, and uploads a restart cut off."""
    lines = []
    if status.running:
        lines.append((status.line() + " Students keep using the current index until the new one is complete.", "busy"))
    elif status.failed:
        lines.append((status.line(), "failed"))
    elif reason:
        lines.append((f"The index needs a rebuild: {reason}.", "busy"))
    else:
        # Each embedder as a hub id, or a folder's end.
        embedders = " + ".join("/".join(m.rstrip("/").split("/")[-2:]) for m in (spec.embed_model, spec.second_embed_model) if m)
        done = f" {status.line()}" if status.finished_at else ""
        lines.append((f"Index up to date: {embedders}, chunks of {spec.chunk_tokens} word pieces.{done}", "ok"))
    if interrupted:
        names = ", ".join(d.name for d in interrupted)
        lines.append((f"Uploads cut off by a restart, being finished: {names}.", "busy"))
    return "".join(f'<div class="note note-{kind}">{html.escape(text)}</div>' for text, kind in lines)


def human_size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"
