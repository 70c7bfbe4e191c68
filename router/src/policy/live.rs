//! The live state the request path reads: one compiled policy plus the upstream clients built
//! from it, swapped as a whole so a request always sees one consistent policy.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::compile::{CacheMode, Policy};
use super::route::RouteMode;
use crate::embed_worker::{self, EmbedWorker};
use crate::trim::Tokenizer;
use crate::upstream::{UpstreamError, Upstreams};

/// Everything a request needs that depends on the policy.
#[derive(Debug)]
pub struct LiveState {
    /// The compiled policy.
    pub policy: Arc<Policy>,
    /// One HTTP client per provider, configured from the policy.
    pub upstreams: Upstreams,
    /// Increments on every successful (re)load; 1 for the policy loaded at start-up.
    pub revision: u64,
    /// The embedding worker, when the policy uses embeddings.
    pub embedder: Option<Arc<EmbedWorker>>,
}

/// Why a policy could not be made live.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// An upstream client could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The policy needs the embedding model and it could not be loaded.
    #[error(
        "the policy needs the embedding model (routing's classifier, the semantic cache): {0}"
    )]
    Embedder(#[from] frugal_cache::EmbedError),
}

impl LiveState {
    /// Builds the live state for a compiled policy.
    pub fn new(policy: Policy, revision: u64) -> Result<Self, LiveError> {
        let upstreams = Upstreams::from_policy(&policy)?;
        // The token counters load with the policy, not in its first request (~50 ms for
        // o200k_base): every request's worst case counts in o200k_base, trimming in the
        // policy's tokenizer.
        Tokenizer::O200kBase.load();
        policy.trim.tokenizer.load();
        let embedder = if needs_embeddings(&policy) {
            Some(embed_worker::shared(&policy.embeddings.config)?)
        } else {
            None
        };
        Ok(Self {
            policy: Arc::new(policy),
            upstreams,
            revision,
            embedder,
        })
    }
}

/// The swappable handle: readers `load()` a snapshot; a reload `store()`s a new one.
pub type Live = Arc<ArcSwap<LiveState>>;

/// Whether any stage of the policy uses the embedding model.
pub fn needs_embeddings(policy: &Policy) -> bool {
    let routing =
        policy.route.mode != RouteMode::Off && policy.route.classifier.embedding_dim().is_some();
    let semantic = policy.cache.mode != CacheMode::Off && policy.cache.semantic.is_some();
    let trimming = policy.trim.mode != super::trim::TrimMode::Off && policy.trim.strategy.embeds();
    routing || semantic || trimming
}
