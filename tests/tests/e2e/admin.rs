//! The admin listener (`admin_listen`): metrics, health, readiness, reload and savings answer
//! there and nowhere else; the API answers only on its own listener; both drain together.

use std::time::Duration;

use frugal_tests::{chat_body, policy_for, MockUpstream, Sidecar};
use serde_json::{json, Value};

const ADMIN_ROUTES: [(&str, &str); 5] = [
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/frugal/savings"),
    ("POST", "/v1/frugal/reload"),
];

async fn call(sidecar: &Sidecar, method: &str, url: String) -> (u16, String) {
    let request = match method {
        "POST" => sidecar.client.post(url),
        _ => sidecar.client.get(url),
    };
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn unknown_route(status: u16, body: &str) -> bool {
    status == 404 && body.contains("Unknown route")
}

#[tokio::test]
async fn admin_routes_answer_on_the_admin_port_and_404_on_the_api_port() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start_with_admin(&policy_for(&mock.base_url(), "")).await;
    assert_ne!(sidecar.server.admin_addr, None);
    for (method, path) in ADMIN_ROUTES {
        let (status, body) = call(&sidecar, method, sidecar.url(path)).await;
        assert!(
            unknown_route(status, &body),
            "{method} {path} on the API: {status} {body}"
        );
        let (status, body) = call(&sidecar, method, sidecar.admin_url(path)).await;
        // This sidecar has no policy file, so its reload is a 404 of its own, not a missing route.
        assert!(
            !unknown_route(status, &body),
            "{method} {path} on admin: {status} {body}"
        );
        if path != "/v1/frugal/reload" {
            assert_eq!(status, 200, "{method} {path} on admin: {body}");
        }
    }
}

#[tokio::test]
async fn chat_answers_only_on_the_api_port() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start_with_admin(&policy_for(&mock.base_url(), "")).await;
    let on_admin = sidecar
        .client
        .post(sidecar.admin_url("/v1/chat/completions"))
        .json(&chat_body("cheap", "hi"))
        .send()
        .await
        .unwrap();
    let status = on_admin.status().as_u16();
    assert!(unknown_route(status, &on_admin.text().await.unwrap()));
    assert_eq!(mock.total_calls(), 0, "nothing reached the upstream");
    for path in ["/v1/models", "/v1/frugal/outcome"] {
        let (status, body) = call(&sidecar, "GET", sidecar.admin_url(path)).await;
        assert!(
            unknown_route(status, &body),
            "{path} on admin: {status} {body}"
        );
    }

    assert_eq!(sidecar.chat(&chat_body("cheap", "hi")).await.status(), 200);
    let (status, _) = call(&sidecar, "GET", sidecar.url("/v1/models")).await;
    assert_eq!(status, 200);
    // The agent reports run outcomes on the API listener.
    let outcome = sidecar
        .client
        .post(sidecar.url("/v1/frugal/outcome"))
        .json(&json!({ "run_id": "never-seen", "resolved": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(outcome.status(), 404);
    let body: Value = outcome.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never-seen"),
        "{body}"
    );
    // What the API served shows on the admin listener.
    assert_eq!(sidecar.savings("").await["total"]["requests"], 1);
}

#[tokio::test]
async fn readiness_turns_503_at_once_while_the_api_drains_then_both_stop() {
    let mock = MockUpstream::start().await;
    mock.always().delay(Duration::from_millis(700));
    let sidecar = Sidecar::start_with_admin(&policy_for(&mock.base_url(), "")).await;
    let (url, client) = (sidecar.url("/v1/chat/completions"), sidecar.client.clone());
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&chat_body("cheap", "slow"))
            .send()
            .await
    });
    while mock.total_calls() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (api, ready, metrics) = (
        sidecar.url("/v1/models"),
        sidecar.admin_url("/readyz"),
        sidecar.admin_url("/metrics"),
    );
    let shutdown = tokio::spawn(sidecar.server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = reqwest::Client::new();
    assert!(
        fresh.get(&api).send().await.is_err(),
        "API refuses new connections"
    );
    // While the request is in flight, the admin listener says the pod is draining, and can
    // still be scraped.
    let readiness = fresh.get(&ready).send().await.unwrap();
    assert_eq!(readiness.status(), 503);
    let body: serde_json::Value = readiness.json().await.unwrap();
    assert_eq!(body["status"], "draining");
    assert_eq!(fresh.get(&metrics).send().await.unwrap().status(), 200);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("chat.completion"));
    shutdown.await.unwrap().unwrap();
    assert!(
        fresh.get(&ready).send().await.is_err(),
        "the admin listener stops once the API has drained"
    );
}

#[test]
fn admin_listen_must_be_an_address_of_its_own() {
    let bad = policy_for(
        "http://127.0.0.1:1/v1",
        "listen: 127.0.0.1:8080\nadmin_listen: 127.0.0.1:8080\n",
    );
    let errors = frugal::policy::parse(&bad, "p.yaml").unwrap_err().errors;
    assert_eq!(errors[0].path, "admin_listen");
    let bad = policy_for("http://127.0.0.1:1/v1", "admin_listen: metrics-port\n");
    let errors = frugal::policy::parse(&bad, "p.yaml").unwrap_err().errors;
    assert_eq!(errors[0].path, "admin_listen");
    assert_eq!(errors[0].position.map(|p| p.line), Some(17), "{errors:?}");
}
