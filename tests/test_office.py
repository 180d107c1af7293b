"""Slides and Word files: one page per slide, a Word file's pages or its
sections, each cited by its own name, and a citation that opens their text
at the place it cites.

Every file is written here by python-pptx or python-docx with known text on
known slides, pages and sections (tests/materials.py).
"""

from __future__ import annotations

import html
import random
import zipfile

import pytest

from mentor import Mentor
from mentor.generate.answer import source_block
from mentor.ingest.documents import DocumentError, PageLimits, read_pages
from mentor.ingest.pipeline import Outcome
from mentor.web.render import source_item
from tests.materials import DECK, PICTURE_SLIDE, WORD_PAGES, make_docx, make_pptx, make_sectioned_docx

PICTURE_NOTE = "the slide shows only pictures, and pictures are not read (upload the deck as PDF to OCR them)"


def test_a_deck_becomes_one_page_per_slide_with_its_title_body_and_notes(tmp_path):
    pages = list(read_pages(make_pptx(tmp_path / "deck.pptx")))

    assert [(p.index, p.label, p.problem) for p in pages] == [
        (1, "slide 1", ""),
        (2, "slide 2", ""),
        (3, "slide 3", PICTURE_NOTE),
        (4, "slide 4", ""),
    ]
    assert pages[1].text == f"{DECK[2][0]}\n\n{DECK[2][1]}"
    assert pages[PICTURE_SLIDE - 1].text == ""
    assert pages[3].text.endswith("\n\nNotes: Spring tides happen when the Sun and the Moon line up.")


def test_a_question_about_a_slide_cites_that_slide(mentor, tmp_path):
    [result] = mentor.ingest([make_pptx(tmp_path / "deck.pptx")])

    assert result.line() == f"deck.pptx: added (4 slides, 3 chunks) — 1 slide(s) skipped, e.g. slide 3: {PICTURE_NOTE}"
    best = mentor.search("the square of the orbital period and the cube of the semi-major axis", k=1)[0]
    assert (best.page, best.page_label, best.place) == (2, "slide 2", "slide 2")
    assert source_block(1, best).startswith("[1] deck.pptx, slide 2\n")
    shown = source_item(1, best)
    link = f'href="/view/{best.doc_id}?page=2&amp;chunk={best.chunk_no}#page=2"'
    assert link in shown and ">deck.pptx, slide 2</a>" in shown
    # Speaker notes are searched with their slide.
    assert mentor.search("when do spring tides happen", k=1)[0].place == "slide 4"
    assert mentor.stored_file(result.doc_id).suffix == ".pptx"


def test_a_word_file_that_word_saved_is_cited_by_the_pages_word_laid_out(mentor, tmp_path):
    path = make_docx(tmp_path / "lab.docx")
    assert [(p.label, p.text) for p in read_pages(path)] == [
        (str(n), "\n".join(lines)) for n, lines in WORD_PAGES.items()
    ]

    [result] = mentor.ingest([path])

    assert (result.outcome, result.pages, result.unit, result.reason) == (Outcome.ADDED, 3, "page", "")
    best = mentor.search("how do I dilute an acid with water?", k=1)[0]
    assert (best.page, best.place) == (2, "page 2")


def test_a_word_file_without_pages_is_cited_by_its_sections_under_their_headings(mentor, tmp_path):
    path = make_sectioned_docx(tmp_path / "guide.docx")
    assert [(p.label, p.section) for p in read_pages(path)] == [
        ("section 1", ""),
        ("section 2", "Methods › Sampling"),
        ("section 3", "Methods › Storage"),
        ("section 4", "Safety"),
    ]

    [result] = mentor.ingest([path])

    assert result.line() == "guide.docx: added (4 sections, 4 chunks)"
    best = mentor.search("how often are soil cores taken along the transect?", k=1)[0]
    assert (best.page, best.place, best.section) == (2, "section 2", "Methods › Sampling")
    assert source_block(1, best).startswith("[1] guide.docx, section 2 (Methods › Sampling)\n")


