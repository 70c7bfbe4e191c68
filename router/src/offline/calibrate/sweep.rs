//! The three sweeps of `frugal calibrate`, each over labelled data and each with the policy's
//! own settings (classifier, guards, trim strategy) so only the swept value changes:
//!
//! * routing: the start-strong threshold, over every distinct classifier score (the
//!   cost/quality curve of `frugal eval router`, cascade included where the rows carry the
//!   weak model's answer);
//! * the semantic cache: the similarity threshold, 0.70 to 0.995 (as `frugal eval cache
//!   --sweep`), with the policy's guards;
//! * trimming: the context token cap, over a fixed grid.
//!
//! Each returns its frontier and the cheapest point that meets the targets, if any does.

use std::path::Path;

use anyhow::Context as _;
use frugal_cache::{GuardSet, MiniLmEmbedder, MiniLmOptions, ModelPaths};
use frugal_classifier::curve::{relative_cost, Curve};
use serde::Serialize;

use super::super::eval_cache::evaluation::{self, EvalOptions, Evaluation};
use super::super::eval_cache::pairs::read_pairs;
use super::super::eval_router::{score_rows, training_hashes, Scoring};
use super::super::{cascade_verdicts, EmbedArgs, Prepared};
use crate::policy::Policy;

/// One point of the routing frontier.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RoutePoint {
    /// `route.start_strong_above` that gives it: the middle of `same_from..same_below`.
    pub start_strong_above: f32,
    /// Every threshold from this one (inclusive)…
    pub same_from: f32,
    /// …to this one (exclusive) routes these rows the same way.
    pub same_below: f32,
    /// Share of prompts reaching the strong model (started there or escalated).
    pub strong_share: f64,
    /// Quality as a share of always-strong's.
    pub quality: f64,
    /// Cost as a share of always-strong's (wasted cheap calls included).
    pub cost: f64,
}

/// One point of the cache frontier.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct CachePoint {
    /// `cache.similarity_threshold`.
    pub similarity_threshold: f32,
    /// Duplicates served from the cache / duplicates.
    pub recall: f64,
    /// Different questions served another's answer / different questions.
    pub false_hit_rate: f64,
}

/// One point of the trimming frontier.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TrimPoint {
    /// `trim.max_context_tokens`.
    pub max_context_tokens: usize,
    /// Share of context tokens removed.
    pub token_reduction: f64,
    /// Gold evidence sentences kept / gold sentences.
    pub evidence_kept: f64,
}

/// A frontier and its pick.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep<P> {
    /// Every point, in sweep order.
    pub points: Vec<P>,
    /// The index of the point that meets the targets most cheaply.
    pub pick: Option<usize>,
    /// How the points were obtained (data, method).
    pub note: String,
}

impl<P: Copy> Sweep<P> {
    /// The picked point.
    pub fn picked(&self) -> Option<P> {
        self.pick.and_then(|i| self.points.get(i).copied())
    }
}

/// Cost of one call to a model alias, per million input plus output tokens (only ratios
/// matter: every prompt is assumed to read and write as much on either model).
fn per_call(policy: &Policy, alias: &str) -> Option<f64> {
    policy
        .models
        .get(alias)
        .map(|m| m.price.input_per_mtok + m.price.output_per_mtok)
}

/// Sweeps the start-strong threshold on labelled routing rows; picks the cheapest point
/// keeping `target_quality` of always-strong's quality.
pub fn route(
    policy: &Policy,
    data: &Path,
    target_quality: f64,
    embed: &EmbedArgs,
) -> anyhow::Result<Sweep<RoutePoint>> {
    if policy.route.mode == crate::policy::RouteMode::Off || policy.route.ladder.len() < 2 {
        anyhow::bail!("the policy routes nothing (no `route:` ladder of two or more models)");
    }
    let (Some(cheap), Some(strong)) = (
        policy
            .route
            .ladder
            .first()
            .and_then(|a| per_call(policy, a)),
        policy.route.ladder.last().and_then(|a| per_call(policy, a)),
    ) else {
        anyhow::bail!("the policy has no routing ladder to calibrate");
    };
    let set = frugal_classifier::data::load(data)?;
    anyhow::ensure!(!set.rows.is_empty(), "{} has no rows", data.display());
    let model = (*policy.route.classifier).clone();
    let trained_on_this = training_hashes(&model).contains(&set.content_sha256);
    let prepared = Prepared::new(set.rows, embed)?;
    let verdicts = cascade_verdicts(&prepared.rows);
    let (scores, method) = score_rows(
        &prepared,
        &verdicts,
        Some(model),
        trained_on_this,
        Scoring {
            folds: 5,
            threads: 2,
            model_path: None,
            data_path: data,
        },
    )?;
    let outcomes: Vec<_> = prepared.rows.iter().map(|r| r.outcome).collect();
    let escalate: Vec<bool> = verdicts
        .iter()
        .map(|v| v.as_ref().is_some_and(|c| !c.is_empty()))
        .collect();
    let curve = Curve::sweep(&scores, &outcomes, &escalate);
    let points: Vec<RoutePoint> = curve
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| RoutePoint {
            start_strong_above: policy_threshold(&curve, i),
            same_from: curve.points.get(i + 1).map_or(0.0, |next| next.threshold),
            same_below: if p.threshold.is_infinite() {
                f32::MAX
            } else {
                p.threshold
            },
            strong_share: p.strong_share,
            quality: if curve.strong > 0.0 {
                p.quality / curve.strong
            } else {
                0.0
            },
            cost: relative_cost(p, cheap, strong),
        })
        .collect();
    let pick = cheapest(&points, |p| p.quality >= target_quality - 1e-12, |p| p.cost);
    Ok(Sweep {
        points,
        pick,
        note: format!(
            "{} rows of {}, scored by {method}",
            prepared.rows.len(),
            data.display()
        ),
    })
}

