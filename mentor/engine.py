"""The composition root: builds each part once and wires them together.

``python -m mentor``, the Gradio app and the HTTP routes all hold one
``Mentor``; none of them builds a part of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from . import manifest
from .answer import Answer, Answerer
from .chunking import Chunker
from .embed import Embedder
from .ingest import IngestResult, Ingestor, ProgressCallback
from .llm import ChatModel, load_chat_model
from .registry import Document, Registry
from .retrieve import Retriever
from .settings import Settings
from .store import Hit, Store

log = logging.getLogger(__name__)


class Mentor:
    def __init__(self, settings: Settings, embedder: Embedder, store: Store, registry: Registry, model: ChatModel | None):
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.registry = registry
        self.model = model
        chunker = Chunker(
            embedder.tokenize, embedder.max_tokens, settings.chunk_tokens, settings.chunk_overlap, settings.section_context
        )
        self.ingestor = Ingestor(settings, embedder, store, registry, chunker)
        self.retriever = Retriever(embedder, store, registry)
        self._answerer = Answerer(self.retriever, model, settings) if model else None

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        with_model: bool = True,
        embedder: Embedder | None = None,
        model: ChatModel | None = None,
        check_index: bool = True,
    ) -> Mentor:
        """Opens the course under ``settings.home``, recovering from any
        interrupted ingestion. ``embedder`` and ``model`` let a caller share
        parts already loaded (tests do); ``with_model=False`` skips the LLM
        for commands that only ingest or search; ``check_index=False`` opens
        an index built with other settings, so that ``reindex`` can fix it."""
        settings = settings or Settings.from_env()
        settings.home.mkdir(parents=True, exist_ok=True)
        # The store first: a second process on the same folder learns at
        # once that it is locked, not after loading the embedder.
        store = Store(settings)
        registry = None
        try:
            embedder = embedder or Embedder(settings.embed_model, settings.embed_batch_size)
            registry = Registry(settings.home / "registry.sqlite3")
            if check_index:
                _check_index(settings, embedder, store)
            if model is None and with_model:
                model = load_chat_model(settings)
        except BaseException:
            store.close()
            if registry:
                registry.close()
            raise
        mentor = cls(settings, embedder, store, registry, model)
        stray = mentor.ingestor.recover()
        if stray:
            log.warning("removed %d chunks left by an interrupted ingestion", stray)
        return mentor

    def ingest(self, paths: Iterable[Path], progress: ProgressCallback | None = None) -> list[IngestResult]:
        return self.ingestor.ingest_paths(paths, progress)

    def ingest_file(self, path: Path, name: str | None = None, progress: ProgressCallback | None = None) -> IngestResult:
        return self.ingestor.ingest(path, name, progress)

    def documents(self) -> list[Document]:
        return self.registry.ready()

    def remove(self, name_or_id: str) -> Document:
        """Deletes a document: invisible at once, then its points and file."""
        doc = self.registry.find(name_or_id)
        self.ingestor.discard(doc.doc_id)
        return doc

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        return self.retriever.search(question, k or self.settings.top_k)

    def prepare_search(self) -> None:
        """What a server does before its first question: builds the search
        structures that would otherwise be built on the first search."""
        self.store.prepare_search()

    def ask(
        self, question: str, history: Sequence[dict] = (), course: str = "this course", *, client: str | None = None
    ) -> Answer:
        if self._answerer is None:
            raise RuntimeError("this Mentor was opened without a model (with_model=False)")
        return self._answerer.ask(question, history, course, client=client)

    def index_manifest(self) -> dict:
        """What this index's vectors are made with (see ``manifest``)."""
        return _manifest(self.settings, self.embedder)

    def stored_file(self, doc_id: str) -> Path | None:
        return self.ingestor.stored_file(doc_id)

    def stats(self) -> dict:
        docs = self.documents()
        return {
            "documents": len(docs),
            "chunks": sum(d.chunks for d in docs),
            "pages": sum(d.pages for d in docs),
            "model": self.model.name if self.model else None,
            "embedder": self.embedder.name,
        }

    def reindex(self, progress: ProgressCallback | None = None) -> list[IngestResult]:
        """Rebuilds the whole index from the stored originals (after a change
        of embedder or chunking)."""
        docs = self.documents()
        self.store.drop_collection()
        self.store.ensure_collection(self.embedder.dimension)
        for doc in docs:
            self.registry.remove(doc.doc_id)
        results = [self.ingest_file(self.stored_file(d.doc_id), d.name, progress) for d in docs]
        manifest.write(self.settings.home / "manifest.json", self.index_manifest())
        return results

    def close(self) -> None:
        self.store.close()
        self.registry.close()

    def __enter__(self) -> Mentor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _manifest(settings: Settings, embedder: Embedder) -> dict:
    return manifest.expected(
        embedder.name, embedder.dimension, settings.chunk_tokens, settings.chunk_overlap, settings.section_context
    )


def _check_index(settings: Settings, embedder: Embedder, store: Store) -> None:
    store.ensure_collection(embedder.dimension)
    manifest.check(settings.home / "manifest.json", _manifest(settings, embedder), store.count() == 0)