def test_a_cited_slide_opens_as_text_at_that_slide_and_the_original_downloads(mentor, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from mentor.web.routes import create_router

    deck = make_pptx(tmp_path / "deck.pptx", deck={**DECK, 1: ("<b>Orbits</b> & more", "Lecture 4.")})
    [result] = mentor.ingest([deck])
    app = FastAPI()
    app.include_router(create_router(mentor, lambda: "Astronomy"))
    client = TestClient(app)

    view = client.get(f"/files/{result.doc_id}")
    original = client.get(f"/files/{result.doc_id}?download=1")

    assert view.status_code == 200 and view.headers["content-type"].startswith("text/html")
    assert view.headers["content-security-policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    slide_2 = html.escape(f"{DECK[2][0]}\n\n{DECK[2][1]}")
    assert f'<section id="page=2"><h2>Slide 2</h2><p>{slide_2}</p></section>' in view.text
    assert "<h2>Slide 1</h2><p>&lt;b&gt;Orbits&lt;/b&gt; &amp; more" in view.text
    assert view.text.count("<section ") == 4
    assert f'<a href="/files/{result.doc_id}?download=1">Download the original</a>' in view.text
    assert original.content == deck.read_bytes()
    assert original.headers["content-type"] == "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    assert original.headers["content-disposition"].startswith("attachment;")


def test_a_deck_that_unpacks_beyond_the_memory_a_document_may_take_is_refused_unread(tmp_path):
    """A zip bomb: 80 MB of zeros packed into a few hundred kilobytes."""
    path = make_pptx(tmp_path / "huge.pptx")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("ppt/media/video1.bin", bytes(80 << 20))
    assert path.stat().st_size < 1 << 20

    with pytest.raises(DocumentError) as refused:
        list(read_pages(path, PageLimits(memory_mb=64)))

    assert str(refused.value) == (
        "the PowerPoint file unpacks to 80 MB, more than the 64 MB a document may take while it is read: "
        "split it into smaller files (or, if it should be small, it is damaged)"
    )


def test_a_batch_of_slides_and_word_files_ingests_the_good_ones_and_says_why_not_the_others(settings, embedder, tmp_path):
    from tests.test_bad_input import encrypted_office, truncated

    big = make_pptx(tmp_path / "big.pptx")
    with zipfile.ZipFile(big, "a") as package:  # a video that does not compress: a deck of 1.5 MB
        package.writestr("ppt/media/video1.bin", random.Random(1).randbytes(3 << 19))
    files = [
        make_pptx(tmp_path / "deck.pptx"),
        encrypted_office(tmp_path / "locked.pptx", make_pptx),
        truncated(tmp_path / "cut.docx", make_docx),
        big,
        make_pptx(tmp_path / "pictures.pptx", deck={}, picture_slide=1),
        make_docx(tmp_path / "lab.docx"),
    ]

    with Mentor.open(settings.replace(max_upload_mb=1), embedder=embedder, with_model=False) as mentor:
        lines = [r.line() for r in mentor.ingest(files)]
        names = sorted(d.name for d in mentor.documents())

    assert lines[0].startswith("deck.pptx: added (4 slides, 3 chunks)")
    assert lines[1] == (
        "locked.pptx: failed: the PowerPoint file is password-protected: "
        "remove the password (File › Info › Protect) and upload it again"
    )
    assert lines[2].startswith("cut.docx: failed: the Word file is damaged or truncated and cannot be read")
    assert lines[3].startswith("big.pptx: failed: the file is 1.") and lines[3].endswith("over the 1 MB limit (MAX_UPLOAD_MB)")
    assert lines[4] == f"pictures.pptx: failed: no text could be extracted: slide 1: {PICTURE_NOTE}"
    assert lines[5] == "lab.docx: added (3 pages, 3 chunks)"
    assert names == ["deck.pptx", "lab.docx"]


def test_a_backup_restores_slides_and_word_files(mentor, settings, embedder, tmp_path):
    from mentor.course.backup import export_backup, import_backup

    mentor.ingest([make_pptx(tmp_path / "deck.pptx"), make_sectioned_docx(tmp_path / "guide.docx")])
    archive = export_backup(mentor, tmp_path / "backups")

    with Mentor.open(settings.replace(home=tmp_path / "restored"), embedder=embedder, with_model=False) as restored:
        summary = import_backup(restored, archive)
        best = restored.search("the square of the orbital period and the cube of the semi-major axis", k=1)[0]
        kept = sorted(p.suffix for p in restored.settings.files_dir.iterdir())

    assert sorted(summary.added) == ["deck.pptx", "guide.docx"]
    assert (best.file, best.place) == ("deck.pptx", "slide 2")
    assert kept == [".docx", ".pptx"]
