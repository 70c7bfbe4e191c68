//! Shadow-mode evidence for the cache: when the cache would have served an answer but the
//! upstream answered instead, the two answers are compared (cosine similarity of their
//! embeddings, off the request path). Agreement counts and the dollars the hit would have saved
//! tell an operator what turning the cache on would give, and how often it would be wrong.

use std::sync::Arc;
use std::time::Duration;

use frugal_cache::{CacheTier, ShadowVerdict};
use serde_json::{Map, Value};

use crate::decisions::PendingRecord;
use crate::embed_worker::EmbedWorker;
use crate::metrics;
use crate::money::Usd;
use crate::stage::cache::CachedAnswer;
use crate::tokens;

/// Answers this similar (cosine of their embeddings) count as the same answer.
pub const AGREEMENT: f32 = 0.85;

/// How long a comparison may wait for its embeddings (it runs after the reply is sent).
const DEADLINE: Duration = Duration::from_secs(5);

/// A would-be cache hit in shadow mode: compared with the fresh answer once it completes.
#[derive(Debug)]
pub struct ShadowCandidate {
    /// The tier that would have served it.
    pub tier: CacheTier,
    /// The answer the cache holds.
    pub cached: Arc<CachedAnswer>,
}

/// Compares a would-be cached answer with the fresh one in the background and records the
/// verdict and the saving the hit would have brought; the request's decision record, if any,
/// is written once the verdict is in it.
pub fn compare(
    worker: Option<Arc<EmbedWorker>>,
    candidate: ShadowCandidate,
    fresh: &Map<String, Value>,
    would_save: Usd,
    record: Option<PendingRecord>,
) {
    let ShadowCandidate { tier, cached } = candidate;
    metrics::record_shadow_saving(tier, would_save);
    let Some(worker) = worker else {
        if let Some(record) = record {
            record.write();
        }
        return;
    };
    let cached = text_of(&cached.completion);
    let fresh = text_of(fresh);
    tokio::spawn(async move {
        let verdict = if cached == fresh {
            ShadowVerdict::Agree
        } else {
            match worker.embed_many(&[&cached, &fresh], DEADLINE).await {
                Some(v) if v.len() == 2 => {
                    if frugal_cache::cosine(&v[0], &v[1]) >= AGREEMENT {
                        ShadowVerdict::Agree
                    } else {
                        ShadowVerdict::Differ
                    }
                }
                _ => {
                    if let Some(record) = record {
                        record.write();
                    }
                    return;
                }
            }
        };
        if let Some(mut record) = record {
            record.record.cache.shadow = Some(verdict.as_str().to_string());
            record.write();
        }
        metrics::record_shadow_comparison(tier, verdict);
    });
}

/// The first choice's message text of a chat completion object.
pub fn text_of(completion: &Map<String, Value>) -> String {
    completion
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .map(|c| tokens::content_text(c.get("message").and_then(|m| m.get("content"))))
        .unwrap_or_default()
}
