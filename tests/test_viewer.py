"""The cited passage, located on its page (``mentor.ingest.locate``), and
the viewer's routes (``mentor.web.viewer_routes``): what they serve and to
whom. The browser's side is in ``test_browser_viewer.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mentor.ingest.locate import Box, locate, ocr_text, pdf_text
from tests.materials import make_scan
from tests.pdfs import COLUMN_PASSAGE, HANDBOOK, make_columns_pdf, make_pdf

SCANNED = "Radio telescopes detect the faint hiss left over from the Big Bang."


def text_in(pdf: Path, page: int, box: Box) -> str:
    """PDFium's text inside ``box`` (fractions of the page)."""
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        sheet = document[page - 1]
        w, h = sheet.get_size()
        return sheet.get_textpage().get_text_bounded(box.x0 * w, (1 - box.y1) * h, box.x1 * w, (1 - box.y0) * h)
    finally:
        document.close()


def words(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def test_a_passage_across_two_columns_a_hyphenated_line_and_ligatures_is_located(tmp_path):
    pdf = make_columns_pdf(tmp_path / "columns.pdf")

    boxes = locate(COLUMN_PASSAGE, pdf_text(pdf, 1))

    # One box per line: two lines at the foot of the left column, six at the top of the right.
    assert [b.x0 < 0.5 for b in boxes] == [True, True] + [False] * 6
    assert words(text_in(pdf, 1, boxes[0])).startswith("the first spacecraft")  # "ﬁ" on the page
    assert words(text_in(pdf, 1, boxes[1])).startswith("system relied on gravita")
    assert words(text_in(pdf, 1, boxes[-1])) == "years"
    # Six words, one of them split by the hyphen: found only if "gravita-" joins "tional".
    short = locate("relied on gravitational assists from Jupiter", pdf_text(pdf, 1))
    assert [b.x0 < 0.5 for b in short] == [True, False]


def test_the_passage_as_pypdf_reads_it_is_located_in_pdfiums_reading(tmp_path):
    from pypdf import PdfReader

    pdf = make_columns_pdf(tmp_path / "columns.pdf")
    as_indexed = PdfReader(pdf).pages[0].extract_text()  # "ﬁ", "gravita-\ntional"
    start = as_indexed.index("The ﬁrst")

    boxes = locate(as_indexed[start : start + 160], pdf_text(pdf, 1))

    assert words(" ".join(text_in(pdf, 1, b) for b in boxes)).startswith("the first spacecraft to leave")


def test_a_passage_that_is_not_on_the_page_is_not_located(tmp_path):
    pdf = make_pdf(tmp_path / "handbook.pdf")
    elsewhere = HANDBOOK[3]  # escape velocity, on page 4

    assert locate(elsewhere, pdf_text(pdf, 6)) == []
    assert locate("Office hours are", pdf_text(pdf, 5)) == []  # three common words do not anchor a passage
    assert len(locate(elsewhere, pdf_text(pdf, 4))) == 3


def test_a_passage_is_located_among_the_words_ocr_read():
    lines = [[["Radio", 0.1, 0.1, 0.2, 0.12], ["tele-", 0.21, 0.1, 0.3, 0.12]], [["scopes", 0.1, 0.13, 0.2, 0.15], ["hiss", 0.21, 0.13, 0.28, 0.15]]]
    page = ocr_text(lines)

    assert locate("Radio telescopes hiss", page) == [Box(0.1, 0.1, 0.3, 0.12), Box(0.1, 0.13, 0.28, 0.15)]


@pytest.fixture
def served(mentor, tmp_path):
    """A test client of the viewer's routes over a course of the handbook
    and a scan; yields (client, handbook's id, scan's id)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from mentor.web.viewer_routes import create_viewer_router

    handbook, scan = mentor.ingest([make_pdf(tmp_path / "handbook.pdf"), make_scan(tmp_path / "scan.pdf", [SCANNED])])
    app = FastAPI()
    app.include_router(create_viewer_router(mentor))
    return TestClient(app), handbook.doc_id, scan.doc_id


def test_the_passage_route_gives_the_cited_chunks_page_and_its_boxes(served, mentor):
    client, handbook_id, scan_id = served
    hit = mentor.search("When are office hours held?", k=1)[0]
    scanned = mentor.search("what do radio telescopes detect?", k=1)[0]

    found = client.get(f"/view/{handbook_id}/passage", params={"chunk": hit.chunk_no}).json()
    on_scan = client.get(f"/view/{scan_id}/passage", params={"chunk": scanned.chunk_no}).json()

    assert (found["page"], found["label"], len(found["boxes"])) == (6, "page 4", 2)
    # Read by OCR: the words' boxes, kept at ingest, on the line where the sentence was drawn.
    assert (on_scan["page"], len(on_scan["boxes"])) == (1, 1)
    x0, y0, x1, y1 = on_scan["boxes"][0]
    assert abs(x0 - 1 / 8.27) < 0.01 and abs(y0 - 1 / 11.69) < 0.01 and 0.5 < x1 < 0.8
    assert client.get(f"/view/{handbook_id}/passage", params={"chunk": 999}).status_code == 404


def test_the_viewer_opens_a_pdf_at_the_cited_page_and_loads_only_the_apps_own_files(served):
    client, handbook_id, _ = served

    view = client.get(f"/view/{handbook_id}", params={"page": 6, "chunk": 5})

    assert view.status_code == 200
    assert f'data-doc="{handbook_id}" data-page="6" data-name="handbook.pdf" data-chunk="5"' in view.text
    assert view.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self' 'wasm-unsafe-eval';")
    for name, kind in [("viewer.js", "text/javascript"), ("pdfjs/pdf.worker.min.mjs", "text/javascript"), ("pdfjs/openjpeg.wasm", "application/wasm")]:
        asset = client.get(f"/viewer-assets/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind), name
    for name in ["../viewer.py", "pdfjs/LICENSE", "%2e%2e/routes.py", "pdfjs/../../routes.py"]:
        assert client.get(f"/viewer-assets/{name}").status_code == 404, name


def test_a_preview_is_drawn_once_kept_on_disk_and_bounded(served, mentor, monkeypatch):
    from PIL import Image

    from mentor.web import viewer_routes

    client, handbook_id, _ = served
    hit = mentor.search("When are office hours held?", k=1)[0]

    first = client.get(f"/view/{handbook_id}/preview", params={"chunk": hit.chunk_no})
    [kept] = (mentor.settings.home / "cache" / "previews").glob(f"{handbook_id}-{hit.chunk_no}-*.png")
    stamp = kept.stat().st_mtime_ns
    again = client.get(f"/view/{handbook_id}/preview", params={"chunk": hit.chunk_no})

    assert first.headers["content-type"] == "image/png" and again.content == first.content
    assert kept.stat().st_mtime_ns == stamp  # served from disk, not drawn again
    image = Image.open(kept)
    assert image.width == viewer_routes.PREVIEW_WIDTH and image.height < image.width / 2
    # Over its bound, the cache drops its oldest pictures.
    monkeypatch.setattr(viewer_routes, "PREVIEW_CACHE_BYTES", kept.stat().st_size + 10)
    other = mentor.search("What is escape velocity?", k=1)[0]
    client.get(f"/view/{handbook_id}/preview", params={"chunk": other.chunk_no})
    assert [p.name.rsplit("-", 1)[0] for p in kept.parent.glob("*.png")] == [f"{handbook_id}-{other.chunk_no}"]


def test_an_instructor_only_document_is_never_viewed_previewed_or_located(served, mentor):
    client, handbook_id, _ = served
    hit = mentor.search("When are office hours held?", k=1)[0]
    mentor.library.set_flags(handbook_id, instructor_only=True, assignment=False)

    for path in [f"/view/{handbook_id}", f"/view/{handbook_id}/passage", f"/view/{handbook_id}/preview"]:
        assert client.get(path, params={"page": 6, "chunk": hit.chunk_no}).status_code == 404, path
    for path in ["/view/" + "0" * 64, "/view/abc", "/view/..%2F..%2Fetc%2Fpasswd"]:
        assert client.get(path).status_code == 404, path


def test_deleting_a_document_deletes_the_words_ocr_read_on_it(served, mentor):
    _, _, scan_id = served
    words = mentor.settings.files_dir / "words" / f"{scan_id}.json"
    assert words.is_file()

    mentor.remove(scan_id)

    assert not words.exists()
