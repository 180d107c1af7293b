"""Prepares bench/gpu/cache/, the folder the GPU run carries to the device.

    python bench/gpu/prepare.py

Run here (and in CI before the dry run), with access to PyPI. It writes:

- the llama-cpp-python sdist that requirements.txt pins, trimmed to what the
  CUDA build and the random model need (the full sdist is 76.6 MB: a ``.git``
  pack, test vocabularies and docs);
- wheels of the pure-Python packages the device lacks (``carry.DEVICE_LACKS``);
- MiniLM's configuration and tokenizer, without its weights;
- a course PDF and a dev set that bench/generate.py cuts its prompts from;
- ``prepared.json``: what is there, its sizes, the commit it was made at.

It prints what the device call would carry (the working tree plus this
folder) and fails if that is over the device's 64 MiB.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import carry
from carry import CARRY_LIMIT_BYTES, DEVICE_LACKS, DEVICE_PYTHON, MINILM_FILES, ROOT, SDIST_NEEDS, VOCAB, WORK, Cache

sys.path.insert(0, str(ROOT / "bench"))
from common import log, minilm_folder  # noqa: E402

# Of the sdist (paths under its top folder), what the CUDA build never reads.
# llama.cpp is built as a subproject, so its tests, examples and tools are
# off, except tools/mtmd, which llama-cpp-python builds as well.
DROP_TOP = {".git", ".github", "docker", "docs", "examples", "tests"}
DROP_LLAMA_CPP = {
    ".devops", ".github", "app", "benches", "ci", "conversion", "docs",
    "examples", "media", "pocs", "requirements", "scripts", "skills", "tests",
}  # fmt: skip
KEEP_TOOLS = {"mtmd"}
KEEP_BACKENDS = {"ggml-cpu", "ggml-cuda"}
# Prompts: answerable dev-set questions, each pointed at a page of the course PDF.
DEVSET = ROOT / "bench" / "devset" / "octave.jsonl"
PAGE_CHARS = 1200  # generate.py takes 900 characters of five pages per prompt
SOURCES_PER_PROMPT = 5


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=carry.CACHE, help="where to write (default bench/gpu/cache)")
    p.add_argument("--downloads", type=Path, default=WORK / "downloads", help="the full sdist goes here, not carried")
    args = p.parse_args(argv)
    cache = Cache(args.cache)
    cache.folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    sdist = trimmed_sdist(cache, args.downloads)
    wheels = device_wheels(cache)
    minilm = minilm_files(cache)
    prompts = course(cache)
    carried = carried_bytes(cache.folder)
    manifest = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain")),
        "sdist": sdist,
        "wheels": wheels,
        "minilm": minilm,
        "course": prompts,
        "carried_bytes": carried,
        "seconds": round(time.perf_counter() - started, 1),
    }
    cache.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    mib = {k: round(v / 2**20, 2) for k, v in carried.items()}
    log(
        f"carried: {mib['total']} MiB (working tree {mib['working_tree']}, {cache.folder.name}/ {mib['cache']}) of 64 MiB"
    )
    if carried["total"] >= CARRY_LIMIT_BYTES:
        raise SystemExit(f"the carry is {mib['total']} MiB, over the device's 64 MiB: trim more")
    return 0


# ---------------------------------------------------------------- the sdist


def trimmed_sdist(cache: Cache, downloads: Path) -> dict:
    """Downloads the pinned sdist (pip's cache makes a second time quick) and
    writes the trimmed copy into the cache; returns what it did."""
    name = carry.sdist_name()
    full = downloads / f"{name}.tar.gz"
    if not full.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        version = carry.llama_cpp_version()
        log(f"downloading the llama-cpp-python {version} sdist")
        pip("download", "--no-deps", "--no-binary", ":all:", f"llama-cpp-python=={version}", "-d", str(downloads))
    source_sha = carry.sha256(full)
    previous = _previous_manifest(cache).get("sdist", {})
    if (
        cache.sdist.is_file()
        and previous.get("source_sha256") == source_sha
        and previous.get("sha256") == carry.sha256(cache.sdist)
    ):
        return previous
    started = time.perf_counter()
    kept, kept_bytes, members = trim(full, cache.sdist)
    missing = [p for p in SDIST_NEEDS if p not in kept]
    if missing:
        raise SystemExit(f"the trimmed sdist lacks {missing}: the trim rules in {Path(__file__).name} drop too much")
    return {
        "file": cache.sdist.name,
        "source_bytes": full.stat().st_size,
        "source_sha256": source_sha,
        "bytes": cache.sdist.stat().st_size,
        "sha256": carry.sha256(cache.sdist),
        "files": len(kept),
        "files_in_source": members,
        "unpacked_bytes": kept_bytes,
        "seconds": round(time.perf_counter() - started, 1),
    }


def needed(path: str) -> bool:
    """Whether the CUDA build or the model step reads ``path`` (relative to
    the sdist's top folder)."""
    parts = path.split("/")
    if parts[0] in DROP_TOP:
        return False
    if parts[:2] != ["vendor", "llama.cpp"] or len(parts) < 4:
        return True
    sub = parts[2:]
    if sub[0] in DROP_LLAMA_CPP:
        return False
    if sub[0] == "tools":
        return sub[1] in KEEP_TOOLS
    if sub[0] == "models":
        return sub[1] == VOCAB
    if sub[:2] == ["ggml", "src"] and len(sub) > 3 and sub[2].startswith("ggml-"):
        return sub[2] in KEEP_BACKENDS  # the other backends' folders are read only when enabled
    return True


def trim(full: Path, out: Path) -> tuple[set[str], int, int]:
    """Copies the members of ``full`` that are ``needed`` into ``out``;
    returns their paths (under the top folder), unpacked bytes, and the
    number of members in ``full``."""
    kept: set[str] = set()
    size = members = 0
    part = out.with_suffix(".part")
    with tarfile.open(full) as src, tarfile.open(part, "w:gz") as dst:
        for member in src:
            members += 1
            _, _, path = member.name.partition("/")
            if path and not needed(path):
                continue
            kept.add(path)
            size += member.size
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    part.replace(out)
    return kept, size, members


# ---------------------------------------------------------------- wheels


def device_wheels(cache: Cache) -> list[dict]:
    """Wheels of ``DEVICE_LACKS`` at the versions installed here, for the
    device's Python; one version of each (two would stop the install)."""
    cache.wheels.mkdir(parents=True, exist_ok=True)
    wanted = {name: importlib.metadata.version(name) for name in DEVICE_LACKS}
    for stale in cache.wheels.glob("*.whl"):
        dist, version = stale.name.split("-")[:2]
        if wanted.get(_canonical(dist)) != version:
            stale.unlink()
    missing = [f"{n}=={v}" for n, v in wanted.items() if not _wheel(cache, n, v)]
    if missing:
        log("downloading wheels:", *missing)
        pip(
            "download", "--no-deps", "--only-binary=:all:", "--python-version", DEVICE_PYTHON,
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
            "-d", str(cache.wheels), *missing,
        )  # fmt: skip
    return [
        {"package": n, "version": v, "why": DEVICE_LACKS[n], "file": _wheel(cache, n, v).name}
        for n, v in wanted.items()
    ]


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def _wheel(cache: Cache, name: str, version: str) -> Path | None:
    return next(
        (w for w in cache.wheels.glob("*.whl") if w.name.split("-")[:2] == [name.replace("-", "_"), version]), None
    )


# ---------------------------------------------------------------- MiniLM and the course


def minilm_files(cache: Cache) -> dict:
    """MiniLM's configuration and tokenizer files (no weights)."""
    source = minilm_folder()
    for name in MINILM_FILES:
        (cache.minilm / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, cache.minilm / name)
    return {"files": MINILM_FILES, "bytes": sum((cache.minilm / n).stat().st_size for n in MINILM_FILES)}


def course(cache: Cache) -> dict:
    """A course PDF cut from the repository's own prose, and a dev set whose
    questions point at its pages, so that each prompt holds five sources as
    in bench/generate.py's CPU figures (the Octave manual stays here)."""
    sys.path.insert(0, str(ROOT))
    from tests.pdfs import make_pdf

    text = " ".join(carry.course_text().split())
    pages = [text[i : i + PAGE_CHARS] for i in range(0, len(text) - PAGE_CHARS, PAGE_CHARS)]
    make_pdf(cache.course_pdf, pages, front_matter=0)
    questions = [q for q in map(json.loads, DEVSET.read_text().splitlines()) if q.get("pages")]
    last = len(pages) - SOURCES_PER_PROMPT + 1  # a prompt's five pages all exist
    with cache.devset.open("w") as f:
        for i, q in enumerate(questions):
            f.write(json.dumps({"id": q["id"], "question": q["question"], "pages": [1 + i % last]}) + "\n")
    return {"pages": len(pages), "questions": len(questions), "pdf_bytes": cache.course_pdf.stat().st_size}


# ---------------------------------------------------------------- sizes


def carried_bytes(cache_folder: Path) -> dict:
    """What a device call carries: the working tree (tracked files and
    untracked ones git does not ignore) plus the cache folder."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    tree = sum((ROOT / f).stat().st_size for f in listed if f and (ROOT / f).is_file())
    cached = sum(f.stat().st_size for f in cache_folder.rglob("*") if f.is_file())
    return {"working_tree": tree, "cache": cached, "total": tree + cached}


def _previous_manifest(cache: Cache) -> dict:
    try:
        return json.loads(cache.manifest.read_text())
    except (OSError, ValueError):
        return {}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


if __name__ == "__main__":
    sys.exit(main())
