//! Every metric frugal exports, as one closed enum: names and label sets live here and nowhere
//! else, so the exporter, the docs and the dashboard cannot drift apart.

use std::sync::OnceLock;
use std::time::Duration;

use frugal_cache::{CacheTier, ShadowVerdict, TierResult};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::money::Usd;
use crate::usd_counters::UsdCounters;

/// A metric frugal exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Counter `{endpoint, status}`: HTTP requests served.
    RequestsTotal,
    /// Histogram `{endpoint}`: time until the response head was sent.
    RequestDurationSeconds,
    /// Gauge: requests being served now.
    RequestsInFlight,
    /// Counter `{provider, model, outcome}`: calls to upstream providers, retries included.
    UpstreamAttemptsTotal,
    /// Histogram `{provider}`: upstream time to reply (or to response headers for streams).
    UpstreamDurationSeconds,
    /// Gauge `{revision, hash}` = 1 for the live policy, 0 for replaced ones.
    PolicyInfo,
    /// Counter `{result}`: policy reload checks that applied or rejected a new file.
    PolicyReloadsTotal,
    /// Counter `{tenant, model}`: dollars paid upstream (every attempt).
    CostUsdTotal,
    /// Counter `{tenant}`: dollars the same requests would have cost without the sidecar.
    BaselineCostUsdTotal,
    /// Counter `{tenant, lever}`: dollars saved, by lever (each request's saving when positive).
    SavedUsdTotal,
    /// Counter `{tenant, lever}`: dollars a lever cost above the baseline (a request's negative
    /// saving, e.g. an escalation that wasted a cheap call); net saving = saved − overspent.
    OverspentUsdTotal,
    /// Counter `{tenant, model, direction}`: tokens billed upstream, `input` or `output`.
    TokensTotal,
    /// Gauge `{tenant, window}`: settled spend in the current budget window.
    BudgetSpentUsd,
    /// Gauge `{tenant, window}`: hard cap minus settled spend.
    BudgetRemainingUsd,
    /// Counter `{tenant, threshold}`: soft budget thresholds crossed.
    BudgetThresholdCrossedTotal,
    /// Counter `{tenant}`: requests refused by a hard budget cap.
    BudgetRejectionsTotal,
    /// Counter `{tenant, kind}`: requests refused by a per-run cap (`cost` or `tokens`).
    RunCapExceededTotal,
    /// Counter `{tenant, action}`: loops detected in agent runs (`block` or `flag`).
    LoopsDetectedTotal,
    /// Counter `{tier, result}`: cache lookups (`exact`, `semantic`; `hit`, `miss`,
    /// `shadow_hit`, `bypass`, `rejected`, `skipped`, `too_long`, `prefiltered`).
    CacheLookupsTotal,
    /// Gauge: entries in the cache (answers, and questions indexed from other replicas).
    CacheEntries,
    /// Gauge: memory the cache's entries take, as `cache.max_bytes` counts it.
    CacheBytes,
    /// Counter: entries evicted for size or expired.
    CacheEvictionsTotal,
    /// Counter `{result}`: questions the prefilter let through unembedded, embedded after the
    /// answer was sent (`indexed`, or `dropped` when the worker had no time for them).
    CacheDeferredEmbeddingsTotal,
    /// Counter `{tier}`: routed requests by the rung they started on.
    RouteStartTotal,
    /// Counter `{from, to, reason}`: escalations to a stronger rung.
    EscalationsTotal,
    /// Counter `{provider}`: retried upstream calls.
    RetriesTotal,
    /// Gauge `{provider}`: circuit state, 0 closed, 1 half-open, 2 open.
    CircuitState,
    /// Histogram: complexity scores of routed requests.
    ClassifierScore,
    /// Histogram: time to embed one batch.
    EmbeddingDurationSeconds,
    /// Histogram: texts per embedding batch.
    EmbeddingBatchSize,
    /// Counter `{reason}`: requests that went on without their embedding.
    EmbeddingDeadlineSkipsTotal,
    /// Counter `{guard}`: semantic candidates rejected by a verification guard.
    CacheGuardRejectionsTotal,
    /// Counter `{kind, mode}`: context tokens before and after trimming.
    TrimTokensTotal,
    /// Histogram: time to trim one request's context, embeddings included.
    TrimDurationSeconds,
    /// Counter `{tier, verdict}`: shadow hits whose answer agreed or differed with the fresh one.
    CacheShadowComparisonsTotal,
    /// Counter `{tier}`: dollars shadow hits would have saved.
    CacheShadowSavedUsdTotal,
    /// Counter `{limit}`: chat and embeddings requests refused because too many were in flight (`global`,
    /// `tenant`).
    AdmissionRejectionsTotal,
    /// Counter: requests of unlisted tenants past `limits.max_tenants`, counted as `other`.
    TenantOverflowTotal,
    /// Counter `{op}`: shared-tier operations skipped because Redis failed or was slow.
    SharedErrorsTotal,
    /// Counter `{tier}`: answers found in the shared tier (`exact`, `semantic`).
    SharedHitsTotal,
    /// Gauge: age in seconds of the newest stream entry read from other replicas.
    SharedStreamLagSeconds,
    /// Gauge: entries the last stream read returned (at the read size, this replica lags).
    SharedStreamLagEntries,
    /// Gauge: semantic entries loaded from the shared tier at start.
    SharedWarmEntries,
    /// Gauge `{lever}`: 1 while a lever (`budgets`, `runs`) falls back to local enforcement.
    SharedFallback,
    /// Counter: decision-log records dropped (the writer was behind, or the file failed).
    DecisionLogDroppedTotal,
    /// Counter `{tenant, model, kind}`: input tokens the provider read from (`read`) or wrote to
    /// (`write`) its prompt cache, as its usage reported them.
    PromptCacheTokensTotal,
    /// Counter `{tenant, cause}`: calls whose stable prompt prefix changed from the tenant's
    /// earlier calls in a way that defeats the provider's prompt cache (`volatile_system`: a
    /// small part of the system prompt changes, such as a timestamp; `tool_order`: the same tools
    /// in another order).
    PromptPrefixBreaksTotal,
    /// Counter `{tenant, outcome}`: inputs of `POST /v1/embeddings` requests, `hit` (served
    /// from the cache), `miss` (looked up, sent upstream) or `bypass` (sent upstream unlooked).
    EmbeddingInputsTotal,
}

