"""Instructor-only from the first byte: an upload marked so is never visible
to students, a flag changed during an upload batch takes effect at once, and
a slide deck's text view is made once, at ingest, by the library."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from mentor.course.library import Library
from tests.conftest import small_env
from tests.materials import make_pptx
from tests.pdfs import make_pdf

SOLUTIONS = ["Solution 4.2: the comet's period is exactly 76 years, by Kepler's third law."]


def test_an_upload_marked_instructor_only_is_flagged_from_the_row_that_registers_it(mentor, tmp_path):
    manual = make_pdf(tmp_path / "solutions.pdf", SOLUTIONS, 0)
    seen = []

    def watch(progress):
        # Mid-indexing: the row exists, already flagged, and no student path sees it.
        (row,) = [d for d in mentor.library.registry.with_status("ingesting")]
        seen.append((row.instructor_only, mentor.library.student_doc_ids()))

    result = mentor.library.add(manual, progress=watch, instructor_only=True)

    assert result.ok and seen and all(flag and result.doc_id not in ids for flag, ids in seen)
    assert mentor.library.find("solutions.pdf").instructor_only
    assert result.doc_id not in mentor.library.student_doc_ids()
    assert all(h.doc_id != result.doc_id for h in mentor.search("comet period 76 years Kepler"))


def test_a_new_version_keeps_the_flag_set_before_it_and_the_one_set_while_it_is_indexed(mentor, tmp_path):
    versions = [make_pdf(tmp_path / f"v{n}" / "solutions.pdf", [f"{SOLUTIONS[0]} Version {n}."], 0) for n in range(3)]
    mentor.library.add(versions[0], instructor_only=True)

    second = mentor.library.add(versions[1])  # no flag asked: the earlier version's stays

    assert second.outcome.value == "replaced" and mentor.library.find("solutions.pdf").instructor_only
    mentor.library.set_flags("solutions.pdf", instructor_only=False, assignment=False)

    def flag_meanwhile(progress):
        mentor.library.set_flags("solutions.pdf", instructor_only=True, assignment=False)

    third = mentor.library.add(versions[2], progress=flag_meanwhile)

    assert third.ok and mentor.library.find("solutions.pdf").doc_id == third.doc_id
    assert mentor.library.find("solutions.pdf").instructor_only
    assert mentor.library.student_doc_ids() == []


def test_marking_a_document_instructor_only_takes_effect_at_once_while_an_upload_batch_runs(
    mentor, tmp_path, monkeypatch
):
    manual = make_pdf(tmp_path / "solutions.pdf", SOLUTIONS, 0)
    mentor.library.add(manual)
    uploading, finish = threading.Event(), threading.Event()
    index = Library._add

    def slow_add(self, *args):
        uploading.set()  # holds the library's lock, as a long upload does
        finish.wait(60)
        return index(self, *args)

    monkeypatch.setattr(Library, "_add", slow_add)
    upload = threading.Thread(target=mentor.library.add, args=(make_pdf(tmp_path / "week1.pdf"),))
    upload.start()
    try:
        assert uploading.wait(30)
        flagged = threading.Thread(
            target=mentor.library.set_flags, args=("solutions.pdf",), kwargs={"instructor_only": True, "assignment": False}
        )
        flagged.start()
        flagged.join(5)
        assert not flagged.is_alive(), "set_flags waited behind the upload"
        assert mentor.library.student_doc_ids() == []
        assert all(h.file != "solutions.pdf" for h in mentor.search("comet period 76 years Kepler"))
    finally:
        finish.set()
        upload.join(120)


def test_a_slide_decks_text_view_is_made_at_ingest_and_goes_with_the_document(mentor, tmp_path, monkeypatch):
    deck = make_pptx(tmp_path / "orbits.pptx", deck={1: ("Orbits", "Kepler <3 ellipses.")}, notes={}, picture_slide=None)

    result = mentor.library.add(deck)

    view = mentor.library.stored_view(result.doc_id)
    assert view is not None and view.parent == mentor.settings.home / "views"
    page = view.read_text()
    assert 'id="page=1"' in page and "Kepler &lt;3 ellipses." in page
    mentor.remove(result.doc_id)
    assert mentor.library.stored_view(result.doc_id) is None and not view.exists()


def test_a_course_from_before_kept_views_gets_them_made_once_in_the_background(mentor, tmp_path):
    deck = make_pptx(tmp_path / "orbits.pptx", deck={1: ("Orbits", "Ellipses.")}, notes={}, picture_slide=None)
    result = mentor.library.add(deck)
    mentor.library.views.delete(result.doc_id)  # as an earlier version left it

    assert mentor.library.keep_missing_views() == 1
    assert mentor.library.stored_view(result.doc_id) is not None
    assert mentor.library.keep_missing_views() == 0


def test_the_command_line_ingests_instructor_only_and_search_never_returns_it(tmp_path):
    env = small_env(tmp_path / "home")
    manual = make_pdf(tmp_path / "solutions.pdf", SOLUTIONS, 0)

    def mentor_cli(*args):
        done = subprocess.run([sys.executable, "-m", "mentor", *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    added = json.loads(mentor_cli("ingest", "--instructor-only", str(manual), "--json"))
    docs = json.loads(mentor_cli("docs", "--json"))
    hits = json.loads(mentor_cli("search", "comet period 76 years Kepler", "--json"))

    assert added["outcome"] == "added"
    assert [(d["name"], d["instructor_only"]) for d in docs] == [("solutions.pdf", True)]
    assert hits == []
