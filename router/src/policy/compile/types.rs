//! The compiled policy's types: what the request path reads, every value already checked, and
//! the defaults for everything a policy may leave out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::money::TokenPrice;
use crate::tenants::DEFAULT_TENANT;

use super::super::decisions::DecisionLogPolicy;
use super::super::embeddings::EmbeddingPolicy;
use super::super::prompt_cache::PromptCachePolicy;
use super::super::route::{BreakerPolicy, RetryPolicy, RoutePolicy};
use super::super::shared::SharedPolicy;
use super::super::trim::TrimPolicy;

/// A validated policy: the only form the request path ever sees.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address of the admin listener (metrics, health, reload, savings), if separate.
    pub admin_listen: Option<SocketAddr>,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Upstream providers by name.
    pub providers: BTreeMap<String, Arc<ProviderConfig>>,
    /// Model aliases by name; every one names an existing provider.
    pub models: BTreeMap<String, ModelRoute>,
    /// Alias used when a request names no model; always a key of `models`.
    pub default_model: String,
    /// What savings are measured against.
    pub baseline: Baseline,
    /// Request limits.
    pub limits: Limits,
    /// Budgets by tenant name; the `default` entry (if any) applies to unlisted tenants.
    pub budgets: BTreeMap<String, BudgetPolicy>,
    /// Per-tenant overrides by tenant name; `default` applies to unlisted tenants.
    pub tenant_overrides: BTreeMap<String, TenantOverrides>,
    /// Where budget spend is persisted, if anywhere.
    pub budget_state_file: Option<std::path::PathBuf>,
    /// Per-run caps and loop detection.
    pub runs: RunPolicy,
    /// Response cache settings.
    pub cache: CachePolicy,
    /// Cheap-model-first routing.
    pub route: RoutePolicy,
    /// Retries of failed upstream calls.
    pub retries: RetryPolicy,
    /// Per-provider circuit breaker.
    pub circuit_breaker: BreakerPolicy,
    /// The embedding model.
    pub embeddings: EmbeddingPolicy,
    /// Context trimming.
    pub trim: TrimPolicy,
    /// The shared tier on Redis, when the policy has a `shared:` section.
    pub shared: Option<SharedPolicy>,
    /// The decision log, when the policy has a `decision_log:` section.
    pub decision_log: Option<DecisionLogPolicy>,
    /// How the sidecar helps the provider's prompt cache.
    pub prompt_cache: PromptCachePolicy,
    /// Tenant by SHA-256 of its sidecar key (from each tenant's `api_key_env`; the key itself is
    /// not kept); tenants listed here can only be claimed with their key.
    pub tenant_keys: BTreeMap<String, String>,
    /// Short SHA-256 of the policy text, to tell which policy is live.
    pub hash: String,
}

/// What a tenant changes about the policy, resolved at compile time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantOverrides {
    /// The highest rung its requests may use.
    pub max_tier: Option<frugal_classifier::Tier>,
    /// Its cache namespace, instead of `cache.namespace`.
    pub cache_namespace: Option<String>,
    /// Its context token cap, instead of `trim.max_context_tokens`.
    pub trim_max_context_tokens: Option<usize>,
}

impl Policy {
    /// The overrides for `tenant` (its own entry, else `default`'s, else none).
    pub fn overrides_for(&self, tenant: &str) -> Option<&TenantOverrides> {
        self.tenant_overrides
            .get(tenant)
            .or_else(|| self.tenant_overrides.get(DEFAULT_TENANT))
    }

    /// Whether `tenants:` names `tenant` (with a budget, a key or an override).
    pub fn lists_tenant(&self, tenant: &str) -> bool {
        self.budgets.contains_key(tenant)
            || self.tenant_overrides.contains_key(tenant)
            || self.is_keyed_tenant(tenant)
    }

    /// Whether `tenant` has a sidecar key (`api_key_env`): only requests bearing it are its.
    pub fn is_keyed_tenant(&self, tenant: &str) -> bool {
        self.tenant_keys.values().any(|t| t == tenant)
    }

