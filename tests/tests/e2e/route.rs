//! Cheap-first routing through the sidecar: the ladder, every escalation reason, streaming
//! cascades, the client's tier cap, and what each attempt costs.

use frugal::mock::Behaviour;
use frugal_tests::{
    chat_body, expect_error, header, policy_for, sse_payloads, MockUpstream, Sidecar,
};
use serde_json::{json, Value};

/// Everything starts cheap (no prompt here scores above 0.99) and may escalate once.
const ROUTED: &str = "\
retries: { max_attempts: 1 }
route:
  ladder: [cheap, strong]
  start_strong_above: 0.99
  checks: { min_mean_logprob: -1.0 }
";

async fn routed(mock: &MockUpstream, extra: &str) -> Sidecar {
    Sidecar::start(&policy_for(&mock.base_url(), &format!("{ROUTED}{extra}"))).await
}

fn dollars(response: &reqwest::Response, name: &str) -> f64 {
    header(response, name).parse().unwrap()
}

#[tokio::test]
async fn a_good_cheap_answer_is_served_and_saves_money() {
    let mock = MockUpstream::start().await;
    let sidecar = routed(&mock, "").await;
    let response = sidecar.chat(&chat_body("strong", "Say hello.")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-frugal-tier"), "cheap");
    assert_eq!(header(&response, "x-frugal-model"), "cheap");
    assert_eq!(header(&response, "x-frugal-escalations"), "");
    assert!(!header(&response, "x-frugal-complexity").is_empty());
    assert!(dollars(&response, "x-frugal-saved-usd") > 0.0);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["logprobs"],
        Value::Null,
        "logprobs the sidecar asked for are not shown to a client that did not ask"
    );
    assert_eq!((mock.calls("gpt-4o-mini"), mock.calls("gpt-4o")), (1, 0));
    let sent = &mock.requests()[0];
    assert_eq!(
        sent["logprobs"], true,
        "logprobs are requested for the check"
    );
}

#[tokio::test]
async fn a_cache_hit_names_the_model_that_answered() {
    let mock = MockUpstream::start().await;
    let sidecar = routed(&mock, "cache: { mode: on }\n").await;
    let body = chat_body("strong", "Say hello.");
    let first = sidecar.chat(&body).await;
    assert_eq!(header(&first, "x-frugal-model"), "cheap");
    let again = sidecar.chat(&body).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(
        header(&again, "x-frugal-model"),
        "cheap",
        "the stored answer came from the cheap rung, not the requested model"
    );
    assert_eq!((mock.calls("gpt-4o-mini"), mock.calls("gpt-4o")), (1, 0));
}

/// One escalation reason: how the cheap model misbehaves, and the request that shows it.
struct Case {
    reason: &'static str,
    cheap: Behaviour,
    request: Value,
}

fn cases() -> Vec<Case> {
    let reply = |text: &str| Behaviour {
        reply: Some(text.into()),
        ..Default::default()
    };
    let plain = chat_body("strong", "Tell me about Oslo.");
    let mut json_request = plain.clone();
    json_request["response_format"] = json!({"type": "json_object"});
    vec![
        Case {
            reason: "truncated",
            cheap: Behaviour {
                finish_reason: Some("length".into()),
                ..Default::default()
            },
            request: plain.clone(),
        },
        Case {
            reason: "empty",
            cheap: reply(""),
            request: plain.clone(),
        },
        Case {
            reason: "refusal_or_hedge",
            cheap: reply("I'm not sure, but Oslo might be in Norway."),
            request: plain.clone(),
        },
        Case {
            reason: "low_logprob",
            cheap: Behaviour {
                logprob: Some(-2.5),
                ..Default::default()
            },
            request: plain.clone(),
        },
        Case {
            reason: "invalid_json",
            cheap: reply("Oslo is the capital of Norway."),
            request: json_request,
        },
        Case {
            reason: "arithmetic_error",
            cheap: reply("3 x 60 = 170, so he has 170 pencils."),
            request: chat_body(
                "strong",
                "Tom has 3 boxes of 60 pencils. How many pencils does he have?",
            ),
        },
        Case {
            reason: "upstream_error",
            cheap: Behaviour {
                status: Some(500),
                ..Default::default()
            },
            request: plain,
        },
    ]
}

