//! Agent runs: requests sharing a run id (`x-frugal-run-id`, or the trace id of a W3C
//! `traceparent`) are accounted together, so one runaway loop is stopped by the run's own caps
//! before it eats a tenant's whole budget, and repeated identical requests or tool calls are
//! caught as loops. The agent can report whether a run succeeded, which turns spend into cost
//! per resolved run.
//!
//! Two steps, like tenant budgets: [`Runs::observe`] counts the request and looks for loops
//! before the cache (a loop is a loop whether or not the cache can answer it), and
//! [`Runs::reserve`] holds the request's worst-case cost and tokens against the run's caps after
//! a cache miss (a hit costs nothing and is served even when the run's caps are spent). A
//! [`RunReservation`] is settled to what the request actually used, or released if dropped, so
//! concurrent requests of one run cannot all pass the caps and overspend together.
//!
//! The state is plain counters behind one mutex: a panic while it is held leaves numbers that
//! are still meaningful, so a poisoned lock is recovered and the caps keep holding.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::metrics;
use crate::money::Usd;
use crate::policy::{LoopAction, RunPolicy};
use crate::stage::account::Account;

/// Above this many tracked runs, idle ones are swept on the next request.
const SWEEP_ABOVE: usize = 10_000;
/// The most runs tracked at once; beyond it the runs seen least recently (and holding no
/// reservation) are forgotten, so a client inventing run ids cannot grow memory without bound.
const MAX_RUNS: usize = 100_000;

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
    /// Worst-case cost held by requests in flight.
    reserved_cost: Usd,
    /// Worst-case tokens held by requests in flight.
    reserved_tokens: u64,
    repeats: HashMap<u64, u64>,
    last_seen: Instant,
    outcome: Option<bool>,
}

impl RunState {
    fn new(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_string(),
            actual: Usd::ZERO,
            baseline: Usd::ZERO,
            tokens: 0,
            requests: 0,
            reserved_cost: Usd::ZERO,
            reserved_tokens: 0,
            repeats: HashMap::new(),
            last_seen: Instant::now(),
            outcome: None,
        }
    }

    fn holds_reservations(&self) -> bool {
        self.reserved_tokens > 0 || self.reserved_cost > Usd::ZERO
    }

    /// Adds a settled request's spend and tokens.
    fn add(&mut self, account: &Account) {
        self.actual = self.actual + account.actual;
        self.baseline = self.baseline + account.baseline;
        self.tokens += account
            .attempts
            .iter()
            .map(|a| a.tokens.input + a.tokens.output)
            .sum::<u64>();
        self.requests += 1;
    }
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
    state: Mutex<RunTable>,
}

/// The live runs, and the size at which idle ones are next swept (doubling after each sweep,
/// so a sweep's cost is spread over the runs added since the last one).
#[derive(Default)]
struct RunTable {
    runs: HashMap<String, RunState>,
    sweep_above: usize,
}

/// A run's worst-case cost and tokens held for one in-flight request; released if dropped
/// unsettled (a failed or abandoned request).
pub struct RunReservation {
    runs: Arc<Runs>,
    run_id: String,
    cost: Usd,
    tokens: u64,
    settled: bool,
}

