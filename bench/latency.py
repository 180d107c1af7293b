"""Search latency, memory and opening time of the index at four sizes:
Qdrant Edge as the app leaves it and optimized, beside qdrant-client's
local mode (the index of earlier versions), on the same points.

    python bench/latency.py

The sizes:

- real-small: the seven R manuals (677 pages, about 3.5k chunks);
- real-large: the same and the R reference (3,092 pages, about 15k);
- synthetic-small, synthetic-large: 20k and 100k chunks (``--synthetic``):
  random unit vectors, and texts made of sentences drawn from real-large's
  chunks, so that BM25 sees real terms and real lengths. They are written
  in documents of 500 chunks through ``Library.restore`` (the path a backup
  import takes: no embedding), so they are real MENTOR_HOMEs that
  ``Mentor.search`` can search.

Each size in three states, each opened, held and searched in a fresh
process of its own (``latency_process.py`` says what it times):

- local mode: the same points (dense vectors, payloads, the same BM25
  keyword vectors) in ``QdrantClient(path=...)``;
- Edge as the app leaves it: the points as written, never optimized. The
  app never calls ``Library.optimize()``, which holds the GIL throughout,
  so an upload through the app stays in Edge's appendable segment, searched
  exhaustively, until the next command-line write;
- Edge optimized: after ``Library.optimize()``, as ``python -m mentor
  ingest`` runs it; its time is measured here, on a copy, at every run.

Then one more process times the whole search (``Mentor.search``: the
question embedded by MiniLM, the store's part, the fusion per page) on
each Edge home in turn, with one embedder loaded once, as the app holds it.

The real homes, the synthetic homes and the local-mode copies are built once
under bench/out/homes and reused while what they are made from is unchanged
(the first run ingests 15k chunks through MiniLM: minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

from common import (
    DEVSET,
    OUT,
    Contention,
    begin,
    corpus,
    disk_bytes,
    fresh_dir,
    load_jsonl,
    log,
    open_mentor,
    prepared,
    prepared_home,
    run_json,
    stamp_of,
    timed,
    write_result,
)

SEED = 14
# Chunks per synthetic document (about a 170-page PDF), and per page.
DOCUMENT_CHUNKS = 500
PAGE_CHUNKS = 3
LOCAL_COLLECTION = "course"
STATES = ("local", "edge_app", "edge_optimized")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small-files", type=Path, nargs="+", help="real-small's files (default: the R manuals)")
    p.add_argument("--extra-files", type=Path, nargs="+", help="added for real-large (default: the R reference)")
    p.add_argument("--synthetic", type=int, nargs=2, metavar=("SMALL", "LARGE"), help="synthetic sizes in chunks (default 20000 100000)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl", help="the questions asked")
    p.add_argument("--reps", type=int, default=3, help="times each question is asked of the store")
    p.add_argument("--whole-reps", type=int, default=2, help="times each question is asked of Mentor.search")
    p.add_argument("--budget-s", type=float, default=60.0, help="most seconds one measurement may take (local mode's keyword search)")
    p.add_argument("--work", type=Path, help="scratch folder (default bench/out/latency)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/latency.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    small = [f.resolve() for f in args.small_files] if args.small_files else corpus("r-manuals")
    extra = [f.resolve() for f in args.extra_files] if args.extra_files else corpus("refman")
    synthetic = args.synthetic or ((40, 120) if args.smoke else (20_000, 100_000))
    work = fresh_dir((args.work or OUT / ("latency-smoke" if args.smoke else "latency")).resolve())

    small_name = "-".join(f.stem for f in args.small_files) if args.small_files else "r-manuals"
    large_name = "-".join(f.stem for f in args.extra_files) if args.extra_files else "refman"
    homes = {"real-small": prepared_home(small_name, small)}
    homes["real-large"] = prepared_home(f"{small_name}+{large_name}", small + extra)
    homes["synthetic-small"] = synthetic_home(synthetic[0], homes["real-large"])
    homes["synthetic-large"] = synthetic_home(synthetic[1], homes["real-large"])
    questions = write_questions(homes["real-small"], load_jsonl(args.devset), work / "questions.json")
    from mentor.index.retrieve import DEPTH

    settings = {"reps": args.reps, "whole_reps": args.whole_reps, "budget_s": args.budget_s, "depth": DEPTH}
    sizes = {}
    for key, home in homes.items():
        log(f"{key}: {home}")
        # MiniLM in a process holding local mode: once, at the largest size.
        embed_alone = key == "synthetic-large"
        sizes[key] = measure_size(home, local_copy(home), work / key, work / "questions.json", settings, embed_alone)
        sizes[key]["kind"] = key.split("-")[0]
    log("the whole search, each Edge home in turn")
    whole = {
        "measure": "whole",
        "homes": [{"key": key, "state": state, "home": str(work / key / state)} for key in homes for state in STATES[1:]],
        "questions": str(work / "questions.json"),
        "whole_reps": args.whole_reps,
    }
    for key, states in run_process(whole, work / "whole.json").items():
        for state, figures in states.items():
            sizes[key]["engines"][state]["whole"] = figures
    figures = {"questions": len(questions), **settings, "sizes": sizes}
    write_result("latency", figures, script=__file__, argv=argv, out=args.out, smoke=args.smoke)
    return 0


# ---------------------------------------------------------------- what is searched


def write_questions(home: Path, devset: list[dict], path: Path) -> list[dict]:
    """Each question with its MiniLM vector and its BM25 query vector, made
    once, so that the store's part is timed without loading an embedder."""
    from mentor.index.store import Keywords

    keywords = Keywords()
    with open_mentor(home) as mentor:
        questions = [
            {"question": q["question"], "dense": mentor.embedder.embed_query(q["question"]), "keywords": keywords.query(q["question"])}
            for q in devset
        ]
    path.write_text(json.dumps(questions))
    return questions


