//! Budget and run spend held across replicas. A request holds its worst case in Redis as well
//! as locally (the local hold keeps this replica's gauges, budget file and fallback right);
//! Redis refuses when the spend of every replica plus what they all hold would pass the cap.
//! When Redis fails the shared hold is skipped and the local one alone enforces the cap.
//!
//! Each hold has its own id and a lease (`shared.hold_lease`) that a task renews while the
//! request runs. A reserve that timed out is released by id at once, since Redis may still have
//! run it; and a hold whose replica died stops counting when its lease runs out.

use std::sync::Arc;
use std::time::Duration;

use frugal_shared::{Amounts, Cap, Caps, Counter, HoldKey, Lifetimes, Reserve};
use tokio::task::AbortHandle;

use super::{CapLever, SharedTier};
use crate::error::ApiError;
use crate::metrics;
use crate::money::Usd;
use crate::policy::{BudgetPolicy, RunPolicy};
use crate::stage::budget::{unix_now, window_end, window_start};

/// A hold in Redis; settled to what the request used, or released when dropped unsettled.
pub struct SharedHold {
    tier: Arc<SharedTier>,
    key: HoldKey,
    /// How long the counter lives past its last change.
    ttl: Duration,
    /// The task renewing the lease while the request runs.
    renewal: AbortHandle,
    /// For a budget: the thresholds to warn about once across replicas.
    warn: Option<WarnAt>,
    settled: bool,
}

/// A budget's soft thresholds, for the once-per-window warning.
struct WarnAt {
    tenant: String,
    window: &'static str,
    window_start: u64,
    cap_nano: i64,
    thresholds: Vec<f64>,
}

/// Nano-dollars of a cost, rounded up (a hold never holds less than the cost).
pub fn nano(usd: Usd) -> i64 {
    let pico = usd.pico().max(0);
    i64::try_from((pico + 999) / 1000).unwrap_or(i64::MAX)
}

/// Nano-dollars of a cap, rounded down (a cap never allows more than it says).
pub fn nano_cap(usd: Usd) -> i64 {
    let pico = usd.pico().max(0);
    i64::try_from(pico / 1000).unwrap_or(i64::MAX)
}

fn usd(nano: i64) -> Usd {
    Usd::from_pico(i128::from(nano) * 1000)
}

impl SharedTier {
    /// Whether budgets (`CapLever::Budgets`) or run caps (`CapLever::Runs`) are shared.
    pub fn shares(&self, lever: CapLever) -> bool {
        match lever {
            CapLever::Budgets => self.policy.budgets,
            CapLever::Runs => self.policy.runs,
        }
    }

    /// Holds `estimate` against the tenant's budget window across replicas: `Ok(None)` when
    /// Redis failed (the local hold alone enforces the cap), a 429 when the cap would pass.
    pub async fn hold_budget(
        self: &Arc<Self>,
        budget: &BudgetPolicy,
        tenant: &str,
        estimate: Usd,
    ) -> Result<Option<SharedHold>, ApiError> {
        let now = unix_now();
        let start = window_start(budget.window, now);
        let end = window_end(budget.window, start);
        let counter = self
            .client
            .budget_counter(tenant, budget.window.as_str(), start);
        let caps = Caps {
            cost_nano: Some(nano_cap(budget.hard_cap)),
            tokens: None,
        };
        let want = Amounts {
            cost_nano: nano(estimate),
            tokens: 0,
        };
        // The counter outlives its window by a day, for late settles.
        let ttl = Duration::from_secs(end.saturating_sub(now) + 86_400);
        let Some((key, reserve)) = self
            .reserve(CapLever::Budgets, &counter, caps, want, ttl)
            .await
        else {
            return Ok(None);
        };
        match reserve {
            Reserve::Held { .. } => Ok(Some(self.held(
                key,
                ttl,
                Some(WarnAt {
                    tenant: tenant.to_string(),
                    window: budget.window.as_str(),
                    window_start: start,
                    cap_nano: nano_cap(budget.hard_cap),
                    thresholds: budget.soft_thresholds.clone(),
                }),
            ))),
            Reserve::Refused { used, held, .. } => {
                metrics::record_budget_rejection(tenant);
                Err(ApiError::BudgetExceeded {
                    tenant: tenant.to_string(),
                    window: budget.window.as_str(),
                    cap: budget.hard_cap,
                    committed: usd(used.cost_nano + held.cost_nano),
                    estimate,
                    retry_after_secs: end.saturating_sub(now),
                })
            }
        }
    }

