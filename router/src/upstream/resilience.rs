//! State that keeps failing upstreams from costing more than they must: a retry budget shared
//! by all requests (retries may add only a policy share of calls, so an outage does not
//! multiply the bill) and a circuit breaker per provider (after consecutive failures, calls fail
//! fast or go to a fallback until a probe succeeds). It outlives policy reloads.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics;
use crate::policy::{BreakerPolicy, RetryPolicy};

/// Retry budget and circuit breakers, shared by every request.
#[derive(Debug, Default)]
pub struct Resilience {
    budget: Mutex<Option<f64>>,
    breakers: Mutex<HashMap<String, Breaker>>,
}

/// Whether a provider may be called now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The circuit is closed: call.
    Call,
    /// The circuit was open long enough: this call is the probe that decides.
    Probe,
    /// The circuit is open (or a probe is in flight): do not call.
    Refused,
}

/// The state of one provider's circuit, as exported in `frugal_circuit_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// One probe call is allowed.
    HalfOpen,
    /// Calls are refused.
    Open,
}

impl CircuitState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub const fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

impl Resilience {
    /// Empty state: every circuit closed, the budget at its reserve.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a first call: it earns the budget `budget_ratio` of a retry.
    pub fn on_first_call(&self, policy: &RetryPolicy) {
        let mut balance = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        let cap = f64::from(policy.budget_reserve.max(1));
        let now = balance.unwrap_or(f64::from(policy.budget_reserve));
        *balance = Some((now + policy.budget_ratio).min(cap));
    }

    /// Takes one retry from the budget, if there is one.
    pub fn try_retry(&self, policy: &RetryPolicy) -> bool {
        let mut balance = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        let now = balance.unwrap_or(f64::from(policy.budget_reserve));
        if now >= 1.0 {
            *balance = Some(now - 1.0);
            true
        } else {
            *balance = Some(now);
            false
        }
    }

    /// Whether `provider` may be called now; a `Probe` must be followed by [`Self::record`].
    pub fn permit(&self, provider: &str) -> Permit {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        let breaker = breakers
            .entry(provider.to_string())
            .or_insert(Breaker::Closed { failures: 0 });
        match *breaker {
            Breaker::Closed { .. } => Permit::Call,
            Breaker::Open { until } if Instant::now() >= until => {
                *breaker = Breaker::HalfOpen;
                metrics::record_circuit_state(provider, CircuitState::HalfOpen);
                Permit::Probe
            }
            Breaker::Open { .. } | Breaker::HalfOpen => Permit::Refused,
        }
    }

    /// Records how a call to `provider` went: a failure means the provider is unhealthy (it
    /// could not be reached, timed out or failed with 5xx), not that the request was bad.
    pub fn record(&self, provider: &str, healthy: bool, policy: &BreakerPolicy) {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        let breaker = breakers
            .entry(provider.to_string())
            .or_insert(Breaker::Closed { failures: 0 });
        let before = state_of(*breaker);
        *breaker = match (*breaker, healthy) {
            (_, true) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, false) if failures + 1 < policy.failure_threshold => {
                Breaker::Closed {
                    failures: failures + 1,
                }
            }
            (Breaker::Open { until }, false) => Breaker::Open { until },
            (_, false) => Breaker::Open {
                until: Instant::now() + policy.open_for,
            },
        };
        let after = state_of(*breaker);
        if before != after {
            tracing::warn!(
                provider,
                from = ?before,
                to = ?after,
                "circuit breaker changed state"
            );
        }
        metrics::record_circuit_state(provider, after);
    }

    /// The circuit state of a provider (closed if it was never called).
    pub fn state(&self, provider: &str) -> CircuitState {
        let breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        breakers
            .get(provider)
            .map_or(CircuitState::Closed, |b| state_of(*b))
    }
}

fn state_of(breaker: Breaker) -> CircuitState {
    match breaker {
        Breaker::Closed { .. } => CircuitState::Closed,
        Breaker::Open { .. } => CircuitState::Open,
        Breaker::HalfOpen => CircuitState::HalfOpen,
    }
}

/// The wait before retry number `retry` (1-based): exponential from `backoff` with full jitter,
/// at most `max_backoff`; a provider's `Retry-After` wins when it is longer. `None` when the
/// provider asks for more than `max_backoff` (retrying sooner would only be refused again).
pub fn backoff(
    policy: &RetryPolicy,
    retry: u32,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    if let Some(asked) = retry_after {
        if asked > policy.max_backoff {
            return None;
        }
    }
    let exponent = retry.saturating_sub(1).min(16);
    let ceiling = policy
        .backoff
        .saturating_mul(1 << exponent)
        .min(policy.max_backoff);
    let jitter = RandomState::new().hash_one(retry) as f64 / u64::MAX as f64;
    let jittered = ceiling.mul_f64(jitter);
    Some(retry_after.map_or(jittered, |asked| asked.max(jittered)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker_policy() -> BreakerPolicy {
        BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn circuit_opens_after_consecutive_failures_and_recovers_after_a_probe() {
        let r = Resilience::new();
        let p = breaker_policy();
        for _ in 0..2 {
            assert_eq!(r.permit("a"), Permit::Call);
            r.record("a", false, &p);
        }
        assert_eq!(
            r.state("a"),
            CircuitState::Closed,
            "two failures are not three"
        );
        r.record("a", false, &p);
        assert_eq!(r.state("a"), CircuitState::Open);
        assert_eq!(r.permit("a"), Permit::Refused);
        assert_eq!(
            r.permit("b"),
            Permit::Call,
            "other providers are unaffected"
        );

        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(r.permit("a"), Permit::Probe);
        assert_eq!(r.permit("a"), Permit::Refused, "one probe at a time");
        r.record("a", false, &p);
        assert_eq!(r.state("a"), CircuitState::Open, "a failed probe reopens");

        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(r.permit("a"), Permit::Probe);
        r.record("a", true, &p);
        assert_eq!(r.state("a"), CircuitState::Closed);
        assert_eq!(r.permit("a"), Permit::Call);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_failure_count() {
        let r = Resilience::new();
        let p = breaker_policy();
        for healthy in [false, false, true, false, false] {
            r.record("a", healthy, &p);
        }
        assert_eq!(r.state("a"), CircuitState::Closed);
    }

    #[test]
    fn retries_are_bounded_by_the_budget() {
        let r = Resilience::new();
        let p = RetryPolicy {
            budget_ratio: 0.1,
            budget_reserve: 2,
            ..RetryPolicy::default()
        };
        let mut retries = 0;
        for _ in 0..100 {
            r.on_first_call(&p);
            while r.try_retry(&p) {
                retries += 1;
            }
        }
        // The reserve plus a tenth of 100 first calls.
        assert!((10..=12).contains(&retries), "{retries} retries");
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for retry in 1..10 {
            let wait = backoff(&p, retry, None).unwrap_or(Duration::MAX);
            let ceiling = Duration::from_millis(100 << (retry - 1)).min(p.max_backoff);
            assert!(wait <= ceiling, "retry {retry}: {wait:?} > {ceiling:?}");
        }
        let asked = Duration::from_millis(700);
        assert!(backoff(&p, 1, Some(asked)).is_some_and(|w| w >= asked));
        assert_eq!(backoff(&p, 1, Some(Duration::from_secs(5))), None);
    }
}