/// The `start_strong_above` whose prompts "scoring above it" are exactly the point's "scoring
/// at or above its threshold": halfway down to the next lower score (1 for the point that
/// starts nothing strong, 0 past the lowest score).
fn policy_threshold(curve: &Curve, index: usize) -> f32 {
    let here = curve.points[index].threshold;
    if here.is_infinite() {
        return 1.0;
    }
    match curve.points.get(index + 1) {
        Some(next) => (here + next.threshold) / 2.0,
        None => (here / 2.0).max(0.0),
    }
}

/// The index of the lowest-cost point among those that `meets`.
fn cheapest<P>(
    points: &[P],
    meets: impl Fn(&P) -> bool,
    cost: impl Fn(&P) -> f64,
) -> Option<usize> {
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| meets(p))
        .min_by(|(_, a), (_, b)| cost(a).total_cmp(&cost(b)))
        .map(|(i, _)| i)
}

/// Sweeps the similarity threshold on labelled pairs with the policy's guards; picks the
/// threshold with the most right hits whose false-hit rate stays within `max_false_hit_rate`.
pub fn cache(
    policy: &Policy,
    pairs_path: &Path,
    max_false_hit_rate: f64,
    embed: &EmbedArgs,
) -> anyhow::Result<Sweep<CachePoint>> {
    if policy.cache.mode == crate::policy::CacheMode::Off {
        anyhow::bail!("the policy's cache is off (no `cache:` section, or `mode: off`)");
    }
    let Some(semantic) = &policy.cache.semantic else {
        anyhow::bail!("the policy's cache has no semantic tier to calibrate");
    };
    let guards: GuardSet = semantic.verifier.guards();
    let pairs = read_pairs(pairs_path)?;
    let paths = ModelPaths::from_env_or(&embed.model_dir);
    let embedder = MiniLmEmbedder::load(&paths, &MiniLmOptions::default())
        .context("cannot load the embedding model")?;
    let options = EvalOptions {
        threshold: semantic.threshold,
        guards,
        semantic_max_tokens: semantic.max_tokens,
        throughput_sample: 0,
        ..EvalOptions::default()
    };
    let embedded = evaluation::embed_pairs(
        &pairs,
        &embedder,
        &embed.disk_embeddings(),
        true,
        semantic.max_tokens,
    )?;
    let scored = Evaluation::new(&pairs, &embedded, &options)?;
    let points: Vec<CachePoint> = scored
        .sweep(&evaluation::sweep_thresholds(), guards)
        .iter()
        .map(|p| CachePoint {
            similarity_threshold: p.threshold,
            recall: p.guarded.recall,
            false_hit_rate: p.guarded.false_hit_rate,
        })
        .collect();
    // Fewer misses is cheaper: the most recall within the false-hit budget.
    let pick = cheapest(
        &points,
        |p| p.false_hit_rate <= max_false_hit_rate + 1e-12,
        |p| -p.recall,
    );
    Ok(Sweep {
        points,
        pick,
        note: format!(
            "{} pairs of {}, guards: {}",
            pairs.len(),
            pairs_path.display(),
            guards
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Token caps the trim sweep tries.
pub const TRIM_CAPS: [usize; 12] = [
    200, 300, 400, 500, 600, 800, 1000, 1200, 1600, 2000, 3000, 4000,
];

/// Sweeps the context cap on claims with gold evidence with the policy's strategy; picks the
/// smallest cap keeping `target_quality` of the gold evidence.
pub fn trim(
    policy: &Policy,
    data: &Path,
    target_quality: f64,
    embed: &EmbedArgs,
) -> anyhow::Result<Sweep<TrimPoint>> {
    let trim = &policy.trim;
    if trim.mode == crate::policy::TrimMode::Off {
        anyhow::bail!("the policy's trimming is off (no `trim:` section, or `mode: off`)");
    }
    let figures = super::super::eval_trim::sweep_caps(
        data,
        &TRIM_CAPS,
        trim.tokenizer,
        trim.strategy,
        embed,
    )?;
    let points: Vec<TrimPoint> = TRIM_CAPS
        .iter()
        .zip(&figures)
        .map(|(&cap, f)| TrimPoint {
            max_context_tokens: cap,
            token_reduction: f.token_reduction,
            evidence_kept: f.gold_recall,
        })
        .collect();
    let pick = cheapest(
        &points,
        |p| p.evidence_kept >= target_quality - 1e-12,
        |p| p.max_context_tokens as f64,
    );
    Ok(Sweep {
        points,
        pick,
        note: format!(
            "{} claims of {}, strategy {}",
            figures.first().map_or(0, |f| f.queries),
            data.display(),
            trim.strategy.as_str()
        ),
    })
}

/// One point of the cache frontier from a shadow-mode decision log.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ShadowPoint {
    /// `cache.similarity_threshold`.
    pub similarity_threshold: f32,
    /// Requests the semantic tier would have served, as a share of the logged requests.
    pub would_serve: f64,
    /// Would-be hits compared with the fresh answer.
    pub compared: usize,
    /// Of those, the share whose fresh answer differed from the cached one.
    pub disagreement: f64,
}

/// Fewest compared would-be hits a shadow point needs to be picked (fewer is noise).
pub const MIN_COMPARED: usize = 20;

/// Sweeps the similarity threshold over a decision log written in cache shadow mode: each
/// semantic would-be hit carries its similarity and whether the answer it would have served
/// agreed with the fresh one. Only thresholds at or above the lowest logged similarity can be
/// judged (below it the sidecar logged no would-be hits): run shadow mode with a permissive
/// threshold to explore. Picks the lowest threshold whose disagreement stays within
/// `max_disagreement` on at least [`MIN_COMPARED`] comparisons.
pub fn shadow_cache(log: &Path, max_disagreement: f64) -> anyhow::Result<Sweep<ShadowPoint>> {
    let records: Vec<serde_json::Value> = super::super::read_jsonl(log)?;
    anyhow::ensure!(!records.is_empty(), "{} has no records", log.display());
    let hits: Vec<(f32, bool)> = records
        .iter()
        .filter(|r| r["cache"]["outcome"] == "shadow_hit")
        .filter_map(|r| {
            let similarity = r["cache"]["similarity"].as_f64()? as f32;
            let differ = match r["cache"]["shadow"].as_str()? {
                "agree" => false,
                "differ" => true,
                _ => return None,
            };
            Some((similarity, differ))
        })
        .collect();
    anyhow::ensure!(
        !hits.is_empty(),
        "{} has no compared semantic would-be hits: write it with `cache.mode: shadow` and a \
         `decision_log`",
        log.display()
    );
    let lowest = hits.iter().map(|h| h.0).fold(f32::INFINITY, f32::min);
    // Thresholds at or below the lowest logged similarity all serve every would-be hit: the
    // highest of them stands for them all.
    let grid = evaluation::sweep_thresholds();
    let floor = grid
        .iter()
        .copied()
        .filter(|t| *t <= lowest)
        .fold(0.0, f32::max);
    let points: Vec<ShadowPoint> = grid
        .into_iter()
        .filter(|t| *t >= floor)
        .map(|t| {
            let served: Vec<&(f32, bool)> = hits.iter().filter(|h| h.0 >= t).collect();
            let differ = served.iter().filter(|h| h.1).count();
            ShadowPoint {
                similarity_threshold: t,
                would_serve: served.len() as f64 / records.len() as f64,
                compared: served.len(),
                disagreement: if served.is_empty() {
                    0.0
                } else {
                    differ as f64 / served.len() as f64
                },
            }
        })
        .collect();
    let pick = cheapest(
        &points,
        |p| p.compared >= MIN_COMPARED && p.disagreement <= max_disagreement + 1e-12,
        |p| -p.would_serve,
    );
    Ok(Sweep {
        points,
        pick,
        note: format!(
            "{} records of {}, {} compared would-be hits from similarity {lowest:.3}",
            records.len(),
            log.display(),
            hits.len()
        ),
    })
}
