//! What the soak measured: outcome counts per class, latency percentiles, the sidecar's RSS
//! and file descriptors over time, and the savings identity, as a table and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use frugal_cache::percentile;
use serde_json::{json, Value};

use crate::outcome::{expected, Outcome};
use crate::workload::{Class, Spec};

/// Outcome counts and latencies, filled as requests finish.
#[derive(Debug, Default)]
pub struct Stats {
    rows: BTreeMap<RowKey, Row>,
    all_latencies_us: Vec<u32>,
}

/// A class of request, streamed or not.
type RowKey = (Class, bool);

#[derive(Debug, Default)]
struct Row {
    outcomes: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    /// Unexpected outcomes, by label (wrong answers outside the semantic tier included).
    unexpected: BTreeMap<String, u64>,
    /// Semantic hits that answered another question (a quality figure, not an error).
    false_semantic_hits: u64,
}

impl Stats {
    /// Counts one finished request.
    pub fn record(&mut self, spec: &Spec, outcome: &Outcome) {
        let micros = u32::try_from(outcome.latency.as_micros()).unwrap_or(u32::MAX);
        self.all_latencies_us.push(micros);
        let row = self.rows.entry((spec.class, spec.stream)).or_default();
        row.latencies_us.push(micros);
        *row.outcomes.entry(outcome.label.clone()).or_default() += 1;
        if !expected(spec.class, spec.stream, &outcome.label) {
            *row.unexpected.entry(outcome.label.clone()).or_default() += 1;
        } else if outcome.wrong_answer && outcome.label == "200 semantic" {
            row.false_semantic_hits += 1;
        } else if outcome.wrong_answer {
            *row.unexpected
                .entry(format!("{} wrong-answer", outcome.label))
                .or_default() += 1;
        }
    }

    /// Requests finished.
    pub fn finished(&self) -> u64 {
        self.all_latencies_us.len() as u64
    }

    /// Unexpected outcomes so far.
    pub fn unexpected(&self) -> u64 {
        self.rows.values().flat_map(|r| r.unexpected.values()).sum()
    }

    /// Responses with status 200 (every one is settled in the savings ledger).
    pub fn ok_responses(&self) -> u64 {
        self.rows
            .values()
            .flat_map(|r| &r.outcomes)
            .filter(|(label, _)| label.starts_with("200 "))
            .map(|(_, n)| n)
            .sum()
    }

    /// 200s by cache tier (`exact`, `semantic`, `miss`), stream defects counted apart.
    pub fn by_tier(&self) -> BTreeMap<String, u64> {
        let mut tiers = BTreeMap::new();
        for (label, n) in self.rows.values().flat_map(|r| &r.outcomes) {
            if let Some(tier) = label.strip_prefix("200 ") {
                *tiers.entry(tier.to_string()).or_default() += n;
            }
        }
        tiers
    }
}

/// One reading of the sidecar every sampling period.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds since the load started.
    pub at_secs: f64,
    /// Requests sent so far.
    pub sent: u64,
    /// Requests finished so far.
    pub finished: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// `frugal_cache_bytes`.
    pub cache_bytes: f64,
    /// `frugal_cache_entries`.
    pub cache_entries: f64,
    /// `frugal_cache_evictions_total`.
    pub evictions: f64,
    /// `frugal_embedding_deadline_skips_total`, all reasons.
    pub embedding_skips: f64,
}

impl Sample {
    /// The progress line printed every period.
    pub fn line(&self, late: u64, unexpected: u64) -> String {
        format!(
            "[{:>6.0}s] sent {:>8} ({:>5.0}/s) done {:>8} late {:>6} | rss {:>7.1} MiB fds {:>4} | cache {:>5.1} MiB {:>7.0} entries {:>8.0} evicted | embed skips {:>7.0} | unexpected {}",
            self.at_secs,
            self.sent,
            self.sent as f64 / self.at_secs.max(1e-9),
            self.finished,
            late,
            self.rss_kib as f64 / 1024.0,
            self.fds,
            self.cache_bytes / (1024.0 * 1024.0),
            self.cache_entries,
            self.evictions,
            self.embedding_skips,
            unexpected,
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "at_secs": self.at_secs,
            "sent": self.sent,
            "finished": self.finished,
            "rss_kib": self.rss_kib,
            "fds": self.fds,
            "cache_bytes": self.cache_bytes,
            "cache_entries": self.cache_entries,
            "cache_evictions": self.evictions,
            "embedding_skips": self.embedding_skips,
        })
    }
}

