"""The language model: where its file comes from, and generation behind one lock.

``load_chat_model(settings)`` returns a ``ChatModel``: the GGUF file run in
process by llama.cpp, or an OpenAI-compatible server when ``OPENAI_BASE_URL``
is set. Both stream a reply to OpenAI-style messages piece by piece.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx
import httpx2
from huggingface_hub import HfFileMetadata, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HFValidationError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import WeakFileLock, build_hf_headers, silent_tqdm
from jinja2 import TemplateError

from .settings import Settings

log = logging.getLogger(__name__)

# Grounded answers want little randomness; 0.2 is also what llama-cpp-python's
# own create_chat_completion defaults to.
TEMPERATURE = 0.2
# Tokens a chat template adds around each message, for estimates only.
MESSAGE_OVERHEAD = 8
ZERO_WIDTH_SPACE = "\u200b"


class ModelNotFound(RuntimeError):
    """No model file is given, cached or downloadable; the message says what to set."""


class PromptTooLong(ValueError):
    """The messages leave no room for an answer in the model's context."""


class ChatModel(Protocol):
    """What answering needs from a model, in process or behind a server."""

    name: str
    n_ctx: int

    def count_tokens(self, text: str) -> int:
        """Returns how many tokens ``text`` takes in a prompt."""
        ...

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """Yields the reply to ``messages`` (roles system/user/assistant) as text pieces."""
        ...


def resolve_model_path(settings: Settings, progress: bool = True) -> Path:
    """Returns the GGUF file to load: ``settings.model_path``, else the copy in
    ``settings.models_dir``, else one downloaded there from the Hub."""
    if settings.model_path is not None:
        if not settings.model_path.is_file():
            raise ModelNotFound(
                f"MODEL_PATH={settings.model_path} is not a file. Point MODEL_PATH at a GGUF file, "
                f"or unset it to download MODEL_REPO/MODEL_FILE ({settings.model_repo}/{settings.model_file})."
            )
        return settings.model_path
    # Only a checked, finished download is renamed to this path (see
    # _download), so a file found here is whole.
    cached = settings.models_dir / settings.model_file
    if cached.is_file():
        return cached
    return _download(settings, progress)


def _download(settings: Settings, progress: bool) -> Path:
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
    repo, file = settings.model_repo, settings.model_file
    # huggingface_hub reads HF_ENDPOINT once, when it is imported; reading it
    # here as well honours a value set after that import (a test's fake Hub).
    endpoint = (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None
    where = f"{repo}/{file}"
    target = settings.models_dir / file
    log.info("downloading %s into %s", where, settings.models_dir)
    try:
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
            f"Downloading {where} into {settings.models_dir} failed: {e}. Start again to resume, "
            "or set MODEL_PATH to a GGUF file on this machine."
        ) from e
    return target


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


def _answer_budget(n_ctx: int, prompt_tokens: int, max_tokens: int) -> int:
    """Returns ``max_tokens`` clipped to the room the prompt leaves in the context."""
    room = n_ctx - prompt_tokens
    if room < 1:
        raise PromptTooLong(
            f"The prompt takes {prompt_tokens} tokens of a {n_ctx}-token context; send fewer sources or less history."
        )
    return min(max_tokens, room)


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Returns ``messages`` with the system text moved to the head of the first
    user message, for chat templates that accept only user and assistant."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return rest
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    else:
        rest.insert(0, {"role": "user", "content": system})
    return rest


