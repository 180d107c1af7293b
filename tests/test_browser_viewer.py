"""A citation opens the app's own viewer at the cited page, with the cited
passage marked: in Debian's Chromium driven by Playwright, on a desktop
screen and on a phone's, for a real manual (R's "R Data Import/Export",
from Debian's r-doc-pdf), a scanned page read by OCR, and a page in two
columns.

The course is ingested with the command line before ``python app.py``
starts (``test_browser`` covers uploading through the console). What a mark
covers is read back from the PDF itself (PDFium's text inside the mark's
rectangle), so the test checks what a student sees, not what the viewer
believes. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mentor.ingest.locate import Box
from tests import test_browser
from tests.conftest import small_env
from tests.materials import make_scan
from tests.pdfs import COLUMN_PASSAGE, make_columns_pdf, r_manual
from tests.test_browser import ARTIFACTS, ROOT, running_app
from tests.test_viewer import text_in

R_DATA = r_manual("R-data.pdf")
SCANNED = "Radio telescopes detect the faint hiss left over from the Big Bang."
browser = test_browser.browser  # the fixture, shared
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The app serving R-data.pdf, a PDF with a scanned page and a page in
    two columns, ingested beforehand; yields (url, {file name: doc id},
    {file name: path})."""
    root = tmp_path_factory.mktemp("viewer")
    files = [R_DATA, make_scan(root / "scan.pdf", [None, SCANNED, None]), make_columns_pdf(root / "columns.pdf")]
    command = [sys.executable, "-m", "mentor", "ingest", "--json", *map(str, files)]
    # A page may take long on a busy machine: OCR must not be cut off.
    env = small_env(root / "home", PAGE_SECONDS="300")
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert results["scan.pdf"]["reason"] == "1 of 3 pages read by OCR", results["scan.pdf"]
    ids = {name: r["doc_id"] for name, r in results.items()}
    # The course open to anyone with the URL: who may open a viewer behind
    # the class link is tests/test_class_link.py's subject.
    with running_app(root, MAX_ANSWER_TOKENS="24", MENTOR_CLASS_KEY="off") as url:
        yield url, ids, {f.name: f for f in files}


def test_a_citation_of_a_manual_opens_the_viewer_at_its_page_with_the_passage_marked(course, browser):
    url, ids, files = course
    viewer, cited = _follow_first_citation(browser, url, DESKTOP, "How do I read a file in fixed-width format?")
    page, chunk = _page_and_chunk(viewer.url, ids["R-data.pdf"])
    assert cited["place"] == f"page {_label(R_DATA, page)}"
    _expect_marked(viewer, R_DATA, page, cited["snippet"])
    assert viewer.locator("#label").inner_text() == f"Page {_label(R_DATA, page)}"
    viewer.screenshot(path=ARTIFACTS / "viewer-desktop-manual.png")

    # The original is a click away, at the same page.
    assert viewer.locator("#original").get_attribute("href") == f"/files/{ids['R-data.pdf']}#page={page}"
    # Navigation: the next page has no mark, and says where the passage is.
    viewer.locator("#next").click()
    viewer.wait_for_function(f"document.getElementById('label').textContent === 'Page {_label(R_DATA, page + 1)}'")
    assert viewer.locator(".mark").count() == 0
    assert viewer.locator("#note").inner_text() == f"The cited passage is on page {_label(R_DATA, page)}."


def test_on_a_phone_a_citation_opens_the_page_with_the_passage_marked(course, browser):
    url, ids, files = course
    viewer, cited = _follow_first_citation(browser, url, PHONE, "How do I read a file in fixed-width format?")
    page, _ = _page_and_chunk(viewer.url, ids["R-data.pdf"])
    boxes = _expect_marked(viewer, R_DATA, page, cited["snippet"])
    # The page fits the phone's width, and the first mark is in view.
    assert viewer.evaluate("document.getElementById('page').getBoundingClientRect().width") <= 390
    first = viewer.locator(".mark").first.bounding_box()
    assert 0 <= first["y"] <= 844, (first, boxes)
    viewer.screenshot(path=ARTIFACTS / "viewer-phone-manual.png")


def test_a_passage_read_by_ocr_is_marked_on_the_scanned_page(course, browser):
    """Opened by its link, not from the chat: beside a 41-page manual, the
    one-sentence scanned page ranks below the manual's pages (page-sum
    fusion; see DESIGN.md), so the chat's answer may not list it."""
    url, ids, files = course
    context = browser.new_context(**PHONE)
    viewer = context.new_page()
    # The scan's pages are chunks 0, 1 and 2: the sentence is page 2's.
    passage = json.loads(urllib.request.urlopen(f"{url}/view/{ids['scan.pdf']}/passage?chunk=1", timeout=60).read())
    assert (passage["page"], passage["label"]) == (2, "page 2")
    viewer.goto(f"{url}/view/{ids['scan.pdf']}?page=2&chunk=1#page=2")
    # The scan has no text layer: the mark is checked against where the
    # sentence was drawn (tests/materials.py: one inch from the top left).
    viewer.locator(".mark").first.wait_for()
    [box] = _marks(viewer)
    assert abs(box[0] - 1 / 8.27) < 0.01 and abs(box[1] - 1 / 11.69) < 0.01, box
    assert 0.5 < box[2] < 0.8 and box[3] - box[1] < 0.03, box
    assert "marked" in viewer.locator("#note").inner_text()
    viewer.screenshot(path=ARTIFACTS / "viewer-phone-scan.png")
    context.close()


