//! `/metrics` as Prometheus reads it: after traffic that touches every kind of series (misses,
//! exact and semantic hits, streams, escalations, retries, upstream errors, budget and run-cap
//! refusals, loops, trimming, tenants past the bound, and shadow mode), `promtool check metrics`
//! has nothing to complain about, and every dollar total is a counter.

use frugal_tests::{check_with_promtool, policy_for, MockUpstream, Sidecar};
use serde_json::{json, Value};

/// Cache, semantic tier, routing with an escalation check that always fires on the mock's
/// logprobs, budgets (one tenant that can afford nothing), run caps, loops, trimming, and room
/// for one unlisted tenant of its own.
const LIVE: &str = "\
cache: { mode: on, max_temperature: 0.5, similarity_threshold: 0.8 }
route: { mode: on, ladder: [cheap, strong], start_strong_above: 0.99, checks: { min_mean_logprob: -0.01 } }
trim: { mode: on, max_context_tokens: 40 }
runs: { max_tokens: 100000, loop_max_repeats: 1, loop_action: flag }
limits: { max_tenants: 1 }
tenants:
  default:
    budget: { window: day, hard_cap_usd: 100, soft_thresholds: [0.000001] }
  capped:
    budget: { window: day, hard_cap_usd: 0.0000001 }
";

/// Every lever in shadow mode: counted, never acted on.
const SHADOW: &str = "\
cache: { mode: shadow, max_temperature: 0.5 }
route: { mode: shadow, ladder: [cheap, strong] }
trim: { mode: shadow, max_context_tokens: 40 }
";

fn ask(model: &str, prompt: &str) -> Value {
    json!({ "model": model, "temperature": 0, "messages": [{ "role": "user", "content": prompt }] })
}

async fn post(sidecar: &Sidecar, body: &Value, headers: &[(&str, &str)]) -> u16 {
    let mut request = sidecar
        .client
        .post(sidecar.url("/v1/chat/completions"))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    // Read streams to their end, so they settle before the scrape.
    response.bytes().await.unwrap();
    status
}

#[tokio::test]
async fn promtool_accepts_metrics_after_mixed_traffic() {
    let mock = MockUpstream::start().await;
    mock.on_prompt("(?i)always fails").fail_times(100, 500);
    mock.on_prompt("(?i)garbled").malformed();
    let live = Sidecar::start(&policy_for(&mock.base_url(), LIVE)).await;
    let shadow = Sidecar::start(&policy_for(&mock.base_url(), SHADOW)).await;

    let capital = ask("cheap", "What is the capital of France?");
    assert_eq!(post(&live, &capital, &[]).await, 200, "miss");
    assert_eq!(post(&live, &capital, &[]).await, 200, "exact hit");
    let mut streamed = capital.clone();
    streamed["stream"] = json!(true);
    assert_eq!(
        post(&live, &streamed, &[]).await,
        200,
        "hit replayed as SSE"
    );
    let rephrased = ask("cheap", "What's the capital city of France?");
    assert_eq!(post(&live, &rephrased, &[]).await, 200, "semantic tier");
    let mut stream = ask("cheap", "Stream a haiku about rivers.");
    stream["stream"] = json!(true);
    assert_eq!(post(&live, &stream, &[]).await, 200, "live stream");
    let routed = ask("strong", "Route me, please.");
    assert_eq!(post(&live, &routed, &[]).await, 200, "escalated");
    let tool = json!({ "model": "cheap", "max_tokens": 300, "messages": [
        { "role": "user", "content": "Which line mentions rivers?" },
        { "role": "assistant", "content": null, "tool_calls": [
            { "id": "c1", "type": "function", "function": { "name": "search", "arguments": "{}" } }] },
        { "role": "tool", "tool_call_id": "c1",
          "content": (0..60).map(|i| format!("Line {i} is about hills.")).collect::<Vec<_>>().join(" ") }
    ]});
    assert_eq!(post(&live, &tool, &[]).await, 200, "trimmed");

    let hi = ask("cheap", "hi");
    assert_eq!(
        post(&live, &hi, &[("x-frugal-tenant", "capped")]).await,
        429
    );
    assert_eq!(post(&live, &hi, &[("x-frugal-tenant", "first")]).await, 200);
    assert_eq!(
        post(&live, &hi, &[("x-frugal-tenant", "second")]).await,
        200
    );
    for _ in 0..2 {
        assert_eq!(post(&live, &hi, &[("x-frugal-run-id", "loop")]).await, 200);
    }
    let mut huge = hi.clone();
    huge["max_tokens"] = json!(200_000);
    assert_eq!(post(&live, &huge, &[("x-frugal-run-id", "big")]).await, 429);
    let failing = ask("cheap", "This always fails.");
    assert_eq!(
        post(&live, &failing, &[]).await,
        502,
        "retried, then failed"
    );
    assert_eq!(post(&live, &ask("cheap", "Garbled reply"), &[]).await, 502);
    assert_eq!(post(&live, &ask("nope", "hi"), &[]).await, 404);
    assert_eq!(live.chat_raw("{not json").await.status(), 400);

    for _ in 0..2 {
        assert_eq!(
            post(&shadow, &capital, &[]).await,
            200,
            "shadow miss, then hit"
        );
    }
    assert_eq!(post(&shadow, &routed, &[]).await, 200);
    assert_eq!(post(&shadow, &tool, &[]).await, 200);

    // One recorder per process: this scrape holds both sidecars' series.
    let metrics = live.metrics().await;
    for name in [
        "frugal_cost_usd_total",
        "frugal_baseline_cost_usd_total",
        "frugal_saved_usd_total",
        "frugal_overspent_usd_total",
        "frugal_cache_shadow_saved_usd_total",
        "frugal_tenant_overflow_total",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} counter\n")),
            "{name} is not a counter:\n{metrics}"
        );
    }
    assert!(metrics.contains("frugal_escalations_total{"), "{metrics}");
    assert!(
        metrics.contains("\nfrugal_tenant_overflow_total 1\n"),
        "{metrics}"
    );
    check_with_promtool(&metrics);
}

/// The scrape that reads `frugal_requests_in_flight` is not counted in it: an idle sidecar
/// reads 0, not 1.
#[tokio::test]
async fn an_idle_sidecar_has_no_request_in_flight() {
    let mock = frugal_tests::MockUpstream::start().await;
    let sidecar = frugal_tests::Sidecar::in_front_of(&mock).await;
    let response = sidecar
        .chat(&frugal_tests::chat_body("cheap", "Hello"))
        .await;
    assert_eq!(response.status(), 200);
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.lines().any(|l| l == "frugal_requests_in_flight 0"),
        "{metrics}"
    );
}
