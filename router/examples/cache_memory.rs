//! How much memory the response cache really takes per stored answer, against what it counts
//! towards `cache.max_bytes` (run by `scripts/bench.sh`, which writes the table into
//! BENCHMARKS.md):
//!
//! `cargo run --release -p frugal --example cache_memory -- TEXTS ENTRIES MODE`
//!
//! TEXTS holds one question per line (real prompts; those of up to 512 characters, about the
//! default `cache.semantic_max_tokens`, are used, in turn when ENTRIES is larger).
//! Each entry is a distinct exact key in one scope (the case where the semantic index is one
//! large graph) with a chat completion answer of 200 to 2,000 characters. MODE is what the
//! cache holds: `answers` (exact tier only), `semantic` (each question's 384-dimension vector
//! and its analysis for the guards, as with `cache.semantic`), `prefiltered` (the static
//! vectors of the prefilter too: the default policy), or `elsewhere` (only questions of answers
//! held by other replicas, as a shared-tier follower indexes them). The vectors are random unit
//! vectors: their memory is that of real ones. The process uses the sidecar's allocator
//! (jemalloc); the RSS growth is measured after the index's background rebuilds are done. One
//! JSON line on stdout.

#[path = "../../cache/examples/support/resident.rs"]
mod resident;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use frugal::stage::account::{TokenSource, Tokens};
use frugal::stage::cache::CachedAnswer;
use frugal_cache::synthetic::Xorshift;
use frugal_cache::{
    CacheSlot, ModelPaths, ResponseCache, SemanticSlot, StaticEmbedder, StoreLimits,
};
use resident::resident_mib;
use serde_json::{json, Map, Value};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Dimension of all-MiniLM-L6-v2's vectors.
const DIM: usize = 384;
/// Longest question used, about 128 tokens.
const MAX_QUESTION_CHARS: usize = 512;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [texts, entries, mode] = args.as_slice() else {
        anyhow::bail!("usage: cache_memory TEXTS ENTRIES answers|semantic|prefiltered|elsewhere");
    };
    let entries: usize = entries.parse()?;
    let texts = std::fs::read_to_string(texts).with_context(|| format!("reading {texts}"))?;
    // Longer questions skip the semantic tier (`cache.semantic_max_tokens`, 128 by default).
    let texts: Vec<&str> = texts
        .lines()
        .filter(|t| !t.trim().is_empty() && t.len() <= MAX_QUESTION_CHARS)
        .collect();
    anyhow::ensure!(!texts.is_empty(), "no texts");
    let (semantic, prefiltered, elsewhere) = match mode.as_str() {
        "answers" => (false, false, false),
        "semantic" => (true, false, false),
        "prefiltered" => (true, true, false),
        "elsewhere" => (true, true, true),
        other => anyhow::bail!("unknown mode {other}"),
    };
    let prefilter = if prefiltered {
        let paths = ModelPaths::from_env_or(Path::new("models"));
        Some(Arc::new(StaticEmbedder::load(&paths.static_dir)?))
    } else {
        None
    };
    let limits = StoreLimits {
        max_bytes: u64::MAX / 2,
        ttl: Duration::from_secs(3600),
    };
    let cache: ResponseCache<CachedAnswer> =
        ResponseCache::with_prefilter(limits, Arc::new(()), prefilter);
    let (shortest, longest) = answer_lengths()?;
    let mut rng = Xorshift::new(7);
    let before = resident_mib();
    let started = Instant::now();
    for i in 0..entries {
        let question = texts[i % texts.len()];
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let entry = semantic.then(|| SemanticSlot {
            scope: [1; 32],
            question: question.to_string(),
            vector: Some(rng.unit_vector(DIM)),
        });
        if elsewhere {
            if let Some(entry) = entry {
                cache.index_elsewhere(key, entry);
            }
        } else {
            let length = shortest + (rng.next_centered() + 0.5) * (longest - shortest);
            cache.store(
                CacheSlot {
                    key,
                    semantic: entry,
                },
                answer(i, length as usize),
            );
        }
    }
    let inserted_s = started.elapsed().as_secs_f64();
    // A graph is built on a background thread once a scan outgrows its threshold, and the
    // inserts made meanwhile are replayed onto it: wait for the last to be swapped in, and for
    // the allocator to return what the old ones held.
    while cache.rebuilds_running() > 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (held, counted) = cache.size();
    let grown = resident_mib() - before;
    let line = json!({
        "mode": mode,
        "entries": entries,
        "held": held,
        "insert_s": inserted_s,
        "rss_growth_mib": grown,
        "rss_bytes_per_entry": (grown * 1048576.0 / entries as f64).round(),
        "counted_mib": counted as f64 / 1048576.0,
        "counted_bytes_per_entry": (counted as f64 / entries as f64).round(),
        "counted_share_of_rss": counted as f64 / (grown * 1048576.0),
    });
    println!("{line}");
    Ok(())
}

/// The range of the answers' lengths in characters: `ANSWER_CHARS=MIN,MAX`, 200 to 2,000 by
/// default.
fn answer_lengths() -> anyhow::Result<(f32, f32)> {
    let Ok(range) = std::env::var("ANSWER_CHARS") else {
        return Ok((200.0, 2000.0));
    };
    let (min, max) = range.split_once(',').context("ANSWER_CHARS is MIN,MAX")?;
    Ok((min.trim().parse()?, max.trim().parse()?))
}

/// A chat completion whose answer has `length` characters, as an upstream returns it.
fn answer(i: usize, length: usize) -> CachedAnswer {
    let words = [
        "the ",
        "answer ",
        "depends ",
        "on ",
        "context, ",
        "and ",
        "here ",
    ];
    let content: String = words.iter().cycle().take(length / 6).copied().collect();
    let completion = json!({
        "id": format!("chatcmpl-{i:012}"),
        "object": "chat.completion",
        "created": 1_760_000_000 + i,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 40, "completion_tokens": length / 4, "total_tokens": 40 + length / 4},
        "system_fingerprint": "fp_0123456789"
    });
    let completion: Map<String, Value> = match completion {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    CachedAnswer {
        completion,
        tokens: Tokens::new(40, length as u64 / 4, TokenSource::Usage),
        model: "small".into(),
    }
}
