//! Offline evaluation of semantic-cache decisions on labelled prompt pairs (`frugal eval cache`).
//!
//! Each pair says whether serving `a`'s answer for `b` would be right. A lookup of `b` is a
//! hit when a stored prompt has cosine ≥ the threshold **and** passes verification; candidates
//! are tried in similarity order, the first that passes is served.
//!
//! * [`Mode::Pair`]: per pair a fresh scope holding only `a`; `b` looks it up.
//! * [`Mode::Index`]: every `a` in one index; each `b` looks up the whole index, and a hit is
//!   correct only when it returns that pair's `a` and the pair is a duplicate.
//!
//! Lookup latency covers what the cache does per request once the query vector exists: the
//! index search, the query's analysis and the verification of the candidates (the stored
//! prompts' analyses are made at insert time, as a cache would). Embedding is measured apart,
//! as throughput on a sample of the queries.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use frugal_cache::{
    percentile, Analysis, Embedder, Guard, GuardSet, IndexConfig, StaticEmbedder, VectorIndex,
    Verifier,
};

use super::pairs::Pair;
use super::prefilter::{self, PrefilterReport};
use super::report::{GuardEffect, Quality, Report, SweepPoint};
use crate::offline::embed_disk::{DiskEmbeddings, EmbedCacheError, BATCH};
use crate::offline::progress::progress_bar;

/// How lookups are staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A fresh scope per pair, holding only its `a`.
    #[default]
    Pair,
    /// One scope holding every `a`.
    Index,
}

impl Mode {
    /// The mode's command-line name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Pair => "pair",
            Mode::Index => "index",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pair" => Ok(Mode::Pair),
            "index" => Ok(Mode::Index),
            _ => Err(format!("unknown mode {s:?} (pair or index)")),
        }
    }
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Cosine similarity a candidate needs before it is verified.
    pub threshold: f32,
    /// Guards the verification runs.
    pub guards: GuardSet,
    /// Longest question looked up or stored, in model tokens (`cache.semantic_max_tokens`).
    pub semantic_max_tokens: usize,
    /// Pair or index mode.
    pub mode: Mode,
    /// Nearest candidates verified per lookup (the first that passes is served).
    pub candidates: usize,
    /// Index tuning (index mode builds one large index).
    pub index: IndexConfig,
    /// Also compute the precision/recall curve across thresholds, with and without guards.
    pub sweep: bool,
    /// Also compute each guard's contribution (only that guard; all enabled but that guard).
    pub ablation: bool,
    /// Queries embedded afresh to measure embedding throughput (0 skips the measurement).
    pub throughput_sample: usize,
    /// Draw progress bars on stderr (only when it is a terminal).
    pub progress: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            threshold: frugal_cache::DEFAULT_SIMILARITY_THRESHOLD,
            guards: GuardSet::ALL,
            semantic_max_tokens: frugal_cache::DEFAULT_SEMANTIC_MAX_TOKENS,
            mode: Mode::Pair,
            candidates: 3,
            index: IndexConfig::default(),
            sweep: false,
            ablation: false,
            throughput_sample: 256,
            progress: true,
        }
    }
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Embedding failed, or its disk cache could not be used.
    #[error(transparent)]
    Embed(#[from] EmbedCacheError),
    /// The embedder returned a vector the index refused.
    #[error("embedding unusable for the index")]
    Index(#[from] frugal_cache::index::IndexError),
    /// There is nothing to evaluate.
    #[error("no pairs to evaluate")]
    NoPairs,
}

/// A candidate returned for one lookup.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// Stored prompt (index into the distinct `a` texts).
    entry: usize,
    similarity: f32,
    /// Guards (all of them, whatever is enabled) that reject this candidate.
    fired: GuardSet,
}

/// Everything the lookups found, from which any threshold and guard set can be scored.
#[derive(Debug)]
pub struct Evaluation {
    /// Per pair: its `a`'s entry, duplicate, hard.
    labels: Vec<(usize, bool, bool)>,
    /// Per pair: candidates in similarity order.
    candidates: Vec<Vec<Candidate>>,
    /// Per pair: lookup time with the configured threshold and guards.
    latencies: Vec<Duration>,
    mode: Mode,
    /// Per pair: ruled out by the prefilter (a miss whatever its candidates); empty without one.
    ruled_out: Vec<bool>,
    /// The prefilter's threshold and its static model's mean embedding time (µs).
    prefilter: Option<(f32, f64)>,
}

