//! Who is asking and the shared state a request works against: built by the HTTP layer from the
//! request's headers, read by the pipeline and its stages. It sits below both, so stages need
//! nothing from the pipeline to know the request they serve.

use std::sync::Arc;

use frugal_classifier::Tier;

use crate::decisions::record::{DecisionRecord, Latency};
use crate::decisions::{DecisionLog, Draft};
use crate::ledger::Ledger;
use crate::shared::SharedTier;
use crate::stage::budget::Budgets;
use crate::stage::cache::{CacheControl, ResponseCache};
use crate::stage::prompt_prefix::PrefixWatch;
use crate::stage::run::Runs;
use crate::upstream::Resilience;

/// Who is asking, and where settled accounts go.
#[derive(Clone)]
pub struct RequestContext {
    /// Tenant the request is billed to, as counted: its name, or `other` past
    /// `limits.max_tenants` ([`crate::tenants`]). Metrics, ledger, budgets and runs use it.
    pub tenant: String,
    /// The tenant name the request claimed, which scopes the cache (never `other`).
    pub cache_tenant: String,
    /// Where settled accounts are summed.
    pub ledger: Arc<Ledger>,
    /// Tenant budget state.
    pub budgets: Arc<Budgets>,
    /// The agent run this request belongs to, if it says.
    pub run_id: Option<String>,
    /// Per-run state.
    pub runs: Arc<Runs>,
    /// The response cache.
    pub cache: Arc<ResponseCache>,
    /// What the client asked of the cache.
    pub cache_control: CacheControl,
    /// Retry budget and circuit breakers.
    pub resilience: Arc<Resilience>,
    /// The highest rung the client allows (`x-frugal-max-tier`).
    pub max_tier: Option<Tier>,
    /// The shared tier on Redis, when the policy has one.
    pub shared: Option<Arc<SharedTier>>,
    /// Each tenant's recent prompt prefixes, watched for changes that defeat the provider's
    /// prompt cache.
    pub prefix_watch: Arc<PrefixWatch>,
    /// The decision log, when the policy keeps one.
    pub decisions: Option<Arc<DecisionLog>>,
    /// This request's line of the decision log, filled as the pipeline decides.
    pub draft: Option<Draft>,
}

impl RequestContext {
    /// Notes a decision in the request's decision-log line (nothing without a log).
    pub fn note(&self, change: impl FnOnce(&mut DecisionRecord)) {
        if let Some(draft) = &self.draft {
            draft.note(change);
        }
    }

    /// Notes the time since the last stage in the stage `pick` chooses (nothing without a log).
    pub fn lap(&self, pick: impl FnOnce(&mut Latency) -> &mut f64) {
        if let Some(draft) = &self.draft {
            draft.lap(pick);
        }
    }

    /// Whether the decision log wants the messages and the answer's text.
    pub fn logs_prompts(&self) -> bool {
        self.decisions.as_ref().is_some_and(|d| d.log_prompts())
    }
}
