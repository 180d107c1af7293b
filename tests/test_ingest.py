"""Ingestion: outcomes, dedup, replacement, removal, crash recovery, a change of settings."""

from __future__ import annotations

from pypdf.generic import NameObject

from mentor import Mentor
from mentor.ingest.pipeline import Outcome
from tests.pdfs import HANDBOOK, make_pdf


def test_ingest_adds_every_page_and_keeps_the_original(mentor, handbook):
    [result] = mentor.ingest([handbook])

    assert result.outcome is Outcome.ADDED
    assert result.pages == len(HANDBOOK)
    # Each page of the handbook is shorter than one chunk.
    assert result.chunks == len(HANDBOOK)
    assert mentor.index.count(result.doc_id) == len(HANDBOOK)
    assert mentor.stored_file(result.doc_id).read_bytes() == handbook.read_bytes()
    [doc] = mentor.documents()
    assert (doc.name, doc.pages, doc.chunks, doc.status) == ("handbook.pdf", 6, 6, "ready")


def test_same_bytes_again_is_already_indexed_and_adds_no_points(mentor, handbook):
    mentor.ingest([handbook])
    [again] = mentor.ingest([handbook])

    assert again.outcome is Outcome.ALREADY
    assert mentor.index.count() == len(HANDBOOK)
    assert len(mentor.documents()) == 1


def test_same_name_with_new_content_replaces_the_old_version(mentor, tmp_path):
    make_pdf(tmp_path / "v1" / "notes.pdf", ["Photosynthesis turns light into sugar in chloroplasts."], 0)
    make_pdf(tmp_path / "v2" / "notes.pdf", ["Mitochondria are where cellular respiration happens."], 0)
    [first] = mentor.ingest([tmp_path / "v1" / "notes.pdf"])
    [second] = mentor.ingest([tmp_path / "v2" / "notes.pdf"])

    assert second.outcome is Outcome.REPLACED
    assert [d.doc_id for d in mentor.documents()] == [second.doc_id]
    assert mentor.index.count(first.doc_id) == 0
    assert mentor.stored_file(first.doc_id) is None
    assert "Mitochondria" in mentor.search("where does respiration happen", k=1)[0].text


def test_remove_makes_the_document_unsearchable(mentor, handbook):
    [result] = mentor.ingest([handbook])
    removed = mentor.remove("handbook.pdf")

    assert removed.doc_id == result.doc_id
    assert mentor.search("escape velocity") == []
    assert mentor.index.count() == 0
    assert mentor.stored_file(result.doc_id) is None


def test_long_pages_are_cut_into_chunks_that_fit_the_embedder(mentor, tmp_path):
    sentences = " ".join(f"Sentence number {i} talks about topic {i * 7} in some detail." for i in range(300))
    path = make_pdf(tmp_path / "long.pdf", [sentences[i : i + 4000] for i in range(0, len(sentences), 4000)], 0)
    [result] = mentor.ingest([path])

    texts = [r.text for r in mentor.index.records(result.doc_id)]
    assert result.chunks == len(texts) > result.pages
    assert max(mentor.embedder.count_tokens(t) for t in texts) <= mentor.settings.chunk_tokens


def test_progress_reports_pages_and_chunks(mentor, handbook):
    seen = []
    mentor.ingest([handbook], progress=seen.append)

    assert seen[-1].file == "handbook.pdf"
    assert (seen[-1].pages_parsed, seen[-1].pages_total, seen[-1].chunks_embedded) == (6, 6, 6)


def test_folders_are_searched_for_supported_files(mentor, tmp_path):
    make_pdf(tmp_path / "course" / "a.pdf", ["Alpha page about rivers."], 0)
    (tmp_path / "course" / "sub").mkdir()
    (tmp_path / "course" / "sub" / "b.md").write_text("# Beta\nNotes about mountains.")
    (tmp_path / "course" / "image.png").write_bytes(b"\x89PNG")

    results = mentor.ingest([tmp_path / "course"])

    assert [(r.name, r.outcome) for r in results] == [("a.pdf", Outcome.ADDED), ("b.md", Outcome.ADDED)]


def test_an_interrupted_ingestion_leaves_no_points_after_reopening(settings, embedder, tiny_model, handbook):
    with Mentor.open(settings, embedder=embedder, model=tiny_model) as mentor:
        [done] = mentor.ingest([handbook])
        # What a crash after the first batch, before the copy was whole, leaves behind.
        mentor.library.registry.begin("f" * 64, "crashed.pdf", 10)
        mentor.index.add([_record("f" * 64, embedder)])
        assert mentor.index.count() == len(HANDBOOK) + 1

    with Mentor.open(settings, embedder=embedder, model=tiny_model) as mentor:
        assert [d.name for d in mentor.documents()] == ["handbook.pdf"]
        assert mentor.library.registry.get("f" * 64) is None  # nothing of it was kept: no row either
        assert mentor.index.count() == len(HANDBOOK) == mentor.index.count(done.doc_id)


