//! The figures of `frugal eval cache`: one evaluation's report, as JSON (`--json` prints
//! exactly these keys) or as the aligned table the command prints by default.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use frugal_cache::GuardSet;
use serde::Serialize;

use super::evaluation::Mode;
use super::prefilter::PrefilterReport;
use crate::offline::embed_disk::BATCH;

/// The figures of one evaluation; `--json` prints exactly these keys (plus `sweep` and
/// `ablation` when asked for).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Pairs evaluated.
    pub pairs: usize,
    /// Similarity threshold.
    pub threshold: f32,
    /// Lookups that were served from the cache.
    pub hits: usize,
    /// Correct hits / hits (1 when there were no hits).
    pub precision: f64,
    /// Correct hits / duplicate pairs.
    pub recall: f64,
    /// Hits on non-duplicate pairs / non-duplicate pairs.
    pub false_hit_rate: f64,
    /// Hits on hard negatives / hard negatives (0 when there are none).
    pub hard_negative_false_hit_rate: f64,
    /// Candidates at or above the threshold that each guard rejected (a candidate can be
    /// rejected by several guards; every enabled guard is listed).
    pub guard_rejections: BTreeMap<&'static str, usize>,
    /// Median lookup latency in milliseconds: index search + verification, embedding excluded.
    pub lookup_latency_p50_ms: f64,
    /// 99th-percentile lookup latency in milliseconds, same scope.
    pub lookup_latency_p99_ms: f64,
    /// Texts embedded per second (batches of 32), measured on a sample of queries.
    pub embedding_throughput_per_s: f64,
    /// Precision/recall across thresholds, with and without guards (`--sweep`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Vec<SweepPoint>>,
    /// Each guard's contribution at the threshold (`--ablation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ablation: Option<Vec<GuardEffect>>,
    /// What the semantic prefilter ruled out, and what that cost (absent with `--prefilter 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefilter: Option<PrefilterReport>,
}

/// Decision quality at one threshold for one guard set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Lookups served.
    pub hits: usize,
    /// Correct hits / hits.
    pub precision: f64,
    /// Correct hits / duplicates.
    pub recall: f64,
    /// Hits on non-duplicates / non-duplicates.
    pub false_hit_rate: f64,
    /// Hits on hard negatives / hard negatives.
    pub hard_negative_false_hit_rate: f64,
}

/// One threshold of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepPoint {
    /// Similarity threshold.
    pub threshold: f32,
    /// Plain cosine, no verification.
    pub plain: Quality,
    /// Cosine plus the enabled guards.
    pub guarded: Quality,
}

/// What one guard does at the evaluated threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardEffect {
    /// The guard.
    pub guard: &'static str,
    /// Candidates above the threshold it rejects, on duplicate pairs (recall it costs).
    pub rejects_duplicates: usize,
    /// Candidates above the threshold it rejects, on non-duplicate pairs (false hits it stops).
    pub rejects_non_duplicates: usize,
    /// Quality with this guard alone.
    pub alone: Quality,
    /// Quality with every enabled guard but this one.
    pub without: Quality,
}

impl Report {
    /// The report as an aligned, readable table (what `frugal eval cache` prints by default).
    pub fn to_table(&self, mode: Mode, guards: GuardSet) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{:.2}%", 100.0 * x);
        let _ = writeln!(s, "mode                          {}", mode.as_str());
        let _ = writeln!(s, "guards                        {guards}");
        let _ = writeln!(s, "pairs                         {}", self.pairs);
        let _ = writeln!(s, "threshold                     {:.3}", self.threshold);
        let _ = writeln!(s, "hits                          {}", self.hits);
        let _ = writeln!(s, "precision                     {:.4}", self.precision);
        let _ = writeln!(s, "recall                        {:.4}", self.recall);
        let _ = writeln!(
            s,
            "false_hit_rate                {}",
            pct(self.false_hit_rate)
        );
        let _ = writeln!(
            s,
            "hard_negative_false_hit_rate  {}",
            pct(self.hard_negative_false_hit_rate)
        );
        let _ = writeln!(
            s,
            "lookup latency p50 / p99      {:.3} ms / {:.3} ms  (index search + verification; embedding excluded)",
            self.lookup_latency_p50_ms, self.lookup_latency_p99_ms
        );
        let _ = writeln!(
            s,
            "embedding throughput          {:.0} texts/s  (batches of {BATCH})",
            self.embedding_throughput_per_s
        );
        let _ = writeln!(
            s,
            "guard rejections (candidates at or above the threshold):"
        );
        for (guard, n) in &self.guard_rejections {
            let _ = writeln!(s, "  {guard:<12} {n}");
        }
        if let Some(p) = &self.prefilter {
            let _ = writeln!(
                s,
                "prefilter at {:.2}              ruled out {} lookups ({}) before MiniLM; candidates lost {}, hits lost {}; static vector {:.0} µs a text",
                p.threshold,
                p.ruled_out,
                pct(p.ruled_out_share),
                p.candidates_lost,
                p.hits_lost,
                p.static_embed_mean_us
            );
        }
        if let Some(effects) = &self.ablation {
            let _ = writeln!(
                s,
                "\n{:<12} {:>9} {:>9} | {:>12} {:>12} | {:>14} {:>14}",
                "guard",
                "rej dup",
                "rej non",
                "alone recall",
                "alone fhr",
                "without recall",
                "without fhr"
            );
            for e in effects {
                let _ = writeln!(
                    s,
                    "{:<12} {:>9} {:>9} | {:>12.4} {:>12} | {:>14.4} {:>14}",
                    e.guard,
                    e.rejects_duplicates,
                    e.rejects_non_duplicates,
                    e.alone.recall,
                    pct(e.alone.false_hit_rate),
                    e.without.recall,
                    pct(e.without.false_hit_rate)
                );
            }
        }
        if let Some(points) = &self.sweep {
            let _ = writeln!(
                s,
                "\n{:>9} | {:>6} {:>9} {:>7} {:>8} | {:>6} {:>9} {:>7} {:>8}",
                "threshold",
                "plain:",
                "precision",
                "recall",
                "fhr",
                "guard:",
                "precision",
                "recall",
                "fhr"
            );
            for p in points {
                let _ = writeln!(
                    s,
                    "{:>9.3} | {:>6} {:>9.4} {:>7.4} {:>8} | {:>6} {:>9.4} {:>7.4} {:>8}",
                    p.threshold,
                    p.plain.hits,
                    p.plain.precision,
                    p.plain.recall,
                    pct(p.plain.false_hit_rate),
                    p.guarded.hits,
                    p.guarded.precision,
                    p.guarded.recall,
                    pct(p.guarded.false_hit_rate)
                );
            }
        }
        s
    }
}
