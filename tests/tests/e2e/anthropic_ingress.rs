//! Anthropic's Messages API (`POST /v1/messages`) through the sidecar: translated to a chat body
//! at the edge, answered by the same pipeline (cache, budgets, accounting, headers), and told
//! back as an Anthropic message or event stream; every error in Anthropic's shape.

use frugal_tests::{
    anthropic_events, expect_anthropic_error, header, policy_for, MockUpstream, Sidecar,
};
use serde_json::{json, Value};

fn question(stream: bool) -> Value {
    json!({ "model": "cheap", "max_tokens": 256, "temperature": 0, "stream": stream,
            "system": [{ "type": "text", "text": "Be brief.", "cache_control": { "type": "ephemeral" } }],
            "messages": [{ "role": "user", "content": "What is the capital of France?" }] })
}

fn weather_tool() -> Value {
    json!({ "name": "get_weather", "description": "Current weather in a city.",
            "input_schema": { "type": "object", "properties": { "city": { "type": "string" } },
                              "required": ["city"] } })
}

/// Text of a stream's `text_delta`s, and its events by name.
fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_message_is_answered_in_anthropics_shape_with_frugals_headers() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar.messages(&question(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-frugal-model"), "cheap");
    assert!(!header(&response, "x-frugal-cost-usd").is_empty());
    let request_id = header(&response, "x-request-id");
    assert!(!request_id.is_empty());
    assert_eq!(header(&response, "request-id"), request_id);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "cheap");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["content"][0]["type"], "text");
    assert!(message["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("capital of France"));
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(message["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let sent = &mock.requests()[0];
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(sent["max_tokens"], 256);
    assert_eq!(
        sent["messages"],
        json!([{ "role": "system", "content": "Be brief." },
               { "role": "user", "content": "What is the capital of France?" }])
    );
}

#[tokio::test]
async fn a_stream_is_told_as_anthropic_events_with_real_usage() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar.messages(&question(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    assert_eq!(header(&response, "x-frugal-model"), "cheap");
    let text = response.text().await.unwrap();
    assert!(text.contains("\n: frugal cost_usd="), "{text}");
    let events = anthropic_events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(streamed_text(&events).contains("capital of France"));
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        mock.requests()[0]["stream_options"],
        json!({ "include_usage": true }),
        "the pipeline asked for usage"
    );
}

#[tokio::test]
async fn a_tool_call_round_trips_through_tool_use_and_tool_result() {
    let mock = MockUpstream::start().await;
    mock.script(
        "- { times: 1, then: { tool_call: { name: get_weather, arguments: { city: Paris } } } }",
    );
    let sidecar = Sidecar::in_front_of(&mock).await;
    let ask = json!({ "model": "cheap", "max_tokens": 256, "tools": [weather_tool()],
                      "tool_choice": { "type": "auto" },
                      "messages": [{ "role": "user", "content": "Weather in Paris?" }] });
    let first: Value = sidecar.messages(&ask).await.json().await.unwrap();
    assert_eq!(first["stop_reason"], "tool_use", "{first}");
    let call = first["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .cloned()
        .unwrap();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({ "city": "Paris" }));

    let mut follow_up = ask.clone();
    follow_up["messages"] = json!([
        { "role": "user", "content": "Weather in Paris?" },
        { "role": "assistant", "content": first["content"] },
        { "role": "user", "content": [
            { "type": "tool_result", "tool_use_id": call["id"], "content": "18°C and sunny" } ] },
    ]);
    let second: Value = sidecar.messages(&follow_up).await.json().await.unwrap();
    assert_eq!(second["stop_reason"], "end_turn", "{second}");
    assert_eq!(second["content"][0]["type"], "text");

    let sent = &mock.requests()[1];
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "auto");
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[1]["tool_calls"][0]["id"], call["id"]);
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(
        messages[2],
        json!({ "role": "tool", "tool_call_id": call["id"], "content": "18°C and sunny" })
    );
}

#[tokio::test]
async fn a_streamed_tool_call_sends_its_arguments_as_input_json_deltas() {
    let mock = MockUpstream::start().await;
    mock.script("- { then: { tool_call: { name: get_weather, arguments: { city: Paris, unit: celsius } } } }");
    let sidecar = Sidecar::in_front_of(&mock).await;
    let ask = json!({ "model": "cheap", "max_tokens": 256, "stream": true, "tools": [weather_tool()],
                      "messages": [{ "role": "user", "content": "Weather in Paris?" }] });
    let text = sidecar.messages(&ask).await.text().await.unwrap();
    let events = anthropic_events(&text);
    let start = events
        .iter()
        .find(|(n, _)| n == "content_block_start")
        .unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use", "{text}");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let fragments: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert!(fragments.len() > 1, "fragments as they came: {text}");
    let input: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(input, json!({ "city": "Paris", "unit": "celsius" }));
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn a_repeat_is_served_from_the_cache_as_json_and_as_a_stream() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "cache: { mode: on, ttl: 10m, max_temperature: 0.5 }\n",
    ))
    .await;
    let first = sidecar.messages(&question(false)).await;
    assert_eq!(header(&first, "x-frugal-cache"), "miss");
    let first: Value = first.json().await.unwrap();

    let again = sidecar.messages(&question(false)).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(header(&again, "x-frugal-cost-usd"), "0");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["content"], first["content"]);
    assert_eq!(again["type"], "message");

    let streamed = sidecar.messages(&question(true)).await;
    assert_eq!(header(&streamed, "x-frugal-cache"), "exact");
    let events = anthropic_events(&streamed.text().await.unwrap());
    assert_eq!(
        streamed_text(&events),
        first["content"][0]["text"].as_str().unwrap()
    );
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(mock.total_calls(), 1, "both repeats came from the cache");
}

