"""How often the viewer can mark a cited passage on its page.

    python bench/highlight.py [--k 5] [--questions N] [--corpora octave scanned]

For every dev-set question about the Octave manual (bench/devset/octave.jsonl),
and about gnuplot's manual as scanned pages read by OCR (scanned.jsonl), the
top-k hits of the app's own search; for each distinct chunk they cite,
the product's own locating code (``mentor.ingest.locate.passage_boxes``,
what ``/view/<doc>/passage`` runs) looks for the chunk's text, as indexed,
on its page. Figures:

- ``located``: the share of cited chunks for which boxes came back (the
  viewer marks them); the rest open the page unmarked, with a note.
- ``right_place``: of the located ones, the share whose marks hold the
  chunk: PDFium's own text inside the boxes, read back independently,
  contains at least 80% of the chunk's words. A located chunk that fails
  this is a mark in the wrong place, the one outcome the viewer must avoid.
- the time to locate one chunk (opening the PDF and reading the page
  included: what a student's first click costs; the server remembers it).

The matching runs in Python on the server, not in the browser, so this
script measures the very code the viewer uses, and the chat's preview
pictures come from the same boxes.
"""

from __future__ import annotations

import argparse
import json
import re
import time

from common import (
    DEVSET,
    RESULTS,
    begin,
    corpus,
    load_jsonl,
    log,
    octave_pdf,
    open_mentor,
    prepared_home,
    summary,
    write_result,
)

WORD = re.compile(r"[^\W_]+")
RIGHT_PLACE = 0.8


# The dev sets measured: their questions, and the files their index holds.
CORPORA = {
    "octave": ("octave.jsonl", lambda: [octave_pdf()]),
    # gnuplot's manual as 300-dpi scans, read by OCR (bench/devset/make_scans.py).
    "scanned": ("scanned.jsonl", lambda: corpus("scanned")),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=5, help="hits per question")
    p.add_argument("--questions", type=int, default=0, help="only the first N questions of each set (0: all)")
    p.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    args = p.parse_args(argv)
    begin()
    figures = {name: _corpus_figures(name, args.k, args.questions) for name in args.corpora}
    # A run of some corpora keeps the others' figures from an earlier run.
    earlier = RESULTS / "highlight.json"
    if earlier.exists() and set(args.corpora) != set(CORPORA):
        figures = {**json.loads(earlier.read_text()).get("corpora", {}), **figures}
    write_result("highlight", {"k": args.k, "corpora": figures}, script=__file__, argv=argv)
    return 0


def _corpus_figures(name: str, k: int, limit: int) -> dict:
    questions_file, files = CORPORA[name]
    questions = load_jsonl(DEVSET / questions_file)[: limit or None]
    files = files()
    with open_mentor(prepared_home(name, files)) as mentor:
        cited = {}
        for q in questions:
            for hit in mentor.search(q["question"], k=k):
                cited.setdefault((hit.doc_id, hit.chunk_no), hit.page)
        log(f"{name}: {len(questions)} questions, {len(cited)} distinct chunks cited in their top {k}")
        rows = [_measure(mentor, mentor.stored_file(doc_id), doc_id, chunk_no) for doc_id, chunk_no in cited]
    figures = {"files": [f.name for f in files], "questions": len(questions), **_figures(rows)}
    log(f"{name}: located {figures['located']:.3f}, right place {figures['right_place']:.3f}")
    return figures


def _measure(mentor, pdf, doc_id: str, chunk_no: int) -> dict:
    from mentor.ingest.locate import passage_boxes

    chunk = mentor.index.chunk(doc_id, chunk_no)
    words = mentor.library.ocr_words(doc_id, chunk.page)
    started = time.perf_counter()
    boxes = passage_boxes(pdf, chunk.page, chunk.text, words)
    seconds = time.perf_counter() - started
    row = {"chunk": chunk_no, "page": chunk.page, "seconds": seconds, "located": bool(boxes), "lines": len(boxes)}
    row["ocr"] = bool(words)
    if boxes:
        marked = _ocr_text_in(words, boxes) if words else _text_in(pdf, chunk.page, boxes)
        row["coverage"] = _coverage(chunk.text, marked)
    else:
        row["start"] = " ".join(chunk.text.split())[:80]
    return row


def _coverage(chunk: str, marked: str) -> float:
    """The share of the chunk's words (hyphenated line ends joined) found among the marked ones."""
    want = WORD.findall(re.sub(r"-\s*\n\s*", "", chunk).casefold())
    have = set(WORD.findall(re.sub(r"[-\u0002]\s*\n\s*", "", marked).casefold()))
    return sum(w in have for w in want) / max(1, len(want))


def _ocr_text_in(lines, boxes) -> str:
    """The words OCR read whose centres lie inside one of ``boxes``."""
    inside = []
    for word, x0, y0, x1, y1 in (w for line in lines for w in line):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if any(b.x0 <= cx <= b.x1 and b.y0 <= cy <= b.y1 for b in boxes):
            inside.append(word)
    return " ".join(inside)


def _text_in(pdf, page: int, boxes) -> str:
    """PDFium's text inside ``boxes`` on the page, read independently of the locating."""
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        sheet = document[page - 1]
        w, h = sheet.get_size()
        text = sheet.get_textpage()
        return " ".join(text.get_text_bounded(b.x0 * w, (1 - b.y1) * h, b.x1 * w, (1 - b.y0) * h) for b in boxes)
    finally:
        document.close()


def _figures(rows: list[dict]) -> dict:
    located = [r for r in rows if r["located"]]
    right = [r for r in located if r["coverage"] >= RIGHT_PLACE]
    return {
        "chunks": len(rows),
        "read_by_ocr": sum(r["ocr"] for r in rows),
        "located": round(len(located) / max(1, len(rows)), 4),
        "right_place": round(len(right) / max(1, len(located)), 4),
        "coverage_mean": round(sum(r["coverage"] for r in located) / max(1, len(located)), 4),
        "locate_seconds": summary([r["seconds"] for r in rows]),
        "not_located": [{k: r[k] for k in ("chunk", "page", "start")} for r in rows if not r["located"]],
        "wrong_place": [{k: r[k] for k in ("chunk", "page", "coverage")} for r in located if r["coverage"] < RIGHT_PLACE],
    }


if __name__ == "__main__":
    raise SystemExit(main())