impl Metric {
    /// All metrics, for documentation and tests.
    pub const ALL: [Metric; 48] = [
        Self::RequestsTotal,
        Self::RequestDurationSeconds,
        Self::RequestsInFlight,
        Self::UpstreamAttemptsTotal,
        Self::UpstreamDurationSeconds,
        Self::PolicyInfo,
        Self::PolicyReloadsTotal,
        Self::CostUsdTotal,
        Self::BaselineCostUsdTotal,
        Self::SavedUsdTotal,
        Self::OverspentUsdTotal,
        Self::TokensTotal,
        Self::BudgetSpentUsd,
        Self::BudgetRemainingUsd,
        Self::BudgetThresholdCrossedTotal,
        Self::BudgetRejectionsTotal,
        Self::RunCapExceededTotal,
        Self::LoopsDetectedTotal,
        Self::CacheLookupsTotal,
        Self::CacheEntries,
        Self::CacheBytes,
        Self::CacheEvictionsTotal,
        Self::CacheDeferredEmbeddingsTotal,
        Self::RouteStartTotal,
        Self::EscalationsTotal,
        Self::RetriesTotal,
        Self::CircuitState,
        Self::ClassifierScore,
        Self::EmbeddingDurationSeconds,
        Self::EmbeddingBatchSize,
        Self::EmbeddingDeadlineSkipsTotal,
        Self::CacheGuardRejectionsTotal,
        Self::TrimTokensTotal,
        Self::TrimDurationSeconds,
        Self::CacheShadowComparisonsTotal,
        Self::CacheShadowSavedUsdTotal,
        Self::AdmissionRejectionsTotal,
        Self::TenantOverflowTotal,
        Self::SharedErrorsTotal,
        Self::SharedHitsTotal,
        Self::SharedStreamLagSeconds,
        Self::SharedStreamLagEntries,
        Self::SharedWarmEntries,
        Self::SharedFallback,
        Self::DecisionLogDroppedTotal,
        Self::PromptCacheTokensTotal,
        Self::PromptPrefixBreaksTotal,
        Self::EmbeddingInputsTotal,
    ];

