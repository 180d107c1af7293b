"""Retrieval finds the page that holds the answer, and cites it right."""

from __future__ import annotations

import pytest

from mentor.index.retrieve import merge_pages
from mentor.index.store import Hit
from tests.pdfs import label_of


@pytest.mark.parametrize(
    "question, page",
    [
        ("What does Kepler's first law say?", 3),
        ("how fast do I need to go to escape the Earth's gravity", 4),
        ("difference between refracting and reflecting telescopes", 5),
        ("when are office hours?", 6),
    ],
)
def test_a_known_question_finds_its_page_with_its_printed_label(mentor, handbook, question, page):
    mentor.ingest([handbook])
    best = mentor.search(question, k=3)[0]

    assert (best.file, best.page, best.page_label) == ("handbook.pdf", page, label_of(page))
    assert best.score > mentor.settings.min_score


def test_search_returns_each_page_once(mentor, tmp_path):
    from tests.pdfs import make_pdf

    long_page = " ".join(f"Entropy fact {i}: entropy of an isolated system never decreases." for i in range(80))
    mentor.ingest([make_pdf(tmp_path / "thermo.pdf", [long_page, "Unrelated page about bread."], 0)])
    hits = mentor.search("entropy of an isolated system", k=5)

    assert [(h.file, h.page) for h in hits] == [("thermo.pdf", 1), ("thermo.pdf", 2)]


def test_a_question_resting_on_words_the_course_never_uses_is_refused_even_near_its_pages(mentor, handbook):
    from mentor.index.retrieve import Retriever

    mentor.ingest([handbook])
    # "eyepiece" and "buy" occur nowhere in the handbook; "reflecting" and
    # "telescope" do, and bring the question near the telescopes' page.
    unknown = "Which eyepiece should I buy for my reflecting telescope?"
    aside = "Which lenses or mirrors do reflecting telescopes use, honestly?"  # "honestly" is nowhere either
    known = "What do reflecting telescopes use to gather light?"
    near, by_the_way, fine = (mentor.retriever.retrieve(q, k=3) for q in (unknown, aside, known))

    assert (near.unknown_words, near.hits[0].page) == (("eyepiece", "buy"), 5)
    assert (by_the_way.unknown_words, fine.unknown_words, fine.unknown_meaning) == (("honestly",), (), 0.0)
    # The question rests on its unknown words; the aside does not.
    assert near.unknown_meaning > 2 * by_the_way.unknown_meaning > 0
    # A threshold the cosine alone would pass, but not the cosine less the
    # unknown words' share of the meaning:
    strict = Retriever(mentor.library, mentor.settings.replace(min_score=near.best_score - near.unknown_meaning / 2))
    assert not strict.retrieve(unknown, k=3).covered
    assert strict.retrieve(known, k=3).covered and fine.best_score >= strict.settings.min_score


def test_plain_words_a_small_course_lacks_take_no_more_than_the_cap_off(mentor, handbook):
    from mentor.index.retrieve import UNKNOWN_MEANING_CAP

    mentor.ingest([handbook])
    # A six-page handbook names none of "fast", "must", "rocket" or "go":
    # without them little of the question is left, yet its escape-velocity
    # page answers it.
    found = mentor.retriever.retrieve("How fast must a rocket go to leave the Earth?", k=3)

    assert (found.unknown_words, found.hits[0].page) == (("fast", "must", "rocket", "go"), 4)
    assert found.unknown_meaning > UNKNOWN_MEANING_CAP
    assert found.best_score - found.unknown_meaning < mentor.settings.min_score  # uncapped, it would be refused
    assert found.covered


def test_merge_pages_keeps_one_hit_per_page_with_its_best_score():
    a1 = Hit("d", "f.pdf", 1, "1", "alpha", 0.5)
    b = Hit("d", "f.pdf", 2, "2", "beta", 0.7)
    a2 = Hit("d", "f.pdf", 1, "1", "gamma", 0.6)
    copy = Hit("e", "g.pdf", 9, "9", "Beta!", 0.7)

    merged = merge_pages([a1, b, a2, copy])

    assert [(h.page, h.score) for h in merged] == [(1, 0.6), (2, 0.7)]
    assert merged[0].text == "alpha\n…\ngamma"


