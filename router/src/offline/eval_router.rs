//! `frugal eval router`: what cheap-first routing would cost and keep on labelled rows, per
//! benchmark: RouteLLM's APGR and CPT for prompt-only routing, the strong-call share needed
//! for 95% of the strong model's quality (prompt-only, and for the cascade where the rows carry
//! the weak model's answer), and the cost cut at that point.
//!
//! A model is never scored on the data it was trained on: when `--model` records the data
//! file's hash (or no model is given), the figures come from k-fold cross-validation instead —
//! train on k−1 folds with the model's training settings, score the held-out fold.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use frugal_cache::percentile;
use frugal_classifier::data;
use frugal_classifier::model::ComplexityModel;
use frugal_classifier::train::{self, TrainConfig};

use super::{all_figures, cascade_verdicts, print_table, EmbedArgs, Prepared, PriceArgs};

/// Arguments of `frugal eval router`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalRouterArgs {
    /// Labelled JSON Lines file (plain or gzip), as for `frugal train`.
    #[arg(long)]
    pub data: PathBuf,
    /// Trained weights to score with. If they were trained on --data, or none are given, the
    /// figures come from k-fold cross-validation with the same training settings.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// One JSON object per benchmark instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Folds for cross-validated evaluation.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Threads for cross-validation folds.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Also write each row's score (`id<TAB>benchmark<TAB>score`) to this file, for plots or
    /// further analysis.
    #[arg(long)]
    pub scores_out: Option<PathBuf>,
    /// Where the embedding model and the embedding cache live.
    #[command(flatten)]
    pub embed: EmbedArgs,
    /// Cheap and strong prices for the cost figures.
    #[command(flatten)]
    pub prices: PriceArgs,
}

/// Runs `frugal eval router`.
pub fn run(args: &EvalRouterArgs) -> anyhow::Result<()> {
    let set = data::load(&args.data)?;
    anyhow::ensure!(!set.rows.is_empty(), "{} has no rows", args.data.display());
    let model = args
        .model
        .as_ref()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            ComplexityModel::from_json(&text)
                .with_context(|| format!("bad model {}", path.display()))
        })
        .transpose()?;

    let policy_threshold = model.as_ref().map(|m| m.thresholds.strong_above);
    let trained_on_this = model
        .as_ref()
        .is_some_and(|m| training_hashes(m).contains(&set.content_sha256));
    let prepared = Prepared::new(set.rows, &args.embed)?;
    let verdicts = cascade_verdicts(&prepared.rows);

    let started = Instant::now();
    let (scores, method) = score_rows(
        &prepared,
        &verdicts,
        model,
        trained_on_this,
        Scoring {
            folds: args.folds,
            threads: args.threads,
            model_path: args.model.as_deref(),
            data_path: &args.data,
        },
    )?;
    eprintln!(
        "scored {} rows by {method} in {:.1} s",
        prepared.rows.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some((p50, p99)) = classifier_latency(&prepared) {
        eprintln!(
            "classifier latency beyond the shared embedding (features + built-in model, per \
             prompt): p50 {:.1} µs, p99 {:.1} µs",
            p50 * 1e6,
            p99 * 1e6
        );
    }

    if let Some(path) = &args.scores_out {
        let lines: String = prepared
            .rows
            .iter()
            .zip(&scores)
            .map(|(r, s)| format!("{}\t{}\t{s}\n", r.id, r.benchmark))
            .collect();
        std::fs::write(path, lines).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let figures = all_figures(
        &prepared,
        &scores,
        &verdicts,
        &args.prices,
        policy_threshold,
    );
    if args.json {
        for f in &figures {
            println!("{}", serde_json::to_string(f)?);
        }
    } else {
        println!("{} — {method}", args.data.display());
        print_table(&figures);
        if let Some(t) = policy_threshold {
            println!("\nat the model's strong_above {t:.4} (what the default policy runs):");
            for f in &figures {
                println!(
                    "  {:<10} strong share {:>6}  quality {:>6} of strong  cost cut {:>6}",
                    f.benchmark,
                    super::pct(f.strong_share_at_threshold),
                    super::pct(f.quality_vs_strong_at_threshold),
                    super::pct(f.cost_cut_at_threshold)
                );
            }
        }
        for f in figures.iter().filter(|f| !f.checks.is_empty()) {
            println!(
                "\ncascade checks on {} weak answers (fired / weak wrong / only strong right):",
                f.benchmark
            );
            for (name, c) in &f.checks {
                println!(
                    "  {name:<18} {:>5} {:>5} {:>5}",
                    c.fired, c.weak_wrong, c.only_strong_right
                );
            }
        }
        println!(
            "\nshares are of prompts reaching the strong model; 95 = 95% of the strong model's \
             quality; cost cut vs. all-strong at {}/{} USD per call-token pair, wasted cheap \
             calls included",
            args.prices.per_call().0,
            args.prices.per_call().1
        );
    }
    Ok(())
}

/// How rows are scored when the model cannot score them itself.
#[derive(Debug, Clone, Copy)]
pub struct Scoring<'a> {
    /// Folds for cross-validation.
    pub folds: usize,
    /// Threads for cross-validation.
    pub threads: usize,
    /// The model's file, for the note about cross-validation.
    pub model_path: Option<&'a std::path::Path>,
    /// The data's file, for the same note.
    pub data_path: &'a std::path::Path,
}

