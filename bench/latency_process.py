"""The measuring processes of bench/latency.py, each started fresh.

    python bench/latency_process.py SPEC.json      # prints one JSON line

SPEC is a JSON object whose ``measure`` says which:

- ``index``: one index, in one state, opened cold, held and searched. One
  process per index and state, so that the open is a cold start (the OS
  file cache aside), the memory is this index's, and no other index's
  Python objects slow its searches. No embedder is loaded: the questions
  come embedded. Keys: ``engine`` ("edge" or "local"), ``path`` (the Edge
  shard's folder, or the local-mode folder), ``name`` (the Edge index, or
  the local-mode collection), ``dimension``, ``depth`` (candidates per
  query, as the mentor asks), ``doc_ids`` (the documents a search may
  return), ``questions`` (a JSON file of ``{question, dense, keywords}``),
  ``reps``, ``budget_s``, and ``embed_alone`` (local mode: also time MiniLM
  in this process).
- ``whole``: ``Mentor.search`` on each of ``homes`` (``{key, state, home}``)
  in turn, with one embedder loaded once, as the app holds one. Keys:
  ``homes``, ``questions``, ``whole_reps``.

What an ``index`` process times, in this order:

1. open: the index opened as the mentor opens it (``EdgeShard.load``;
   ``QdrantClient(path=...)``, which loads every point), then the first
   query by meaning; the process's memory before and after.
2. the engine alone: the query by meaning and the keyword query (BM25, IDF
   applied by the engine), top ``depth``, with payloads and dense vectors,
   no filter (every document is ready).
3. the store's part of a search, as the mentor calls it: ``Index.search``
   (both queries, filtered to ``doc_ids``, answers turned into ``Hit``s).
4. with ``embed_alone``: MiniLM embedding the questions in this process,
   to show what a heap of Python points (local mode) does to it.

A ``whole`` process splits each search into the question's embedding, the
store's part and the rest, by timing the embedder's and the index's calls
inside it, and checks the split: the embedding is timed alone too, and the
garbage collector's pauses are counted.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Self

from common import mentor_settings, minilm_folder, rss_mib, summary, timed

# Questions asked before timing (caches, lazy initialisation).
WARMUP = 5
# A measurement stops early once its time budget is spent, with at least these many samples.
MIN_SAMPLES = 5


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    questions = json.loads(Path(spec["questions"]).read_text())
    measure = measure_index if spec["measure"] == "index" else measure_whole
    print(json.dumps(measure(spec, questions)))
    return 0


def measure_index(spec: dict, questions: list[dict]) -> dict:
    from mentor.index.store import DENSE, KEYWORDS, Keywords

    engine = EdgeEngine(spec, DENSE, KEYWORDS) if spec["engine"] == "edge" else LocalEngine(spec, DENSE, KEYWORDS)
    result: dict = {"engine": spec["engine"]}
    rss = {"before_open": rss_mib()}
    with timed() as opening:
        engine.open()
    with timed() as first:
        engine.dense(questions[0])
    rss["holding_index"] = rss_mib()
    result |= {"open_s": round(opening.seconds, 3), "first_query_ms": round(first.seconds * 1000, 2)}
    result |= engine.describe()

    asked = [q for q in questions if q["keywords"][0]]  # a question with no keyword asks nothing of BM25
    for q in asked[:WARMUP]:
        engine.dense(q)
        engine.keywords(q)
    reps, budget = spec["reps"], spec["budget_s"]
    store = {
        "dense": timings(engine.dense, asked, reps, budget),
        "keywords": timings(engine.keywords, asked, reps, budget),
    }
    index = engine.index(Keywords())
    doc_ids = spec["doc_ids"]

    def search(q: dict) -> None:
        index.search(q["dense"], q["question"], doc_ids, spec["depth"])

    search(asked[0])
    store["search"] = timings(search, asked, reps, budget)
    result["store_ms"] = store
    rss["after_searches"] = rss_mib()
    result["python_objects"] = len(gc.get_objects())
    result["rss_mib"] = {k: round(v, 1) for k, v in rss.items()}
    engine.close()
    if spec.get("embed_alone"):
        result["embed_alone_ms"] = embed_alone([q["question"] for q in questions])
    return result


def measure_whole(spec: dict, questions: list[dict]) -> dict:
    """``{key: {state: whole_search(...)}}`` for each of ``spec["homes"]``."""
    from mentor.index.embed import Embedder

    embedder = Embedder(str(minilm_folder()))
    asked = [q["question"] for q in questions]
    found: dict[str, dict] = {}
    for h in spec["homes"]:
        found.setdefault(h["key"], {})[h["state"]] = whole_search(Path(h["home"]), embedder, asked, spec["whole_reps"])
    return found


def timings(search, questions: list[dict], reps: int, budget_s: float) -> dict:
    """``search(q)`` for each question, ``reps`` times over, each call timed
    (ms); stops early once ``budget_s`` is spent (``capped`` says so)."""
    spent: list[float] = []
    start = time.perf_counter()
    for _ in range(reps):
        for q in questions:
            with timed() as t:
                search(q)
            spent.append(t.seconds)
            if time.perf_counter() - start > budget_s and len(spent) >= MIN_SAMPLES:
                return summary(spent, 1000, 3) | {"capped": True}
    return summary(spent, 1000, 3) | {"capped": False}


class EdgeEngine:
    """An Edge shard, opened as ``EdgeIndex.open`` opens one."""

    def __init__(self, spec: dict, dense: str, keywords: str):
        import qdrant_edge as qe

        self.qe, self.spec, self.using = qe, spec, (dense, keywords)
        self.shard = None

    def open(self) -> None:
        self.shard = self.qe.EdgeShard.load(self.spec["path"])

    def _query(self, query, using: str):
        qe = self.qe
        request = qe.QueryRequest(
            query=qe.Query.Nearest(query, using=using),
            limit=self.spec["depth"],
            with_payload=True,
            with_vector=[self.using[0]],
        )
        return self.shard.query(request)

    def dense(self, q: dict):
        return self._query(q["dense"], self.using[0])

    def keywords(self, q: dict):
        return self._query(self.qe.SparseVector(*q["keywords"]), self.using[1])

    def describe(self) -> dict:
        info = self.shard.info()
        return {"segments": info.segments_count, "points": info.points_count, "indexed_vectors": info.indexed_vectors_count}

    def index(self, keywords):
        """The same shard as the mentor's store class holds it (opened again:
        one process may hold a shard once)."""
        from mentor.index.store.edge import EdgeStore

        self.shard.close()
        self.shard = None
        path = Path(self.spec["path"])
        self.store = EdgeStore(path.parent, keywords)
        return self.store.open(path.name, self.spec["dimension"])

    def close(self) -> None:
        self.store.close()


class LocalEngine:
    """qdrant-client's local mode (``QdrantClient(path=...)``), the index of
    earlier versions, searched through the server store class (which speaks
    the same API)."""

    def __init__(self, spec: dict, dense: str, keywords: str):
        from qdrant_client import QdrantClient

        self.spec, self.using, self.connect = spec, (dense, keywords), QdrantClient
        self.client = None

    def open(self) -> None:
        self.client = self.connect(path=self.spec["path"])

    def _query(self, query, using: str):
        return self.client.query_points(
            self.spec["name"], query=query, using=using, limit=self.spec["depth"], with_payload=True, with_vectors=[self.using[0]]
        )

    def dense(self, q: dict):
        return self._query(q["dense"], self.using[0])

    def keywords(self, q: dict):
        from qdrant_client import models

        indices, values = q["keywords"]
        return self._query(models.SparseVector(indices=indices, values=values), self.using[1])

    def describe(self) -> dict:
        return {"points": self.client.count(self.spec["name"], exact=True).count}

    def index(self, keywords):
        from mentor.index.store.server import ServerStore

        with warnings.catch_warnings():  # "payload indexes have no effect in the local Qdrant"
            warnings.simplefilter("ignore")
            return ServerStore(self.client, keywords).open(self.spec["name"], self.spec["dimension"])

    def close(self) -> None:
        self.client.close()


class GcPauses:
    """The garbage collector's pauses while registered (``gc.callbacks``)."""

    def __init__(self):
        self.seconds, self.count, self._start = 0.0, 0, None

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self.count += 1
            self._start = None

    def __enter__(self) -> Self:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self)

    def figures(self, calls: int) -> dict:
        return {"collections": self.count, "total_ms": round(self.seconds * 1000, 1), "per_call_ms": round(self.seconds * 1000 / max(calls, 1), 3)}


