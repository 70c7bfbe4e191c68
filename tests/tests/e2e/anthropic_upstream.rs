//! A provider of `kind: anthropic`: the sidecar sends Anthropic's Messages API (the mock's
//! `/v1/messages`), gets OpenAI's shapes back, and prices Anthropic's prompt cache.

use frugal_tests::{expect_error, header, sse_payloads, MockUpstream, Sidecar};
use serde_json::{json, Value};

/// A policy whose one model is on a `kind: anthropic` provider (the mock's `/v1/messages`).
pub(crate) fn policy(mock: &MockUpstream, breakpoints: bool) -> String {
    format!(
        "\
providers:
  claude:
    base_url: {}
    kind: anthropic
    timeouts: {{ connect: 1s, request: 2s, first_byte: 2s, idle: 2s }}
models:
  sonnet:
    provider: claude
    upstream: claude-sonnet-4-5
    price: {{ input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3, cache_write_per_mtok: 3.75 }}
default_model: sonnet
retries: {{ max_attempts: 2, backoff: 10ms }}
prompt_cache: {{ breakpoints: {breakpoints} }}
",
        mock.base_url()
    )
}

fn call(question: &str) -> Value {
    let system =
        "You review pull requests for a Rust codebase; name the file and line. ".repeat(90);
    json!({
        "model": "sonnet",
        "max_tokens": 300,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
    })
}

fn usage_of(body: &Value) -> (u64, u64) {
    (
        body["usage"]["prompt_tokens"].as_u64().unwrap(),
        body["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap(),
    )
}

#[tokio::test]
async fn anthropic_answers_come_back_as_chat_completions_with_its_cache_priced() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, true)).await;
    let first = sidecar.chat(&call("Review the retry loop.")).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["object"], "chat.completion");
    assert_eq!(first["choices"][0]["finish_reason"], "stop");
    assert!(!first["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    let written = first["usage"]["cache_creation_input_tokens"]
        .as_u64()
        .unwrap();
    assert!(written >= 1024, "the first call writes the prefix: {first}");

    let sent = mock.requests();
    let sent = sent.last().unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["max_tokens"], 300);
    assert_eq!(
        sent["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(sent["messages"][0]["role"], "user");

    let second = sidecar.chat(&call("Review the cache eviction.")).await;
    let second: Value = second.json().await.unwrap();
    let (prompt, cached) = usage_of(&second);
    assert!(cached >= 1024 && cached < prompt, "{second}");

    // Writes cost 1.25× the input price, reads a tenth: the lever nets both.
    let report = sidecar.savings("").await;
    let lever = report["total"]["by_lever"]["prompt_cache"]
        .as_f64()
        .unwrap();
    let expected = cached as f64 * (3.0 - 0.3) / 1e6 - written as f64 * (3.75 - 3.0) / 1e6;
    assert!((lever - expected).abs() < 1e-12, "{lever} vs {expected}");
    assert_eq!(report["total"]["prompt_cache_write_tokens"], written);
}

#[tokio::test]
async fn without_breakpoints_anthropic_caches_nothing() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, false)).await;
    for question in ["One?", "Two?"] {
        let response = sidecar.chat(&call(question)).await;
        assert_eq!(header(&response, "x-frugal-prompt-cached-tokens"), "");
        let (_, cached) = usage_of(&response.json().await.unwrap());
        assert_eq!(cached, 0);
    }
    assert!(mock
        .requests()
        .iter()
        .all(|r| !r.to_string().contains("cache_control")));
}

#[tokio::test]
async fn an_anthropic_stream_is_relayed_as_chat_chunks() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, true)).await;
    let mut body = call("Stream a review.");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = sidecar.chat(&body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let payloads = sse_payloads(&text);
    assert_eq!(
        payloads.last().map(String::as_str),
        Some("[DONE]"),
        "{text}"
    );
    let chunks: Vec<Value> = payloads
        .iter()
        .filter(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let reply: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(reply.contains("simulated model"), "{reply}");
    let usage = chunks.iter().find(|c| c["usage"].is_object()).unwrap();
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{usage}"
    );
    let report = sidecar.savings("").await;
    assert_eq!(report["total"]["requests"], 1);
    assert!(
        report["total"]["prompt_cache_write_tokens"]
            .as_u64()
            .unwrap()
            >= 1024
    );
}

#[tokio::test]
async fn anthropic_overload_is_retried_and_its_refusals_reach_the_client_in_openais_shape() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, false)).await;
    mock.always().fail_times(1, 529);
    let response = sidecar.chat(&call("Retry me.")).await;
    assert_eq!(response.status(), 200, "a 529 is retried");
    assert_eq!(mock.calls("claude-sonnet-4-5"), 2);

    mock.always().fail_times(1, 400);
    let refused = sidecar.chat(&call("Refuse me.")).await;
    let error = expect_error(refused, 400).await;
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");

    // What Anthropic cannot take is refused before any call.
    let before = mock.calls("claude-sonnet-4-5");
    let mut two = call("Two answers?");
    two["n"] = json!(2);
    let error = expect_error(sidecar.chat(&two).await, 400).await;
    assert!(
        error["error"]["message"].as_str().unwrap().contains("`n`"),
        "{error}"
    );
    assert_eq!(mock.calls("claude-sonnet-4-5"), before);
}

#[tokio::test]
async fn an_anthropic_tool_use_comes_back_as_an_openai_tool_call_json_and_streamed() {
    let mock = MockUpstream::start().await;
    mock.script("- { then: { tool_call: { name: run_tests, arguments: { crate: router } } } }");
    let sidecar = Sidecar::start(&policy(&mock, false)).await;
    let mut body = call("Run the tests.");
    body["tools"] = json!([{"type": "function", "function": {"name": "run_tests", "parameters": {"type": "object"}}}]);
    let answer: Value = sidecar.chat(&body).await.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "run_tests");
    assert_eq!(call["function"]["arguments"], "{\"crate\":\"router\"}");
    assert!(call["id"].as_str().unwrap().starts_with("toolu_"));
    let sent = mock.requests();
    assert_eq!(sent.last().unwrap()["tools"][0]["name"], "run_tests");

    body["stream"] = json!(true);
    let text = sidecar.chat(&body).await.text().await.unwrap();
    let chunks: Vec<Value> = sse_payloads(&text)
        .iter()
        .filter(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"crate\":\"router\"}", "{text}");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}
