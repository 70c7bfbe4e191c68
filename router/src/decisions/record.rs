//! One line of the decision log, and the draft the pipeline fills as it decides.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::stage::account::Account;

/// The format version written in every line (`"v"`).
pub const VERSION: u32 = 1;

/// One answered request, as the log holds it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecisionRecord {
    /// Format version.
    pub v: u32,
    /// When the request settled, milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The request's `x-request-id`.
    pub request_id: String,
    /// The tenant it was billed to.
    pub tenant: String,
    /// The agent run it belonged to, if any.
    pub run_id: Option<String>,
    /// `embeddings` for a `POST /v1/embeddings` request, `messages` for Anthropic's
    /// `POST /v1/messages` (absent for chat completions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The model alias the client asked for.
    pub model_requested: String,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// The first 12 hex digits of the exact cache key (absent when not cacheable).
    pub exact_key: Option<String>,
    /// Context trimming: tokens before and after (absent without context).
    pub trim: Option<TrimDecision>,
    /// What the cache did.
    pub cache: CacheDecision,
    /// The classifier's verdict (absent when not routed).
    pub classifier: Option<ClassifierDecision>,
    /// What was done for the provider's prompt cache (absent when nothing was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_prefix: Option<PromptPrefixDecision>,
    /// Each upstream call, in order, with its tokens and cost.
    pub attempts: Vec<AttemptDecision>,
    /// The steps of the climb, as in `x-frugal-escalations`.
    pub escalations: Vec<String>,
    /// Dollars paid upstream.
    pub cost_usd: String,
    /// Dollars the request would have cost without the sidecar.
    pub baseline_usd: String,
    /// Dollars saved, by lever.
    pub saved_usd: SavedDecision,
    /// Milliseconds spent per stage, and in all.
    pub latency_ms: Latency,
    /// The request's messages (only with `log_prompts: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Value>,
    /// The request's other fields but `model` (temperature, max_tokens, tools, …), so a replay
    /// sends what the client sent (only with `log_prompts: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// The answer's text (only with `log_prompts: true`, for a completed answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// An embeddings request's inputs: how many, and how many the cache served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputsDecision>,
}

/// The inputs of an embeddings request.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct InputsDecision {
    /// Inputs in the request.
    pub total: usize,
    /// Inputs served from the cache (the rest were sent upstream in one call).
    pub cached: usize,
}

/// Trimming's decision.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TrimDecision {
    /// Context tokens before.
    pub before: u64,
    /// Context tokens after.
    pub after: u64,
}

/// The cache's decision.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheDecision {
    /// `exact`, `semantic`, `miss`, `shadow_hit` or `bypass`.
    pub outcome: String,
    /// Similarity of the semantic candidate, when there was one.
    pub similarity: Option<f32>,
    /// The guard that rejected it, if one did.
    pub guard: Option<String>,
    /// In shadow mode, whether the answer the cache would have served agrees with the fresh
    /// one (`agree`, `differ`); absent when there was nothing to compare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
}

/// What was done for the provider's prompt cache.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PromptPrefixDecision {
    /// Whether the tools were sorted by name before the call.
    pub tools_sorted: bool,
    /// Why the prefix defeats the provider's cache (`volatile_system`, `tool_order`), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_break: Option<String>,
}

/// The classifier's decision.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassifierDecision {
    /// Its score.
    pub score: f32,
    /// The rung the score selects.
    pub tier: String,
    /// The strongest reasons, `feature: weight`.
    pub reasons: Vec<(String, f32)>,
}

/// One upstream call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttemptDecision {
    /// The model alias called.
    pub model: String,
    /// Prompt tokens billed.
    pub input_tokens: u64,
    /// Completion tokens billed.
    pub output_tokens: u64,
    /// Of the prompt tokens, those the provider read from its prompt cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cached_input_tokens: u64,
    /// Of the prompt tokens, those the provider wrote to its prompt cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    /// Its cost in dollars.
    pub cost_usd: String,
}

/// Savings by lever, in dollars.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SavedDecision {
    /// Trimming.
    pub trim: String,
    /// The cache.
    pub cache: String,
    /// Routing (negative when escalations wasted more than routing saved).
    pub route: String,
    /// The provider's prompt-cache discount.
    pub prompt_cache: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Milliseconds per stage.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Trimming the context.
    pub trim: f64,
    /// Embedding the question.
    pub embed: f64,
    /// Looking the cache up (the shared tier included).
    pub lookup: f64,
    /// From the cache miss to the settled answer (upstream calls, checks, the stream).
    pub answer: f64,
    /// From the pipeline's start to the settled answer.
    pub total: f64,
}

/// The record being filled for one request; shared with a stream's tap, which settles last.
#[derive(Debug, Clone)]
pub struct Draft {
    inner: Arc<Mutex<DraftState>>,
}

#[derive(Debug)]
struct DraftState {
    record: DecisionRecord,
    started: Instant,
    mark: Instant,
}

impl Draft {
    /// A draft for the request `request_id` of `tenant`.
    pub fn new(request_id: &str, tenant: &str, run_id: Option<&str>) -> Self {
        let now = Instant::now();
        Self {
            inner: Arc::new(Mutex::new(DraftState {
                record: DecisionRecord {
                    v: VERSION,
                    request_id: request_id.to_string(),
                    tenant: tenant.to_string(),
                    run_id: run_id.map(str::to_string),
                    ..DecisionRecord::default()
                },
                started: now,
                mark: now,
            })),
        }
    }

    /// Changes the record.
    pub fn note(&self, change: impl FnOnce(&mut DecisionRecord)) {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state.record);
    }

    /// Notes the milliseconds since the last lap (or the start) in the stage `pick` chooses.
    pub fn lap(&self, pick: impl FnOnce(&mut Latency) -> &mut f64) {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(state.mark).as_secs_f64() * 1000.0;
        state.mark = now;
        *pick(&mut state.record.latency_ms) += elapsed;
    }

    /// The finished record, with the settled account.
    pub fn finish(&self, account: &Account) -> DecisionRecord {
        self.lap(|l| &mut l.answer);
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        state.record.latency_ms.total = state.started.elapsed().as_secs_f64() * 1000.0;
        let mut record = state.record.clone();
        record.ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        record.cost_usd = account.actual.to_string();
        record.baseline_usd = account.baseline.to_string();
        record.saved_usd = SavedDecision {
            trim: account.savings.trim.to_string(),
            cache: account.savings.cache.to_string(),
            route: account.savings.route.to_string(),
            prompt_cache: account.savings.prompt_cache.to_string(),
        };
        record.attempts = account
            .attempts
            .iter()
            .map(|a| AttemptDecision {
                model: a.model.clone(),
                input_tokens: a.tokens.input,
                output_tokens: a.tokens.output,
                cached_input_tokens: a.tokens.cached_input,
                cache_write_tokens: a.tokens.cache_write,
                cost_usd: a.cost.to_string(),
            })
            .collect();
        record
    }
}
