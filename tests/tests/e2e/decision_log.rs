//! The decision log: one JSON line per answered request with what each lever decided and what
//! it cost, prompts only when asked for, rotated by size, and a log that cannot be opened
//! stops the sidecar from starting.

use std::path::Path;
use std::time::{Duration, Instant};

use frugal_tests::{header, policy_for, MockUpstream, Sidecar};
use serde_json::{json, Value};

fn ask(question: &str, stream: bool) -> Value {
    json!({ "model": "strong", "temperature": 0, "stream": stream,
            "messages": [{ "role": "user", "content": question }] })
}

/// The log's lines once it holds `n` of them (the writer flushes when idle), at most 5 s.
fn lines(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn policy(mock: &MockUpstream, path: &Path, extra: &str) -> String {
    policy_for(
        &mock.base_url(),
        &format!(
            "cache: {{ mode: on, ttl: 10m, max_temperature: 0.5 }}\ndecision_log: {{ path: {}{extra} }}\n",
            path.display()
        ),
    )
}

#[tokio::test]
async fn each_answered_request_is_one_line_with_its_decisions_and_costs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/decisions.jsonl");
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, &path, "")).await;
    let miss = sidecar
        .chat_as("acme", &ask("What is the capital of Norway?", false))
        .await;
    let cost = header(&miss, "x-frugal-cost-usd");
    let request_id = header(&miss, "x-request-id");
    let hit = sidecar
        .chat_as("acme", &ask("What is the capital of Norway?", false))
        .await;
    assert_eq!(header(&hit, "x-frugal-cache"), "exact");
    let streamed = sidecar
        .chat_as("acme", &ask("Name three fjords.", true))
        .await;
    let _ = streamed.text().await.unwrap();
    let records = lines(&path, 3);
    assert_eq!(records.len(), 3, "{records:#?}");
    let first = &records[0];
    assert_eq!(first["v"], 1);
    assert_eq!(first["request_id"], request_id.as_str());
    assert_eq!(first["tenant"], "acme");
    assert_eq!(first["model_requested"], "strong");
    assert_eq!(first["cache"]["outcome"], "miss");
    assert_eq!(first["cost_usd"], cost.as_str());
    assert_eq!(first["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(first["exact_key"].as_str().unwrap().len(), 12);
    assert!(first["latency_ms"]["total"].as_f64().unwrap() > 0.0);
    assert!(first.get("messages").is_none() && first.get("answer").is_none());
    assert_eq!(records[1]["cache"]["outcome"], "exact");
    assert_eq!(records[1]["cost_usd"], "0");
    assert_eq!(records[1]["attempts"], json!([]));
    assert_eq!(records[2]["stream"], true);
    assert_eq!(records[2]["attempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn prompts_and_answers_are_logged_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let mock = MockUpstream::start().await;
    mock.always().respond("Oslo.");
    let sidecar = Sidecar::start(&policy(&mock, &path, ", log_prompts: true")).await;
    let response = sidecar
        .chat_as("acme", &ask("What is the capital of Norway?", false))
        .await;
    assert_eq!(response.status(), 200);
    let records = lines(&path, 1);
    assert_eq!(
        records[0]["messages"][0]["content"],
        "What is the capital of Norway?"
    );
    assert_eq!(records[0]["answer"], "Oslo.");
}

#[tokio::test]
async fn the_log_rotates_by_size_and_keeps_what_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy(&mock, &path, ", max_bytes: 4096, keep: 1")).await;
    for i in 0..40 {
        let response = sidecar
            .chat_as(
                "acme",
                &ask(&format!("Question {i} for the rotation test?"), false),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let rotated = dir.path().join("decisions.jsonl.1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rotated.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rotated.exists(), "no rotation");
    assert!(!dir.path().join("decisions.jsonl.2").exists(), "keep: 1");
    for file in [&path, &rotated] {
        let len = std::fs::metadata(file).unwrap().len();
        assert!(len <= 4096, "{} is {len} bytes", file.display());
    }
}

#[tokio::test]
async fn a_log_that_cannot_be_opened_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let mock = MockUpstream::start().await;
    let text = policy(&mock, &blocker.join("decisions.jsonl"), "");
    let parsed = frugal::policy::parse(&text, "t.yaml").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = frugal::server::RunningServer::start(parsed, listener, None)
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("cannot open decision_log.path"),
        "{error:#}"
    );
}
