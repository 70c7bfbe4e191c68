//! Raw policy → compiled policy: every reference resolved, every value checked, and *all*
//! mistakes reported at once with their path and line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use crate::money::TokenPrice;
use crate::tenants::DEFAULT_TENANT;

use super::embeddings::{compile_embeddings, EmbeddingPolicy};
use super::locate::{join, Position, SourceMap};
use super::raw::{
    RawBudget, RawCache, RawCircuitBreaker, RawEmbeddings, RawLimits, RawModel, RawPolicy,
    RawProvider, RawRetries, RawRoute, RawRuns, RawShared, RawTenant, RawTrim, TOP_LEVEL_KEYS,
};
use super::route::{
    compile_breaker, compile_retries, compile_route, BreakerPolicy, RetryPolicy, RoutePolicy,
};
use super::shared::{compile_shared, SharedPolicy};
use super::trim::{compile_trim, TrimPolicy};

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
    /// Byte budget of stored answers.
    pub max_bytes: u64,
    /// Hottest sampling temperature still cached.
    pub max_temperature: f64,
    /// Namespace, part of every key.
    pub namespace: String,
    /// The semantic tier, when on.
    pub semantic: Option<SemanticPolicy>,
}

/// Checked semantic-tier settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticPolicy {
    /// Cosine similarity a candidate needs.
    pub threshold: f32,
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

/// One mistake in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Dotted path of the offending key, e.g. `models.fast.provider`.
    pub path: String,
    /// Where it is in the file, when known.
    pub position: Option<Position>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "line {}:{}: {}: {}",
                p.line, p.column, self.path, self.message
            ),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every mistake found in a policy file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PolicyErrors {
    /// The file (or source name) the errors are about.
    pub source_name: String,
    /// The errors.
    pub errors: Vec<PolicyError>,
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: {} error{} in policy",
            self.source_name,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            writeln!(f, "  {error}")?;
        }
        Ok(())
    }
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

/// Short SHA-256 of a policy text: what `Policy::hash` and `frugal_policy_info` show.
pub fn text_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digest tenant keys are looked up by.
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads and compiles a policy file.
pub fn load(path: &std::path::Path) -> Result<Policy, PolicyErrors> {
    let source_name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &source_name),
        Err(e) => Err(PolicyErrors {
            source_name,
            errors: vec![PolicyError {
                path: "(file)".into(),
                position: None,
                message: format!("cannot read: {e}"),
            }],
        }),
    }
}

/// Parses and compiles a policy text; `source_name` names it in error messages.
pub fn parse(text: &str, source_name: &str) -> Result<Policy, PolicyErrors> {
    let fail = |errors: Vec<PolicyError>| PolicyErrors {
        source_name: source_name.to_string(),
        errors,
    };
    let value: Value = match serde_yaml::from_str(text) {
        Ok(Value::Null) => Value::Mapping(Default::default()),
        Ok(value) => value,
        Err(e) => {
            let position = e.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            });
            return Err(fail(vec![PolicyError {
                path: "(file)".into(),
                position,
                message: e.to_string(),
            }]));
        }
    };
    let source = SourceMap::index(text);
    let mut errors = Errors {
        source: &source,
        list: Vec::new(),
    };
    let mut broken = BTreeSet::new();
    let raw = diagnose(&value, &mut errors, &mut broken);
    let base_dir = std::path::Path::new(source_name)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let policy = raw.and_then(|raw| compile(raw, text, base_dir, &broken, &mut errors));
    match policy {
        Some(policy) if errors.list.is_empty() => Ok(policy),
        _ => {
            let mut list = errors.list;
            list.sort_by_key(|e| (e.position.is_none(), e.position.map(|p| (p.line, p.column))));
            Err(fail(list))
        }
    }
}

/// Mistakes found so far, located in the source.
pub(super) struct Errors<'a> {
    source: &'a SourceMap,
    list: Vec<PolicyError>,
}

impl Errors<'_> {
    /// Records a mistake at a dotted path.
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let position = self.source.find(&path);
        // A top-level key may be the empty string (`"": 1`); its error still names a place.
        let path = if path.is_empty() {
            "(root)".to_string()
        } else {
            path
        };
        self.list.push(PolicyError {
            path,
            position,
            message: message.into(),
        });
    }
}