    /// Holds a request's worst-case cost and tokens against its run's caps across replicas:
    /// `Ok(None)` without run caps or when Redis failed, a 429 when a cap would pass.
    pub async fn hold_run(
        self: &Arc<Self>,
        policy: &RunPolicy,
        tenant: &str,
        run_id: &str,
        estimate: Usd,
        tokens: u64,
    ) -> Result<Option<SharedHold>, ApiError> {
        if policy.max_cost.is_none() && policy.max_tokens.is_none() {
            return Ok(None);
        }
        let counter = self.client.run_counter(tenant, run_id);
        let caps = Caps {
            cost_nano: policy.max_cost.map(nano_cap),
            tokens: policy
                .max_tokens
                .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        };
        let want = Amounts {
            cost_nano: nano(estimate),
            tokens: i64::try_from(tokens).unwrap_or(i64::MAX),
        };
        let ttl = policy.idle_ttl.max(Duration::from_secs(60));
        let Some((key, reserve)) = self
            .reserve(CapLever::Runs, &counter, caps, want, ttl)
            .await
        else {
            return Ok(None);
        };
        match reserve {
            Reserve::Held { .. } => Ok(Some(self.held(key, ttl, None))),
            Reserve::Refused { cap, used, held } => {
                let (kind, message) = match cap {
                    Cap::Cost => (
                        "cost",
                        format!(
                            "Run `{run_id}` has spent ${} of its ${} cap across replicas (and ${} is held by its requests in flight), and this request may cost up to ${estimate}.",
                            usd(used.cost_nano),
                            policy.max_cost.unwrap_or_default(),
                            usd(held.cost_nano),
                        ),
                    ),
                    Cap::Tokens => (
                        "tokens",
                        format!(
                            "Run `{run_id}` has used {} of its {} tokens across replicas (and {} are held by its requests in flight), and this request may use up to {tokens}.",
                            used.tokens,
                            policy.max_tokens.unwrap_or_default(),
                            held.tokens,
                        ),
                    ),
                };
                metrics::record_run_cap_exceeded(tenant, kind);
                Err(ApiError::RunLimit {
                    message,
                    code: "run_budget_exceeded",
                })
            }
        }
    }

    /// A hold Redis granted, to settle or release; its lease is renewed until then.
    fn held(self: &Arc<Self>, key: HoldKey, ttl: Duration, warn: Option<WarnAt>) -> SharedHold {
        let renewal = tokio::spawn(renew_until_aborted(
            self.clone(),
            key.clone(),
            self.policy.hold_lease,
        ))
        .abort_handle();
        SharedHold {
            tier: self.clone(),
            key,
            ttl,
            renewal,
            warn,
            settled: false,
        }
    }

    /// One reserve under a new hold id, its failure counted and the lever's fallback state
    /// noted. A reserve that failed may still have run in Redis (its reply lost, or late past
    /// the timeout), so its hold is released by id at once; the lease covers a release that
    /// fails too.
    async fn reserve(
        self: &Arc<Self>,
        lever: CapLever,
        counter: &Counter,
        caps: Caps,
        want: Amounts,
        ttl: Duration,
    ) -> Option<(HoldKey, Reserve)> {
        let key = counter.new_hold();
        let lifetimes = Lifetimes {
            counter: ttl,
            lease: self.policy.hold_lease,
        };
        match self.client.reserve(&key, caps, want, lifetimes).await {
            Ok(reserve) => {
                self.note_lever(lever, true);
                Some((key, reserve))
            }
            Err(e) => {
                self.failed("reserve", &e);
                self.note_lever(lever, false);
                release_in_background(self.clone(), key, ttl);
                None
            }
        }
    }
}

