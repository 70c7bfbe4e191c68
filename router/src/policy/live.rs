//! The live state the request path reads: one compiled policy plus the upstream clients built
//! from it, swapped as a whole so a request always sees one consistent policy.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::compile::Policy;
use crate::upstream::Upstreams;

/// Everything a request needs that depends on the policy.
#[derive(Debug)]
pub struct LiveState {
    /// The compiled policy.
    pub policy: Arc<Policy>,
    /// One HTTP client per provider, configured from the policy.
    pub upstreams: Upstreams,
    /// Increments on every successful (re)load; 1 for the policy loaded at start-up.
    pub revision: u64,
}

impl LiveState {
    /// Builds the live state for a compiled policy.
    pub fn new(policy: Policy, revision: u64) -> Result<Self, crate::upstream::UpstreamError> {
        let upstreams = Upstreams::from_policy(&policy)?;
        Ok(Self {
            policy: Arc::new(policy),
            upstreams,
            revision,
        })
    }
}

/// The swappable handle: readers `load()` a snapshot; a reload `store()`s a new one.
pub type Live = Arc<ArcSwap<LiveState>>;