#[tokio::test]
async fn every_escalation_reason_escalates_and_is_labelled() {
    for case in cases() {
        let mock = MockUpstream::start().await;
        mock.on_model("gpt-4o-mini").with(case.cheap);
        mock.on_model("gpt-4o")
            .respond(r#"{"city": "Oslo", "answer": 180}"#);
        let sidecar = routed(&mock, "").await;
        let response = sidecar.chat(&case.request).await;
        assert_eq!(response.status(), 200, "{}", case.reason);
        assert_eq!(header(&response, "x-frugal-escalations"), case.reason);
        assert_eq!(
            header(&response, "x-frugal-tier"),
            "strong",
            "{}",
            case.reason
        );
        assert_eq!(header(&response, "x-frugal-model"), "strong");
        assert_eq!(
            (mock.calls("gpt-4o-mini"), mock.calls("gpt-4o")),
            (1, 1),
            "{}",
            case.reason
        );
        let metrics = sidecar.metrics().await;
        let line = format!(
            "frugal_escalations_total{{from=\"cheap\",to=\"strong\",reason=\"{}\"}} 1",
            case.reason
        );
        assert!(metrics.contains(&line), "{line} missing");
    }
}

#[tokio::test]
async fn an_escalated_request_pays_for_both_calls() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o-mini").respond("I'm not sure.");
    mock.on_model("gpt-4o")
        .respond("Oslo is the capital of Norway.");
    let sidecar = routed(&mock, "").await;
    let response = sidecar
        .chat(&chat_body("strong", "What is the capital of Norway?"))
        .await;
    let (cost, saved) = (
        dollars(&response, "x-frugal-cost-usd"),
        dollars(&response, "x-frugal-saved-usd"),
    );
    let body: Value = response.json().await.unwrap();
    let (input, output) = (
        body["usage"]["prompt_tokens"].as_f64().unwrap(),
        body["usage"]["completion_tokens"].as_f64().unwrap(),
    );
    let strong_only = (input * 2.5 + output * 10.0) / 1e6;
    assert!(
        cost > strong_only,
        "the wasted cheap call is paid: {cost} vs {strong_only}"
    );
    assert!(saved < 0.0, "routing lost money on this request: {saved}");
    let savings = sidecar.savings("").await;
    assert!(savings["total"]["saved_usd"].as_f64().unwrap() < 0.0);
}

#[tokio::test]
async fn a_failed_escalation_serves_the_cheap_answer() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o-mini")
        .respond("I'm not sure; perhaps Oslo.");
    mock.on_model("gpt-4o").fail_times(5, 503);
    let sidecar = routed(&mock, "").await;
    let response = sidecar
        .chat(&chat_body("strong", "Capital of Norway?"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "x-frugal-escalations"),
        "refusal_or_hedge,strong_failed"
    );
    assert_eq!(header(&response, "x-frugal-tier"), "cheap");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "I'm not sure; perhaps Oslo."
    );
}

#[tokio::test]
async fn hard_prompts_start_strong_and_unrouted_models_go_direct() {
    let mock = MockUpstream::start().await;
    let text = policy_for(
        &mock.base_url(),
        "route:\n  ladder: [cheap, strong]\n  start_strong_above: 0.0\n",
    );
    let sidecar = Sidecar::start(&text).await;
    let response = sidecar.chat(&chat_body("strong", "Say hello.")).await;
    assert_eq!(header(&response, "x-frugal-tier"), "strong");
    assert_eq!((mock.calls("gpt-4o-mini"), mock.calls("gpt-4o")), (0, 1));
    let direct = sidecar.chat(&chat_body("cheap", "Say hello.")).await;
    assert_eq!(
        header(&direct, "x-frugal-tier"),
        "",
        "`cheap` is not routed"
    );
    assert_eq!(header(&direct, "x-frugal-model"), "cheap");
    let metrics = sidecar.metrics().await;
    assert!(metrics.contains("frugal_route_start_total{tier=\"strong\"} 1"));
    assert!(metrics.contains("frugal_classifier_score_count 1"));
    assert!(
        metrics.contains("frugal_embedding_batch_size_count 1"),
        "the classifier got the prompt's embedding from the worker"
    );
}

