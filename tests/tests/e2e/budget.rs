//! Tenant budgets through the sidecar: hard caps block before any upstream call, soft thresholds
//! warn once, reservations bound overspend under concurrency, spend survives a restart.

use std::time::Duration;

use frugal_tests::{expect_error, policy_for, MockUpstream, Sidecar};
use serde_json::{json, Value};

/// A request whose cost is fully determined: the mock's answer is cut at `max_tokens`, so the
/// reserved estimate (prompt + max_tokens) equals the actual cost.
fn priced_body(max_tokens: u64) -> Value {
    json!({
        "model": "strong",
        "max_tokens": max_tokens,
        "messages": [{ "role": "user", "content": "Write a long essay about budgets and why they matter." }]
    })
}

async fn send(sidecar: &Sidecar, tenant: &str, body: &Value) -> reqwest::Response {
    sidecar.chat_as(tenant, body).await
}

/// Dollars one `priced_body(max_tokens)` request costs on `strong` ($2.50 / $10 per 1M).
async fn cost_of_one(max_tokens: u64) -> f64 {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = send(&sidecar, "probe", &priced_body(max_tokens)).await;
    response.headers()["x-frugal-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn budget_policy(base_url: &str, cap: f64, extra: &str) -> String {
    policy_for(
        base_url,
        &format!("tenants:\n  default:\n    budget: {{ window: day, hard_cap_usd: {cap}, soft_thresholds: [0.5, 0.8] }}\n{extra}"),
    )
}

#[tokio::test]
async fn hard_cap_blocks_before_any_upstream_call() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&budget_policy(&mock.base_url(), 0.001, "")).await;
    // 1,000 output tokens at $10 per 1M = $0.01, over the $0.001 cap.
    let response = send(&sidecar, "runaway", &priced_body(1000)).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body = expect_error(response, 429).await;
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(mock.total_calls(), 0, "blocked before the upstream");
    // Another tenant is not affected by the first one's spend, and a cheap request still fits.
    assert_eq!(
        send(&sidecar, "other", &priced_body(20)).await.status(),
        200
    );
}

#[tokio::test]
async fn soft_warnings_fire_once_per_threshold() {
    let one = cost_of_one(20).await;
    let mock = MockUpstream::start().await;
    // Each request spends 30% of the cap: the 2nd crosses 50%, the 3rd crosses 80%.
    let sidecar = Sidecar::start(&budget_policy(&mock.base_url(), one / 0.3, "")).await;
    let mut warnings = Vec::new();
    for _ in 0..3 {
        let response = send(&sidecar, "team", &priced_body(20)).await;
        assert_eq!(response.status(), 200);
        warnings.push(
            response
                .headers()
                .get("x-frugal-budget-warning")
                .map(|v| v.to_str().unwrap().to_string()),
        );
    }
    assert!(warnings[0].is_none(), "{warnings:?}");
    assert!(
        warnings[1].as_deref().unwrap().contains("50%"),
        "{warnings:?}"
    );
    assert!(
        warnings[2].as_deref().unwrap().contains("80%"),
        "{warnings:?}"
    );
    assert_eq!(
        send(&sidecar, "team", &priced_body(20)).await.status(),
        429,
        "the 4th would pass 100%"
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics
            .contains("frugal_budget_threshold_crossed_total{tenant=\"team\",threshold=\"0.5\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("frugal_budget_threshold_crossed_total{tenant=\"team\",threshold=\"0.8\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("frugal_budget_rejections_total{tenant=\"team\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("frugal_budget_remaining_usd{tenant=\"team\",window=\"day\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sixty_four_concurrent_requests_do_not_overspend() {
    let one = cost_of_one(20).await;
    let mock = MockUpstream::start_with_latency(Duration::from_millis(50)).await;
    let cap = one * 10.5; // room for 10 requests
    let sidecar = Sidecar::start(&budget_policy(&mock.base_url(), cap, "")).await;
    let requests = (0..64).map(|_| {
        let (client, url) = (sidecar.client.clone(), sidecar.url("/v1/chat/completions"));
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("x-frugal-tenant", "burst")
                .json(&priced_body(20))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 54);
    let report: Value = sidecar.savings("").await;
    let spent = report["tenants"]["burst"]["actual_usd"].as_f64().unwrap();
    assert!(spent <= cap, "spent {spent} over cap {cap}");
    assert_eq!(mock.total_calls(), 10);
}

#[tokio::test]
async fn spend_is_restored_after_a_restart() {
    let one = cost_of_one(20).await;
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("spend.json");
    let policy = budget_policy(
        &mock.base_url(),
        one * 2.5,
        &format!("budget_state_file: {}\n", state.display()),
    );
    let sidecar = Sidecar::start(&policy).await;
    for _ in 0..2 {
        assert_eq!(send(&sidecar, "t", &priced_body(20)).await.status(), 200);
    }
    sidecar.server.shutdown().await.unwrap();
    assert!(state.exists(), "spend saved on shutdown");

    let restarted = Sidecar::start(&policy).await;
    assert_eq!(
        send(&restarted, "t", &priced_body(20)).await.status(),
        429,
        "the restored spend counts"
    );
    assert_eq!(
        send(&restarted, "fresh", &priced_body(20)).await.status(),
        200
    );
}

#[tokio::test]
async fn budget_gauges_show_every_budgeted_tenant_from_the_first_scrape() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&budget_policy(
        &mock.base_url(),
        3.0,
        "  acme:\n    budget: { window: month, hard_cap_usd: 7 }\n",
    ))
    .await;
    let metrics = sidecar.metrics().await;
    for line in [
        r#"frugal_budget_remaining_usd{tenant="acme",window="month"} 7"#,
        r#"frugal_budget_spent_usd{tenant="acme",window="month"} 0"#,
        r#"frugal_budget_remaining_usd{tenant="default",window="day"} 3"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    assert_eq!(mock.total_calls(), 0);
}
