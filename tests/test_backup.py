"""Backups: one archive out of a running mentor, restored into another
without re-embedding."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from mentor import Mentor
from mentor.course.backup import BackupError, export_backup, import_backup
from mentor.course.info import CourseInfo
from tests.materials import make_scan
from tests.pdfs import make_pdf

QUESTIONS = ["When are office hours held?", "What is escape velocity?", "midterm exam date"]


@pytest.fixture
def course(mentor, tmp_path):
    """The handbook and a Markdown note, and a course page."""
    outline = [("Orbits", 3), ("Practical matters", 5, [("Office hours", 6)])]
    handbook = make_pdf(tmp_path / "course" / "handbook.pdf", outline=outline)
    notes = tmp_path / "course" / "notes.md"
    notes.write_text("# Week 1\n\nThe midterm exam is on March 3rd in the main hall.\n\fPage two of the notes.\n")
    results = mentor.ingest([handbook, notes])
    assert all(r.ok for r in results)
    CourseInfo("Astronomy 101", "Hello", ("What is escape velocity?",)).save(mentor.settings.home)
    return mentor


@pytest.fixture
def fresh(settings, embedder, tmp_path):
    """Another mentor, under another home: where a backup is restored."""
    from mentor import Mentor

    m = Mentor.open(settings.replace(home=tmp_path / "other"), embedder=embedder, with_model=False)
    yield m
    m.close()


def search(mentor, question):
    return [(h.doc_id, h.file, h.page, h.page_label, h.text, h.score, h.section) for h in mentor.search(question)]


def test_a_backup_restores_the_same_documents_points_files_and_search_results(course, fresh, tmp_path):
    archive = export_backup(course, tmp_path / "out")
    summary = import_backup(fresh, archive)

    assert archive.name.endswith(".tar.gz") and archive.parent == tmp_path / "out"
    assert sorted(summary.added) == ["handbook.pdf", "notes.md"] and summary.skipped == []
    rows = lambda m: sorted((d.doc_id, d.name, d.size, d.pages, d.chunks, d.status) for d in m.documents())  # noqa: E731
    assert rows(fresh) == rows(course)
    assert fresh.index.count() == course.index.count() == summary.points
    for doc in course.documents():
        assert fresh.stored_file(doc.doc_id).read_bytes() == course.stored_file(doc.doc_id).read_bytes()
    for question in QUESTIONS:
        assert search(fresh, question) == search(course, question)
    assert mentor_section(fresh, QUESTIONS[0]) == "Practical matters › Office hours"
    assert CourseInfo.load(fresh.settings.home).name == "Astronomy 101" and summary.course_restored


def mentor_section(mentor, question) -> str:
    return mentor.search(question, k=1)[0].section


def test_importing_twice_skips_what_is_already_there_and_adds_no_points(course, fresh, tmp_path):
    archive = export_backup(course, tmp_path / "out")
    import_backup(fresh, archive)
    points = fresh.index.count()

    again = import_backup(fresh, archive)

    assert again.added == [] and sorted(again.skipped) == [
        ("handbook.pdf", "already indexed"),
        ("notes.md", "already indexed"),
    ]
    assert fresh.index.count() == points


def test_an_import_never_replaces_a_different_document_of_the_same_name(course, fresh, tmp_path):
    archive = export_backup(course, tmp_path / "out")
    other = make_pdf(
        tmp_path / "elsewhere" / "handbook.pdf", ["A different handbook about chemistry labs."], front_matter=0
    )
    fresh.ingest_file(other)
    CourseInfo("Chemistry", "Hi", ()).save(fresh.settings.home)

    summary = import_backup(fresh, archive)

    assert summary.added == ["notes.md"]
    assert summary.skipped == [("handbook.pdf", "a different version with this name is already indexed")]
    assert CourseInfo.load(fresh.settings.home).name == "Chemistry" and not summary.course_restored


def test_a_backup_made_with_other_index_settings_is_refused_with_the_difference(course, settings, embedder, tmp_path):
    from mentor import Mentor

    archive = export_backup(course, tmp_path / "out")
    with Mentor.open(
        settings.replace(home=tmp_path / "chunked", chunk_tokens=120), embedder=embedder, with_model=False
    ) as other:
        with pytest.raises(BackupError, match="chunk_tokens was 150, here 120"):
            import_backup(other, archive)
        assert other.documents() == [] and other.index.count() == 0


def _archive(path, members: dict[str, bytes], links: dict[str, str] | None = None):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


@pytest.mark.parametrize(
    "members, links",
    [
        ({"backup.json": b"{}", "../../escaped.txt": b"x"}, {}),
        ({"backup.json": b"{}", "/tmp/absolute.txt": b"x"}, {}),
        ({"backup.json": b"{}", "files/" + "a" * 64 + ".pdf/../../x.pdf": b"x"}, {}),
        ({"backup.json": b"{}"}, {"files/" + "a" * 64 + ".pdf": "/etc/passwd"}),
    ],
    ids=["dot-dot", "absolute", "dot-dot inside", "symlink"],
)
def test_an_archive_with_paths_outside_the_layout_is_refused_before_anything_is_written(
    fresh, tmp_path, members, links
):
    archive = _archive(tmp_path / "evil.tar.gz", members, links)

    with pytest.raises(BackupError, match="unexpected entry"):
        import_backup(fresh, archive)
    assert not (tmp_path / "escaped.txt").exists() and not (fresh.settings.home.parent / "x.pdf").exists()
    assert fresh.documents() == []


def test_a_damaged_original_is_caught_by_its_checksum_and_leaves_nothing_behind(course, fresh, tmp_path):
    members = _members(export_backup(course, tmp_path / "out"))
    handbook = next(n for n in members if n.startswith("files/") and n.endswith(".pdf"))
    damaged = bytearray(members[handbook])
    damaged[len(damaged) // 2] ^= 0xFF
    members[handbook] = bytes(damaged)
    broken = _archive(tmp_path / "broken.tar.gz", members)

    with pytest.raises(BackupError, match="checksum"):
        import_backup(fresh, broken)
    docs = fresh.documents()
    assert all(d.name != "handbook.pdf" for d in docs)
    assert fresh.index.count() == sum(d.chunks for d in docs)  # no stray points of the broken one


def test_the_words_ocr_read_on_a_scanned_page_are_restored_for_the_viewers_highlights(mentor, fresh, tmp_path):
    scan = make_scan(tmp_path / "course" / "scan.pdf", [None, "Radio telescopes detect the faint hiss of the Big Bang.", None])
    assert mentor.ingest([scan])[0].ok
    (doc,) = mentor.documents()
    kept = mentor.library.all_ocr_words(doc.doc_id)
    assert list(kept) == [2] and [w[0] for w in kept[2][0]][:2] == ["Radio", "telescopes"]

    members = _members(export_backup(mentor, tmp_path / "out"))
    import_backup(fresh, _archive(tmp_path / "copy.tar.gz", members))
    assert fresh.library.all_ocr_words(doc.doc_id) == kept
    assert fresh.library.ocr_words(doc.doc_id, 2) == kept[2] and fresh.library.ocr_words(doc.doc_id, 1) is None

    # Words for a page the document does not have: refused, and nothing of it kept.
    members[f"words/{doc.doc_id}.json"] = json.dumps({"7": kept[2]}).encode()
    with Mentor.open(fresh.settings.replace(home=tmp_path / "third"), embedder=fresh.embedder, with_model=False) as other:
        with pytest.raises(BackupError, match="scan.pdf: the words read on its scanned pages are damaged"):
            import_backup(other, _archive(tmp_path / "damaged.tar.gz", members))
        assert other.documents() == [] and other.index.count() == 0


def _members(archive) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_something_that_is_not_a_backup_gets_a_clear_message(fresh, tmp_path):
    not_gz = tmp_path / "notes.tar.gz"
    not_gz.write_text("hello")
    with pytest.raises(BackupError, match="not an AI Mentor backup"):
        import_backup(fresh, not_gz)

    no_header = _archive(tmp_path / "empty.tar.gz", {"files/" + "a" * 64 + ".pdf": b"%PDF-"})
    with pytest.raises(BackupError, match="no backup.json"):
        import_backup(fresh, no_header)

    wrong_format = _archive(tmp_path / "v9.tar.gz", {"backup.json": json.dumps({"format": 9}).encode()})
    with pytest.raises(BackupError, match="format"):
        import_backup(fresh, wrong_format)


def test_verified_answers_open_questions_flags_and_answer_style_go_into_the_backup_but_student_questions_do_not(
    course, fresh, tmp_path
):
    from dataclasses import replace

    from mentor.course.info import GUIDE, Teaching

    office = course.search(QUESTIONS[0], 1)
    kept = course.questions.save_verified(QUESTIONS[0], "Thursdays, 2 to 4 pm, room B12.", office)
    course.questions.ask_instructor("Is the midterm open book?", "The course materials don't cover this.", "Ada")
    answered = course.questions.ask_instructor("Can I bring a calculator?")
    course.questions.reply(answered.id, "Yes.")
    course.library.set_flags("notes.md", instructor_only=True, assignment=False)
    course.library.set_flags("handbook.pdf", instructor_only=False, assignment=True)
    info = CourseInfo.load(course.settings.home)
    replace(info, teaching=Teaching(GUIDE, "assignments", 30)).save(course.settings.home)
    course.ask("What is escape velocity?").finish()  # a student question: kept in the log, not the archive
    assert course.questions.count() == 1

    archive = export_backup(course, tmp_path / "out")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        instructor = json.loads(tar.extractfile("instructor.json").read())
    summary = import_backup(fresh, archive)

    assert "instructor.json" in names and "What is escape velocity?" not in json.dumps(instructor)
    assert [v["question"] for v in instructor["verified"]] == [QUESTIONS[0]]
    assert [(r["question"], r["name"]) for r in instructor["requests"]] == [("Is the midterm open book?", "Ada")]
    (restored,) = fresh.questions.verified_answers()
    assert (restored.question, restored.answer) == (kept.question, kept.answer)
    assert [(h.doc_id, h.page) for h in restored.citations] == [(h.doc_id, h.page) for h in kept.citations]
    (request,) = fresh.questions.requests()
    assert (request.question, request.name, request.open) == ("Is the midterm open book?", "Ada", True)
    flags = {d.name: (d.instructor_only, d.assignment) for d in fresh.documents()}
    assert flags == {"notes.md": (True, False), "handbook.pdf": (False, True)}
    assert CourseInfo.load(fresh.settings.home).teaching == Teaching(GUIDE, "assignments", 30)
    assert (summary.verified, summary.requests) == (1, 1) and fresh.questions.count() == 0
    # A second import adds neither again.
    assert (import_backup(fresh, archive).verified, len(fresh.questions.requests())) == (0, 1)
