//! Agent runs: per-run caps stop runaway loops, repeated calls are caught, and reported outcomes
//! turn spend into cost per resolved run.

use frugal_tests::{expect_error, policy_for, MockUpstream, Sidecar};
use serde_json::{json, Value};

fn body() -> Value {
    json!({ "model": "strong", "max_tokens": 20, "messages": [{ "role": "user", "content": "Check the build status." }] })
}

async fn send_in_run(sidecar: &Sidecar, header: (&str, &str), body: &Value) -> reqwest::Response {
    sidecar
        .client
        .post(sidecar.url("/v1/chat/completions"))
        .header(header.0, header.1)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn outcome(sidecar: &Sidecar, run_id: &str, resolved: bool) -> reqwest::Response {
    sidecar
        .client
        .post(sidecar.url("/v1/frugal/outcome"))
        .json(&json!({ "run_id": run_id, "resolved": resolved }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn run_cost_cap_stops_a_runaway_loop() {
    let mock = MockUpstream::start().await;
    // Each request costs about $0.0004 (strong, 20 output tokens): the cap allows 5.
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "runs: { max_cost_usd: 0.0021 }\n",
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            send_in_run(&sidecar, ("x-frugal-run-id", "agent-run-1"), &body())
                .await
                .status()
                .as_u16(),
        );
    }
    let ok = statuses.iter().take_while(|s| **s == 200).count();
    assert!((3..20).contains(&ok), "{statuses:?}");
    assert!(statuses[ok..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(mock.total_calls(), ok as u64, "stopped before the upstream");
    let response = send_in_run(&sidecar, ("x-frugal-run-id", "agent-run-1"), &body()).await;
    assert_eq!(
        expect_error(response, 429).await["error"]["code"],
        "run_budget_exceeded"
    );
    // Another run (and requests without a run) are not affected.
    assert_eq!(
        send_in_run(&sidecar, ("x-frugal-run-id", "agent-run-2"), &body())
            .await
            .status(),
        200
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_run_cap_exceeded_total{tenant=\"default\",kind=\"cost\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn identical_requests_beyond_the_limit_are_a_loop() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "runs: { loop_max_repeats: 3 }\n",
    ))
    .await;
    let traceparent = (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    for _ in 0..3 {
        assert_eq!(
            send_in_run(&sidecar, traceparent, &body()).await.status(),
            200
        );
    }
    let blocked = send_in_run(&sidecar, traceparent, &body()).await;
    let error = expect_error(blocked, 429).await;
    assert_eq!(error["error"]["code"], "loop_detected");
    assert_eq!(mock.total_calls(), 3);
}

#[tokio::test]
async fn repeated_tool_calls_can_be_flagged_instead_of_blocked() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "runs: { loop_max_repeats: 2, loop_action: flag }\n",
    ))
    .await;
    let call = json!({ "role": "assistant", "content": null, "tool_calls": [{ "id": "c", "type": "function",
        "function": { "name": "run_tests", "arguments": "{\"suite\":\"all\"}" } }] });
    let result = json!({ "role": "tool", "tool_call_id": "c", "content": "1 failed" });
    let mut messages = vec![json!({ "role": "user", "content": "Fix the failing test." })];
    for _ in 0..3 {
        messages.push(call.clone());
        messages.push(result.clone());
    }
    let body = json!({ "model": "cheap", "messages": messages });
    let response = send_in_run(&sidecar, ("x-frugal-run-id", "fixer"), &body).await;
    assert_eq!(response.status(), 200, "flagged, not blocked");
    let flag = response.headers()["x-frugal-loop-detected"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(flag.contains("run_tests") && flag.contains('3'), "{flag}");
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_loops_detected_total{tenant=\"default\",action=\"flag\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn outcomes_give_cost_per_resolved_run() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    for run in ["good", "bad"] {
        for _ in 0..2 {
            assert_eq!(
                send_in_run(&sidecar, ("x-frugal-run-id", run), &body())
                    .await
                    .status(),
                200
            );
        }
    }
    let good: Value = outcome(&sidecar, "good", true).await.json().await.unwrap();
    assert_eq!(good["requests"], 2);
    assert_eq!(outcome(&sidecar, "bad", false).await.status(), 200);
    expect_error(outcome(&sidecar, "good", false).await, 409).await;
    expect_error(outcome(&sidecar, "never-seen", true).await, 404).await;
    let bad_body = sidecar
        .client
        .post(sidecar.url("/v1/frugal/outcome"))
        .body("{\"run\":1}")
        .send()
        .await
        .unwrap();
    expect_error(bad_body, 400).await;

    let report: Value = sidecar.savings("").await;
    let runs = &report["total"]["runs"];
    assert_eq!(
        (runs["resolved"].as_u64(), runs["unresolved"].as_u64()),
        (Some(1), Some(1)),
        "{runs}"
    );
    let spent = report["total"]["actual_usd"].as_f64().unwrap();
    let per_resolved = runs["cost_per_resolved_run_usd"].as_f64().unwrap();
    assert!(
        (per_resolved - spent).abs() < 1e-12,
        "all spend of reported runs over one success: {runs}"
    );
    let share = runs["unresolved_spend_share"].as_f64().unwrap();
    assert!((share - 0.5).abs() < 1e-9, "{runs}");
}
