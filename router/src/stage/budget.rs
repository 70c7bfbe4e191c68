//! Tenant budgets: before any upstream call the request's estimated cost is reserved against
//! its tenant's hard cap (a request that could overspend gets a 429); afterwards the
//! reservation is settled to the actual cost and soft thresholds raise a warning once per
//! window. Reservations make the cap hold under concurrency: a tenant overspends by at most
//! the difference between one request's estimate and its actual cost. Spend can be saved to a
//! file so it survives a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::metrics;
use crate::money::Usd;
use crate::policy::{BudgetPolicy, BudgetWindow, Policy};

/// Spend of one tenant in its current window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TenantSpend {
    window: BudgetWindow,
    /// Unix seconds at which the window started.
    window_start: u64,
    /// Settled spend, in pico-dollars.
    spent_pico: i128,
    #[serde(skip)]
    reserved: Usd,
    /// Soft thresholds already crossed in this window.
    #[serde(default)]
    crossed: Vec<f64>,
}

impl TenantSpend {
    fn spent(&self) -> Usd {
        Usd::from_pico(self.spent_pico)
    }
}

/// A soft threshold crossed by a request.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetWarning {
    /// Tenant.
    pub tenant: String,
    /// Budget window.
    pub window: BudgetWindow,
    /// The threshold crossed, as a share of the cap.
    pub threshold: f64,
    /// Spend in the window after the request.
    pub spent: Usd,
    /// The hard cap.
    pub cap: Usd,
}

impl std::fmt::Display for BudgetWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tenant {} passed {:.0}% of its {} budget: ${} of ${}",
            self.tenant,
            self.threshold * 100.0,
            self.window.as_str(),
            self.spent,
            self.cap
        )
    }
}

/// Budget state of every tenant, shared across policy reloads.
#[derive(Default)]
pub struct Budgets {
    spend: Mutex<HashMap<String, TenantSpend>>,
    dirty: AtomicBool,
}

/// Money held for one in-flight request; released if dropped unsettled.
pub struct Reservation {
    budgets: Arc<Budgets>,
    tenant: String,
    policy: BudgetPolicy,
    amount: Usd,
    settled: bool,
    /// Whether crossing a soft threshold warns here (not when the shared tier warns for all).
    warns: bool,
}

