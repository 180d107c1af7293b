"""``python -m mentor``: the commands and JSON fields other tools rely on."""

from __future__ import annotations

import json

import pytest

from tests.conftest import small_env
from tests.pdfs import make_pdf


@pytest.fixture
def run(tmp_path, warm_python):
    """``python -m mentor ARGS``, forked from a warm interpreter (the same
    command, without a fresh one's 8 s of imports)."""
    env = small_env(tmp_path / "home", MAX_ANSWER_TOKENS="64")

    def run(*args, stdin=None, expect=0, home=None, settings=None):
        env_here = env | {"MENTOR_HOME": str(home)} if home else env
        env_here = env_here | (settings or {})
        done = warm_python.run("mentor", *args, env=env_here, input=stdin or "", timeout=300)
        assert done.returncode == expect, done.stderr
        return done

    return run


def test_ingest_then_ask_cites_the_right_file_and_page_label(run, tmp_path):
    pdf = make_pdf(tmp_path / "handbook.pdf")
    bad = tmp_path / "notes.pdf"
    bad.write_bytes(b"this is not a pdf")

    ingested = run("ingest", str(pdf), str(bad), expect=1).stdout.splitlines()
    assert ingested[0] == "handbook.pdf: added (6 pages, 6 chunks)"
    assert ingested[1].startswith("notes.pdf: failed: not a PDF")

    answer = json.loads(run("ask", "When are office hours held?", "--json").stdout)
    assert answer["refused"] is False and answer["answer"].strip()
    first = answer["sources"][0]
    assert (first["file"], first["page"], first["page_label"]) == ("handbook.pdf", 6, "4")

    again = run("ingest", str(pdf), "--json").stdout
    assert json.loads(again)["outcome"] == "already indexed"


def test_search_json_and_stdin_keep_their_contract(run, tmp_path):
    run("ingest", str(make_pdf(tmp_path / "handbook.pdf")))
    # What an instructor runs after uploads through the app, which never optimizes.
    assert run("optimize").stdout == "index optimized: 6 chunks\n"

    [hit, *_] = json.loads(run("search", "escape velocity of the Earth", "-k", "2", "--json").stdout)
    assert set(hit) == {"file", "page", "page_label", "score", "text", "section", "doc_id", "chunk_no"}
    assert (hit["page"], hit["page_label"]) == (4, "2")

    lines = run("search", "--stdin", "-k", "1", "--json", stdin="telescope mirrors\noffice hours room\n").stdout
    assert [json.loads(line)[0]["page"] for line in lines.splitlines()] == [5, 6]

    # In text, a question the mentor would refuse says so under its closest pages.
    shown = run("search", "--stdin", "-k", "1", stdin="office hours room\nsourdough starter recipe\n").stdout.splitlines()
    assert len(shown) == 3 and "handbook.pdf" in shown[0] and "handbook.pdf" in shown[1]
    assert shown[2].startswith("-- off the course: the mentor would not answer this (the nearest passage scores 0.")
    assert "found nowhere in the course" in shown[2]


def test_docs_and_remove(run, tmp_path):
    run("ingest", str(make_pdf(tmp_path / "handbook.pdf")))
    [doc] = json.loads(run("docs", "--json").stdout)
    assert (doc["name"], doc["pages"], doc["chunks"]) == ("handbook.pdf", 6, 6)

    assert run("remove", "handbook.pdf").stdout.strip() == "removed handbook.pdf"
    assert json.loads(run("docs", "--json").stdout) == []
    assert "no document named" in run("remove", "handbook.pdf", expect=2).stderr


def test_export_then_import_into_a_fresh_home_restores_the_documents(run, tmp_path):
    run("ingest", str(make_pdf(tmp_path / "handbook.pdf")))
    archive = json.loads(run("export", str(tmp_path), "--json").stdout)["archive"]

    assert "handbook.pdf" in run("import", archive, home=tmp_path / "fresh").stdout
    [doc] = json.loads(run("docs", "--json", home=tmp_path / "fresh").stdout)
    assert (doc["name"], doc["pages"], doc["chunks"]) == ("handbook.pdf", 6, 6)


def test_a_change_of_chunking_is_noted_and_reindex_rebuilds_with_progress(run, tmp_path):
    run("ingest", str(make_pdf(tmp_path / "handbook.pdf")))
    smaller = {"CHUNK_TOKENS": "100"}

    searched = run("search", "office hours", "-k", "1", "--json", settings=smaller)
    assert searched.stderr.splitlines()[-1] == (
        "note: the index was built with other settings (chunk_tokens was 150, now 100); "
        "`python -m mentor reindex` rebuilds it (the app does so by itself)."
    )
    assert json.loads(searched.stdout)[0]["page"] == 6  # the old index still answers

    rebuilt = run("reindex", settings=smaller)
    assert rebuilt.stdout.startswith("Index rebuilt at ")
    assert "handbook.pdf: 6/6 pages, 6 chunks" in rebuilt.stderr and "optimizing the index" in rebuilt.stderr
    after = run("docs", settings=smaller)
    assert "note:" not in after.stderr and "handbook.pdf" in after.stdout
