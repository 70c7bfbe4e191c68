//! The savings ledger: settled accounts summed per tenant, since start and over recent windows
//! (per-minute buckets kept for a day), behind `GET /v1/frugal/savings`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::money::Usd;
use crate::stage::account::Account;
use crate::stage::run::RunSummary;

/// How long per-minute buckets are kept (the longest window that can be asked for).
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Sums over a set of requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests answered (from upstream or cache).
    pub requests: u64,
    /// Counterfactual cost without the sidecar.
    pub baseline_usd: f64,
    /// What was paid upstream.
    pub actual_usd: f64,
    /// baseline − actual.
    pub saved_usd: f64,
    /// `saved_usd` split by lever.
    pub by_lever: ByLever,
    /// Answers served from the cache.
    pub cache_hits: u64,
    /// Escalations to a stronger model.
    pub escalations: u64,
    /// Input tokens removed by trimming.
    pub trimmed_tokens: u64,
    /// Upstream calls made (retries and escalations included).
    pub upstream_attempts: u64,
    /// Input tokens of those calls.
    #[serde(default)]
    pub upstream_input_tokens: u64,
    /// Of those, the tokens the provider read from its prompt cache.
    #[serde(default)]
    pub prompt_cached_tokens: u64,
    /// Of those, the tokens the provider wrote to its prompt cache.
    #[serde(default)]
    pub prompt_cache_write_tokens: u64,
    /// Agent runs whose outcome was reported (`POST /v1/frugal/outcome`).
    #[serde(default)]
    pub runs: RunTotals,
    #[serde(skip)]
    exact: ExactTotals,
}

/// Cost per resolved interaction: what finance cares about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTotals {
    /// Runs reported resolved.
    pub resolved: u64,
    /// Runs reported unresolved.
    pub unresolved: u64,
    /// Spend of all reported runs divided by the resolved ones: what one success really costs.
    pub cost_per_resolved_run_usd: f64,
    /// The same at baseline prices.
    pub baseline_per_resolved_run_usd: f64,
    /// Share of reported runs' spend that went to unresolved runs.
    pub unresolved_spend_share: f64,
    #[serde(skip)]
    exact: ExactRuns,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ExactRuns {
    resolved_actual: Usd,
    unresolved_actual: Usd,
    resolved_baseline: Usd,
    unresolved_baseline: Usd,
}

impl RunTotals {
    fn add(&mut self, other: &ExactRuns, resolved: u64, unresolved: u64) {
        let e = &mut self.exact;
        e.resolved_actual = e.resolved_actual + other.resolved_actual;
        e.unresolved_actual = e.unresolved_actual + other.unresolved_actual;
        e.resolved_baseline = e.resolved_baseline + other.resolved_baseline;
        e.unresolved_baseline = e.unresolved_baseline + other.unresolved_baseline;
        self.resolved += resolved;
        self.unresolved += unresolved;
        let all_actual = (e.resolved_actual + e.unresolved_actual).dollars();
        let all_baseline = (e.resolved_baseline + e.unresolved_baseline).dollars();
        let per = |usd: f64| {
            if self.resolved == 0 {
                0.0
            } else {
                usd / self.resolved as f64
            }
        };
        self.cost_per_resolved_run_usd = per(all_actual);
        self.baseline_per_resolved_run_usd = per(all_baseline);
        self.unresolved_spend_share = if all_actual == 0.0 {
            0.0
        } else {
            e.unresolved_actual.dollars() / all_actual
        };
    }

    fn merge(&mut self, other: &RunTotals) {
        self.add(&other.exact, other.resolved, other.unresolved);
    }
}

/// Dollars saved per lever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ByLever {
    /// Context trimming.
    pub trim: f64,
    /// Response cache.
    pub cache: f64,
    /// Cheap-first routing (negative when escalations wasted more than routing saved).
    pub route: f64,
    /// The provider's prompt-cache discount (negative when cache writes cost more than reads
    /// saved).
    #[serde(default)]
    pub prompt_cache: f64,
}

/// The same sums in exact money, so the dollars shown are rounded once, not per request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ExactTotals {
    baseline: Usd,
    actual: Usd,
    trim: Usd,
    cache: Usd,
    route: Usd,
    prompt_cache: Usd,
}

/// What else a request did, besides its account.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts {
    /// Served from the cache.
    pub cache_hit: bool,
    /// Number of escalations.
    pub escalations: u64,
    /// Input tokens removed by trimming.
    pub trimmed_tokens: u64,
}

