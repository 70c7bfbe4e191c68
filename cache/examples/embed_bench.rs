//! Latency of embedding one question at a time, the way a semantic cache lookup does:
//! `cargo run --release -p frugal-cache --example embed_bench -- [runs] [threads] [arena]
//! [nospin]` (`arena` turns ONNX Runtime's CPU memory arena on, `nospin` stops its threads
//! spinning while they wait). Prints p50/p99 per question (model tokens included), then all of
//! them together, then one long text by the tokens kept, then the process's resident memory
//! after batches of 16 long texts (what a loaded sidecar's embedding worker sees).

#[path = "support/resident.rs"]
mod resident;

use resident::resident_mib;

use std::time::Instant;

use frugal_cache::percentile;
use frugal_cache::{Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};

const QUESTIONS: [&str; 4] = [
    "How can I reverse a list in Python?",
    "What is the capital of France?",
    "Why does my Rust program panic with an index out of bounds error when the vector is empty?",
    "What is the best way to learn machine learning from scratch as a beginner with no math background?",
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(Ok(300), |s| s.parse())?;
    let threads: Option<usize> = args.next().map(|s| s.parse()).transpose()?;
    let flags: Vec<String> = args.collect();
    let memory_arena = flags.iter().any(|s| s == "arena");
    let spinning = !flags.iter().any(|s| s == "nospin");
    let paths = ModelPaths::from_env_or(std::path::Path::new("models"));
    let options = MiniLmOptions {
        intra_threads: threads,
        memory_arena,
        spinning,
        ..MiniLmOptions::default()
    };
    let embedder = MiniLmEmbedder::load(&paths, &options)?;
    println!("resident after load: {:.1} MiB", resident_mib());
    let mut all = Vec::new();
    for question in QUESTIONS {
        for _ in 0..20 {
            embedder.embed(&[question])?;
        }
        let times = sorted_millis(runs, || embedder.embed(&[question]));
        all.extend_from_slice(&times);
        println!(
            "{:>3} words  p50 {:6.2} ms  p99 {:6.2} ms  {question}",
            question.split_whitespace().count(),
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    all.sort_by(f64::total_cmp);
    println!(
        "all        p50 {:6.2} ms  p99 {:6.2} ms  (threads {})",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        threads.map_or("all".to_owned(), |t| t.to_string())
    );
    println!("resident after single questions: {:.1} MiB", resident_mib());
    // One question at a time by length: the cost grows with the tokens kept.
    let long_text = QUESTIONS.join(" ").repeat(8);
    for max_tokens in [32, 64, 128, 256] {
        let capped = MiniLmEmbedder::load(
            &paths,
            &MiniLmOptions {
                max_tokens,
                ..options.clone()
            },
        )?;
        let times = sorted_millis(runs.min(100), || capped.embed(&[long_text.as_str()]));
        println!(
            "{max_tokens:>3} tokens p50 {:6.2} ms  p99 {:6.2} ms  (a long text, truncated)",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    let long = QUESTIONS.map(|q| q.repeat(12));
    let batch: Vec<&str> = long.iter().cycle().take(16).map(String::as_str).collect();
    let started = Instant::now();
    for _ in 0..10 {
        embedder.embed(&batch)?;
    }
    println!(
        "16 texts of 256 tokens: {:.1} ms a batch; resident after: {:.1} MiB (arena {})",
        started.elapsed().as_secs_f64() * 1e3 / 10.0,
        resident_mib(),
        if memory_arena { "on" } else { "off" }
    );
    for _ in 0..20 {
        embedder.embed(&QUESTIONS)?;
    }
    println!(
        "resident after short batches again: {:.1} MiB",
        resident_mib()
    );
    Ok(())
}

/// The time of each of `runs` calls of `embed`, in ms, sorted (failures are timed too).
fn sorted_millis<T>(runs: usize, mut embed: impl FnMut() -> T) -> Vec<f64> {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let _ = embed();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}