def whole_search(home: Path, embedder, questions: list[str], reps: int) -> dict:
    """``Mentor.search`` on ``home``, top k as the mentor answers, each call
    split into the embedding, the store's part and the rest (the registry's
    list of documents, the fusion per page), by timing the embedder's and
    the index's own calls inside it. A question with words found nowhere in
    the course is embedded twice (the second time without them, for the
    refusal) and asks the index for those words: each part sums its calls."""
    from mentor import Mentor

    with timed() as opening:
        mentor = Mentor.open(mentor_settings(home), with_model=False, embedder=embedder)
    try:
        k = mentor.settings.top_k
        for q in questions[:WARMUP]:
            mentor.search(q, k)
        inner = mentor.embedder.embed_query
        parts = _time_inside(mentor)
        whole, embed, store, twice = [], [], [], 0
        with GcPauses() as pauses:
            for _ in range(reps):
                for q in questions:
                    for calls in parts.values():
                        calls.clear()
                    with timed() as t:
                        mentor.search(q, k)
                    whole.append(t.seconds)
                    embed.append(sum(parts["embed"]))
                    twice += len(parts["embed"]) > 1
                    store.append(sum(parts["store"]))
        alone = []
        for q in questions:
            with timed() as t:
                inner(q)
            alone.append(t.seconds)
    finally:
        del mentor.embedder.embed_query  # unwrapped: the embedder serves the next home
        mentor.close()
    without = [w - e for w, e in zip(whole, embed)]
    return {
        "k": k,
        "mentor_open_s": round(opening.seconds, 2),
        "search_ms": summary(whole, 1000, 2),
        "embed_ms": summary(embed, 1000, 2),
        "embedded_twice": round(twice / len(whole), 3),
        "without_embedding_ms": summary(without, 1000, 2),
        "store_ms": summary(store, 1000, 2),
        "rest_ms": summary([w - s for w, s in zip(without, store)], 1000, 2),
        "embed_alone_ms": summary(alone, 1000, 2),
        "gc": pauses.figures(len(whole)),
    }


