//! What the pipeline answers: the reply's body and the decisions behind it, for headers.

use frugal_cache::Guard;
use frugal_classifier::Tier;

use crate::policy::ModelRoute;
use crate::sse::FrameStream;
use crate::stage::account::Account;
use crate::stage::budget::BudgetWarning;
use crate::stage::cache::Lookup;
use crate::stage::escalation::Escalation;
use crate::stage::lookup::CacheOutcome;
use crate::stage::prompt_prefix::BreakCause;

/// What the pipeline answers.
pub struct Reply {
    /// What the sidecar decided, for response headers.
    pub meta: ReplyMeta,
    /// The answer itself.
    pub body: ReplyBody,
}

/// The decisions behind a reply.
#[derive(Debug, Clone)]
pub struct ReplyMeta {
    /// The model alias that answered.
    pub model: String,
    /// The provider that answered.
    pub provider: String,
    /// The settled account; `None` for a stream, which settles when it ends.
    pub account: Option<Account>,
    /// Soft budget thresholds this request crossed.
    pub budget_warnings: Vec<BudgetWarning>,
    /// A loop the policy flags rather than blocks.
    pub loop_flag: Option<String>,
    /// What the cache did.
    pub cache: Lookup,
    /// The rung that answered, for a routed request.
    pub tier: Option<Tier>,
    /// The steps of the climb, in order.
    pub escalations: Vec<Escalation>,
    /// The classifier's score, for a classified request.
    pub complexity: Option<f32>,
    /// Similarity of the semantic cache's candidate, when there was one.
    pub cache_similarity: Option<f32>,
    /// The guard that rejected the semantic candidate, if one did.
    pub cache_guard: Option<Guard>,
    /// Context tokens trimming removed, when the request had context to trim.
    pub trimmed_tokens: Option<u64>,
    /// Why this call's prompt prefix defeats the provider's prompt cache, when it does.
    pub prefix_break: Option<BreakCause>,
}

impl ReplyMeta {
    /// The decisions before any are made: the requested model, no cache, no climb.
    pub fn new(requested: &ModelRoute) -> Self {
        Self {
            model: requested.alias.clone(),
            provider: requested.provider.clone(),
            account: None,
            budget_warnings: Vec::new(),
            loop_flag: None,
            cache: Lookup::Bypass,
            tier: None,
            escalations: Vec::new(),
            complexity: None,
            cache_similarity: None,
            cache_guard: None,
            trimmed_tokens: None,
            prefix_break: None,
        }
    }

    /// Notes what the cache lookup found.
    pub fn note_lookup(&mut self, cached: &CacheOutcome) {
        self.cache = cached.lookup;
        self.cache_similarity = cached.similarity;
        self.cache_guard = cached.guard;
    }

    /// Notes the model and rung that answered.
    pub fn answered_by(&mut self, model: &ModelRoute, tier: Option<Tier>) {
        self.model.clone_from(&model.alias);
        self.provider.clone_from(&model.provider);
        self.tier = tier;
    }
}

/// A complete JSON completion or a live SSE stream.
pub enum ReplyBody {
    /// A chat completion object, as JSON bytes.
    Json(bytes::Bytes),
    /// SSE frames, relayed as they arrive from upstream.
    Stream(FrameStream),
}
