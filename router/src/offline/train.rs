//! `frugal train`: fits the complexity classifier on labelled routing rows and writes its
//! weights (JSON) for the policy to load, after reporting k-fold cross-validated figures.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use frugal_cache::ModelPaths;
use frugal_classifier::data::{self, LabelledRow};
use frugal_classifier::model::Thresholds;
use frugal_classifier::train::{self, LabelScheme, TrainConfig};
use serde_json::json;

use super::{all_figures, cascade_verdicts, pct, print_table, EmbedArgs, Prepared, PriceArgs};

/// Arguments of `frugal train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Labelled JSON Lines files (plain or gzip): rows {prompt, weak_correct, strong_correct,
    /// benchmark} or MT-Bench-style {prompt, weak_score, strong_score, benchmark}.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Where to write the weights.
    #[arg(long, default_value = "policies/models/complexity.json")]
    pub out: PathBuf,
    /// Files whose prompts must not be trained on (e.g. an evaluation file): matching rows of
    /// --data are dropped.
    #[arg(long)]
    pub exclude: Vec<PathBuf>,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed of the fold assignment.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Embedding L2 penalties to choose from by cross-validation (mean APGR over benchmarks
    /// with at least 200 rows).
    #[arg(long, value_delimiter = ',', default_values_t = [0.1, 0.3, 1.0, 3.0])]
    pub l2_grid: Vec<f64>,
    /// Topics: k-means clusters of the embeddings, each with its own learned offset (0: none).
    #[arg(long, default_value_t = 0)]
    pub topics: usize,
    /// Topics from the rows' subjects (MMLU) and categories (MT-Bench) instead of k-means:
    /// one centroid per group, each with its own learned offset.
    #[arg(long, conflicts_with = "topics")]
    pub group_topics: bool,
    /// Label rows by what the weak model's own answer earned, ignoring that the cascade's
    /// answer checks would escalate some of them anyway.
    #[arg(long)]
    pub prompt_only_labels: bool,
    /// Scale embedding dimensions by one shared factor instead of one each.
    #[arg(long)]
    pub shared_embedding_scale: bool,
    /// L2 penalty on the topic offsets.
    #[arg(long, default_value_t = 1e-2)]
    pub l2_topics: f64,
    /// Leave out the soft topic prior (each labelled group's mean target, blended by how close
    /// a prompt is to each group, as a fixed log-odds offset).
    #[arg(long)]
    pub no_topic_prior: bool,
    /// Softmax sharpness of the topic prior's memberships (cosine × this).
    #[arg(long, default_value_t = 20.0)]
    pub topic_temperature: f64,
    /// Pseudo-rows at the overall mean added to each topic's mean target.
    #[arg(long, default_value_t = 10.0)]
    pub topic_shrinkage: f64,
    /// Also cross-validate the other label schemes and a features-only model, for comparison.
    #[arg(long)]
    pub compare: bool,
    /// Threads for cross-validation folds.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Where the embedding model and the embedding cache live.
    #[command(flatten)]
    pub embed: EmbedArgs,
    /// Cheap and strong prices for the cost figures.
    #[command(flatten)]
    pub prices: PriceArgs,
}

/// Benchmarks smaller than this are reported but do not steer model selection.
const MIN_ROWS_FOR_SELECTION: usize = 200;

