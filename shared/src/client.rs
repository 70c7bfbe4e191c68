//! The connection to Redis and the bound on every operation.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;

/// Where the shared tier is and how long an operation may take.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    /// `redis://[:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// Prefix of every key and stream.
    pub key_prefix: String,
    /// Longest one operation may take.
    pub timeout: Duration,
}

/// Why a shared operation did not happen; the caller goes on without the shared tier.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The operation took longer than the configured timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis refused or failed the operation, or could not be reached.
    #[error("Redis: {0}")]
    Redis(#[from] RedisError),
    /// Redis answered with something this tier did not write.
    #[error("unexpected reply from Redis: {0}")]
    Malformed(String),
}

/// A handle on the shared tier; cheap to clone (connections are multiplexed and shared).
#[derive(Clone)]
pub struct SharedClient {
    /// Commands that answer at once.
    pub(crate) conn: ConnectionManager,
    /// A second connection for blocking stream reads, so they never hold up commands.
    pub(crate) blocking: ConnectionManager,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for SharedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedClient")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Bound on operations nobody waits for (settling and releasing holds, renewing leases, in
/// background tasks): a Redis that stalls for longer than the request timeout still receives
/// them, since losing one would keep a hold until its lease ran out.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnection backoff: from 50 ms, doubling, at most 2 s between attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl SharedClient {
    /// A client for `config`. Nothing is connected yet: the first operation connects, and a
    /// lost connection is re-made with backoff, so a Redis that is down at start (or later)
    /// only makes operations fail fast. An invalid URL is an error here.
    pub fn new(config: &SharedConfig) -> Result<Self, SharedError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(None)
            .set_min_delay(MIN_BACKOFF)
            .set_max_delay(MAX_BACKOFF)
            .set_number_of_retries(usize::MAX);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())?;
        let blocking = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            conn,
            blocking,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
        })
    }

    /// The configured bound on one operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `op` within the timeout.
    pub(crate) async fn bounded<T, F>(&self, op: F) -> Result<T, SharedError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        self.bounded_for(self.timeout, op).await
    }

    /// Runs `op`, which nobody waits for, within the longer of the timeout and
    /// [`BACKGROUND_TIMEOUT`].
    pub(crate) async fn bounded_background<T, F>(&self, op: F) -> Result<T, SharedError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        self.bounded_for(self.timeout.max(BACKGROUND_TIMEOUT), op)
            .await
    }

    /// Runs `op` within `limit`.
    pub(crate) async fn bounded_for<T, F>(&self, limit: Duration, op: F) -> Result<T, SharedError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        match tokio::time::timeout(limit, op).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(SharedError::Timeout(limit)),
        }
    }

    /// Asks Redis for PONG (readiness and tests).
    pub async fn ping(&self) -> Result<(), SharedError> {
        let mut conn = self.conn.clone();
        let pong: String = self
            .bounded(redis::cmd("PING").query_async(&mut conn))
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(SharedError::Malformed(pong))
        }
    }
}
