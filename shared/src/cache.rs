//! Answers by exact key. The key already hashes tenant, namespace, scope and request, so a
//! replica can only read what the same request in the same scope would have stored.

use std::time::Duration;

use redis::AsyncCommands;

use crate::client::{SharedClient, SharedError};
use crate::keys;

impl SharedClient {
    /// The answer stored under `exact`, if Redis still holds it.
    pub async fn get_answer(&self, exact: &[u8; 32]) -> Result<Option<Vec<u8>>, SharedError> {
        let mut conn = self.conn.clone();
        let key = keys::answer(&self.prefix, exact);
        self.bounded(async move { conn.get::<_, Option<Vec<u8>>>(key).await })
            .await
    }

    /// Stores an answer under `exact` for `ttl` (at least a millisecond).
    pub async fn put_answer(
        &self,
        exact: &[u8; 32],
        answer: &[u8],
        ttl: Duration,
    ) -> Result<(), SharedError> {
        let mut conn = self.conn.clone();
        let key = keys::answer(&self.prefix, exact);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.bounded(async move { conn.pset_ex::<_, _, ()>(key, answer, millis).await })
            .await
    }
}