/// Runs `frugal train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let data = load_rows(args)?;
    let prepared = Prepared::new(data.rows, &args.embed)?;
    eprintln!(
        "{} rows; features {:.1} µs/prompt",
        prepared.rows.len(),
        prepared.feature_micros
    );
    let session = Session::new(args, &prepared);
    let (config, cv_scores, grid_report) = session.choose_embedding_penalty()?;
    let comparisons = if args.compare {
        session.compare_variants(&config, &cv_scores)
    } else {
        Vec::new()
    };
    let figures = all_figures(&prepared, &cv_scores, &session.verdicts, &args.prices, None);
    println!(
        "\nCross-validated figures ({}-fold, seed {}, label {}, l2_embedding {}):",
        config.folds,
        config.seed,
        config.label.as_str(),
        config.l2_embedding
    );
    print_table(&figures);
    let strong_above = policy_threshold(&figures);

    let started = Instant::now();
    let summary = json!({
        "data": data.sources,
        "excluded": data.excluded,
        "rows": prepared.rows.len(),
        "rows_by_benchmark": rows_by_benchmark(&prepared),
        "config": config,
        "embedding_model": embedding_model(),
        "labels": "gain: target (1 + strong_correct - weak_correct) / 2, so ties (both right or both wrong) are 1/2 and only-weak-right rows 0; graded rows use (strong - weak) / 9 in place of the difference; with cascade_labels, rows whose weak answer the answer checks escalate count as ties",
        "l2_grid": grid_report,
        "cv": figures,
        "comparisons": comparisons,
        "threshold_rule": "strong_above = lowest per-benchmark CV threshold reaching 95% of the strong model's quality (cascade where weak answers exist), over benchmarks with >= 200 rows",
    });
    let all: Vec<_> = session.examples_for(&config).iter().collect();
    let (mut model, report) = train::fit(&all, &config, &embedding_model(), summary);
    model.thresholds = Thresholds {
        mid_above: strong_above,
        strong_above,
    };
    if let serde_json::Value::Object(map) = &mut model.training {
        map.insert("fit".to_owned(), json!(report));
    }
    model.validate()?;
    write_model(&model, &args.out)?;
    println!(
        "\nfinal fit on {} rows: {} L-BFGS iterations, loss {:.5}, {:.1} s; strong_above {:.4}",
        report.rows,
        report.iterations,
        report.loss,
        started.elapsed().as_secs_f64(),
        strong_above
    );
    let (per_prompt, nan_seen) = classifier_latency(&prepared, &model);
    println!(
        "classifier latency (features + score + reasons, beyond the embedding): {per_prompt:.1} µs/prompt{}",
        if nan_seen { " (NaN seen)" } else { "" }
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

/// The rows to train on, with where they came from.
struct TrainingData {
    rows: Vec<LabelledRow>,
    sources: Vec<serde_json::Value>,
    excluded: Vec<serde_json::Value>,
}

/// Reads `--data`, dropping every prompt that also appears in an `--exclude` file.
fn load_rows(args: &TrainArgs) -> anyhow::Result<TrainingData> {
    let mut rows: Vec<LabelledRow> = Vec::new();
    let mut sources = Vec::new();
    for path in &args.data {
        let set = data::load(path)?;
        sources.push(json!({
            "path": path.display().to_string(),
            "sha256": set.content_sha256,
            "rows": set.rows.len(),
        }));
        rows.extend(set.rows);
    }
    let mut excluded = Vec::new();
    if !args.exclude.is_empty() {
        let mut banned: HashSet<String> = HashSet::new();
        for path in &args.exclude {
            let set = data::load(path)?;
            excluded
                .push(json!({"path": path.display().to_string(), "sha256": set.content_sha256}));
            banned.extend(set.rows.into_iter().map(|r| r.prompt));
        }
        let before = rows.len();
        rows.retain(|r| !banned.contains(&r.prompt));
        eprintln!("--exclude dropped {} of {before} rows", before - rows.len());
    }
    anyhow::ensure!(!rows.is_empty(), "no rows to train on");
    Ok(TrainingData {
        rows,
        sources,
        excluded,
    })
}

/// The prepared rows, their examples with and without cascade labels, and the settings every
/// cross-validation shares.
struct Session<'a> {
    args: &'a TrainArgs,
    prepared: &'a Prepared,
    verdicts: Vec<Option<Vec<frugal_classifier::answer_checks::Concern>>>,
    cascade_examples: Vec<train::Example<'a>>,
    plain_examples: Vec<train::Example<'a>>,
    base: TrainConfig,
}

