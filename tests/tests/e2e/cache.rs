//! The exact cache tier through the sidecar: repeats are served from the cache (JSON and SSE),
//! never across tenants, never errors or cut-off answers, and the saving is accounted.

use frugal_tests::{expect_error, policy_for, sse_payloads, MockUpstream, Sidecar};
use serde_json::{json, Value};

fn cached_policy(base_url: &str, extra: &str) -> String {
    policy_for(
        base_url,
        &format!("cache: {{ mode: on, ttl: 10m, max_temperature: 0.5 }}\n{extra}"),
    )
}

fn question(stream: bool) -> Value {
    json!({ "model": "strong", "temperature": 0, "stream": stream,
            "messages": [{ "role": "user", "content": "What is the capital of France?" }] })
}

async fn ask(sidecar: &Sidecar, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = sidecar
        .client
        .post(sidecar.url("/v1/chat/completions"))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn cache_header(response: &reqwest::Response) -> String {
    response.headers()["x-frugal-cache"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_exact_repeat_is_served_from_the_cache_and_saves_the_calls_cost() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&cached_policy(&mock.base_url(), "")).await;
    let first = ask(&sidecar, &question(false), &[]).await;
    assert_eq!(cache_header(&first), "miss");
    let first_cost: f64 = first.headers()["x-frugal-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let first: Value = first.json().await.unwrap();

    let second = ask(&sidecar, &question(false), &[]).await;
    assert_eq!(cache_header(&second), "exact");
    assert_eq!(second.headers()["x-frugal-cost-usd"], "0");
    let saved: f64 = second.headers()["x-frugal-saved-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (saved - first_cost).abs() < 1e-12,
        "a hit saves what the original call cost"
    );
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["choices"], first["choices"]);
    assert_eq!(second["usage"], first["usage"]);
    assert_ne!(second["id"], first["id"], "ids are refreshed");
    assert_eq!(mock.total_calls(), 1);

    let report: Value = sidecar.savings("").await;
    assert_eq!(report["total"]["cache_hits"], 1);
    assert!((report["total"]["by_lever"]["cache"].as_f64().unwrap() - first_cost).abs() < 1e-12);
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_cache_lookups_total{tier=\"exact\",result=\"hit\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("frugal_cache_entries 1"), "{metrics}");
}

#[tokio::test]
async fn a_hit_is_replayed_as_a_stream_and_streams_are_stored() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&cached_policy(&mock.base_url(), "")).await;
    let live = ask(&sidecar, &question(true), &[])
        .await
        .text()
        .await
        .unwrap();
    let replay = ask(&sidecar, &question(true), &[]).await;
    assert_eq!(cache_header(&replay), "exact");
    let replay = replay.text().await.unwrap();
    let content = |text: &str| -> String {
        sse_payloads(text)
            .iter()
            .filter(|p| *p != "[DONE]")
            .filter_map(|p| serde_json::from_str::<Value>(p).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    };
    assert_eq!(content(&replay), content(&live));
    assert!(replay.ends_with("data: [DONE]\n\n"));
    // The stored stream also answers a JSON request.
    let json_hit = ask(&sidecar, &question(false), &[]).await;
    assert_eq!(cache_header(&json_hit), "exact");
    assert_eq!(mock.total_calls(), 1);
}

#[tokio::test]
async fn never_a_hit_across_tenants_or_for_other_questions() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&cached_policy(&mock.base_url(), "")).await;
    ask(&sidecar, &question(false), &[("x-frugal-tenant", "a")]).await;
    assert_eq!(
        cache_header(&ask(&sidecar, &question(false), &[("x-frugal-tenant", "b")]).await),
        "miss"
    );
    let mut other = question(false);
    other["messages"][0]["content"] = json!("What is the capital of Spain?");
    assert_eq!(
        cache_header(&ask(&sidecar, &other, &[("x-frugal-tenant", "a")]).await),
        "miss"
    );
    assert_eq!(mock.total_calls(), 3);
}

#[tokio::test]
async fn errors_and_cut_off_answers_are_never_stored() {
    let mock = MockUpstream::start().await;
    mock.always().fail_times(3, 500);
    let sidecar = Sidecar::start(&cached_policy(&mock.base_url(), "")).await;
    assert_eq!(ask(&sidecar, &question(false), &[]).await.status(), 502);
    assert_eq!(
        cache_header(&ask(&sidecar, &question(false), &[]).await),
        "miss",
        "the error was not stored"
    );
    let mut short = question(false);
    short["max_tokens"] = json!(3); // the mock cuts the answer: finish_reason length
    ask(&sidecar, &short, &[]).await;
    assert_eq!(cache_header(&ask(&sidecar, &short, &[]).await), "miss");
    assert_eq!(mock.total_calls(), 6, "3 failed attempts, then 3 answers");
}

#[tokio::test]
async fn client_controls_and_hot_sampling() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&cached_policy(&mock.base_url(), "")).await;
    ask(&sidecar, &question(false), &[]).await;
    assert_eq!(
        cache_header(&ask(&sidecar, &question(false), &[("x-frugal-cache", "bypass")]).await),
        "bypass"
    );
    assert_eq!(
        cache_header(&ask(&sidecar, &question(false), &[("x-frugal-cache", "refresh")]).await),
        "miss"
    );
    assert_eq!(mock.total_calls(), 3);
    let mut hot = question(false);
    hot["temperature"] = json!(0.9);
    ask(&sidecar, &hot, &[]).await;
    assert_eq!(cache_header(&ask(&sidecar, &hot, &[]).await), "bypass");
    expect_error(
        ask(
            &sidecar,
            &question(false),
            &[("x-frugal-cache", "sometimes")],
        )
        .await,
        400,
    )
    .await;
}

#[tokio::test]
async fn shadow_mode_counts_hits_but_always_calls_upstream() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "cache: { mode: shadow, max_temperature: 0.5 }\n",
    ))
    .await;
    ask(&sidecar, &question(false), &[]).await;
    let second = ask(&sidecar, &question(false), &[]).await;
    assert_eq!(cache_header(&second), "shadow_hit");
    assert_eq!(mock.total_calls(), 2);
}

#[tokio::test]
async fn a_hit_is_served_even_when_the_budget_is_spent() {
    let mock = MockUpstream::start().await;
    let budget = "tenants:\n  default:\n    budget: { window: day, hard_cap_usd: 0.0005, assumed_output_tokens: 40 }\n";
    let sidecar = Sidecar::start(&cached_policy(&mock.base_url(), budget)).await;
    assert_eq!(ask(&sidecar, &question(false), &[]).await.status(), 200);
    let mut other = question(false);
    other["messages"][0]["content"] = json!("And the capital of Italy?");
    let _ = ask(&sidecar, &other, &[]).await;
    assert_eq!(
        ask(&sidecar, &other, &[("x-frugal-cache", "bypass")])
            .await
            .status(),
        429,
        "the budget is spent"
    );
    let hit = ask(&sidecar, &question(false), &[]).await;
    assert_eq!(
        (hit.status().as_u16(), cache_header(&hit)),
        (200, "exact".to_string())
    );
}
