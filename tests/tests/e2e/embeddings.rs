//! `POST /v1/embeddings` through the sidecar: each input is looked up on its own, only the
//! inputs the cache lacks go upstream (in one call, in their order), the answer keeps the
//! client's order, nothing is shared across tenants, failures are never stored, and the cache's
//! saving is accounted like chat's.

use base64::Engine as _;
use frugal::mock::embed::{encode, vector, DEFAULT_DIMENSIONS};
use frugal_tests::{expect_error, header, MockUpstream, Sidecar};
use serde_json::{json, Value};

const UPSTREAM: &str = "text-embedding-3-small";

/// A policy with an embedding model (`emb`, $0.02 per million input tokens) on the mock, and
/// the cache on unless `extra` says otherwise.
fn embedding_policy(base_url: &str, extra: &str) -> String {
    format!(
        "\
providers:
  mock:
    base_url: {base_url}
    timeouts: {{ connect: 1s, request: 2s, first_byte: 2s, idle: 2s }}
models:
  cheap:
    provider: mock
    upstream: gpt-4o-mini
    price: {{ input_per_mtok: 0.15, output_per_mtok: 0.6 }}
  emb:
    provider: mock
    upstream: {UPSTREAM}
    price: {{ input_per_mtok: 0.02, output_per_mtok: 0 }}
default_model: cheap
shutdown_grace: 5s
retries: {{ max_attempts: 2, backoff: 10ms, max_backoff: 50ms }}
{extra}"
    )
}

async fn start(extra: &str) -> (MockUpstream, Sidecar) {
    let mock = MockUpstream::start().await;
    let policy = embedding_policy(&mock.base_url(), extra);
    let sidecar = Sidecar::start(&policy).await;
    (mock, sidecar)
}

const CACHE_ON: &str = "cache: { mode: on }";

fn inputs(texts: &[&str]) -> Value {
    json!({ "model": "emb", "input": texts })
}

/// The float embedding the mock gives `text`.
fn expected(text: &str) -> Value {
    encode(
        &vector(UPSTREAM, &json!(text), DEFAULT_DIMENSIONS),
        frugal::embeddings::request::Encoding::Float,
    )
}

fn usd(response: &reqwest::Response, name: &str) -> f64 {
    header(response, name).parse().unwrap()
}

#[tokio::test]
async fn only_uncached_inputs_go_upstream_and_the_answer_keeps_the_clients_order() {
    let (mock, sidecar) = start(CACHE_ON).await;
    let first = sidecar.embed(&inputs(&["alpha", "beta"]), &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-frugal-cache"), "miss");
    assert_eq!(header(&first, "x-frugal-cached-inputs"), "0/2");
    assert_eq!(header(&first, "x-frugal-model"), "emb");
    assert_eq!(
        (mock.calls(UPSTREAM), mock.embedding_inputs(UPSTREAM)),
        (1, 2)
    );

    let second = sidecar
        .embed(&inputs(&["gamma", "alpha", "delta", "beta"]), &[])
        .await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-frugal-cache"), "partial");
    assert_eq!(header(&second, "x-frugal-cached-inputs"), "2/4");
    assert_eq!(
        (mock.calls(UPSTREAM), mock.embedding_inputs(UPSTREAM)),
        (2, 4),
        "one more call, with only the two new inputs"
    );
    let sent = mock.requests().last().cloned().unwrap();
    assert_eq!(
        sent["input"],
        json!(["gamma", "delta"]),
        "misses in their order"
    );
    assert_eq!(sent["model"], UPSTREAM);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], UPSTREAM);
    let data = body["data"].as_array().unwrap();
    for (i, text) in ["gamma", "alpha", "delta", "beta"].iter().enumerate() {
        assert_eq!(data[i]["index"], i);
        assert_eq!(data[i]["object"], "embedding");
        assert_eq!(data[i]["embedding"], expected(text), "input {i} ({text})");
    }
    let tokens = body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        tokens >= 4,
        "usage covers every input, cached ones included"
    );
    assert_eq!(body["usage"]["total_tokens"], tokens);
}