impl Runs {
    /// The run table, recovered if a panic poisoned its lock: counters stay meaningful, and
    /// refusing to look would switch the caps off.
    fn lock(&self) -> MutexGuard<'_, RunTable> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request in its run and checks it against the loop detector. Before the cache:
    /// a repeated call is a loop whoever answers it.
    pub fn observe(
        &self,
        policy: &RunPolicy,
        tenant: &str,
        run_id: &str,
        body: &Map<String, Value>,
    ) -> Result<RunVerdict, ApiError> {
        let mut table = self.lock();
        let run = table.live_run(policy, tenant, run_id);
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

    /// Holds a request's worst-case cost and tokens against its run's caps; a 429
    /// `run_budget_exceeded` if what the run has spent plus what its requests in flight hold
    /// plus this request could pass a cap. `None` when the policy sets no run cap.
    pub fn reserve(
        self: &Arc<Self>,
        policy: &RunPolicy,
        tenant: &str,
        run_id: &str,
        estimate: Usd,
        estimated_tokens: u64,
    ) -> Result<Option<RunReservation>, ApiError> {
        if policy.max_cost.is_none() && policy.max_tokens.is_none() {
            return Ok(None);
        }
        let mut table = self.lock();
        let run = table.live_run(policy, tenant, run_id);
        let committed = run.actual + run.reserved_cost;
        if let Some(cap) = policy.max_cost.filter(|cap| committed + estimate > *cap) {
            metrics::record_run_cap_exceeded(tenant, "cost");
            let held = if run.reserved_cost > Usd::ZERO {
                format!(
                    " (and ${} is held by its requests in flight)",
                    run.reserved_cost
                )
            } else {
                String::new()
            };
            let message = format!(
                "Run `{run_id}` has spent ${} of its ${cap} cap{held}, and this request may cost up to ${estimate}.",
                run.actual
            );
            return Err(ApiError::RunLimit {
                message,
                code: "run_budget_exceeded",
            });
        }
        let used = run.tokens + run.reserved_tokens;
        if let Some(cap) = policy
            .max_tokens
            .filter(|cap| used + estimated_tokens > *cap)
        {
            metrics::record_run_cap_exceeded(tenant, "tokens");
            let held = if run.reserved_tokens > 0 {
                format!(
                    " (and {} are held by its requests in flight)",
                    run.reserved_tokens
                )
            } else {
                String::new()
            };
            let message = format!(
                "Run `{run_id}` has used {} of its {cap} tokens{held}, and this request may use up to {estimated_tokens}.",
                run.tokens
            );
            return Err(ApiError::RunLimit {
                message,
                code: "run_budget_exceeded",
            });
        }
        run.reserved_cost = run.reserved_cost + estimate;
        run.reserved_tokens += estimated_tokens;
        Ok(Some(RunReservation {
            runs: self.clone(),
            run_id: run_id.to_string(),
            cost: estimate,
            tokens: estimated_tokens,
            settled: false,
        }))
    }

    /// Adds a settled request that held no reservation (a cache hit, or a run without caps).
    pub fn settle(&self, run_id: &str, account: &Account) {
        if let Some(run) = self.lock().runs.get_mut(run_id) {
            run.add(account);
        }
    }

    /// Records the agent's verdict on a run; `Err` names why it cannot be recorded.
    pub fn report_outcome(&self, run_id: &str, resolved: bool) -> Result<RunSummary, OutcomeError> {
        let mut table = self.lock();
        let run = table.runs.get_mut(run_id).ok_or(OutcomeError::Unknown)?;
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

    /// Runs tracked now.
    pub fn len(&self) -> usize {
        self.lock().runs.len()
    }

    /// Whether no run is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RunReservation {
    /// Replaces the held worst case by what the request actually used, in one step.
    pub fn settle(mut self, account: &Account) {
        self.settled = true;
        let mut table = self.runs.lock();
        if let Some(run) = table.runs.get_mut(&self.run_id) {
            release(run, self.cost, self.tokens);
            run.add(account);
        }
    }
}

impl Drop for RunReservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(run) = self.runs.lock().runs.get_mut(&self.run_id) {
            release(run, self.cost, self.tokens);
        }
    }
}

fn release(run: &mut RunState, cost: Usd, tokens: u64) {
    run.reserved_cost = (run.reserved_cost - cost).max(Usd::ZERO);
    run.reserved_tokens = run.reserved_tokens.saturating_sub(tokens);
}

impl RunTable {
    /// The run's state, created on its first request and started afresh when its id is reused
    /// after `idle_ttl`; sweeps idle runs now and then and bounds how many are tracked.
    fn live_run(&mut self, policy: &RunPolicy, tenant: &str, run_id: &str) -> &mut RunState {
        let sweep_above = self.sweep_above.clamp(SWEEP_ABOVE, MAX_RUNS);
        if self.runs.len() >= sweep_above && !self.runs.contains_key(run_id) {
            self.runs.retain(|_, run| {
                run.last_seen.elapsed() < policy.idle_ttl || run.holds_reservations()
            });
            if self.runs.len() >= MAX_RUNS {
                let excess = self.runs.len() - MAX_RUNS * 9 / 10;
                forget_least_recent(&mut self.runs, excess);
            }
            self.sweep_above = self.runs.len() * 2;
        }
        let run = self
            .runs
            .entry(run_id.to_string())
            .or_insert_with(|| RunState::new(tenant));
        if run.last_seen.elapsed() >= policy.idle_ttl {
            // The id was reused after the run was over: start it afresh (requests still in
            // flight keep what they hold).
            *run = RunState {
                reserved_cost: run.reserved_cost,
                reserved_tokens: run.reserved_tokens,
                ..RunState::new(tenant)
            };
        }
        run.last_seen = Instant::now();
        run
    }
}

