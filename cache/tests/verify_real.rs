//! Semantic-cache decisions with the real all-MiniLM-L6-v2 model: the false hits a plain
//! cosine threshold makes, and that verification turns into misses. Skipped (loudly) when the
//! models are absent, unless `FRUGAL_REQUIRE_MODELS` is set.

#![allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use frugal_cache::{
    Embedder, Guard, IndexConfig, MiniLmEmbedder, MiniLmOptions, ModelPaths, VectorIndex, Verifier,
    DEFAULT_SIMILARITY_THRESHOLD,
};

fn embedder() -> Option<&'static MiniLmEmbedder> {
    static EMBEDDER: OnceLock<Option<MiniLmEmbedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let default_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
            let paths = ModelPaths::from_env_or(&default_dir);
            if !paths.embedder_dir.exists() && std::env::var_os("FRUGAL_REQUIRE_MODELS").is_none()
            {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!! SKIPPING real-model verification tests: {} is absent. Run \
                     scripts/fetch-models.sh (set FRUGAL_REQUIRE_MODELS=1 to make this a failure).\n",
                    paths.embedder_dir.display()
                );
                return None;
            }
            Some(MiniLmEmbedder::load(&paths, &MiniLmOptions::default()).unwrap())
        })
        .as_ref()
}

/// Stores `cached`, looks `query` up: the similarity of the nearest entry and the guards that
/// reject it.
fn lookup(embedder: &MiniLmEmbedder, cached: &str, query: &str) -> (f32, Vec<Guard>) {
    let vectors = embedder.embed(&[cached, query]).unwrap();
    let mut index = VectorIndex::new(embedder.dim(), IndexConfig::default());
    index.insert(7, &vectors[0]).unwrap();
    let nearest = index.nearest(&vectors[1], 1).unwrap()[0];
    assert_eq!(nearest.id, 7);
    let verdict = Verifier::default().verify_texts(query, cached);
    (nearest.similarity, verdict.fired().iter().collect())
}

#[test]
fn near_identical_prompts_that_ask_different_things_are_rejected() {
    let Some(embedder) = embedder() else { return };
    for (cached, query, guard) in [
        ("What is 2+2?", "What is 2+3?", Guard::Numbers),
        (
            "How do I enable two-factor authentication on GitHub?",
            "How do I disable two-factor authentication on GitHub?",
            Guard::Antonym,
        ),
        (
            "Why does my Python script run slowly?",
            "Why doesn't my Python script run slowly?",
            Guard::Negation,
        ),
        (
            "Did Apple sue Samsung over the iPhone design?",
            "Did Samsung sue Apple over the iPhone design?",
            Guard::Order,
        ),
    ] {
        let (similarity, fired) = lookup(embedder, cached, query);
        assert!(
            similarity >= 0.85,
            "{cached:?} / {query:?}: cosine {similarity} is not the false hit this test is about"
        );
        assert!(
            fired.contains(&guard),
            "{cached:?} / {query:?}: fired {fired:?}"
        );
    }
}

#[test]
fn a_rephrased_prompt_is_a_semantic_hit() {
    let Some(embedder) = embedder() else { return };
    let (similarity, fired) = lookup(
        embedder,
        "How can I learn Python quickly?",
        "How do I learn Python quickly?",
    );
    assert!(
        similarity >= DEFAULT_SIMILARITY_THRESHOLD,
        "cosine {similarity}"
    );
    assert_eq!(fired, []);
}