def _time_inside(mentor) -> dict[str, list[float]]:
    """Wraps the embedder's ``embed_query`` and the live index's ``search``
    and ``unknown_words`` (the objects ``Mentor.search`` calls) so that each
    call's time is kept."""
    spent: dict[str, list[float]] = {"embed": [], "store": []}
    wrapped = (
        (mentor.embedder, "embed_query", "embed"),
        (mentor.index, "search", "store"),
        (mentor.index, "unknown_words", "store"),
    )
    for owner, method, key in wrapped:
        call = getattr(owner, method)

        def timed_call(*args, _call=call, _key=key, **kwargs):
            with timed() as t:
                result = _call(*args, **kwargs)
            spent[_key].append(t.seconds)
            return result

        setattr(owner, method, timed_call)
    return spent


def embed_alone(questions: list[str]) -> dict:
    """MiniLM embedding each question in this process (ms), with the
    garbage collector's pauses meanwhile."""
    from mentor.index.embed import Embedder

    embedder = Embedder(str(minilm_folder()))
    for q in questions[:WARMUP]:
        embedder.embed_query(q)
    spent = []
    with GcPauses() as pauses:
        for q in questions:
            with timed() as t:
                embedder.embed_query(q)
            spent.append(t.seconds)
    return summary(spent, 1000, 2) | {"gc": pauses.figures(len(spent))}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
