//! The provider's prompt cache as the `prompt_cache` lever: the mock reports cached tokens as
//! OpenAI does, the sidecar prices them, sorts tools when asked, and flags prefixes that defeat
//! the provider's cache.

use frugal_tests::{header, policy_for, sse_payloads, MockUpstream, Sidecar};
use serde_json::{json, Value};

/// The standard test policy with the cheap model's cached input at half price (OpenAI's).
fn policy(mock: &MockUpstream, extra: &str) -> String {
    policy_for(&mock.base_url(), extra).replace(
        "price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }",
        "price: { input_per_mtok: 0.15, output_per_mtok: 0.6, cached_input_per_mtok: 0.075 }",
    )
}

/// A support agent's system prompt: about 1,500 tokens, with `stamp` at its start.
fn system_prompt(stamp: &str) -> String {
    format!(
        "{stamp}You are the support agent of Acme Outdoor. {}",
        "Answer in two sentences, cite the refund policy by section, never promise a date. "
            .repeat(90)
    )
}

fn tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": format!("The {name} tool."), "parameters": {"type": "object", "properties": {}}}})
}

fn agent_call(system: &str, tools: &[&str], question: &str) -> Value {
    json!({
        "model": "cheap",
        "temperature": 0.9,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
        "tools": tools.iter().map(|t| tool(t)).collect::<Vec<_>>(),
    })
}

fn cached_tokens(body: &Value) -> u64 {
    body["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn cached_prompt_tokens_are_priced_as_the_prompt_cache_lever() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, "")).await;
    let system = system_prompt("");
    let first = sidecar
        .chat(&agent_call(&system, &["lookup_order"], "Where is order 1?"))
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-frugal-prompt-cached-tokens"), "");
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        cached_tokens(&first),
        0,
        "nothing is cached on the first call"
    );

    let second = sidecar
        .chat(&agent_call(
            &system,
            &["lookup_order"],
            "Can I return boots?",
        ))
        .await;
    assert_eq!(second.status(), 200);
    let saved: f64 = header(&second, "x-frugal-saved-usd").parse().unwrap();
    let cached_header: u64 = header(&second, "x-frugal-prompt-cached-tokens")
        .parse()
        .unwrap();
    let second: Value = second.json().await.unwrap();
    let cached = cached_tokens(&second);
    assert!(cached >= 1024 && cached.is_multiple_of(128), "{second}");
    assert_eq!(cached_header, cached);
    // Half of the input price on every cached token, and nothing else saved.
    let expected = cached as f64 * (0.15 - 0.075) / 1e6;
    assert!((saved - expected).abs() < 1e-12, "{saved} vs {expected}");

    let report = sidecar.savings("").await;
    let total = &report["total"];
    assert!((total["by_lever"]["prompt_cache"].as_f64().unwrap() - expected).abs() < 1e-12);
    assert_eq!(total["prompt_cached_tokens"], cached);
    let levers = &total["by_lever"];
    let sum: f64 = ["trim", "cache", "route", "prompt_cache"]
        .iter()
        .map(|l| levers[l].as_f64().unwrap())
        .sum();
    let identity = total["baseline_usd"].as_f64().unwrap() - total["actual_usd"].as_f64().unwrap();
    assert!((sum - identity).abs() < 1e-12, "{total}");
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(&format!(
            "frugal_prompt_cache_tokens_total{{tenant=\"default\",model=\"cheap\",kind=\"read\"}} {cached}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("frugal_saved_usd_total{tenant=\"default\",lever=\"prompt_cache\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_streamed_answer_counts_its_cached_tokens_too() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, "")).await;
    let system = system_prompt("");
    for question in ["First question?", "Second question?"] {
        let mut body = agent_call(&system, &[], question);
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let response = sidecar.chat(&body).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(sse_payloads(&text).iter().any(|p| p == "[DONE]"), "{text}");
    }
    let report = sidecar.savings("").await;
    assert!(
        report["total"]["prompt_cached_tokens"].as_u64().unwrap() >= 1024,
        "{report}"
    );
    assert!(
        report["total"]["by_lever"]["prompt_cache"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[tokio::test]
async fn tools_in_another_order_break_the_prefix_until_the_sidecar_sorts_them() {
    let mock = MockUpstream::start().await;
    let system = system_prompt("");
    let calls = [
        agent_call(&system, &["search", "refund", "ship"], "q1"),
        agent_call(&system, &["ship", "search", "refund"], "q2"),
    ];

    let as_written = Sidecar::start(&policy(&mock, "")).await;
    let _ = as_written.chat(&calls[0]).await;
    let second = as_written.chat(&calls[1]).await;
    assert_eq!(
        header(&second, "x-frugal-prompt-prefix-break"),
        "tool_order"
    );
    assert_eq!(cached_tokens(&second.json().await.unwrap()), 0);
    assert!(as_written
        .metrics()
        .await
        .contains("frugal_prompt_prefix_breaks_total{tenant=\"default\",cause=\"tool_order\"} 1"));

    let sorting = Sidecar::start(&policy(
        &mock,
        "prompt_cache: { stable_tool_order: true }\n",
    ))
    .await;
    let _ = sorting
        .chat(&agent_call(&system, &["search", "refund", "ship"], "q3"))
        .await;
    let second = sorting
        .chat(&agent_call(&system, &["ship", "search", "refund"], "q4"))
        .await;
    assert_eq!(header(&second, "x-frugal-prompt-prefix-break"), "");
    assert!(cached_tokens(&second.json().await.unwrap()) >= 1024);
    let sent = mock.requests();
    let names: Vec<&str> = sent.last().unwrap()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["refund", "search", "ship"], "sent sorted by name");
}

#[tokio::test]
async fn a_timestamp_in_the_system_prompt_is_flagged_and_short_prompts_are_not_watched() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, "")).await;
    let _ = sidecar
        .chat(&agent_call(&system_prompt("Now: 10:32:11. "), &[], "q1"))
        .await;
    let second = sidecar
        .chat(&agent_call(&system_prompt("Now: 10:32:15. "), &[], "q2"))
        .await;
    assert_eq!(
        header(&second, "x-frugal-prompt-prefix-break"),
        "volatile_system"
    );
    assert_eq!(cached_tokens(&second.json().await.unwrap()), 0);

    // Below the provider's minimum nothing is cached anyway, so nothing is flagged.
    let _ = sidecar
        .chat(&agent_call("Now: 10:32:11. Be brief.", &[], "q3"))
        .await;
    let short = sidecar
        .chat(&agent_call("Now: 10:32:15. Be brief.", &[], "q4"))
        .await;
    assert_eq!(header(&short, "x-frugal-prompt-prefix-break"), "");
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(
            "frugal_prompt_prefix_breaks_total{tenant=\"default\",cause=\"volatile_system\"} 1"
        ),
        "{metrics}"
    );
}