/// How the sidecar's memory behaved once the cache was full.
#[derive(Debug, Clone)]
pub struct Memory {
    /// RSS at the first sample, KiB.
    pub start_kib: u64,
    /// The first sample after the cache began evicting (it is full from then on).
    pub warm: Option<Sample>,
    /// RSS at the last sample, KiB.
    pub end_kib: u64,
    /// Lowest and highest RSS from the warm sample on, KiB.
    pub after_warm_range_kib: (u64, u64),
    /// Whether every sample from the warm one on is within ±10% of it.
    pub flat: bool,
}

impl Memory {
    /// Reads the samples; `None` without any.
    pub fn from_samples(samples: &[Sample]) -> Option<Self> {
        let first = samples.first()?;
        let last = samples.last()?;
        let warm_at = samples.iter().position(|s| s.evictions > 0.0);
        let warm = warm_at.map(|i| samples[i].clone());
        let after: Vec<u64> = warm_at
            .map(|i| samples[i..].iter().map(|s| s.rss_kib).collect())
            .unwrap_or_default();
        let low = after.iter().copied().min().unwrap_or(0);
        let high = after.iter().copied().max().unwrap_or(0);
        let flat = warm.as_ref().is_some_and(|w| {
            let base = w.rss_kib as f64;
            after
                .iter()
                .all(|&r| (r as f64 - base).abs() <= 0.10 * base)
        });
        Some(Self {
            start_kib: first.rss_kib,
            warm,
            end_kib: last.rss_kib,
            after_warm_range_kib: (low, high),
            flat,
        })
    }
}

/// The savings identity for one tenant (or the total): baseline − actual = trim + cache + route.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Tenant, or `TOTAL`.
    pub name: String,
    /// Requests the ledger settled.
    pub requests: u64,
    /// Baseline dollars.
    pub baseline: f64,
    /// Actual dollars.
    pub actual: f64,
    /// Trim, cache and route savings.
    pub levers: [f64; 3],
    /// Whether both sides agree within rounding (and `saved_usd` equals baseline − actual).
    pub holds: bool,
}

impl Identity {
    /// Checks every tenant and the total of a `GET /v1/frugal/savings` body.
    pub fn check_all(savings: &Value) -> Vec<Self> {
        let mut out = Vec::new();
        if let Some(total) = savings.get("total") {
            out.push(Self::check("TOTAL", total));
        }
        if let Some(tenants) = savings.get("tenants").and_then(Value::as_object) {
            out.extend(tenants.iter().map(|(name, t)| Self::check(name, t)));
        }
        out
    }

    fn check(name: &str, totals: &Value) -> Self {
        let num = |v: Option<&Value>| v.and_then(Value::as_f64).unwrap_or(f64::NAN);
        let lever = |l: &str| num(totals.get("by_lever").and_then(|b| b.get(l)));
        let baseline = num(totals.get("baseline_usd"));
        let actual = num(totals.get("actual_usd"));
        let saved = num(totals.get("saved_usd"));
        let levers = [lever("trim"), lever("cache"), lever("route")];
        // Each figure is an exact pico-dollar sum rounded once to f64: allow a few ulps.
        let tolerance = 1e-9 + 1e-12 * baseline.abs();
        let sum: f64 = levers.iter().sum();
        let holds = ((baseline - actual) - sum).abs() <= tolerance
            && ((baseline - actual) - saved).abs() <= tolerance;
        Self {
            name: name.to_string(),
            requests: totals.get("requests").and_then(Value::as_u64).unwrap_or(0),
            baseline,
            actual,
            levers,
            holds,
        }
    }
}

