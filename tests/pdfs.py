"""Course PDFs made by the tests: known text on known pages, with printed
page labels that differ from the physical index (roman front matter)."""

from __future__ import annotations

from pathlib import Path
from textwrap import wrap

# Physical page → text. Pages 1-2 are front matter labelled i, ii; page 3 is
# printed "1", so a fact on physical page 5 is cited as page "3".
HANDBOOK = [
    "Astronomy 101 Course Handbook. Spring term.",
    "Contents. Orbits. Escape velocity. Telescopes. Office hours.",
    "Kepler's laws of planetary motion. The first law says that every planet moves "
    "in an ellipse with the Sun at one focus. The second law says that a line from the "
    "Sun to a planet sweeps out equal areas in equal times.",
    "Escape velocity is the speed an object needs to leave a body's gravity without "
    "further propulsion. It is computed as the square root of 2GM divided by r. "
    "For the Earth it is about 11.2 kilometres per second.",
    "Refracting telescopes use lenses to gather light, while reflecting telescopes use "
    "mirrors. The aperture of a telescope decides how much light it collects and how fine "
    "the details it can resolve.",
    "Office hours are held every Thursday from 2pm to 4pm in room B12 of the physics "
    "building. Bring your problem sets and questions about the homework.",
]
FRONT_MATTER = 2


def make_pdf(
    path: Path, pages: list[str] = HANDBOOK, front_matter: int = FRONT_MATTER, outline: list[tuple] = ()
) -> Path:
    """Writes ``pages`` to a PDF at ``path``; the first ``front_matter`` pages
    are labelled i, ii, … and the rest 1, 2, … ``outline`` holds bookmarks
    as (title, physical page[, children])."""
    from pypdf import PdfReader, PdfWriter
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path.parent.mkdir(parents=True, exist_ok=True)
    c = canvas.Canvas(str(path), pagesize=A4)
    for text in pages:
        y = 800
        for line in [part for paragraph in text.split("\n") for part in wrap(paragraph, 90)]:
            c.drawString(50, y, line)
            y -= 14
            if y < 50:
                break
        c.showPage()
    c.save()
    if front_matter or outline:
        writer = PdfWriter(clone_from=PdfReader(path))
        if front_matter:
            writer.set_page_label(0, front_matter - 1, style="/r")
            writer.set_page_label(front_matter, len(pages) - 1, style="/D", start=1)
        _add_bookmarks(writer, outline)
        writer.write(path)
    return path


def _add_bookmarks(writer, outline, parent=None) -> None:
    for title, page, *children in outline:
        item = writer.add_outline_item(title, page - 1, parent=parent)
        for child in children:
            _add_bookmarks(writer, child, item)


def label_of(physical: int, front_matter: int = FRONT_MATTER) -> str:
    romans = ["i", "ii", "iii", "iv", "v"]
    return romans[physical - 1] if physical <= front_matter else str(physical - front_matter)


# A passage that runs from the foot of the left column to the top of the
# right one, with a word hyphenated at a line's end and the ligatures "ﬁ"
# and "ﬂ" (drawn as single glyphs, as TeX sets them).
COLUMN_PASSAGE = (
    "The first spacecraft to leave the solar system relied on gravitational assists from Jupiter and "
    "Saturn, gaining speed at each close flyby without burning extra fuel. Engineers timed the launch "
    "window so that the outer planets lined up once every 175 years."
)
_LEFT = [
    "Chapter two looks at how probes travel",
    "between the planets, and why the paths",
    "they follow are rarely straight lines.",
    "A rocket burns most of its fuel in the",
    "first minutes after launch; for the rest",
    "of the journey it coasts, pulled by the",
    "Sun and by every planet it passes near.",
    "Mission planners use those pulls to",
    "bend a course, or to change its speed.",
    "",
    "The ﬁrst spacecraft to leave the solar",
    "system relied on gravita-",
]
_RIGHT = [
    "tional assists from Jupiter and Saturn,",
    "gaining speed at each close ﬂyby",
    "without burning extra fuel. Engineers",
    "timed the launch window so that the",
    "outer planets lined up once every 175",
    "years.",
    "",
    "Chapter three turns to the telescopes",
    "that watched them go, from the ground",
    "and from orbit around the Earth.",
]


def make_columns_pdf(path: Path) -> Path:
    """One page in two columns holding COLUMN_PASSAGE across them (see above)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("DejaVu", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))
    path.parent.mkdir(parents=True, exist_ok=True)
    c = canvas.Canvas(str(path), pagesize=A4)
    c.setFont("DejaVu", 10)
    for x, lines in ((50, _LEFT), (310, _RIGHT)):
        y = 600 if x == 50 else 760
        for line in lines:
            c.drawString(x, y, line)
            y -= 14
    c.showPage()
    c.save()
    return path


# Real manuals: Debian's r-doc-pdf (scripts/install.sh --dev installs it).
R_MANUAL_DIRS = [Path("/usr/share/R/doc/manual"), Path("/usr/share/doc/r-doc-pdf/manual")]


def r_manual(name: str = "R-data.pdf") -> Path:
    """One of R's manuals as Debian ships it: a real PDF with running
    headers, code and long pages. R-data.pdf (41 pages, ~180 chunks) is
    the smallest."""
    import pytest

    found = next((folder / name for folder in R_MANUAL_DIRS if (folder / name).is_file()), None)
    if found is None:
        pytest.fail(f"{name} is missing: apt-get install r-doc-pdf (scripts/install.sh --dev does)")
    return found