def test_changed_chunking_is_rebuilt_beside_the_old_index(settings, embedder, tiny_model, handbook, tmp_path):
    long_page = " ".join(f"Sentence {i} is about the orbit of moon number {i}." for i in range(11))
    notes = make_pdf(tmp_path / "notes.pdf", [long_page], 0)
    with Mentor.open(settings, embedder=embedder, model=tiny_model) as mentor:
        [_, before] = mentor.ingest([handbook, notes])
        old_index = mentor.library.live().name

    changed = settings.replace(chunk_tokens=100)
    with Mentor.open(changed, embedder=embedder, model=tiny_model) as mentor:
        assert mentor.library.rebuild_reason() == (
            "the index was built with other settings (chunk_tokens was 150, now 100)"
        )
        # Until the rebuild is done, students search the index as it was.
        assert mentor.library.live().name == old_index
        assert mentor.search("office hours", k=1)[0].page == 6

        status = mentor.reindex()

        assert status.failed == {} and status.documents_done == 2
        live = mentor.library.live()
        assert live.name != old_index and live.spec.chunk_tokens == 100
        assert not (settings.index_dir / old_index).exists()
        after = mentor.library.registry.find("notes.pdf")
        assert after.chunks == mentor.index.count(after.doc_id) > before.chunks
        assert mentor.index.count() == len(HANDBOOK) + after.chunks
        assert mentor.library.rebuild_reason() == ""
    with Mentor.open(changed, embedder=embedder, model=tiny_model) as mentor:
        assert mentor.library.live().name == live.name
        [hit] = mentor.search("the orbit of moon number 7", k=1)
        assert (hit.file, hit.page) == ("notes.pdf", 1)
        # In a course of 8 chunks every chunk is a candidate, so the notes
        # page's two chunks, summed, can outrank the handbook's one (RRF by
        # page sums its chunks): the page is among the first two, not first.
        assert ("handbook.pdf", 6) in [(h.file, h.page) for h in mentor.search("office hours", k=2)]


def _record(doc_id, embedder):
    from mentor.index.store import ChunkRecord

    text = "half written chunk"
    return ChunkRecord(doc_id, "crashed.pdf", 0, 1, "1", text, embedder.embed_query(text))


def test_contents_and_index_listings_are_not_indexed(mentor, tmp_path):
    contents = "\n".join(f"{n}.1 Section about topic {n} . . . . . . . . . . . . {n * 10}" for n in range(1, 30))
    path = make_pdf(tmp_path / "book.pdf", [contents, "Chapter one explains photosynthesis in plants."], 0)
    [result] = mentor.ingest([path])

    assert result.chunks == 1
    assert [h.page for h in mentor.search("section about topic 12")] == [2]


def test_pages_carry_the_pdf_bookmarks_in_force_and_chunks_are_searched_with_them(mentor, tmp_path):
    from mentor.ingest.documents import read_pages

    pages = ["Cover.", "We meet on Tuesdays from 10am to noon in room A4.", "We meet on Thursdays from 2pm to 4pm in room B12."]
    outline = [("Schedule", 2, [("Lab sessions", 2), ("Office hours", 3)])]
    path = make_pdf(tmp_path / "sections.pdf", pages, 0, outline)

    assert [p.section for p in read_pages(path)] == ["", "Schedule › Lab sessions", "Schedule › Office hours"]
    # Only the bookmarks tell the two meetings apart (without them page 2
    # ranks first); the student is shown the page's text alone.
    mentor.ingest([path])
    best = mentor.search("When are office hours?")[0]
    assert (best.page, best.text, best.section) == (3, pages[2], "Schedule › Office hours")


def test_a_section_trail_too_long_for_the_window_keeps_its_deepest_titles(mentor, tmp_path):
    from mentor.ingest.chunking import Chunker
    from mentor.ingest.documents import Page

    embedder = mentor.embedder
    chunker = Chunker(embedder.tokenize, embedder.max_tokens, chunk_tokens=200, overlap=0)
    long_title = "Appendix " + " ".join(f"word{i}" for i in range(60))
    body = " ".join(f"Sentence {i} is about matrices." for i in range(80))
    [first, *_] = chunker.chunks([Page(1, "1", body, section=f"{long_title} › Saving Data")])

    assert first.context == "Saving Data"
    assert embedder.count_tokens(first.indexed_text) + 2 <= embedder.max_tokens
    assert Chunker(embedder.tokenize, embedder.max_tokens, 200, 0, section_context=False)._fitted("A › B") == ""


def test_a_bookmark_that_points_nowhere_is_ignored(tmp_path):
    from pypdf import PdfReader, PdfWriter

    from mentor.ingest.documents import read_pages

    path = make_pdf(tmp_path / "broken.pdf", ["One.", "Two."], 0, [("Intro", 1), ("Next", 2)])
    writer = PdfWriter(clone_from=PdfReader(path))
    intro = writer._root_object["/Outlines"]["/First"].get_object()
    intro["/A"].get_object()[NameObject("/D")] = NameObject("/nowhere")  # a named destination that does not exist
    writer.write(path)

    assert [(p.text.strip(), p.section) for p in read_pages(path)] == [("One.", ""), ("Two.", "Next")]
