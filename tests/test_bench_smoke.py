"""The benchmark scripts' smoke runs: tiny inputs, so that bench/ keeps
working. Not timings: these assert on the JSON each script writes (its
keys, exact page counts, perfect retrieval on a trivial dev set), never on
how fast anything was. No Debian corpora needed.

Each script's ``main(argv)`` runs in this process (the heavy imports are
paid once); the scripts that need the app still start ``python app.py``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pdfs import HANDBOOK, make_pdf

ROOT = Path(__file__).resolve().parent.parent

# Three pages: Kepler (printed "i"), escape velocity ("1"), telescopes ("2").
PAGES = HANDBOOK[2:5]
QUESTIONS = [
    {"id": "q1", "question": "What does Kepler's first law say about planets?", "pages": [1]},
    {"id": "q2", "question": "How fast must a rocket go to leave the Earth?", "pages": [2]},
    {"id": "q3", "question": "Do reflecting telescopes use mirrors or lenses?", "pages": [3]},
    {"id": "u1", "question": "What is a good recipe for sourdough bread?", "pages": [], "unanswerable": True},
]
FOLLOWUPS = [
    {
        "id": "f1",
        "first": "What is escape velocity?",
        "second": "How is it computed?",
        "standalone": "How is escape velocity computed?",
        "pages": [2],
    }
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    # Read by bench/common.py when first imported: scratch goes to tmp_path.
    os.environ["BENCH_OUT"] = str(folder / "out")
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    devset = folder / "dev.jsonl"
    devset.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    followups = folder / "followups.jsonl"
    followups.write_text("".join(json.dumps(f) + "\n" for f in FOLLOWUPS))
    return {
        "folder": folder,
        "pdf": make_pdf(folder / "handbook.pdf", PAGES, front_matter=1),
        "extra": make_pdf(folder / "office-hours.pdf", HANDBOOK[5:], front_matter=0),
        "devset": devset,
        "followups": followups,
        "results": folder / "results",
    }


def bench(script: str, *args, inputs) -> dict:
    """Runs ``bench/<script>.py --smoke`` and returns the JSON it wrote."""
    out = inputs["results"] / f"{script}.json"
    assert importlib.import_module(script).main(["--smoke", "--out", str(out), *map(str, args)]) == 0
    result = json.loads(out.read_text())
    assert result["smoke"] is True
    assert {"command", "date", "machine", "code", "contention"} <= result.keys()
    assert result["machine"]["cores"] >= 1 and result["machine"]["gpu"]
    return result


def test_ingest_smoke_counts_every_page_in_each_phase_and_reingest_is_dedup(inputs):
    r = bench("ingest", "--files", inputs["pdf"], inputs=inputs)

    assert r["corpus"]["pages"] == 3
    assert r["ours"]["pages"] == r["baseline"]["pages"] == r["floors"]["parse"]["pages"] == 3
    assert r["ours"]["chunks"] == r["floors"]["embed"]["chunks"] == 3
    assert r["ours"]["reingest_outcomes"] == ["already indexed"]
    # The starter has no dedup: a second run doubles its points.
    assert r["baseline"]["reingest_chunks_after"] == 2 * r["baseline"]["chunks"]
    assert r["ours"]["peak_rss_mib"] > 0 and r["ours"]["index_bytes"] > 0
    assert set(r["ratios"]) >= {"ours_wall_vs_floor", "ours_wall_vs_baseline", "ours_reingest_vs_ingest"}


def test_quality_smoke_finds_every_page_and_refuses_the_off_topic_question(inputs):
    r = bench(
        "quality",
        "--pdf",
        inputs["pdf"],
        "--devset",
        inputs["devset"],
        "--followups",
        inputs["followups"],
        "--work",
        inputs["folder"] / "quality",
        "--answer-tokens",
        8,
        inputs=inputs,
    )

    assert r["devset"] == {"file": str(inputs["devset"]), "answerable": 3, "unanswerable": 1, "followups": 1}
    assert r["retrieval"]["ours"]["hit@5"] == 1.0
    assert r["retrieval"]["baseline"]["hit@5"] == 1.0
    # q1 and q3 tune, q2 is held out.
    assert [r["retrieval"]["halves"][h]["ours"]["n"] for h in ("tune", "held-out")] == [2, 1]
    assert list(r["levers"]) == ["with section context"]
    levers = r["levers"]["with section context"]
    assert len(levers) == 6 and list(levers.values())[-1] == r["retrieval"]["halves"]["held-out"]["ours"]
    assert r["baseline_page_mapping"]["labels_on_several_pages"] == {"handbook.pdf": 0}
    assert r["refusal"]["tune"]["recall"] == 1.0 and r["refusal"]["held-out"]["recall"] is None
    assert r["followups"]["hit@5"]["ours"]["standalone"] == 1.0
    assert set(r["followups"]["hit@5"]["ours"]) == {"second_alone", "rewrite", "concat", "standalone"}


def test_tuning_smoke_chooses_leaving_each_corpus_out_and_reports_it(inputs):
    folder = inputs["folder"]
    extra = {"id": "u2", "question": "How many calories are in an avocado?", "pages": [], "unanswerable": True}
    handbook = folder / "tuning-handbook.jsonl"
    handbook.write_text("".join(json.dumps(q) + "\n" for q in [*QUESTIONS, extra]))
    office = folder / "tuning-office.jsonl"
    office_questions = [
        {"id": "q1", "question": "When can I see the lecturer about homework?", "pages": [1], "file": "office-hours.pdf"},
        {"id": "u1", "question": "Who won the football world cup in 1998?", "pages": [], "unanswerable": True},
    ]
    office.write_text("".join(json.dumps(q) + "\n" for q in office_questions))
    r = bench(
        "tuning",
        "--corpus",
        f"handbook={handbook}:{inputs['pdf']}",
        "--corpus",
        f"office={office}:{inputs['extra']}",
        "--work",
        folder / "tuning",
        "--first-stage-p95-ms",
        100,
        inputs=inputs,
    )

    assert r["corpora"]["handbook"] == {
        "files": ["handbook.pdf"], "chunks": 3, "devset": str(handbook), "answerable": 3, "off_course": 2
    }
    assert [row["left_out"] for row in r["leave_one_out"]["rows"]] == ["handbook", "office"]
    assert all(row["chosen_figures"]["hit@5"] == 1.0 for row in r["leave_one_out"]["rows"])
    assert set(r["levers"]) == {"keyword_weight", "per_page", "k", "reranker"}
    sweep = r["levers"]["per_page"]
    assert [row["value"] for row in sweep["per_corpus"]] == ["sum", "best", "floor:0.02", "floor:0.05", "floor:0.1", "decay:0.25", "decay:0.5"]
    assert [row["left_out"] for row in sweep["leave_one_out"]["rows"]] == ["handbook", "office"]
    assert r["reranker"]["cost_by_pages"]["5"]["cpu_ms"]["n"] == 7  # every question, off-course ones too
    assert set(r["refusal"]["rules"]) == {
        "dense", "dense+gap", "dense+unknown", "dense−unknown meaning", "dense−unknown meaning, uncapped", "rerank", "dense+rerank"
    }
    assert r["refusal"]["ships"] == "dense−unknown meaning"
    # The football question's cosine is about 0: every threshold of the grid (0.2 and up) refuses it.
    assert r["refusal"]["rules"]["dense"]["per_corpus"]["office"]["refused_off_course"] == "1 of 1"
    # "rocket" is nowhere in the handbook; every term of q1 and q3 is.
    values = r["refusal"]["values"]["handbook"]
    assert [values[q]["dense_if_unknown"] == values[q]["dense"] for q in ("q1", "q2", "q3")] == [False, True, False]
    # Without "rocket", q2 means less: its cosine is lowered by that share.
    meaning = json.loads((folder / "tuning" / "handbook" / "unknown-meaning.json").read_text())["questions"]
    assert "rocket" in meaning["q2"]["unknown_words"] and meaning["q1"] == {"unknown_words": [], "meaning": 0.0}
    share = meaning["q2"]["meaning"]
    assert share > 0.17 and values["q2"]["dense_less_unknown_meaning_uncapped"] == pytest.approx(values["q2"]["dense"] - share)
    assert values["q2"]["dense_less_unknown_meaning"] == pytest.approx(values["q2"]["dense"] - 0.17)  # the cap
    assert values["q1"]["dense_less_unknown_meaning"] == values["q1"]["dense"]
    assert r["baseline"]["handbook"] == {"n": 3, "hit@1": 1.0, "hit@5": 1.0, "mrr@5": 1.0, "unread": []}
    # Each way of building the index indexes both corpora again; every one
    # finds every page, so the tie goes to the shipped one.
    index = r["index"]
    assert [row["value"] for row in index["per_corpus"]] == ["as shipped", "chunks of 100", "chunks of 200", "no section trail"]
    assert [row["chunks"]["handbook"] for row in index["per_corpus"]] == [3, 3, 3, 3]
    assert [(row["left_out"], row["value"]) for row in index["leave_one_out"]["rows"]] == [("handbook", "as shipped"), ("office", "as shipped")]
    # BGE is compared as its card says to ask it, and without its
    # instruction; each alone, and fused with the shipped MiniLM.
    embedders = r["embedders"]
    bge = ["BAAI/bge-small-en-v1.5", "BAAI/bge-small-en-v1.5 without its query instruction"]
    assert list(embedders) == [bge[0], f"all-MiniLM-L6-v2 + {bge[0]}", bge[1], f"all-MiniLM-L6-v2 + {bge[1]}"]
    fused = embedders[f"all-MiniLM-L6-v2 + {bge[0]}"]["leave_one_out"]["rows"]
    assert ["second_weight" in row["chosen"] for row in fused] == [True, True]
    for e in embedders.values():
        assert [row["chosen_figures"]["hit@5"] for row in e["leave_one_out"]["rows"]] == [1.0, 1.0]
        assert e["against_the_product_embedder"]["verdict"]["gains"] == [0.0, 0.0]


def test_second_embedder_smoke_ingests_each_way_and_finds_every_page(inputs):
    r = bench(
        "second_embedder",
        "--corpus",
        f"handbook={inputs['devset']}:{inputs['pdf']}",
        "--work",
        inputs["folder"] / "second",
        inputs=inputs,
    )

    handbook = r["corpora"]["handbook"]
    assert list(handbook) == ["shipped", "second"]
    for figures in handbook.values():
        assert (figures["chunks"], figures["n"], figures["hit@5"]) == (3, 3, 1.0)
        assert (figures["refused_off_course"], figures["off_course"], figures["refused_answerable"]) == (1, 1, 0)
        assert figures["ingest_wall_s"] > 0 and figures["ingest_cpu_s"] > 0


def test_chunking_smoke_builds_an_index_per_size_and_finds_every_page(inputs):
    r = bench("chunking", "--pdf", inputs["pdf"], "--devset", inputs["devset"], "--sizes", 40, 200, inputs=inputs)

    assert [(s["chunk_tokens"], s["chunk_overlap"], s["chunks"]) for s in r["sizes"]] == [(40, 8, 5), (200, 40, 3)]
    assert [s["hit@5"] for s in r["sizes"]] == [1.0, 1.0]
    assert r["sizes"][1]["refusal"]["recall"] == 1.0


def test_latency_smoke_measures_every_size_in_local_mode_and_both_edge_states(inputs):
    r = bench(
        "latency",
        "--small-files",
        inputs["pdf"],
        "--extra-files",
        inputs["extra"],
        "--synthetic",
        40,
        120,
        "--devset",
        inputs["devset"],
        "--reps",
        1,
        "--whole-reps",
        1,
        "--work",
        inputs["folder"] / "latency",
        inputs=inputs,
    )

    sizes = r["sizes"]
    assert list(sizes) == ["real-small", "real-large", "synthetic-small", "synthetic-large"]
    assert [(s["pages"], s["chunks"]) for s in sizes.values()][:2] == [(3, 3), (4, 4)]
    assert [s["chunks"] for s in sizes.values()][2:] == [40, 120]
    for s in sizes.values():
        assert list(s["engines"]) == ["local", "edge_app", "edge_optimized"]
        assert s["optimize"]["seconds"] >= 0
        for state, e in s["engines"].items():
            assert e["points"] == s["chunks"], state  # each engine holds the same points
            assert e["open_s"] > 0 and e["rss_mib"]["holding_index"] > 0
            assert {k: e["store_ms"][k]["n"] for k in ("dense", "keywords", "search")} == dict.fromkeys(
                ("dense", "keywords", "search"), len(QUESTIONS)
            )
        for state in ("edge_app", "edge_optimized"):
            whole = s["engines"][state]["whole"]
            assert whole["search_ms"]["n"] == whole["embed_ms"]["n"] == whole["store_ms"]["n"] == len(QUESTIONS)
            assert whole["without_embedding_ms"]["p50"] < whole["search_ms"]["p50"]
    assert sizes["synthetic-large"]["engines"]["local"]["embed_alone_ms"]["n"] == len(QUESTIONS)


def test_generate_smoke_times_both_sides(inputs):
    r = bench(
        "generate", "--pdf", inputs["pdf"], "--devset", inputs["devset"], "--runs", 1, "--max-tokens", 8, inputs=inputs
    )

    for side in ("ours", "baseline"):
        assert r[side]["ttft_s"]["n"] == 1
        assert r[side]["tokens"]["max"] > 0
        assert r[side]["prompt_tokens"]["p50"] > 50  # system prompt and sources
    streams = r["streams"]
    assert streams["counts"] == [1, 2]
    for row in streams["rows"].values():
        assert {"batched", "serial", "raw_llama_cpp"} <= row.keys()
        assert row["batched"]["pieces"] == row["serial"]["pieces"] > 0  # the same greedy answers
    assert streams["scheduler_per_step"]["steps"] > 0 and streams["scheduler_per_step"]["python_ms"] >= 0


def test_repetition_smoke_compares_each_answer_with_and_without_the_guard(inputs):
    r = bench("repetition", "--pdf", inputs["pdf"], "--devset", inputs["devset"], inputs=inputs)

    assert r["answers"] == 2 and len(r["rows"]) == 2
    assert r["prefix_when_cut"] is True and r["repeat_span"] == 32
    assert all(row["unguarded_tokens"] >= row["guarded_tokens"] > 0 for row in r["rows"])


def test_profile_smoke_splits_the_calling_thread(inputs):
    r = bench("profile_ingest", "--files", inputs["pdf"], inputs=inputs)

    assert (r["pages"], r["chunks"]) == (3, 3)
    assert set(r["calling_thread_s"]) == {"embed", "store_add", "keyword_vectors", "waiting_for_chunks_and_other"}
    assert r["producer_alone_s"]["chunks"] == 3
    assert (inputs["results"] / r["profile_text"]).is_file()


@pytest.mark.skipif(not (ROOT / "app.py").exists(), reason="app.py not written yet")
def test_coldstart_smoke_reaches_ready(inputs):
    r = bench("coldstart", "--pdf", inputs["pdf"], "--runs", 1, inputs=inputs)

    assert r["runs"] == 1 and r["documents"] == 1 and r["chunks"] == 3
    assert r["ready_s"]["p50"] > 0


@pytest.mark.skipif(not (ROOT / "app.py").exists(), reason="app.py not written yet")
def test_load_smoke_answers_every_student_during_an_upload(inputs):
    r = bench(
        "load",
        "--pdf",
        inputs["pdf"],
        "--upload",
        inputs["extra"],
        "--devset",
        inputs["devset"],
        "--students",
        2,
        "--answer-tokens",
        8,
        inputs=inputs,
    )

    assert (r["students"], r["completed"], r["errors"]) == (2, 2, 0), r["error_messages"]
    assert r["crowd_without_ingestion"]["completed"] == 2
    assert r["crowd_one_slot"]["completed"] == 2  # the same crowd with N_PARALLEL=1
    assert r["n_parallel"] == 4  # the CPU's default
    assert r["ingestion"]["outcome"] == "1 added, 0 failed"
    burst = r["api_burst"]
    assert sum(burst["by_status"].values()) == burst["requests"] == 4
    assert set(burst["by_status"]) <= {"200", "503"} and burst["healthz_failed"] == 0


def test_ocr_smoke_reads_every_word_of_a_scanned_page(inputs):
    r = bench("ocr", inputs=inputs)

    assert (r["pages"], r["scan_dpi"], r["threads"], r["languages"]) == (1, 100, 1, "eng")
    assert r["engine"].startswith("tesseract ")
    assert r["word_recall"]["min"] == 1.0
    assert r["pages_per_s"] > 0 and r["split_s_per_page"]["render_and_tesseract"]["n"] == 1


def test_report_renders_every_section_from_the_smoke_results(inputs):
    results = inputs["results"]
    # Run alone, it makes the smoke results it reads itself (never a skip:
    # a skipped report test would hide a broken report).
    if not (results / "ingest.json").exists() and not (results / "ingest-r-manuals.json").exists():
        bench("ingest", "--files", inputs["pdf"], inputs=inputs)
    if not (results / "ocr.json").exists():
        bench("ocr", inputs=inputs)
    if not (results / "second_embedder.json").exists():
        test_second_embedder_smoke_ingests_each_way_and_finds_every_page(inputs)
    for name in ("ingest",):  # report.py reads ingest-<corpus>.json
        if (results / f"{name}.json").exists():
            (results / f"{name}.json").rename(results / "ingest-r-manuals.json")
    out = inputs["folder"] / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, "bench/report.py", "--results", str(results), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    # The smoke runs had no GPU, and the report says so.
    assert "GPU: none" in text and "not measured: no GPU in this run" in text
    assert "python bench/ingest.py --smoke" in text
    assert "smoke run" in text  # smoke figures are flagged as meaningless
    assert "OCR of scanned pages (tesseract " in text
    # The tuning's index variants and the other embedder, each in a table.
    assert "**How the index is built (chunk size" in text and "| chunks of 100 |" in text
    assert "**Another embedder**" in text and "| all-MiniLM-L6-v2, shipped | BAAI/bge-small-en-v1.5 |" in text
    for heading in (
        "## Summary",
        "## 1. Ingestion",
        "## 2. Retrieval quality",
        "### Retrieval tuning",
        "### A second embedder in the product",
        "## 3. Latency",
        "## 5. GPU",
        "## 6. OCR",
    ):
        assert heading in text


def test_questions_smoke_chooses_the_thresholds_the_code_uses(inputs):
    from mentor.course.insights import GROUP_SIMILARITY
    from mentor.settings import Settings

    r = bench("questions", inputs=inputs)

    assert r["chosen"] == {"group_similarity": GROUP_SIMILARITY, "verified_min_similarity": Settings().verified_min_similarity}
    assert r["tuning"]["questions"] == r["held_out"]["questions"] == 52
