"""Where ingestion spends its time: a profile of Mentor.ingest.

    python bench/profile_ingest.py --corpus r-manuals

Ingestion runs on three threads of control: a child process extracts page
text (pypdf), a producer thread cuts pages into chunks (the llama-index
SentenceSplitter counting MiniLM word pieces), and the calling thread embeds
batches and writes them to Qdrant. So:

1. pyinstrument samples the calling thread during Mentor.ingest (the tree
   goes to bench/results/profile-ingest.txt);
2. the calling thread's time is split exactly, by wrapping the embedder, the
   store and the keyword vectors (bench-side only), the rest being the wait
   for chunks;
3. the producer's work is timed alone: the same pages, parsed beforehand,
   through the same Chunker, with its token counting timed too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import OUT, RESULTS, begin, corpus, log, open_mentor, timed, write_result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", choices=["r-manuals", "refman", "octave"], default="r-manuals")
    p.add_argument("--files", type=Path, nargs="+", help="PDFs to ingest instead of a named corpus")
    p.add_argument("--work", type=Path, help="scratch folder (default bench/out/profile)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/profile-ingest.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    from pyinstrument import Profiler

    files = [f.resolve() for f in args.files] if args.files else corpus(args.corpus)
    out = args.out or (OUT / "smoke" if args.smoke else RESULTS) / "profile-ingest.json"
    work = (args.work or OUT / ("profile-smoke" if args.smoke else "profile")).resolve()

    mentor = open_mentor(work / "home", fresh=True)
    try:
        spent = _wrap(mentor)
        profiler = Profiler(interval=0.002)
        log("profiling Mentor.ingest over", len(files), "files")
        with timed() as t:
            profiler.start()
            results = mentor.ingest(files)
            profiler.stop()
        chunks = sum(r.chunks for r in results)
        producer = _producer_alone(mentor, files)
    finally:
        mentor.close()

    tree = profiler.output_text(unicode=True, color=False)
    flat = profiler.output_text(unicode=True, color=False, flat=True)
    text_path = out.with_name("profile-ingest.txt")
    text_path.write_text(f"# pyinstrument, calling thread of Mentor.ingest\n\n{tree}\n\n# flat (self time)\n\n{flat}")
    main_thread = {key: round(v, 2) for key, v in spent.items()}
    busy = sum(main_thread.values())
    main_thread["waiting_for_chunks_and_other"] = round(t.seconds - busy, 2)
    figures = {
        "files": [f.name for f in files],
        "pages": sum(r.pages for r in results),
        "chunks": chunks,
        "wall_s": round(t.seconds, 2),
        "calling_thread_s": main_thread,
        "calling_thread_share": {k: round(v / t.seconds, 3) for k, v in main_thread.items()},
        "producer_alone_s": producer,
        "top_self_time": _top_self(profiler.last_session, 12),
        "profile_text": text_path.name,
    }
    write_result("profile-ingest", figures, script=__file__, argv=argv, out=out, smoke=args.smoke)
    return 0


def _wrap(mentor) -> dict[str, float]:
    """Adds up the calling thread's time in the embedder, the store and the
    keyword vectors, by wrapping them on this mentor (mentor/ is untouched)."""
    from mentor.index.store import Keywords

    spent = {"embed": 0.0, "store_add": 0.0, "keyword_vectors": 0.0}

    def wrap(owner, name, key):
        inner = getattr(owner, name)

        def wrapper(*a, **kw):
            with timed() as t:
                result = inner(*a, **kw)
            spent[key] += t.seconds
            return result

        setattr(owner, name, wrapper)

    wrap(mentor.embedder, "embed", "embed")
    wrap(mentor.index, "add", "store_add")
    wrap(Keywords, "document", "keyword_vectors")
    return spent


def _producer_alone(mentor, files: list[Path]) -> dict:
    """The producer thread's two jobs, timed apart: receiving pages from the
    parsing child, and chunking them (token counting included)."""
    from mentor.ingest.documents import PageLimits, read_pages

    with timed() as parse:
        pages = [page for f in files for page in read_pages(f, PageLimits())]
    chunker = mentor.library.live().pipeline.chunker
    counted = {"calls": 0, "s": 0.0}
    tokenize = mentor.embedder.tokenize

    def counting(text):
        with timed() as t:
            ids = tokenize(text)
        counted["calls"] += 1
        counted["s"] += t.seconds
        return ids

    chunker._splitter._tokenizer = counting  # bench-side: counts the splitter's tokenizer calls
    with timed() as chunking:
        n = sum(1 for _ in chunker.chunks(pages))
    chunker._splitter._tokenizer = tokenize
    return {
        "parse_pages_s": round(parse.seconds, 2),
        "chunk_s": round(chunking.seconds, 2),
        "chunks": n,
        "tokenizer_calls": counted["calls"],
        "tokenizer_s": round(counted["s"], 2),
    }


def _top_self(session, n: int) -> list[dict]:
    """The functions with the most self time on the calling thread."""
    from collections import Counter

    totals: Counter = Counter()
    root = session.root_frame()

    def walk(frame):
        key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        totals[key] += frame.total_self_time
        for child in frame.children:
            walk(child)

    if root:
        walk(root)
    duration = session.duration or 1
    return [{"function": k, "self_s": round(v, 2), "share": round(v / duration, 3)} for k, v in totals.most_common(n)]


if __name__ == "__main__":
    sys.exit(main())
