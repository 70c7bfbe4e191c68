//! Criterion micro-benchmarks of the router's per-request work: counting tokens (o200k_base)
//! and parsing a relayed SSE stream. `cargo bench -p frugal`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use frugal::sse::SseParser;
use serde_json::json;

fn tokens(c: &mut Criterion) {
    let paragraph = "Retrieval-augmented agents send long contexts: abstracts, tool results and \
                     documentation, most of which the question never needs. "
        .repeat(40);
    let mut group = c.benchmark_group("tokens::count");
    group.throughput(Throughput::Bytes(paragraph.len() as u64));
    group.bench_function("about 1,000 tokens", |b| {
        b.iter(|| frugal::tokens::count(black_box(&paragraph)));
    });
    group.finish();
    let body = json!({ "model": "m", "messages": [
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": paragraph }] });
    let body = body.as_object().cloned().unwrap_or_default();
    c.bench_function("tokens::prompt_tokens (2 messages)", |b| {
        b.iter(|| frugal::tokens::prompt_tokens(black_box(&body)));
    });
}

fn sse(c: &mut Criterion) {
    let mut stream = String::new();
    for i in 0..50 {
        stream.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    stream.push_str("data: [DONE]\n\n");
    let bytes = stream.into_bytes();
    let mut group = c.benchmark_group("SseParser::push");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("50 chunks in 1 KiB pieces", |b| {
        b.iter(|| {
            let mut parser = SseParser::default();
            let mut events = 0;
            for piece in bytes.chunks(1024) {
                events += parser.push(black_box(piece)).len();
            }
            events
        });
    });
    group.finish();
}

criterion_group!(benches, tokens, sse);
criterion_main!(benches);