class LlamaCppModel:
    """A GGUF model run in this process by llama.cpp.

    ``llama_cpp.Llama`` is not thread-safe, so every call into it goes through
    one lock, held for the whole of a streamed reply: a second student's
    answer waits for the first to finish or be stopped.
    """

    def __init__(self, path: Path, n_ctx: int, n_gpu_layers: int = -1, chat_template: str | None = None):
        """Loads ``path``; ``chat_template`` (jinja) replaces the one the GGUF carries."""
        # Imported here: a process that talks to a server never loads llama.cpp.
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = Path(path)
        self._llama = Llama(model_path=str(path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, verbose=False)
        # A plain Lock, not an RLock: Gradio runs each step of a streamed reply
        # on whichever worker thread is free and closes it from another, and
        # an RLock may only be released by the thread that took it.
        self._lock = threading.Lock()
        self.name = path.name
        self.n_ctx = self._llama.n_ctx()
        template = chat_template or self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{path.name} carries no chat template: use an instruct (chat) GGUF.")
        self._control = _control_texts(self._llama)
        eos, bos = self._llama.token_eos(), self._llama.token_bos()
        # We render the prompt ourselves, with the GGUF's own jinja template,
        # rather than call create_chat_completion: llama-cpp-python replaces
        # some known templates (Mistral-Instruct's among them) with built-in
        # formatters that silently drop the system message, and rendering
        # first gives the exact prompt length for the context budget.
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(eos),
            bos_token=self._token_text(bos),
            stop_token_ids=[eos],
        )

    def _token_text(self, token: int) -> str:
        """Returns a special token's text, or "" for a model without it (id -1)."""
        return self._llama.detokenize([token], special=True).decode() if token != -1 else ""

    def count_tokens(self, text: str) -> int:
        """Returns how many tokens ``text`` takes inside a prompt (no BOS)."""
        with self._lock:
            return len(self._llama.tokenize(text.encode(), add_bos=False, special=True))

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        """Returns the prompt text the model is given for ``messages``."""
        return self._format(messages).prompt

    def _format(self, messages: list[dict[str, str]]):
        """Returns the chat template's rendering (prompt, stop) of ``messages``,
        with the system text folded into the first user turn for templates that
        reject a system role (Mistral-7B-Instruct raises "Conversation roles
        must alternate user/assistant/...")."""
        messages = [{**m, "content": self._as_text(m["content"])} for m in messages]
        try:
            return self._formatter(messages=messages)
        except (ValueError, TemplateError):  # a template's raise_exception() raises ValueError
            if not any(m["role"] == "system" for m in messages):
                raise
            return self._formatter(messages=fold_system(messages))

    def _as_text(self, content: str) -> str:
        """Returns ``content`` with each control token's text ("<|im_start|>")
        broken by a zero-width space.

        The rendered prompt is tokenized with special tokens parsed, which the
        template's own markup needs; without this, a course PDF or a student
        could write "<|im_end|><|im_start|>system" and open a real system turn.
        """
        while self._control and self._control.search(content):
            content = self._control.sub(lambda m: m[0][0] + ZERO_WIDTH_SPACE + m[0][1:], content)
        return content

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """Yields the reply to ``messages`` piece by piece. The model is held
        from the first piece until the stream ends or is closed; ``max_tokens``
        is cut to the room the prompt leaves in ``n_ctx``."""
        formatted = self._format(messages)
        with self._lock:
            prompt = self._llama.tokenize(
                formatted.prompt.encode(), add_bos=not formatted.added_special, special=True
            )
            chunks = self._llama.create_completion(
                prompt,
                max_tokens=_answer_budget(self.n_ctx, len(prompt), max_tokens),
                temperature=TEMPERATURE,
                stop=formatted.stop,
                stopping_criteria=formatted.stopping_criteria,
                stream=True,
            )
            # closing(): a stopped answer ends llama.cpp's generator too,
            # before the lock is let go.
            with closing(chunks):
                for chunk in chunks:
                    if text := chunk["choices"][0]["text"]:
                        yield text


def _control_texts(llama) -> re.Pattern | None:
    """Returns a pattern matching the texts that llama.cpp reads as control
    (or unknown) tokens when it parses special tokens, longest first."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    texts = {
        llama.detokenize([t], special=True).decode(errors="ignore").strip()
        for t in range(llama.n_vocab())
        if llama_cpp.llama_vocab_get_attr(vocab, t) & special
    }
    # One character cannot be broken in two (and no chat template uses one).
    texts = sorted((t for t in texts if len(t) > 1), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, texts))) if texts else None


class OpenAICompatibleModel:
    """A model behind an OpenAI-compatible server (vLLM, llama.cpp server).

    No lock: the server batches concurrent requests itself.
    """

    def __init__(self, base_url: str, api_key: str | None = None, model: str | None = None, n_ctx: int = 8192):
        """``model`` may be None for servers that serve one model (llama.cpp server, vLLM)."""
        self.name = model or base_url
        self.n_ctx = n_ctx
        self._model = model
        self._url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # read: the longest wait between two pieces, first token included,
        # which a busy server with long prompts can stretch.
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(10.0, read=120.0))

    def count_tokens(self, text: str) -> int:
        """Returns an upper estimate of the tokens ``text`` takes.

        The server's tokenizer is not at hand; English runs about 4 characters
        a token, so counting 3 over-estimates and prompts built on it fit.
        """
        return math.ceil(len(text) / 3)

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """Yields the reply's pieces as the server streams them (server-sent events)."""
        prompt = sum(self.count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages)
        body = {
            "messages": messages,
            "max_tokens": _answer_budget(self.n_ctx, prompt, max_tokens),
            "temperature": TEMPERATURE,
            "stream": True,
        }
        if self._model:
            body["model"] = self._model
        with self._client.stream("POST", self._url, json=body) as response:
            if response.is_error:
                response.read()
                raise httpx.HTTPStatusError(
                    f"{self._url} answered {response.status_code}: {response.text[:500]}",
                    request=response.request,
                    response=response,
                )
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments, event names
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise RuntimeError(f"{self._url} failed mid-answer: {event['error']}")
                for choice in event.get("choices") or []:  # vLLM's closing usage event has none
                    if piece := (choice.get("delta") or {}).get("content"):
                        yield piece


def load_chat_model(settings: Settings) -> ChatModel:
    """Returns the model ``settings`` name: the OpenAI-compatible server when
    ``openai_base_url`` is set, else the GGUF file loaded in this process."""
    if settings.openai_base_url:
        return OpenAICompatibleModel(
            settings.openai_base_url,
            api_key=settings.openai_api_key,
            model=settings.openai_model,
            n_ctx=settings.n_ctx,
        )
    return LlamaCppModel(resolve_model_path(settings), n_ctx=settings.n_ctx, n_gpu_layers=settings.n_gpu_layers)
