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

/// A request whose reserved worst case (prompt + `max_tokens`) equals its actual cost: the
/// mock's answer is cut at `max_tokens`.
fn priced_body() -> Value {
    json!({
        "model": "strong",
        "max_tokens": 20,
        "temperature": 0,
        "messages": [{ "role": "user", "content": "Write a long essay about budgets and why they matter." }]
    })
}

async fn cost_of_one(sidecar: &Sidecar) -> f64 {
    let response = send_in_run(sidecar, ("x-frugal-run-id", "probe"), &priced_body()).await;
    assert_eq!(response.status(), 200);
    response.headers()["x-frugal-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn sixty_four_concurrent_requests_of_one_run_do_not_overspend() {
    let mock = MockUpstream::start_with_latency(std::time::Duration::from_millis(50)).await;
    let probe = Sidecar::in_front_of(&mock).await;
    let one = cost_of_one(&probe).await;
    let cap = one * 10.5; // room for 10 requests
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        &format!("runs: {{ max_cost_usd: {cap} }}\n"),
    ))
    .await;
    let calls_before = mock.total_calls();
    let requests = (0..64).map(|_| {
        let (client, url) = (sidecar.client.clone(), sidecar.url("/v1/chat/completions"));
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("x-frugal-run-id", "burst")
                .header("x-frugal-cache", "bypass")
                .json(&priced_body())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let code = if status == 200 {
                String::new()
            } else {
                response.json::<Value>().await.unwrap()["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            (status, code)
        })
    });
    let outcomes: Vec<(u16, String)> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ok = outcomes.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 10, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|(s, code)| *s == 200 || (*s == 429 && code == "run_budget_exceeded")),
        "{outcomes:?}"
    );
    assert_eq!(mock.total_calls() - calls_before, 10);
    let summary: Value = outcome(&sidecar, "burst", true).await.json().await.unwrap();
    let spent = summary["actual"].as_f64().unwrap();
    assert!(spent <= cap, "run spent {spent} over its cap {cap}");
    assert_eq!(summary["requests"], 10);
}

#[tokio::test]
async fn a_cache_hit_is_served_when_the_run_cap_is_spent() {
    let mock = MockUpstream::start().await;
    // A short, complete answer (cacheable) to a long prompt: the input dominates the cost, so
    // the reserved worst case is close to the actual cost.
    mock.always().with(frugal::mock::Behaviour {
        reply: Some("Budgets matter.".into()),
        ..Default::default()
    });
    let long = "Budgets keep agents honest about what they spend. ".repeat(40);
    let body = |question: &str| {
        json!({
            "model": "strong",
            "max_tokens": 20,
            "temperature": 0,
            "messages": [{ "role": "user", "content": format!("{long}{question}") }]
        })
    };
    let probe = Sidecar::in_front_of(&mock).await;
    let one: f64 = frugal_tests::header(&probe.chat(&body("Why?")).await, "x-frugal-cost-usd")
        .parse()
        .unwrap();
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        &format!(
            "runs: {{ max_cost_usd: {} }}\ncache: {{ mode: on, semantic: false }}\n",
            one * 1.8
        ),
    ))
    .await;
    let calls_before = mock.total_calls();
    let run = ("x-frugal-run-id", "cached-run");
    let first = send_in_run(&sidecar, run, &body("Why?")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(frugal_tests::header(&first, "x-frugal-cache"), "miss");
    // The run has spent more than half its cap: another paid call could pass it...
    let refused = send_in_run(&sidecar, run, &body("How?")).await;
    assert_eq!(
        expect_error(refused, 429).await["error"]["code"],
        "run_budget_exceeded"
    );
    // ...but the cache answers the repeat for free, so it is served.
    let repeat = send_in_run(&sidecar, run, &body("Why?")).await;
    assert_eq!(repeat.status(), 200);
    assert_eq!(frugal_tests::header(&repeat, "x-frugal-cache"), "exact");
    assert_eq!(mock.total_calls() - calls_before, 1);
    let summary: Value = outcome(&sidecar, "cached-run", true)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        summary["requests"], 2,
        "the hit counts in the run, at no cost"
    );
}