impl SharedHold {
    /// Replaces the hold by what the request used (in the background); a budget's soft
    /// thresholds crossed by it warn once across every replica.
    pub fn settle(mut self, cost: Usd, tokens: u64) {
        self.settled = true;
        self.renewal.abort();
        let used = Amounts {
            cost_nano: nano(cost),
            tokens: i64::try_from(tokens).unwrap_or(i64::MAX),
        };
        let (tier, key, ttl) = (self.tier.clone(), self.key.clone(), self.ttl);
        let warn = self.warn.take();
        tokio::spawn(async move {
            match tier.client.settle(&key, used, ttl).await {
                Ok(after) => {
                    if let Some(warn) = warn {
                        warn_once(
                            &tier,
                            &warn,
                            after.cost_nano - used.cost_nano,
                            after.cost_nano,
                            ttl,
                        )
                        .await;
                    }
                }
                Err(e) => tier.failed("settle", &e),
            }
        });
    }
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.settled {
            return;
        }
        release_in_background(self.tier.clone(), self.key.clone(), self.ttl);
    }
}

/// Releases `key` without holding anyone up; a failure is counted (`op="release"`) and the
/// lease frees the room later.
fn release_in_background(tier: Arc<SharedTier>, key: HoldKey, ttl: Duration) {
    tokio::spawn(async move {
        if let Err(e) = tier.client.release(&key, ttl).await {
            tier.failed("release", &e);
        }
    });
}

/// Renews `key`'s lease every third of `lease` until aborted (the hold settled or released)
/// or the hold is found gone. A failed renewal is counted (`op="renew"`) and tried again at
/// the next tick: two more chances before the lease runs out.
async fn renew_until_aborted(tier: Arc<SharedTier>, key: HoldKey, lease: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + lease / 3, lease / 3);
    loop {
        ticks.tick().await;
        match tier.client.renew(&key, lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    counter = key.counter().key(),
                    "a shared budget or run hold ran out of lease while its request ran; it no longer counts against the cap"
                );
                return;
            }
            Err(e) => tier.failed("renew", &e),
        }
    }
}

/// Logs and counts each soft threshold that spend crossed going from `before` to `after`
/// (nano-dollars), on the one replica that claims it first.
async fn warn_once(tier: &SharedTier, warn: &WarnAt, before: i64, after: i64, ttl: Duration) {
    for &threshold in &warn.thresholds {
        let line = (warn.cap_nano as f64 * threshold) as i64;
        if !(before < line && after >= line) {
            continue;
        }
        let event: [&[u8]; 4] = [
            warn.tenant.as_bytes(),
            warn.window.as_bytes(),
            &warn.window_start.to_le_bytes(),
            &threshold.to_le_bytes(),
        ];
        match tier.client.first_to_claim(&event, ttl).await {
            Ok(true) => {
                tracing::warn!(
                    tenant = %warn.tenant,
                    window = warn.window,
                    threshold,
                    spent_usd = %usd(after),
                    cap_usd = %usd(warn.cap_nano),
                    "budget threshold crossed (across replicas)"
                );
                metrics::record_budget_threshold(&warn.tenant, threshold);
            }
            Ok(false) => {}
            Err(e) => tier.failed("claim", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_up_and_caps_round_down_to_whole_nano_dollars() {
        let between = Usd::from_pico(1_500);
        assert_eq!((nano(between), nano_cap(between)), (2, 1));
        let exact = Usd::from_pico(3_000);
        assert_eq!((nano(exact), nano_cap(exact)), (3, 3));
        assert_eq!(
            (nano(Usd::from_pico(-5)), nano_cap(Usd::from_pico(-5))),
            (0, 0)
        );
    }
}
