//! Tenant identity and per-request caps: a tenant with a key cannot be claimed without it,
//! oversized or overpriced requests are refused before any upstream call, and random tenant
//! names cannot grow metrics, the savings report or budgets without limit.

use std::collections::BTreeSet;

use frugal_tests::{chat_body, expect_error, header, policy_for, MockUpstream, Sidecar};
use futures::StreamExt;
use serde_json::{json, Value};

const TEAM_A_KEY: &str = "team-a-secret-key-0123456789";

async fn send(sidecar: &Sidecar, tenant: Option<&str>, key: Option<&str>) -> reqwest::Response {
    let mut request = sidecar
        .client
        .post(sidecar.url("/v1/chat/completions"))
        .json(&chat_body("cheap", "hi"));
    if let Some(tenant) = tenant {
        request = request.header("x-frugal-tenant", tenant);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_keyed_tenant_cannot_be_claimed_without_its_key() {
    std::env::set_var("FRUGAL_TEST_TEAM_A_KEY", TEAM_A_KEY);
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "tenants:\n  team-a:\n    api_key_env: FRUGAL_TEST_TEAM_A_KEY\n",
    ))
    .await;
    assert_eq!(
        send(&sidecar, Some("team-a"), Some(TEAM_A_KEY))
            .await
            .status(),
        200
    );
    assert_eq!(
        send(&sidecar, None, Some(TEAM_A_KEY)).await.status(),
        200,
        "the key alone names the tenant"
    );
    expect_error(send(&sidecar, Some("team-a"), None).await, 403).await;
    expect_error(
        send(&sidecar, Some("team-a"), Some("sk-not-the-key-at-all")).await,
        403,
    )
    .await;
    expect_error(send(&sidecar, Some("team-b"), Some(TEAM_A_KEY)).await, 403).await;
    assert_eq!(
        send(&sidecar, Some("team-b"), Some("sk-anything"))
            .await
            .status(),
        200,
        "unkeyed tenants by header"
    );
    let report: serde_json::Value = sidecar.savings("").await;
    assert_eq!(report["tenants"]["team-a"]["requests"], 2);
    assert_eq!(report["tenants"]["team-b"]["requests"], 1);
    assert_eq!(mock.total_calls(), 3);
}

#[test]
fn a_tenant_key_variable_that_is_not_set_is_a_policy_error() {
    let text = policy_for(
        "http://127.0.0.1:1/v1",
        "tenants:\n  t:\n    api_key_env: FRUGAL_TEST_UNSET_KEY_VAR\n",
    );
    let errors = frugal::policy::parse(&text, "p.yaml").unwrap_err().errors;
    assert_eq!(errors[0].path, "tenants.t.api_key_env");
}

#[tokio::test]
async fn per_request_caps_refuse_before_the_upstream() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { max_input_tokens: 50, max_request_cost_usd: 0.001 }\n",
    ))
    .await;
    let long = chat_body("cheap", &"many words ".repeat(100));
    let error = expect_error(sidecar.chat(&long).await, 400).await;
    assert_eq!(error["error"]["code"], "input_too_long");
    // strong: 10,000 output tokens at $10 per 1M = $0.10, over the $0.001 cap.
    let pricey = json!({ "model": "strong", "max_tokens": 10000, "messages": [{ "role": "user", "content": "hi" }] });
    let error = expect_error(sidecar.chat(&pricey).await, 400).await;
    assert_eq!(error["error"]["code"], "request_cost_too_high");
    assert_eq!(error["error"]["param"], "max_tokens");
    assert_eq!(mock.total_calls(), 0);
    assert_eq!(
        sidecar.chat(&chat_body("cheap", "short")).await.status(),
        200
    );
}