/// Deserializes section by section and entry by entry, so that every structural mistake
/// (unknown key, wrong type, missing field) is found, not only the first. What does not
/// deserialize is left out and its path remembered in `broken`, so compiling the rest can still
/// find the semantic mistakes without reporting a broken entry a second time.
fn diagnose(
    value: &Value,
    errors: &mut Errors,
    broken: &mut BTreeSet<String>,
) -> Option<RawPolicy> {
    let Value::Mapping(top) = value else {
        errors.push(
            "(root)",
            "a policy must be a mapping of keys such as `providers:` and `models:`",
        );
        return None;
    };
    let mut kept = Mapping::new();
    for (key, section) in top {
        let Some(name) = key.as_str() else {
            errors.push("(root)", format!("keys must be strings, found {key:?}"));
            continue;
        };
        let section = match name {
            "providers" => check_entries::<RawProvider>(section, name, errors, broken),
            "models" => check_entries::<RawModel>(section, name, errors, broken),
            "limits" => check_value::<RawLimits>(section, name, errors, broken),
            "tenants" => check_entries::<RawTenant>(section, name, errors, broken),
            "runs" => check_value::<RawRuns>(section, name, errors, broken),
            "cache" => check_value::<RawCache>(section, name, errors, broken),
            "route" => check_value::<RawRoute>(section, name, errors, broken),
            "retries" => check_value::<RawRetries>(section, name, errors, broken),
            "circuit_breaker" => check_value::<RawCircuitBreaker>(section, name, errors, broken),
            "embeddings" => check_value::<RawEmbeddings>(section, name, errors, broken),
            "trim" => check_value::<RawTrim>(section, name, errors, broken),
            "shared" => check_value::<RawShared>(section, name, errors, broken),
            _ if TOP_LEVEL_KEYS.contains(&name) => {
                check_value::<Option<String>>(section, name, errors, broken)
            }
            _ => {
                errors.push(name, unknown_key_message(name, TOP_LEVEL_KEYS));
                None
            }
        };
        if let Some(section) = section {
            kept.insert(key.clone(), section);
        }
    }
    match serde_path_to_error::deserialize::<_, RawPolicy>(Value::Mapping(kept)) {
        Ok(raw) => Some(raw),
        Err(e) => {
            errors.push(e.path().to_string(), e.inner().to_string());
            None
        }
    }
}

/// Checks each entry of a name → settings mapping; returns the mapping of the good entries.
fn check_entries<T: DeserializeOwned>(
    section: &Value,
    path: &str,
    errors: &mut Errors,
    broken: &mut BTreeSet<String>,
) -> Option<Value> {
    match section {
        Value::Mapping(entries) => {
            let good = entries
                .iter()
                .filter(|(name, entry)| {
                    let name = name
                        .as_str()
                        .map_or_else(|| format!("{name:?}"), str::to_string);
                    check_value::<T>(entry, &join(path, &name), errors, broken).is_some()
                })
                .map(|(name, entry)| (name.clone(), entry.clone()))
                .collect();
            Some(Value::Mapping(good))
        }
        Value::Null => None,
        _ => {
            errors.push(path, "expected a mapping of names to settings");
            broken.insert(path.to_string());
            None
        }
    }
}

/// Checks one value against its raw type; returns it if it deserializes.
fn check_value<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    errors: &mut Errors,
    broken: &mut BTreeSet<String>,
) -> Option<Value> {
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(_) => Some(value.clone()),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." {
                path.to_string()
            } else {
                join(path, &inner)
            };
            errors.push(full, with_suggestion(&e.inner().to_string()));
            broken.insert(path.to_string());
            None
        }
    }
}

fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    unknown_key_message(unknown, &candidates)
}

