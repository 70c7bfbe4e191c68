//! The real static word embeddings (WordLlama l2_supercat, 256-d), as installed by
//! `scripts/fetch-models.sh`, against vectors computed by WordLlama's own Python code on the
//! same files. Skipped (loudly) when the models are absent, unless `FRUGAL_REQUIRE_MODELS` is set.

#![allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]

use std::io::Write;
use std::path::Path;

use frugal_cache::{cosine, ModelPaths, StaticEmbedder};

fn embedder() -> Option<StaticEmbedder> {
    let default_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let paths = ModelPaths::from_env_or(&default_dir);
    if !paths.static_dir.exists() && std::env::var_os("FRUGAL_REQUIRE_MODELS").is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! SKIPPING static-model tests: {} is absent. Run scripts/fetch-models.sh.\n",
            paths.static_dir.display()
        );
        return None;
    }
    Some(StaticEmbedder::load(&paths.static_dir).unwrap())
}

#[test]
fn matches_wordllama_and_ranks_a_paraphrase_above_another_question() {
    let Some(embedder) = embedder() else { return };
    assert_eq!(embedder.dim(), 256);
    let a = embedder.embed("How do I learn Rust quickly?").unwrap();
    let b = embedder
        .embed("What is the fastest way to learn Rust?")
        .unwrap();
    let c = embedder.embed("What is the capital of France?").unwrap();
    // WordLlama 0.4.0's `embed(..., norm=True)` on the same weights and tokenizer.
    let expected = [-0.040_278_85, 0.132_700_06, -0.006_606_96, -0.092_913_16];
    for (got, want) in a.iter().zip(expected) {
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
    assert!((cosine(&a, &b) - 0.858_495_7).abs() < 1e-4);
    assert!((cosine(&a, &c) - 0.005_143_1).abs() < 1e-3);
    assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    assert_eq!(embedder.embed(""), None);
}

#[test]
fn the_prefilter_rules_out_only_questions_far_from_every_stored_one() {
    use std::sync::Arc;
    use std::time::Duration;

    use frugal_cache::{
        CacheSlot, ResponseCache, Screened, SemanticQuery, SemanticSlot, Similar, StoreLimits,
        Verifier, Weighted,
    };

    struct Answer;
    impl Weighted for Answer {
        fn weight(&self) -> u32 {
            1
        }
    }

    let Some(embedder) = embedder() else { return };
    let limits = StoreLimits {
        max_bytes: 1 << 20,
        ttl: Duration::from_secs(60),
    };
    let cache = ResponseCache::with_prefilter(limits, Arc::new(()), Some(Arc::new(embedder)));
    assert!(cache.has_prefilter());
    let (scope, key) = ([1; 32], [9; 32]);
    let screen = |scope, question| cache.screen(scope, question, 0.5).unwrap();
    assert_eq!(
        screen(&scope, "How do I learn Rust quickly?"),
        Screened::Empty
    );
    let entry = SemanticSlot {
        scope,
        question: "How do I learn Rust quickly?".into(),
        vector: None,
    };
    cache.store(
        CacheSlot {
            key,
            semantic: Some(entry.clone()),
        },
        Answer,
    );
    assert!(screen(&scope, "What is the fastest way to learn Rust?").is_near());
    assert!(matches!(
        screen(&scope, "What is the capital of France?"),
        Screened::Far { similarity } if similarity < 0.5
    ));
    assert_eq!(
        screen(&[2; 32], "How do I learn Rust quickly?"),
        Screened::Empty
    );

    // Stored without its embedding, the question is found once the embedding is added.
    let verifier = Verifier::default();
    let vector = vec![1.0, 0.0];
    let query = SemanticQuery {
        scope: &scope,
        question: "How do I learn Rust quickly?",
        vector: &vector,
        threshold: 0.9,
        verifier: &verifier,
    };
    assert!(matches!(cache.find_similar(&query), Similar::Miss));
    cache.index_embedding(key, &entry, &vector);
    assert!(matches!(cache.find_similar(&query), Similar::Hit { .. }));
    cache.forget(&key);
    assert_eq!(
        screen(&scope, "How do I learn Rust quickly?"),
        Screened::Empty
    );
}