impl Budgets {
    /// The spend table, recovered if a panic poisoned its lock: the counters stay meaningful,
    /// and refusing to look would either stop every budgeted request or stop counting spend.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, TenantSpend>> {
        self.spend.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The budget that applies to a tenant under a policy, if any.
    pub fn policy_for<'p>(policy: &'p Policy, tenant: &str) -> Option<&'p BudgetPolicy> {
        policy
            .budgets
            .get(tenant)
            .or_else(|| policy.budgets.get(crate::tenants::DEFAULT_TENANT))
    }

    /// Reserves `estimate` for a request; a 429 if it could take spend past the hard cap.
    pub fn reserve(
        self: &Arc<Self>,
        budget: &BudgetPolicy,
        tenant: &str,
        estimate: Usd,
    ) -> Result<Reservation, ApiError> {
        let now = unix_now();
        let mut spend = self.lock();
        let entry = current(&mut spend, tenant, budget.window, now);
        let committed = entry.spent() + entry.reserved;
        if committed + estimate > budget.hard_cap {
            metrics::record_budget_rejection(tenant);
            return Err(ApiError::BudgetExceeded {
                tenant: tenant.to_string(),
                window: budget.window.as_str(),
                cap: budget.hard_cap,
                committed,
                estimate,
                retry_after_secs: window_end(budget.window, entry.window_start).saturating_sub(now),
            });
        }
        entry.reserved = entry.reserved + estimate;
        Ok(Reservation {
            budgets: self.clone(),
            tenant: tenant.to_string(),
            policy: budget.clone(),
            amount: estimate,
            settled: false,
            warns: true,
        })
    }

    /// Settled spend of a tenant in its current window (zero if none yet, or if its window
    /// has ended).
    pub fn spent(&self, tenant: &str) -> Usd {
        let now = unix_now();
        self.lock()
            .get(tenant)
            .filter(|e| e.window_start == window_start(e.window, now))
            .map(TenantSpend::spent)
            .unwrap_or_default()
    }

    /// Sets the spend gauges of every tenant with a budget (each one the policy names, and
    /// each one that has spent) for the window current now. Called on every scrape, so a
    /// window that has ended shows zero spend and the whole cap remaining before the tenant's
    /// next request, and a budgeted tenant shows up before its first one.
    pub fn refresh_gauges(&self, policy: &Policy) {
        let mut spend = self.lock();
        let now = unix_now();
        let mut tenants: Vec<String> = spend.keys().cloned().collect();
        tenants.extend(
            policy
                .budgets
                .keys()
                .filter(|t| !spend.contains_key(*t))
                .cloned(),
        );
        for tenant in tenants {
            let Some(budget) = Self::policy_for(policy, &tenant) else {
                continue;
            };
            let spent = current(&mut spend, &tenant, budget.window, now).spent();
            metrics::record_budget_spend(&tenant, budget.window.as_str(), spent, budget.hard_cap);
        }
    }

    /// Loads saved spend; a missing file is an empty state.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let spend = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            spend: Mutex::new(spend),
            dirty: AtomicBool::new(false),
        })
    }

    /// Saves spend atomically (write a temporary file, then rename) if it changed; after a
    /// failure it stays unsaved, so the next call tries again.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.save_now(path)
            .inspect_err(|_| self.dirty.store(true, Ordering::Release))
    }

    /// Saves spend now, changed or not: `serve` calls it at start, so a file it cannot write
    /// is an error before the first request rather than lost spend after a restart.
    pub fn save_now(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string(&*self.lock()).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    /// Saves spend every `every` while the server runs.
    pub async fn persist(self: Arc<Self>, path: PathBuf, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match self.save(&path) {
                // Once per streak of failures, not every second; it is retried meanwhile.
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(path = %path.display(), error = %e, "cannot save budget spend; retrying every tick");
                }
                Err(_) => {}
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(path = %path.display(), "budget spend saved again");
                }
                Ok(()) => {}
            }
        }
    }
}

impl Reservation {
    /// The same reservation, settling without soft-threshold warnings (the shared tier warns
    /// once across replicas instead).
    pub fn without_warnings(mut self) -> Self {
        self.warns = false;
        self
    }

    /// Replaces the reservation by the actual cost; returns a warning for each soft threshold
    /// this request crossed (the highest last).
    pub fn settle(mut self, actual: Usd) -> Vec<BudgetWarning> {
        self.settled = true;
        let mut spend = self.budgets.lock();
        let budget = &self.policy;
        let entry = current(&mut spend, &self.tenant, budget.window, unix_now());
        entry.reserved = (entry.reserved - self.amount).max(Usd::ZERO);
        entry.spent_pico += actual.pico();
        let spent = entry.spent();
        let mut warnings = Vec::new();
        for &threshold in &budget.soft_thresholds {
            let line = Usd::from_dollars(budget.hard_cap.dollars() * threshold);
            if self.warns && spent >= line && !entry.crossed.contains(&threshold) {
                entry.crossed.push(threshold);
                let warning = BudgetWarning {
                    tenant: self.tenant.clone(),
                    window: budget.window,
                    threshold,
                    spent,
                    cap: budget.hard_cap,
                };
                tracing::warn!(%warning, "budget threshold crossed");
                metrics::record_budget_threshold(&self.tenant, threshold);
                warnings.push(warning);
            }
        }
        metrics::record_budget_spend(&self.tenant, budget.window.as_str(), spent, budget.hard_cap);
        self.budgets.dirty.store(true, Ordering::Release);
        warnings
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(entry) = self.budgets.lock().get_mut(&self.tenant) {
            entry.reserved = (entry.reserved - self.amount).max(Usd::ZERO);
        }
    }
}

