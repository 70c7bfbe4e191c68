//! Spend counters shared by every replica: a tenant's budget window and an agent run's caps.
//! A request holds its worst case if it fits under the caps, then settles to what it used or
//! releases the hold, each in one Lua script, so concurrent requests on any number of
//! replicas can overspend a cap by nothing at all.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::client::{SharedClient, SharedError};
use crate::keys;

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/reserve.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/settle.lua")));

/// Money (in nano-dollars, so Lua's doubles stay exact up to $9M) and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    /// Nano-dollars.
    pub cost_nano: i64,
    /// Tokens.
    pub tokens: i64,
}

/// The caps a hold must fit under; `None` is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// Most nano-dollars.
    pub cost_nano: Option<i64>,
    /// Most tokens.
    pub tokens: Option<i64>,
}

/// Which cap refused a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// The cost cap.
    Cost,
    /// The token cap.
    Tokens,
}

/// What a hold came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Held: what the counter has used, and what all holds (this one included) now hold.
    Held {
        /// Settled use.
        used: Amounts,
        /// Held by requests in flight, this one included.
        held: Amounts,
    },
    /// Over a cap: nothing held.
    Refused {
        /// The cap it would pass.
        cap: Cap,
        /// Settled use.
        used: Amounts,
        /// Held by requests in flight.
        held: Amounts,
    },
}

impl SharedClient {
    /// The counter of `tenant`'s budget for the window named `window` that started at
    /// `window_start` (Unix seconds): a new window is a new key.
    pub fn budget_counter(&self, tenant: &str, window: &str, window_start: u64) -> String {
        keys::hashed(
            &self.prefix,
            "budget",
            &[
                tenant.as_bytes(),
                window.as_bytes(),
                &window_start.to_le_bytes(),
            ],
        )
    }

    /// The counter of an agent run of `tenant`.
    pub fn run_counter(&self, tenant: &str, run_id: &str) -> String {
        keys::hashed(&self.prefix, "run", &[tenant.as_bytes(), run_id.as_bytes()])
    }

    /// Holds `want` against `counter` if it fits under `caps`; the counter lives `ttl` past
    /// its last change.
    pub async fn reserve(
        &self,
        counter: &str,
        caps: Caps,
        want: Amounts,
        ttl: Duration,
    ) -> Result<Reserve, SharedError> {
        let mut conn = self.conn.clone();
        let mut invocation = RESERVE.key(counter);
        invocation
            .arg(caps.cost_nano.unwrap_or(-1))
            .arg(want.cost_nano)
            .arg(caps.tokens.unwrap_or(-1))
            .arg(want.tokens)
            .arg(ttl_secs(ttl));
        let reply: Vec<i64> = self
            .bounded(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let [verdict, cost, held_cost, tokens, held_tokens] = reply[..] else {
            return Err(SharedError::Malformed(format!(
                "reserve returned {reply:?}"
            )));
        };
        let used = Amounts {
            cost_nano: cost,
            tokens,
        };
        let held = Amounts {
            cost_nano: held_cost,
            tokens: held_tokens,
        };
        Ok(match verdict {
            1 => Reserve::Held { used, held },
            0 => Reserve::Refused {
                cap: Cap::Cost,
                used,
                held,
            },
            _ => Reserve::Refused {
                cap: Cap::Tokens,
                used,
                held,
            },
        })
    }

    /// Replaces a hold of `held` by `used`; returns the counter's settled use after it.
    pub async fn settle(
        &self,
        counter: &str,
        held: Amounts,
        used: Amounts,
        ttl: Duration,
    ) -> Result<Amounts, SharedError> {
        let mut conn = self.conn.clone();
        let mut invocation = SETTLE.key(counter);
        invocation
            .arg(-held.cost_nano)
            .arg(-held.tokens)
            .arg(used.cost_nano)
            .arg(used.tokens)
            .arg(ttl_secs(ttl));
        let reply: Vec<i64> = self
            .bounded(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let [cost_nano, tokens] = reply[..] else {
            return Err(SharedError::Malformed(format!("settle returned {reply:?}")));
        };
        Ok(Amounts { cost_nano, tokens })
    }

    /// Gives a hold back (a request that failed before it was answered).
    pub async fn release(
        &self,
        counter: &str,
        held: Amounts,
        ttl: Duration,
    ) -> Result<(), SharedError> {
        self.settle(counter, held, Amounts::default(), ttl)
            .await
            .map(|_| ())
    }

    /// Whether this call is the first across every replica to claim `event` (a soft budget
    /// threshold in a window, say) within `ttl`.
    pub async fn first_to_claim(
        &self,
        event: &[&[u8]],
        ttl: Duration,
    ) -> Result<bool, SharedError> {
        let mut conn = self.conn.clone();
        let key = keys::hashed(&self.prefix, "once", event);
        let reply: Option<String> = self
            .bounded(async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs(ttl))
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(reply.is_some())
    }
}

/// A TTL in whole seconds, at least one.
fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}