#[tokio::test]
async fn all_cached_inputs_make_no_upstream_call_and_cost_nothing() {
    let (mock, sidecar) = start(CACHE_ON).await;
    let first = sidecar.embed(&inputs(&["one", "two", "three"]), &[]).await;
    let paid = usd(&first, "x-frugal-cost-usd");
    assert!(paid > 0.0);
    let first: Value = first.json().await.unwrap();

    let again = sidecar.embed(&inputs(&["three", "one"]), &[]).await;
    assert_eq!(header(&again, "x-frugal-cache"), "hit");
    assert_eq!(header(&again, "x-frugal-cached-inputs"), "2/2");
    assert_eq!(header(&again, "x-frugal-cost-usd"), "0");
    assert!(usd(&again, "x-frugal-saved-usd") > 0.0);
    assert_eq!(mock.calls(UPSTREAM), 1, "no upstream call at all");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["data"][0]["embedding"], first["data"][2]["embedding"]);
    assert_eq!(again["data"][1]["embedding"], first["data"][0]["embedding"]);
    assert_eq!(again["data"][1]["index"], 1);

    let whole = sidecar.embed(&inputs(&["one", "two", "three"]), &[]).await;
    assert!(
        (usd(&whole, "x-frugal-saved-usd") - paid).abs() < 1e-12,
        "a full repeat saves what the first call paid"
    );
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(
        whole["usage"], first["usage"],
        "the same input is billed the same tokens"
    );
}

#[tokio::test]
async fn tenants_never_share_embeddings() {
    let (mock, sidecar) = start(CACHE_ON).await;
    let body = json!({ "model": "emb", "input": "a secret query" });
    let acme = sidecar.embed(&body, &[("x-frugal-tenant", "acme")]).await;
    assert_eq!(header(&acme, "x-frugal-cache"), "miss");
    let globex = sidecar.embed(&body, &[("x-frugal-tenant", "globex")]).await;
    assert_eq!(header(&globex, "x-frugal-cache"), "miss");
    let acme = sidecar.embed(&body, &[("x-frugal-tenant", "acme")]).await;
    assert_eq!(header(&acme, "x-frugal-cache"), "hit");
    assert_eq!(mock.calls(UPSTREAM), 2);
}

#[tokio::test]
async fn encodings_and_dimensions_are_cached_apart_and_base64_is_little_endian_f32() {
    let (mock, sidecar) = start(CACHE_ON).await;
    let base64_body = json!({ "model": "emb", "input": ["x"], "encoding_format": "base64" });
    let first = sidecar.embed(&base64_body, &[]).await;
    assert_eq!(header(&first, "x-frugal-cache"), "miss");
    let first: Value = first.json().await.unwrap();
    let text = first["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(floats, vector(UPSTREAM, &json!("x"), DEFAULT_DIMENSIONS));
    let again = sidecar.embed(&base64_body, &[]).await;
    assert_eq!(header(&again, "x-frugal-cache"), "hit");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["data"][0]["embedding"], first["data"][0]["embedding"]);

    let float = sidecar.embed(&inputs(&["x"]), &[]).await;
    assert_eq!(
        header(&float, "x-frugal-cache"),
        "miss",
        "float is stored apart from base64"
    );
    let explicit = json!({ "model": "emb", "input": ["x"], "encoding_format": "float" });
    let explicit = sidecar.embed(&explicit, &[]).await;
    assert_eq!(
        header(&explicit, "x-frugal-cache"),
        "hit",
        "absent means float"
    );
    let short = json!({ "model": "emb", "input": ["x"], "dimensions": 8, "user": "u1" });
    let short = sidecar.embed(&short, &[]).await;
    assert_eq!(header(&short, "x-frugal-cache"), "miss");
    let short: Value = short.json().await.unwrap();
    assert_eq!(short["data"][0]["embedding"].as_array().unwrap().len(), 8);
    let other_user = json!({ "model": "emb", "input": ["x"], "dimensions": 8, "user": "u2" });
    let other_user = sidecar.embed(&other_user, &[]).await;
    assert_eq!(
        header(&other_user, "x-frugal-cache"),
        "hit",
        "`user` is not part of the key"
    );
    assert_eq!(mock.calls(UPSTREAM), 3);
}