    /// The trim settings for `tenant`'s requests.
    pub fn trim_for(&self, tenant: &str) -> std::borrow::Cow<'_, TrimPolicy> {
        match self
            .overrides_for(tenant)
            .and_then(|o| o.trim_max_context_tokens)
        {
            Some(cap) => std::borrow::Cow::Owned(TrimPolicy {
                max_context_tokens: cap,
                ..self.trim.clone()
            }),
            None => std::borrow::Cow::Borrowed(&self.trim),
        }
    }

    /// The cache namespace of `tenant`'s requests.
    pub fn cache_namespace(&self, tenant: &str) -> &str {
        self.overrides_for(tenant)
            .and_then(|o| o.cache_namespace.as_deref())
            .unwrap_or(&self.cache.namespace)
    }
}

/// The counterfactual that savings are measured against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// The model the client asked for, on its untrimmed prompt.
    Requested,
    /// A fixed model alias (always a key of [`Policy::models`]).
    Model(String),
}

/// A checked upstream provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Provider name from the policy.
    pub name: String,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:9100/v1`.
    pub base_url: String,
    /// Environment variable holding the API key, if any.
    pub api_key_env: Option<String>,
    /// Timeouts for calls to this provider.
    pub timeouts: Timeouts,
    /// Whether the provider returns token logprobs.
    pub logprobs: bool,
    /// The API the provider speaks.
    pub kind: ProviderKind,
}

/// The API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// OpenAI's Chat Completions (and every compatible server).
    #[default]
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

/// Timeouts for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// Whole non-streaming call.
    pub request: Duration,
    /// Until a streaming call's response headers arrive.
    pub first_byte: Duration,
    /// Longest silence between two chunks of a stream.
    pub idle: Duration,
}

/// Where a model alias goes and what it costs.
#[derive(Debug, Clone)]
pub struct ModelRoute {
    /// The alias clients use.
    pub alias: String,
    /// Provider name; always a key of [`Policy::providers`].
    pub provider: String,
    /// Model name sent upstream.
    pub upstream: String,
    /// Price per million tokens, as written.
    pub price: Price,
    /// The same price per token, exact.
    pub token_price: TokenPrice,
    /// Aliases tried in order when this model's provider fails; each a key of `Policy::models`.
    pub fallbacks: Vec<String>,
    /// Longest time for one call to this model, overriding the provider's timeouts.
    pub timeout: Option<Duration>,
}

/// USD per million tokens, finite and non-negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Per 1M input tokens.
    pub input_per_mtok: f64,
    /// Per 1M output tokens.
    pub output_per_mtok: f64,
}

/// A calendar window a budget counts over (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetWindow {
    /// From the start of the hour.
    Hour,
    /// From midnight UTC.
    Day,
    /// From the first of the month, UTC.
    Month,
}

impl BudgetWindow {
    /// The label used in metrics and headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }
}

/// One tenant's checked budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetPolicy {
    /// The window spend counts over.
    pub window: BudgetWindow,
    /// Hard cap in the window.
    pub hard_cap: crate::money::Usd,
    /// Soft thresholds as shares of the cap, ascending, each in (0, 1).
    pub soft_thresholds: Vec<f64>,
    /// Output tokens assumed for requests without `max_tokens`.
    pub assumed_output_tokens: u64,
}

/// Whether the cache serves answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// No lookups, no inserts.
    Off,
    /// Lookups and inserts, but hits are only counted; upstream always answers.
    Shadow,
    /// Hits are served.
    On,
}

impl CacheMode {
    /// The mode's name in policies and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Shadow => "shadow",
            Self::On => "on",
        }
    }
}

/// Checked cache settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePolicy {
    /// Off, shadow or on.
    pub mode: CacheMode,
    /// Entry lifetime.
    pub ttl: Duration,
    /// Memory budget of the cache: answers and their questions' index entries.
    pub max_bytes: u64,
    /// Hottest sampling temperature still cached.
    pub max_temperature: f64,
    /// Namespace, part of every key.
    pub namespace: String,
    /// The semantic tier, when on.
    pub semantic: Option<SemanticPolicy>,
    /// The exact per-input cache of `POST /v1/embeddings`.
    pub embeddings: EmbeddingCachePolicy,
}

/// Checked settings of the embeddings cache (`cache.embeddings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingCachePolicy {
    /// Whether embedding inputs are looked up and stored.
    pub on: bool,
    /// How long a stored embedding is served.
    pub ttl: Duration,
    /// Byte budget of stored embeddings.
    pub max_bytes: u64,
}

