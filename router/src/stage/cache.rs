//! The response cache's exact tier: a request identical to an earlier one (same tenant,
//! namespace, model, messages, tools, sampling parameters — every field but the streaming
//! switches) is answered from the stored answer. Only complete answers (`finish_reason: stop`)
//! are stored; requests sampled hotter than the policy allows, or asking for several choices,
//! are never cached. A hit costs nothing, so it is served even when the tenant's budget is spent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use moka::notification::RemovalCause;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::metrics;
use crate::policy::CachePolicy;
use crate::stage::account::Tokens;
use crate::stage::semantic::SemanticIndex;

/// Request fields that change how an answer is delivered, not what it says.
const DELIVERY_FIELDS: &[&str] = &["stream", "stream_options"];

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

/// A stored answer.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    /// The chat completion object as first answered.
    pub completion: Map<String, Value>,
    /// Its token counts, which price the saving of every hit.
    pub tokens: Tokens,
    /// Alias of the model that answered (`x-frugal-model` on every hit).
    pub model: String,
}

impl CachedAnswer {
    fn weight(&self) -> u32 {
        let bytes = Value::Object(self.completion.clone()).to_string().len() + 64;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// The key of a request in the exact tier.
pub type CacheKey = [u8; 32];

/// The cache store: bounded by bytes, entries expire after the policy's TTL.
pub struct ResponseCache {
    store: moka::sync::Cache<CacheKey, Arc<CachedAnswer>>,
    seq: AtomicU64,
    /// The semantic tier's vectors over the stored answers' questions.
    pub semantic: Arc<SemanticIndex>,
}

impl ResponseCache {
    /// A store sized and timed by the policy (changes to these two apply on restart).
    pub fn new(policy: &CachePolicy) -> Self {
        let semantic = Arc::new(SemanticIndex::new());
        let tombstones = semantic.clone();
        let store = moka::sync::Cache::builder()
            .max_capacity(policy.max_bytes)
            .weigher(|_key: &CacheKey, answer: &Arc<CachedAnswer>| answer.weight())
            .time_to_live(policy.ttl)
            .eviction_listener(move |key: Arc<CacheKey>, _answer, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    metrics::record_cache_eviction();
                    tombstones.evicted(*key);
                }
            })
            .build();
        Self {
            semantic,
            store,
            seq: AtomicU64::new(0),
        }
    }

    /// The stored answer for a key.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<CachedAnswer>> {
        self.store.get(key)
    }

    /// Stores an answer.
    pub fn insert(&self, key: CacheKey, answer: CachedAnswer) {
        self.store.insert(key, Arc::new(answer));
        self.store.run_pending_tasks();
        metrics::record_cache_size(self.store.entry_count(), self.store.weighted_size());
    }

    /// Stores an answer in its slot: the exact tier and, with a semantic entry, the index.
    pub fn store(&self, slot: crate::stage::lookup::CacheSlot, answer: CachedAnswer) {
        self.insert(slot.key, answer);
        if let Some(entry) = slot.semantic {
            self.semantic
                .insert(entry.scope, slot.key, &entry.question, &entry.vector);
        }
    }

    fn next_id(&self) -> String {
        format!(
            "chatcmpl-frugal{:08}",
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A hit as a JSON completion, with a fresh id and creation time.
    pub fn hit_json(&self, answer: &CachedAnswer) -> Bytes {
        let mut completion = answer.completion.clone();
        completion.insert("id".into(), Value::String(self.next_id()));
        completion.insert("created".into(), json!(unix_now()));
        Bytes::from(Value::Object(completion).to_string())
    }

    /// A hit replayed as SSE frames, ending with `[DONE]`.
    pub fn hit_stream(&self, answer: &CachedAnswer, include_usage: bool) -> Vec<Bytes> {
        crate::sse::completion_frames(
            &answer.completion,
            &self.next_id(),
            unix_now(),
            include_usage,
        )
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

/// The exact-tier key: tenant, namespace, model alias and every request field except the
/// delivery switches, in canonical form (object keys sorted), so any field a client adds is
/// part of the key and can never cause a false hit.
pub fn key(tenant: &str, namespace: &str, model: &str, body: &Map<String, Value>) -> CacheKey {
    request_hash(b"", tenant, namespace, model, body)
}

/// SHA-256 of `domain` (which keeps hashes of different uses apart), tenant, namespace, model
/// alias and every request field except the model and the delivery switches, canonical.
pub fn request_hash(
    domain: &[u8],
    tenant: &str,
    namespace: &str,
    model: &str,
    body: &Map<String, Value>,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    for part in [tenant, namespace, model] {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let fields: Map<String, Value> = body
        .iter()
        .filter(|(k, _)| !DELIVERY_FIELDS.contains(&k.as_str()) && k.as_str() != "model")
        .map(|(k, v)| (k.clone(), canonical(v)))
        .collect();
    hasher.update(canonical(&Value::Object(fields)).to_string().as_bytes());
    hasher.finalize().into()
}

/// The value with every object's keys sorted.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
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

    #[test]
    fn key_ignores_key_order_and_delivery_but_not_content() {
        let a = body(
            json!({"messages":[{"role":"user","content":"hi"}],"temperature":0,"stream":true}),
        );
        let b = body(json!({"temperature":0,"messages":[{"content":"hi","role":"user"}]}));
        assert_eq!(key("t", "ns", "m", &a), key("t", "ns", "m", &b));
        let c = body(json!({"temperature":0,"messages":[{"content":"hi!","role":"user"}]}));
        assert_ne!(key("t", "ns", "m", &a), key("t", "ns", "m", &c));
        assert_ne!(
            key("t", "ns", "m", &a),
            key("u", "ns", "m", &a),
            "never across tenants"
        );
        assert_ne!(
            key("t", "ns", "m", &a),
            key("t", "other", "m", &a),
            "never across namespaces"
        );
        let d = body(json!({"temperature":0,"messages":[{"content":"hi","role":"user"}],"seed":1}));
        assert_ne!(
            key("t", "ns", "m", &b),
            key("t", "ns", "m", &d),
            "unknown fields are part of the key"
        );
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
