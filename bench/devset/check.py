"""Check the retrieval dev sets against the course files they were written from.

Every id must be unique across all the sets, every listed page must exist in
its file, and every evidence string must appear on the first page its record
lists. Before comparing, runs of whitespace are collapsed, and a hyphen that
ends a line is tried both dropped ("Depart-" + "ment" reads "Department") and
kept ("least-" + "squares" reads "least-squares"), as the text does not say
which it is. Otherwise the comparison is exact and case-sensitive.

Each corpus reads its pages as the mentor does:

- a PDF with a text layer: pypdf's text of the page;
- the scanned PDF: what OCR reads on it, through the mentor's own reader
  (``mentor.ingest.documents.read_pages`` with Tesseract), remembered under
  bench/out/corpora/ocr-cache/ as OCR takes about a minute;
- slides, Word files, Markdown: ``mentor.ingest.documents.read_pages``, whose
  ``Page.index`` is the page (a slide's number, a Word section's number,
  1 for a Markdown file without form feeds).

In a corpus of several files each record names its file (``file``). An
unanswerable record may list ``absent``: words that must appear nowhere in
the corpus (case-insensitive), which is what makes it unanswerable.

    python bench/devset/check.py                    # every corpus
    python bench/devset/check.py --corpus lshort    # one or more corpora
    python bench/devset/check.py --pdf PATH [--devset FILE ...]   # the Octave set against one PDF

Prints one summary line per corpus and exits 0, or lists every failure and
exits 1. The generated corpora (slides, scans, handouts) are made on first use
by ``bench/common.py: corpus``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
DEBIAN_PDF = Path("/usr/share/doc/octave/octave.pdf")  # apt-get install octave-doc
DEFAULT_DEVSETS = [HERE / "octave.jsonl", HERE / "octave_followups.jsonl"]
EVIDENCE_LENGTH = range(20, 121)


@dataclass(frozen=True)
class Corpus:
    devsets: tuple[str, ...]  # file names beside this script
    reading: str  # "text": pypdf or the mentor's reader; "ocr": the mentor's reader with OCR


CORPORA = {
    "octave": Corpus(("octave.jsonl", "octave_followups.jsonl"), "text"),
    "lshort": Corpus(("lshort.jsonl",), "text"),
    "slides": Corpus(("slides.jsonl",), "text"),
    "scanned": Corpus(("scanned.jsonl",), "ocr"),
    "mixed": Corpus(("mixed.jsonl",), "text"),
}


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
    """Counts per kind of record, and one message per failure: the Octave
    set (or any single-PDF set) against one PDF."""
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


# ---------------------------------------------------------------- every corpus


class Pages:
    """The page texts of one course file, as the corpus reads them: a PDF
    with a text layer page by page as needed, any other file whole, once."""

    def __init__(self, path: Path, reading: str):
        self.path, self.reading = path, reading
        self._pdf = PdfReader(path) if reading == "text" and path.suffix.lower() == ".pdf" else None
        self._texts: dict[int, str] = {}
        self._variants: dict[int, set[str]] = {}

    def __len__(self) -> int:
        if self._pdf is not None:
            return len(self._pdf.pages)
        self._read_all()
        return len(self._texts)

    def text(self, page: int) -> str:
        if page not in self._texts:
            if self._pdf is not None:
                self._texts[page] = self._pdf.pages[page - 1].extract_text() or ""
            else:
                self._read_all()
        return self._texts[page]

    def texts(self) -> list[str]:
        return [self.text(page) for page in range(1, len(self) + 1)]

    def variants(self, page: int) -> set[str]:
        if page not in self._variants:
            self._variants[page] = page_variants(self.text(page))
        return self._variants[page]

    def _read_all(self) -> None:
        if not self._texts:
            self._texts = dict(enumerate(_read(self.path, self.reading), 1))


def _read(path: Path, reading: str) -> list[str]:
    if reading == "ocr":
        return _ocr_texts(path)
    from mentor.ingest.documents import read_pages

    return [page.text for page in read_pages(path)]


def _ocr_texts(path: Path) -> list[str]:
    """What the mentor's OCR reads on each page, cached by the PDF's digest
    and the Tesseract version (another version reads differently)."""
    from common import OUT

    from mentor.ingest.documents import read_pages
    from mentor.ingest.ocr import OcrOptions, check_engine

    options = OcrOptions()
    check_engine(options)
    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
    engine = ((version.stdout or version.stderr).splitlines() or ["?"])[0]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache = OUT / "corpora" / "ocr-cache" / f"{path.stem}-{digest}.json"
    if cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("engine") == engine:
            return stored["pages"]
    print(f"OCR of {path.name} ({engine}), about 3 s a page ...", file=sys.stderr, flush=True)
    pages = list(read_pages(path, ocr=options))
    unread = [p.index for p in pages if not p.ocr]
    if unread:
        raise SystemExit(f"{path.name}: pages {unread} were not read by OCR: {pages[unread[0] - 1].problem}")
    texts = [p.text for p in pages]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"engine": engine, "pages": texts}), encoding="utf-8")
    return texts


def check_corpus(
    name: str, files: list[Path], seen: set[str], devsets: list[Path] | None = None
) -> tuple[dict[str, int], list[str]]:
    """Counts per kind of record, and one message per failure, for one corpus.
    ``seen``: ids met so far in other corpora (updated)."""
    corpus = CORPORA[name]
    devsets = devsets or [HERE / f for f in corpus.devsets]
    by_name = {f.name: Pages(f, corpus.reading) for f in files}
    several = len(files) > 1
    counts = {"answerable": 0, "unanswerable": 0, "followups": 0}
    failures = []
    for where, rec in load_records(devsets):
        kind, rid = kind_of(rec), rec.get("id")
        counts[kind] += 1
        errors = ["duplicate id"] if rid in seen else []
        seen.add(rid)
        named = rec.get("file")
        if kind != "unanswerable" and several and named is None:
            errors.append("a record in a corpus of several files must name its file")
        pages = None
        if named is not None and named not in by_name:
            errors.append(f"file {named!r} is not in the corpus ({', '.join(sorted(by_name))})")
        elif kind != "unanswerable":
            pages = by_name[named] if named is not None else next(iter(by_name.values()))
        errors += shape_errors(rec, len(pages) if pages else 10**9)
        if not errors and pages is not None:
            page = rec["pages"][0]
            if not any(squash(rec["evidence"]) in text for text in pages.variants(page)):
                errors.append(f"evidence not on page {page} of {pages.path.name}: {rec['evidence']!r}")
        for word in rec.get("absent", []):
            where_found = [
                f"{p.path.name} p.{i}" for p in by_name.values() for i, t in enumerate(p.texts(), 1) if word.lower() in t.lower()
            ]
            if where_found:
                errors.append(f"{word!r} is not absent: {', '.join(where_found[:3])}")
        failures += [f"{where} {rid}: {e}" for e in errors]
    return counts, failures


def _corpus_files(name: str) -> list[Path]:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    from common import corpus

    return corpus(name)


def summary_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", choices=sorted(CORPORA), help="corpora to check (default: all)")
    parser.add_argument(
        "--pdf", type=Path, help=f"check --devset (default: the Octave set) against this one PDF, e.g. {DEBIAN_PDF}[.gz]"
    )
    parser.add_argument("--devset", type=Path, nargs="+", help="JSONL files to check against --pdf")
    args = parser.parse_args(argv)

    if args.pdf or args.devset:  # the Octave set against one PDF, as before
        if args.corpus:
            parser.error("--corpus checks the sets against their own files: leave out --pdf and --devset")
        pdf = args.pdf or default_pdf()
        if pdf is None:
            parser.error(f"no --pdf given and {DEBIAN_PDF} not found (apt-get install octave-doc)")
        counts, failures = check(pdf, args.devset or DEFAULT_DEVSETS)
        return _report(None, counts, failures)

    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    status, seen = 0, set()
    for name in args.corpus or list(CORPORA):
        try:
            files = _corpus_files(name)
        except SystemExit as missing:  # common.CorpusMissing and the like
            print(f"{name}: cannot check: {missing}")
            status = 1
            continue
        counts, failures = check_corpus(name, files, seen)
        status |= _report(name, counts, failures)
    return status


def _report(name: str | None, counts: dict[str, int], failures: list[str]) -> int:
    prefix = f"{name}: " if name else ""
    if failures:
        print("\n".join(failures), file=sys.stderr)
        print(f"{prefix}{summary_line(counts)}: {len(failures)} failure(s)")
        return 1
    print(f"{prefix}{summary_line(counts)}: all evidence found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