/// Vectors of the pairs' texts.
#[derive(Debug, Clone)]
pub struct EmbeddedPairs {
    /// One vector per pair's `a`.
    pub a: Vec<Vec<f32>>,
    /// One vector per pair's `b`.
    pub b: Vec<Vec<f32>>,
    /// Per pair: whether `a` is short enough to be stored in the semantic tier.
    pub a_fits: Vec<bool>,
    /// Per pair: whether `b` is short enough to be looked up.
    pub b_fits: Vec<bool>,
}

/// Embeds every pair's `a` and `b`, through the disk cache, with a progress bar, and notes
/// which texts are within `max_tokens` (as `cache.semantic_max_tokens`: a longer question is
/// neither stored in nor looked up in the semantic tier).
pub fn embed_pairs(
    pairs: &[Pair],
    embedder: &dyn Embedder,
    disk: &DiskEmbeddings,
    progress: bool,
    max_tokens: usize,
) -> Result<EmbeddedPairs, EvalError> {
    let texts: Vec<&str> = pairs
        .iter()
        .flat_map(|p| [p.a.as_str(), p.b.as_str()])
        .collect();
    let bar = progress_bar(progress, 0, "embedding");
    let (mut vectors, _) = disk.embed(embedder, &texts, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let mut a = Vec::with_capacity(pairs.len());
    let mut b = Vec::with_capacity(pairs.len());
    let mut it = vectors.drain(..);
    while let (Some(x), Some(y)) = (it.next(), it.next()) {
        a.push(x);
        b.push(y);
    }
    let a_fits = pairs
        .iter()
        .map(|p| embedder.fits_within(&p.a, max_tokens))
        .collect();
    let b_fits = pairs
        .iter()
        .map(|p| embedder.fits_within(&p.b, max_tokens))
        .collect();
    Ok(EmbeddedPairs {
        a,
        b,
        a_fits,
        b_fits,
    })
}

/// Texts per second the embedder sustains in batches of [`BATCH`], over up to `sample` of the
/// queries (embedded afresh, not from the disk cache); 0 when nothing was sampled.
pub fn embedding_throughput(
    pairs: &[Pair],
    embedder: &dyn Embedder,
    sample: usize,
) -> Result<f64, EvalError> {
    let texts: Vec<&str> = pairs.iter().take(sample).map(|p| p.b.as_str()).collect();
    if texts.is_empty() {
        return Ok(0.0);
    }
    let started = Instant::now();
    for batch in texts.chunks(BATCH) {
        embedder
            .embed(batch)
            .map_err(|e| EvalError::Embed(e.into()))?;
    }
    Ok(texts.len() as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Embeds (through `disk`), looks every pair up and scores the result: the whole of
/// `frugal eval cache`.
pub fn run(
    pairs: &[Pair],
    embedder: &dyn Embedder,
    disk: &DiskEmbeddings,
    prefilter: Option<(&StaticEmbedder, f32)>,
    options: &EvalOptions,
) -> Result<Report, EvalError> {
    if pairs.is_empty() {
        return Err(EvalError::NoPairs);
    }
    let embedded = embed_pairs(
        pairs,
        embedder,
        disk,
        options.progress,
        options.semantic_max_tokens,
    )?;
    let throughput = embedding_throughput(pairs, embedder, options.throughput_sample)?;
    let (static_model, threshold) = prefilter.unzip();
    let evaluation = Evaluation::new(pairs, &embedded, options)?.with_prefilter(
        pairs,
        static_model,
        threshold.unwrap_or(0.0),
        options.mode,
    )?;
    Ok(evaluation.report(options, throughput))
}

impl Evaluation {
    /// Runs every lookup of `options.mode`, timing each with `options`' threshold and guards,
    /// and records the candidates so that other thresholds and guard sets can be scored.
    pub fn new(
        pairs: &[Pair],
        embedded: &EmbeddedPairs,
        options: &EvalOptions,
    ) -> Result<Self, EvalError> {
        // Distinct stored prompts: in index mode two pairs with the same `a` share an entry.
        let mut entry_of: HashMap<&str, usize> = HashMap::new();
        let mut stored: Vec<usize> = Vec::new();
        let labels: Vec<(usize, bool, bool)> = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let next = entry_of.len();
                let entry = *entry_of.entry(p.a.as_str()).or_insert_with(|| {
                    stored.push(i);
                    next
                });
                (entry, p.duplicate, p.hard)
            })
            .collect();
        let stored_analysis: Vec<Analysis> =
            stored.iter().map(|i| Analysis::new(&pairs[*i].a)).collect();
        let configured = Verifier::new(options.guards);
        let all = Verifier::new(GuardSet::ALL);
        let k = options.candidates.max(1);
        let dim = embedded.a.first().map_or(0, Vec::len);

        let shared = match options.mode {
            Mode::Pair => None,
            Mode::Index => {
                let bar = progress_bar(options.progress, stored.len(), "indexing");
                let mut index = VectorIndex::new(dim, options.index);
                for (entry, i) in stored.iter().enumerate() {
                    if embedded.a_fits[*i] {
                        index.insert(entry as u64, &embedded.a[*i])?;
                    }
                    bar.inc(1);
                }
                bar.finish_and_clear();
                Some(index)
            }
        };

        let bar = progress_bar(options.progress, pairs.len(), "looking up");
        let mut candidates = Vec::with_capacity(pairs.len());
        let mut latencies = Vec::with_capacity(pairs.len());
        for (i, pair) in pairs.iter().enumerate() {
            // A question past the cap is no lookup; in pair mode neither is one whose stored
            // question was past it (it was never stored).
            let stored_fits = options.mode == Mode::Index || embedded.a_fits[i];
            if !(embedded.b_fits[i] && stored_fits) {
                candidates.push(Vec::new());
                bar.inc(1);
                continue;
            }
            let own;
            let index = match &shared {
                Some(index) => index,
                None => {
                    let mut fresh = VectorIndex::new(dim, options.index);
                    fresh.insert(labels[i].0 as u64, &embedded.a[i])?;
                    own = fresh;
                    &own
                }
            };
            // What a cache does per request, once the query is embedded.
            let started = Instant::now();
            let found = index.nearest(&embedded.b[i], k)?;
            let query = Analysis::new(&pair.b);
            let _served = found
                .iter()
                .take_while(|n| n.similarity >= options.threshold)
                .find(|n| {
                    configured
                        .verify(&query, &stored_analysis[n.id as usize])
                        .passed()
                });
            latencies.push(started.elapsed());

            candidates.push(
                found
                    .iter()
                    .map(|n| Candidate {
                        entry: n.id as usize,
                        similarity: n.similarity,
                        fired: all.verify(&query, &stored_analysis[n.id as usize]).fired(),
                    })
                    .collect(),
            );
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(Self {
            labels,
            candidates,
            latencies,
            mode: options.mode,
            ruled_out: Vec::new(),
            prefilter: None,
        })
    }

    /// The same evaluation with the semantic prefilter at `threshold` over `embedder`'s static
    /// vectors (none: unchanged): a ruled-out lookup is a miss.
    pub fn with_prefilter(
        mut self,
        pairs: &[Pair],
        embedder: Option<&StaticEmbedder>,
        threshold: f32,
        mode: Mode,
    ) -> Result<Self, EvalError> {
        if let Some(embedder) = embedder {
            let (ruled_out, mean_us) = prefilter::ruled_out(pairs, embedder, mode, threshold)?;
            self.ruled_out = ruled_out;
            self.prefilter = Some((threshold, mean_us));
        }
        Ok(self)
    }

    /// What the prefilter did at `threshold` with `guards`, when there is one.
    fn prefilter_report(&self, threshold: f32, guards: GuardSet) -> Option<PrefilterReport> {
        let (prefilter_threshold, static_embed_mean_us) = self.prefilter?;
        let ruled_out: Vec<usize> = (0..self.labels.len())
            .filter(|&i| self.ruled_out.get(i) == Some(&true))
            .collect();
        let candidates_lost = ruled_out
            .iter()
            .filter(|&&i| {
                self.candidates[i]
                    .first()
                    .is_some_and(|c| c.similarity >= threshold)
            })
            .count();
        let hits_lost = ruled_out
            .iter()
            .filter(|&&i| self.served_unfiltered(i, threshold, guards).is_some())
            .count();
        Some(PrefilterReport {
            threshold: prefilter_threshold,
            ruled_out: ruled_out.len(),
            ruled_out_share: ruled_out.len() as f64 / self.labels.len().max(1) as f64,
            candidates_lost,
            hits_lost,
            static_embed_mean_us,
        })
    }

    /// The hit served for pair `i` at `threshold` with `guards`, if any.
    fn served(&self, i: usize, threshold: f32, guards: GuardSet) -> Option<&Candidate> {
        if self.ruled_out.get(i) == Some(&true) {
            return None;
        }
        self.served_unfiltered(i, threshold, guards)
    }

    /// [`Evaluation::served`] as if there were no prefilter.
    fn served_unfiltered(&self, i: usize, threshold: f32, guards: GuardSet) -> Option<&Candidate> {
        let mut above = self.candidates[i]
            .iter()
            .take_while(|c| c.similarity >= threshold);
        if guards.is_empty() {
            // Plain cosine serves the nearest, whatever it is.
            return above.next();
        }
        above.find(|c| c.fired.iter().all(|g| !guards.contains(g)))
    }

    /// Decision quality at `threshold` with `guards`.
    pub fn quality(&self, threshold: f32, guards: GuardSet) -> Quality {
        let (mut hits, mut correct, mut false_hits, mut hard_hits) = (0, 0, 0, 0);
        let (mut duplicates, mut negatives, mut hard) = (0, 0, 0);
        for (i, &(entry, duplicate, is_hard)) in self.labels.iter().enumerate() {
            duplicates += usize::from(duplicate);
            negatives += usize::from(!duplicate);
            hard += usize::from(is_hard);
            let Some(hit) = self.served(i, threshold, guards) else {
                continue;
            };
            hits += 1;
            if duplicate && hit.entry == entry {
                correct += 1;
            }
            if !duplicate {
                false_hits += 1;
                hard_hits += usize::from(is_hard);
            }
        }
        let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        Quality {
            hits,
            precision: if hits == 0 { 1.0 } else { ratio(correct, hits) },
            recall: ratio(correct, duplicates),
            false_hit_rate: ratio(false_hits, negatives),
            hard_negative_false_hit_rate: ratio(hard_hits, hard),
        }
    }

    /// Candidates at or above `threshold` rejected by each guard of `guards`.
    fn rejections(
        &self,
        threshold: f32,
        guards: GuardSet,
    ) -> BTreeMap<&'static str, (usize, usize)> {
        let mut out: BTreeMap<&'static str, (usize, usize)> =
            guards.iter().map(|g| (g.as_str(), (0, 0))).collect();
        for (i, cands) in self.candidates.iter().enumerate() {
            let duplicate = self.labels[i].1;
            // Only candidates that were actually verified: up to and including the served one.
            for c in cands.iter().take_while(|c| c.similarity >= threshold) {
                for g in c.fired.iter().filter(|g| guards.contains(*g)) {
                    if let Some(counts) = out.get_mut(g.as_str()) {
                        if duplicate {
                            counts.0 += 1;
                        } else {
                            counts.1 += 1;
                        }
                    }
                }
                let served = c.fired.iter().all(|g| !guards.contains(g));
                if served {
                    break;
                }
            }
        }
        out
    }

    /// The precision/recall curve over `thresholds`, plain and with `guards`.
    pub fn sweep(&self, thresholds: &[f32], guards: GuardSet) -> Vec<SweepPoint> {
        thresholds
            .iter()
            .map(|&t| SweepPoint {
                threshold: t,
                plain: self.quality(t, GuardSet::NONE),
                guarded: self.quality(t, guards),
            })
            .collect()
    }

    /// Each enabled guard's contribution at `threshold`.
    pub fn ablation(&self, threshold: f32, guards: GuardSet) -> Vec<GuardEffect> {
        let rejections = self.rejections(threshold, GuardSet::ALL);
        guards
            .iter()
            .map(|g: Guard| {
                let (dup, non) = rejections.get(g.as_str()).copied().unwrap_or_default();
                GuardEffect {
                    guard: g.as_str(),
                    rejects_duplicates: dup,
                    rejects_non_duplicates: non,
                    alone: self.quality(threshold, GuardSet::NONE.with(g)),
                    without: self.quality(threshold, guards.without(g)),
                }
            })
            .collect()
    }

    /// The report for `options`, with the embedding throughput measured elsewhere.
    pub fn report(&self, options: &EvalOptions, embedding_throughput_per_s: f64) -> Report {
        let q = self.quality(options.threshold, options.guards);
        let mut ms: Vec<f64> = self
            .latencies
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        Report {
            pairs: self.labels.len(),
            threshold: options.threshold,
            hits: q.hits,
            precision: q.precision,
            recall: q.recall,
            false_hit_rate: q.false_hit_rate,
            hard_negative_false_hit_rate: q.hard_negative_false_hit_rate,
            guard_rejections: self
                .rejections(options.threshold, options.guards)
                .into_iter()
                .map(|(g, (d, n))| (g, d + n))
                .collect(),
            lookup_latency_p50_ms: percentile(&ms, 0.50),
            lookup_latency_p99_ms: percentile(&ms, 0.99),
            embedding_throughput_per_s,
            sweep: options
                .sweep
                .then(|| self.sweep(&sweep_thresholds(), options.guards)),
            ablation: options
                .ablation
                .then(|| self.ablation(options.threshold, options.guards)),
            prefilter: self.prefilter_report(options.threshold, options.guards),
        }
    }

    /// The entry served for pair `i` at `threshold` with `guards`, and its similarity.
    pub fn hit(&self, i: usize, threshold: f32, guards: GuardSet) -> Option<(usize, f32)> {
        self.served(i, threshold, guards)
            .map(|c| (c.entry, c.similarity))
    }

    /// Pair `i`'s nearest candidate: its similarity and every guard that rejects it.
    pub fn top(&self, i: usize) -> Option<(f32, GuardSet)> {
        self.candidates
            .get(i)?
            .first()
            .map(|c| (c.similarity, c.fired))
    }

    /// The lookup mode this evaluation ran.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// Up to `n` false hits and `n` rejected duplicates (with the guards that fired) at the
/// options' threshold and guards, as text: what the verifier gets wrong, for reading.
pub fn misjudged(
    pairs: &[Pair],
    evaluation: &Evaluation,
    options: &EvalOptions,
    n: usize,
) -> String {
    let mut out = String::new();
    let (mut false_hits, mut rejected) = (0, 0);
    for (i, pair) in pairs.iter().enumerate() {
        let hit = evaluation.hit(i, options.threshold, options.guards);
        if let Some((_, similarity)) = hit.filter(|_| !pair.duplicate && false_hits < n) {
            false_hits += 1;
            let _ = writeln!(
                out,
                "FALSE HIT {similarity:.3}\n  a: {}\n  b: {}",
                pair.a, pair.b
            );
        }
        if let Some((similarity, fired)) = evaluation.top(i) {
            if pair.duplicate && hit.is_none() && similarity >= options.threshold && rejected < n {
                rejected += 1;
                let _ = writeln!(
                    out,
                    "REJECTED DUPLICATE {similarity:.3} by {fired}\n  a: {}\n  b: {}",
                    pair.a, pair.b
                );
            }
        }
    }
    out
}

/// Thresholds of `--sweep`: 0.70 to 0.99 by 0.01, then 0.995.
pub fn sweep_thresholds() -> Vec<f32> {
    (70..=99)
        .map(|t| t as f32 / 100.0)
        .chain(std::iter::once(0.995))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str, duplicate: bool, hard: bool) -> Pair {
        Pair {
            a: a.to_owned(),
            b: b.to_owned(),
            duplicate,
            hard,
        }
    }

    /// Four pairs with hand-made 3-d vectors: a near-identical duplicate, a near-identical
    /// non-duplicate that a guard catches, a far duplicate, and a far non-duplicate.
    fn fixture() -> (Vec<Pair>, EmbeddedPairs) {
        let pairs = vec![
            pair("How do I learn Rust?", "How can I learn Rust?", true, false),
            pair("What is 2+2?", "What is 2+3?", false, true),
            pair(
                "Tips for sleeping well",
                "How do I sleep better?",
                true,
                false,
            ),
            pair("Best pizza in town", "Capital of France", false, false),
        ];
        let e = |x: f32, y: f32, z: f32| {
            let n = (x * x + y * y + z * z).sqrt();
            vec![x / n, y / n, z / n]
        };
        let embedded = EmbeddedPairs {
            a: vec![
                e(1.0, 0.0, 0.0),
                e(0.0, 1.0, 0.0),
                e(0.0, 0.0, 1.0),
                e(1.0, 1.0, 0.0),
            ],
            b: vec![
                e(1.0, 0.05, 0.0),
                e(0.0, 1.0, 0.05),
                e(0.0, 0.6, 1.0),
                e(-1.0, 1.0, 0.3),
            ],
            a_fits: vec![true; 4],
            b_fits: vec![true; 4],
        };
        (pairs, embedded)
    }

    fn options(mode: Mode) -> EvalOptions {
        EvalOptions {
            threshold: 0.95,
            mode,
            progress: false,
            ..EvalOptions::default()
        }
    }

    #[test]
    fn guards_turn_a_false_hit_into_a_miss() {
        let (pairs, embedded) = fixture();
        for mode in [Mode::Pair, Mode::Index] {
            let eval = Evaluation::new(&pairs, &embedded, &options(mode)).unwrap();
            let plain = eval.quality(0.95, GuardSet::NONE);
            assert_eq!(plain.hits, 2, "{mode:?}");
            assert_eq!(plain.false_hit_rate, 0.5);
            assert_eq!(plain.hard_negative_false_hit_rate, 1.0);
            let guarded = eval.quality(0.95, GuardSet::ALL);
            assert_eq!(guarded.hits, 1);
            assert_eq!(guarded.precision, 1.0);
            assert_eq!(guarded.recall, 0.5);
            assert_eq!(guarded.false_hit_rate, 0.0);
        }
    }

    #[test]
    fn report_counts_guard_rejections_and_keeps_its_json_keys() {
        let (pairs, embedded) = fixture();
        let opts = options(Mode::Pair);
        let report = Evaluation::new(&pairs, &embedded, &opts)
            .unwrap()
            .report(&opts, 123.0);
        assert_eq!(report.guard_rejections["numbers"], 1);
        assert_eq!(report.guard_rejections["order"], 0);
        let json = serde_json::to_value(&report).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "pairs",
                "threshold",
                "hits",
                "precision",
                "recall",
                "false_hit_rate",
                "hard_negative_false_hit_rate",
                "guard_rejections",
                "lookup_latency_p50_ms",
                "lookup_latency_p99_ms",
                "embedding_throughput_per_s"
            ]
        );
        assert!(report
            .to_table(Mode::Pair, GuardSet::ALL)
            .contains("false_hit_rate"));
    }

    #[test]
    fn index_mode_hit_on_the_wrong_entry_is_not_correct() {
        // b of pair 0 is nearest to a of pair 1.
        let pairs = vec![
            pair("alpha question", "alpha query", true, false),
            pair("beta question", "beta query", true, false),
        ];
        let embedded = EmbeddedPairs {
            a: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            b: vec![vec![0.1, 1.0], vec![0.0, 1.0]],
            a_fits: vec![true; 2],
            b_fits: vec![true; 2],
        };
        let eval = Evaluation::new(&pairs, &embedded, &options(Mode::Index)).unwrap();
        let q = eval.quality(0.9, GuardSet::NONE);
        assert_eq!((q.hits, q.recall, q.precision), (2, 0.5, 0.5));
    }

    #[test]
    fn a_question_past_the_token_cap_is_never_a_hit() {
        let (pairs, mut embedded) = fixture();
        let all = Evaluation::new(&pairs, &embedded, &options(Mode::Pair)).unwrap();
        embedded.b_fits[0] = false;
        embedded.a_fits[1] = false;
        let capped = Evaluation::new(&pairs, &embedded, &options(Mode::Pair)).unwrap();
        let (before, after) = (
            all.quality(0.9, GuardSet::NONE),
            capped.quality(0.9, GuardSet::NONE),
        );
        assert_eq!(after.hits, before.hits - 2, "{before:?} {after:?}");
    }

    #[test]
    fn sweep_is_monotone_in_the_threshold_for_plain_cosine() {
        let (pairs, embedded) = fixture();
        let eval = Evaluation::new(&pairs, &embedded, &options(Mode::Pair)).unwrap();
        let points = eval.sweep(&sweep_thresholds(), GuardSet::ALL);
        for w in points.windows(2) {
            assert!(w[0].plain.hits >= w[1].plain.hits);
            assert!(w[0].guarded.hits <= w[0].plain.hits);
        }
    }
}