fn unknown_key_message(unknown: &str, candidates: &[&str]) -> String {
    let best = candidates
        .iter()
        .map(|c| (strsim::levenshtein(unknown, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min();
    match best {
        Some((_, c)) => format!("unknown key `{unknown}`; did you mean `{c}`?"),
        None => format!(
            "unknown key `{unknown}`; expected one of: {}",
            candidates.join(", ")
        ),
    }
}

/// Names of a section's entries, including those already reported as broken (so references
/// to them are not reported a second time).
fn known_names<'a, V>(
    section: &'a BTreeMap<String, V>,
    name: &str,
    broken: &'a BTreeSet<String>,
) -> Vec<&'a str> {
    let prefix = format!("{name}.");
    let broken_names = broken
        .iter()
        .filter_map(move |p| p.strip_prefix(prefix.as_str()));
    section
        .keys()
        .map(String::as_str)
        .chain(broken_names)
        .collect()
}

fn compile(
    raw: RawPolicy,
    text: &str,
    base_dir: &std::path::Path,
    broken: &BTreeSet<String>,
    errors: &mut Errors,
) -> Option<Policy> {
    let listen_text = raw.listen.as_deref().unwrap_or(defaults::LISTEN);
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        errors.push(
            "listen",
            format!("`{listen_text}` is not a socket address like 127.0.0.1:8080"),
        );
    });
    let admin_listen = raw.admin_listen.as_deref().and_then(|text| {
        let addr = text.parse::<SocketAddr>().map_err(|_| {
            errors.push(
                "admin_listen",
                format!("`{text}` is not a socket address like 0.0.0.0:9090"),
            );
        });
        addr.ok()
    });
    if let (Ok(api), Some(admin)) = (&listen, admin_listen) {
        if api == &admin {
            errors.push(
                "admin_listen",
                format!("`{admin}` is also `listen`: the admin listener needs its own address"),
            );
        }
    }
    let shutdown_grace = duration(
        raw.shutdown_grace.as_deref(),
        "shutdown_grace",
        defaults::SHUTDOWN_GRACE,
        errors,
    );

    let provider_names = known_names(&raw.providers, "providers", broken);
    if provider_names.is_empty() && !broken.contains("providers") {
        errors.push("providers", "at least one provider is required");
    }
    let providers: BTreeMap<String, Arc<ProviderConfig>> = raw
        .providers
        .iter()
        .filter_map(|(name, p)| {
            compile_provider(name, p, errors).map(|p| (name.clone(), Arc::new(p)))
        })
        .collect();

    let model_names = known_names(&raw.models, "models", broken);
    if model_names.is_empty() && !broken.contains("models") {
        errors.push("models", "at least one model is required");
    }
    let models: BTreeMap<String, ModelRoute> = raw
        .models
        .iter()
        .filter_map(|(alias, m)| {
            compile_model(alias, m, &provider_names, errors).map(|m| (alias.clone(), m))
        })
        .collect();

    let default_model = match (&raw.default_model, model_names.len()) {
        (Some(alias), _) if model_names.contains(&alias.as_str()) => Some(alias.clone()),
        (Some(alias), _) => {
            errors.push(
                "default_model",
                unknown_reference("model", alias, &model_names),
            );
            None
        }
        (None, 1) => model_names.first().map(|name| name.to_string()),
        (None, 0) => None,
        (None, _) => {
            errors.push(
                "default_model",
                "several models are defined: name the one used when a request names none",
            );
            None
        }
    };

    let baseline = match raw.baseline_model.as_deref() {
        None | Some("requested") => Baseline::Requested,
        Some(alias) if model_names.contains(&alias) => Baseline::Model(alias.to_string()),
        Some(alias) => {
            let hint = unknown_reference("model", alias, &model_names);
            errors.push("baseline_model", format!("{hint} (or `requested`)"));
            Baseline::Requested
        }
    };

    let raw_limits = raw.limits.unwrap_or_default();
    let max_body_bytes = raw_limits
        .max_body_bytes
        .unwrap_or(defaults::MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        errors.push("limits.max_body_bytes", "must be greater than 0");
    }
    let request_timeout = duration(
        raw_limits.request_timeout.as_deref(),
        "limits.request_timeout",
        defaults::REQUEST_TIMEOUT,
        errors,
    );

    if raw_limits.max_input_tokens == Some(0) {
        errors.push("limits.max_input_tokens", "must be at least 1");
    }
    let at_least_one = |value: Option<u64>, path: &str, errors: &mut Errors| match value {
        Some(0) => {
            errors.push(path, "must be at least 1");
            None
        }
        other => other.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let max_concurrent_requests = at_least_one(
        raw_limits.max_concurrent_requests,
        "limits.max_concurrent_requests",
        errors,
    )
    .or(Some(defaults::MAX_CONCURRENT_REQUESTS));
    let max_concurrent_per_tenant = at_least_one(
        raw_limits.max_concurrent_per_tenant,
        "limits.max_concurrent_per_tenant",
        errors,
    );
    let max_connections =
        at_least_one(raw_limits.max_connections, "limits.max_connections", errors)
            .unwrap_or(defaults::MAX_CONNECTIONS);
    let header_read_timeout = duration(
        raw_limits.header_read_timeout.as_deref(),
        "limits.header_read_timeout",
        defaults::HEADER_READ_TIMEOUT,
        errors,
    );
    let body_read_timeout = duration(
        raw_limits.body_read_timeout.as_deref(),
        "limits.body_read_timeout",
        defaults::BODY_READ_TIMEOUT,
        errors,
    );
    let max_request_cost = raw_limits.max_request_cost_usd.and_then(|usd| {
        if usd.is_finite() && usd > 0.0 {
            Some(crate::money::Usd::from_dollars(usd))
        } else {
            errors.push(
                "limits.max_request_cost_usd",
                "must be a positive number of dollars",
            );
            None
        }
    });
    let mut tenant_keys = BTreeMap::new();
    for (name, tenant) in &raw.tenants {
        let Some(var) = &tenant.api_key_env else {
            continue;
        };
        let path = join(&join("tenants", name), "api_key_env");
        match std::env::var(var) {
            Ok(key) if key.len() >= 16 => {
                if let Some(other) = tenant_keys.insert(key_digest(&key), name.clone()) {
                    errors.push(
                        path,
                        format!("tenants `{other}` and `{name}` have the same key"),
                    );
                }
            }
            Ok(_) => errors.push(
                path,
                format!("the key in `{var}` is shorter than 16 characters"),
            ),
            Err(_) => errors.push(path, format!("environment variable `{var}` is not set")),
        }
    }

    let budgets = raw
        .tenants
        .iter()
        .filter_map(|(name, tenant)| {
            let budget = tenant.budget.as_ref()?;
            compile_budget(&join(&join("tenants", name), "budget"), budget, errors)
                .map(|b| (name.clone(), b))
        })
        .collect();
    for name in raw.tenants.keys() {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            errors.push(
                join("tenants", name),
                "tenant names are 1-64 letters, digits, `_`, `.` or `-`",
            );
        }
        if name == crate::tenants::OVERFLOW_TENANT {
            errors.push(
                join("tenants", name),
                "`other` is the shared name of unlisted tenants past `limits.max_tenants`; \
                 give this tenant another name",
            );
        }
    }

    let mut tenant_overrides = BTreeMap::new();
    for (name, tenant) in &raw.tenants {
        let path = join("tenants", name);
        let max_tier = tenant.max_tier.as_deref().and_then(|t| {
            let tier = crate::stage::route::parse_tier(t);
            if tier.is_none() {
                errors.push(
                    join(&path, "max_tier"),
                    format!("`{t}` is not a tier: use cheap, mid or strong"),
                );
            }
            tier
        });
        if tenant.cache_namespace.as_deref() == Some("") {
            errors.push(join(&path, "cache_namespace"), "must not be empty");
        }
        if tenant.trim_max_context_tokens == Some(0) {
            errors.push(join(&path, "trim_max_context_tokens"), "must be at least 1");
        }
        let overrides = TenantOverrides {
            max_tier,
            cache_namespace: tenant.cache_namespace.clone(),
            trim_max_context_tokens: tenant.trim_max_context_tokens,
        };
        if overrides != TenantOverrides::default() {
            tenant_overrides.insert(name.clone(), overrides);
        }
    }
    inherit_default_overrides(&mut tenant_overrides);
    let runs = compile_runs(raw.runs.as_ref(), errors);
    let cache = compile_cache(raw.cache.as_ref(), errors);
    check_fallbacks(&models, &model_names, errors);
    let route = compile_route(raw.route.as_ref(), &model_names, base_dir, errors);
    let retries = compile_retries(raw.retries.as_ref(), errors);
    let circuit_breaker = compile_breaker(raw.circuit_breaker.as_ref(), errors);
    let embeddings = compile_embeddings(raw.embeddings.as_ref(), base_dir, errors);
    let trim = compile_trim(raw.trim.as_ref(), errors);
    let shared = compile_shared(raw.shared.as_ref(), errors);

    let hash = text_hash(text);
    Some(Policy {
        listen: listen.ok()?,
        admin_listen,
        shutdown_grace,
        providers,
        models,
        default_model: default_model?,
        baseline,
        budgets,
        tenant_overrides,
        budget_state_file: raw.budget_state_file.map(std::path::PathBuf::from),
        runs,
        cache,
        route: route?,
        retries,
        circuit_breaker,
        embeddings,
        trim,
        shared,
        limits: Limits {
            max_body_bytes,
            request_timeout,
            max_input_tokens: raw_limits.max_input_tokens,
            max_request_cost,
            max_concurrent_requests,
            max_concurrent_per_tenant,
            max_connections,
            header_read_timeout,
            body_read_timeout,
            max_tenants: raw_limits.max_tenants.unwrap_or(defaults::MAX_TENANTS),
        },
        tenant_keys,
        hash,
    })
}