/// Everything the soak reports.
pub struct Report<'a> {
    /// Arguments the run was started with.
    pub settings: Value,
    /// Requests sent.
    pub sent: u64,
    /// Requests that could not start on schedule (every slot was busy).
    pub late: u64,
    /// From the first request to the last answer.
    pub duration: Duration,
    /// Outcomes.
    pub stats: &'a Stats,
    /// RSS and fd readings.
    pub samples: &'a [Sample],
    /// The savings identity per tenant and in total.
    pub identities: Vec<Identity>,
    /// Selected counters from the final `/metrics` scrape.
    pub metrics: BTreeMap<&'static str, f64>,
}

impl Report<'_> {
    /// Whether the run passed: no unexpected outcome, the identity holds everywhere, memory
    /// flat once the cache was full.
    pub fn passed(&self) -> bool {
        let memory_flat = Memory::from_samples(self.samples).is_some_and(|m| m.flat);
        self.stats.unexpected() == 0
            && !self.identities.is_empty()
            && self.identities.iter().all(|i| i.holds)
            && memory_flat
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let secs = self.duration.as_secs_f64();
        let _ = writeln!(
            out,
            "\nsoak: {} requests in {:.0} s ({:.0}/s achieved), {} could not start on time",
            self.sent,
            secs,
            self.sent as f64 / secs.max(1e-9),
            self.late
        );
        let p = percentiles(&self.stats.all_latencies_us);
        let _ = writeln!(
            out,
            "latency: p50 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms",
            p.p50, p.p99, p.p999, p.max
        );
        self.outcome_table(&mut out);
        let _ = writeln!(out, "\n200s by x-frugal-cache:");
        for (tier, n) in self.stats.by_tier() {
            let _ = writeln!(out, "  {tier:<48} {n:>9}");
        }
        self.memory_lines(&mut out);
        self.savings_lines(&mut out);
        let _ = writeln!(out, "\nsidecar counters at the end:");
        for (name, value) in &self.metrics {
            let _ = writeln!(out, "  {name:<48} {value:>12.0}");
        }
        let _ = writeln!(
            out,
            "\nunexpected outcomes: {}   verdict: {}",
            self.stats.unexpected(),
            if self.passed() { "PASS" } else { "FAIL" }
        );
        out
    }

    fn outcome_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n{:<22} {:>9} {:>8} {:>8}  outcomes",
            "class", "requests", "p50 ms", "p99 ms"
        );
        for ((class, stream), row) in &self.stats.rows {
            let name = format!("{class}{}", if *stream { " (sse)" } else { "" });
            let p = percentiles(&row.latencies_us);
            let outcomes: Vec<String> = row
                .outcomes
                .iter()
                .map(|(label, n)| format!("{label} ×{n}"))
                .collect();
            let _ = writeln!(
                out,
                "{name:<22} {:>9} {:>8.1} {:>8.1}  {}",
                row.latencies_us.len(),
                p.p50,
                p.p99,
                outcomes.join(", ")
            );
            for (label, n) in &row.unexpected {
                let _ = writeln!(out, "{:<22} UNEXPECTED {label} ×{n}", "");
            }
            if row.false_semantic_hits > 0 {
                let _ = writeln!(
                    out,
                    "{:<22} semantic hits answering another question ×{}",
                    "", row.false_semantic_hits
                );
            }
        }
    }

    fn memory_lines(&self, out: &mut String) {
        let Some(m) = Memory::from_samples(self.samples) else {
            let _ = writeln!(out, "\nmemory: no samples (no --pid?)");
            return;
        };
        let mib = |kib: u64| kib as f64 / 1024.0;
        let _ = writeln!(out, "\nsidecar memory (VmRSS) and file descriptors:");
        let _ = writeln!(out, "  RSS at start        {:>8.1} MiB", mib(m.start_kib));
        match &m.warm {
            Some(w) => {
                let _ = writeln!(
                    out,
                    "  RSS cache full      {:>8.1} MiB (at {:.0} s, first sample with evictions)",
                    mib(w.rss_kib),
                    w.at_secs
                );
                let _ = writeln!(
                    out,
                    "  RSS after that      {:>8.1} – {:.1} MiB: {} within ±10%",
                    mib(m.after_warm_range_kib.0),
                    mib(m.after_warm_range_kib.1),
                    if m.flat { "flat," } else { "NOT flat," }
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  cache never filled: raise the load or lower max_bytes"
                );
            }
        }
        let _ = writeln!(out, "  RSS at end          {:>8.1} MiB", mib(m.end_kib));
        let fds = |s: Option<&Sample>| s.map_or(0, |s| s.fds);
        let _ = writeln!(
            out,
            "  fds start / max / end  {} / {} / {}",
            fds(self.samples.first()),
            self.samples.iter().map(|s| s.fds).max().unwrap_or(0),
            fds(self.samples.last())
        );
    }

    fn savings_lines(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nsavings identity (GET /v1/frugal/savings): baseline − actual = trim + cache + route"
        );
        let _ = writeln!(
            out,
            "  {:<10} {:>9} {:>12} {:>12} {:>12} {:>12} {:>12}  holds",
            "tenant", "requests", "baseline $", "actual $", "trim $", "cache $", "route $"
        );
        for i in &self.identities {
            let _ = writeln!(
                out,
                "  {:<10} {:>9} {:>12.6} {:>12.6} {:>12.6} {:>12.6} {:>12.6}  {}",
                i.name,
                i.requests,
                i.baseline,
                i.actual,
                i.levers[0],
                i.levers[1],
                i.levers[2],
                if i.holds { "yes" } else { "NO" }
            );
        }
        let _ = writeln!(
            out,
            "  ledger requests {} vs 200 responses {}",
            self.identities.first().map_or(0, |i| i.requests),
            self.stats.ok_responses()
        );
    }

    /// The same figures as JSON.
    pub fn to_json(&self) -> Value {
        let p = percentiles(&self.stats.all_latencies_us);
        let secs = self.duration.as_secs_f64();
        let classes: Vec<Value> = self
            .stats
            .rows
            .iter()
            .map(|((class, stream), row)| {
                let p = percentiles(&row.latencies_us);
                json!({
                    "class": class.to_string(),
                    "stream": stream,
                    "requests": row.latencies_us.len(),
                    "p50_ms": p.p50,
                    "p99_ms": p.p99,
                    "outcomes": row.outcomes,
                    "unexpected": row.unexpected,
                    "false_semantic_hits": row.false_semantic_hits,
                })
            })
            .collect();
        let memory = Memory::from_samples(self.samples).map(|m| {
            json!({
                "rss_start_kib": m.start_kib,
                "rss_warm_kib": m.warm.as_ref().map(|w| w.rss_kib),
                "warm_at_secs": m.warm.as_ref().map(|w| w.at_secs),
                "rss_end_kib": m.end_kib,
                "rss_after_warm_min_kib": m.after_warm_range_kib.0,
                "rss_after_warm_max_kib": m.after_warm_range_kib.1,
                "flat_within_10pct": m.flat,
                "fds_start": self.samples.first().map(|s| s.fds),
                "fds_max": self.samples.iter().map(|s| s.fds).max(),
                "fds_end": self.samples.last().map(|s| s.fds),
            })
        });
        let identities: Vec<Value> = self
            .identities
            .iter()
            .map(|i| {
                json!({
                    "tenant": i.name,
                    "requests": i.requests,
                    "baseline_usd": i.baseline,
                    "actual_usd": i.actual,
                    "trim_usd": i.levers[0],
                    "cache_usd": i.levers[1],
                    "route_usd": i.levers[2],
                    "holds": i.holds,
                })
            })
            .collect();
        json!({
            "settings": self.settings,
            "requests_sent": self.sent,
            "requests_finished": self.stats.finished(),
            "late_starts": self.late,
            "duration_secs": secs,
            "achieved_rate": self.sent as f64 / secs.max(1e-9),
            "latency_ms": { "p50": p.p50, "p99": p.p99, "p999": p.p999, "max": p.max },
            "ok_by_cache_tier": self.stats.by_tier(),
            "ok_responses": self.stats.ok_responses(),
            "unexpected": self.stats.unexpected(),
            "classes": classes,
            "memory": memory,
            "samples": self.samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
            "savings_identity": identities,
            "metrics": self.metrics,
            "passed": self.passed(),
        })
    }
}

/// Latency percentiles in milliseconds.
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn percentiles(micros: &[u32]) -> Percentiles {
    let mut sorted: Vec<f64> = micros.iter().map(|&us| f64::from(us) / 1000.0).collect();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| percentile(&sorted, q);
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: at(1.0),
    }
}
