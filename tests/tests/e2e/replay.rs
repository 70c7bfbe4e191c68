//! `frugal replay` and the labelled simulation: recorded answers per model (over HTTP and
//! in-process), quality scored against the labels, right and false cache hits on labelled
//! pairs, a decision log replayed, and two runs of the same traffic deciding the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use frugal::mock::{LabelledModels, MockOptions, MockServer};
use frugal::offline::replay::{replay, traffic, ReplayOptions, Tally};
use frugal_tests::{policy_for, MockUpstream, Sidecar};
use serde_json::{json, Value};

const ROWS: &str = concat!(
    r#"{"id": "m1", "benchmark": "mmlu", "prompt": "Which planet is largest?\nA. Mars\nB. Jupiter\nAnswer:", "weak_correct": false, "strong_correct": true}"#,
    "\n",
    r#"{"id": "m2", "benchmark": "mmlu", "prompt": "What is 2 + 2?\nA. 4\nB. 5\nAnswer:", "weak_correct": true, "strong_correct": true}"#,
    "\n",
    r#"{"id": "g1", "benchmark": "gsm8k", "prompt": "Ann has 3 apples and buys 2 more. How many apples does she have?", "weak_correct": true, "strong_correct": true, "weak_response": "3 + 2 = 5. #### 5", "strong_response": "She has 3 + 2 = 5 apples. #### 5"}"#,
    "\n",
    r#"{"id": "t1", "benchmark": "mt_bench", "prompt": "Write a haiku about autumn leaves.", "weak_score": 6.0, "strong_score": 9.0}"#,
    "\n",
);

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn replayed(policy: &Path, traffic_path: &Path, model: Option<&str>) -> Tally {
    let traffic = traffic::read(traffic_path, traffic::Pick::All).unwrap();
    let options = ReplayOptions {
        model: model.map(str::to_string),
        ..ReplayOptions::default()
    };
    replay(policy, &traffic, &[], &options).await.unwrap()
}

#[tokio::test]
async fn quality_is_scored_against_the_label_of_the_model_that_answered() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = write(dir.path(), "rows.jsonl", ROWS);
    let policy = write(
        dir.path(),
        "policy.yaml",
        &policy_for("http://127.0.0.1:9/v1", ""),
    );
    // Always strong keeps all of always-strong's quality and saves nothing on routing.
    let strong = replayed(&policy, &traffic, Some("strong")).await;
    assert_eq!((strong.requests, strong.answered), (4, 4));
    let quality = strong.quality.unwrap();
    assert_eq!(quality.labelled, 4);
    assert!((quality.strong - 3.9).abs() < 1e-6, "{quality:?}");
    assert!((quality.weak - 2.6).abs() < 1e-6, "{quality:?}");
    assert_eq!(quality.kept(), Some(1.0));
    assert_eq!(strong.calls.get("strong"), Some(&4));
    // Always cheap keeps what the weak model recorded.
    let cheap = replayed(&policy, &traffic, Some("cheap")).await;
    let quality = cheap.quality.unwrap();
    assert!((quality.served - 2.6).abs() < 1e-6, "{quality:?}");
    assert!(cheap.cost_usd < strong.cost_usd);
    // A ladder lands in between, and replaying it again decides the same.
    let ladder = write(
        dir.path(),
        "ladder.yaml",
        &policy_for(
            "http://127.0.0.1:9/v1",
            "route: { ladder: [cheap, strong] }\n",
        ),
    );
    let first = replayed(&ladder, &traffic, None).await;
    let served = first.quality.unwrap().served;
    assert!((2.6 - 1e-6..=3.9 + 1e-6).contains(&served), "{first:?}");
    let again = replayed(&ladder, &traffic, None).await;
    assert_eq!(
        serde_json::to_value(&first).unwrap(),
        serde_json::to_value(&again).unwrap()
    );
    let saved = first.saved_usd.total();
    assert!(
        (first.baseline_usd - first.cost_usd - saved).abs() < 1e-9,
        "baseline − cost = the levers' savings: {first:?}"
    );
}