    /// The Prometheus name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RequestsTotal => "frugal_requests_total",
            Self::RequestDurationSeconds => "frugal_request_duration_seconds",
            Self::RequestsInFlight => "frugal_requests_in_flight",
            Self::UpstreamAttemptsTotal => "frugal_upstream_attempts_total",
            Self::UpstreamDurationSeconds => "frugal_upstream_duration_seconds",
            Self::PolicyInfo => "frugal_policy_info",
            Self::PolicyReloadsTotal => "frugal_policy_reloads_total",
            Self::CostUsdTotal => "frugal_cost_usd_total",
            Self::BaselineCostUsdTotal => "frugal_baseline_cost_usd_total",
            Self::SavedUsdTotal => "frugal_saved_usd_total",
            Self::OverspentUsdTotal => "frugal_overspent_usd_total",
            Self::TokensTotal => "frugal_tokens_total",
            Self::BudgetSpentUsd => "frugal_budget_spent_usd",
            Self::BudgetRemainingUsd => "frugal_budget_remaining_usd",
            Self::BudgetThresholdCrossedTotal => "frugal_budget_threshold_crossed_total",
            Self::BudgetRejectionsTotal => "frugal_budget_rejections_total",
            Self::RunCapExceededTotal => "frugal_run_cap_exceeded_total",
            Self::LoopsDetectedTotal => "frugal_loops_detected_total",
            Self::CacheLookupsTotal => "frugal_cache_lookups_total",
            Self::CacheEntries => "frugal_cache_entries",
            Self::CacheBytes => "frugal_cache_bytes",
            Self::CacheEvictionsTotal => "frugal_cache_evictions_total",
            Self::CacheDeferredEmbeddingsTotal => "frugal_cache_deferred_embeddings_total",
            Self::RouteStartTotal => "frugal_route_start_total",
            Self::EscalationsTotal => "frugal_escalations_total",
            Self::RetriesTotal => "frugal_retries_total",
            Self::CircuitState => "frugal_circuit_state",
            Self::ClassifierScore => "frugal_classifier_score",
            Self::EmbeddingDurationSeconds => "frugal_embedding_duration_seconds",
            Self::EmbeddingBatchSize => "frugal_embedding_batch_size",
            Self::EmbeddingDeadlineSkipsTotal => "frugal_embedding_deadline_skips_total",
            Self::CacheGuardRejectionsTotal => "frugal_cache_guard_rejections_total",
            Self::TrimTokensTotal => "frugal_trim_tokens_total",
            Self::TrimDurationSeconds => "frugal_trim_duration_seconds",
            Self::CacheShadowComparisonsTotal => "frugal_cache_shadow_comparisons_total",
            Self::CacheShadowSavedUsdTotal => "frugal_cache_shadow_saved_usd_total",
            Self::AdmissionRejectionsTotal => "frugal_admission_rejections_total",
            Self::TenantOverflowTotal => "frugal_tenant_overflow_total",
            Self::SharedErrorsTotal => "frugal_shared_errors_total",
            Self::SharedHitsTotal => "frugal_shared_hits_total",
            Self::SharedStreamLagSeconds => "frugal_shared_stream_lag_seconds",
            Self::SharedStreamLagEntries => "frugal_shared_stream_lag_entries",
            Self::SharedWarmEntries => "frugal_shared_warm_entries",
            Self::SharedFallback => "frugal_shared_fallback",
            Self::DecisionLogDroppedTotal => "frugal_decision_log_dropped_total",
            Self::PromptCacheTokensTotal => "frugal_prompt_cache_tokens_total",
            Self::PromptPrefixBreaksTotal => "frugal_prompt_prefix_breaks_total",
            Self::EmbeddingInputsTotal => "frugal_embedding_inputs_total",
        }
    }

    /// The one-line help text.
    pub const fn help(self) -> &'static str {
        match self {
            Self::RequestsTotal => "HTTP requests served, by endpoint and status code.",
            Self::RequestDurationSeconds => "Time from request to response head, by endpoint.",
            Self::RequestsInFlight => "Requests being served now.",
            Self::UpstreamAttemptsTotal => {
                "Calls to upstream providers, retries included, by provider, model and outcome."
            }
            Self::UpstreamDurationSeconds => {
                "Upstream time to reply (to headers for streams), by provider."
            }
            Self::PolicyInfo => "The live policy (value 1) by revision and content hash.",
            Self::PolicyReloadsTotal => {
                "Policy reloads by result: applied, or rejected (old policy kept)."
            }
            Self::CostUsdTotal => {
                "Dollars paid upstream, every attempt included, by tenant and model."
            }
            Self::BaselineCostUsdTotal => {
                "Dollars the same requests would have cost without the sidecar."
            }
            Self::SavedUsdTotal => {
                "Dollars saved by tenant and lever (trim, cache, route, prompt_cache): each request's positive saving."
            }
            Self::OverspentUsdTotal => {
                "Dollars a lever cost above the baseline, by tenant and lever (net saving = saved - overspent)."
            }
            Self::TokensTotal => {
                "Tokens billed upstream by tenant, model and direction (input, output)."
            }
            Self::BudgetSpentUsd => {
                "Settled spend in the current budget window, by tenant and window."
            }
            Self::BudgetRemainingUsd => "Hard cap minus settled spend in the current window.",
            Self::BudgetThresholdCrossedTotal => {
                "Soft budget thresholds crossed, by tenant and threshold."
            }
            Self::BudgetRejectionsTotal => "Requests refused (429) by a tenant's hard budget cap.",
            Self::RunCapExceededTotal => {
                "Requests refused by a per-run cap, by tenant and kind (cost, tokens)."
            }
            Self::LoopsDetectedTotal => {
                "Loops detected in agent runs, by tenant and action (block, flag)."
            }
            Self::CacheLookupsTotal => {
                "Cache lookups by tier and result (hit, miss, shadow_hit, bypass, rejected, skipped, too_long, prefiltered)."
            }
            Self::CacheEntries => {
                "Entries in the response cache: answers, and questions indexed from other replicas."
            }
            Self::CacheBytes => {
                "Memory the response cache's entries take (answers and their questions' index entries), as cache.max_bytes bounds it."
            }
            Self::CacheEvictionsTotal => "Response cache entries evicted for size or expired.",
            Self::CacheDeferredEmbeddingsTotal => {
                "Questions the semantic prefilter let through unembedded, embedded after the answer, by result (indexed, dropped)."
            }
            Self::RouteStartTotal => {
                "Routed requests by the rung they started on (cheap, mid, strong)."
            }
            Self::EscalationsTotal => "Escalations to a stronger rung, by from, to and reason.",
            Self::RetriesTotal => "Upstream calls retried, by provider.",
            Self::CircuitState => {
                "Circuit breaker state by provider: 0 closed, 1 half-open, 2 open."
            }
            Self::ClassifierScore => "Complexity scores of classified requests (0 easy .. 1 hard).",
            Self::EmbeddingDurationSeconds => "Time to embed one batch of texts.",
            Self::EmbeddingBatchSize => "Texts per embedding batch.",
            Self::EmbeddingDeadlineSkipsTotal => {
                "Requests that went on without their embedding, by reason (deadline, overloaded, queue_full, failed)."
            }
            Self::CacheGuardRejectionsTotal => {
                "Semantic cache candidates rejected by a verification guard, by guard."
            }
            Self::TrimTokensTotal => {
                "Context tokens before and after trimming, by kind (before, after) and mode (on, shadow)."
            }
            Self::TrimDurationSeconds => "Time to trim one request's context, embeddings included.",
            Self::CacheShadowComparisonsTotal => {
                "Shadow cache hits by tier and verdict: the would-be answer agreed or differed with the fresh one."
            }
            Self::CacheShadowSavedUsdTotal => "Dollars shadow cache hits would have saved, by tier.",
            Self::TenantOverflowTotal => {
                "Requests of unlisted tenants past limits.max_tenants, counted under tenant other."
            }
            Self::AdmissionRejectionsTotal => {
                "Chat and embeddings requests refused (429) because too many were in flight, by limit (global, tenant)."
            }
            Self::SharedErrorsTotal => {
                "Shared-tier operations skipped because Redis failed or did not answer in time, by operation."
            }
            Self::SharedHitsTotal => "Answers found in the shared tier, by tier (exact, semantic).",
            Self::SharedStreamLagSeconds => {
                "Age in seconds of the newest semantic entry read from other replicas."
            }
            Self::SharedStreamLagEntries => {
                "Semantic entries the last stream read returned (at the read size, this replica lags)."
            }
            Self::SharedWarmEntries => "Semantic entries loaded from the shared tier at start.",
            Self::SharedFallback => {
                "1 while a lever (budgets, runs) falls back to local enforcement because Redis failed."
            }
            Self::DecisionLogDroppedTotal => {
                "Decision-log records dropped because the writer was behind or the file could not be written."
            }
            Self::PromptCacheTokensTotal => {
                "Input tokens the provider read from (read) or wrote to (write) its prompt cache, by tenant and model."
            }
            Self::PromptPrefixBreaksTotal => {
                "Calls whose stable prompt prefix changed in a way that defeats the provider's prompt cache, by tenant and cause."
            }
            Self::EmbeddingInputsTotal => {
                "Embedding inputs by tenant and outcome: hit (from the cache), miss or bypass (sent upstream)."
            }
        }
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

