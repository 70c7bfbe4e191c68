//! Failing upstreams through the sidecar: bounded retries, circuit breakers, fallbacks.

use frugal_tests::{chat_body, expect_error, policy_for, MockUpstream, Sidecar};

fn metric_value(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn retries_recover_from_transient_failures() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o").fail_times(2, 503);
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "retries: { max_attempts: 3, backoff: 1ms, max_backoff: 10ms }\n",
    ))
    .await;
    let response = sidecar.chat(&chat_body("strong", "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.calls("gpt-4o"), 3);
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric_value(&metrics, "frugal_retries_total{provider=\"mock\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "frugal_upstream_attempts_total{provider=\"mock\",model=\"strong\",outcome=\"server_error\"}"
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn retries_stop_at_the_budget() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o").fail_times(1000, 503);
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "retries: { max_attempts: 5, budget_ratio: 0, budget_reserve: 3, backoff: 1ms, max_backoff: 5ms }\n\
         circuit_breaker: { failure_threshold: 1000 }\n",
    ))
    .await;
    for _ in 0..4 {
        let response = sidecar.chat(&chat_body("strong", "Hi")).await;
        expect_error(response, 502).await;
    }
    // Four first calls and the three retries the budget holds; not 4 × 5.
    assert_eq!(mock.calls("gpt-4o"), 7);
}

#[tokio::test]
async fn the_circuit_opens_after_consecutive_failures() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o").fail_times(2, 500);
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "retries: { max_attempts: 1 }\ncircuit_breaker: { failure_threshold: 2, open_for: 1h }\n",
    ))
    .await;
    for _ in 0..2 {
        expect_error(sidecar.chat(&chat_body("strong", "Hi")).await, 502).await;
    }
    let error = expect_error(sidecar.chat(&chat_body("strong", "Hi")).await, 503).await;
    assert_eq!(error["error"]["code"], "upstream_circuit_open");
    assert_eq!(
        mock.calls("gpt-4o"),
        2,
        "an open circuit does not call upstream"
    );
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric_value(&metrics, "frugal_circuit_state{provider=\"mock\"}"),
        Some(2.0)
    );
}

#[tokio::test]
async fn one_request_retried_against_a_failing_provider_does_not_open_the_circuit_alone() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o").fail_times(4, 500);
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "retries: { max_attempts: 4, backoff: 1ms, max_backoff: 5ms }\n\
         circuit_breaker: { failure_threshold: 2, open_for: 1h }\n",
    ))
    .await;
    let error = expect_error(sidecar.chat(&chat_body("strong", "Hi")).await, 502).await;
    assert_eq!(error["error"]["code"], "upstream_server_error");
    assert_eq!(mock.calls("gpt-4o"), 4, "every retry was made");
    let response = sidecar.chat(&chat_body("strong", "Hi")).await;
    assert_eq!(
        response.status(),
        200,
        "one request's four failures are one strike, not an open circuit"
    );
}

#[tokio::test]
async fn a_fallback_model_answers_when_the_primary_provider_is_down() {
    let mock = MockUpstream::start().await;
    let policy = format!(
        "\
providers:
  down:
    base_url: http://127.0.0.1:9/v1
    timeouts: {{ connect: 1s, request: 2s }}
  mock:
    base_url: {}
models:
  strong:
    provider: down
    upstream: gpt-4o
    price: {{ input_per_mtok: 2.5, output_per_mtok: 10 }}
    fallbacks: [backup]
  backup:
    provider: mock
    upstream: gpt-4o
    price: {{ input_per_mtok: 2.5, output_per_mtok: 10 }}
default_model: strong
retries: {{ max_attempts: 1 }}
",
        mock.base_url()
    );
    let sidecar = Sidecar::start(&policy).await;
    let response = sidecar.chat(&chat_body("strong", "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-frugal-model"], "backup");
    assert_eq!(response.headers()["x-frugal-provider"], "mock");
    assert_eq!(mock.calls("gpt-4o"), 1);
    let metrics = sidecar.metrics().await;
    assert!(metrics.contains(
        "frugal_upstream_attempts_total{provider=\"down\",model=\"strong\",outcome=\"unreachable\"} 1"
    ));
}

#[tokio::test]
async fn a_refused_request_is_neither_retried_nor_sent_to_a_fallback() {
    let mock = MockUpstream::start().await;
    mock.on_model("gpt-4o").fail_times(1, 400);
    let sidecar = Sidecar::start(&policy_for(&mock.base_url(), "")).await;
    expect_error(sidecar.chat(&chat_body("strong", "Hi")).await, 400).await;
    assert_eq!(mock.calls("gpt-4o"), 1);
}
