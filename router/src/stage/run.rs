//! Agent runs: requests sharing a run id (`x-frugal-run-id`, or the trace id of a W3C
//! `traceparent`) are accounted together, so one runaway loop is stopped by the run's own caps
//! before it eats a tenant's whole budget, and repeated identical requests or tool calls are
//! caught as loops. The agent can report whether a run succeeded, which turns spend into cost
//! per resolved run.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::metrics;
use crate::money::Usd;
use crate::policy::{LoopAction, RunPolicy};
use crate::stage::account::Account;

/// Above this many tracked runs, idle ones are swept on the next request.
const SWEEP_ABOVE: usize = 10_000;

/// The run id of a request: `x-frugal-run-id`, else the trace id of a `traceparent` header.
pub fn run_id(explicit: Option<&str>, traceparent: Option<&str>) -> Option<String> {
    if let Some(id) = explicit
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 128)
    {
        return Some(id.to_string());
    }
    // version-traceid-parentid-flags, e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
    let trace_id = traceparent?.split('-').nth(1)?;
    let valid = trace_id.len() == 32
        && trace_id.chars().all(|c| c.is_ascii_hexdigit())
        && trace_id.chars().any(|c| c != '0');
    valid.then(|| format!("trace-{}", trace_id.to_ascii_lowercase()))
}

#[derive(Debug)]
struct RunState {
    tenant: String,
    actual: Usd,
    baseline: Usd,
    tokens: u64,
    requests: u64,
    repeats: HashMap<u64, u64>,
    last_seen: Instant,
    outcome: Option<bool>,
}

/// What the run check found for a request that may proceed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunVerdict {
    /// A loop that the policy only flags: a description for the response header.
    pub loop_flag: Option<String>,
}

/// A run's totals when its outcome is reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// Tenant of the run's first request.
    pub tenant: String,
    /// What the agent reported.
    pub resolved: bool,
    /// Requests in the run.
    pub requests: u64,
    /// Paid upstream.
    pub actual: Usd,
    /// Baseline cost of the same requests.
    pub baseline: Usd,
}

/// State of every live run.
#[derive(Default)]
pub struct Runs {
    state: Mutex<HashMap<String, RunState>>,
}

impl Runs {
    /// Checks a request against its run's caps and loop detector, counting it as seen.
    pub fn check(
        &self,
        policy: &RunPolicy,
        tenant: &str,
        run_id: &str,
        body: &Map<String, Value>,
        estimate: Usd,
        estimated_tokens: u64,
    ) -> Result<RunVerdict, ApiError> {
        let Ok(mut runs) = self.state.lock() else {
            return Ok(RunVerdict::default());
        };
        if runs.len() > SWEEP_ABOVE {
            runs.retain(|_, run| run.last_seen.elapsed() < policy.idle_ttl);
        }
        let run = runs.entry(run_id.to_string()).or_insert_with(|| RunState {
            tenant: tenant.to_string(),
            actual: Usd::ZERO,
            baseline: Usd::ZERO,
            tokens: 0,
            requests: 0,
            repeats: HashMap::new(),
            last_seen: Instant::now(),
            outcome: None,
        });
        if run.last_seen.elapsed() >= policy.idle_ttl {
            // The id was reused after the run was over: start it afresh.
            run.tenant = tenant.to_string();
            run.actual = Usd::ZERO;
            run.baseline = Usd::ZERO;
            run.tokens = 0;
            run.requests = 0;
            run.repeats.clear();
            run.outcome = None;
        }
        run.last_seen = Instant::now();

        if let Some(cap) = policy.max_cost.filter(|cap| run.actual + estimate > *cap) {
            metrics::record_run_cap_exceeded(tenant, "cost");
            let message = format!(
                "Run `{run_id}` has spent ${} of its ${cap} cap, and this request may cost up to ${estimate}.",
                run.actual
            );
            return Err(ApiError::RunLimit {
                message,
                code: "run_budget_exceeded",
            });
        }
        if let Some(cap) = policy
            .max_tokens
            .filter(|cap| run.tokens + estimated_tokens > *cap)
        {
            metrics::record_run_cap_exceeded(tenant, "tokens");
            let message = format!(
                "Run `{run_id}` has used {} of its {cap} tokens, and this request may use up to {estimated_tokens}.",
                run.tokens
            );
            return Err(ApiError::RunLimit {
                message,
                code: "run_budget_exceeded",
            });
        }
        let Some(max_repeats) = policy.loop_max_repeats else {
            return Ok(RunVerdict::default());
        };
        let seen = run.repeats.entry(fingerprint(body)).or_insert(0);
        *seen += 1;
        let repeated = *seen;
        let finding = if repeated > max_repeats {
            Some(format!(
                "the same request {repeated} times in run `{run_id}`"
            ))
        } else {
            repeated_tool_call(body, max_repeats).map(|(name, count)| {
                format!(
                    "tool call `{name}` with the same arguments {count} times in run `{run_id}`"
                )
            })
        };
        let Some(finding) = finding else {
            return Ok(RunVerdict::default());
        };
        metrics::record_loop(tenant, policy.loop_action.as_str());
        tracing::warn!(%tenant, run = %run_id, "loop detected: {finding}");
        match policy.loop_action {
            LoopAction::Block => Err(ApiError::RunLimit {
                message: format!("Loop detected: {finding}."),
                code: "loop_detected",
            }),
            LoopAction::Flag => Ok(RunVerdict {
                loop_flag: Some(finding),
            }),
        }
    }