impl Totals {
    fn add(&mut self, account: &Account, facts: RequestFacts) {
        let e = &mut self.exact;
        e.baseline = e.baseline + account.baseline;
        e.actual = e.actual + account.actual;
        e.trim = e.trim + account.savings.trim;
        e.cache = e.cache + account.savings.cache;
        e.route = e.route + account.savings.route;
        e.prompt_cache = e.prompt_cache + account.savings.prompt_cache;
        self.requests += 1;
        self.cache_hits += u64::from(facts.cache_hit);
        self.escalations += facts.escalations;
        self.trimmed_tokens += facts.trimmed_tokens;
        self.upstream_attempts += account.attempts.len() as u64;
        for attempt in &account.attempts {
            self.upstream_input_tokens += attempt.tokens.input;
            self.prompt_cached_tokens += attempt.tokens.cached_input;
            self.prompt_cache_write_tokens += attempt.tokens.cache_write;
        }
        self.refresh_dollars();
    }

    fn merge(&mut self, other: &Totals) {
        let (e, o) = (&mut self.exact, other.exact);
        e.baseline = e.baseline + o.baseline;
        e.actual = e.actual + o.actual;
        e.trim = e.trim + o.trim;
        e.cache = e.cache + o.cache;
        e.route = e.route + o.route;
        e.prompt_cache = e.prompt_cache + o.prompt_cache;
        self.requests += other.requests;
        self.cache_hits += other.cache_hits;
        self.escalations += other.escalations;
        self.trimmed_tokens += other.trimmed_tokens;
        self.upstream_attempts += other.upstream_attempts;
        self.upstream_input_tokens += other.upstream_input_tokens;
        self.prompt_cached_tokens += other.prompt_cached_tokens;
        self.prompt_cache_write_tokens += other.prompt_cache_write_tokens;
        self.runs.merge(&other.runs);
        self.refresh_dollars();
    }

    fn refresh_dollars(&mut self) {
        let e = self.exact;
        self.baseline_usd = e.baseline.dollars();
        self.actual_usd = e.actual.dollars();
        self.saved_usd = (e.baseline - e.actual).dollars();
        self.by_lever = ByLever {
            trim: e.trim.dollars(),
            cache: e.cache.dollars(),
            route: e.route.dollars(),
            prompt_cache: e.prompt_cache.dollars(),
        };
    }

    /// Exact baseline − actual and the exact sum of the levers (equal by construction).
    pub fn exact_saved(&self) -> (Usd, Usd) {
        let e = self.exact;
        (
            e.baseline - e.actual,
            e.trim + e.cache + e.route + e.prompt_cache,
        )
    }
}

/// The savings report served at `/v1/frugal/savings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavingsReport {
    /// Seconds covered: since start, or the window asked for.
    pub window_seconds: u64,
    /// All tenants together.
    pub total: Totals,
    /// Per tenant.
    pub tenants: BTreeMap<String, Totals>,
}

#[derive(Default)]
struct State {
    since_start: BTreeMap<String, Totals>,
    /// (unix minute, per-tenant totals of that minute), oldest first.
    minutes: VecDeque<(u64, BTreeMap<String, Totals>)>,
}

