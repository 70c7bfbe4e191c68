//! Following the other replicas: a starting replica loads the newest semantic entries (within
//! `shared.warm_timeout`, holding back readiness no longer), then reads every new entry into its
//! own index as it arrives. An entry points at its answer's key; the answer is fetched on the
//! first hit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use frugal_cache::SemanticSlot;
use frugal_shared::stream::{id_millis, FROM_START};
use frugal_shared::{SemanticEntry, StreamBatch};

use super::answers::unix_millis;
use super::SharedTier;
use crate::metrics;
use crate::stage::cache::ResponseCache;

/// Most entries one read takes.
const READ_COUNT: usize = 256;
/// How long one read waits for new entries.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Wait after a failed read before the next (Redis reconnects meanwhile).
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Warms the index, clears `warming` (readiness), then follows the stream until aborted.
pub async fn run(tier: Arc<SharedTier>, cache: Arc<ResponseCache>, warming: Arc<AtomicBool>) {
    if !tier.shares_cache() {
        warming.store(false, Ordering::Relaxed);
        return;
    }
    let warmed = tokio::time::timeout(tier.policy.warm_timeout, warm(&tier, &cache)).await;
    let mut last_id = match warmed {
        Ok(Some(last_id)) => last_id,
        Ok(None) => FROM_START.to_string(),
        Err(_) => {
            tracing::warn!(
                timeout = ?tier.policy.warm_timeout,
                "shared tier warm-up took too long; serving, and reading the stream from its start"
            );
            FROM_START.to_string()
        }
    };
    warming.store(false, Ordering::Relaxed);
    loop {
        match tier
            .client
            .read_entries(&last_id, READ_COUNT, READ_BLOCK)
            .await
        {
            Ok(batch) => {
                let count = batch.entries.len();
                let newest_ms = batch.entries.last().and_then(|(id, _)| id_millis(id));
                last_id = index(&tier, &cache, batch);
                if let Some(ms) = newest_ms {
                    let lag = unix_millis().saturating_sub(ms) as f64 / 1000.0;
                    metrics::record_shared_stream_lag(count, lag);
                }
            }
            Err(e) => {
                tier.failed("read", &e);
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Loads the newest `shared.warm_entries` into the index; the id to follow from, or `None`
/// when Redis could not be read.
async fn warm(tier: &SharedTier, cache: &ResponseCache) -> Option<String> {
    if tier.policy.warm_entries == 0 {
        return None;
    }
    match tier
        .client
        .newest_entries(tier.policy.warm_entries, tier.policy.warm_timeout)
        .await
    {
        Ok(batch) => {
            let loaded = batch.entries.len();
            let last_id = index(tier, cache, batch);
            metrics::record_shared_warm(loaded);
            tracing::info!(entries = loaded, "shared tier warm-up done");
            Some(last_id)
        }
        Err(e) => {
            tier.failed("warm", &e);
            None
        }
    }
}

/// Indexes a batch's entries (other replicas' only); returns the id to read after.
fn index(tier: &SharedTier, cache: &ResponseCache, batch: StreamBatch) -> String {
    if batch.malformed > 0 {
        tracing::warn!(
            entries = batch.malformed,
            "skipped semantic entries that do not decode"
        );
    }
    for (_, entry) in batch.entries {
        if entry.origin == tier.origin {
            continue;
        }
        let SemanticEntry {
            key,
            scope,
            question,
            vector,
            ..
        } = entry;
        cache.index_elsewhere(
            key,
            SemanticSlot {
                scope,
                question,
                vector: Some(vector),
            },
        );
    }
    batch.last_id
}