const SCORE_BUCKETS: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Installs the process-wide Prometheus recorder (once) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets(LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(Metric::ClassifierScore.name().into()),
                        SCORE_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(Metric::EmbeddingBatchSize.name().into()),
                        BATCH_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by a test harness); keep serving ours.
            let _ = metrics::set_global_recorder(recorder);
            for metric in Metric::ALL {
                metrics::describe_counter!(metric.name(), metric.help());
            }
            handle
        })
        .clone()
}

/// Records one served HTTP request.
pub fn record_request(endpoint: &'static str, status: u16, elapsed: Duration) {
    metrics::counter!(Metric::RequestsTotal.name(), "endpoint" => endpoint, "status" => status.to_string())
        .increment(1);
    metrics::histogram!(Metric::RequestDurationSeconds.name(), "endpoint" => endpoint)
        .record(elapsed.as_secs_f64());
}

/// Records one upstream call.
pub fn record_upstream(provider: &str, model: &str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!(
        Metric::UpstreamAttemptsTotal.name(),
        "provider" => provider.to_string(),
        "model" => model.to_string(),
        "outcome" => outcome
    )
    .increment(1);
    metrics::histogram!(Metric::UpstreamDurationSeconds.name(), "provider" => provider.to_string())
        .record(elapsed.as_secs_f64());
}

