//! The stream of semantic entries: every replica appends what it stores and reads what the
//! others stored (plain XREAD from its own last id: every replica needs every entry, so there
//! is no consumer group), and a starting replica warms from the newest entries.

use std::time::Duration;

use redis::streams::{
    StreamId, StreamMaxlen, StreamRangeReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Value};

use crate::client::{SharedClient, SharedError};
use crate::entry::SemanticEntry;
use crate::keys;

/// The field that holds an entry's bytes.
const FIELD: &str = "e";

/// The id to read after when nothing has been read yet.
pub const FROM_START: &str = "0-0";

/// Entries read from the stream, in stream order, with the id to read after next.
#[derive(Debug, Default)]
pub struct StreamBatch {
    /// Each entry with its stream id; undecodable entries are left out and counted.
    pub entries: Vec<(String, SemanticEntry)>,
    /// Entries that did not decode (written by another version, or damaged).
    pub malformed: usize,
    /// The last id seen, to pass to the next read (unchanged when nothing came).
    pub last_id: String,
}

impl SharedClient {
    /// Appends an entry; the stream keeps about `max_len` of the newest (trimmed lazily).
    pub async fn append_entry(
        &self,
        entry: &SemanticEntry,
        max_len: usize,
    ) -> Result<String, SharedError> {
        let mut conn = self.conn.clone();
        let stream = keys::semantic_stream(&self.prefix);
        let bytes = entry.encode();
        let id: Option<String> = self
            .bounded(async move {
                conn.xadd_maxlen(
                    stream,
                    StreamMaxlen::Approx(max_len),
                    "*",
                    &[(FIELD, bytes.as_slice())],
                )
                .await
            })
            .await?;
        id.ok_or_else(|| SharedError::Malformed("XADD returned no id".into()))
    }

    /// Entries after `last_id`, at most `count`, waiting up to `block` for the first (on its
    /// own connection, so commands never queue behind it).
    pub async fn read_entries(
        &self,
        last_id: &str,
        count: usize,
        block: Duration,
    ) -> Result<StreamBatch, SharedError> {
        let mut conn = self.blocking.clone();
        let stream = keys::semantic_stream(&self.prefix);
        let block_ms = usize::try_from(block.as_millis()).unwrap_or(usize::MAX);
        let options = StreamReadOptions::default().count(count).block(block_ms);
        let ids = [last_id.to_string()];
        let limit = block + self.timeout;
        let reply: Option<StreamReadReply> = self
            .bounded_for(limit, async move {
                conn.xread_options(&[stream], &ids, &options).await
            })
            .await?;
        let ids = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        Ok(batch(ids, last_id))
    }

    /// The newest `limit` entries, newest first, for a starting replica (bounded by
    /// `timeout`, which may be longer than one operation's).
    pub async fn newest_entries(
        &self,
        limit: usize,
        timeout: Duration,
    ) -> Result<StreamBatch, SharedError> {
        let mut conn = self.conn.clone();
        let stream = keys::semantic_stream(&self.prefix);
        let reply: StreamRangeReply = self
            .bounded_for(timeout, async move {
                conn.xrevrange_count(stream, "+", "-", limit).await
            })
            .await?;
        let newest = reply.ids.first().map(|e| e.id.clone());
        let mut batch = batch(reply.ids, FROM_START);
        // Reading goes on after the newest entry, whatever order they were returned in.
        batch.last_id = newest.unwrap_or_else(|| FROM_START.to_string());
        Ok(batch)
    }

    /// How many entries the stream holds.
    pub async fn stream_len(&self) -> Result<u64, SharedError> {
        let mut conn = self.conn.clone();
        let stream = keys::semantic_stream(&self.prefix);
        self.bounded(async move { conn.xlen(stream).await }).await
    }
}

/// Milliseconds since the Unix epoch at which the entry with stream id `id` was added.
pub fn id_millis(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

fn batch(ids: Vec<StreamId>, after: &str) -> StreamBatch {
    let mut out = StreamBatch {
        last_id: after.to_string(),
        ..StreamBatch::default()
    };
    for item in ids {
        out.last_id.clone_from(&item.id);
        let decoded = match item.map.get(FIELD) {
            Some(Value::BulkString(bytes)) => SemanticEntry::decode(bytes).ok(),
            _ => None,
        };
        match decoded {
            Some(entry) => out.entries.push((item.id, entry)),
            None => out.malformed += 1,
        }
    }
    out
}