fn compile_provider(name: &str, raw: &RawProvider, errors: &mut Errors) -> Option<ProviderConfig> {
    let path = join("providers", name);
    let before = errors.list.len();
    let base_url = raw.base_url.trim_end_matches('/').to_string();
    match reqwest::Url::parse(&base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => errors.push(
            join(&path, "base_url"),
            format!("`{}` is not an http(s) URL", raw.base_url),
        ),
    }
    if let Some(var) = &raw.api_key_env {
        if !is_env_var_name(var) {
            errors.push(
                join(&path, "api_key_env"),
                format!("`{var}` is not an environment variable name"),
            );
        }
    }
    let t = raw.timeouts.clone().unwrap_or_default();
    let tpath = join(&path, "timeouts");
    let timeouts = Timeouts {
        connect: duration(
            t.connect.as_deref(),
            &join(&tpath, "connect"),
            defaults::CONNECT,
            errors,
        ),
        request: duration(
            t.request.as_deref(),
            &join(&tpath, "request"),
            defaults::REQUEST,
            errors,
        ),
        first_byte: duration(
            t.first_byte.as_deref(),
            &join(&tpath, "first_byte"),
            defaults::FIRST_BYTE,
            errors,
        ),
        idle: duration(
            t.idle.as_deref(),
            &join(&tpath, "idle"),
            defaults::IDLE,
            errors,
        ),
    };
    (errors.list.len() == before).then(|| ProviderConfig {
        name: name.to_string(),
        base_url,
        logprobs: raw.logprobs.unwrap_or(true),
        api_key_env: raw.api_key_env.clone(),
        timeouts,
    })
}

