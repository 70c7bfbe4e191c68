//! The policy file as written: types that mirror the YAML one to one.
//!
//! Every struct denies unknown fields so a misspelt key is an error, not a silently ignored
//! setting. Values are kept as written (durations as strings, references as names); checking
//! them is `compile.rs`'s job.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// A whole policy file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Socket address the sidecar listens on, e.g. `127.0.0.1:8080`.
    #[serde(default)]
    pub listen: Option<String>,
    /// How long in-flight requests may run after SIGTERM, e.g. `20s`.
    #[serde(default)]
    pub shutdown_grace: Option<String>,
    /// Upstream providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    /// Model aliases clients may request, by alias.
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    /// The alias used when a request names no model.
    #[serde(default)]
    pub default_model: Option<String>,
    /// What savings are measured against: `requested` (the model the client asked for, on its
    /// untrimmed prompt) or a model alias (e.g. the strong model every request would otherwise use).
    #[serde(default)]
    pub baseline_model: Option<String>,
    /// Request limits.
    #[serde(default)]
    pub limits: Option<RawLimits>,
    /// Per-tenant settings by tenant name; `default` applies to every tenant not listed.
    #[serde(default)]
    pub tenants: BTreeMap<String, RawTenant>,
    /// File where budget spend is saved (atomically) so it survives a restart.
    #[serde(default)]
    pub budget_state_file: Option<String>,
    /// Limits per agent run (requests sharing `x-frugal-run-id` or a W3C `traceparent` trace id).
    #[serde(default)]
    pub runs: Option<RawRuns>,
    /// The response cache.
    #[serde(default)]
    pub cache: Option<RawCache>,
}

/// Response cache settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// `off`, `shadow` (look up and count would-be hits, but always call upstream) or `on`.
    #[serde(default)]
    pub mode: Option<String>,
    /// How long an answer may be served from the cache, e.g. `1h`.
    #[serde(default)]
    pub ttl: Option<String>,
    /// Most bytes of answers kept; least recently used go first.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Requests with a higher `temperature` (default 1.0 when absent) are not cached.
    #[serde(default)]
    pub max_temperature: Option<f64>,
    /// Cache namespace; requests only hit entries of their own namespace (and tenant).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Limits per agent run: the worst leaks are runaway loops, so each run gets its own caps.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRuns {
    /// Hard cap on a run's spend in USD (429 `run_budget_exceeded`).
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// Hard cap on a run's input + output tokens.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The same request, or the same tool call with the same arguments, seen more than this
    /// many times in a run is a loop.
    #[serde(default)]
    pub loop_max_repeats: Option<u64>,
    /// `block` (429 `loop_detected`) or `flag` (header and metric only). Default `block`.
    #[serde(default)]
    pub loop_action: Option<String>,
    /// Forget a run after this long without requests, e.g. `1h`.
    #[serde(default)]
    pub idle_ttl: Option<String>,
}

/// Settings of one tenant (or of `default`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// Spend limit over a calendar window.
    #[serde(default)]
    pub budget: Option<RawBudget>,
    /// Environment variable holding this tenant's sidecar key. Requests bearing it
    /// (`Authorization: Bearer …`) are this tenant; without it, nobody can claim the tenant's name.
    #[serde(default)]
    pub api_key_env: Option<String>,
}

/// A spend limit over a calendar window (UTC).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// `hour`, `day` or `month`.
    pub window: String,
    /// Requests that could take spend past this many USD in the window get a 429.
    pub hard_cap_usd: f64,
    /// Shares of the cap (each in (0, 1)) that raise a warning once per window.
    #[serde(default)]
    pub soft_thresholds: Vec<f64>,
    /// Output tokens assumed when reserving for a request without `max_tokens`.
    #[serde(default)]
    pub assumed_output_tokens: Option<u64>,
}

/// An OpenAI-compatible upstream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Name of the environment variable holding the API key (sent as a Bearer token).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Timeouts for calls to this provider.
    #[serde(default)]
    pub timeouts: Option<RawTimeouts>,
}

/// Timeouts for one provider, as duration strings (`500ms`, `30s`, `2m`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// TCP + TLS connect.
    #[serde(default)]
    pub connect: Option<String>,
    /// Whole non-streaming call.
    #[serde(default)]
    pub request: Option<String>,
    /// Until the response headers of a streaming call arrive.
    #[serde(default)]
    pub first_byte: Option<String>,
    /// Longest silence between two chunks of a stream.
    #[serde(default)]
    pub idle: Option<String>,
}

/// A model alias.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// Which provider serves it.
    pub provider: String,
    /// The model name the provider knows it by (defaults to the alias).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Price per million tokens.
    pub price: RawPrice,
}

/// Price in US dollars per million tokens.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// USD per 1M input (prompt) tokens.
    pub input_per_mtok: f64,
    /// USD per 1M output (completion) tokens.
    pub output_per_mtok: f64,
}

/// Request limits.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest accepted request body, in bytes.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Longest time until the response head is sent, e.g. `300s`.
    #[serde(default)]
    pub request_timeout: Option<String>,
    /// Largest prompt (input tokens after trimming) a request may send upstream.
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// Largest worst-case cost (prompt + `max_tokens` at the model's price) of one request, in USD.
    #[serde(default)]
    pub max_request_cost_usd: Option<f64>,
}

/// The top-level keys, for "did you mean" suggestions and the section-by-section diagnosis.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "shutdown_grace",
    "providers",
    "models",
    "default_model",
    "baseline_model",
    "limits",
    "tenants",
    "budget_state_file",
    "runs",
    "cache",
];

/// The JSON schema of a policy file, for editor completion (`policies/schema.json`).
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RawPolicy);
    serde_json::to_value(schema).unwrap_or_default()
}
