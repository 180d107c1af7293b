"""bench/gpu/: the GPU run's prepare step and its CPU dry run.

The GPU run itself needs a GPU machine, lent now and then; this is what
keeps it working in between. Prepare fetches the pinned llama-cpp-python
sdist from PyPI (pip's cache makes it quick) and writes the carry into a
temporary folder; the dry run then runs every step that needs no CUDA at a
small size, with the packages the device lacks hidden, and these tests read
the JSON it writes. No timings are asserted.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Loaded by path: bench/gpu/ on sys.path would shadow other modules (build, run).
_spec = importlib.util.spec_from_file_location("gpu_carry", ROOT / "bench" / "gpu" / "carry.py")
carry = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(carry)

# The real Mistral-7B-Instruct-v0.2 Q5_K_M file (TheBloke's), in bytes.
MISTRAL_7B_Q5_K_M_BYTES = 5_131_409_696


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> carry.Cache:
    folder = tmp_path_factory.mktemp("gpu")
    cache = carry.Cache(folder / "cache")
    done = run("bench/gpu/prepare.py", "--cache", str(cache.folder), "--downloads", str(folder / "downloads"))
    assert done.returncode == 0, done.stderr[-3000:]
    return cache


@pytest.fixture(scope="module")
def dry_run(prepared, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("dry")
    out = folder / "gpu.json"
    done = run(
        "bench/gpu/run.py", "--cpu-dry-run", "--cache", str(prepared.folder), "--work", str(folder / "work"), "--out", str(out)
    )  # fmt: skip
    assert out.is_file(), done.stderr[-3000:]
    return json.loads(out.read_text())


def test_prepare_carries_the_trimmed_sdist_and_the_missing_wheels_under_64_mib(prepared):
    m = json.loads(prepared.manifest.read_text())

    assert m["carried_bytes"]["total"] < carry.CARRY_LIMIT_BYTES
    assert m["sdist"]["bytes"] < m["sdist"]["source_bytes"] / 5
    assert prepared.sdist.name == f"llama_cpp_python-{carry.llama_cpp_version()}.tar.gz"
    assert sorted(w["package"] for w in m["wheels"]) == sorted(carry.DEVICE_LACKS)
    assert all((prepared.wheels / w["file"]).is_file() for w in m["wheels"])
    assert all((prepared.minilm / name).is_file() for name in carry.MINILM_FILES)
    assert m["course"]["pages"] >= 10 and m["course"]["questions"] > 16  # 16 streams want 16 prompts


def test_dry_run_records_every_step_with_its_time(dry_run):
    steps = dry_run["steps"]

    assert dry_run["dry_run"] is True and dry_run["finished"] is True
    assert list(steps) == ["embed", "build", "model", "raw", "generate", "serve"]
    for name in ("embed", "build", "model", "raw", "generate"):
        assert steps[name]["wall_s"] > 0 and steps[name]["time_box_s"] > 0, name
    assert steps["serve"]["ok"] is None and "Gradio" in steps["serve"]["skipped"]
    assert dry_run["total_s"] >= dry_run["after_build_s"] > 0
    assert dry_run["machine"]["cores"] >= 1 and dry_run["prepared"]["sdist_sha256"]


def test_dry_run_unpacks_the_sdist_and_configures_it(dry_run):
    build = dry_run["steps"]["build"]

    assert build["ok"], build.get("log_tail")
    assert build["sdist"]["sha256"] == dry_run["prepared"]["sdist_sha256"]
    # The dry run configures with cmake, as the pod does: without it the
    # build step is not checked at all, so its absence is a failure here.
    assert shutil.which("cmake"), "cmake is missing: install it (apt-get install cmake) to check the build step"
    assert build["configured"] is True, build.get("log_tail")
    assert build["would_build_with"] == ["-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=90", "-DGGML_NATIVE=OFF"]


def test_dry_run_model_is_mistral_shaped_and_typed_as_llama_cpp_quantizes_it(dry_run):
    model = dry_run["steps"]["model"]

    assert model["ok"], model.get("log_tail")
    meta = model["metadata"]
    assert meta["general.architecture"] == "llama" and meta["general.file_type"] == 17  # Q5_K_M
    assert (meta["llama.block_count"], meta["llama.embedding_length"], meta["llama.feed_forward_length"]) == (
        4,
        512,
        1536,
    )
    assert (meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]) == (8, 2)
    assert (meta["tokenizer.ggml.model"], model["tokens"], meta["tokenizer.ggml.eos_token_id"]) == ("llama", 32000, 2)
    assert model["chat_template"].startswith("{{ bos_token }}")
    assert model["some_tensors"]["token_embd.weight"] == {"shape": [512, 32000], "type": "Q5_K"}
    assert model["some_tensors"]["blk.0.attn_k.weight"]["shape"] == [512, 128]  # 2 KV heads of 64
    assert model["some_tensors"]["output.weight"]["type"] == "Q6_K"
    assert model["eos_logit_always_zero"]  # a random model never stops an answer early
    # llama.cpp quantizing the same model from F16 writes the same tensors.
    assert model["llama_cpp_quantized"]["same_tensors"], model["llama_cpp_quantized"]["differences"]
    assert model["llama_cpp_quantized"]["bytes"] == model["bytes"]
    # The 7B file the GPU run will write: Mistral-7B's weights, its Q5_K_M mix and size.
    planned = model["planned"]
    assert planned["weights"] == 7_241_732_096
    assert planned["types"] == {"Q5_K": 193, "Q6_K": 33, "F32": 65}
    assert abs(planned["tensor_bytes"] - MISTRAL_7B_Q5_K_M_BYTES) / MISTRAL_7B_Q5_K_M_BYTES < 0.001


def test_dry_run_raw_llama_cpp_decodes_every_token_of_the_random_model(dry_run):
    raw = dry_run["steps"]["raw"]

    assert raw["ok"], raw.get("log_tail")
    assert raw["prompt_tokens"] == 64
    assert [r["tokens"] for r in raw["runs"]] == [8]  # the zeroed EOS row: no early stop
    assert raw["tokens_per_s_best"] > 0


def test_dry_run_embeds_every_chunk_with_the_minilm_shaped_model(dry_run):
    embed = dry_run["steps"]["embed"]

    assert embed["ok"], embed.get("log_tail")
    assert (embed["chunks"], embed["dimension"], embed["max_tokens"]) == (32, 384, 256)
    assert 100 <= embed["chunk_tokens"]["p50"] <= 200
    assert [r["batch_size"] for r in embed["runs"]] == [16, 32]
    assert all(r["chunks_per_s"] > 0 for r in embed["runs"])


def test_dry_run_generate_runs_our_and_raw_llama_cpp_on_the_random_model(dry_run):
    generate = dry_run["steps"]["generate"]

    assert generate["ok"], generate.get("log_tail")
    result = generate["result"]
    assert result["smoke"] is True
    assert "--streams 1,2" in result["command"] and "--n-gpu-layers -1" in result["command"]
    assert "small-shaped-random.Q5_K_M.gguf" in json.dumps(result)
    # The reuse paths ran too: a follow-up from its conversation's cells, a
    # crowd with the rules read once and one without.
    assert result["followup"]["pairs"] >= 1 and result["followup"]["ours"]["followup_vs_new"]
    assert result["crowd"]["reuse"]["reused_tokens"]["max"] > 0
    assert result["crowd"]["no_reuse"]["reused_tokens"]["max"] == 0


def test_a_run_past_its_deadline_still_writes_every_step(prepared, tmp_path):
    out = tmp_path / "gpu.json"
    done = run(
        "bench/gpu/run.py", "--cpu-dry-run", "--deadline", "1", "--cache", str(prepared.folder),
        "--work", str(tmp_path / "work"), "--out", str(out),
    )  # fmt: skip

    assert done.returncode == 1
    r = json.loads(out.read_text())
    assert r["finished"] is True
    assert "before the deadline" in r["steps"]["embed"]["error"]
    assert r["steps"]["raw"]["skipped"] == "the model step failed"


def test_report_renders_the_gpu_section_from_a_gpu_run(dry_run, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    gpu = json.loads(json.dumps(dry_run))
    gpu.update(dry_run=False, smoke=False)
    gpu["machine"]["gpu"] = "NVIDIA H200"
    gpu["machine"]["gpu_detail"] = {
        "name": "NVIDIA H200",
        "driver": "580.159.04",
        "cuda": "13.0",
        "memory": "143771 MiB",
    }
    gpu["steps"]["build"] |= {"cmake_args": ["-DGGML_CUDA=on"], "compile_s": 300.0, "cores": 16, "wall_s": 301.0}
    generated = gpu["steps"]["generate"]["result"]  # the dry run's own bench/generate.py
    generated["machine"]["gpu"] = "NVIDIA H200"
    count = max(map(int, generated["streams"]["rows"]))
    batched = generated["streams"]["rows"][str(count)]["batched"]
    # The dry run decodes random weights: the repeat guard can end one stream
    # before the last one starts, and then no moment had the batch at full
    # size to measure (None). The row is given a figure of its own here.
    batched["decode_tokens_per_s"] = 1234.5
    (results / "gpu.json").write_text(json.dumps(gpu))

    text = _report(results, tmp_path / "B.md")
    section = text[text.index("## 5. GPU") :]
    assert "GPU: NVIDIA H200, driver 580.159.04, CUDA 13.0" in section
    assert "| build | ok | 301.0 s |" in section and "within 360 s" in section
    assert "on a GPU, S short chat prompts submitted together" in section
    assert f"| {count} | 1,234.5 (" in section
    assert f"Time to first token with the most streams: p95 {batched['ttft_s']['p95']:.2f} s at {count} streams" in section
    assert "Decoding, tokens/s, 1 stream" in section and "Embedding, chunks/s at batch 16" in section


def test_report_says_how_to_measure_when_no_gpu_run_is_there(tmp_path):
    results = tmp_path / "results"
    results.mkdir()

    text = _report(results, tmp_path / "B.md")
    assert "no `bench/results/gpu.json`): run `bash bench/gpu/run.sh`" in text


def _report(results: Path, out: Path) -> str:
    done = run("bench/report.py", "--results", str(results), "--out", str(out), timeout=60)
    assert done.returncode == 0, done.stderr
    return out.read_text()
