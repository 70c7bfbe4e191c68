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
    /// Socket address of a separate admin listener serving `/metrics`, `/healthz`, `/readyz`,
    /// `/v1/frugal/reload` and `/v1/frugal/savings` (then absent from `listen`), e.g.
    /// `0.0.0.0:9090`, so probes and Prometheus reach them while the API stays on loopback.
    #[serde(default)]
    pub admin_listen: Option<String>,
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
    /// Cheap-model-first routing: the ladder, the classifier and the escalation checks.
    #[serde(default)]
    pub route: Option<RawRoute>,
    /// Retries of failed upstream calls, within a budget.
    #[serde(default)]
    pub retries: Option<RawRetries>,
    /// Per-provider circuit breaker.
    #[serde(default)]
    pub circuit_breaker: Option<RawCircuitBreaker>,
    /// The embedding model shared by routing (and the semantic cache and trimming).
    #[serde(default)]
    pub embeddings: Option<RawEmbeddings>,
    /// Context trimming: retrieved documents and tool output cut to a token cap.
    #[serde(default)]
    pub trim: Option<RawTrim>,
    /// A shared tier on Redis: cache, budgets and run caps shared by every replica.
    #[serde(default)]
    pub shared: Option<RawShared>,
    /// The decision log: one JSON line per answered request.
    #[serde(default)]
    pub decision_log: Option<RawDecisionLog>,
    /// The provider's prompt cache: keeping each call's stable prefix the same, and watching
    /// for prefixes that change from call to call.
    #[serde(default)]
    pub prompt_cache: Option<RawPromptCache>,
}

/// The provider's prompt cache (docs/configuration.md#prompt_cache).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPromptCache {
    /// Send a request's `tools` sorted by function name, so calls that offer the same tools in
    /// another order share one prefix in the provider's cache (default false: the request is
    /// sent as written).
    #[serde(default)]
    pub stable_tool_order: Option<bool>,
    /// Compare each call's stable prefix (tools, then the leading system messages) with the
    /// tenant's recent calls and count, log and flag in a header a prefix that changes in a
    /// small part (a timestamp in the system prompt) or only in tool order (default true).
    #[serde(default)]
    pub watch: Option<bool>,
    /// Shortest prompt, in tokens, the provider caches; shorter calls are not watched (default
    /// 1024, OpenAI's and Anthropic's minimum).
    #[serde(default)]
    pub min_prompt_tokens: Option<u64>,
    /// On calls to `kind: anthropic` providers, mark the end of the tools, of the system prompt
    /// and of the conversation before its last turn with `cache_control` breakpoints, so
    /// Anthropic caches that prefix (default false: the request is sent without them).
    #[serde(default)]
    pub breakpoints: Option<bool>,
}

/// The decision log (docs/decision-log.md).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDecisionLog {
    /// The file lines are appended to, relative to the working directory.
    pub path: String,
    /// Size at which the file is rotated, in bytes (default 104857600: 100 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Rotated files kept: `path.1` … `path.N` (default 5).
    #[serde(default)]
    pub keep: Option<usize>,
    /// Also write each request's messages and its answer's text (default false: they may hold
    /// personal data).
    #[serde(default)]
    pub log_prompts: Option<bool>,
}

/// The shared tier on Redis (or Valkey): what every replica of a deployment shares.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawShared {
    /// Environment variable holding the Redis URL (`redis://` or `rediss://` for TLS; a
    /// password goes in the URL) (default `FRUGAL_SHARED_CACHE_URL`).
    #[serde(default)]
    pub redis_url_env: Option<String>,
    /// Prefix of every key and stream frugal writes, so deployments can share one Redis
    /// (default `frugal`).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Longest one Redis operation may take before the shared tier is skipped for it
    /// (default `50ms`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Most semantic entries a starting replica loads from Redis, newest first (default 10000).
    #[serde(default)]
    pub warm_entries: Option<usize>,
    /// Longest the warm-up may hold back readiness (default `5s`); what is not loaded by then
    /// arrives through the stream.
    #[serde(default)]
    pub warm_timeout: Option<String>,
    /// How long a budget or run hold lasts in Redis unless its request renews it (default
    /// `60s`; a request renews every third of it while it runs). A replica that dies, or a
    /// reserve whose reply timed out, leaves a hold that stops counting after this long.
    #[serde(default)]
    pub hold_lease: Option<String>,
    /// Share the response cache (default true).
    #[serde(default)]
    pub cache: Option<bool>,
    /// Share tenant budget spend (default true).
    #[serde(default)]
    pub budgets: Option<bool>,
    /// Share run spend and token counters (default true).
    #[serde(default)]
    pub runs: Option<bool>,
}