/// The tenant's spend entry, rolled over to a new window when the old one has ended.
fn current<'a>(
    spend: &'a mut HashMap<String, TenantSpend>,
    tenant: &str,
    window: BudgetWindow,
    now: u64,
) -> &'a mut TenantSpend {
    let start = window_start(window, now);
    let entry = spend
        .entry(tenant.to_string())
        .or_insert_with(|| TenantSpend {
            window,
            window_start: start,
            spent_pico: 0,
            reserved: Usd::ZERO,
            crossed: Vec::new(),
        });
    if entry.window != window || entry.window_start != start {
        entry.window = window;
        entry.window_start = start;
        entry.spent_pico = 0;
        entry.crossed.clear();
    }
    entry
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds at which the window containing `now` started (UTC calendar).
pub fn window_start(window: BudgetWindow, now: u64) -> u64 {
    match window {
        BudgetWindow::Hour => now - now % 3600,
        BudgetWindow::Day => now - now % 86_400,
        BudgetWindow::Month => {
            let (year, month, _) = civil_from_days((now / 86_400) as i64);
            days_from_civil(year, month, 1) as u64 * 86_400
        }
    }
}

/// Unix seconds at which the window starting at `start` ends.
pub fn window_end(window: BudgetWindow, start: u64) -> u64 {
    match window {
        BudgetWindow::Hour => start + 3600,
        BudgetWindow::Day => start + 86_400,
        BudgetWindow::Month => {
            let (year, month, _) = civil_from_days((start / 86_400) as i64);
            let (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            days_from_civil(year, month, 1) as u64 * 86_400
        }
    }
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian, days since 1970-01-01).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(cap: f64, thresholds: &[f64]) -> BudgetPolicy {
        BudgetPolicy {
            window: BudgetWindow::Day,
            hard_cap: Usd::from_dollars(cap),
            soft_thresholds: thresholds.to_vec(),
            assumed_output_tokens: 1024,
        }
    }

    #[test]
    fn hard_cap_rejects_before_spending_past_it() {
        let budgets = Arc::new(Budgets::default());
        let b = budget(1.0, &[]);
        let held = budgets.reserve(&b, "t", Usd::from_dollars(0.6)).unwrap();
        assert!(
            budgets.reserve(&b, "t", Usd::from_dollars(0.6)).is_err(),
            "reserved money counts"
        );
        held.settle(Usd::from_dollars(0.3));
        assert!(budgets.reserve(&b, "t", Usd::from_dollars(0.6)).is_ok());
        assert!(
            budgets.reserve(&b, "other", Usd::from_dollars(0.9)).is_ok(),
            "tenants are separate"
        );
    }

    #[test]
    fn dropped_reservation_is_released() {
        let budgets = Arc::new(Budgets::default());
        let b = budget(1.0, &[]);
        drop(budgets.reserve(&b, "t", Usd::from_dollars(0.9)).unwrap());
        assert!(budgets.reserve(&b, "t", Usd::from_dollars(0.9)).is_ok());
    }

    #[test]
    fn soft_thresholds_fire_once_per_window() {
        let budgets = Arc::new(Budgets::default());
        let b = budget(1.0, &[0.5, 0.8]);
        let spend = |amount: f64| {
            budgets
                .reserve(&b, "t", Usd::from_dollars(amount))
                .unwrap()
                .settle(Usd::from_dollars(amount))
        };
        assert!(spend(0.4).is_empty());
        let crossed: Vec<f64> = spend(0.45).iter().map(|w| w.threshold).collect();
        assert_eq!(crossed, vec![0.5, 0.8]);
        assert!(spend(0.05).is_empty(), "each threshold fires once");
    }

    #[test]
    fn a_failed_save_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later").join("spend.json");
        let budgets = Arc::new(Budgets::default());
        budgets
            .reserve(&budget(10.0, &[]), "t", Usd::from_dollars(1.0))
            .unwrap()
            .settle(Usd::from_dollars(0.5));
        assert!(budgets.save(&path).is_err(), "no such directory yet");
        std::fs::create_dir(dir.path().join("later")).unwrap();
        budgets.save(&path).unwrap();
        assert_eq!(
            Budgets::load(&path).unwrap().spent("t"),
            Usd::from_dollars(0.5)
        );
    }

    #[test]
    fn spend_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spend.json");
        let budgets = Arc::new(Budgets::default());
        let b = budget(10.0, &[]);
        budgets
            .reserve(&b, "t", Usd::from_dollars(2.0))
            .unwrap()
            .settle(Usd::from_dollars(1.25));
        budgets.save(&path).unwrap();
        let restored = Budgets::load(&path).unwrap();
        assert_eq!(restored.spent("t"), Usd::from_dollars(1.25));
    }

    #[test]
    fn an_ended_window_counts_as_no_spend_before_the_next_request() {
        let budgets = Arc::new(Budgets::default());
        let b = budget(10.0, &[0.1]);
        let warnings = budgets
            .reserve(&b, "t", Usd::from_dollars(2.0))
            .unwrap()
            .settle(Usd::from_dollars(1.5));
        assert_eq!(warnings.len(), 1);
        // Move the tenant's window back a day, as if the day had ended since.
        if let Ok(mut spend) = budgets.spend.lock() {
            if let Some(entry) = spend.get_mut("t") {
                entry.window_start -= 86_400;
            }
        }
        assert_eq!(budgets.spent("t"), Usd::ZERO);
        let policy = crate::policy::parse(
            "providers: { p: { base_url: 'http://127.0.0.1:1/v1' } }\n\
             models: { m: { provider: p, price: { input_per_mtok: 1, output_per_mtok: 1 } } }\n\
             tenants: { t: { budget: { window: day, hard_cap_usd: 10, soft_thresholds: [0.1] } } }\n",
            "budget.yaml",
        )
        .unwrap();
        budgets.refresh_gauges(&policy);
        let spend = budgets.spend.lock().unwrap();
        assert_eq!(spend["t"].spent(), Usd::ZERO, "rolled over on refresh");
        assert!(spend["t"].crossed.is_empty(), "thresholds re-armed");
    }

    #[test]
    fn a_poisoned_lock_keeps_the_cap_and_the_spend() {
        let budgets = Arc::new(Budgets::default());
        let b = budget(1.0, &[]);
        let held = budgets.reserve(&b, "t", Usd::from_dollars(0.6)).unwrap();
        let poisoner = budgets.clone();
        let panicked = std::thread::spawn(move || {
            let _spend = poisoner.spend.lock().unwrap();
            panic!("poison the spend table");
        })
        .join();
        assert!(panicked.is_err() && budgets.spend.is_poisoned());
        assert!(
            budgets.reserve(&b, "t", Usd::from_dollars(0.6)).is_err(),
            "the reservation still holds after a panic"
        );
        held.settle(Usd::from_dollars(0.5));
        assert_eq!(
            budgets.spent("t"),
            Usd::from_dollars(0.5),
            "spend still counted"
        );
        assert!(budgets.reserve(&b, "t", Usd::from_dollars(0.4)).is_ok());
    }

    #[test]
    fn calendar_windows() {
        // 2026-11-26T22:22:10Z
        let now = 1_795_731_730;
        assert_eq!(window_start(BudgetWindow::Day, now), 1_795_651_200); // 2026-11-26T00:00:00Z
        assert_eq!(window_start(BudgetWindow::Month, now), 1_793_491_200); // 2026-11-01T00:00:00Z
        assert_eq!(
            window_end(BudgetWindow::Month, 1_793_491_200),
            1_796_083_200
        ); // 2026-12-01
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