/// Marks a policy live.
pub fn record_policy(hash: &str, revision: u64) {
    metrics::gauge!(Metric::PolicyInfo.name(), "revision" => revision.to_string(), "hash" => hash.to_string())
        .set(1.0);
}

/// Marks the old policy replaced and the new one live.
pub fn record_policy_swap(old_hash: &str, old_revision: u64, new_hash: &str, new_revision: u64) {
    metrics::gauge!(Metric::PolicyInfo.name(), "revision" => old_revision.to_string(), "hash" => old_hash.to_string())
        .set(0.0);
    record_policy(new_hash, new_revision);
}

/// Counts a reload that applied or rejected a changed file.
pub fn record_reload(result: &'static str) {
    metrics::counter!(Metric::PolicyReloadsTotal.name(), "result" => result).increment(1);
}

/// Records a settled request: cost per attempt, baseline, savings per lever, tokens.
///
/// Dollar sums are exact counters ([`UsdCounters`]); a lever's negative saving counts as
/// overspent, so every counter only goes up and saved − overspent is the net saving.
pub fn record_account(tenant: &str, account: &crate::stage::account::Account) {
    let dollars = UsdCounters::global();
    for attempt in &account.attempts {
        let model = attempt.model.clone();
        dollars.add(
            Metric::CostUsdTotal,
            &[("tenant", tenant), ("model", &model)],
            attempt.cost,
        );
        for (direction, tokens) in [
            ("input", attempt.tokens.input),
            ("output", attempt.tokens.output),
        ] {
            metrics::counter!(
                Metric::TokensTotal.name(),
                "tenant" => tenant.to_string(),
                "model" => model.clone(),
                "direction" => direction
            )
            .increment(tokens);
        }
        for (kind, tokens) in [
            ("read", attempt.tokens.cached_input),
            ("write", attempt.tokens.cache_write),
        ] {
            if tokens > 0 {
                metrics::counter!(
                    Metric::PromptCacheTokensTotal.name(),
                    "tenant" => tenant.to_string(),
                    "model" => model.clone(),
                    "kind" => kind
                )
                .increment(tokens);
            }
        }
    }
    dollars.add(
        Metric::BaselineCostUsdTotal,
        &[("tenant", tenant)],
        account.baseline,
    );
    for (lever, saved) in account.savings.by_lever() {
        let labels = [("tenant", tenant), ("lever", lever)];
        dollars.add(Metric::SavedUsdTotal, &labels, saved.max(Usd::ZERO));
        dollars.add(Metric::OverspentUsdTotal, &labels, (-saved).max(Usd::ZERO));
    }
}

