//! The embeddings cache: every input's embedding under a key of its own, as the upstream
//! returned it, with the tokens it was billed for; bounded by bytes and expiring after a TTL
//! (the same moka store as the response cache, without its semantic tier).
//!
//! An input's key is the response cache's exact key (frugal-cache's [`CacheScope`]: the
//! tenant as it named itself, its cache namespace, the model alias) over the request's
//! fields that decide the vector (`encoding_format`, `dimensions`, any field the client adds)
//! and the input itself; `user` is left out. So an input never hits across tenants, models,
//! encodings or dimensions.

use std::sync::Arc;

use frugal_cache::{CacheKey, CacheScope, StoreLimits, Weighted};
use serde_json::{Map, Value};

use crate::policy::EmbeddingCachePolicy;

/// One input's stored embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEmbedding {
    /// The `embedding` value as JSON text: an array of numbers, or a base64 string.
    pub embedding: String,
    /// The input tokens the upstream billed for this input.
    pub tokens: u64,
}

impl Weighted for CachedEmbedding {
    /// Its text and the struct in its `Arc`.
    fn weight(&self) -> u32 {
        let bytes = self.embedding.len()
            + std::mem::size_of::<Self>()
            + crate::stage::cache::ARC_HEADER_BYTES;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// The store of embeddings by input key.
pub type EmbeddingCache = frugal_cache::ResponseCache<CachedEmbedding>;

/// A store sized and timed by the policy (read at start, like the response cache's).
pub fn embedding_cache(policy: &EmbeddingCachePolicy) -> EmbeddingCache {
    let limits = StoreLimits {
        max_bytes: policy.max_bytes,
        ttl: policy.ttl,
    };
    EmbeddingCache::new(limits, Arc::new(()))
}

/// The key of each input: `scope`, the fields that decide the vector (`params`) and the input.
pub fn input_keys(
    scope: CacheScope<'_>,
    params: &Map<String, Value>,
    items: &[Value],
) -> Vec<CacheKey> {
    items
        .iter()
        .map(|item| {
            let mut body = params.clone();
            body.insert("input".into(), item.clone());
            scope.exact_key(&body)
        })
        .collect()
}

/// What the cache did for a request, as the `x-frugal-cache` response header and the decision
/// log show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingLookup {
    /// Every input came from the cache; nothing was sent upstream.
    Hit,
    /// Some inputs came from the cache, the rest from one upstream call.
    Partial,
    /// Looked up (or refreshed), nothing found; every input went upstream.
    Miss,
    /// Not looked up: the cache is off, or the client said `bypass`.
    Bypass,
}

impl EmbeddingLookup {
    /// Of a request with `total` inputs, `cached` of them served from the cache.
    pub fn of(looked_up: bool, cached: usize, total: usize) -> Self {
        match (looked_up, cached) {
            (false, _) => Self::Bypass,
            (true, 0) => Self::Miss,
            (true, n) if n == total => Self::Hit,
            (true, _) => Self::Partial,
        }
    }

    /// Header value and decision-log outcome.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Partial => "partial",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope<'a>(tenant: &'a str, model: &'a str) -> CacheScope<'a> {
        CacheScope {
            tenant,
            namespace: "default",
            model,
        }
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_input_has_the_same_key_wherever_it_stands_in_a_request() {
        let p = params(json!({"encoding_format": "float"}));
        let a = input_keys(scope("t", "m"), &p, &[json!("x"), json!("y")]);
        let b = input_keys(scope("t", "m"), &p, &[json!("y"), json!("z"), json!("x")]);
        assert_eq!(a[0], b[2]);
        assert_eq!(a[1], b[0]);
        assert_ne!(a[0], a[1]);
    }

    #[test]
    fn keys_differ_by_tenant_model_encoding_dimensions_and_other_fields() {
        let item = [json!("same text")];
        let base = input_keys(
            scope("t", "m"),
            &params(json!({"encoding_format": "float"})),
            &item,
        );
        let others = [
            input_keys(
                scope("u", "m"),
                &params(json!({"encoding_format": "float"})),
                &item,
            ),
            input_keys(
                scope("t", "n"),
                &params(json!({"encoding_format": "float"})),
                &item,
            ),
            input_keys(
                scope("t", "m"),
                &params(json!({"encoding_format": "base64"})),
                &item,
            ),
            input_keys(
                scope("t", "m"),
                &params(json!({"encoding_format": "float", "dimensions": 256})),
                &item,
            ),
            input_keys(
                scope("t", "m"),
                &params(json!({"encoding_format": "float", "extra": true})),
                &item,
            ),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        let tokens = input_keys(
            scope("t", "m"),
            &params(json!({"encoding_format": "float"})),
            &[json!([1, 2])],
        );
        assert_ne!(base, tokens);
    }

    #[test]
    fn the_outcome_names_how_much_the_cache_served() {
        assert_eq!(EmbeddingLookup::of(false, 0, 3), EmbeddingLookup::Bypass);
        assert_eq!(EmbeddingLookup::of(true, 0, 3), EmbeddingLookup::Miss);
        assert_eq!(EmbeddingLookup::of(true, 2, 3), EmbeddingLookup::Partial);
        assert_eq!(EmbeddingLookup::of(true, 3, 3), EmbeddingLookup::Hit);
    }

    #[test]
    fn a_stored_embedding_weighs_its_text() {
        let cache = embedding_cache(&EmbeddingCachePolicy {
            max_bytes: 500,
            ..EmbeddingCachePolicy::default()
        });
        let entry = |text: &str| {
            Arc::new(CachedEmbedding {
                embedding: text.to_string(),
                tokens: 1,
            })
        };
        cache.store_exact([1; 32], entry(&"x".repeat(100)));
        assert!(cache.get(&[1; 32]).is_some());
        cache.store_exact([2; 32], entry(&"y".repeat(100)));
        let kept = [[1; 32], [2; 32]]
            .iter()
            .filter(|k| cache.get(k).is_some())
            .count();
        // Each is 100 bytes of text, the struct in its Arc and the store's own entry.
        assert_eq!(kept, 1, "two entries of ~350 bytes do not fit in 500");
    }
}