/// Each row's complexity score and how it was obtained: from `model` when it was not trained
/// on these rows, else (or without a model) by k-fold cross-validation with the model's
/// training settings, so no row is scored by a model that saw it.
pub fn score_rows(
    prepared: &Prepared,
    verdicts: &[Option<Vec<frugal_classifier::answer_checks::Concern>>],
    model: Option<ComplexityModel>,
    trained_on_this: bool,
    scoring: Scoring<'_>,
) -> anyhow::Result<(Vec<f32>, String)> {
    match model {
        Some(model) if !trained_on_this => {
            if let Some(dim) = model.embedding_dim() {
                anyhow::ensure!(
                    prepared.embeddings.first().is_none_or(|e| e.len() == dim),
                    "the model expects {dim}-dimensional embeddings"
                );
            }
            let scores = prepared
                .features
                .iter()
                .zip(&prepared.embeddings)
                .map(|(f, e)| model.score(f, Some(e)).map(|s| s.score))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((scores, "held-out model".to_owned()))
        }
        model => {
            let mut config = model
                .as_ref()
                .and_then(|m| m.training.get("config"))
                .and_then(|c| serde_json::from_value::<TrainConfig>(c.clone()).ok())
                .unwrap_or_default();
            config.folds = scoring.folds;
            if trained_on_this {
                eprintln!(
                    "NOTE: {} was trained on {} — its scores there would be optimistic, so it is \
                     not used; the figures below are {}-fold cross-validated (trained on {} folds \
                     with the model's settings, scored on the held-out one).",
                    scoring
                        .model_path
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "the model".to_owned()),
                    scoring.data_path.display(),
                    config.folds,
                    config.folds - 1
                );
            }
            let examples = prepared.examples(config.cascade_labels.then_some(verdicts));
            let scores = train::cross_validate(&examples, &config, scoring.threads);
            Ok((scores, format!("{}-fold cross-validation", config.folds)))
        }
    }
}

/// The content hashes of the files a model was trained on, as its summary records them.
pub fn training_hashes(model: &ComplexityModel) -> Vec<String> {
    model
        .training
        .get("data")
        .and_then(|d| d.as_array())
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f.get("sha256").and_then(|h| h.as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What the server's classify step costs per prompt once the embedding exists: text features
/// plus the built-in model's score, timed over every row. (p50, p99) in seconds.
fn classifier_latency(prepared: &Prepared) -> Option<(f64, f64)> {
    let model = ComplexityModel::from_json(crate::policy::route::BUILTIN_CLASSIFIER).ok()?;
    let thresholds = model.thresholds;
    let mut times: Vec<f64> = prepared
        .rows
        .iter()
        .zip(&prepared.embeddings)
        .map(|(row, embedding)| {
            let started = Instant::now();
            let features = frugal_classifier::features::extract(&row.prompt);
            let verdict = model.predict_with(&features, Some(embedding), thresholds);
            std::hint::black_box(verdict.ok());
            started.elapsed().as_secs_f64()
        })
        .collect();
    if times.is_empty() {
        return None;
    }
    times.sort_by(f64::total_cmp);
    Some((percentile(&times, 0.5), percentile(&times, 0.99)))
}