#[tokio::test]
async fn cache_hits_on_labelled_pairs_are_judged_right_or_false() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = concat!(
        r#"{"a": "How do I reverse a list in Python?", "b": "How can I reverse a list in Python?", "duplicate": true}"#,
        "\n",
        // Labelled different but asked identically: an exact hit, so a false one.
        r#"{"a": "What is the capital of France?", "b": "What is the capital of France?", "duplicate": false}"#,
        "\n",
        r#"{"a": "How tall is Mount Everest?", "b": "Who wrote War and Peace?", "duplicate": false}"#,
        "\n",
    );
    let traffic = write(dir.path(), "pairs.jsonl", pairs);
    let policy = write(
        dir.path(),
        "policy.yaml",
        &policy_for(
            "http://127.0.0.1:9/v1",
            "cache: { mode: on, ttl: 10m, max_temperature: 0.5 }\n",
        ),
    );
    let tally = replayed(&policy, &traffic, None).await;
    let pairs = tally.pairs.unwrap();
    assert_eq!((pairs.duplicate, pairs.different), (1, 2), "{tally:?}");
    assert_eq!((pairs.right_hits, pairs.false_hits), (1, 1), "{tally:?}");
    assert_eq!(pairs.false_hit_rate(), Some(0.5));
    assert_eq!(tally.cache.get("semantic"), Some(&1));
    assert_eq!(tally.cache.get("exact"), Some(&1));
    assert!(tally.saved_usd.cache > 0.0);
}

#[tokio::test]
async fn a_decision_log_with_prompts_replays_through_another_policy() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let mock = MockUpstream::start().await;
    let serving = policy_for(
        &mock.base_url(),
        &format!(
            "decision_log: {{ path: {}, log_prompts: true }}\n",
            log.display()
        ),
    );
    let sidecar = Sidecar::start(&serving).await;
    for question in [
        "Name a prime number.",
        "Name a colour.",
        "Name a prime number.",
    ] {
        let body = json!({ "model": "strong", "temperature": 0,
            "messages": [{ "role": "user", "content": question }] });
        assert_eq!(sidecar.chat_as("acme", &body).await.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "the log has fewer than 3 lines");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Served without a cache; replayed with one, the repeat is a hit.
    let with_cache = write(
        dir.path(),
        "cache.yaml",
        &policy_for(
            "http://127.0.0.1:9/v1",
            "cache: { mode: on, ttl: 10m, max_temperature: 0.5 }\n",
        ),
    );
    let tally = replayed(&with_cache, &log, None).await;
    assert_eq!((tally.requests, tally.answered), (3, 3), "{tally:?}");
    assert_eq!(tally.cache.get("exact"), Some(&1), "{tally:?}");
    assert_eq!(tally.calls.get("strong"), Some(&2), "{tally:?}");
    // A log written without prompts cannot be replayed, and says why.
    let bare = write(
        dir.path(),
        "bare.jsonl",
        "{\"v\": 1, \"request_id\": \"r\", \"tenant\": \"t\"}\n",
    );
    let error = traffic::read(&bare, traffic::Pick::All).unwrap_err();
    assert!(
        format!("{error:#}").contains("log_prompts: true"),
        "{error:#}"
    );
}