/// Forgets the `count` runs seen least recently that hold no reservation.
fn forget_least_recent(runs: &mut HashMap<String, RunState>, count: usize) {
    let mut idle: Vec<(Instant, String)> = runs
        .iter()
        .filter(|(_, run)| !run.holds_reservations())
        .map(|(id, run)| (run.last_seen, id.clone()))
        .collect();
    let count = count.min(idle.len());
    if count == 0 {
        return;
    }
    idle.select_nth_unstable(count - 1);
    for (_, id) in idle.into_iter().take(count) {
        runs.remove(&id);
    }
    tracing::warn!(
        forgotten = count,
        "more than {MAX_RUNS} agent runs tracked: forgot the least recently seen"
    );
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

    fn capped(max_cost: f64, max_tokens: u64) -> RunPolicy {
        RunPolicy {
            max_cost: Some(Usd::from_dollars(max_cost)),
            max_tokens: Some(max_tokens),
            ..RunPolicy::default()
        }
    }

    fn account(cost: f64, tokens: u64) -> Account {
        use crate::stage::account::{Attempt, Savings, TokenSource, Tokens};
        let tokens = Tokens::new(tokens, 0, TokenSource::Usage);
        Account {
            baseline: Usd::from_dollars(cost),
            actual: Usd::from_dollars(cost),
            savings: Savings::default(),
            attempts: vec![Attempt {
                model: "m".into(),
                tokens,
                cost: Usd::from_dollars(cost),
                list_cost: Usd::from_dollars(cost),
            }],
        }
    }

    fn reserve(runs: &Arc<Runs>, policy: &RunPolicy, cost: f64) -> Option<RunReservation> {
        runs.reserve(policy, "t", "r", Usd::from_dollars(cost), 10)
            .ok()
            .flatten()
    }

    #[test]
    fn requests_in_flight_hold_the_run_cap() {
        let runs = Arc::new(Runs::default());
        let policy = capped(1.0, 1_000_000);
        let held: Vec<_> = (0..4).map(|_| reserve(&runs, &policy, 0.25)).collect();
        assert!(held.iter().all(Option::is_some), "four fit under $1");
        assert!(
            reserve(&runs, &policy, 0.25).is_none(),
            "a fifth would pass the cap"
        );
        // Settled below the estimate: the difference is free again.
        let mut held = held.into_iter().flatten();
        held.next().unwrap().settle(&account(0.05, 10));
        assert!(reserve(&runs, &policy, 0.2).is_some());
        // A dropped (failed) request releases what it held.
        drop(held.next());
        let again = reserve(&runs, &policy, 0.25);
        assert!(again.is_some());
        let table = runs.lock();
        let run = &table.runs["r"];
        assert_eq!(run.actual, Usd::from_dollars(0.05));
        assert_eq!(run.requests, 1);
    }

    #[test]
    fn token_caps_count_tokens_in_flight() {
        let runs = Arc::new(Runs::default());
        let policy = capped(100.0, 25);
        let first = reserve(&runs, &policy, 0.01);
        let second = reserve(&runs, &policy, 0.01);
        assert!(first.is_some() && second.is_some());
        let refused = runs.reserve(&policy, "t", "r", Usd::from_dollars(0.01), 10);
        assert!(matches!(
            refused,
            Err(ApiError::RunLimit {
                code: "run_budget_exceeded",
                ..
            })
        ));
    }

    #[test]
    fn a_run_without_caps_reserves_nothing() {
        let runs = Arc::new(Runs::default());
        let held = runs.reserve(&RunPolicy::default(), "t", "r", Usd::from_dollars(9.0), 9);
        assert!(matches!(held, Ok(None)));
    }

    #[test]
    fn a_poisoned_lock_keeps_the_caps_on() {
        let runs = Arc::new(Runs::default());
        let policy = capped(1.0, 1_000_000);
        let spent = reserve(&runs, &policy, 0.9).unwrap();
        spent.settle(&account(0.9, 10));
        let poisoner = runs.clone();
        let panicked = std::thread::spawn(move || {
            let _table = poisoner.state.lock().unwrap();
            panic!("poison the run table");
        })
        .join();
        assert!(panicked.is_err() && runs.state.is_poisoned());
        assert!(
            reserve(&runs, &policy, 0.2).is_none(),
            "the cap still refuses after a panic"
        );
        assert!(reserve(&runs, &policy, 0.05).is_some());
        assert_eq!(runs.report_outcome("r", true).unwrap().requests, 1);
    }

    #[test]
    fn run_ids_beyond_the_bound_forget_the_least_recent() {
        let runs = Arc::new(Runs::default());
        let policy = RunPolicy::default();
        let body = Map::new();
        let holding = capped(1.0, 1_000_000);
        let kept = runs
            .reserve(&holding, "t", "holds", Usd::from_dollars(0.5), 1)
            .unwrap();
        for i in 0..MAX_RUNS + 10 {
            runs.observe(&policy, "t", &format!("run-{i}"), &body)
                .unwrap();
        }
        assert!(runs.len() <= MAX_RUNS, "{} runs tracked", runs.len());
        assert!(
            runs.lock().runs.contains_key("holds"),
            "a run holding a reservation is never forgotten"
        );
        drop(kept);
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
