//! Criterion micro-benchmarks of the cache's per-request work: the exact and semantic keys
//! (canonical hashing of the body), and the guards (analysing a question, verifying a pair).
//! `cargo bench -p frugal-cache`; figures in BENCHMARKS.md come from scripts/bench.sh instead.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use frugal_cache::{Analysis, CacheScope, GuardSet, SplitQuestion, Verifier};
use serde_json::{json, Map, Value};

fn body() -> Map<String, Value> {
    let value = json!({
        "model": "gpt-4o-mini", "temperature": 0, "max_tokens": 200,
        "messages": [
            { "role": "system", "content": "You are a support agent for Acme. Be brief and polite." },
            { "role": "user", "content": "My order 1234 has not arrived. What can I do?" },
            { "role": "assistant", "content": "Sorry to hear that. Could you tell me when you ordered?" },
            { "role": "user", "content": "Last Tuesday, and the tracking page has not changed since." }
        ]
    });
    value.as_object().cloned().unwrap_or_default()
}

fn keys(c: &mut Criterion) {
    let body = body();
    let scope = CacheScope {
        tenant: "acme",
        namespace: "default",
        model: "gpt-4o-mini",
    };
    c.bench_function("exact_key (4 messages)", |b| {
        b.iter(|| scope.exact_key(black_box(&body)));
    });
    c.bench_function("semantic_key (4 messages)", |b| {
        b.iter(|| {
            scope.semantic_key(black_box(&body), |content| SplitQuestion {
                question: content
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                rest: Value::Null,
            })
        });
    });
}

fn guards(c: &mut Criterion) {
    let query = "How can I reset the password of my account on version 2.4?";
    let cached = "How do I reset my account password in version 2.4?";
    c.bench_function("Analysis::new (one question)", |b| {
        b.iter(|| Analysis::new(black_box(query)));
    });
    let (q, s) = (Analysis::new(query), Analysis::new(cached));
    let verifier = Verifier::new(GuardSet::ALL);
    c.bench_function("Verifier::verify (all guards, analysed)", |b| {
        b.iter(|| verifier.verify(black_box(&q), black_box(&s)));
    });
}

criterion_group!(benches, keys, guards);
criterion_main!(benches);
