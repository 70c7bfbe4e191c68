//! Tenant identity and per-request caps: a tenant with a key cannot be claimed without it, and
//! oversized or overpriced requests are refused before any upstream call.

use frugal_tests::{chat_body, expect_error, policy_for, MockUpstream, Sidecar};
use serde_json::json;

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