/// Context trimming.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTrim {
    /// `off`, `shadow` (compute and count what would be trimmed, send the request unchanged)
    /// or `on` (default when the section is present).
    #[serde(default)]
    pub mode: Option<RawMode>,
    /// Most tokens the context of one request may keep (all its documents together).
    pub max_context_tokens: usize,
    /// Sentences (or code blocks, tables) every document keeps when the cap allows (default 1).
    #[serde(default)]
    pub min_keep_per_document: Option<usize>,
    /// Tag names whose content in user messages is context, e.g. `document` for
    /// `<document>…</document>` (default `[document, context]`).
    #[serde(default)]
    pub markers: Option<Vec<String>>,
    /// Whether messages with role `tool` are context (default true).
    #[serde(default)]
    pub tool_messages: Option<bool>,
    /// Tokenizer the cap is counted in: `o200k_base` (GPT-4o family, default) or `cl100k_base`.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Ranking: `frugal_lexical` (document and sentence BM25 with neighbours; ~3.5 ms for 6,000
    /// tokens, default) or `frugal` (fused with embeddings of every sentence: better recall, but
    /// seconds per long context on a small CPU; past `embeddings.deadline` it falls back to
    /// `frugal_lexical`).
    #[serde(default)]
    pub strategy: Option<String>,
}

/// The in-process embedding model (all-MiniLM-L6-v2, fetched by scripts/fetch-models.sh).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEmbeddings {
    /// Folder filled by scripts/fetch-models.sh, relative to the policy file (default `models`
    /// in the working directory); the `FRUGAL_MODEL_DIR` environment variable overrides it.
    #[serde(default)]
    pub model_dir: Option<String>,
    /// Longest a request waits for its embedding before going on without it (default `50ms`).
    #[serde(default)]
    pub deadline: Option<String>,
    /// Most texts embedded in one batch (default 16).
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// How long a text waits for others to share its batch (default `0s`: no wait; texts that
    /// queue while a batch runs form the next batch).
    #[serde(default)]
    pub batch_window: Option<String>,
    /// ONNX Runtime threads (default: the cores the process may use, at most 4; 1 serves the
    /// most requests under load).
    #[serde(default)]
    pub threads: Option<usize>,
}

/// A section's mode as written: `off`, `shadow` or `on`. YAML 1.1 tools (PyYAML, some
/// templating) turn a bare `on`/`off` into a boolean, so `true`/`false` are read as on/off.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawMode {
    /// `on` or `off` after a YAML 1.1 round trip.
    Switch(bool),
    /// `off`, `shadow` or `on`.
    Named(String),
}

impl RawMode {
    /// The mode's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Switch(true) => "on",
            Self::Switch(false) => "off",
            Self::Named(name) => name,
        }
    }
}

/// Cheap-model-first routing.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// `off` (every request goes to the model it names), `shadow` (classify and count the tier
    /// each request would start at, but call the requested model) or `on`.
    #[serde(default)]
    pub mode: Option<RawMode>,
    /// Model aliases from cheapest to strongest: two rungs (cheap, strong) or three (cheap, mid,
    /// strong).
    #[serde(default)]
    pub ladder: Vec<String>,
    /// Requests naming these aliases are routed through the ladder; others go where they say.
    /// Default: the ladder's strongest rung.
    #[serde(default)]
    pub routed_models: Option<Vec<String>>,
    /// Complexity classifier weights (JSON written by `frugal train`), relative to the policy
    /// file. Default: the weights built into the binary (policies/models/complexity.json).
    #[serde(default)]
    pub classifier: Option<String>,
    /// Prompts scoring above this start on the strongest rung (0..1).
    #[serde(default)]
    pub start_strong_above: Option<f32>,
    /// Prompts scoring above this (and not above `start_strong_above`) start on the middle rung
    /// of a three-rung ladder.
    #[serde(default)]
    pub start_mid_above: Option<f32>,
    /// Most escalations per request (default: ladder length − 1).
    #[serde(default)]
    pub max_escalations: Option<u32>,
    /// For `stream: true`: `buffer` (a cheap answer is checked before any byte is sent, then
    /// replayed as SSE) or `direct` (stream the start rung live; no escalation).
    #[serde(default)]
    pub stream_cascade: Option<String>,
    /// The confidence checks run on an answer before it is accepted.
    #[serde(default)]
    pub checks: Option<RawChecks>,
}