def synthetic_home(chunks: int, source: Path) -> Path:
    """A MENTOR_HOME of ``chunks`` synthetic chunks (see the module's docstring)."""
    import qdrant_edge  # noqa: F401 - its version is part of what the home is made from

    wanted = {
        "chunks": chunks,
        "document_chunks": DOCUMENT_CHUNKS,
        "seed": SEED,
        "texts_from": [source.name, stamp_of(source)],
        "qdrant-edge-py": _version("qdrant-edge-py"),
    }
    return prepared(OUT / "homes" / f"synthetic-{chunks}", wanted, lambda home: _write_synthetic(home, chunks, source), _current)


def _current(home: Path) -> bool:
    with open_mentor(home) as mentor:
        return not mentor.library.rebuild_reason()


def _write_synthetic(home: Path, chunks: int, source: Path) -> None:
    import numpy as np

    from mentor.course.registry import Document
    from mentor.index.store import ChunkRecord

    texts = Texts.of(source)
    rng = np.random.default_rng(SEED)
    with timed() as t, open_mentor(home, fresh=True) as mentor:
        dimension = mentor.embedder.dimension
        for number, start in enumerate(range(0, chunks, DOCUMENT_CHUNKS)):
            n = min(DOCUMENT_CHUNKS, chunks - start)
            parts = [texts.chunk(rng) for _ in range(n)]
            original = "\n\n".join(text for _, text in parts).encode()
            doc_id, name = hashlib.sha256(original).hexdigest(), f"synthetic-{number:04d}.txt"
            vectors = rng.standard_normal((n, dimension)).astype("float32")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            records = (
                ChunkRecord(doc_id, name, i, i // PAGE_CHUNKS + 1, str(i // PAGE_CHUNKS + 1), text, vectors[i].tolist(), section)
                for i, (section, text) in enumerate(parts)
            )
            added_at = datetime.now(UTC).isoformat(timespec="seconds")
            document = Document(doc_id, name, len(original), (n - 1) // PAGE_CHUNKS + 1, n, added_at, "ready")
            mentor.library.restore(document, io.BytesIO(original), ".txt", records)
    log(f"wrote {chunks:,} synthetic chunks in {t.seconds:.0f} s")


class Texts:
    """Sentences, sections and chunk lengths of a real index, to make
    synthetic chunks from."""

    def __init__(self, sentences: list[str], sections: list[str], lengths: list[int]):
        self.sentences, self.sections, self.lengths = sentences, sections, lengths

    @classmethod
    def of(cls, home: Path) -> Texts:
        sentences, sections, lengths = [], [], []
        with open_mentor(home) as mentor:
            for doc in mentor.documents():
                for record in mentor.index.records(doc.doc_id):
                    sentences += [s for s in re.split(r"(?<=[.!?])\s+|\n+", record.text) if len(s.split()) >= 3]
                    sections.append(record.section)
                    lengths.append(len(record.text))
        return cls(sentences, sections, lengths)

    def chunk(self, rng) -> tuple[str, str]:
        """A section trail and a text as long as a real chunk, both drawn at random."""
        length = self.lengths[rng.integers(len(self.lengths))]
        text = ""
        while len(text) < length:
            text += self.sentences[rng.integers(len(self.sentences))] + " "
        return self.sections[rng.integers(len(self.sections))], text.strip()


def local_copy(home: Path) -> Path:
    """The points of ``home``'s live index (vectors, payloads, BM25 keyword
    vectors made again by the same ``Keywords``) in qdrant-client's local mode."""
    wanted = {"home": [home.name, stamp_of(home)], "qdrant-client": _version("qdrant-client")}
    return prepared(home.parent / f"{home.name}.local", wanted, lambda folder: _write_local(folder, home))


def _write_local(folder: Path, home: Path) -> None:
    from qdrant_client import QdrantClient

    from mentor.index.store import Keywords
    from mentor.index.store.server import ServerStore

    # Local mode commits every point on its own; on a disk that syncs each
    # commit, 100k points take half an hour. Written in memory (tmpfs), then
    # moved: the files are the same.
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="mentor-bench-local-", dir=shm if shm.is_dir() else folder.parent))
    try:
        with timed() as t, open_mentor(home) as mentor:
            client = QdrantClient(path=str(scratch))
            with warnings.catch_warnings():  # "payload indexes have no effect in the local Qdrant"
                warnings.simplefilter("ignore")
                index = ServerStore(client, Keywords()).open(LOCAL_COLLECTION, mentor.embedder.dimension)
            for doc in mentor.documents():
                batch = []
                for record in mentor.index.records(doc.doc_id):
                    batch.append(record)
                    if len(batch) == 256:
                        index.add(batch)
                        batch = []
                index.add(batch)
            client.close()
        shutil.move(str(scratch), str(folder))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"wrote {folder} in {t.seconds:.0f} s")