/// Fills what a listed tenant leaves unset from `tenants.default`, field by field, so a tenant
/// that sets only its cache namespace keeps the default's tier cap and trim cap.
fn inherit_default_overrides(overrides: &mut BTreeMap<String, TenantOverrides>) {
    let Some(default) = overrides.get(DEFAULT_TENANT).cloned() else {
        return;
    };
    for (name, own) in overrides.iter_mut() {
        if name != DEFAULT_TENANT {
            own.max_tier = own.max_tier.or(default.max_tier);
            own.cache_namespace = own
                .cache_namespace
                .take()
                .or_else(|| default.cache_namespace.clone());
            own.trim_max_context_tokens = own
                .trim_max_context_tokens
                .or(default.trim_max_context_tokens);
        }
    }
}

/// Every fallback names another existing model.
fn check_fallbacks(models: &BTreeMap<String, ModelRoute>, known: &[&str], errors: &mut Errors) {
    for (alias, model) in models {
        let path = join(&join("models", alias), "fallbacks");
        for fallback in &model.fallbacks {
            if fallback == alias {
                errors.push(&path, format!("`{alias}` cannot be its own fallback"));
            } else if !known.contains(&fallback.as_str()) {
                errors.push(&path, unknown_reference("model", fallback, known));
            }
        }
    }
}

fn compile_model(
    alias: &str,
    raw: &RawModel,
    providers: &[&str],
    errors: &mut Errors,
) -> Option<ModelRoute> {
    let path = join("models", alias);
    let before = errors.list.len();
    if !providers.contains(&raw.provider.as_str()) {
        errors.push(
            join(&path, "provider"),
            unknown_reference("provider", &raw.provider, providers),
        );
    }
    let upstream = raw.upstream.clone().unwrap_or_else(|| alias.to_string());
    let timeout = raw.timeout.as_deref().map(|text| {
        duration(
            Some(text),
            &join(&path, "timeout"),
            defaults::REQUEST,
            errors,
        )
    });
    if upstream.trim().is_empty() {
        errors.push(join(&path, "upstream"), "must not be empty");
    }
    for (key, value) in [
        ("input_per_mtok", raw.price.input_per_mtok),
        ("output_per_mtok", raw.price.output_per_mtok),
    ] {
        if !value.is_finite() || value < 0.0 {
            errors.push(
                join(&join(&path, "price"), key),
                format!("{value} is not a price (USD per 1M tokens, ≥ 0)"),
            );
        }
    }
    (errors.list.len() == before).then(|| ModelRoute {
        alias: alias.to_string(),
        provider: raw.provider.clone(),
        upstream,
        price: Price {
            input_per_mtok: raw.price.input_per_mtok,
            output_per_mtok: raw.price.output_per_mtok,
        },
        token_price: TokenPrice::per_million(raw.price.input_per_mtok, raw.price.output_per_mtok),
        fallbacks: raw.fallbacks.clone(),
        timeout,
    })
}

