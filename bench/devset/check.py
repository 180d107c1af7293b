"""Check the Octave-manual retrieval dev set against the PDF it was written from.

Every id must be unique across the files, every listed page must exist in the
PDF, and every evidence string must appear on the first page its record lists.
Page text comes from pypdf. Before comparing, runs of whitespace are collapsed,
and a hyphen that ends a line is tried both dropped ("Depart-" + "ment" reads
"Department") and kept ("least-" + "squares" reads "least-squares"), as the
text does not say which it is. Otherwise the comparison is exact and
case-sensitive.

    python bench/devset/check.py [--pdf PATH] [--devset FILE ...]

Prints a one-line summary and exits 0, or lists every failure and exits 1.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pypdf import PdfReader

HERE = Path(__file__).resolve().parent
DEBIAN_PDF = Path("/usr/share/doc/octave/octave.pdf")  # apt-get install octave-doc
DEFAULT_DEVSETS = [HERE / "octave.jsonl", HERE / "octave_followups.jsonl"]
EVIDENCE_LENGTH = range(20, 121)


def default_pdf() -> Path | None:
    """The Debian octave-doc manual, plain or gzipped, if installed."""
    for path in (DEBIAN_PDF, DEBIAN_PDF.with_name(DEBIAN_PDF.name + ".gz")):
        if path.exists():
            return path
    return None


@contextmanager
def plain_pdf(path: Path) -> Iterator[Path]:
    """Yield ``path``, or a decompressed temporary copy when it ends in .gz."""
    if path.suffix != ".gz":
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.stem
        with gzip.open(path) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        yield out


def squash(text: str) -> str:
    """Collapse every run of whitespace to one space."""
    return " ".join(text.split())


def page_variants(text: str) -> set[str]:
    """The page text with line-end hyphens dropped and with them kept."""
    return {squash(re.sub(r"-[ \t]*\n\s*", joiner, text)) for joiner in ("", "-")}


def load_records(paths: list[Path]) -> list[tuple[str, dict]]:
    """(where, record) for every non-blank line, where = 'file:line'."""
    records = []
    for path in paths:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                records.append((f"{path.name}:{n}", json.loads(line)))
    return records


def shape_errors(rec: dict, n_pages: int) -> list[str]:
    """Problems with a record's fields, before any text is compared."""
    pages = rec.get("pages")
    if not isinstance(pages, list) or not all(isinstance(p, int) for p in pages):
        return ["pages must be a list of page numbers"]
    errors = [f"page {p} outside 1..{n_pages}" for p in pages if not 1 <= p <= n_pages]
    if rec.get("unanswerable"):
        if pages or "evidence" in rec:
            errors.append("unanswerable record lists pages or evidence")
        return errors
    if "first" in rec and not all(rec.get(k) for k in ("second", "standalone")):
        errors.append("follow-up needs first, second and standalone")
    if not pages:
        errors.append("answerable record lists no pages")
    evidence = rec.get("evidence")
    if not isinstance(evidence, str) or len(evidence) not in EVIDENCE_LENGTH:
        errors.append("evidence must be 20-120 characters")
    return errors


def kind_of(rec: dict) -> str:
    """Which count a record falls under."""
    if rec.get("unanswerable"):
        return "unanswerable"
    return "followups" if "first" in rec else "answerable"


def check(pdf: Path, devsets: list[Path]) -> tuple[dict[str, int], list[str]]:
    """Counts per kind of record, and one message per failure."""
    counts = {"answerable": 0, "unanswerable": 0, "followups": 0}
    failures, seen, texts = [], set(), {}
    with plain_pdf(pdf) as path:
        reader = PdfReader(path)
        for where, rec in load_records(devsets):
            kind, rid = kind_of(rec), rec.get("id")
            counts[kind] += 1
            errors = ["duplicate id"] if rid in seen else []
            seen.add(rid)
            errors += shape_errors(rec, len(reader.pages))
            if not errors and kind != "unanswerable":
                page = rec["pages"][0]
                if page not in texts:
                    texts[page] = page_variants(reader.pages[page - 1].extract_text())
                if not any(squash(rec["evidence"]) in text for text in texts[page]):
                    errors.append(f"evidence not on page {page}: {rec['evidence']!r}")
            failures += [f"{where} {rid}: {e}" for e in errors]
    return counts, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pdf",
        type=Path,
        default=default_pdf(),
        help=f"the Octave manual (default: {DEBIAN_PDF}[.gz] if installed)",
    )
    parser.add_argument(
        "--devset",
        type=Path,
        nargs="+",
        default=DEFAULT_DEVSETS,
        help="JSONL files to check (default: both files beside this script)",
    )
    args = parser.parse_args(argv)
    if args.pdf is None:
        parser.error(
            f"no --pdf given and {DEBIAN_PDF} not found (apt-get install octave-doc)"
        )

    counts, failures = check(args.pdf, args.devset)
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    if failures:
        print("\n".join(failures), file=sys.stderr)
        print(f"{summary}: {len(failures)} failure(s)")
        return 1
    print(f"{summary}: all evidence found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
