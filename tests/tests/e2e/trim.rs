//! Context trimming through the sidecar: tool output and marked documents are cut to the cap
//! before the upstream sees them, the saving is accounted, shadow mode changes nothing.

use frugal_tests::{header, policy_for, MockUpstream, Sidecar};
use serde_json::{json, Value};

fn filler(topic: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("Finding {i} concerns {topic} and a few other words to pad it out."))
        .collect::<Vec<_>>()
        .join(" ")
}

fn with_tool_output(output: &str) -> Value {
    json!({ "model": "strong", "messages": [
        { "role": "system", "content": "Answer from the search results." },
        { "role": "user", "content": "Which finding concerns glaciers?" },
        { "role": "assistant", "content": null, "tool_calls": [{ "id": "c1", "type": "function",
            "function": { "name": "search", "arguments": "{\"q\":\"glaciers\"}" } }] },
        { "role": "tool", "tool_call_id": "c1", "content": output }] })
}

#[tokio::test]
async fn tool_output_is_trimmed_to_the_cap_before_it_goes_upstream() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "trim: { max_context_tokens: 120 }\n",
    ))
    .await;
    let output = format!(
        "{} Finding 99 concerns glaciers retreating.",
        filler("deserts", 60)
    );
    let body = with_tool_output(&output);
    let response = sidecar.chat(&body).await;
    assert_eq!(response.status(), 200);
    let removed: u64 = header(&response, "x-frugal-trimmed-tokens")
        .parse()
        .unwrap();
    assert!(removed > 500, "{removed}");
    let sent = &mock.requests()[0];
    let tool = sent["messages"][3]["content"].as_str().unwrap();
    assert!(frugal::trim::Tokenizer::O200kBase.count(tool) <= 120);
    assert!(
        tool.contains("glaciers"),
        "the relevant finding is kept: {tool}"
    );
    for i in 0..3 {
        assert_eq!(
            sent["messages"][i], body["messages"][i],
            "instructions untouched"
        );
    }
    let savings = sidecar.savings("").await;
    assert!(savings["total"]["by_lever"]["trim"].as_f64().unwrap() > 0.0);
    assert_eq!(
        savings["total"]["trimmed_tokens"].as_u64().unwrap(),
        removed
    );
    let metrics = sidecar.metrics().await;
    assert!(metrics.contains("frugal_trim_tokens_total{kind=\"after\",mode=\"on\"}"));
}

#[tokio::test]
async fn short_context_passes_through_and_shadow_mode_only_counts() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "trim: { mode: shadow, max_context_tokens: 60 }\n",
    ))
    .await;
    let body = with_tool_output(&filler("glaciers", 40));
    let response = sidecar.chat(&body).await;
    assert_eq!(header(&response, "x-frugal-trimmed-tokens"), "0");
    let sent = &mock.requests()[0];
    assert_eq!(
        sent["messages"], body["messages"],
        "shadow mode sends the request unchanged"
    );
    let metrics = sidecar.metrics().await;
    assert!(metrics.contains("frugal_trim_tokens_total{kind=\"before\",mode=\"shadow\"}"));

    let small = with_tool_output("Finding 1 concerns glaciers.");
    sidecar.chat(&small).await;
    assert_eq!(mock.requests()[1]["messages"], small["messages"]);
}

#[tokio::test]
async fn a_tenant_can_have_its_own_cap() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "trim: { max_context_tokens: 120 }\ntenants:\n  tight: { trim_max_context_tokens: 40 }\n",
    ))
    .await;
    let body = with_tool_output(&filler("glaciers", 60));
    sidecar.chat_as("tight", &body).await;
    sidecar.chat(&body).await;
    let count = |i: usize| {
        let sent = &mock.requests()[i];
        frugal::trim::Tokenizer::O200kBase.count(sent["messages"][3]["content"].as_str().unwrap())
    };
    assert!(count(0) <= 40, "the tenant's cap: {}", count(0));
    assert!(
        count(1) > 40 && count(1) <= 120,
        "the policy's cap: {}",
        count(1)
    );
}