fn compile_cache(raw: Option<&RawCache>, errors: &mut Errors) -> CachePolicy {
    let defaults = CachePolicy::default();
    let Some(raw) = raw else { return defaults };
    let mode = match raw.mode.as_ref().map(|m| m.name()) {
        None | Some("on") => CacheMode::On,
        Some("off") => CacheMode::Off,
        Some("shadow") => CacheMode::Shadow,
        Some(other) => {
            errors.push(
                "cache.mode",
                format!("`{other}` is not a mode: use off, shadow or on"),
            );
            CacheMode::Off
        }
    };
    if raw.max_bytes == Some(0) {
        errors.push("cache.max_bytes", "must be greater than 0");
    }
    let max_temperature = raw.max_temperature.unwrap_or(defaults.max_temperature);
    if !(0.0..=2.0).contains(&max_temperature) {
        errors.push("cache.max_temperature", "must be between 0 and 2");
    }
    let namespace = raw.namespace.clone().unwrap_or(defaults.namespace);
    if namespace.is_empty() {
        errors.push("cache.namespace", "must not be empty");
    }
    let threshold = raw
        .similarity_threshold
        .unwrap_or(frugal_cache::DEFAULT_SIMILARITY_THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        errors.push("cache.similarity_threshold", "must be between 0 and 1");
    }
    let guards = match &raw.guards {
        None => frugal_cache::GuardSet::ALL,
        Some(names) => names.join(",").parse().unwrap_or_else(|e| {
            errors.push(
                "cache.guards",
                format!("{e}; guards are all, none, numbers, negation, antonym, quoted, identifiers, urls_paths, entities, order"),
            );
            frugal_cache::GuardSet::ALL
        }),
    };
    let semantic = raw.semantic.unwrap_or(true).then_some(SemanticPolicy {
        threshold,
        verifier: frugal_cache::Verifier::new(guards),
    });
    CachePolicy {
        mode,
        semantic,
        ttl: duration(raw.ttl.as_deref(), "cache.ttl", defaults.ttl, errors),
        max_bytes: raw.max_bytes.unwrap_or(defaults.max_bytes),
        max_temperature,
        namespace,
    }
}

fn compile_runs(raw: Option<&RawRuns>, errors: &mut Errors) -> RunPolicy {
    let Some(raw) = raw else {
        return RunPolicy::default();
    };
    let max_cost = raw.max_cost_usd.and_then(|usd| {
        if usd.is_finite() && usd > 0.0 {
            Some(crate::money::Usd::from_dollars(usd))
        } else {
            errors.push("runs.max_cost_usd", "must be a positive number of dollars");
            None
        }
    });
    for (key, value) in [
        ("max_tokens", raw.max_tokens),
        ("loop_max_repeats", raw.loop_max_repeats),
    ] {
        if value == Some(0) {
            errors.push(join("runs", key), "must be at least 1");
        }
    }
    let loop_action = match raw.loop_action.as_deref() {
        None | Some("block") => LoopAction::Block,
        Some("flag") => LoopAction::Flag,
        Some(other) => {
            errors.push(
                "runs.loop_action",
                format!("`{other}` is not an action: use block or flag"),
            );
            LoopAction::Block
        }
    };
    RunPolicy {
        max_cost,
        max_tokens: raw.max_tokens,
        loop_max_repeats: raw.loop_max_repeats,
        loop_action,
        idle_ttl: duration(
            raw.idle_ttl.as_deref(),
            "runs.idle_ttl",
            Duration::from_secs(3600),
            errors,
        ),
    }
}

fn compile_budget(path: &str, raw: &RawBudget, errors: &mut Errors) -> Option<BudgetPolicy> {
    let before = errors.list.len();
    let window = match raw.window.as_str() {
        "hour" => BudgetWindow::Hour,
        "day" => BudgetWindow::Day,
        "month" => BudgetWindow::Month,
        other => {
            errors.push(
                join(path, "window"),
                format!("`{other}` is not a window: use hour, day or month"),
            );
            BudgetWindow::Day
        }
    };
    if !raw.hard_cap_usd.is_finite() || raw.hard_cap_usd <= 0.0 {
        errors.push(
            join(path, "hard_cap_usd"),
            "must be a positive number of dollars",
        );
    }
    let mut thresholds = raw.soft_thresholds.clone();
    for (i, t) in thresholds.iter().enumerate() {
        if !(t.is_finite() && *t > 0.0 && *t < 1.0) {
            errors.push(
                format!("{}[{i}]", join(path, "soft_thresholds")),
                format!("{t} is not a share of the cap in (0, 1)"),
            );
        }
    }
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    if raw.assumed_output_tokens == Some(0) {
        errors.push(join(path, "assumed_output_tokens"), "must be at least 1");
    }
    (errors.list.len() == before).then(|| BudgetPolicy {
        window,
        hard_cap: crate::money::Usd::from_dollars(raw.hard_cap_usd),
        soft_thresholds: thresholds,
        assumed_output_tokens: raw
            .assumed_output_tokens
            .unwrap_or(DEFAULT_ASSUMED_OUTPUT_TOKENS),
    })
}

pub(super) fn unknown_reference(kind: &str, name: &str, known: &[&str]) -> String {
    let hint = unknown_key_message(name, known);
    let hint = hint.split_once("; ").map_or(hint.as_str(), |(_, h)| h);
    format!("no {kind} named `{name}`; {hint}")
}