/// Confidence checks on a lower rung's answer; each that fires escalates with its reason.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawChecks {
    /// `truncated`: the answer stopped at `max_tokens` (finish_reason `length`). Default on.
    #[serde(default)]
    pub truncated: Option<bool>,
    /// `empty`: no text and no tool call. Default on.
    #[serde(default)]
    pub empty: Option<bool>,
    /// `refusal_or_hedge`: the answer contains one of `hedge_phrases`. Default on.
    #[serde(default)]
    pub refusal_or_hedge: Option<bool>,
    /// Phrases (matched case-insensitively) that mark a refusal or hedge; default a built-in list.
    #[serde(default)]
    pub hedge_phrases: Option<Vec<String>>,
    /// `invalid_json`: `response_format` asks for JSON (or a JSON schema) and the answer is not
    /// valid JSON (or does not match the schema). Default on.
    #[serde(default)]
    pub invalid_json: Option<bool>,
    /// `invalid_tool_call`: a tool call's arguments are not JSON or do not match the tool's
    /// parameter schema, or name an unknown tool. Default on.
    #[serde(default)]
    pub invalid_tool_call: Option<bool>,
    /// `low_logprob`: escalate when the mean token log-probability of the answer is below this
    /// (e.g. -1.0). Logprobs are requested from providers that support them and removed from the
    /// reply when the client did not ask. Default off.
    #[serde(default)]
    pub min_mean_logprob: Option<f64>,
    /// `arithmetic_error`: a written calculation in the answer is wrong; for prompts asking for
    /// a number also `no_final_answer` and `unused_quantity`. Default on.
    #[serde(default)]
    pub math: Option<bool>,
}

/// Retries of failed upstream calls (connect errors, timeouts, 5xx, 429).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    /// Calls per model per request, the first included (default 3; 1 disables retries).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Retries may add at most this share of first calls (default 0.2), so an outage does not
    /// multiply the bill.
    #[serde(default)]
    pub budget_ratio: Option<f64>,
    /// Retries always allowed on top of the ratio, for low traffic (default 10).
    #[serde(default)]
    pub budget_reserve: Option<u32>,
    /// First backoff, doubled each retry, with full jitter (default `100ms`).
    #[serde(default)]
    pub backoff: Option<String>,
    /// Longest backoff, and the longest `Retry-After` honoured (default `5s`).
    #[serde(default)]
    pub max_backoff: Option<String>,
}

/// A circuit breaker per provider: after `failure_threshold` consecutive failures it opens and
/// calls fail fast (or go to a fallback) for `open_for`, then one probe call decides.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    /// Consecutive failures that open the circuit (default 5).
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    /// How long it stays open before a probe (default `30s`).
    #[serde(default)]
    pub open_for: Option<String>,
}

/// Response cache settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// `off`, `shadow` (look up and count would-be hits, but always call upstream) or `on`.
    #[serde(default)]
    pub mode: Option<RawMode>,
    /// How long an answer may be served from the cache, e.g. `1h`.
    #[serde(default)]
    pub ttl: Option<String>,
    /// Most bytes of memory the cache takes (answers as held, and their questions' index
    /// entries); least recently used go first.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Requests with a higher `temperature` (default 1.0 when absent) are not cached.
    #[serde(default)]
    pub max_temperature: Option<f64>,
    /// Cache namespace; requests only hit entries of their own namespace (and tenant).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Whether the semantic tier answers requests whose last user message means the same as an
    /// earlier one in the same scope (default true).
    #[serde(default)]
    pub semantic: Option<bool>,
    /// Cosine similarity a semantic candidate needs before verification (default 0.94).
    #[serde(default)]
    pub similarity_threshold: Option<f32>,
    /// Longest question, in the embedding model's tokens, the semantic tier looks up (default
    /// 128, at most 256, what the model reads). Longer questions skip the semantic tier (the
    /// exact tier still answers repeats), so a request for an unrouted model does not wait to
    /// embed them: the embedding's time grows with the question's length.
    #[serde(default)]
    pub semantic_max_tokens: Option<usize>,
    /// The semantic tier's prefilter (default 0.5; 0 turns it off): a question whose static
    /// word-embedding cosine to every stored question of its scope is below this has no
    /// neighbour worth MiniLM's time, so a request for an unrouted model goes upstream without
    /// waiting for its embedding, which is computed after the answer is sent. It only rules
    /// candidates out; `similarity_threshold` and the guards decide hits. Loaded at start-up.
    #[serde(default)]
    pub semantic_prefilter: Option<f32>,
    /// Verification guards a semantic candidate must pass: `all` (default) or a list of
    /// numbers, negation, antonym, quoted, identifiers, urls_paths, entities, order.
    #[serde(default)]
    pub guards: Option<Vec<String>>,
    /// The exact per-input cache of `POST /v1/embeddings`.
    #[serde(default)]
    pub embeddings: Option<RawEmbeddingCache>,
}

