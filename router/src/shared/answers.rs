//! Answers through the shared tier: fetched by exact key when this replica lacks them, and
//! published (answer under its key, question into the stream) when this replica stores one.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use frugal_cache::{CacheKey, SemanticSlot};
use frugal_shared::{SemanticEntry, SharedError};

use super::SharedTier;
use crate::stage::cache::CachedAnswer;

/// The stream keeps at least this many of the newest entries (more when warm-up asks for more).
const STREAM_MIN_LEN: usize = 10_000;

/// What the shared tier holds under a key.
pub enum Fetched {
    /// The answer.
    Found(Arc<CachedAnswer>),
    /// Nothing: never stored, evicted or expired.
    Gone,
    /// Redis did not answer in time (or failed): nothing is known.
    Unavailable,
}

impl SharedTier {
    /// Whether answers are shared.
    pub fn shares_cache(&self) -> bool {
        self.policy.cache
    }

    /// The answer stored under `key` by any replica.
    pub async fn fetch(&self, key: &CacheKey) -> Fetched {
        match self.client.get_answer(key).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<CachedAnswer>(&bytes) {
                Ok(answer) => Fetched::Found(Arc::new(answer)),
                Err(e) => {
                    self.failed("get", &SharedError::Malformed(e.to_string()));
                    Fetched::Gone
                }
            },
            Ok(None) => Fetched::Gone,
            Err(e) => {
                self.failed("get", &e);
                Fetched::Unavailable
            }
        }
    }

    /// Publishes an answer this replica stored: under its key for `cache.ttl`, and its question
    /// (when it has been embedded) into the stream. In the background: the client does not wait.
    pub fn publish(
        self: &Arc<Self>,
        key: CacheKey,
        semantic: Option<SemanticSlot>,
        answer: &CachedAnswer,
    ) {
        let bytes = match serde_json::to_vec(answer) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.failed("put", &SharedError::Malformed(e.to_string()));
                return;
            }
        };
        let tier = self.clone();
        tokio::spawn(async move {
            if let Err(e) = tier.client.put_answer(&key, &bytes, tier.cache_ttl).await {
                tier.failed("put", &e);
                return;
            }
            if let Some(slot) = semantic {
                tier.append_question(key, slot).await;
            }
        });
    }

    /// Publishes the question of an answer already published, once it has been embedded (after
    /// the answer was sent: the prefilter kept the model off the request path).
    pub fn publish_question(self: &Arc<Self>, key: CacheKey, semantic: SemanticSlot) {
        let tier = self.clone();
        tokio::spawn(async move { tier.append_question(key, semantic).await });
    }

    /// Appends a question with its embedding to the stream; one without is not shared.
    async fn append_question(&self, key: CacheKey, slot: SemanticSlot) {
        let Some(vector) = slot.vector else { return };
        let entry = SemanticEntry {
            key,
            scope: slot.scope,
            created_ms: unix_millis(),
            origin: self.origin,
            question: slot.question,
            vector,
        };
        let max_len = self.policy.warm_entries.max(STREAM_MIN_LEN);
        if let Err(e) = self.client.append_entry(&entry, max_len).await {
            self.failed("append", &e);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