/// Every `tenant` label value in a Prometheus scrape.
fn tenant_labels(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split("tenant=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_thousand_random_tenant_names_are_bounded_in_metrics_and_savings() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { max_tenants: 10 }
\
         tenants:\n  default:\n    budget: { window: day, hard_cap_usd: 1000 }\n  \
         acme:\n    max_tier: cheap\n",
    ))
    .await;
    let statuses: Vec<u16> = futures::stream::iter(0..1000)
        .map(|i| {
            let sidecar = &sidecar;
            async move {
                let tenant = format!("random-{i:04}");
                let response = sidecar.chat_as(&tenant, &chat_body("cheap", "hi")).await;
                response.status().as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let listed = sidecar.chat_as("acme", &chat_body("cheap", "hi")).await;
    assert_eq!(listed.status(), 200);

    let metrics = sidecar.metrics().await;
    let tenants = tenant_labels(&metrics);
    // 10 random names of their own, the other 990 as `other`, the listed tenant, and `default`
    // (whose budget gauges exist from the start).
    let (random, named): (BTreeSet<_>, BTreeSet<_>) =
        tenants.iter().partition(|t| t.starts_with("random-"));
    assert_eq!(random.len(), 10, "{tenants:?}");
    let named: BTreeSet<&str> = named.into_iter().map(String::as_str).collect();
    assert_eq!(named, BTreeSet::from(["acme", "default", "other"]));
    assert!(
        metrics.contains("\nfrugal_tenant_overflow_total 990\n"),
        "{metrics}"
    );
    let series = metrics.lines().filter(|l| l.contains("tenant=\"")).count();
    assert!(series < 12 * 20, "{series} tenant series");

    let report = sidecar.savings("").await;
    let rows = report["tenants"].as_object().unwrap();
    assert_eq!(rows.len(), 12, "10 random, other, acme: {rows:?}");
    assert_eq!(report["tenants"]["other"]["requests"], 990);
    assert_eq!(report["total"]["requests"], 1001);
    assert_eq!(mock.total_calls(), 1001);
}

/// A request whose cost is fully determined: the mock cuts its answer at `max_tokens`.
fn priced_body(max_tokens: u64) -> Value {
    json!({
        "model": "strong",
        "max_tokens": max_tokens,
        "messages": [{ "role": "user", "content": "Write a long essay about budgets and why they matter." }]
    })
}

#[tokio::test]
async fn tenants_past_the_bound_share_one_default_budget_and_cannot_dodge_it() {
    let mock = MockUpstream::start().await;
    let probe = Sidecar::in_front_of(&mock).await;
    let one: f64 = header(&probe.chat(&priced_body(20)).await, "x-frugal-cost-usd")
        .parse()
        .unwrap();
    // Room for one request per budget entry, not two.
    let cap = one * 1.5;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        &format!(
            "limits: {{ max_tenants: 1 }}\n\
             tenants:\n  default:\n    budget: {{ window: day, hard_cap_usd: {cap} }}\n"
        ),
    ))
    .await;
    let status = |name: &'static str| {
        let sidecar = &sidecar;
        async move { sidecar.chat_as(name, &priced_body(20)).await.status() }
    };
    assert_eq!(status("first").await, 200, "its own name and its own cap");
    assert_eq!(status("second").await, 200, "`other`'s cap, unspent");
    // A fresh name does not bring a fresh cap: `other`'s is spent.
    let refused = sidecar.chat_as("third", &priced_body(20)).await;
    let body = expect_error(refused, 429).await;
    assert_eq!(body["error"]["code"], "budget_exceeded");
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_budget_rejections_total{tenant=\"other\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nfrugal_tenant_overflow_total 2\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn tenants_counted_as_other_keep_their_own_cache_entries() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { max_tenants: 0 }\ncache: { mode: on, max_temperature: 0.5, semantic: false }\n",
    ))
    .await;
    let question = json!({ "model": "cheap", "temperature": 0,
        "messages": [{ "role": "user", "content": "What is the capital of France?" }] });
    let cache = |tenant: &'static str| {
        let (sidecar, question) = (&sidecar, &question);
        async move { header(&sidecar.chat_as(tenant, question).await, "x-frugal-cache") }
    };
    assert_eq!(cache("tenant-x").await, "miss");
    assert_eq!(
        cache("tenant-y").await,
        "miss",
        "both count as `other`, but the cache is scoped by the name sent"
    );
    assert_eq!(cache("tenant-x").await, "exact");
    assert_eq!(mock.total_calls(), 2);
    let report = sidecar.savings("").await;
    assert_eq!(report["tenants"]["other"]["requests"], 3);
}

#[test]
fn a_tenant_named_other_is_a_policy_error() {
    let text = policy_for(
        "http://127.0.0.1:1/v1",
        "tenants:\n  other:\n    max_tier: cheap\n",
    );
    let errors = frugal::policy::parse(&text, "p.yaml").unwrap_err().errors;
    assert_eq!(errors[0].path, "tenants.other");
}
