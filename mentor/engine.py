"""The composition root: builds each part once and wires them together.

``python -m mentor``, the Gradio app and the HTTP routes all hold one
``Mentor``; none of them builds a part of its own. Every write to the
course's documents goes through ``Mentor.library``; what students ask, the
verified answers and the requests to the instructor through
``Mentor.questions``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from mentor.course.info import CourseInfo
from mentor.course.library import HomeLock, Library, RebuildStatus
from mentor.course.questions import QuestionStore
from mentor.course.registry import Document, Registry
from mentor.generate.answer import Answer, Answerer
from mentor.generate.llm import ChatModel, ModelNotFound, load_chat_model
from mentor.index.embed import Embedder, Embedders
from mentor.index.rerank import Reranker, load_reranker
from mentor.index.retrieve import Retrieval, Retriever
from mentor.index.store import Hit, Index, open_store
from mentor.ingest.pipeline import IngestResult, ProgressCallback
from mentor.settings import Settings

log = logging.getLogger(__name__)


class Mentor:
    def __init__(
        self,
        settings: Settings,
        library: Library,
        model: ChatModel | None,
        questions: QuestionStore,
        lock: HomeLock | None = None,
        model_problem: str = "",
        reranker: Reranker | None = None,
    ):
        self.settings = settings
        self.library = library
        # None: sources-only mode, students get the best passages with their
        # links; model_problem says why, and what to set.
        self.model = model
        self.model_problem = model_problem
        self.embedder = library.embedders.get(settings.embed_model)
        self.reranker = reranker
        self.retriever = Retriever(library, settings, reranker)
        self.questions = questions
        self._answerer = Answerer(self.retriever, model, settings, self.questions, lambda: self.course().teaching)
        self._lock = lock

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        with_model: bool = True,
        embedder: Embedder | None = None,
        model: ChatModel | None = None,
        reranker: Reranker | None = None,
    ) -> Mentor:
        """Opens the course under ``settings.home`` and puts it in order after
        any crash. ``embedder``, ``model`` and ``reranker`` let a caller share
        parts already loaded (tests do); ``with_model=False`` skips the LLM
        for commands that only ingest or search. When no model can be had
        (offline, a failed download, a corrupt file), the mentor opens in
        sources-only mode rather than not at all."""
        settings = settings or Settings.from_env()
        # First: a second process on the same course learns at once that it
        # is taken, not after loading the embedder.
        lock = HomeLock(settings.home)
        store = registry = questions = None
        problem = ""
        try:
            store = open_store(settings)
            registry = Registry(settings.home / "registry.sqlite3")
            library = Library(settings, registry, store, Embedders(settings.embed_batch_size, embedder))
            library.open()
            questions = QuestionStore.open(
                settings.home, library.embedders.get(settings.embed_model), settings.verified_min_similarity
            )
            # Questions older than the course keeps them go at every start
            # (and daily while the app runs: QuestionStore.clean_up_daily).
            questions.clean_up(CourseInfo.load(settings.home).teaching.retention_days)
            if reranker is None:
                reranker = load_reranker(settings)
            if model is None and with_model:
                model, problem = _model_or_why(settings)
        except BaseException:
            for part in (questions, store, registry):
                if part is not None:
                    part.close()
            lock.release()
            raise
        return cls(settings, library, model, questions, lock, problem, reranker)

    def ingest(
        self, paths: Iterable[Path], progress: ProgressCallback | None = None, *, instructor_only: bool = False
    ) -> list[IngestResult]:
        return self.library.add_paths(paths, progress, instructor_only=instructor_only)

    def ingest_file(
        self, path: Path, name: str | None = None, progress: ProgressCallback | None = None, *, instructor_only: bool = False
    ) -> IngestResult:
        """Adds one file (``Library.add``); ``instructor_only`` keeps it from students from its first byte."""
        return self.library.add(path, name, progress, instructor_only=instructor_only)

    def documents(self) -> list[Document]:
        return self.library.documents()

    def remove(self, name_or_id: str) -> Document:
        """Deletes a document: invisible at once, then its points and file."""
        return self.library.delete(name_or_id)

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        return self.retrieve(question, k).hits

    def retrieve(self, question: str, k: int | None = None) -> Retrieval:
        """The ``k`` best pages (TOP_K by default), and whether the mentor would answer from them."""
        return self.retriever.retrieve(question, k or self.settings.top_k)

    def ask(
        self, question: str, history: Sequence[dict] = (), course: str = "this course", *, client: str | None = None
    ) -> Answer:
        """An answer to ``question``: the instructor's verified answer when one
        is close enough (no model needed), else one from the course; without
        a model, the best passages. Its question is kept in ``questions`` once
        it completes."""
        return self._answerer.ask(question, history, course, client=client)

    def course(self) -> CourseInfo:
        """The course's settings as saved now (name, welcome, teaching)."""
        return CourseInfo.load(self.settings.home)

    @property
    def index(self) -> Index:
        """The index students search now."""
        return self.library.live().index

    def stored_file(self, doc_id: str) -> Path | None:
        return self.library.stored_file(doc_id)

    def stats(self, students: bool = False) -> dict:
        """The course's size and its model; ``students``: counting only the
        documents students may get answers from (what a student may be told)."""
        docs = self.library.student_documents() if students else self.documents()
        return {
            "documents": len(docs),
            "chunks": sum(d.chunks for d in docs),
            "pages": sum(d.pages for d in docs),
            "model": self.model.name if self.model else None,
            "model_problem": self.model_problem,
            "embedder": self.embedder.name,
            "reranker": self.reranker.name if self.reranker else None,
        }

    def reindex(self, progress: ProgressCallback | None = None) -> RebuildStatus:
        """Rebuilds the whole index from the stored originals (after a change
        of embedder or chunking), beside the live one."""
        return self.library.rebuild(progress)

    def close(self) -> None:
        self.questions.close()
        self.library.store.close()
        self.library.registry.close()
        if self._lock:
            self._lock.release()

    def __enter__(self) -> Mentor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _model_or_why(settings: Settings) -> tuple[ChatModel | None, str]:
    """The model, or None and why it could not be had (which says what to set)."""
    try:
        return load_chat_model(settings), ""
    except ModelNotFound as e:
        log.warning("No language model, so the mentor answers with passages only (sources-only mode). %s", e)
        return None, str(e)
