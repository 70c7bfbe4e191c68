//! Cost accounting through the sidecar: headers, the savings endpoint, tenants, streams.

use frugal_tests::{
    chat_body, check_with_promtool, expect_error, frugal_binary, policy_for, MockUpstream, Sidecar,
};
use serde_json::{json, Value};

fn dollars(response: &reqwest::Response, header: &str) -> f64 {
    response.headers()[header]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn cost_headers_price_the_upstream_usage() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar
        .chat(&chat_body("strong", "What does frugal cost?"))
        .await;
    assert_eq!(response.status(), 200);
    let cost = dollars(&response, "x-frugal-cost-usd");
    let baseline = dollars(&response, "x-frugal-baseline-usd");
    let saved = dollars(&response, "x-frugal-saved-usd");
    let body: Value = response.json().await.unwrap();
    let (input, output) = (
        body["usage"]["prompt_tokens"].as_f64().unwrap(),
        body["usage"]["completion_tokens"].as_f64().unwrap(),
    );
    let expected = (input * 2.5 + output * 10.0) / 1e6; // strong: $2.50 / $10 per 1M
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    assert_eq!(
        baseline, cost,
        "the baseline is the requested model by default"
    );
    assert_eq!(saved, 0.0);
}

#[tokio::test]
async fn savings_against_a_baseline_model_add_up_per_tenant() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(&mock.base_url(), "baseline_model: strong\n")).await;
    for (tenant, model) in [
        ("team-a", "cheap"),
        ("team-a", "cheap"),
        ("team-b", "strong"),
    ] {
        let response = sidecar
            .client
            .post(sidecar.url("/v1/chat/completions"))
            .header("x-frugal-tenant", tenant)
            .json(&chat_body(model, "Summarise the quarterly report."))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let saved = dollars(&response, "x-frugal-saved-usd");
        assert_eq!(
            saved > 0.0,
            model == "cheap",
            "calling the cheap model saves against the strong baseline"
        );
    }
    let report = sidecar.savings("").await;
    assert_eq!(report["total"]["requests"], 3);
    assert_eq!(report["tenants"]["team-a"]["requests"], 2);
    assert_eq!(report["tenants"]["team-b"]["saved_usd"], 0.0);
    for totals in [&report["total"], &report["tenants"]["team-a"]] {
        let levers = &totals["by_lever"];
        let sum = levers["trim"].as_f64().unwrap()
            + levers["cache"].as_f64().unwrap()
            + levers["route"].as_f64().unwrap();
        let saved = totals["saved_usd"].as_f64().unwrap();
        let expected =
            totals["baseline_usd"].as_f64().unwrap() - totals["actual_usd"].as_f64().unwrap();
        assert!(
            (sum - saved).abs() < 1e-12 && (saved - expected).abs() < 1e-12,
            "{totals}"
        );
    }
    let windowed = sidecar.savings("?window=15m").await;
    assert_eq!(windowed["total"]["requests"], 3);
    assert_eq!(windowed["window_seconds"], 900);
    let bad = sidecar
        .client
        .get(sidecar.url("/v1/frugal/savings?window=forever"))
        .send()
        .await
        .unwrap();
    expect_error(bad, 400).await;

    let metrics = sidecar.metrics().await;
    for name in [
        "frugal_cost_usd_total{",
        "frugal_baseline_cost_usd_total{",
        "frugal_saved_usd_total{",
        "frugal_overspent_usd_total{",
        "frugal_tokens_total{",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
    assert!(metrics.contains("lever=\"route\""));
}

/// The sum over a dollar counter's series of one tenant in the Prometheus text.
fn tenant_total(metrics: &str, metric: &str, tenant: &str) -> f64 {
    let label = format!("tenant=\"{tenant}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&label))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_lose_no_dollar_in_the_counters() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(&mock.base_url(), "baseline_model: strong\n")).await;
    let tenants = ["t-7f3a", "ops_2", "team.b", "x"];
    let requests = (0..120).map(|i| {
        let tenant = tenants[i % tenants.len()];
        let model = if i % 3 == 0 { "strong" } else { "cheap" };
        let stream = i % 5 == 0;
        let mut body = chat_body(model, &format!("Question number {i}: what changed?"));
        body["stream"] = json!(stream);
        let sidecar = &sidecar;
        async move {
            let response = sidecar.chat_as(tenant, &body).await;
            assert_eq!(response.status(), 200);
            // Streams settle when read to their end.
            response.bytes().await.unwrap();
        }
    });
    futures::future::join_all(requests).await;

    let report = sidecar.savings("").await;
    assert_eq!(report["total"]["requests"], 120);
    let metrics = sidecar.metrics().await;
    for tenant in tenants {
        let ledger = &report["tenants"][tenant];
        assert_eq!(ledger["requests"], 30, "{tenant}");
        for (metric, field) in [
            ("frugal_cost_usd_total", "actual_usd"),
            ("frugal_baseline_cost_usd_total", "baseline_usd"),
            ("frugal_saved_usd_total", "saved_usd"),
        ] {
            let counted = tenant_total(&metrics, metric, tenant);
            let expected = ledger[field].as_f64().unwrap();
            assert!(expected > 0.0, "{tenant} {field}: {ledger}");
            assert!(
                (counted - expected).abs() < 1e-9,
                "{metric} for {tenant}: {counted} against the ledger's {expected}"
            );
        }
    }
    check_with_promtool(&metrics);
}

#[tokio::test]
async fn streams_are_priced_from_usage_the_client_did_not_ask_for() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body = json!({ "model": "cheap", "stream": true, "messages": [{ "role": "user", "content": "Stream please" }] });
    let text = sidecar.chat(&body).await.text().await.unwrap();
    assert!(
        !text.contains("\"usage\""),
        "usage hidden from a client that did not ask: {text}"
    );
    assert!(text.contains(": frugal cost_usd="), "{text}");
    let upstream_request = mock.requests().pop().unwrap();
    assert_eq!(upstream_request["stream_options"]["include_usage"], true);
    let report = sidecar.savings("").await;
    assert_eq!(report["total"]["requests"], 1);
    assert!(report["total"]["actual_usd"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn an_invalid_tenant_header_is_400() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar
        .client
        .post(sidecar.url("/v1/chat/completions"))
        .header("x-frugal-tenant", "no spaces allowed")
        .json(&chat_body("cheap", "hi"))
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 400).await;
    assert_eq!(body["error"]["param"], "x-frugal-tenant");
    assert_eq!(mock.total_calls(), 0);
}

#[tokio::test]
async fn report_command_prints_the_table() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(&mock.base_url(), "baseline_model: strong\n")).await;
    sidecar.chat(&chat_body("cheap", "hello")).await;
    let url = sidecar.url("");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(frugal_binary())
            .args(["report", "--url", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("TOTAL") && stdout.contains("route") && stdout.contains("baseline $"),
        "{stdout}"
    );
}