    /// Adds a settled request to its run.
    pub fn settle(&self, run_id: &str, account: &Account) {
        let Ok(mut runs) = self.state.lock() else {
            return;
        };
        if let Some(run) = runs.get_mut(run_id) {
            run.actual = run.actual + account.actual;
            run.baseline = run.baseline + account.baseline;
            run.tokens += account
                .attempts
                .iter()
                .map(|a| a.tokens.input + a.tokens.output)
                .sum::<u64>();
            run.requests += 1;
        }
    }

    /// Records the agent's verdict on a run; `Err` names why it cannot be recorded.
    pub fn report_outcome(&self, run_id: &str, resolved: bool) -> Result<RunSummary, OutcomeError> {
        let mut runs = self.state.lock().map_err(|_| OutcomeError::Unknown)?;
        let run = runs.get_mut(run_id).ok_or(OutcomeError::Unknown)?;
        if run.outcome.is_some() {
            return Err(OutcomeError::AlreadyReported);
        }
        run.outcome = Some(resolved);
        Ok(RunSummary {
            run_id: run_id.to_string(),
            tenant: run.tenant.clone(),
            resolved,
            requests: run.requests,
            actual: run.actual,
            baseline: run.baseline,
        })
    }
}

/// Why an outcome report was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeError {
    /// No request of this run has been seen (or it was forgotten after `idle_ttl`).
    Unknown,
    /// The run's outcome was already reported.
    AlreadyReported,
}

/// A hash of the whole request, ignoring nothing: an agent re-sending exactly the same call.
fn fingerprint(body: &Map<String, Value>) -> u64 {
    let mut hasher = DefaultHasher::new();
    Value::Object(body.clone()).to_string().hash(&mut hasher);
    hasher.finish()
}

/// The tool call (name and exact arguments) the conversation repeats most, if it repeats more
/// than `max_repeats` times.
fn repeated_tool_call(body: &Map<String, Value>, max_repeats: u64) -> Option<(String, u64)> {
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    let messages = body.get("messages").and_then(Value::as_array)?;
    let calls = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .filter_map(|m| m.get("tool_calls").and_then(Value::as_array))
        .flatten()
        .filter_map(|call| call.get("function"));
    for function in calls {
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let arguments = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        *counts.entry((name, arguments)).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > max_repeats)
        .max_by_key(|(_, n)| *n)
        .map(|((name, _), n)| (name, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_id_comes_from_the_header_or_the_trace() {
        assert_eq!(run_id(Some("job-7"), None).as_deref(), Some("job-7"));
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            run_id(None, Some(tp)).as_deref(),
            Some("trace-4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            run_id(
                None,
                Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
            ),
            None
        );
        assert_eq!(run_id(None, Some("garbage")), None);
    }

    #[test]
    fn repeated_tool_calls_are_counted_by_name_and_arguments() {
        let call = |args: &str| json!({ "role": "assistant", "tool_calls": [{ "id": "x", "type": "function", "function": { "name": "search", "arguments": args } }] });
        let body = json!({ "messages": [call("{\"q\":\"a\"}"), call("{\"q\":\"a\"}"), call("{\"q\":\"b\"}"), call("{\"q\":\"a\"}")] });
        let body = body.as_object().unwrap();
        assert_eq!(repeated_tool_call(body, 2), Some(("search".to_string(), 3)));
        assert_eq!(repeated_tool_call(body, 3), None);
    }
}