#[tokio::test]
async fn the_labelled_mock_answers_each_model_what_it_recorded_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let rows = write(dir.path(), "rows.jsonl", ROWS);
    let labels = LabelledModels::load(&rows, &["small".into()], &["large".into()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = MockServer::start_with(
        listener,
        MockOptions {
            labels: Some(Arc::new(labels)),
            model_latency: [("large".to_string(), Duration::from_millis(200))].into(),
            ..MockOptions::default()
        },
    )
    .unwrap();
    let client = reqwest::Client::new();
    let ask = |model: &'static str, prompt: &'static str| {
        client
            .post(format!("{}/chat/completions", mock.base_url()))
            .json(&json!({ "model": model, "messages": [{ "role": "user", "content": prompt }] }))
            .send()
    };
    let gsm = "Ann has 3 apples and buys 2 more. How many apples does she have?";
    let content = |v: Value| {
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let small: Value = ask("small", gsm).await.unwrap().json().await.unwrap();
    assert_eq!(content(small), "3 + 2 = 5. #### 5");
    let started = Instant::now();
    let large: Value = ask("large", gsm).await.unwrap().json().await.unwrap();
    assert_eq!(content(large), "She has 3 + 2 = 5 apples. #### 5");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the large model's latency"
    );
    let mmlu: Value = ask(
        "small",
        "Which planet is largest?\nA. Mars\nB. Jupiter\nAnswer:",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(content(mmlu).contains("wrong"));
    // An unlabelled prompt, or a model with no side, gets the usual simulated answer.
    let other: Value = ask("small", "Hello there")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(content(other).contains("simulated model"));
}

const TASKS: [&str; 22] = [
    "reverse a list",
    "sort a dictionary by value",
    "read a CSV file",
    "merge two dictionaries",
    "remove duplicates from a list",
    "convert a string to an integer",
    "check if a file exists",
    "get the current date",
    "split a string by commas",
    "flatten a nested list",
    "count words in a string",
    "make an HTTP request",
    "parse JSON text",
    "create a virtual environment",
    "write to a text file",
    "iterate over a dictionary",
    "find the maximum of a list",
    "concatenate two lists",
    "lowercase a string",
    "generate a random number",
    "measure elapsed time",
    "copy a file",
];

#[tokio::test]
async fn a_shadow_mode_log_calibrates_the_cache_threshold_on_its_own_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shadow.jsonl");
    let mock = MockUpstream::start().await;
    // The upstream answers five rephrasings with something else: those would-be hits differ.
    mock.on_prompt("^How can I (copy a file|measure elapsed time|lowercase a string|parse JSON text|read a CSV file)")
        .respond("Bananas are an excellent source of potassium and grow in tropical climates.");
    let text = policy_for(
        &mock.base_url(),
        &format!(
            "cache: {{ mode: shadow, ttl: 10m, max_temperature: 0.5 }}\ndecision_log: {{ path: {} }}\n",
            log.display()
        ),
    );
    let policy = write(dir.path(), "policy.yaml", &text);
    let sidecar = Sidecar::start(&text).await;
    let ask = |question: String| {
        json!({ "model": "strong", "temperature": 0,
            "messages": [{ "role": "user", "content": question }] })
    };
    for task in TASKS {
        let body = ask(format!("How do I {task} in Python?"));
        assert_eq!(sidecar.chat_as("acme", &body).await.status(), 200);
    }
    let mut would_be_hits = 0;
    for task in TASKS {
        let response = sidecar
            .chat_as("acme", &ask(format!("How can I {task} in Python?")))
            .await;
        would_be_hits +=
            usize::from(frugal_tests::header(&response, "x-frugal-cache") == "shadow_hit");
    }
    assert!(would_be_hits >= 20, "{would_be_hits} would-be hits");
    // Each would-be hit's record waits for its comparison and carries the verdict.
    let deadline = Instant::now() + Duration::from_secs(10);
    let records = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if records.len() == 2 * TASKS.len() || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(records.len(), 2 * TASKS.len());
    let verdicts: Vec<&str> = records
        .iter()
        .filter(|r| r["cache"]["outcome"] == "shadow_hit")
        .map(|r| r["cache"]["shadow"].as_str().expect("a verdict"))
        .collect();
    assert_eq!(verdicts.len(), would_be_hits);
    let differ = verdicts.iter().filter(|v| **v == "differ").count();
    assert!((4..=5).contains(&differ), "{verdicts:?}");

    let out = dir.path().join("calibrated.yaml");
    let output = std::process::Command::new(frugal_tests::frugal_binary())
        .args([
            "calibrate",
            "--max-disagreement",
            "0.3",
            "--json",
            "--model-dir",
            "../models",
        ])
        .arg("--policy")
        .arg(&policy)
        .arg("--shadow-log")
        .arg(&log)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let lowest = &report["shadow"]["points"][0];
    assert_eq!(lowest["compared"], would_be_hits, "{report}");
    let share = differ as f64 / would_be_hits as f64;
    assert!((lowest["disagreement"].as_f64().unwrap() - share).abs() < 1e-9);
    assert!(report["shadow"]["pick"].is_u64(), "{report}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("similarity_threshold:"), "{written}");
}
