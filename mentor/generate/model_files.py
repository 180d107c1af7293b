"""The model file: a path given, a copy on the volume, or a download from the Hub.

``resolve_model_path(settings)`` returns the GGUF file to load, downloading
it once into ``settings.models_dir``; a download cut off by a crash resumes
on the next start and a partial or corrupt file is never loaded. Which model
that is, when the settings name none, depends on the machine
(``choose_model``).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import HfFileMetadata, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import WeakFileLock, build_hf_headers, silent_tqdm

from mentor.settings import Settings

log = logging.getLogger(__name__)

# On a GPU: Mistral-7B-Instruct v0.2 at Q5_K_M (5.1 GB), which a 24 GB card
# holds beside 16 slots of cache, and which follows the cite-your-sources
# rules well.
GPU_MODEL = ("TheBloke/Mistral-7B-Instruct-v0.2-GGUF", "mistral-7b-instruct-v0.2.Q5_K_M.gguf")
# On a CPU: Qwen2.5-1.5B-Instruct at Q4_K_M (0.99 GB, Apache-2.0, not gated).
# A 7B model decodes a few tokens a second on a laptop's cores, too slow for
# an answer; 1.5B is about five times faster, follows instructions and cites
# well for its size, reads 32k tokens of context (room for the sources), and
# fits the memory of any machine that runs the rest of the app. SmolLM2-1.7B
# and Llama-3.2-1B were the others weighed: SmolLM2 follows long prompts
# less well, and Llama's license must be accepted on the Hub first.
CPU_MODEL = ("bartowski/Qwen2.5-1.5B-Instruct-GGUF", "Qwen2.5-1.5B-Instruct-Q4_K_M.gguf")


class ModelNotFound(RuntimeError):
    """No usable model file is given, cached or downloadable; the message says what to set."""


@dataclass(frozen=True)
class ModelChoice:
    """Which model to fetch from the Hub, and why (for the start log)."""

    repo: str
    file: str
    why: str


def choose_model(settings: Settings) -> ModelChoice:
    """``MODEL_REPO``/``MODEL_FILE`` when set, else the default that suits the
    machine: the GPU model when llama.cpp can offload to a GPU that is there,
    the CPU model otherwise."""
    if settings.model_repo or settings.model_file:
        repo, file = settings.model_repo or GPU_MODEL[0], settings.model_file or GPU_MODEL[1]
        return ModelChoice(repo, file, "set by MODEL_REPO/MODEL_FILE")
    if gpu := gpu_present(settings):
        return ModelChoice(*GPU_MODEL, f"the default for a GPU ({gpu})")
    return ModelChoice(*CPU_MODEL, "the default without a GPU: a model a CPU answers with at reading speed")


def gpu_present(settings: Settings) -> str:
    """A word on the GPU llama.cpp would use ("" when none): its build must
    offload, N_GPU_LAYERS must allow it, and a device must be there."""
    import llama_cpp

    if settings.n_gpu_layers == 0 or not llama_cpp.llama_supports_gpu_offload():
        return ""
    if sys.platform == "darwin":
        return "Metal"
    if Path("/dev/nvidia0").exists():
        return "NVIDIA"
    return "AMD" if Path("/dev/kfd").exists() else ""


def resolve_model_path(settings: Settings, progress: bool = True) -> Path:
    """Returns the GGUF file to load: ``settings.model_path``, else the copy in
    ``settings.models_dir``, else one downloaded there from the Hub."""
    choice = choose_model(settings)
    if settings.model_path is not None:
        if not settings.model_path.is_file():
            raise ModelNotFound(
                f"MODEL_PATH={settings.model_path} is not a file. Point MODEL_PATH at a GGUF file, "
                f"or unset it to download {choice.repo}/{choice.file}."
            )
        return settings.model_path
    # Only a checked, finished download is renamed to this path (see
    # _download), so a file found here is whole.
    cached = settings.models_dir / choice.file
    if cached.is_file():
        return cached
    return _download(settings, choice, progress)


def _download(settings: Settings, choice: ModelChoice, progress: bool) -> Path:
    """Returns the model file after downloading it from the Hub into ``settings.models_dir``.

    The bytes go to ``.<file>.<etag>.incomplete`` beside the final path. A
    later start (after a kill -9, a pod restart) resumes that file with a
    Range request: the etag in its name says which version of the file it
    holds. The finished file must have the size the Hub announced and, for
    LFS files (every GGUF), the SHA-256 the Hub gives as its etag; only then
    is it renamed to the final path (same folder: atomic), so a partial or
    corrupt file is never loaded.

    Not hf_hub_download: huggingface_hub 2.4 writes to a temporary name that
    is new in every process (its PR 4228), so a killed download starts over
    and leaves its partial file behind. Plain HTTP also replaces its Xet
    transfer, which cannot resume either.
    """
    repo, file = choice.repo, choice.file
    # huggingface_hub reads HF_ENDPOINT once, when it is imported; reading it
    # here as well honours a value set after that import (a test's fake Hub).
    endpoint = (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None
    where = f"{repo}/{file}"
    target = settings.models_dir / file
    log.info("downloading %s into %s", where, settings.models_dir)
    with _explained(choice, settings.models_dir):
        url = hf_hub_url(repo, file, endpoint=endpoint)
        meta = get_hf_file_metadata(url, endpoint=endpoint)
        if not meta.etag or meta.size is None:
            raise ModelNotFound(f"{url} answered without the ETag and size of {where}: is HF_ENDPOINT a Hub?")
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        # Two processes fetching at once (the app and `fetch-model`) must not
        # append to one partial file.
        with WeakFileLock(settings.models_dir / f".{file}.lock"):
            if not target.is_file():
                _resume(url, meta, target, progress)
    return target


@contextmanager
def _explained(choice: ModelChoice, models_dir: Path) -> Iterator[None]:
    """Turns the Hub's and the network's errors while fetching ``choice``
    into a ModelNotFound that says what to do."""
    repo, file = choice.repo, choice.file
    where = f"{repo}/{file}"
    target = models_dir / file
    try:
        yield
    except GatedRepoError as e:  # before RepositoryNotFoundError, its parent
        raise ModelNotFound(
            f"MODEL_REPO={repo} is gated: accept its terms on its Hub page, then set HF_TOKEN to a token "
            "of that account; or set MODEL_PATH to a GGUF file on this machine."
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelNotFound(
            f"MODEL_REPO={repo} was not found on the Hub; if it is private or gated, set HF_TOKEN to a token "
            "that can read it; or set MODEL_PATH to a GGUF file on this machine."
        ) from e
    except (RemoteEntryNotFoundError, RevisionNotFoundError) as e:
        raise ModelNotFound(
            f"MODEL_FILE={file} is not in MODEL_REPO={repo}; set MODEL_FILE to one of the repo's .gguf files, "
            "or set MODEL_PATH."
        ) from e
    except HFValidationError as e:
        raise ModelNotFound(f"MODEL_REPO={repo} is not a Hub repo id (owner/name): {e}") from e
    except (OfflineModeIsEnabled, httpx2.ConnectError) as e:
        raise ModelNotFound(
            f"Cannot reach the Hub to download {where}: this machine is offline (or HF_HUB_OFFLINE is set). "
            f"Set MODEL_PATH to a GGUF file on this machine, or put the file at {target}."
        ) from e
    except HfHubHTTPError as e:
        raise ModelNotFound(
            f"The Hub refused {where} ({str(e).splitlines()[0]}). If HF_TOKEN is set, check it can read the repo; "
            "or set MODEL_PATH to a GGUF file on this machine."
        ) from e
    except (httpx2.TransportError, OSError) as e:  # a lost connection, a full disk
        raise ModelNotFound(
            f"Downloading {where} into {models_dir} failed: {e}. Start again to resume, "
            "or set MODEL_PATH to a GGUF file on this machine."
        ) from e


def _resume(url: str, meta: HfFileMetadata, target: Path, progress: bool) -> None:
    """Downloads ``meta``'s file to ``target``, resuming a partial file of the
    same etag and deleting partial files of other versions."""
    partial = target.with_name(f".{target.name}.{re.sub(r'[^0-9A-Za-z]', '', meta.etag)}.incomplete")
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.incomplete"):
        if stale != partial:
            stale.unlink()
    if partial.is_file() and partial.stat().st_size > meta.size:
        partial.unlink()
    headers = build_hf_headers()
    if urlsplit(meta.location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # a signed CDN link; the token stays with the Hub
    with partial.open("ab") as f:
        http_get(
            meta.location,
            f,
            resume_size=f.tell(),
            headers=headers,
            expected_size=meta.size,
            displayed_filename=target.name,
            tqdm_class=None if progress else silent_tqdm,
        )
    _check_whole(partial, meta)
    partial.replace(target)


def _check_whole(partial: Path, meta: HfFileMetadata) -> None:
    """Raises (and deletes ``partial``) unless it has the Hub's size and, for
    an LFS file, the SHA-256 that is its etag."""
    size = partial.stat().st_size
    wrong = f"{size} bytes, not {meta.size}" if size != meta.size else ""
    if not wrong and re.fullmatch(r"[0-9a-f]{64}", meta.etag):
        with partial.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        wrong = f"SHA-256 {digest}, not {meta.etag}" if digest != meta.etag else ""
    if wrong:
        partial.unlink()
        raise OSError(f"the downloaded file was corrupt ({wrong}) and has been deleted")