#[tokio::test]
async fn a_spent_budget_is_a_429_in_anthropics_shape() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "tenants:\n  default:\n    budget: { window: day, hard_cap_usd: 0.000001 }\n",
    ))
    .await;
    let mut ask = question(false);
    ask["model"] = json!("strong");
    ask["max_tokens"] = json!(100_000);
    let response = sidecar.messages(&ask).await;
    assert!(!header(&response, "retry-after").is_empty());
    let body = expect_anthropic_error(response, 429, "rate_limit_error").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Budget exceeded"),
        "{body}"
    );
    assert_eq!(mock.total_calls(), 0, "blocked before the upstream");
}

#[tokio::test]
async fn client_mistakes_are_4xx_in_anthropics_shape() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let with = |field: &str, value: Value| {
        let mut body = question(false);
        body[field] = value;
        body
    };
    let mut no_max = question(false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let cases = [
        (no_max, 400, "invalid_request_error", "max_tokens"),
        (
            with("frequency_penalty", json!(0.5)),
            400,
            "invalid_request_error",
            "frequency_penalty",
        ),
        (
            with(
                "tools",
                json!([{ "type": "web_search_20250305", "name": "web_search" }]),
            ),
            400,
            "invalid_request_error",
            "not supported through frugal",
        ),
        (
            with("model", json!("claude-nonexistent")),
            404,
            "not_found_error",
            "claude-nonexistent",
        ),
    ];
    for (body, status, kind, says) in cases {
        let error = expect_anthropic_error(sidecar.messages(&body).await, status, kind).await;
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }

    let request =
        |method: reqwest::Method| sidecar.client.request(method, sidecar.url("/v1/messages"));
    let bad_version = request(reqwest::Method::POST)
        .header("anthropic-version", "latest")
        .json(&question(false));
    let not_json = request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .body("{oops");
    let wrong_method = request(reqwest::Method::GET);
    for (request, status) in [(bad_version, 400), (not_json, 400), (wrong_method, 405)] {
        let response = request.send().await.unwrap();
        expect_anthropic_error(response, status, "invalid_request_error").await;
    }
    let count_tokens = sidecar
        .client
        .post(sidecar.url("/v1/messages/count_tokens"))
        .json(&question(false))
        .send()
        .await
        .unwrap();
    expect_anthropic_error(count_tokens, 404, "not_found_error").await;
    assert_eq!(mock.total_calls(), 0);
}

#[tokio::test]
async fn an_upstream_failure_has_the_chat_endpoints_status_in_anthropics_shape() {
    let mock = MockUpstream::start().await;
    mock.always().fail_times(100, 500);
    let sidecar = Sidecar::in_front_of(&mock).await;
    let chat = sidecar
        .chat(&json!({ "model": "cheap", "messages": [{ "role": "user", "content": "hi" }] }))
        .await
        .status();
    let response = sidecar.messages(&question(false)).await;
    assert_eq!(response.status(), chat);
    expect_anthropic_error(response, chat.as_u16(), "api_error").await;
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let mock = MockUpstream::start().await;
    mock.always().truncate(2);
    let sidecar = Sidecar::in_front_of(&mock).await;
    let text = sidecar
        .messages(&question(true))
        .await
        .text()
        .await
        .unwrap();
    let events = anthropic_events(&text);
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{text}");
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{text}");
}

