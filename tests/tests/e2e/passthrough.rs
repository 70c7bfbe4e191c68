//! The sidecar forwards requests and replies faithfully.

use frugal_tests::{chat_body, MockUpstream, Sidecar};
use serde_json::{json, Value};

#[tokio::test]
async fn unknown_fields_tools_and_response_format_arrive_upstream_unchanged() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body = json!({
        "model": "cheap",
        "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": [{ "type": "text", "text": "Weather in Paris?" }] }
        ],
        "tools": [{ "type": "function", "function": { "name": "get_weather",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }],
        "tool_choice": "auto",
        "response_format": { "type": "json_object" },
        "seed": 42,
        "logprobs": true,
        "top_logprobs": 2,
        "x_vendor_extension": { "nested": [1, 2.5, "three", null] },
        "metadata": { "trace": "abc" }
    });
    let response = sidecar.chat(&body).await;
    assert_eq!(response.status(), 200);
    let received = mock.requests().pop().expect("one upstream request");
    let mut expected = body.clone();
    expected["model"] = json!("gpt-4o-mini"); // the alias resolved to the upstream name
    assert_eq!(received, expected);
    let sent_keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    let received_keys: Vec<&String> = received.as_object().unwrap().keys().collect();
    assert_eq!(sent_keys, received_keys, "key order is preserved");
}

#[tokio::test]
async fn reply_body_is_relayed_unchanged_with_decision_headers() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o").respond("The answer is 42.");
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar
        .chat(&chat_body("strong", "What is six times seven?"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-frugal-model"], "strong");
    assert_eq!(response.headers()["x-frugal-provider"], "mock");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The answer is 42."
    );
    assert_eq!(body["object"], "chat.completion");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(mock.calls("gpt-4o"), 1);
    assert_eq!(mock.calls("gpt-4o-mini"), 0);
}

#[tokio::test]
async fn a_request_without_model_uses_the_default_alias() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar
        .chat(&json!({ "messages": [{ "role": "user", "content": "hi" }] }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-frugal-model"], "cheap");
    assert_eq!(mock.calls("gpt-4o-mini"), 1);
}

#[tokio::test]
async fn models_endpoint_lists_policy_aliases() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body: Value = sidecar
        .client
        .get(sidecar.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["cheap", "strong"]);
    assert_eq!(body["object"], "list");
}

#[tokio::test]
async fn health_and_readiness_report_the_live_policy() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let health = sidecar
        .client
        .get(sidecar.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = sidecar
        .client
        .get(sidecar.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["policy_revision"], 1);
    assert_eq!(ready["policy_hash"].as_str().unwrap().len(), 12);
}
