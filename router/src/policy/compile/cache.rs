//! The `cache:` section.

use super::super::raw::{RawCache, RawEmbeddingCache};
use super::errors::Errors;
use super::types::{CacheMode, CachePolicy, EmbeddingCachePolicy, SemanticPolicy};
use super::values::duration;

pub(super) fn compile_cache(raw: Option<&RawCache>, errors: &mut Errors) -> CachePolicy {
    let defaults = CachePolicy::default();
    let Some(raw) = raw else { return defaults };
    let mode = match raw.mode.as_ref().map(|m| m.name()) {
        None | Some("on") => CacheMode::On,
        Some("off") => CacheMode::Off,
        Some("shadow") => CacheMode::Shadow,
        Some(other) => {
            errors.push(
                "cache.mode",
                format!("`{other}` is not a mode: use off, shadow or on"),
            );
            CacheMode::Off
        }
    };
    if raw.max_bytes == Some(0) {
        errors.push("cache.max_bytes", "must be greater than 0");
    }
    let max_temperature = raw.max_temperature.unwrap_or(defaults.max_temperature);
    if !(0.0..=2.0).contains(&max_temperature) {
        errors.push("cache.max_temperature", "must be between 0 and 2");
    }
    let namespace = raw.namespace.clone().unwrap_or(defaults.namespace);
    if namespace.is_empty() {
        errors.push("cache.namespace", "must not be empty");
    }
    let threshold = raw
        .similarity_threshold
        .unwrap_or(frugal_cache::DEFAULT_SIMILARITY_THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        errors.push("cache.similarity_threshold", "must be between 0 and 1");
    }
    let guards = match &raw.guards {
        None => frugal_cache::GuardSet::ALL,
        Some(names) => names.join(",").parse().unwrap_or_else(|e| {
            errors.push(
                "cache.guards",
                format!("{e}; guards are all, none, numbers, negation, antonym, quoted, identifiers, urls_paths, entities, order"),
            );
            frugal_cache::GuardSet::ALL
        }),
    };
    let max_tokens = raw
        .semantic_max_tokens
        .unwrap_or(frugal_cache::DEFAULT_SEMANTIC_MAX_TOKENS);
    if !(8..=frugal_cache::MiniLmOptions::default().max_tokens).contains(&max_tokens) {
        errors.push(
            "cache.semantic_max_tokens",
            format!(
                "must be from 8 to {} (what the embedding model reads)",
                frugal_cache::MiniLmOptions::default().max_tokens
            ),
        );
    }
    let prefilter = raw
        .semantic_prefilter
        .unwrap_or(frugal_cache::DEFAULT_PREFILTER_THRESHOLD);
    if !(0.0..=1.0).contains(&prefilter) {
        errors.push(
            "cache.semantic_prefilter",
            "must be between 0 (off) and 1 (a static-vector cosine)",
        );
    }
    let semantic = raw.semantic.unwrap_or(true).then_some(SemanticPolicy {
        threshold,
        max_tokens,
        prefilter: (prefilter > 0.0).then_some(prefilter),
        verifier: frugal_cache::Verifier::new(guards),
    });
    CachePolicy {
        mode,
        semantic,
        ttl: duration(raw.ttl.as_deref(), "cache.ttl", defaults.ttl, errors),
        max_bytes: raw.max_bytes.unwrap_or(defaults.max_bytes),
        max_temperature,
        namespace,
        embeddings: compile_embedding_cache(raw.embeddings.as_ref(), mode, errors),
    }
}

/// The `cache.embeddings` section: on by default exactly when the chat cache serves hits
/// (`cache.mode: on`); an exact repeat of an input is the same vector, so there is nothing to
/// shadow first.
fn compile_embedding_cache(
    raw: Option<&RawEmbeddingCache>,
    chat_mode: CacheMode,
    errors: &mut Errors,
) -> EmbeddingCachePolicy {
    let defaults = EmbeddingCachePolicy::default();
    let default_raw = RawEmbeddingCache::default();
    let raw = raw.unwrap_or(&default_raw);
    let on = match raw.mode.as_ref().map(|m| m.name()) {
        None => chat_mode == CacheMode::On,
        Some("on") => true,
        Some("off") => false,
        Some(other) => {
            errors.push(
                "cache.embeddings.mode",
                format!("`{other}` is not a mode: use off or on"),
            );
            false
        }
    };
    if raw.max_bytes == Some(0) {
        errors.push("cache.embeddings.max_bytes", "must be greater than 0");
    }
    EmbeddingCachePolicy {
        on,
        ttl: duration(
            raw.ttl.as_deref(),
            "cache.embeddings.ttl",
            defaults.ttl,
            errors,
        ),
        max_bytes: raw.max_bytes.unwrap_or(defaults.max_bytes),
    }
}
