"""Ingestion: ours against the LlamaIndex starter, and the two floors.

    python bench/ingest.py --corpus r-manuals      # the seven R manuals, 677 pages
    python bench/ingest.py --corpus refman         # the R reference, 2,415 pages

Each phase runs in its own process, so that its peak memory is its own:

- parse:    pypdf over every page, one process (the parsing floor)
- ours:     Mentor.ingest() on a fresh MENTOR_HOME, then the same files again
            (re-ingest); saves the chunk texts for the next phase
- embed:    those same chunks through our Embedder (the embedding floor)
- baseline: SimpleDirectoryReader → VectorStoreIndex → local Qdrant, then the
            same files again (the starter has no dedup)

Peak RSS is the peak of the sum over the phase's process and its children
(our parser runs in child processes), including the loaded models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import (
    OUT,
    Baseline,
    PeakRSS,
    baseline_embedder,
    begin,
    corpus,
    disk_bytes,
    fresh_dir,
    log,
    mentor_settings,
    open_mentor,
    ratio,
    run_json,
    timed,
    write_result,
)

PHASES = ["parse", "ours", "embed", "baseline"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", choices=["r-manuals", "refman", "octave"], default="r-manuals")
    p.add_argument("--files", type=Path, nargs="+", help="PDFs to ingest instead of a named corpus")
    p.add_argument("--work", type=Path, help="scratch folder (default bench/out/ingest/<corpus>)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/ingest-<corpus>.json)")
    p.add_argument("--no-baseline-reingest", action="store_true", help="skip timing the starter's second run")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # internal: one phase, JSON on stdout
    args = p.parse_args(argv)
    begin()

    files = [f.resolve() for f in args.files] if args.files else corpus(args.corpus)
    name = "smoke" if args.smoke else args.corpus
    work = (args.work or OUT / "ingest" / name).resolve()
    if args.phase:
        figures = PHASE_RUNNERS[args.phase](files, work, args)
        print(json.dumps(figures))
        return 0

    fresh_dir(work)
    common_args = ["--work", str(work), "--files", *map(str, files)]
    if args.no_baseline_reingest:
        common_args.append("--no-baseline-reingest")
    if args.smoke:  # one process: the smoke run checks the figures, not the memory
        runs = {phase: PHASE_RUNNERS[phase](files, work, args) for phase in PHASES}
    else:
        runs = {phase: run_json([__file__, "--phase", phase, *common_args]) for phase in PHASES}
    write_result(f"ingest-{name}", summarize(files, runs), script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


def summarize(files: list[Path], runs: dict) -> dict:
    ours, base, parse, embed = runs["ours"], runs["baseline"], runs["parse"], runs["embed"]
    floor = max(parse["wall_s"], embed["wall_s"])
    return {
        "corpus": {
            "files": [f.name for f in files],
            "pages": parse["pages"],
            "megabytes": round(sum(f.stat().st_size for f in files) / 2**20, 1),
        },
        "ours": ours,
        "baseline": base,
        "floors": {
            "parse": parse,
            "embed": embed,
            "max_parse_embed_s": round(floor, 2),
            "sum_parse_embed_s": round(parse["wall_s"] + embed["wall_s"], 2),
        },
        "ratios": {
            # > 1 means slower / bigger than the reference.
            "ours_wall_vs_floor": ratio(ours["wall_s"], floor),
            "ours_wall_vs_baseline": ratio(ours["wall_s"], base["wall_s"]),
            "ours_peak_rss_vs_baseline": ratio(ours["peak_rss_mib"], base["peak_rss_mib"]),
            "ours_index_bytes_vs_baseline": ratio(ours["index_bytes"], base["index_bytes"]),
            "ours_reingest_vs_ingest": ratio(ours["reingest_s"], ours["wall_s"], 4),
        },
    }


def _rates(wall: float, pages: int, chunks: int | None = None) -> dict:
    rates = {"wall_s": round(wall, 2), "pages": pages, "pages_per_s": round(pages / wall, 1)}
    if chunks is not None:
        rates |= {"chunks": chunks, "chunks_per_s": round(chunks / wall, 1)}
    return rates


def run_parse(files: list[Path], work: Path, args) -> dict:
    from pypdf import PdfReader

    pages = chars = 0
    with PeakRSS() as rss, timed() as t:
        for f in files:
            for page in PdfReader(f).pages:
                chars += len(page.extract_text() or "")
                pages += 1
    return {**_rates(t.seconds, pages), "characters": chars, "peak_rss_mib": rss.peak_mib}


def run_ours(files: list[Path], work: Path, args) -> dict:
    home = work / "ours"
    with timed() as opening:
        mentor = open_mentor(home, fresh=True)
    try:
        with PeakRSS() as rss, timed() as t:
            results = mentor.ingest(files)
        failed = [r.line() for r in results if not r.ok]
        if failed:
            raise SystemExit(f"ingestion failed: {failed}")
        with timed() as again:
            repeat = mentor.ingest(files)
        texts = _chunk_texts(mentor)
    finally:
        mentor.close()
    (work / "chunks.json").write_text(json.dumps(texts))
    pages, chunks = sum(r.pages for r in results), sum(r.chunks for r in results)
    return {
        **_rates(t.seconds, pages, chunks),
        "open_s": round(opening.seconds, 2),
        "start_rss_mib": rss.start_mib,
        "peak_rss_mib": rss.peak_mib,
        "index_bytes": disk_bytes(home / "index"),
        # MENTOR_HOME also keeps each original PDF (for the viewer links).
        "home_bytes": disk_bytes(home),
        "reingest_s": round(again.seconds, 4),
        "reingest_outcomes": sorted({r.outcome.value for r in repeat}),
        "chunk_tokens": mentor.settings.chunk_tokens,
        "chunk_overlap": mentor.settings.chunk_overlap,
        "embed_batch_size": mentor.settings.embed_batch_size,
    }


def _chunk_texts(mentor) -> list[str]:
    """Every chunk's text, read back from the store in ingestion order (so
    the embedding floor sees the same batches as the pipeline did)."""
    texts = []
    for doc in mentor.documents():
        texts += [r.text for r in sorted(mentor.index.records(doc.doc_id), key=lambda r: r.chunk_no)]
    return texts


def run_embed(files: list[Path], work: Path, args) -> dict:
    from mentor.index.embed import Embedder

    settings = mentor_settings(work / "unused")
    texts = json.loads((work / "chunks.json").read_text())
    embedder = Embedder(settings.embed_model, settings.embed_batch_size)
    with PeakRSS() as rss, timed() as t:
        embedder.embed(texts)
    return {
        "wall_s": round(t.seconds, 2),
        "chunks": len(texts),
        "chunks_per_s": round(len(texts) / t.seconds, 1),
        "batch_size": settings.embed_batch_size,
        "peak_rss_mib": rss.peak_mib,
    }


def run_baseline(files: list[Path], work: Path, args) -> dict:
    path = fresh_dir(work / "baseline")
    embed_model = baseline_embedder()
    baseline = Baseline(path / "qdrant", embed_model)
    try:
        with PeakRSS() as rss, timed() as t:
            pages = baseline.ingest(files)
        chunks = baseline.count()
        figures = {
            **_rates(t.seconds, pages, chunks),
            "start_rss_mib": rss.start_mib,
            "peak_rss_mib": rss.peak_mib,
            "embed_batch_size": embed_model.embed_batch_size,
            "index_bytes": disk_bytes(path / "qdrant"),
        }
        if not args.no_baseline_reingest:
            log("baseline: the same files again")
            with timed() as again:
                baseline.ingest(files)
            figures |= {"reingest_s": round(again.seconds, 2), "reingest_chunks_after": baseline.count()}
    finally:
        baseline.close()
    return figures


PHASE_RUNNERS = {"parse": run_parse, "ours": run_ours, "embed": run_embed, "baseline": run_baseline}

if __name__ == "__main__":
    sys.exit(main())
