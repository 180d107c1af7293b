"""Section 5: bench/gpu/run.sh's one JSON: the CUDA build, raw llama.cpp and
ours on a Mistral-7B-shaped model, the embedder, each step's time."""

from __future__ import annotations

from ..formatting import bad, fmt, mib
from ..section import Section


def context(r: dict, results: dict) -> dict:
    steps = r["steps"]
    return {
        "setup": setup_lines(r),
        "step_rows": step_rows(r),
        "figure_rows": raw_rows(steps.get("raw", {})) + embed_rows(steps.get("embed", {})),
        "generated": (steps.get("generate") or {}).get("result") or {},
    }


def setup_lines(r: dict) -> list[str]:
    """The GPU, how llama-cpp-python was built, the model."""
    g = r["machine"].get("gpu_detail") or {}
    b, m, raw = r["steps"].get("build", {}), r["steps"].get("model", {}), r["steps"].get("raw", {})
    lines = [f"GPU: {g.get('name', r['machine']['gpu'])}, driver {g.get('driver', '—')}, CUDA {g.get('cuda', '—')}, {g.get('memory', '—')}"]
    if r.get("dry_run"):
        lines.append(f"llama-cpp-python to be built with `{' '.join(b.get('would_build_with', []))}` (dry run: CMake's configure step only)")
    else:
        lines.append(
            f"llama-cpp-python built with `{' '.join(b.get('cmake_args', []))}`"
            + (f" by {b['nvcc_version']}" if b.get("nvcc_version") else "")
            + (f" in {fmt(b.get('compile_s'), 0, ' s')} on {b.get('cores')} cores" if b.get("compile_s") else "")
        )
    if "gpu_offload_supported" in raw and not r.get("dry_run"):
        offload = "yes" if raw["gpu_offload_supported"] else bad("no: a CPU build was loaded")
        lines.append(
            f"llama_cpp {raw['llama_cpp']} from `{raw['llama_cpp_from']}`, GPU offload: {offload}, "
            f"{fmt(raw.get('gpu_memory_used_mib'))} MiB of GPU memory used with the model loaded"
        )
    if m.get("metadata"):
        lines.append(
            f"model: {m['metadata'].get('general.name')}, {fmt(m.get('weights'))} weights, {fmt(mib(m.get('bytes')), 0)} MiB "
            f"({', '.join(f'{n} {t}' for t, n in m['types'].items())} tensors)"
        )
    return lines


def within(seconds: float, limit) -> str:
    return bad(f"over {limit} s") if seconds > limit else f"within {limit} s"


def step_rows(r: dict) -> list[list[str]]:
    """Each step's outcome and time, against issue 17's budgets: the build
    within ``budget_s.build``, everything after it within ``after_build``."""
    budget, dry = r.get("budget_s", {}), r.get("dry_run")
    rows = []
    for name, s in r["steps"].items():
        if s.get("skipped"):
            result = f"skipped: {s['skipped']}"
        elif s.get("ok"):
            result = "reused from the previous call" if s.get("reused") else "ok"
        else:
            result = bad(s.get("error") or "failed")
        timed = name == "build" and s.get("wall_s") and budget.get("build") and not dry and not s.get("reused")
        verdict = within(s["wall_s"], budget["build"]) if timed else ""
        rows.append([name, result, fmt(s.get("wall_s"), 1, " s"), fmt(s.get("time_box_s"), 0, " s"), verdict])
    after, limit = r.get("after_build_s"), budget.get("after_build")
    if after is not None and limit and not dry:
        rows.append(["after the build", "", fmt(after, 1, " s"), "", within(after, limit)])
    if r.get("total_s") is not None:
        finished = "finished" if r.get("finished") else bad("cut off")
        rows.append(["all", finished, fmt(r["total_s"], 1, " s"), fmt(budget.get("deadline"), 0, " s"), ""])
    return rows


def raw_rows(raw: dict) -> list[list[str]]:
    if not raw.get("runs"):
        return []
    n = raw["prompt_tokens"]
    return [
        [f"Time to first token, {n}-token prompt, 1 stream (best of {len(raw['runs'])})", "—", fmt(raw["ttft_s_best"], 3, " s"), "—"],
        ["Prompt evaluation, tokens/s, 1 stream", "—", fmt(raw["prompt_tokens_per_s_best"], 0), "—"],
        [f"Decoding, tokens/s, 1 stream ({raw['max_tokens']} tokens)", "—", fmt(raw["tokens_per_s_best"], 1), "—"],
    ]


def embed_rows(embed: dict) -> list[list[str]]:
    chunks = f"{embed.get('chunks', 0):,} chunks of {embed.get('chunk_tokens', {}).get('p50')} word pieces p50"
    return [
        [f"Embedding, chunks/s at batch {run['batch_size']} ({chunks}, {embed['device']})", fmt(run["chunks_per_s"], 0), "—", "—"]
        for run in embed.get("runs", [])
    ]


SECTION = Section(
    "gpu",
    "## 5. GPU",
    "gpu.md.j2",
    "gpu",
    "bash bench/gpu/run.sh",
    missing_note="It runs on a GPU machine as one command, with what `python bench/gpu/prepare.py` made here: see `bench/gpu/README.md`.",
    context=context,
)
