//! The shared tier in the request path: what this replica shares with the others through
//! Redis (the `shared:` policy section), and what it does when Redis fails — skip the shared
//! part of that operation, count it, and go on as a single replica would.
//!
//! * [`follow`]: the semantic entries other replicas store, read into this replica's index
//!   (after a bounded warm-up from the newest);
//! * [`answers`]: answers fetched by exact key and published when stored;
//! * [`holds`]: budget and run spend held and settled across replicas.

pub mod answers;
pub mod follow;
pub mod holds;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use frugal_shared::{SharedClient, SharedConfig, SharedError};

use crate::metrics;
use crate::policy::SharedPolicy;

/// This replica's handle on the shared tier.
pub struct SharedTier {
    client: SharedClient,
    policy: SharedPolicy,
    /// A random id of this process, written into the entries it appends.
    origin: u64,
    /// How long answers live in Redis (the policy's `cache.ttl`).
    cache_ttl: Duration,
    /// Per lever: whether the last shared operation failed (caps enforced locally meanwhile).
    falling_back: [AtomicBool; 2],
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A lever whose caps fall back to local enforcement when Redis fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapLever {
    /// Tenant budgets.
    Budgets,
    /// Agent run caps.
    Runs,
}

impl CapLever {
    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Budgets => "budgets",
            Self::Runs => "runs",
        }
    }
}

impl SharedTier {
    /// The shared tier the policy asks for, with the URL from its environment variable; an
    /// unset variable or an invalid URL is an error (the sidecar refuses to start). Redis
    /// itself may be down: operations then fail fast until it is back.
    pub fn connect(policy: &SharedPolicy, cache_ttl: Duration) -> Result<Arc<Self>, String> {
        let url = std::env::var(&policy.url_env).map_err(|_| {
            format!(
                "the policy's shared tier reads its Redis URL from the environment variable {}, which is not set",
                policy.url_env
            )
        })?;
        let client = SharedClient::new(&SharedConfig {
            url,
            key_prefix: policy.key_prefix.clone(),
            timeout: policy.timeout,
        })
        .map_err(|e| format!("{}: {e}", policy.url_env))?;
        for lever in [CapLever::Budgets, CapLever::Runs] {
            metrics::record_shared_fallback(lever.as_str(), false);
        }
        Ok(Arc::new(Self {
            client,
            policy: policy.clone(),
            origin: RandomState::new().build_hasher().finish(),
            cache_ttl,
            falling_back: [AtomicBool::new(false), AtomicBool::new(false)],
        }))
    }

    /// The settings it runs with.
    pub fn policy(&self) -> &SharedPolicy {
        &self.policy
    }

    /// Counts a skipped operation.
    fn failed(&self, op: &'static str, error: &SharedError) {
        metrics::record_shared_error(op);
        tracing::debug!(op, %error, "shared tier skipped");
    }

    /// Notes whether a lever's last shared operation worked; logs each change.
    fn note_lever(&self, lever: CapLever, works: bool) {
        let flag = &self.falling_back[lever as usize];
        let was_falling_back = flag.swap(!works, Ordering::Relaxed);
        if was_falling_back == works {
            metrics::record_shared_fallback(lever.as_str(), !works);
            if works {
                tracing::info!(
                    lever = lever.as_str(),
                    "shared tier back: caps hold across replicas again"
                );
            } else {
                tracing::warn!(
                    lever = lever.as_str(),
                    "shared tier unavailable: each replica enforces the whole cap on its own spend until Redis is back"
                );
            }
        }
    }
}