/// A duration setting, longer than zero.
pub(super) fn duration(
    text: Option<&str>,
    path: &str,
    default: Duration,
    errors: &mut Errors,
) -> Duration {
    parse_duration(text, path, default, false, errors)
}

/// Whether `var` can name an environment variable (letters, digits and `_`, not starting with a
/// digit).
pub(super) fn is_env_var_name(var: &str) -> bool {
    !var.is_empty()
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A duration setting that may be zero (`0s`, `0ms`).
pub(super) fn duration_or_zero(
    text: Option<&str>,
    path: &str,
    default: Duration,
    errors: &mut Errors,
) -> Duration {
    parse_duration(text, path, default, true, errors)
}

fn parse_duration(
    text: Option<&str>,
    path: &str,
    default: Duration,
    zero_ok: bool,
    errors: &mut Errors,
) -> Duration {
    let Some(text) = text else { return default };
    match humantime::parse_duration(text) {
        Ok(d) if zero_ok || !d.is_zero() => d,
        Ok(_) => {
            errors.push(path, "must be longer than zero");
            default
        }
        Err(e) => {
            errors.push(
                path,
                format!("`{text}` is not a duration like 500ms, 30s or 2m ({e})"),
            );
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
providers:
  mock:
    base_url: http://127.0.0.1:9100/v1
models:
  cheap:
    provider: mock
    upstream: gpt-4o-mini
    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
  strong:
    provider: mock
    price: { input_per_mtok: 2.5, output_per_mtok: 10 }
default_model: cheap
";

    #[test]
    fn a_listed_tenant_inherits_what_it_leaves_unset_from_default() {
        let text = format!(
            "{GOOD}trim: {{ max_context_tokens: 900 }}\ntenants:\n  default: {{ max_tier: cheap, trim_max_context_tokens: 500 }}\n  \
             research: {{ cache_namespace: research }}\n  premium: {{ max_tier: strong, cache_namespace: premium }}\n"
        );
        let policy = parse(&text, "good.yaml").unwrap();
        let research = policy.overrides_for("research").unwrap();
        assert_eq!(research.max_tier, Some(frugal_classifier::Tier::Cheap));
        assert_eq!(policy.trim_for("research").max_context_tokens, 500);
        assert_eq!(policy.cache_namespace("research"), "research");
        let premium = policy.overrides_for("premium").unwrap();
        assert_eq!(premium.max_tier, Some(frugal_classifier::Tier::Strong));
        assert_eq!(policy.trim_for("premium").max_context_tokens, 500);
        assert_eq!(policy.cache_namespace("unlisted"), "default");
        assert_eq!(
            policy.overrides_for("unlisted").unwrap().max_tier,
            Some(frugal_classifier::Tier::Cheap)
        );
    }

    #[test]
    fn a_trim_section_with_nothing_to_trim_is_an_error() {
        let text = format!(
            "{GOOD}trim:\n  max_context_tokens: 900\n  markers: []\n  tool_messages: false\n"
        );
        let errors = parse(&text, "bad.yaml").unwrap_err().errors;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "trim.markers");
        assert!(errors[0].message.contains("nothing to trim"));
        let off = text.replace("trim:\n", "trim:\n  mode: off\n");
        assert!(parse(&off, "good.yaml").is_ok());
    }

    #[test]
    fn a_middle_threshold_above_the_strong_one_is_an_error() {
        let models = GOOD.replace("default_model: cheap\n", "");
        let text = format!(
            "{models}  mid: {{ provider: mock, price: {{ input_per_mtok: 1, output_per_mtok: 4 }} }}\n\
             default_model: cheap\n\
             route: {{ ladder: [cheap, mid, strong], start_strong_above: 0.6, start_mid_above: 0.7 }}\n"
        );
        let errors = parse(&text, "bad.yaml").unwrap_err().errors;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "route.start_mid_above");
        let fixed = text.replace("start_mid_above: 0.7", "start_mid_above: 0.4");
        assert!(parse(&fixed, "good.yaml").is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Whatever an edit does to a policy (a line dropped, duplicated or cut short, a
        /// character replaced), it compiles or is refused with positioned errors: never a panic.
        #[test]
        fn an_edited_policy_compiles_or_lists_its_errors(
            edits in proptest::collection::vec((0usize..400, 0u8..4, proptest::char::any()), 1..4)
        ) {
            let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/examples/rag.yaml");
            let mut lines: Vec<String> = std::fs::read_to_string(shipped)
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
            for (at, kind, c) in edits {
                let i = at % lines.len();
                match kind {
                    0 => {
                        lines.remove(i);
                    }
                    1 => lines.insert(i, lines[i].clone()),
                    2 => {
                        let keep = lines[i].chars().count() / 2;
                        lines[i] = lines[i].chars().take(keep).collect();
                    }
                    _ => {
                        let n = lines[i].chars().count().max(1);
                        let at = at % n;
                        lines[i] = lines[i]
                            .chars()
                            .enumerate()
                            .map(|(j, old)| if j == at { c } else { old })
                            .collect();
                    }
                }
            }
            let text = lines.join("\n");
            let line_count = text.lines().count().max(1);
            if let Err(errors) = parse(&text, "edited.yaml") {
                proptest::prop_assert!(!errors.errors.is_empty());
                for error in &errors.errors {
                    proptest::prop_assert!(!error.message.is_empty());
                    if let Some(p) = error.position {
                        proptest::prop_assert!(p.line >= 1 && p.line <= line_count + 1, "{error:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn good_policy_compiles_with_defaults() {
        let policy = parse(GOOD, "good.yaml").unwrap();
        assert_eq!(policy.default_model, "cheap");
        assert_eq!(policy.models["strong"].upstream, "strong");
        assert_eq!(policy.models["cheap"].upstream, "gpt-4o-mini");
        assert_eq!(policy.limits.max_body_bytes, defaults::MAX_BODY_BYTES);
        assert_eq!(policy.providers["mock"].timeouts.connect, defaults::CONNECT);
    }

    #[test]
    fn a_batch_window_may_be_zero_but_a_deadline_may_not() {
        let zero_window = format!("{GOOD}embeddings: {{ batch_window: 0s }}\n");
        let policy = parse(&zero_window, "good.yaml").unwrap();
        assert_eq!(policy.embeddings.config.batch.window, Duration::ZERO);
        assert_eq!(
            parse(GOOD, "good.yaml")
                .unwrap()
                .embeddings
                .config
                .batch
                .window,
            Duration::ZERO,
            "no wait by default"
        );
        let zero_deadline = format!("{GOOD}embeddings: {{ deadline: 0s }}\n");
        let errors = parse(&zero_deadline, "bad.yaml").unwrap_err().errors;
        assert_eq!(errors[0].path, "embeddings.deadline");
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let text = "\
listen: not-an-address
providers:
  mock:
    base_url: ftp://x
    timeouts: { connect: soon }
models:
  cheap:
    provider: mokc
    price: { input_per_mtok: -1, output_per_mtok: 0.6 }
default_model: strong
";
        let errors = parse(text, "bad.yaml").unwrap_err().errors;
        let lines: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.position.unwrap().line, e.path.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (1, "listen"),
                (4, "providers.mock.base_url"),
                (5, "providers.mock.timeouts.connect"),
                (8, "models.cheap.provider"),
                (9, "models.cheap.price.input_per_mtok"),
                (10, "default_model"),
            ]
        );
        assert!(
            errors[3].message.contains("did you mean `mock`"),
            "{}",
            errors[3].message
        );
    }

    #[test]
    fn structural_mistakes_in_several_sections_are_all_reported() {
        let text = "\
providers:
  mock:
    base_ur: http://x
modles: {}
limits:
  max_body_bytes: lots
";
        let errors = parse(text, "bad.yaml").unwrap_err().errors;
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "providers.mock.base_ur",
                "modles",
                "limits.max_body_bytes",
                "models"
            ],
            "{errors:?}"
        );
        assert!(
            errors[0].message.contains("did you mean `base_url`"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[1].message.contains("did you mean `models`"),
            "{}",
            errors[1].message
        );
    }

    #[test]
    fn structural_and_semantic_mistakes_are_reported_together() {
        let text = "\
providers:
  openai:
    base_url: api.openai.com
  broken:
    base_url: http://x
    retries: 3
models:
  gpt-4o:
    provider: opneai
    price: { input_per_mtok: 2.5, output_per_mtok: 10 }
  uses-broken:
    provider: broken
    price: { input_per_mtok: 1, output_per_mtok: 1 }
default_model: gpt-4o
limts: {}
";
        let errors = parse(text, "bad.yaml").unwrap_err().errors;
        let found: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.position.unwrap().line, e.path.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (3, "providers.openai.base_url"),
                (6, "providers.broken.retries"),
                (9, "models.gpt-4o.provider"),
                (15, "limts"),
            ],
            "a reference to the broken provider is not reported twice: {errors:?}"
        );
    }

    #[test]
    fn yaml_syntax_error_has_a_position() {
        let errors = parse("models: [unclosed\n", "bad.yaml").unwrap_err().errors;
        assert_eq!(errors.len(), 1);
        assert!(errors[0].position.is_some());
    }
}