impl Default for EmbeddingCachePolicy {
    fn default() -> Self {
        Self {
            on: false,
            ttl: Duration::from_secs(24 * 3600),
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Checked semantic-tier settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticPolicy {
    /// Cosine similarity a candidate needs.
    pub threshold: f32,
    /// Longest question, in model tokens, the semantic tier looks up.
    pub max_tokens: usize,
    /// Static-vector cosine below which a question has no neighbour worth embedding for
    /// (`None`: no prefilter).
    pub prefilter: Option<f32>,
    /// The guards it must pass.
    pub verifier: frugal_cache::Verifier,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            mode: CacheMode::Off,
            ttl: Duration::from_secs(3600),
            max_bytes: 64 * 1024 * 1024,
            max_temperature: 1.0,
            namespace: "default".into(),
            semantic: None,
            embeddings: EmbeddingCachePolicy::default(),
        }
    }
}

/// What to do when a loop is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopAction {
    /// Refuse the request with a 429 `loop_detected`.
    Block,
    /// Serve it, with a header and a metric.
    Flag,
}

impl LoopAction {
    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Flag => "flag",
        }
    }
}

/// Checked per-run limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPolicy {
    /// Hard cap on a run's spend.
    pub max_cost: Option<crate::money::Usd>,
    /// Hard cap on a run's tokens.
    pub max_tokens: Option<u64>,
    /// Repeats beyond this are a loop.
    pub loop_max_repeats: Option<u64>,
    /// What a loop does.
    pub loop_action: LoopAction,
    /// Idle time after which a run is forgotten.
    pub idle_ttl: Duration,
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self {
            max_cost: None,
            max_tokens: None,
            loop_max_repeats: None,
            loop_action: LoopAction::Block,
            idle_ttl: Duration::from_secs(3600),
        }
    }
}

/// Output tokens assumed when a request sets no `max_tokens`.
pub const DEFAULT_ASSUMED_OUTPUT_TOKENS: u64 = 1024;

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request body in bytes.
    pub max_body_bytes: u64,
    /// Longest time until the response head is sent.
    pub request_timeout: Duration,
    /// Largest prompt in input tokens, if capped.
    pub max_input_tokens: Option<u64>,
    /// Largest worst-case cost of one request, if capped.
    pub max_request_cost: Option<crate::money::Usd>,
    /// Chat requests in flight at once over all tenants, if capped.
    pub max_concurrent_requests: Option<usize>,
    /// Chat requests in flight at once for one tenant, if capped.
    pub max_concurrent_per_tenant: Option<usize>,
    /// Connections open at once on the listener.
    pub max_connections: usize,
    /// Longest wait for a request's headers (and idle time of a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Longest wait for a request's body once its headers arrived.
    pub body_read_timeout: Duration,
    /// Most unlisted tenants kept under their own name (see [`crate::tenants`]).
    pub max_tenants: usize,
}

/// Defaults for everything a policy may leave out.
pub mod defaults {
    use std::time::Duration;

    /// Listen address.
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// Drain time after SIGTERM.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
    /// Largest request body.
    pub const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;
    /// Time until the response head.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
    /// Chat requests in flight at once over all tenants.
    pub const MAX_CONCURRENT_REQUESTS: usize = 1024;
    /// Connections open at once on the listener.
    pub const MAX_CONNECTIONS: usize = 4096;
    /// Time for a request's headers (and idle time of a kept-alive connection).
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// Time for a request's body once its headers arrived.
    pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// Unlisted tenants kept under their own name.
    pub const MAX_TENANTS: usize = 100;
    /// Upstream connect timeout.
    pub const CONNECT: Duration = Duration::from_secs(5);
    /// Upstream non-streaming call timeout.
    pub const REQUEST: Duration = Duration::from_secs(120);
    /// Upstream time to response headers for streams.
    pub const FIRST_BYTE: Duration = Duration::from_secs(60);
    /// Upstream silence allowed inside a stream.
    pub const IDLE: Duration = Duration::from_secs(60);
}