/// The exact per-input cache of `POST /v1/embeddings`: each input of a request is looked up on
/// its own, and only the inputs not found are sent upstream.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEmbeddingCache {
    /// `off` or `on` (default: `on` when `cache.mode` is `on`, else `off`).
    #[serde(default)]
    pub mode: Option<RawMode>,
    /// How long a stored embedding is served, e.g. `24h` (default `24h`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// Most bytes of stored embeddings (their JSON text); least recently used go first
    /// (default 67108864: 64 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
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
    /// The highest routing rung this tenant's requests may use: `cheap`, `mid` or `strong`
    /// (a client's `x-frugal-max-tier` can only lower it).
    #[serde(default)]
    pub max_tier: Option<String>,
    /// Cache namespace for this tenant's requests (default: `cache.namespace`).
    #[serde(default)]
    pub cache_namespace: Option<String>,
    /// Context token cap for this tenant's requests (default: `trim.max_context_tokens`).
    #[serde(default)]
    pub trim_max_context_tokens: Option<usize>,
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
    /// Whether the provider returns token logprobs (`logprobs: true`); default true (false for
    /// `kind: anthropic`).
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// The API it speaks: `openai` (Chat Completions, the default) or `anthropic` (the Messages
    /// API, `POST {base_url}/messages`, key sent as `x-api-key`).
    #[serde(default)]
    pub kind: Option<String>,
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
    /// Aliases tried, in order, when this model's provider fails or its circuit is open.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Longest time for one call to this model (default: the provider's timeouts).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Price in US dollars per million tokens.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// USD per 1M input (prompt) tokens.
    pub input_per_mtok: f64,
    /// USD per 1M output (completion) tokens.
    pub output_per_mtok: f64,
    /// USD per 1M input tokens read from the provider's prompt cache (default: the input
    /// price, so no discount is counted; OpenAI bills them at half the input price or less,
    /// Anthropic at a tenth).
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    /// USD per 1M input tokens written to the provider's prompt cache (default: the input
    /// price; Anthropic bills 1.25× the input price for a 5-minute entry).
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
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
    /// Chat and embeddings requests in flight at once over all tenants; more get a 429 at once.
    #[serde(default)]
    pub max_concurrent_requests: Option<u64>,
    /// Chat and embeddings requests in flight at once for one tenant; more get a 429 at once.
    #[serde(default)]
    pub max_concurrent_per_tenant: Option<u64>,
    /// Connections open at once on the listener; more wait to be accepted (read at start).
    #[serde(default)]
    pub max_connections: Option<u64>,
    /// Longest wait for a request's headers, also how long an idle kept-alive connection stays
    /// open, e.g. `30s` (read at start).
    #[serde(default)]
    pub header_read_timeout: Option<String>,
    /// Longest wait for a request's whole body once its headers arrived, e.g. `30s` (408).
    #[serde(default)]
    pub body_read_timeout: Option<String>,
    /// Most tenants not named in `tenants:` whose metrics, savings and budget are kept under
    /// their own name (default 100); requests of any further tenant are counted under `other`.
    #[serde(default)]
    pub max_tenants: Option<usize>,
}

/// The top-level keys, for "did you mean" suggestions and the section-by-section diagnosis.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
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
    "route",
    "retries",
    "circuit_breaker",
    "embeddings",
    "trim",
    "shared",
    "decision_log",
    "prompt_cache",
];

/// The JSON schema of a policy file, for editor completion (`policies/schema.json`).
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RawPolicy);
    serde_json::to_value(schema).unwrap_or_default()
}