/// Thread-safe ledger of settled requests.
pub struct Ledger {
    started: SystemTime,
    state: Mutex<State>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_minute(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or(0)
}

impl Ledger {
    /// An empty ledger starting now.
    pub fn new() -> Self {
        Self {
            started: SystemTime::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// Adds one settled request.
    pub fn record(&self, tenant: &str, account: &Account, facts: RequestFacts) {
        self.record_at(SystemTime::now(), tenant, account, facts);
    }

    fn record_at(&self, at: SystemTime, tenant: &str, account: &Account, facts: RequestFacts) {
        // Sums only: still right after a panic elsewhere, so recover rather than drop spend.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .since_start
            .entry(tenant.to_string())
            .or_default()
            .add(account, facts);
        let minute = unix_minute(at);
        if state.minutes.back().map(|(m, _)| *m) != Some(minute) {
            state.minutes.push_back((minute, BTreeMap::new()));
        }
        let oldest_kept = minute.saturating_sub(MAX_WINDOW.as_secs() / 60);
        while state.minutes.front().is_some_and(|(m, _)| *m < oldest_kept) {
            state.minutes.pop_front();
        }
        if let Some((_, bucket)) = state.minutes.back_mut() {
            bucket
                .entry(tenant.to_string())
                .or_default()
                .add(account, facts);
        }
    }

    /// Adds a run whose outcome the agent reported.
    pub fn record_outcome(&self, run: &RunSummary) {
        // Sums only: still right after a panic elsewhere, so recover rather than drop spend.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let exact = if run.resolved {
            ExactRuns {
                resolved_actual: run.actual,
                resolved_baseline: run.baseline,
                ..Default::default()
            }
        } else {
            ExactRuns {
                unresolved_actual: run.actual,
                unresolved_baseline: run.baseline,
                ..Default::default()
            }
        };
        let (resolved, unresolved) = if run.resolved { (1, 0) } else { (0, 1) };
        state
            .since_start
            .entry(run.tenant.clone())
            .or_default()
            .runs
            .add(&exact, resolved, unresolved);
        let minute = unix_minute(SystemTime::now());
        if state.minutes.back().map(|(m, _)| *m) != Some(minute) {
            state.minutes.push_back((minute, BTreeMap::new()));
        }
        if let Some((_, bucket)) = state.minutes.back_mut() {
            bucket
                .entry(run.tenant.clone())
                .or_default()
                .runs
                .add(&exact, resolved, unresolved);
        }
    }

    /// The report since start (`window: None`) or over the last `window` (minute resolution).
    pub fn report(&self, window: Option<Duration>) -> SavingsReport {
        let now = SystemTime::now();
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (window_seconds, tenants) = match window {
            None => {
                let elapsed = now.duration_since(self.started).unwrap_or_default();
                (elapsed.as_secs(), state.since_start.clone())
            }
            Some(window) => {
                let first = unix_minute(now)
                    .saturating_sub(window.as_secs().div_ceil(60).saturating_sub(1));
                let mut tenants: BTreeMap<String, Totals> = BTreeMap::new();
                for (_, bucket) in state.minutes.iter().filter(|(m, _)| *m >= first) {
                    for (tenant, totals) in bucket {
                        tenants.entry(tenant.clone()).or_default().merge(totals);
                    }
                }
                (window.as_secs(), tenants)
            }
        };
        let mut total = Totals::default();
        for totals in tenants.values() {
            total.merge(totals);
        }
        SavingsReport {
            window_seconds,
            total,
            tenants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::TokenPrice;
    use crate::stage::account::{settle, Attempt, Facts, TokenSource, Tokens};

    fn account(cache_hit: bool) -> Account {
        let price = TokenPrice::per_million(2.5, 10.0);
        let tokens = Tokens::new(1000, 100, TokenSource::Usage);
        settle(Facts {
            baseline_price: price,
            untrimmed_input: 1200,
            trimmed_input: 1000,
            output: 100,
            cache_hit,
            attempts: if cache_hit {
                vec![]
            } else {
                vec![Attempt::new(
                    "m",
                    tokens,
                    TokenPrice::per_million(0.15, 0.6),
                )]
            },
        })
    }

    #[test]
    fn totals_per_tenant_and_overall_keep_the_invariant() {
        let ledger = Ledger::new();
        ledger.record(
            "a",
            &account(false),
            RequestFacts {
                trimmed_tokens: 200,
                ..Default::default()
            },
        );
        ledger.record(
            "b",
            &account(true),
            RequestFacts {
                cache_hit: true,
                trimmed_tokens: 200,
                ..Default::default()
            },
        );
        let report = ledger.report(None);
        assert_eq!(report.total.requests, 2);
        assert_eq!(report.tenants["b"].cache_hits, 1);
        assert_eq!(report.total.trimmed_tokens, 400);
        let (saved, levers) = report.total.exact_saved();
        assert_eq!(saved, levers);
        assert!(
            (report.total.saved_usd
                - (report.total.by_lever.trim
                    + report.total.by_lever.cache
                    + report.total.by_lever.route
                    + report.total.by_lever.prompt_cache))
                .abs()
                < 1e-12
        );
    }

    #[test]
    fn windows_only_count_recent_minutes() {
        let ledger = Ledger::new();
        let long_ago = SystemTime::now() - Duration::from_secs(3 * 3600);
        ledger.record_at(long_ago, "a", &account(false), RequestFacts::default());
        ledger.record("a", &account(false), RequestFacts::default());
        assert_eq!(ledger.report(None).total.requests, 2);
        assert_eq!(
            ledger
                .report(Some(Duration::from_secs(3600)))
                .total
                .requests,
            1
        );
        assert_eq!(
            ledger
                .report(Some(Duration::from_secs(4 * 3600)))
                .total
                .requests,
            2
        );
    }
}
