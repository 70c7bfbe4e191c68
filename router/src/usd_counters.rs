//! Dollar totals as real Prometheus counters.
//!
//! The `metrics` crate's counters hold integers, and a gauge named `…_total` is rejected by
//! `promtool check metrics` (and `rate()` on a gauge ignores resets). So the dollar counters
//! (`frugal_cost_usd_total`, `frugal_baseline_cost_usd_total`, `frugal_saved_usd_total`,
//! `frugal_overspent_usd_total`, `frugal_cache_shadow_saved_usd_total`) are kept here as exact
//! [`Usd`] sums and appended to `/metrics` with the exporter's own formatting helpers, typed
//! `counter`. Counters only go up: an amount below zero is refused, so a signed figure (the
//! route lever's saving) is split by its caller into a saved and an overspent counter.
//!
//! The series are as bounded as their labels: tenants (see [`crate::tenants`]), the policy's
//! models, levers and cache tiers.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use metrics_exporter_prometheus::formatting::{
    sanitize_label_value, write_help_line, write_metric_line, write_type_line,
};

use crate::metrics::Metric;
use crate::money::Usd;

/// Label names and values of one series, in the order they are written.
type Labels = Vec<(&'static str, String)>;

/// One metric's series: the metric (for its help text) and each label set's labels and total,
/// keyed by the labels written out ([`with_key`]), so that adding to an existing series
/// allocates nothing.
type Family = (Metric, BTreeMap<String, (Labels, Usd)>);

/// Exact dollar counters by metric and labels.
#[derive(Debug, Default)]
pub struct UsdCounters {
    series: Mutex<BTreeMap<&'static str, Family>>,
}

impl UsdCounters {
    /// The process-wide counters, rendered by `/metrics` (like the `metrics` recorder, one per
    /// process).
    pub fn global() -> &'static UsdCounters {
        static COUNTERS: OnceLock<UsdCounters> = OnceLock::new();
        COUNTERS.get_or_init(UsdCounters::default)
    }

    /// Adds `amount` (at least zero; a negative amount is ignored and logged) to a series,
    /// creating it at zero first.
    pub fn add(&self, metric: Metric, labels: &[(&'static str, &str)], amount: Usd) {
        if amount < Usd::ZERO {
            tracing::error!(
                metric = metric.name(),
                %amount,
                "a counter cannot go down; the amount was not counted"
            );
            return;
        }
        with_key(labels, |key| {
            let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            let (_, by_labels) = series
                .entry(metric.name())
                .or_insert_with(|| (metric, BTreeMap::new()));
            match by_labels.get_mut(key) {
                Some((_, total)) => *total = *total + amount,
                None => {
                    let owned = labels.iter().map(|&(k, v)| (k, v.to_string())).collect();
                    by_labels.insert(key.to_string(), (owned, amount));
                }
            }
        });
    }

    /// The current value of one series, if it exists.
    pub fn get(&self, metric: Metric, labels: &[(&'static str, &str)]) -> Option<Usd> {
        with_key(labels, |key| {
            let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            series
                .get(metric.name())?
                .1
                .get(key)
                .map(|(_, total)| *total)
        })
    }

    /// The counters in the Prometheus text format, each with its HELP and TYPE lines.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for (name, (metric, by_labels)) in series.iter() {
            write_help_line(&mut out, name, metric.help());
            write_type_line(&mut out, name, "counter");
            for (labels, total) in by_labels.values() {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", sanitize_label_value(v)))
                    .collect();
                write_metric_line::<&str, f64>(
                    &mut out,
                    name,
                    None,
                    &labels,
                    None,
                    total.dollars(),
                    None,
                );
            }
            out.push('\n');
        }
        out
    }
}

/// Calls `f` with the labels written out as a series key (`name=value` each, ended by a NUL,
/// a NUL inside a value doubled: no two label sets share a key), in a buffer the thread
/// reuses.
fn with_key<R>(labels: &[(&'static str, &str)], f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static KEY: RefCell<String> = const { RefCell::new(String::new()) };
    }
    KEY.with_borrow_mut(|key| {
        key.clear();
        for (name, value) in labels {
            key.push_str(name);
            key.push('=');
            if value.contains('\0') {
                key.push_str(&value.replace('\0', "\0\0"));
            } else {
                key.push_str(value);
            }
            key.push('\0');
        }
        f(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_that_join_alike_stay_apart() {
        let counters = UsdCounters::default();
        let cent = Usd::from_dollars(0.01);
        let first = [("tenant", "a\0"), ("model", "b")];
        let second = [("tenant", "a"), ("model", "\0b")];
        counters.add(Metric::CostUsdTotal, &first, cent);
        counters.add(Metric::CostUsdTotal, &second, cent + cent);
        assert_eq!(counters.get(Metric::CostUsdTotal, &first), Some(cent));
        assert_eq!(
            counters.get(Metric::CostUsdTotal, &second),
            Some(cent + cent)
        );
        assert_eq!(counters.get(Metric::CostUsdTotal, &[("tenant", "a")]), None);
    }

    #[test]
    fn renders_typed_counters_with_escaped_labels() {
        let counters = UsdCounters::default();
        let cents = Usd::from_dollars(0.01);
        counters.add(
            Metric::CostUsdTotal,
            &[("tenant", "a"), ("model", "m\"x")],
            cents,
        );
        counters.add(
            Metric::CostUsdTotal,
            &[("tenant", "a"), ("model", "m\"x")],
            cents,
        );
        counters.add(Metric::BaselineCostUsdTotal, &[("tenant", "a")], Usd::ZERO);
        let text = counters.render();
        assert!(
            text.contains("# TYPE frugal_cost_usd_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("frugal_cost_usd_total{tenant=\"a\",model=\"m\\\"x\"} 0.02\n"),
            "{text}"
        );
        assert!(
            text.contains("frugal_baseline_cost_usd_total{tenant=\"a\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn a_counter_never_goes_down() {
        let counters = UsdCounters::default();
        let labels = [("tenant", "a"), ("lever", "route")];
        counters.add(Metric::SavedUsdTotal, &labels, Usd::from_dollars(1.0));
        counters.add(Metric::SavedUsdTotal, &labels, Usd::from_dollars(-0.5));
        assert_eq!(
            counters.get(Metric::SavedUsdTotal, &labels),
            Some(Usd::from_dollars(1.0))
        );
    }
}
