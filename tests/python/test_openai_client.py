"""The official `openai` Python client talks to frugal exactly as it talks to OpenAI."""

import json
import urllib.request

import openai
import pytest


@pytest.fixture
def client(mock_upstream, sidecar):
    base = sidecar(mock_upstream, {"gpt-4o-mini": "gpt-4o-mini", "gpt-4o": "gpt-4o"}, "gpt-4o-mini")
    return openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed-for-the-mock", max_retries=0)


def test_non_streaming_completion(client):
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is frugal?"}],
        max_tokens=64,
    )
    assert response.object == "chat.completion"
    assert response.choices[0].message.role == "assistant"
    assert "What is frugal?" in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


def test_streaming_completion_with_usage(client):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Stream me an answer."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Stream me an answer." in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_with_raw_response_exposes_frugal_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-frugal-model"] == "gpt-4o"
    assert raw.parse().choices[0].message.content


def test_client_mistakes_raise_the_matching_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert e.value.param == "messages"


def test_models_list(client):
    ids = sorted(m.id for m in client.models.list())
    assert ids == ["gpt-4o", "gpt-4o-mini"]


def test_upstream_failure_is_an_api_error_not_a_hang(mock_upstream, sidecar):
    control = mock_upstream.removesuffix("/v1")
    rule = json.dumps({"when": {"model": "gpt-4o"}, "times": 3, "then": {"status": 503}}).encode()  # every retry
    urllib.request.urlopen(urllib.request.Request(f"{control}/_mock/rules", data=rule, method="POST"))
    base = sidecar(mock_upstream, {"gpt-4o": "gpt-4o"}, "gpt-4o")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502


@pytest.fixture
def embedding_client(mock_upstream, sidecar):
    models = {"gpt-4o-mini": "gpt-4o-mini", "text-embedding-3-small": "text-embedding-3-small"}
    base = sidecar(mock_upstream, models, "gpt-4o-mini", "cache: { mode: on }\n")
    return openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed-for-the-mock", max_retries=0)


@pytest.mark.parametrize("encoding", [None, "float"])
def test_embeddings_work_unchanged_and_a_repeat_comes_from_the_cache(embedding_client, mock_upstream, encoding):
    # Without encoding_format the client asks for base64 and decodes it to floats itself.
    extra = {} if encoding is None else {"encoding_format": encoding}
    texts = ["What is frugal?", "A sidecar that cuts LLM bills.", "It caches embeddings."]
    first = embedding_client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=texts, **extra
    )
    with urllib.request.urlopen(mock_upstream.removesuffix("/v1") + "/_mock/requests") as r:
        sent = json.loads(r.read())[-1]
    assert sent["encoding_format"] == (encoding or "base64"), sent["encoding_format"]
    assert first.headers["x-frugal-cache"] == "miss"
    assert first.headers["x-frugal-cached-inputs"] == "0/3"
    first = first.parse()
    assert [d.index for d in first.data] == [0, 1, 2]
    assert all(len(d.embedding) == 1536 and isinstance(d.embedding[0], float) for d in first.data)
    assert abs(sum(x * x for x in first.data[0].embedding) - 1.0) < 1e-4, "a unit vector"
    assert first.usage.prompt_tokens > 0 and first.usage.total_tokens == first.usage.prompt_tokens

    again = embedding_client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=[texts[2], texts[0]], **extra
    )
    assert again.headers["x-frugal-cache"] == "hit"
    assert again.headers["x-frugal-cached-inputs"] == "2/2"
    assert again.headers["x-frugal-cost-usd"] == "0"
    assert float(again.headers["x-frugal-saved-usd"]) > 0
    again = again.parse()
    assert again.data[0].embedding == first.data[2].embedding
    assert again.data[1].embedding == first.data[0].embedding

    partial = embedding_client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=[texts[1], "Something new."], **extra
    )
    assert partial.headers["x-frugal-cache"] == "partial"
    assert partial.parse().data[0].embedding == first.data[1].embedding


def test_embedding_mistakes_raise_the_matching_openai_errors(embedding_client):
    with pytest.raises(openai.BadRequestError) as e:
        embedding_client.embeddings.create(model="text-embedding-3-small", input="")
    assert e.value.param == "input"
    with pytest.raises(openai.NotFoundError) as e:
        embedding_client.embeddings.create(model="text-embedding-9", input="x")
    assert e.value.code == "model_not_found"