#[tokio::test]
async fn a_routing_policy_without_the_embedding_model_is_refused_with_the_fix() {
    // FRUGAL_MODEL_DIR (set by scripts/test.sh) would override the policy's folder; nextest
    // runs each test in its own process, so clearing it here affects no other test.
    std::env::remove_var("FRUGAL_MODEL_DIR");
    std::env::remove_var("ORT_DYLIB_PATH");
    let mock = MockUpstream::start().await;
    let text = policy_for(&mock.base_url(), "route:\n  ladder: [cheap, strong]\n").replace(
        "model_dir: ../models",
        "model_dir: /nonexistent/frugal-models",
    );
    let policy = frugal::policy::parse(&text, "p.yaml").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = frugal::server::RunningServer::start(policy, listener, None)
        .err()
        .expect("no model, no routing");
    let message = format!("{error:#}");
    assert!(message.contains("fetch-models.sh"), "{message}");
}

#[tokio::test]
async fn the_client_can_cap_the_tier() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o-mini").respond("I'm not sure.");
    let sidecar = routed(&mock, "").await;
    let response = sidecar
        .client
        .post(sidecar.url("/v1/chat/completions"))
        .header("x-frugal-max-tier", "cheap")
        .json(&chat_body("strong", "Capital of Norway?"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "x-frugal-tier"), "cheap");
    assert_eq!(mock.calls("gpt-4o"), 0, "never above the client's cap");
    let bad = sidecar
        .client
        .post(sidecar.url("/v1/chat/completions"))
        .header("x-frugal-max-tier", "platinum")
        .json(&chat_body("strong", "Hi"))
        .send()
        .await
        .unwrap();
    let error = expect_error(bad, 400).await;
    assert_eq!(error["error"]["param"], "x-frugal-max-tier");
}

fn stream_body(prompt: &str) -> Value {
    let mut body = chat_body("strong", prompt);
    body["stream"] = json!(true);
    body
}

fn streamed_text(text: &str) -> String {
    sse_payloads(text)
        .iter()
        .filter(|p| p.as_str() != "[DONE]")
        .filter_map(|p| serde_json::from_str::<Value>(p).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn a_buffered_stream_escalates_before_any_byte_is_sent() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o-mini")
        .times(1)
        .respond("I'm not sure.");
    mock.on_model("gpt-4o")
        .respond("Oslo is the capital of Norway.");
    let sidecar = routed(&mock, "").await;
    let response = sidecar.chat(&stream_body("Capital of Norway?")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "x-frugal-escalations"),
        "refusal_or_hedge"
    );
    assert_eq!(header(&response, "x-frugal-tier"), "strong");
    let text = response.text().await.unwrap();
    assert_eq!(streamed_text(&text), "Oslo is the capital of Norway.");
    assert!(text.ends_with("data: [DONE]\n\n"));

    // An accepted cheap answer is replayed as SSE.
    mock.on_model("gpt-4o-mini").respond("Hello there.");
    let response = sidecar.chat(&stream_body("Say hello.")).await;
    assert_eq!(header(&response, "x-frugal-tier"), "cheap");
    let text = response.text().await.unwrap();
    assert_eq!(streamed_text(&text), "Hello there.");
    assert!(text.contains(": frugal cost_usd="));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_direct_stream_never_escalates_once_it_answers() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o-mini").respond("I'm not sure.");
    let sidecar = routed(&mock, "  stream_cascade: direct\n").await;
    let response = sidecar.chat(&stream_body("Capital of Norway?")).await;
    assert_eq!(header(&response, "x-frugal-tier"), "cheap");
    assert_eq!(
        streamed_text(&response.text().await.unwrap()),
        "I'm not sure."
    );
    assert_eq!(mock.calls("gpt-4o"), 0);
}

#[tokio::test]
async fn a_tenant_can_be_held_to_the_cheap_rung() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o-mini").respond("I'm not sure.");
    let sidecar = routed(
        &mock,
        "tenants:\n  interns: { max_tier: cheap, cache_namespace: interns }\n",
    )
    .await;
    let body = chat_body("strong", "Capital of Norway?");
    let capped = sidecar.chat_as("interns", &body).await;
    assert_eq!(header(&capped, "x-frugal-tier"), "cheap");
    assert_eq!(mock.calls("gpt-4o"), 0, "the tenant's cap holds");
    let free = sidecar.chat_as("staff", &body).await;
    assert_eq!(header(&free, "x-frugal-tier"), "strong");
    assert_eq!(mock.calls("gpt-4o"), 1);
}
