"""Page labels as the payload stores them, and how a person reads them.

A PDF page keeps its printed label ("iv", "12"); slides and Word sections
are labelled with their unit ("slide 12", "section 3"), so a citation
names the place the way the file shows it.
"""

from __future__ import annotations

# Labels that carry their own unit; any other label is a printed page label.
UNITS = ("slide", "section")


def place(label: str) -> str:
    """Where a citation points, in words: "page iv", "slide 12", "section 3"."""
    return label if label.split(" ", 1)[0] in UNITS else f"page {label}"