/// Sets a tenant's budget gauges.
pub fn record_budget_spend(tenant: &str, window: &'static str, spent: Usd, cap: Usd) {
    metrics::gauge!(Metric::BudgetSpentUsd.name(), "tenant" => tenant.to_string(), "window" => window)
        .set(spent.dollars());
    metrics::gauge!(Metric::BudgetRemainingUsd.name(), "tenant" => tenant.to_string(), "window" => window)
        .set((cap - spent).dollars());
}

/// Counts a soft threshold crossed.
pub fn record_budget_threshold(tenant: &str, threshold: f64) {
    metrics::counter!(
        Metric::BudgetThresholdCrossedTotal.name(),
        "tenant" => tenant.to_string(),
        "threshold" => format!("{threshold}")
    )
    .increment(1);
}

/// Counts a request refused by a hard cap.
pub fn record_budget_rejection(tenant: &str) {
    metrics::counter!(Metric::BudgetRejectionsTotal.name(), "tenant" => tenant.to_string())
        .increment(1);
}

/// Counts a request refused by a per-run cap.
pub fn record_run_cap_exceeded(tenant: &str, kind: &'static str) {
    metrics::counter!(Metric::RunCapExceededTotal.name(), "tenant" => tenant.to_string(), "kind" => kind).increment(1);
}

/// Counts a chat request refused by a concurrency limit (`global` or `tenant`).
pub fn record_admission_rejection(limit: &'static str) {
    metrics::counter!(Metric::AdmissionRejectionsTotal.name(), "limit" => limit).increment(1);
}

/// Counts a detected loop.
pub fn record_loop(tenant: &str, action: &'static str) {
    metrics::counter!(Metric::LoopsDetectedTotal.name(), "tenant" => tenant.to_string(), "action" => action).increment(1);
}

/// Counts a cache lookup.
pub fn record_cache_lookup(tier: CacheTier, result: TierResult) {
    metrics::counter!(Metric::CacheLookupsTotal.name(), "tier" => tier.as_str(), "result" => result.as_str())
        .increment(1);
}

