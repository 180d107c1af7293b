"""Mathematics in answers and sources: every TeX delimiter a student or a
course file uses reaches KaTeX, and nothing else does, a price least of all.

What the browser makes of it is in tests/test_browser.py; this pins down
the text the chat is given, and what pypdf keeps of a formula in a PDF.
"""

from __future__ import annotations

import pytest

from mentor.index.store import Hit
from mentor.web.render import LATEX_DELIMITERS, render_answer, safe_markdown, source_item
from tests.pdfs import make_pdf


@pytest.mark.parametrize(
    "written, shown",
    [
        ("Area is $\\pi r^2$.", "Area is \\(\\pi r^2\\)."),
        ("Energy: $$E = mc^2$$", "Energy: $$E = mc^2$$"),
        ("Inline \\(a^2 + b^2\\) here", "Inline \\(a^2 + b^2\\) here"),
        ("Display \\[\\int_0^1 x\\,dx\\]", "Display \\[\\int_0^1 x\\,dx\\]"),
        ("$x$, ($y$) and $\\alpha_1$.", "\\(x\\), (\\(y\\)) and \\(\\alpha_1\\)."),
    ],
)
def test_each_kind_of_formula_reaches_katex_between_delimiters_it_renders(written, shown):
    assert safe_markdown(written) == f"<p>{shown}</p>"
    lefts = {d["left"] for d in LATEX_DELIMITERS}
    # No single "$": KaTeX would pair any two of them.
    assert lefts == {"$$", "\\[", "\\("}


@pytest.mark.parametrize(
    "text, shown",
    [
        ("A ticket costs $5 and $10 with the discount.", "A ticket costs $5 and $10 with the discount."),
        ("Prices: $5-$10, or $20.", "Prices: $5-$10, or $20."),
        ("It costs $5.", "It costs $5."),
        ("In R, df$x + df$y adds two columns.", "In R, df$x + df$y adds two columns."),
        ("Run `echo $HOME` and `echo $PATH`.", "Run <code>echo $HOME</code> and <code>echo $PATH</code>."),
        ("An escaped \\$5 and another \\$6.", "An escaped $5 and another $6."),  # Markdown's escape
        ("In R: `x <- 5` then `df$x`", "In R: <code>x &lt;- 5</code> then <code>df$x</code>"),
    ],
)
def test_prices_code_and_r_columns_stay_text(text, shown):
    assert safe_markdown(text) == f"<p>{shown}</p>"


def test_markup_inside_a_formula_cannot_become_a_tag_and_still_reads_as_math():
    shown = safe_markdown('If $a<b$ then <img src=x onerror="alert(1)"> and \\(c>d\\)')

    assert shown == '<p>If \\(a\\lt b\\) then &lt;img src=x onerror=&quot;alert(1)&quot;&gt; and \\(c\\gt d\\)</p>'
    assert "<img" not in shown


def test_a_source_snippet_keeps_its_formulas_and_escapes_the_rest():
    hit = Hit("d" * 64, "notes.md", 1, "1", "Kepler: $T^2 \\propto a^3$ <b>costs</b> $5 and $10", 0.9)

    shown = source_item(1, hit)

    assert '<div class="source-snippet">Kepler: \\(T^2 \\propto a^3\\) &lt;b&gt;costs&lt;/b&gt; $5 and $10</div>' in shown


def test_an_answer_with_formulas_keeps_them_beside_its_sources():
    hit = Hit("d" * 64, "notes.md", 1, "1", "Escape velocity is $\\sqrt{2GM/r}$.", 0.9)

    shown = render_answer("It is $v = \\sqrt{2GM/r}$ [1], about $11 a kilogram.", [(1, hit)], [hit], False, 0.4)

    assert shown.startswith("<p>It is \\(v = \\sqrt{2GM/r}\\) [1], about $11 a kilogram.</p>\n\n")
    assert "Escape velocity is \\(\\sqrt{2GM/r}\\)." in shown


def test_a_pdf_formula_keeps_its_symbols_and_loses_its_layout(mentor, tmp_path):
    """What pypdf gives of a formula is what is indexed and shown, unchanged:
    symbols that the font maps to Unicode stay (², ½, ±, ×); a raised
    exponent drawn as a smaller "2" becomes a plain 2 beside its base
    ("mc2"), and a fraction's bar is lost, its two lines one after the other."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("Vera", "Vera.ttf"))  # ships with reportlab
    path = tmp_path / "formulas.pdf"
    c = canvas.Canvas(str(path))
    text = c.beginText(50, 800)
    text.setFont("Vera", 12)
    text.textOut("Pythagoras: a² + b² = c², half is ½, error ± 0.5, 3 × 4. Einstein: E = mc")
    text.setRise(5)
    text.setFont("Vera", 8)
    text.textOut("2")
    c.drawText(text)
    c.setFont("Vera", 12)
    c.drawString(50, 760, "Mean speed:")
    c.drawString(130, 770, "distance")
    c.drawString(135, 752, "time")
    c.showPage()
    c.save()

    mentor.ingest([path])
    [hit] = mentor.search("Pythagoras squares", k=1)

    assert hit.text == (
        "Pythagoras: a² + b² = c², half is ½, error ± 0.5, 3 × 4. Einstein: E = mc2\nMean speed:\ndistance\n time"
    )
    assert "a² + b² = c²" in source_item(1, hit)


def test_a_price_in_a_pdf_is_never_math_in_its_source(mentor, tmp_path):
    mentor.ingest([make_pdf(tmp_path / "fees.pdf", ["The lab fee is $5 and the field trip is $10 per student."], 0)])
    [hit] = mentor.search("lab fee", k=1)

    assert "The lab fee is $5 and the field trip is $10 per student." in source_item(1, hit)