def _version(package: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(package)


# ---------------------------------------------------------------- measuring


def measure_size(home: Path, local: Path, work: Path, questions: Path, settings: dict, embed_alone: bool) -> dict:
    """The three states of one index, each in a process of its own; the Edge
    homes are left in ``work/<state>`` for the whole search."""
    work.mkdir(parents=True)
    app, optimized = work / "edge_app", work / "edge_optimized"
    shutil.copytree(home, app)
    shutil.copytree(home, optimized)
    with open_mentor(optimized) as mentor:
        docs = mentor.documents()
        name, dimension = mentor.index.name, mentor.embedder.dimension
        shard = Path(mentor.settings.index_dir) / name
        contention = Contention()
        log(f"optimizing {mentor.index.count():,} points")
        with timed() as t:
            mentor.library.optimize()
    optimize = {"seconds": round(t.seconds, 2), "other_processes_cores": contention.figures()["other_processes_cores"]}
    log(f"optimized in {t.seconds:.1f} s")
    common = {"measure": "index", "dimension": dimension, "doc_ids": [d.doc_id for d in docs], "questions": str(questions), **settings}
    specs = {
        "local": {"engine": "local", "path": str(local), "name": LOCAL_COLLECTION, "embed_alone": embed_alone},
        "edge_app": {"engine": "edge", "path": str(app / shard.relative_to(optimized)), "name": name},
        "edge_optimized": {"engine": "edge", "path": str(shard), "name": name},
    }
    engines = {}
    for state in STATES:
        engines[state] = run_process(common | specs[state], work / f"{state}.json")
        store = engines[state]["store_ms"]
        log(f"{state}: open {engines[state]['open_s']} s; store p50 dense {store['dense']['p50']}, keywords {store['keywords']['p50']}, search {store['search']['p50']} ms")
    return {
        "files": sorted(d.name for d in docs) if not home.name.startswith("synthetic-") else [],
        "documents": len(docs),
        "pages": sum(d.pages for d in docs),
        "chunks": sum(d.chunks for d in docs),
        "optimize": optimize,
        "disk_mib": {
            "local": round(disk_bytes(local) / 2**20, 1),
            "edge_app": round(disk_bytes(app / "index") / 2**20, 1),
            "edge_optimized": round(disk_bytes(optimized / "index") / 2**20, 1),
        },
        "engines": engines,
    }


def run_process(spec: dict, path: Path) -> dict:
    """A fresh ``latency_process.py`` on ``spec`` (written to ``path``); what it found."""
    path.write_text(json.dumps(spec))
    return run_json([str(Path(__file__).with_name("latency_process.py")), str(path)])


if __name__ == "__main__":
    sys.exit(main())