/// Counts a shadow comparison's verdict.
pub fn record_shadow_comparison(tier: CacheTier, verdict: ShadowVerdict) {
    metrics::counter!(Metric::CacheShadowComparisonsTotal.name(), "tier" => tier.as_str(), "verdict" => verdict.as_str())
        .increment(1);
}

/// Adds what a shadow hit would have saved.
pub fn record_shadow_saving(tier: CacheTier, saved: Usd) {
    UsdCounters::global().add(
        Metric::CacheShadowSavedUsdTotal,
        &[("tier", tier.as_str())],
        saved.max(Usd::ZERO),
    );
}

/// Makes the shadow series exist (at 0) from the start, so their ratios are defined.
pub fn register_shadow_series() {
    for tier in CacheTier::ALL {
        for verdict in ShadowVerdict::ALL {
            metrics::counter!(Metric::CacheShadowComparisonsTotal.name(), "tier" => tier.as_str(), "verdict" => verdict.as_str())
                .increment(0);
        }
        record_shadow_saving(tier, Usd::ZERO);
    }
}

/// Creates the admission rejection series at zero, so `rate()` and alerts work before the
/// first refusal.
pub fn register_admission_series() {
    for limit in ["global", "tenant"] {
        metrics::counter!(Metric::AdmissionRejectionsTotal.name(), "limit" => limit).increment(0);
    }
}

/// Counts a request whose tenant was counted under `other`.
pub fn record_tenant_overflow() {
    metrics::counter!(Metric::TenantOverflowTotal.name()).increment(1);
}

/// Makes the tenant overflow counter exist (at 0) from the start, so an alert on it is defined.
pub fn register_tenant_overflow() {
    metrics::counter!(Metric::TenantOverflowTotal.name()).increment(0);
}

/// Records one trim.
pub fn record_trim(mode: &'static str, before: u64, after: u64, elapsed: Duration) {
    metrics::counter!(Metric::TrimTokensTotal.name(), "kind" => "before", "mode" => mode)
        .increment(before);
    metrics::counter!(Metric::TrimTokensTotal.name(), "kind" => "after", "mode" => mode)
        .increment(after);
    metrics::histogram!(Metric::TrimDurationSeconds.name()).record(elapsed.as_secs_f64());
}

/// Counts a semantic candidate a guard rejected.
pub fn record_guard_rejection(guard: frugal_cache::Guard) {
    metrics::counter!(Metric::CacheGuardRejectionsTotal.name(), "guard" => guard.as_str())
        .increment(1);
}

/// Sets the cache size gauges.
pub fn record_cache_size(entries: u64, bytes: u64) {
    metrics::gauge!(Metric::CacheEntries.name()).set(entries as f64);
    metrics::gauge!(Metric::CacheBytes.name()).set(bytes as f64);
}

/// Counts a question embedded after its answer was sent: indexed, or dropped (no time).
pub fn record_deferred_embedding(indexed: bool) {
    let result = if indexed { "indexed" } else { "dropped" };
    metrics::counter!(Metric::CacheDeferredEmbeddingsTotal.name(), "result" => result).increment(1);
}

/// Counts an eviction.
pub fn record_cache_eviction() {
    metrics::counter!(Metric::CacheEvictionsTotal.name()).increment(1);
}

/// Counts a routed request's start rung and its classifier score.
pub fn record_route_start(tier: &'static str, score: f32) {
    metrics::counter!(Metric::RouteStartTotal.name(), "tier" => tier).increment(1);
    metrics::histogram!(Metric::ClassifierScore.name()).record(f64::from(score));
}

/// Counts an escalation.
pub fn record_escalation(from: &'static str, to: &'static str, reason: &'static str) {
    metrics::counter!(Metric::EscalationsTotal.name(), "from" => from, "to" => to, "reason" => reason)
        .increment(1);
}

/// Counts a retried upstream call.
pub fn record_retry(provider: &str) {
    metrics::counter!(Metric::RetriesTotal.name(), "provider" => provider.to_string()).increment(1);
}

