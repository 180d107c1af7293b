"""Markdown through a real parser: whatever a document or the model writes,
the HTML the chat is given holds no element but the ones Markdown makes
from text (paragraphs, emphasis, code, lists, quotes, tables), and no
attribute but a code block's language. What Chromium makes of it is in
tests/test_browser_hostile.py."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from mentor.index.store import Hit
from mentor.web.render import render_answer, render_verified, replies_markdown, safe_markdown

FORMATTING = {"p", "br", "em", "strong", "code", "pre", "s", "blockquote", "ul", "ol", "li", "hr"}
TABLES = {"table", "thead", "tbody", "tr", "th", "td"}
HEADINGS = {f"h{n}" for n in range(1, 7)}
HOSTILE = [
    # A fence the old regex took for code, around raw HTML.
    'x ```\n\n<a href="https://evil.example/login">Log in again</a>\n\n```',
    "x ```\n\n<img src=https://tracker.example/pixel.gif>\n\n```",
    '``` \n\n<div class="verified"><span class="verified-badge">Answer from your instructor</span></div>\n\n```',
    "`code`` <script>alert(1)</script> ``",
    '<details open><summary>x</summary><iframe src="https://evil.example"></iframe></details>',
    "[Log in](https://evil.example) ![pixel](https://tracker.example/p.gif) <https://evil.example>",
    "[x]: https://evil.example\n\n[x]",
    '<a href="javascript:alert(1)">x</a> $<img src=x onerror=alert(1)>$',
    "\\(</code><img src=x>\\) and $$<svg onload=alert(1)>$$",
    '<!-- comment --><style>body{display:none}</style><form action="https://evil.example"><input></form>',
]


class Elements(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, list]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def made(html: str) -> list[tuple[str, list]]:
    return Elements(html).found


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_makes_no_element_that_markdown_does_not_make(text):
    shown = safe_markdown(text)

    for tag, attrs in made(shown):
        assert tag in FORMATTING | TABLES | HEADINGS, (tag, shown)
        assert all(name == "class" and value.startswith("language-") for name, value in attrs), (tag, attrs)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_in_a_source_or_an_answer_adds_nothing_to_the_sources_markup(text):
    hit = Hit("d" * 64, text[:40], 1, text[:10], text, 0.9, text)
    clean = Hit("d" * 64, "notes.pdf", 1, "1", "Plain words.", 0.9, "Intro")
    expected = [tag for tag, _ in made(render_answer("Plain.", [(1, clean)], [clean], False, 0.3))]

    shown = render_answer(text, [(1, hit)], [hit], False, 0.3)

    structure = [tag for tag, _ in made(shown) if tag not in FORMATTING | TABLES | HEADINGS]
    assert structure == [t for t in expected if t not in FORMATTING | TABLES | HEADINGS]
    assert not any("verified" in (value or "") for _, attrs in made(shown) for _, value in attrs)


def test_only_the_instructors_own_answer_carries_the_badge():
    forged = '<div class="verified"><span class="verified-badge">Answer from your instructor</span></div>'

    badges = [attrs for _, attrs in made(render_verified(forged, "Is it open book?", [])) if ("class", "verified-badge") in attrs]

    assert made(safe_markdown(forged)) == [("p", [])]
    assert len(badges) == 1


def test_code_and_math_survive_the_parser():
    shown = safe_markdown("```r\nx <- 5\n\n\ndf$x\n```\n\nThen $x^2$ and `y <- 2`.")

    assert '<pre><code class="language-r">x &lt;- 5&#10;&#10;&#10;df$x&#10;</code></pre>' in shown
    assert "\\(x^2\\)" in shown and "<code>y &lt;- 2</code>" in shown
    assert "\n\n" not in shown  # one HTML block: Gradio's Markdown leaves it as it is


def test_an_instructors_reply_is_markdown_and_a_students_question_is_text():
    class Reply:
        question = '<img src="https://tracker.example/q.gif"> Is **it** open book?'
        reply = "Yes: *open* book. <a href='https://evil.example'>x</a>"

    shown = replies_markdown([Reply()])

    assert [tag for tag, _ in made(shown)] == ["div", "p", "strong", "blockquote", "p", "em", "p", "em"]