def test_a_passage_across_two_columns_and_a_hyphenated_line_is_marked_in_both_columns(course, browser):
    url, ids, files = course
    context = browser.new_context(**DESKTOP)
    viewer = context.new_page()
    doc_id = ids["columns.pdf"]
    viewer.goto(f"{url}/view/{doc_id}?page=1&chunk=0")
    viewer.locator(".mark").first.wait_for()
    marks = _marks(viewer)
    # The page is one chunk: both columns are marked, the hyphenated word and all.
    assert any(b[2] < 0.5 for b in marks) and any(b[0] > 0.5 for b in marks), marks
    marked = " ".join(_words(" ".join(_text_in(files["columns.pdf"], 1, box) for box in marks)))
    passage = _words(COLUMN_PASSAGE)
    assert " ".join(passage[:8]) in marked and " ".join(passage[-8:]) in marked, marked
    viewer.screenshot(path=ARTIFACTS / "viewer-desktop-columns.png")
    context.close()


def test_the_viewer_and_its_parts_serve_no_instructor_only_or_unknown_document(course):
    url, ids, files = course
    for path in ["/view/" + "0" * 64, "/view/" + "0" * 64 + "/passage?chunk=0", "/view/abc", "/viewer-assets/../app.py"]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + path, timeout=10)
        assert refused.value.code == 404, path


# --- helpers ---------------------------------------------------------------------------


def _follow_first_citation(browser, url: str, device: dict, question: str, file: str = ""):
    """Asks ``question`` on the chat page on ``device`` and clicks source
    [1] (or the first source from ``file``, unfolding the passages searched
    if needed); returns the viewer's page and what the source card said."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(**device)
    context.set_default_timeout(120_000)
    chat = context.new_page()
    chat.goto(url + "/")
    chat.locator("#question textarea").fill(question)
    chat.locator("#question textarea").press("Enter")
    bot = chat.locator("#chat .message.bot").last
    expect(bot.locator(".sources a.source-link").first).to_be_visible(timeout=180_000)
    source = bot.locator(".sources li.source", has=chat.locator("a.source-link", has_text=file)).first
    if not source.is_visible():
        bot.locator("details.sources-more > summary").click()
    link = source.locator("a.source-link")
    # The preview of the cited region, drawn by the server on unfolding.
    source.locator("details.source-preview > summary").click()
    preview = source.locator("details.source-preview img")
    chat.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    source.scroll_into_view_if_needed()
    chat.screenshot(path=ARTIFACTS / f"viewer-chat-preview-{device['viewport']['width']}.png")
    cited = {
        "place": link.inner_text().split(", ", 1)[1],
        "snippet": source.locator(".source-snippet").inner_text(),
    }
    with context.expect_page() as opened:
        link.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    return viewer, cited


def _page_and_chunk(url: str, doc_id: str) -> tuple[int, int]:
    found = re.search(rf"/view/{doc_id}\?page=(\d+)&chunk=(\d+)", url)
    assert found, url
    return int(found[1]), int(found[2])


def _marks(viewer) -> list[tuple[float, float, float, float]]:
    """Each mark's rectangle as fractions of the page drawn."""
    return viewer.evaluate(
        """() => {
        const sheet = document.getElementById('sheet').getBoundingClientRect();
        return [...document.querySelectorAll('.mark')].map((m) => {
            const r = m.getBoundingClientRect();
            return [(r.left - sheet.left) / sheet.width, (r.top - sheet.top) / sheet.height,
                    (r.right - sheet.left) / sheet.width, (r.bottom - sheet.top) / sheet.height];
        });
    }"""
    )


def _expect_marked(viewer, pdf: Path, page: int, snippet: str) -> list:
    """The marks on ``page`` cover text that starts with the snippet's first words."""
    viewer.locator(".mark").first.wait_for()
    boxes = _marks(viewer)
    marked = " ".join(_text_in(pdf, page, box) for box in boxes)
    first_words = " ".join(_words(snippet)[:6])
    assert first_words in " ".join(_words(marked)), (first_words, marked)
    assert "marked" in viewer.locator("#note").inner_text()
    return boxes


def _words(text: str) -> list[str]:
    import unicodedata

    return re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).casefold().replace("-\n", ""))


def _text_in(pdf: Path, page: int, box) -> str:
    """PDFium's text of ``pdf``'s page inside ``box`` (fractions of the page)."""
    return text_in(pdf, page, Box(*box))


def _label(pdf: Path, page: int) -> str:
    from pypdf import PdfReader

    return PdfReader(pdf).page_labels[page - 1]
