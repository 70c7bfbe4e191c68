//! The `cache:` section.

use super::super::raw::RawCache;
use super::errors::Errors;
use super::types::{CacheMode, CachePolicy, SemanticPolicy};
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
    let semantic = raw.semantic.unwrap_or(true).then_some(SemanticPolicy {
        threshold,
        max_tokens,
        verifier: frugal_cache::Verifier::new(guards),
    });
    CachePolicy {
        mode,
        semantic,
        ttl: duration(raw.ttl.as_deref(), "cache.ttl", defaults.ttl, errors),
        max_bytes: raw.max_bytes.unwrap_or(defaults.max_bytes),
        max_temperature,
        namespace,
    }
}
