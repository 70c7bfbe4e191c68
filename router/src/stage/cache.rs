//! The router's side of the response cache (the store, the semantic index and the keys are
//! frugal-cache's): what the client asked of it (`x-frugal-cache`), which requests may be cached
//! and which answers stored, what a stored answer holds, how a hit is replayed, and the metrics
//! of the store. A request identical to an earlier one (same tenant, namespace, model,
//! messages, tools, sampling parameters — every field but the streaming switches) is answered
//! from the stored answer. Only complete answers (`finish_reason: stop`) are stored; requests
//! sampled hotter than the policy allows, or asking for several choices, are never cached. A
//! hit costs nothing, so it is served even when the tenant's budget is spent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use frugal_cache::{
    ModelPaths, StaticEmbedder, StaticModelError, StoreEvents, StoreLimits, Weighted,
};
use serde_json::{json, Map, Value};

use crate::metrics;
use crate::policy::{CacheMode, CachePolicy, Policy};
use crate::stage::account::Tokens;

/// What the client asked of the cache (`x-frugal-cache` request header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheControl {
    /// Look up, and store the answer on a miss.
    #[default]
    Default,
    /// Neither look up nor store.
    Bypass,
    /// Skip the lookup but store the fresh answer.
    Refresh,
}

impl CacheControl {
    /// Parses the header value; unknown values are `None`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "default" => Some(Self::Default),
            "bypass" => Some(Self::Bypass),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// The outcome of a lookup, as the `x-frugal-cache` response header and metric label show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Served from the exact tier.
    Exact,
    /// Served from the semantic tier.
    Semantic,
    /// Looked up, not found (or refreshed); the answer may be stored.
    Miss,
    /// Not looked up: cache off, ineligible request, or the client said so.
    Bypass,
    /// Shadow mode found an answer but upstream answered anyway.
    ShadowHit,
}

impl Lookup {
    /// Header value and metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Semantic => "semantic",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
            Self::ShadowHit => "shadow_hit",
        }
    }
}

/// A stored answer (as JSON, too, in the shared tier).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CachedAnswer {
    /// The chat completion object as first answered.
    pub completion: Map<String, Value>,
    /// Its token counts, which price the saving of every hit.
    pub tokens: Tokens,
    /// Alias of the model that answered (`x-frugal-model` on every hit).
    pub model: String,
}

impl Weighted for CachedAnswer {
    /// An estimate of the memory it holds: the struct in its `Arc`, the model alias, and the
    /// completion as serde_json holds it, which is some three times its JSON text for a short
    /// answer (checked against the resident growth by `examples/cache_memory.rs`).
    fn weight(&self) -> u32 {
        let bytes = std::mem::size_of::<Self>()
            + ARC_HEADER_BYTES
            + allocation(self.model.len())
            + map_bytes(&self.completion);
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// The two reference counts in front of an `Arc`'s value.
pub(crate) const ARC_HEADER_BYTES: usize = 16;

/// Memory of a JSON object as serde_json holds it (`preserve_order`: an index map): its entry
/// vector (hash, key and value each, grown by doubling from four) and its hash table of
/// indices, then what the keys and values point to.
fn map_bytes(map: &Map<String, Value>) -> usize {
    let len = map.len();
    if len == 0 {
        return 0;
    }
    let entries = len.next_power_of_two().max(4);
    let entry = std::mem::size_of::<(u64, String, Value)>();
    let buckets = match len {
        0..4 => 4,
        4..8 => 8,
        _ => (len * 8 / 7).next_power_of_two(),
    };
    // One index and one control byte a bucket, and a group's worth of control bytes more.
    let table = buckets * (std::mem::size_of::<usize>() + 1) + 16;
    let contents: usize = map
        .iter()
        .map(|(key, value)| allocation(key.len()) + value_bytes(value))
        .sum();
    entries * entry + table + contents
}

/// Memory a JSON value points to (its own inline size is counted by its container).
fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(text) => allocation(text.len()),
        Value::Array(items) if !items.is_empty() => {
            let slots = items.len().next_power_of_two().max(4);
            slots * std::mem::size_of::<Value>() + items.iter().map(value_bytes).sum::<usize>()
        }
        Value::Object(map) => map_bytes(map),
        _ => 0,
    }
}

/// Bytes the allocator gives a request of `len` bytes: a multiple of 16, and about one part in
/// sixteen more for large ones (its size classes are spaced a quarter apart).
fn allocation(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    (len + len / 16).next_multiple_of(16)
}

impl CachedAnswer {
    /// The answer as a JSON completion, with a fresh id and creation time.
    pub fn replay_json(&self) -> Bytes {
        let mut completion = self.completion.clone();
        completion.insert("id".into(), Value::String(next_id()));
        completion.insert("created".into(), json!(unix_now()));
        Bytes::from(Value::Object(completion).to_string())
    }

    /// The answer replayed as SSE frames, ending with `[DONE]`.
    pub fn replay_stream(&self, include_usage: bool) -> Vec<Bytes> {
        crate::sse::completion_frames(&self.completion, &next_id(), unix_now(), include_usage)
    }
}

