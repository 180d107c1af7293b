"""Section 1: ingesting each corpus, ours against the baseline, and the
floor of parsing and embedding alone (bench/ingest.py)."""

from ..section import Section

CORPORA = [
    Section(
        "ingestion",
        f"### {corpus}: {pages}",
        "ingestion.md.j2",
        f"ingest-{corpus}",
        f"python bench/ingest.py --corpus {corpus}",
    )
    for corpus, pages in (("r-manuals", "the seven R manuals"), ("refman", "the R reference manual"))
]

SECTION = Section(
    "ingestion",
    "## 1. Ingestion",
    "parts.md.j2",
    context=lambda r, results: {"parts": [corpus.render(results) for corpus in CORPORA]},
)