#[tokio::test]
async fn a_keyed_tenant_is_named_by_x_api_key_and_its_savings_counted() {
    std::env::set_var(
        "FRUGAL_TEST_ANTHROPIC_KEY",
        "team-a-anthropic-key-0123456789",
    );
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "tenants:\n  team-a:\n    api_key_env: FRUGAL_TEST_ANTHROPIC_KEY\n",
    ))
    .await;
    let send = |key: &'static str| {
        sidecar
            .client
            .post(sidecar.url("/v1/messages"))
            .header("x-frugal-tenant", "team-a")
            .header("x-api-key", key)
            .json(&question(false))
            .send()
    };
    assert_eq!(
        send("team-a-anthropic-key-0123456789")
            .await
            .unwrap()
            .status(),
        200
    );
    expect_anthropic_error(
        send("sk-not-the-key").await.unwrap(),
        403,
        "permission_error",
    )
    .await;
    let report = sidecar.savings("").await;
    assert_eq!(report["tenants"]["team-a"]["requests"], 1);
    assert!(report["total"]["actual_usd"].as_f64().unwrap() > 0.0);
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_requests_total{endpoint=\"messages\",status=\"200\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_past_the_request_timeout_gets_an_anthropic_shaped_408() {
    let mock = MockUpstream::start().await;
    mock.always().delay(std::time::Duration::from_secs(3));
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { request_timeout: 300ms }\n",
    ))
    .await;
    let response = sidecar.messages(&question(false)).await;
    expect_anthropic_error(response, 408, "invalid_request_error").await;
}

#[tokio::test]
async fn the_decision_log_names_the_endpoint_and_keeps_the_translated_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        &format!(
            "decision_log: {{ path: {}, log_prompts: true }}\n",
            path.display()
        ),
    ))
    .await;
    let response = sidecar.messages(&question(false)).await;
    let request_id = header(&response, "x-request-id");
    assert_eq!(response.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let line: Value = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break serde_json::from_str(line).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no decision-log line");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(line["endpoint"], "messages");
    assert_eq!(line["request_id"], request_id);
    assert_eq!(
        line["messages"][0],
        json!({ "role": "system", "content": "Be brief." })
    );
}

/// Anthropic in, Anthropic out: the client's Messages request becomes a chat body, which a
/// `kind: anthropic` provider sends as a Messages request again; the provider's prompt-cache
/// counts come back to the client as Anthropic reported them.
#[tokio::test]
async fn through_an_anthropic_provider_the_prompt_cache_counts_reach_the_client() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&super::anthropic_upstream::policy(&mock, true)).await;
    let system =
        "You review pull requests for a Rust codebase; name the file and line. ".repeat(90);
    let ask = |question: &str, stream: bool| {
        json!({ "model": "sonnet", "max_tokens": 300, "stream": stream, "system": system,
                "messages": [{ "role": "user", "content": question }] })
    };
    let first: Value = sidecar
        .messages(&ask("Review the retry loop.", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["type"], "message", "{first}");
    let written = first["usage"]["cache_creation_input_tokens"]
        .as_u64()
        .unwrap();
    assert!(written > 1024, "{first}");
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);

    let second: Value = sidecar
        .messages(&ask("Review the error type.", false))
        .await
        .json()
        .await
        .unwrap();
    let read = second["usage"]["cache_read_input_tokens"].as_u64().unwrap();
    assert_eq!(read, written, "{second}");
    let input = second["usage"]["input_tokens"].as_u64().unwrap();
    assert!(
        input > 0 && input < 100,
        "input_tokens exclude the cached prefix: {second}"
    );

    let text = sidecar
        .messages(&ask("Review the config loader.", true))
        .await
        .text()
        .await
        .unwrap();
    let events = anthropic_events(&text);
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["usage"]["cache_read_input_tokens"], read, "{text}");
    assert!(
        delta["usage"]["input_tokens"].as_u64().unwrap() < 100,
        "{text}"
    );
    assert_eq!(events.last().unwrap().0, "message_stop");
}
