"""The official `anthropic` Python client talks to frugal's /v1/messages as it talks to Anthropic:
only `base_url` changes. Behind it, the same pipeline and the OpenAI-compatible mock."""

import json
import urllib.request

import anthropic
import pytest

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def add_mock_rule(mock_upstream: str, rule: dict) -> None:
    control = mock_upstream.removesuffix("/v1")
    request = urllib.request.Request(f"{control}/_mock/rules", data=json.dumps(rule).encode(), method="POST")
    urllib.request.urlopen(request).close()


@pytest.fixture
def client(mock_upstream, sidecar):
    base = sidecar(mock_upstream, {"claude-haiku": "gpt-4o-mini", "claude-sonnet": "gpt-4o"}, "claude-haiku")
    return anthropic.Anthropic(base_url=base, api_key="test", max_retries=0)


def test_messages_create(client):
    message = client.messages.create(
        model="claude-haiku",
        max_tokens=128,
        system="Be brief.",
        messages=[{"role": "user", "content": "What is frugal?"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "claude-haiku"
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert "What is frugal?" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message._request_id


def test_messages_stream_helper_collects_text_and_the_final_message(client):
    with client.messages.stream(
        model="claude-sonnet",
        max_tokens=128,
        messages=[{"role": "user", "content": "Stream me an answer."}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Stream me an answer." in text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.model == "claude-sonnet"
    assert final.usage.output_tokens > 0


def test_create_with_stream_true_yields_raw_events(client):
    events = list(
        client.messages.create(
            model="claude-haiku",
            max_tokens=64,
            stream=True,
            messages=[{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds and "message_delta" in kinds
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert "Hello there" in text


def test_tool_use_round_trip(client, mock_upstream):
    add_mock_rule(
        mock_upstream,
        {"times": 1, "then": {"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}},
    )
    question = {"role": "user", "content": "What's the weather in Paris?"}
    first = client.messages.create(
        model="claude-haiku", max_tokens=256, tools=[WEATHER_TOOL], messages=[question]
    )
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather"
    assert call.input == {"city": "Paris"}

    answer = client.messages.create(
        model="claude-haiku",
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18°C, sunny"}]},
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and answer.content[0].text


def test_streamed_tool_use_accumulates_its_input(client, mock_upstream):
    add_mock_rule(
        mock_upstream,
        {"times": 1, "then": {"tool_call": {"name": "get_weather", "arguments": {"city": "Lyon"}}}},
    )
    with client.messages.stream(
        model="claude-haiku",
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Lyon?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[-1].type == "tool_use"
    assert final.content[-1].input == {"city": "Lyon"}


def test_errors_surface_as_the_clients_typed_exceptions(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="claude-9", max_tokens=16, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="claude-haiku",
            max_tokens=16,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "x"}],
        )
    assert "not supported through frugal" in e.value.body["error"]["message"]


def test_upstream_failure_is_an_api_status_error(mock_upstream, sidecar):
    add_mock_rule(mock_upstream, {"when": {"model": "gpt-4o"}, "times": 3, "then": {"status": 503}})
    base = sidecar(mock_upstream, {"claude-sonnet": "gpt-4o"}, "claude-sonnet")
    client = anthropic.Anthropic(base_url=base, api_key="test", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="claude-sonnet", max_tokens=16, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502
    assert e.value.body["type"] == "error"