/// A fresh completion id for a hit (clients may key on it, so each is different).
fn next_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("chatcmpl-frugal{:08}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The response cache's store and semantic index, holding the router's answers.
pub type ResponseCache = frugal_cache::ResponseCache<CachedAnswer>;

/// A store sized and timed by the policy (changes to these two apply on restart), whose
/// evictions and size show in the metrics, with the semantic tier's prefilter when the policy's
/// cache uses it at start-up (`cache.semantic_prefilter`; its static vectors are loaded here).
pub fn response_cache(policy: &Policy) -> Result<ResponseCache, StaticModelError> {
    let settings = &policy.cache;
    let limits = StoreLimits {
        max_bytes: settings.max_bytes,
        ttl: settings.ttl,
    };
    let prefiltered = settings.mode != CacheMode::Off
        && settings
            .semantic
            .as_ref()
            .is_some_and(|s| s.prefilter.is_some());
    let prefilter = if prefiltered {
        let paths = ModelPaths::from_env_or(&policy.embeddings.config.model_dir);
        Some(Arc::new(StaticEmbedder::load(&paths.static_dir)?))
    } else {
        None
    };
    Ok(ResponseCache::with_prefilter(
        limits,
        Arc::new(CacheMetrics),
        prefilter,
    ))
}

/// Turns the store's events into metrics.
struct CacheMetrics;

impl StoreEvents for CacheMetrics {
    fn evicted(&self) {
        metrics::record_cache_eviction();
    }

    fn resized(&self, entries: u64, bytes: u64) {
        metrics::record_cache_size(entries, bytes);
    }
}

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a request may be cached at all under the policy.
pub fn eligible(policy: &CachePolicy, body: &Map<String, Value>) -> bool {
    not_cacheable(policy, body).is_none()
}

/// Why a request may not be cached under the policy, or `None` when it may.
pub fn not_cacheable(policy: &CachePolicy, body: &Map<String, Value>) -> Option<NotCacheable> {
    // OpenAI's default temperature is 1.
    let temperature = body
        .get("temperature")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    let choices = body.get("n").and_then(Value::as_u64).unwrap_or(1);
    if temperature > policy.max_temperature {
        Some(NotCacheable::Temperature {
            temperature,
            max: policy.max_temperature,
            defaulted: !body.contains_key("temperature"),
        })
    } else if choices != 1 {
        Some(NotCacheable::SeveralChoices(choices))
    } else {
        None
    }
}

/// Why a request is never cached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NotCacheable {
    /// Its sampling temperature is above `cache.max_temperature`.
    Temperature {
        /// The request's temperature (1 when it sets none, as OpenAI assumes).
        temperature: f64,
        /// `cache.max_temperature`.
        max: f64,
        /// Whether the request set no temperature.
        defaulted: bool,
    },
    /// It asks for `n` > 1 answers.
    SeveralChoices(u64),
}

impl std::fmt::Display for NotCacheable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Temperature {
                temperature,
                max,
                defaulted,
            } => {
                if *defaulted {
                    write!(f, "no temperature set (OpenAI's default is 1), above cache.max_temperature {max}")
                } else {
                    write!(
                        f,
                        "temperature {temperature} is above cache.max_temperature {max}"
                    )
                }
            }
            Self::SeveralChoices(n) => write!(f, "it asks for n = {n} answers"),
        }
    }
}

/// Whether an upstream answer is complete and single, so it may be stored.
pub fn storable(completion: &Map<String, Value>) -> bool {
    let choices = completion.get("choices").and_then(Value::as_array);
    choices.is_some_and(|c| {
        c.len() == 1
            && c[0].get("finish_reason").and_then(Value::as_str) == Some("stop")
            && c[0]
                .get("message")
                .and_then(|m| m.get("content"))
                .and_then(Value::as_str)
                .is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn answer_of(content: &str) -> CachedAnswer {
        let completion = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
        });
        CachedAnswer {
            completion: body(completion),
            tokens: Tokens::new(9, 12, crate::stage::account::TokenSource::Usage),
            model: "small".into(),
        }
    }

    #[test]
    fn a_stored_answer_weighs_its_memory_not_its_json_text() {
        let short = answer_of("Hello! How can I help you today?");
        let text = Value::Object(short.completion.clone()).to_string().len();
        let weight = short.weight() as usize;
        // Four maps, a list and a dozen strings: some 3 KB, several times the text.
        assert!(
            (2_500..4_000).contains(&weight),
            "{weight} bytes for {text} of JSON"
        );
        // A longer answer adds its text, and the allocator's slack on it.
        let long = answer_of(&"x".repeat(10_000));
        let added = long.weight() as usize - weight;
        assert!((10_000..11_000).contains(&added), "{added} bytes added");
    }

    #[test]
    fn hot_sampling_and_several_choices_are_not_cached() {
        let policy = CachePolicy {
            max_temperature: 0.5,
            ..CachePolicy::default()
        };
        assert!(eligible(&policy, &body(json!({"temperature":0.2}))));
        assert!(
            !eligible(&policy, &body(json!({}))),
            "absent temperature is 1.0"
        );
        assert!(!eligible(&policy, &body(json!({"temperature":0.2,"n":2}))));
    }
}