impl<'a> Session<'a> {
    fn new(args: &'a TrainArgs, prepared: &'a Prepared) -> Self {
        let verdicts = cascade_verdicts(&prepared.rows);
        let cascade_examples = prepared.examples(Some(&verdicts));
        let plain_examples = prepared.examples(None);
        let base = TrainConfig {
            cascade_labels: !args.prompt_only_labels,
            folds: args.folds,
            seed: args.seed,
            topics: args.topics,
            group_topics: args.group_topics,
            l2_topics: args.l2_topics,
            topic_prior: !args.no_topic_prior,
            topic_temperature: args.topic_temperature,
            topic_shrinkage: args.topic_shrinkage,
            whiten_embedding: !args.shared_embedding_scale,
            ..TrainConfig::default()
        };
        Self {
            args,
            prepared,
            verdicts,
            cascade_examples,
            plain_examples,
            base,
        }
    }

    fn examples_for(&self, config: &TrainConfig) -> &[train::Example<'a>] {
        if config.cascade_labels {
            &self.cascade_examples
        } else {
            &self.plain_examples
        }
    }

    /// Mean cross-validated APGR over the benchmarks big enough to trust.
    fn selection_score(&self, scores: &[f32]) -> f64 {
        let figures = all_figures(
            self.prepared,
            scores,
            &self.verdicts,
            &self.args.prices,
            None,
        );
        let big: Vec<f64> = figures
            .iter()
            .filter(|f| f.n >= MIN_ROWS_FOR_SELECTION)
            .map(|f| f.apgr)
            .collect();
        big.iter().sum::<f64>() / big.len().max(1) as f64
    }

    /// Chooses the embedding penalty by cross-validated APGR: the config, its CV scores and
    /// the grid's report.
    fn choose_embedding_penalty(
        &self,
    ) -> anyhow::Result<(TrainConfig, Vec<f32>, Vec<serde_json::Value>)> {
        let mut best: Option<(f64, TrainConfig, Vec<f32>)> = None;
        let mut grid_report = Vec::new();
        for &l2 in &self.args.l2_grid {
            let config = TrainConfig {
                l2_embedding: l2,
                ..self.base.clone()
            };
            let started = Instant::now();
            let scores =
                train::cross_validate(self.examples_for(&config), &config, self.args.threads);
            let score = self.selection_score(&scores);
            eprintln!(
                "l2_embedding {l2:<6}: mean CV APGR {score:.4} ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            grid_report.push(json!({"l2_embedding": l2, "mean_apgr": score}));
            if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                best = Some((score, config, scores));
            }
        }
        let (_, config, cv_scores) = best.context("--l2-grid is empty")?;
        Ok((config, cv_scores, grid_report))
    }

    /// `--compare`: the chosen config beside one change at a time, on the same folds.
    fn compare_variants(&self, config: &TrainConfig, cv_scores: &[f32]) -> Vec<serde_json::Value> {
        let mut comparisons = Vec::new();
        println!("\nComparison ({}-fold CV, same folds):", config.folds);
        println!(
            "{:<36} {:>10} {:>8} {:>10} {:>10}",
            "variant", "benchmark", "APGR", "pre95", "policy95"
        );
        let mut show = |name: &str, scores: &[f32]| {
            for f in all_figures(
                self.prepared,
                scores,
                &self.verdicts,
                &self.args.prices,
                None,
            ) {
                println!(
                    "{name:<36} {:>10} {:>8.4} {:>10} {:>10}",
                    f.benchmark,
                    f.apgr,
                    pct(f.preroute_strong_share_at_95),
                    pct(f.strong_share_at_95)
                );
                comparisons.push(json!({
                    "variant": name, "benchmark": f.benchmark, "apgr": f.apgr,
                    "preroute_strong_share_at_95": f.preroute_strong_share_at_95,
                    "strong_share_at_95": f.strong_share_at_95,
                }));
            }
        };
        show(
            &format!("chosen (label={})", config.label.as_str()),
            cv_scores,
        );
        for (name, variant) in variants(config) {
            let scores =
                train::cross_validate(self.examples_for(&variant), &variant, self.args.threads);
            show(&name, &scores);
        }
        comparisons
    }
}