/// Sets a provider's circuit state gauge.
pub fn record_circuit_state(provider: &str, state: crate::upstream::CircuitState) {
    metrics::gauge!(Metric::CircuitState.name(), "provider" => provider.to_string())
        .set(state.gauge());
}

/// Records one embedded batch.
pub fn record_embedding_batch(size: usize, elapsed: Duration) {
    metrics::histogram!(Metric::EmbeddingDurationSeconds.name()).record(elapsed.as_secs_f64());
    metrics::histogram!(Metric::EmbeddingBatchSize.name()).record(size as f64);
}

/// Counts a request that went on without its embedding.
pub fn record_embedding_skip(reason: &'static str) {
    metrics::counter!(Metric::EmbeddingDeadlineSkipsTotal.name(), "reason" => reason).increment(1);
}

/// Makes the deadline-skip series exist (at 0) from the start, so a rate over it is defined.
pub fn register_embedding_skips() {
    metrics::counter!(Metric::EmbeddingDeadlineSkipsTotal.name(), "reason" => "deadline")
        .increment(0);
}

/// Counts a request in flight until dropped.
pub struct InFlight;

impl InFlight {
    /// Starts counting.
    pub fn start() -> Self {
        metrics::gauge!(Metric::RequestsInFlight.name()).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(Metric::RequestsInFlight.name()).decrement(1.0);
    }
}

/// Counts a shared-tier operation skipped because Redis failed or was slow.
pub fn record_shared_error(op: &'static str) {
    metrics::counter!(Metric::SharedErrorsTotal.name(), "op" => op).increment(1);
}

/// Counts an answer found in the shared tier.
pub fn record_shared_hit(tier: CacheTier) {
    metrics::counter!(Metric::SharedHitsTotal.name(), "tier" => tier.as_str()).increment(1);
}

/// Sets how far this replica's read of the semantic stream lags.
pub fn record_shared_stream_lag(entries: usize, seconds: f64) {
    metrics::gauge!(Metric::SharedStreamLagEntries.name()).set(entries as f64);
    metrics::gauge!(Metric::SharedStreamLagSeconds.name()).set(seconds);
}

/// Sets how many semantic entries the warm-up loaded.
pub fn record_shared_warm(entries: usize) {
    metrics::gauge!(Metric::SharedWarmEntries.name()).set(entries as f64);
}

/// Sets whether a lever falls back to local enforcement.
pub fn record_shared_fallback(lever: &'static str, falling_back: bool) {
    metrics::gauge!(Metric::SharedFallback.name(), "lever" => lever).set(if falling_back {
        1.0
    } else {
        0.0
    });
}

/// Counts a call whose stable prompt prefix changed in a way that defeats the provider's
/// prompt cache.
pub fn record_prefix_break(tenant: &str, cause: &'static str) {
    metrics::counter!(Metric::PromptPrefixBreaksTotal.name(), "tenant" => tenant.to_string(), "cause" => cause)
        .increment(1);
}

/// Counts a decision-log record that was dropped.
pub fn record_decision_dropped() {
    metrics::counter!(Metric::DecisionLogDroppedTotal.name()).increment(1);
}

/// Counts an embeddings request's inputs: `hits` served from the cache and `sent` upstream
/// (after a lookup, or without one).
pub fn record_embedding_inputs(tenant: &str, hits: u64, sent: u64, looked_up: bool) {
    let sent_as = if looked_up { "miss" } else { "bypass" };
    for (outcome, n) in [("hit", hits), (sent_as, sent)] {
        if n > 0 {
            metrics::counter!(Metric::EmbeddingInputsTotal.name(), "tenant" => tenant.to_string(), "outcome" => outcome)
                .increment(n);
        }
    }
}

/// Registers the decision log's drop counter at 0, so it is in every scrape from the start.
pub fn register_decision_log() {
    metrics::counter!(Metric::DecisionLogDroppedTotal.name()).increment(0);
}
