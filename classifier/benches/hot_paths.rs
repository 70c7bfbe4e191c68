//! Criterion micro-benchmark of the classifier's text features (what routing computes per
//! request besides the shared embedding). `cargo bench -p frugal-classifier`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn features(c: &mut Criterion) {
    let short = "What is the capital of Norway?";
    let long = "A train leaves the station at 9:40 and travels 120 km at 80 km/h, then stops for \
                15 minutes and covers the remaining 60 km at 90 km/h. When does it arrive? Show \
                your reasoning step by step and give the final answer as HH:MM.";
    c.bench_function("features::extract (short question)", |b| {
        b.iter(|| frugal_classifier::features::extract(black_box(short)));
    });
    c.bench_function("features::extract (math word problem)", |b| {
        b.iter(|| frugal_classifier::features::extract(black_box(long)));
    });
}

criterion_group!(benches, features);
criterion_main!(benches);