def test_keyword_search_follows_added_and_removed_documents(mentor, handbook, tmp_path):
    from tests.pdfs import make_pdf

    def keyword_files(question):
        return {h.file for h in mentor.retriever.candidates(question)[1]}

    mentor.ingest([handbook])
    assert keyword_files("sourdough starter hydration") == set()

    mentor.ingest([make_pdf(tmp_path / "files" / "bread.pdf", ["A sourdough starter at 100% hydration."], 0)])
    assert keyword_files("sourdough starter hydration") == {"bread.pdf"}

    mentor.remove("bread.pdf")
    assert keyword_files("sourdough starter hydration") == set()
    assert keyword_files("office hours") == {"handbook.pdf"}


def _chunks(*pages: int) -> list[Hit]:
    return [Hit("d", "f.pdf", p, str(p), f"chunk {i} of page {p}", 0.5) for i, p in enumerate(pages)]


def test_a_page_cut_into_many_chunks_outranks_the_best_page_only_when_chunks_are_summed():
    from mentor.index.retrieve import fuse_pages

    # Page 1 is first in both rankings; page 7's six chunks fill ranks 3 to 8.
    by_meaning = _chunks(1, 2, 7, 7, 7, 7, 7, 7)
    by_keywords = _chunks(1, 3, 7, 7, 7, 7, 7, 7)
    rankings = [(by_meaning, 1.0), (by_keywords, 0.5)]

    assert [h.page for h in fuse_pages(rankings, per_page="sum")][0] == 7
    assert [h.page for h in fuse_pages(rankings, per_page="best")][0] == 1


NOTE = "Scanned lecture notes: eigenvalues of symmetric matrices are real."


def test_a_scanned_one_chunk_note_is_first_for_its_sentence_beside_a_real_manual(mentor, tmp_path):
    from mentor.index.retrieve import KEYWORD_WEIGHT, fuse_pages
    from tests.materials import make_scan
    from tests.pdfs import r_manual

    note = make_scan(tmp_path / "files" / "note.pdf", [NOTE])
    results = mentor.ingest([r_manual("R-data.pdf"), note])
    assert [r.ok for r in results] == [True, True], [r.line() for r in results]

    best = mentor.search(NOTE, k=5)[0]

    assert (best.file, best.page) == ("note.pdf", 1)
    # The flaw this guards against: with every chunk of a page summed, the
    # manual's pages of many weak chunks come before the note's one exact chunk.
    by_meaning, by_keywords = mentor.retriever.candidates(NOTE)
    summed = fuse_pages([(by_meaning, 1.0), (by_keywords, KEYWORD_WEIGHT)], per_page="sum")
    assert summed[0].file == "R-data.pdf"


def test_a_page_s_weak_chunks_add_nothing_under_the_floor_rule():
    from mentor.index.retrieve import fuse_pages

    exact = Hit("d", "f.pdf", 1, "1", "the exact chunk", 0.9)
    weak = [Hit("d", "f.pdf", 7, "7", f"weak chunk {i}", 0.4) for i in range(6)]
    near = Hit("d", "f.pdf", 7, "7", "a strong chunk", 0.88)
    rankings = [([exact, *weak], 1.0)]

    assert [h.page for h in fuse_pages(rankings, per_page="sum")][0] == 7
    assert [h.page for h in fuse_pages(rankings, per_page="floor:0.05")][0] == 1
    # Chunks as near the question as the best one still add up.
    assert [h.page for h in fuse_pages([([exact, near, near], 1.0)], per_page="floor:0.05")][0] == 7
    with pytest.raises(ValueError, match="per_page"):
        fuse_pages(rankings, per_page="floor")


def test_fuse_keeps_each_page_s_best_chunk_for_the_reranker():
    from mentor.index.retrieve import fuse

    dense = [Hit("d", "f.pdf", 4, "4", "the second-best chunk", 0.6), Hit("d", "f.pdf", 4, "4", "another", 0.5)]
    keywords = [Hit("d", "f.pdf", 4, "4", "the best keyword chunk", 0.4)]
    [page] = fuse([(dense, 0.5), (keywords, 1.0)])

    assert page.best.text == "the best keyword chunk"
    assert page.hit.score == 0.6


@pytest.mark.parametrize(
    "model, expected",
    [
        ("BAAI/bge-small-en-v1.5", "Represent this sentence for searching relevant passages: what is a cell?"),
        ("/models/bge-base-en-v1.5", "Represent this sentence for searching relevant passages: what is a cell?"),
        ("sentence-transformers/all-MiniLM-L6-v2", "what is a cell?"),
    ],
)
def test_a_query_gets_the_instruction_its_embedder_was_trained_with(model, expected):
    from mentor.index.retrieve import query_text

    assert query_text(model, "what is a cell?") == expected