#[tokio::test]
async fn token_inputs_are_embedded_and_cached_per_token_array() {
    let (mock, sidecar) = start(CACHE_ON).await;
    let one = sidecar
        .embed(&json!({ "model": "emb", "input": [1, 2, 3] }), &[])
        .await;
    assert_eq!(one.status(), 200);
    assert_eq!(header(&one, "x-frugal-cached-inputs"), "0/1");
    let lists = sidecar
        .embed(
            &json!({ "model": "emb", "input": [[4, 5], [1, 2, 3]] }),
            &[],
        )
        .await;
    assert_eq!(header(&lists, "x-frugal-cache"), "partial");
    assert_eq!(mock.requests().last().unwrap()["input"], json!([[4, 5]]));
    let lists: Value = lists.json().await.unwrap();
    assert_eq!(
        lists["data"][1]["embedding"],
        encode(
            &vector(UPSTREAM, &json!([1, 2, 3]), DEFAULT_DIMENSIONS),
            frugal::embeddings::request::Encoding::Float
        )
    );
}

#[tokio::test]
async fn bypass_skips_the_cache_and_refresh_stores_a_fresh_answer() {
    let (mock, sidecar) = start(CACHE_ON).await;
    let body = inputs(&["fresh"]);
    let bypassed = sidecar.embed(&body, &[("x-frugal-cache", "bypass")]).await;
    assert_eq!(header(&bypassed, "x-frugal-cache"), "bypass");
    let next = sidecar.embed(&body, &[]).await;
    assert_eq!(
        header(&next, "x-frugal-cache"),
        "miss",
        "a bypass stores nothing"
    );
    let refreshed = sidecar.embed(&body, &[("x-frugal-cache", "refresh")]).await;
    assert_eq!(header(&refreshed, "x-frugal-cache"), "miss");
    let hit = sidecar.embed(&body, &[]).await;
    assert_eq!(header(&hit, "x-frugal-cache"), "hit");
    assert_eq!(mock.calls(UPSTREAM), 3);
    let bad = sidecar.embed(&body, &[("x-frugal-cache", "maybe")]).await;
    expect_error(bad, 400).await;
}

#[tokio::test]
async fn without_the_cache_every_input_goes_upstream() {
    let (mock, sidecar) = start("cache: { mode: on, embeddings: { mode: off } }").await;
    for _ in 0..2 {
        let r = sidecar.embed(&inputs(&["same"]), &[]).await;
        assert_eq!(header(&r, "x-frugal-cache"), "bypass");
        assert_eq!(header(&r, "x-frugal-cached-inputs"), "0/1");
    }
    assert_eq!(mock.calls(UPSTREAM), 2);
    let (mock, sidecar) = start("").await;
    sidecar.embed(&inputs(&["same"]), &[]).await;
    let r = sidecar.embed(&inputs(&["same"]), &[]).await;
    assert_eq!(
        header(&r, "x-frugal-cache"),
        "bypass",
        "off while the chat cache is off"
    );
    assert_eq!(mock.calls(UPSTREAM), 2);
}

