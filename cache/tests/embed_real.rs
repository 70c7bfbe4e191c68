//! The real all-MiniLM-L6-v2 model through the real ONNX Runtime, as installed by
//! `scripts/fetch-models.sh`. Skipped (loudly) when the models are absent, unless
//! `FRUGAL_REQUIRE_MODELS` is set, in which case their absence fails the test.

#![allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use frugal_cache::{cosine, Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};

/// Prints past libtest's output capture (which only catches the `print!` macros), so skips and
/// timings show in a plain `cargo test` run.
macro_rules! report {
    ($($arg:tt)*) => {
        let _ = writeln!(std::io::stderr(), $($arg)*);
    };
}

/// The shared embedder, or `None` when the models are absent and not required.
fn embedder() -> Option<&'static MiniLmEmbedder> {
    static EMBEDDER: OnceLock<Option<MiniLmEmbedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let default_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
            let paths = ModelPaths::from_env_or(&default_dir);
            let required = std::env::var_os("FRUGAL_REQUIRE_MODELS").is_some();
            if !paths.embedder_dir.exists() && !required {
                report!(
                    "\n!!! SKIPPING real-model tests: {} is absent. Run scripts/fetch-models.sh \
                     (set FRUGAL_REQUIRE_MODELS=1 to make this a failure).\n",
                    paths.embedder_dir.display()
                );
                return None;
            }
            let started = Instant::now();
            let embedder = MiniLmEmbedder::load(&paths, &MiniLmOptions::default())
                .unwrap_or_else(|e| panic!("loading the real model from {paths:?}: {e}"));
            report!("loaded {paths:?} in {:?}", started.elapsed());
            Some(embedder)
        })
        .as_ref()
}

fn embed_one(embedder: &MiniLmEmbedder, text: &str) -> Vec<f32> {
    embedder.embed(&[text]).unwrap().remove(0)
}

#[test]
fn vectors_are_384_dimensional_and_unit_length() {
    let Some(embedder) = embedder() else { return };
    assert_eq!(embedder.dim(), 384);
    let texts = [
        "How do I reset my password?",
        "a",
        "",
        "A much longer sentence, with punctuation; numbers like 42 and 3.14, and CamelCase words.",
    ];
    let vectors = embedder.embed(&texts).unwrap();
    assert_eq!(vectors.len(), texts.len());
    for (text, v) in texts.iter().zip(&vectors) {
        assert_eq!(v.len(), 384, "{text:?}");
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?} has norm {norm}");
    }
    assert!(embedder.embed(&[]).unwrap().is_empty());
}

#[test]
fn paraphrases_are_closer_than_unrelated_sentences() {
    let Some(embedder) = embedder() else { return };
    let reset = embed_one(embedder, "How do I reset my password?");
    let forgot = embed_one(embedder, "What is the way to change my forgotten password?");
    let stocks = embed_one(embedder, "The stock market fell sharply on Tuesday.");

    let paraphrase = cosine(&reset, &forgot);
    let unrelated = cosine(&reset, &stocks).max(cosine(&forgot, &stocks));
    report!("paraphrase similarity {paraphrase:.4}, unrelated {unrelated:.4}");
    assert!(
        paraphrase > unrelated,
        "paraphrase {paraphrase} <= unrelated {unrelated}"
    );
}

#[test]
fn a_text_embeds_the_same_alone_and_padded_in_a_batch() {
    // Micro-batching must not change a prompt's vector, or cache hits would depend on which
    // requests happened to share its batch.
    let Some(embedder) = embedder() else { return };
    let text = "How do I reset my password?";
    let alone = embed_one(embedder, text);
    let batch = embedder
        .embed(&[
            "A considerably longer neighbour that forces padding onto the short one, \
             because batches are padded to their longest member.",
            text,
        ])
        .unwrap();
    let similarity = cosine(&alone, &batch[1]);
    assert!(similarity > 0.9999, "similarity {similarity}");
}

#[test]
fn batch_of_32_short_sentences_timing() {
    let Some(embedder) = embedder() else { return };
    let sentences: Vec<String> = (0..32)
        .map(|i| format!("Short question number {i}: how do I reset my password on device {i}?"))
        .collect();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    embedder.embed(&texts).unwrap(); // warm-up

    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        assert_eq!(embedder.embed(&texts).unwrap().len(), 32);
    }
    let per_batch = started.elapsed() / rounds;

    let singles = 20;
    let started = Instant::now();
    for text in texts.iter().take(singles) {
        embedder.embed(&[text]).unwrap();
    }
    let per_single = started.elapsed() / singles as u32;
    report!(
        "embedding speed: batch of 32 short sentences {per_batch:?} ({:?}/sentence); \
         one sentence alone {per_single:?}",
        per_batch / 32
    );
}

#[test]
fn the_length_bounds_agree_with_the_tokenizer() {
    let Some(embedder) = embedder() else { return };
    let word = "reversal ";
    let mut texts: Vec<String> = vec![
        String::new(),
        "How do I reverse a list in Python?".into(),
        "¿Cómo invierto una lista en Python? 日本語の質問です。".into(),
        "한국어 질문입니다 그리고 더 많은 단어".repeat(9),
        "!!!???...,,,;;;".repeat(12),
        "e\u{301}".repeat(70),
        "\u{200b}x ".repeat(90),
        "A".repeat(300),
        "supercalifragilisticexpialidocious ".repeat(5),
    ];
    for n in [
        60, 62, 63, 64, 120, 125, 126, 127, 128, 129, 250, 254, 255, 256, 300,
    ] {
        texts.push("x".repeat(n));
        texts.push(word.repeat(n / word.len() + 1));
        texts.push("a, ".repeat(n / 3));
    }
    for text in &texts {
        for max_tokens in [16, 64, 128, 256, 512] {
            assert_eq!(
                embedder.fits_within(text, max_tokens),
                embedder.tokenized_fits_within(text, max_tokens),
                "{max_tokens} tokens: {text:?}"
            );
        }
    }
}