/// The configs `--compare` sets beside the chosen one: each differs in one setting.
fn variants(config: &TrainConfig) -> Vec<(String, TrainConfig)> {
    let mut variants: Vec<(String, TrainConfig)> = LabelScheme::ALL
        .iter()
        .filter(|l| **l != config.label)
        .map(|l| {
            (
                format!("label={}", l.as_str()),
                TrainConfig {
                    label: *l,
                    ..config.clone()
                },
            )
        })
        .collect();
    variants.push((
        format!("cascade_labels={}", !config.cascade_labels),
        TrainConfig {
            cascade_labels: !config.cascade_labels,
            ..config.clone()
        },
    ));
    variants.push((
        "features only".to_owned(),
        TrainConfig {
            use_embedding: false,
            ..config.clone()
        },
    ));
    variants.push((
        format!("topic_prior={}", !config.topic_prior),
        TrainConfig {
            topic_prior: !config.topic_prior,
            ..config.clone()
        },
    ));
    let other_topics = if config.topics == 0 { 64 } else { 0 };
    variants.push((
        format!("topics={other_topics}"),
        TrainConfig {
            topics: other_topics,
            ..config.clone()
        },
    ));
    variants
}

/// The default policy's threshold: the strictest (lowest) of the per-benchmark thresholds
/// that reach 95% of the strong model's quality, over benchmarks big enough to trust.
fn policy_threshold(figures: &[super::BenchmarkFigures]) -> f32 {
    figures
        .iter()
        .filter(|f| f.n >= MIN_ROWS_FOR_SELECTION)
        .filter_map(|f| f.threshold_at_95)
        .filter(|t| t.is_finite())
        .fold(None, |m: Option<f32>, t| Some(m.map_or(t, |m| m.min(t))))
        .unwrap_or(0.5)
        .clamp(0.0, 1.0)
}

/// The embedding model's name as the model file records it.
fn embedding_model() -> String {
    format!(
        "{}-max{}",
        ModelPaths::EMBEDDER_SUBDIR,
        frugal_cache::MiniLmOptions::default().max_tokens
    )
}

fn rows_by_benchmark(prepared: &Prepared) -> serde_json::Map<String, serde_json::Value> {
    let mut benchmarks = serde_json::Map::new();
    for b in prepared.benchmarks() {
        let n = prepared.rows.iter().filter(|r| r.benchmark == b).count();
        benchmarks.insert(b, json!(n));
    }
    benchmarks
}

fn write_model(
    model: &frugal_classifier::model::ComplexityModel,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, model.to_json() + "\n")
        .with_context(|| format!("cannot write {}", out.display()))
}

/// Times the classifier itself (features + scoring), the part a request pays beyond the
/// shared embedding: microseconds per prompt, and whether a score was NaN.
fn classifier_latency(
    prepared: &Prepared,
    model: &frugal_classifier::model::ComplexityModel,
) -> (f64, bool) {
    let timing_rows = prepared.rows.len().min(2000);
    let started = Instant::now();
    let mut sink = 0.0f32;
    for (row, embedding) in prepared
        .rows
        .iter()
        .zip(&prepared.embeddings)
        .take(timing_rows)
    {
        let features = frugal_classifier::features::extract(&row.prompt);
        if let Ok(c) = model.predict(&features, Some(embedding)) {
            sink += c.score;
        }
    }
    let per_prompt = started.elapsed().as_secs_f64() * 1e6 / timing_rows.max(1) as f64;
    (per_prompt, sink.is_nan())
}