#[tokio::test]
async fn client_mistakes_are_openai_shaped_errors_before_any_upstream_call() {
    let (mock, sidecar) = start(CACHE_ON).await;
    let bad = [
        (json!({ "input": "x" }), "model"),
        (json!({ "model": "emb" }), "input"),
        (json!({ "model": "emb", "input": "" }), "input"),
        (json!({ "model": "emb", "input": [] }), "input"),
        (json!({ "model": "emb", "input": ["ok", ""] }), "input[1]"),
        (json!({ "model": "emb", "input": [[1], []] }), "input[1]"),
        (json!({ "model": "emb", "input": {"text": "x"} }), "input"),
        (
            json!({ "model": "emb", "input": "x", "encoding_format": "int8" }),
            "encoding_format",
        ),
        (
            json!({ "model": "emb", "input": "x", "dimensions": 0 }),
            "dimensions",
        ),
        (
            json!({ "model": "emb", "input": "x", "dimensions": "8" }),
            "dimensions",
        ),
        (json!({ "model": "emb", "input": "x", "user": 1 }), "user"),
    ];
    for (body, param) in bad {
        let response = sidecar.embed(&body, &[]).await;
        let error = expect_error(response, 400).await;
        assert_eq!(error["error"]["param"], param, "{body}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    let unknown = sidecar
        .embed(&json!({ "model": "nope", "input": "x" }), &[])
        .await;
    let error = expect_error(unknown, 404).await;
    assert_eq!(error["error"]["code"], "model_not_found");
    let not_json = sidecar
        .client
        .post(sidecar.url("/v1/embeddings"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    expect_error(not_json, 400).await;
    assert_eq!(mock.total_calls(), 0);
}

#[tokio::test]
async fn upstream_failures_are_errors_and_nothing_is_cached() {
    let (mock, sidecar) = start(CACHE_ON).await;
    let body = inputs(&["fails", "twice"]);

    mock.on_model(UPSTREAM).fail_times(2, 500);
    let failed = sidecar.embed(&body, &[]).await;
    let error = expect_error(failed, 502).await;
    assert_eq!(error["error"]["code"], "upstream_server_error");
    assert_eq!(
        mock.calls(UPSTREAM),
        2,
        "retried within the policy's attempts"
    );

    mock.on_model(UPSTREAM).times(1).malformed();
    let malformed = sidecar.embed(&body, &[]).await;
    let error = expect_error(malformed, 502).await;
    assert_eq!(error["error"]["code"], "upstream_invalid_response");

    mock.on_model(UPSTREAM).times(1).truncate(1);
    let short = sidecar.embed(&body, &[]).await;
    let error = expect_error(short, 502).await;
    assert_eq!(error["error"]["code"], "upstream_invalid_response");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 embeddings for 2 inputs"),
        "{error}"
    );

    let ok = sidecar.embed(&body, &[]).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        header(&ok, "x-frugal-cache"),
        "miss",
        "no failure was stored"
    );
    let savings = sidecar.savings("").await;
    assert_eq!(
        savings["total"]["requests"], 1,
        "failed requests are not settled"
    );
}

#[tokio::test]
async fn a_repeat_is_saved_by_the_cache_lever_and_the_ledger_adds_up() {
    let (_mock, sidecar) = start(CACHE_ON).await;
    let body = inputs(&["the quick brown fox", "jumps over the lazy dog"]);
    let first = sidecar.embed(&body, &[]).await;
    let paid = usd(&first, "x-frugal-cost-usd");
    assert_eq!(usd(&first, "x-frugal-saved-usd"), 0.0);
    let partial = sidecar
        .embed(&inputs(&["jumps over the lazy dog", "a new sentence"]), &[])
        .await;
    assert!(usd(&partial, "x-frugal-saved-usd") > 0.0);
    assert!(usd(&partial, "x-frugal-cost-usd") > 0.0);
    let _hit = sidecar.embed(&body, &[]).await;

    let report = sidecar.savings("").await;
    let total = &report["total"];
    assert_eq!(total["requests"], 3);
    assert_eq!(total["cache_hits"], 1, "only the full hit counts as a hit");
    assert_eq!(total["upstream_attempts"], 2);
    let lever = |name: &str| total["by_lever"][name].as_f64().unwrap();
    assert!(lever("cache") > 0.0);
    assert_eq!((lever("trim"), lever("route")), (0.0, 0.0));
    let (baseline, actual) = (
        total["baseline_usd"].as_f64().unwrap(),
        total["actual_usd"].as_f64().unwrap(),
    );
    assert!(
        (baseline - actual - lever("cache")).abs() < 1e-12,
        "{total}"
    );
    assert!(
        lever("cache") >= paid - 1e-12,
        "the full repeat alone saves the first call"
    );

    let metrics = sidecar.metrics().await;
    for line in [
        r#"frugal_embedding_inputs_total{tenant="default",outcome="hit"} 3"#,
        r#"frugal_embedding_inputs_total{tenant="default",outcome="miss"} 3"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains(r#"frugal_saved_usd_total{tenant="default",lever="cache"}"#));
}

#[tokio::test]
async fn a_spent_budget_refuses_upstream_inputs_but_still_serves_cached_ones() {
    let (mock, sidecar) = start(&format!(
        "{CACHE_ON}\ntenants:\n  default:\n    budget: {{ window: day, hard_cap_usd: 0.0000002 }}\n"
    ))
    .await;
    let first = sidecar.embed(&inputs(&["cheap"]), &[]).await;
    assert_eq!(first.status(), 200, "one word fits the cap");
    let big = vec!["many words in a long chunk of retrieved text"; 20];
    let refused = sidecar.embed(&inputs(&big), &[]).await;
    let error = expect_error(refused, 429).await;
    assert_eq!(error["error"]["code"], "budget_exceeded");
    assert_eq!(mock.calls(UPSTREAM), 1);
    let cached = sidecar.embed(&inputs(&["cheap"]), &[]).await;
    assert_eq!(cached.status(), 200);
    assert_eq!(header(&cached, "x-frugal-cache"), "hit");
}

#[tokio::test]
async fn the_decision_log_records_an_embeddings_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let (_mock, sidecar) = start(&format!(
        "{CACHE_ON}\ndecision_log: {{ path: {} }}\n",
        log.display()
    ))
    .await;
    sidecar.embed(&inputs(&["a", "b"]), &[]).await;
    sidecar.embed(&inputs(&["b", "c"]), &[]).await;
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        if lines.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(lines.len(), 2);
    let last = &lines[1];
    assert_eq!(last["endpoint"], "embeddings");
    assert_eq!(last["model_requested"], "emb");
    assert_eq!(last["cache"]["outcome"], "partial");
    assert_eq!(last["inputs"], json!({ "total": 2, "cached": 1 }));
    assert_eq!(last["attempts"].as_array().unwrap().len(), 1);
    assert_ne!(last["saved_usd"]["cache"], "0");
}

#[tokio::test]
async fn thirty_two_concurrent_embedding_requests_do_not_overspend_a_budget() {
    // What one request of one input costs, measured on an uncapped sidecar.
    let (_mock, sidecar) = start("").await;
    let probe = sidecar
        .client
        .post(sidecar.url("/v1/embeddings"))
        .json(&json!({"model": "emb", "input": "chunk number 100"}))
        .send()
        .await
        .unwrap();
    let one: f64 = header(&probe, "x-frugal-cost-usd").parse().unwrap();
    assert!(one > 0.0);

    let mock = MockUpstream::start_with_latency(std::time::Duration::from_millis(50)).await;
    let cap = one * 5.5; // room for 5 requests
    let policy = embedding_policy(
        &mock.base_url(),
        &format!("tenants: {{ burst: {{ budget: {{ window: day, hard_cap_usd: {cap} }} }} }}\n"),
    );
    let sidecar = Sidecar::start(&policy).await;
    let requests = (0..32).map(|i| {
        let (client, url) = (sidecar.client.clone(), sidecar.url("/v1/embeddings"));
        tokio::spawn(async move {
            let body = json!({"model": "emb", "input": format!("chunk number {}", 200 + i)});
            let response = client
                .post(url)
                .header("x-frugal-tenant", "burst")
                .json(&body)
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
    assert_eq!(ok, 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 27);
    let report = sidecar.savings("").await;
    let spent = report["tenants"]["burst"]["actual_usd"].as_f64().unwrap();
    assert!(spent <= cap, "spent {spent} over cap {cap}");
    assert_eq!(mock.total_calls(), 5);
}
