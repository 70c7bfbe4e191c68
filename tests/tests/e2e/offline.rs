//! The offline evaluations as an operator runs them: `frugal eval trim` and `frugal eval cache`
//! on small inline fixtures with the real embedding model, checked for the JSON they promise.

use std::path::Path;
use std::process::Command;

use frugal_tests::frugal_binary;
use serde_json::{json, Value};

/// Runs `frugal ARGS… --json` (an offline command: `eval …`, `calibrate`) with the
/// repository's model and a private embedding cache; one JSON object per output line.
fn frugal_json(dir: &Path, args: &[&str]) -> Vec<Value> {
    let output = Command::new(frugal_binary())
        .args(args)
        .args(["--json", "--model-dir", "../models", "--embedding-cache"])
        .arg(dir.join("embeddings"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "frugal {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// A claim with two abstracts, the first holding the one gold sentence.
fn claim(id: &str, query: &str, gold: &str, filler: &[&str], other: &[&str]) -> Value {
    let mut chunks = vec![json!({"doc_id": 0, "sent_idx": 0, "text": filler[0], "gold": false})];
    chunks.push(json!({"doc_id": 0, "sent_idx": 1, "text": gold, "gold": true}));
    for (i, text) in filler.iter().enumerate().skip(1) {
        chunks.push(json!({"doc_id": 0, "sent_idx": i + 1, "text": text, "gold": false}));
    }
    for (i, text) in other.iter().enumerate() {
        chunks.push(json!({"doc_id": 1, "sent_idx": i, "text": text, "gold": false}));
    }
    json!({
        "id": id, "query": query, "orig_split": "dev", "label": "SUPPORT", "gold_doc_ids": [0],
        "docs": [
            {"doc_id": 0, "title": "Evidence", "rank": 0, "bm25": 2.0, "in_bm25_top10": true,
             "cited": true, "evidence_label": "SUPPORT"},
            {"doc_id": 1, "title": "Unrelated", "rank": 1, "bm25": 1.0, "in_bm25_top10": true,
             "cited": false, "evidence_label": null}
        ],
        "chunks": chunks,
        "group": "test"
    })
}

#[test]
fn eval_trim_reports_every_strategy_under_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("trim.jsonl");
    write_jsonl(
        &data,
        &[
            claim(
                "t-1",
                "Vitamin D supplements reduce hip fractures in older adults.",
                "In 2,000 adults over 65, daily vitamin D supplements cut hip fractures by 20%.",
                &[
                    "Vitamin D is a fat-soluble vitamin made in the skin.",
                    "Calcium intake was similar across the groups.",
                    "Follow-up lasted three years and few participants left the study.",
                ],
                &[
                    "Caffeine delays sleep onset in most adults.",
                    "Participants drank two cups of coffee every evening.",
                    "Sleep quality was measured with wrist actigraphy.",
                ],
            ),
            claim(
                "t-2",
                "Aspirin lowers the rate of colorectal cancer.",
                "Long-term aspirin use was associated with fewer colorectal cancers.",
                &[
                    "Aspirin inhibits the cyclooxygenase enzymes.",
                    "Bleeding events were more common with aspirin than placebo.",
                ],
                &[
                    "Statins lower LDL cholesterol by a third.",
                    "Cardiac events fell by a quarter over five years.",
                    "Muscle pain was the most common side effect.",
                ],
            ),
        ],
    );
    let data = data.to_string_lossy();
    let rows = frugal_json(
        dir.path(),
        &[
            "eval",
            "trim",
            "--data",
            &data,
            "--cap-ratio",
            "0.5",
            "--latency-queries",
            "1",
            "--latency-runs",
            "2",
        ],
    );
    let strategies: Vec<&str> = rows
        .iter()
        .map(|r| r["strategy"].as_str().unwrap())
        .collect();
    for wanted in [
        "keep_first",
        "bm25",
        "embedding",
        "frugal",
        "frugal_lexical",
    ] {
        assert!(strategies.contains(&wanted), "{strategies:?}");
    }
    for row in &rows {
        assert_eq!(row["queries"], 2, "{row}");
        assert_eq!(
            row["over_cap"], 0,
            "no context may end above its cap: {row}"
        );
        let reduction = row["token_reduction"].as_f64().unwrap();
        assert!((0.4..1.0).contains(&reduction), "{row}");
        for key in ["gold_recall", "all_gold_kept_share"] {
            assert!(
                (0.0..=1.0).contains(&row[key].as_f64().unwrap()),
                "{key}: {row}"
            );
        }
        assert!(row["p99_ms"].as_f64().unwrap() >= row["p50_ms"].as_f64().unwrap());
    }
    let recall = |name: &str| {
        rows.iter().find(|r| r["strategy"] == name).unwrap()["gold_recall"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(
        recall("frugal"),
        1.0,
        "the one relevant sentence per claim is kept"
    );
}

#[test]
fn eval_cache_scores_hits_false_hits_and_guards() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pairs.jsonl");
    let pair = |a: &str, b: &str, duplicate: bool| json!({"a": a, "b": b, "duplicate": duplicate});
    write_jsonl(
        &data,
        &[
            pair(
                "How do I enable logging in nginx?",
                "How can I enable logging in nginx?",
                true,
            ),
            pair(
                "What is the capital city of France?",
                "What's the capital city of France?",
                true,
            ),
            pair(
                "How do I enable logging in nginx?",
                "How do I disable logging in nginx?",
                false,
            ),
            json!({"a": "What is 2+2?", "b": "What is 2+3?", "duplicate": false, "hard": true}),
            pair(
                "Who wrote the novel War and Peace?",
                "How do I bake sourdough bread?",
                false,
            ),
        ],
    );
    let data = data.to_string_lossy();
    // A low threshold, so the two look-alike non-duplicates reach verification.
    let rows = frugal_json(
        dir.path(),
        &["eval", "cache", "--pairs", &data, "--threshold", "0.8"],
    );
    assert_eq!(rows.len(), 1);
    let report = &rows[0];
    for key in [
        "pairs",
        "threshold",
        "hits",
        "precision",
        "recall",
        "false_hit_rate",
        "hard_negative_false_hit_rate",
        "guard_rejections",
        "lookup_latency_p50_ms",
        "lookup_latency_p99_ms",
        "embedding_throughput_per_s",
    ] {
        assert!(report.get(key).is_some(), "no `{key}` in {report}");
    }
    assert_eq!(report["pairs"], 5);
    assert_eq!(report["false_hit_rate"], 0.0, "{report}");
    assert_eq!(report["recall"], 1.0, "{report}");
    assert_eq!(
        report["guard_rejections"]["antonym"], 1,
        "enable/disable: {report}"
    );
    assert_eq!(
        report["guard_rejections"]["numbers"], 1,
        "2+2/2+3: {report}"
    );
    // The prefilter (on by default) rules out War and Peace / sourdough before MiniLM, and
    // loses no hit.
    let prefilter = &report["prefilter"];
    assert_eq!(prefilter["threshold"], 0.5, "{report}");
    assert_eq!(prefilter["ruled_out"], 1, "{report}");
    assert_eq!(prefilter["hits_lost"], 0, "{report}");
    let off = frugal_json(
        dir.path(),
        &[
            "eval",
            "cache",
            "--pairs",
            &data,
            "--threshold",
            "0.8",
            "--prefilter",
            "0",
        ],
    );
    assert!(off[0].get("prefilter").is_none(), "{}", off[0]);
    assert_eq!(off[0]["recall"], report["recall"]);
}

/// One claim with its gold sentence, written to `dir/trim.jsonl` (calibrate's trim data).
fn one_claim_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("trim.jsonl");
    write_jsonl(
        &path,
        &[claim(
            "t-1",
            "Vitamin D supplements reduce hip fractures in older adults.",
            "In 2,000 adults over 65, daily vitamin D supplements cut hip fractures by 20%.",
            &[
                "Vitamin D is a fat-soluble vitamin made in the skin.",
                "Calcium intake was similar across the groups.",
            ],
            &["Caffeine delays sleep onset in most adults."],
        )],
    );
    path
}

/// A path as the `&str` an argument list takes.
fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A policy with comments, a ladder, a semantic cache and trimming, for `frugal calibrate`.
const CALIBRATED_POLICY: &str = "\
# Calibrate me; this comment stays.
providers:
  mock: { base_url: http://127.0.0.1:9/v1 }
models:
  cheap: { provider: mock, upstream: small, price: { input_per_mtok: 0.15, output_per_mtok: 0.6 } }
  strong: { provider: mock, upstream: large, price: { input_per_mtok: 2.5, output_per_mtok: 10 } }
default_model: cheap
embeddings: { model_dir: ../models }
route:
  ladder: [cheap, strong]   # cheap first
cache:
  mode: on
  similarity_threshold: 0.94   # was tuned by hand
trim:
  max_context_tokens: 800
";

#[test]
fn calibrate_picks_each_lever_and_writes_a_policy_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, CALIBRATED_POLICY).unwrap();
    // Routing rows: the weak model fails the long, hard ones.
    let mut rows = Vec::new();
    for i in 0..12 {
        let hard = i % 3 == 0;
        let prompt = if hard {
            format!("Prove that the sum of the first {i} odd numbers is a perfect square, step by step, and explain every lemma you use along the way in detail.")
        } else {
            format!("What is {i} plus {i}?")
        };
        rows.push(
            json!({ "id": format!("r{i}"), "benchmark": "mmlu", "prompt": prompt,
            "weak_correct": !hard, "strong_correct": true }),
        );
    }
    let router = dir.path().join("router.jsonl");
    write_jsonl(&router, &rows);
    let pairs = dir.path().join("pairs.jsonl");
    write_jsonl(
        &pairs,
        &[
            json!({"id": "p1", "a": "How do I reverse a list in Python?", "b": "How can I reverse a list in Python?", "duplicate": true, "hard": false, "group": "p1"}),
            json!({"id": "p2", "a": "What is the capital of France?", "b": "What is the capital city of France?", "duplicate": true, "hard": false, "group": "p2"}),
            json!({"id": "p3", "a": "How tall is Mount Everest?", "b": "Who wrote War and Peace?", "duplicate": false, "hard": false, "group": "p3"}),
            json!({"id": "p4", "a": "Is coffee bad for you?", "b": "Is tea bad for you?", "duplicate": false, "hard": true, "group": "p4"}),
        ],
    );
    let trim = one_claim_file(dir.path());
    let out = dir.path().join("calibrated.yaml");
    let plot = dir.path().join("frontier.png");
    let rows = frugal_json(
        dir.path(),
        &[
            "calibrate",
            "--policy",
            arg(&policy),
            "--router-data",
            arg(&router),
            "--cache-pairs",
            arg(&pairs),
            "--trim-data",
            arg(&trim),
            "--target-quality",
            "0.9",
            "--max-false-hit-rate",
            "0",
            "--out",
            arg(&out),
            "--plot",
            arg(&plot),
        ],
    );
    let report = &rows[0];
    for lever in ["route", "cache", "trim"] {
        assert!(
            report[lever]["points"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{lever}: {report}"
        );
    }
    // Every pick meets its target.
    let route_pick = &report["route"]["points"][report["route"]["pick"].as_u64().unwrap() as usize];
    assert!(
        route_pick["quality"].as_f64().unwrap() >= 0.9,
        "{route_pick}"
    );
    let cache_pick = &report["cache"]["points"][report["cache"]["pick"].as_u64().unwrap() as usize];
    assert_eq!(cache_pick["false_hit_rate"], 0.0, "{cache_pick}");
    // The written policy keeps its comments, changes only the calibrated values and checks.
    let written = std::fs::read_to_string(&out).unwrap();
    for kept in [
        "# Calibrate me; this comment stays.",
        "# cheap first",
        "# was tuned by hand",
    ] {
        assert!(written.contains(kept), "{written}");
    }
    let changed: Vec<&str> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"route.start_strong_above"), "{report}");
    assert!(written.contains("start_strong_above:"), "{written}");
    let png = std::fs::read(&plot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
    let check = Command::new(frugal_binary())
        .args(["policy", "check"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn calibrate_leaves_a_lever_the_policy_does_not_use_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // No cache and no trim section: only routing can be calibrated.
    let text: String = CALIBRATED_POLICY
        .split_inclusive('\n')
        .take_while(|line| !line.starts_with("cache:"))
        .collect();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, &text).unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    write_jsonl(
        &pairs,
        &[
            json!({"id": "p1", "a": "How do I reverse a list in Python?", "b": "How can I reverse a list in Python?", "duplicate": true, "hard": false, "group": "p1"}),
        ],
    );
    let trim = one_claim_file(dir.path());
    let rows = frugal_json(
        dir.path(),
        &[
            "calibrate",
            "--policy",
            arg(&policy),
            "--cache-pairs",
            arg(&pairs),
            "--trim-data",
            arg(&trim),
        ],
    );
    let report = &rows[0];
    assert_eq!(report["changes"], json!([]), "{report}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("cache is off"), "{notes}");
    assert!(notes.contains("trimming is off"), "{notes}");
}
