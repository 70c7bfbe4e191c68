//! Spend counters shared by every replica: a tenant's budget window and an agent run's caps.
//! A request holds its worst case if it fits under the caps, then settles to what it used or
//! releases the hold, each in one Lua script, so concurrent requests on any number of
//! replicas can overspend a cap by nothing at all.
//!
//! Every hold has its own id and a lease. Settling or releasing removes that hold and nothing
//! else, so doing it twice is harmless; a hold whose replica died, or whose reserve reply was
//! lost to a timeout after Redis had made it, is dropped when its lease runs out instead of
//! holding room until the window ends. A request that runs longer renews its lease.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::client::{SharedClient, SharedError};
use crate::keys;

static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/expire.lua"),
        include_str!("lua/reserve.lua")
    ))
});
static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/expire.lua"),
        include_str!("lua/settle.lua")
    ))
});
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/expire.lua"),
        include_str!("lua/renew.lua")
    ))
});

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

/// A counter: its spend and what its holds hold (one hash), and the holds' leases (a sorted
/// set). Both keys share a hash tag, so they live in one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    hash: String,
    leases: String,
}

impl Counter {
    fn new(key: String) -> Self {
        Self {
            leases: format!("{key}:leases"),
            hash: key,
        }
    }

    /// The counter's key.
    pub fn key(&self) -> &str {
        &self.hash
    }

    /// A new hold on this counter, with an id no other hold has.
    pub fn new_hold(&self) -> HoldKey {
        HoldKey {
            counter: self.clone(),
            id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// One hold on a counter. Settling or releasing it twice, or after its lease ran out, takes
/// nothing more out of the counter than it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldKey {
    counter: Counter,
    id: String,
}

impl HoldKey {
    /// The counter it holds against.
    pub fn counter(&self) -> &Counter {
        &self.counter
    }
}

/// How long a counter and a hold last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// The counter lives this long past its last change.
    pub counter: Duration,
    /// A hold not renewed within this long is dropped by the next call on its counter (a
    /// replica that died, or a reply lost after Redis made the hold).
    pub lease: Duration,
}

impl SharedClient {
    /// The counter of `tenant`'s budget for the window named `window` that started at
    /// `window_start` (Unix seconds): a new window is a new key.
    pub fn budget_counter(&self, tenant: &str, window: &str, window_start: u64) -> Counter {
        Counter::new(keys::tagged(
            &self.prefix,
            "budget",
            &[
                tenant.as_bytes(),
                window.as_bytes(),
                &window_start.to_le_bytes(),
            ],
        ))
    }

    /// The counter of an agent run of `tenant`.
    pub fn run_counter(&self, tenant: &str, run_id: &str) -> Counter {
        Counter::new(keys::tagged(
            &self.prefix,
            "run",
            &[tenant.as_bytes(), run_id.as_bytes()],
        ))
    }

    /// Holds `want` under `hold` if it fits under `caps`. Holding the same key again (a retry
    /// whose first reply was lost) holds nothing more.
    pub async fn reserve(
        &self,
        hold: &HoldKey,
        caps: Caps,
        want: Amounts,
        lifetimes: Lifetimes,
    ) -> Result<Reserve, SharedError> {
        let mut conn = self.conn.clone();
        let mut invocation = RESERVE.key(&hold.counter.hash);
        invocation
            .key(&hold.counter.leases)
            .arg(&hold.id)
            .arg(caps.cost_nano.unwrap_or(-1))
            .arg(want.cost_nano)
            .arg(caps.tokens.unwrap_or(-1))
            .arg(want.tokens)
            .arg(ttl_secs(lifetimes.counter))
            .arg(millis(lifetimes.lease));
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

    /// Replaces `hold` by `used`; returns the counter's settled use after it. Callers run it in
    /// the background, so it waits out a stall longer than the request timeout.
    pub async fn settle(
        &self,
        hold: &HoldKey,
        used: Amounts,
        ttl: Duration,
    ) -> Result<Amounts, SharedError> {
        let mut conn = self.conn.clone();
        let mut invocation = SETTLE.key(&hold.counter.hash);
        invocation
            .key(&hold.counter.leases)
            .arg(&hold.id)
            .arg(used.cost_nano)
            .arg(used.tokens)
            .arg(ttl_secs(ttl));
        let reply: Vec<i64> = self
            .bounded_background(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let [cost_nano, tokens] = reply[..] else {
            return Err(SharedError::Malformed(format!("settle returned {reply:?}")));
        };
        Ok(Amounts { cost_nano, tokens })
    }

    /// Gives `hold` back (a request that failed before it was answered, or a reserve whose
    /// reply did not arrive in time).
    pub async fn release(&self, hold: &HoldKey, ttl: Duration) -> Result<(), SharedError> {
        self.settle(hold, Amounts::default(), ttl).await.map(|_| ())
    }

    /// Extends `hold`'s lease to `lease` from now (a background call, bounded like `settle`);
    /// `false` when the hold is gone (its lease ran out first, so it no longer counts against
    /// the caps).
    pub async fn renew(&self, hold: &HoldKey, lease: Duration) -> Result<bool, SharedError> {
        let mut conn = self.conn.clone();
        let mut invocation = RENEW.key(&hold.counter.hash);
        invocation
            .key(&hold.counter.leases)
            .arg(&hold.id)
            .arg(millis(lease));
        let renewed: i64 = self
            .bounded_background(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(renewed == 1)
    }

    /// What `counter` has used and what its holds hold now (for tests and operators).
    pub async fn counted(&self, counter: &Counter) -> Result<(Amounts, Amounts), SharedError> {
        let mut conn = self.conn.clone();
        let key = counter.hash.clone();
        let fields: Vec<Option<i64>> = self
            .bounded(async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&["cost", "tokens", "held_cost", "held_tokens"][..])
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let [cost, tokens, held_cost, held_tokens] = fields[..] else {
            return Err(SharedError::Malformed(format!("HMGET returned {fields:?}")));
        };
        Ok((
            Amounts {
                cost_nano: cost.unwrap_or(0),
                tokens: tokens.unwrap_or(0),
            },
            Amounts {
                cost_nano: held_cost.unwrap_or(0),
                tokens: held_tokens.unwrap_or(0),
            },
        ))
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

/// A lease in whole milliseconds, at least one.
fn millis(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
}
