//! Offline tools over labelled data: `frugal train` fits the complexity classifier, and
//! `frugal eval router|cache|trim` measure each lever. They embed with the same all-MiniLM-L6-v2
//! model the sidecar uses, through one disk cache of evaluation vectors
//! ([`embed_disk`]), so repeated runs are fast.

pub mod calibrate;
pub mod embed_disk;
pub mod eval_cache;
pub mod eval_router;
pub mod eval_trim;
pub mod progress;
pub mod replay;
pub mod train;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context as _;
use frugal_cache::{EmbedError, Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};

/// Where the embedding model lives and where computed embeddings are kept between runs.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedArgs {
    /// Folder filled by scripts/fetch-models.sh (FRUGAL_MODEL_DIR overrides it).
    #[arg(long, default_value = "models")]
    pub model_dir: PathBuf,
    /// Folder for cached prompt embeddings (never commit it); `--no-embedding-cache` skips it.
    #[arg(long, default_value = "target/frugal-embeddings-cache")]
    pub embedding_cache: PathBuf,
    /// Embed everything afresh and do not write the cache.
    #[arg(long)]
    pub no_embedding_cache: bool,
}

impl EmbedArgs {
    /// The disk cache of evaluation vectors these arguments name (none with
    /// `--no-embedding-cache`), for the default MiniLM settings.
    pub fn disk_embeddings(&self) -> embed_disk::DiskEmbeddings {
        // The model (its folder and the start of its file's SHA-256, so a re-fetched model
        // never reads another's vectors) and its token cap are part of the identity of a vector.
        let paths = ModelPaths::from_env_or(&self.model_dir);
        let model_key = format!(
            "{}-{}-max{}",
            ModelPaths::EMBEDDER_SUBDIR,
            model_fingerprint(&paths.embedder_dir.join("model.onnx")),
            MiniLmOptions::default().max_tokens
        );
        let dir = (!self.no_embedding_cache).then_some(self.embedding_cache.as_path());
        embed_disk::DiskEmbeddings::new(dir, &model_key)
    }
}

/// The first 12 hex digits of a model file's SHA-256, or `unread` when it cannot be read (the
/// model then fails to load with the reason, before any vector is cached).
fn model_fingerprint(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    match std::fs::read(path) {
        Ok(bytes) => crate::pipeline::short_hex(&Sha256::digest(&bytes)),
        Err(_) => "unread".to_owned(),
    }
}

/// The embedding model, loaded on the first text the disk cache does not already hold: a run
/// whose vectors are all cached needs neither the model nor the time to load it.
struct LazyMiniLm {
    paths: ModelPaths,
    model: Mutex<Option<MiniLmEmbedder>>,
}

impl Embedder for LazyMiniLm {
    fn dim(&self) -> usize {
        MiniLmEmbedder::DIM
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut loaded = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        let model = match &mut *loaded {
            Some(model) => model,
            empty => empty.insert(MiniLmEmbedder::load(
                &self.paths,
                &MiniLmOptions::default(),
            )?),
        };
        model.embed(texts)
    }
}

/// Embeds `texts` (one vector each, in order) through the disk cache of evaluation vectors.
pub fn embed_texts(args: &EmbedArgs, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
    let embedder = LazyMiniLm {
        paths: ModelPaths::from_env_or(&args.model_dir),
        model: Mutex::new(None),
    };
    let bar = progress::progress_bar(true, texts.len(), "embedding prompts");
    let (vectors, timing) = args
        .disk_embeddings()
        .embed(&embedder, texts, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .context("cannot embed the prompts")?;
    bar.finish_and_clear();
    if timing.embedded > 0 {
        eprintln!(
            "embedded {} prompts in {:.1} s ({} found on disk)",
            timing.embedded,
            timing.embedding_time.as_secs_f64(),
            timing.from_disk
        );
    }
    Ok(vectors)
}

/// Reads every row of a JSON Lines file, gzip-compressed or plain (told apart by the gzip magic
/// bytes, not the name); blank lines are skipped.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    use std::io::BufRead as _;
    let mut file = std::io::BufReader::new(
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let gzip = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(reader).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: unexpected row", path.display(), i + 1))?,
        );
    }
    Ok(rows)
}

/// Cheap and strong prices for the cost figures, in USD per million tokens.
#[derive(Debug, Clone, clap::Args)]
pub struct PriceArgs {
    /// Cheap model input price (default: gpt-4o-mini).
    #[arg(long, default_value_t = 0.15)]
    pub cheap_input_price: f64,
    /// Cheap model output price.
    #[arg(long, default_value_t = 0.60)]
    pub cheap_output_price: f64,
    /// Strong model input price (default: gpt-4o).
    #[arg(long, default_value_t = 2.50)]
    pub strong_input_price: f64,
    /// Strong model output price.
    #[arg(long, default_value_t = 10.0)]
    pub strong_output_price: f64,
}

impl PriceArgs {
    /// (cheap, strong) cost of one call, assuming both models see and write the same number of
    /// tokens for a prompt (so only the prices' ratio matters).
    pub fn per_call(&self) -> (f64, f64) {
        (
            self.cheap_input_price + self.cheap_output_price,
            self.strong_input_price + self.strong_output_price,
        )
    }
}

/// Labelled rows of one or more files, with their features, embeddings and cascade verdicts.
pub struct Prepared {
    /// The rows, files concatenated in order.
    pub rows: Vec<frugal_classifier::data::LabelledRow>,
    /// Text features per row.
    pub features: Vec<frugal_classifier::features::Features>,
    /// Embedding per row.
    pub embeddings: Vec<Vec<f32>>,
    /// Mean time to extract one prompt's features, in microseconds.
    pub feature_micros: f64,
}

impl Prepared {
    /// Extracts features and embeds every row's prompt.
    pub fn new(
        rows: Vec<frugal_classifier::data::LabelledRow>,
        embed: &EmbedArgs,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let features: Vec<_> = rows
            .iter()
            .map(|r| frugal_classifier::features::extract(&r.prompt))
            .collect();
        let feature_micros = started.elapsed().as_secs_f64() * 1e6 / rows.len().max(1) as f64;
        let texts: Vec<&str> = rows.iter().map(|r| r.prompt.as_str()).collect();
        let embeddings = embed_texts(embed, &texts)?;
        Ok(Self {
            rows,
            features,
            embeddings,
            feature_micros,
        })
    }

    /// Training examples over the rows (fold key: benchmark and prompt, so duplicates share a
    /// fold). With `cascade`, rows the cascade escalates anyway are labelled as ties: their
    /// cheap path ends at the strong answer too, so starting strong gains nothing.
    pub fn examples(
        &self,
        cascade: Option<&[Option<Vec<Concern>>]>,
    ) -> Vec<frugal_classifier::train::Example<'_>> {
        use frugal_classifier::data::Outcome;
        self.rows
            .iter()
            .enumerate()
            .zip(&self.features)
            .zip(&self.embeddings)
            .map(|(((i, row), features), embedding)| {
                let escalated = cascade
                    .and_then(|v| v.get(i))
                    .is_some_and(|v| v.as_ref().is_some_and(|c| !c.is_empty()));
                let outcome = match row.outcome {
                    Outcome::Correct { strong, .. } if escalated => Outcome::Correct {
                        weak: strong,
                        strong,
                    },
                    other => other,
                };
                frugal_classifier::train::Example {
                    features: *features,
                    embedding,
                    outcome,
                    key: frugal_classifier::train::text_key(&format!(
                        "{}|{}",
                        row.benchmark, row.prompt
                    )),
                    group: &row.group,
                }
            })
            .collect()
    }

    /// Benchmarks in first-seen order.
    pub fn benchmarks(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for row in &self.rows {
            if !seen.contains(&row.benchmark) {
                seen.push(row.benchmark.clone());
            }
        }
        seen
    }
}

/// Whether the cascade escalates a row: its weak answer exists and a check fires on it.
pub fn cascade_verdicts(
    rows: &[frugal_classifier::data::LabelledRow],
) -> Vec<Option<Vec<Concern>>> {
    rows.iter()
        .map(|r| {
            r.weak_response.as_deref().map(|answer| {
                frugal_classifier::answer_checks::check_math_answer(&r.prompt, answer)
                    .into_iter()
                    .map(|f| f.concern)
                    .collect()
            })
        })
        .collect()
}

use frugal_classifier::answer_checks::Concern;
use frugal_classifier::curve::{self, Curve};

/// How often one check fired, and how often it was right to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckStats {
    /// Answers the check fired on.
    pub fired: usize,
    /// Of those, answers the weak model had wrong.
    pub weak_wrong: usize,
    /// Of those, answers the strong model had right where the weak one was wrong.
    pub only_strong_right: usize,
}

/// The routing figures of one benchmark (`frugal eval router --json` prints one per line).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchmarkFigures {
    /// Benchmark name.
    pub benchmark: String,
    /// Rows.
    pub n: usize,
    /// Weak model quality (accuracy; mean grade / 10 for graded rows).
    pub weak_acc: f64,
    /// Strong model quality.
    pub strong_acc: f64,
    /// RouteLLM's average performance gap recovered, prompt-only routing.
    pub apgr: f64,
    /// Strong share recovering 50% of the gap, prompt-only routing.
    pub cpt50: Option<f64>,
    /// Strong share recovering 80% of the gap, prompt-only routing.
    pub cpt80: Option<f64>,
    /// Strong share prompt-only routing needs for 95% of the strong model's quality.
    pub preroute_strong_share_at_95: Option<f64>,
    /// Strong share the default policy needs for 95% (the cascade where weak answers exist),
    /// counting every prompt that reached the strong model.
    pub strong_share_at_95: Option<f64>,
    /// Cost saved against sending everything to the strong model, at that point, wasted
    /// cheap calls included.
    pub cost_cut_at_95: Option<f64>,
    /// Start-strong threshold of that point (prompts scoring at or above it start strong).
    pub threshold_at_95: Option<f32>,
    /// Share of prompts escalated after a cheap answer at that point.
    pub escalated_share_at_95: Option<f64>,
    /// Whether the policy figures come from the cascade.
    pub cascade: bool,
    /// Strong share a random router needs for 95%.
    pub random_strong_share_at_95: Option<f64>,
    /// Strong share a perfect router needs for 95%.
    pub oracle_strong_share_at_95: Option<f64>,
    /// The policy threshold the figures below are for (the model's `strong_above`), if known.
    pub policy_threshold: Option<f32>,
    /// Strong share when prompts scoring above `policy_threshold` start strong (cascade where
    /// weak answers exist).
    pub strong_share_at_threshold: Option<f64>,
    /// Quality at `policy_threshold`, as a share of the strong model's.
    pub quality_vs_strong_at_threshold: Option<f64>,
    /// Cost saved against all-strong at `policy_threshold`.
    pub cost_cut_at_threshold: Option<f64>,
    /// Per-check firing counts on the weak answers, where there are any.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checks: std::collections::BTreeMap<&'static str, CheckStats>,
}

/// The quality share every "at 95" figure is measured at.
pub const QUALITY_SHARE: f64 = 0.95;

/// Figures for one benchmark's rows from their scores and (optional) cascade verdicts.
pub fn benchmark_figures(
    benchmark: &str,
    rows: &[&frugal_classifier::data::LabelledRow],
    scores: &[f32],
    verdicts: &[Option<Vec<Concern>>],
    prices: &PriceArgs,
    policy_threshold: Option<f32>,
) -> BenchmarkFigures {
    let outcomes: Vec<_> = rows.iter().map(|r| r.outcome).collect();
    let cascade = verdicts.iter().any(Option::is_some);
    let escalate: Vec<bool> = verdicts
        .iter()
        .map(|v| v.as_ref().is_some_and(|c| !c.is_empty()))
        .collect();
    let prompt_only = Curve::sweep(scores, &outcomes, &vec![false; rows.len()]);
    let policy = if cascade {
        Curve::sweep(scores, &outcomes, &escalate)
    } else {
        prompt_only.clone()
    };
    let point = policy.point_at_quality_of_strong(QUALITY_SHARE);
    let (cheap, strong) = prices.per_call();
    // The policy starts a prompt strong when its score is above the threshold: the last point
    // of the sweep whose threshold is still above it.
    let at_threshold = policy_threshold.and_then(|t| {
        policy
            .points
            .iter()
            .take_while(|p| p.threshold > t)
            .last()
            .copied()
    });
    let escalated_share = point.map(|p| {
        // Escalated = strong calls that were not pre-routed = strong share − (1 − cheap share).
        (p.strong_share - (1.0 - p.cheap_share)).max(0.0)
    });

    let mut checks = std::collections::BTreeMap::new();
    for (verdict, row) in verdicts.iter().zip(rows) {
        for concern in verdict.iter().flatten() {
            let stats = checks.entry(concern.as_str()).or_insert(CheckStats {
                fired: 0,
                weak_wrong: 0,
                only_strong_right: 0,
            });
            stats.fired += 1;
            let (w, s) = (row.outcome.weak_quality(), row.outcome.strong_quality());
            stats.weak_wrong += usize::from(w < 0.5);
            stats.only_strong_right += usize::from(w < 0.5 && s >= 0.5);
        }
    }
    BenchmarkFigures {
        benchmark: benchmark.to_owned(),
        n: rows.len(),
        weak_acc: prompt_only.weak,
        strong_acc: prompt_only.strong,
        apgr: prompt_only.apgr(),
        cpt50: prompt_only.cpt(0.5),
        cpt80: prompt_only.cpt(0.8),
        preroute_strong_share_at_95: prompt_only.share_at_quality_of_strong(QUALITY_SHARE),
        strong_share_at_95: policy.share_at_quality_of_strong(QUALITY_SHARE),
        cost_cut_at_95: point.map(|p| 1.0 - curve::relative_cost(&p, cheap, strong)),
        threshold_at_95: point.map(|p| p.threshold),
        escalated_share_at_95: escalated_share,
        cascade,
        random_strong_share_at_95: curve::random_share_at_quality_of_strong(
            prompt_only.weak,
            prompt_only.strong,
            QUALITY_SHARE,
        ),
        oracle_strong_share_at_95: curve::oracle_share_at_quality_of_strong(
            &outcomes,
            QUALITY_SHARE,
        ),
        policy_threshold,
        strong_share_at_threshold: at_threshold.map(|p| p.strong_share),
        quality_vs_strong_at_threshold: at_threshold
            .filter(|_| policy.strong > 0.0)
            .map(|p| p.quality / policy.strong),
        cost_cut_at_threshold: at_threshold.map(|p| 1.0 - curve::relative_cost(&p, cheap, strong)),
        checks,
    }
}

/// Figures for every benchmark of the prepared rows.
pub fn all_figures(
    prepared: &Prepared,
    scores: &[f32],
    verdicts: &[Option<Vec<Concern>>],
    prices: &PriceArgs,
    policy_threshold: Option<f32>,
) -> Vec<BenchmarkFigures> {
    prepared
        .benchmarks()
        .iter()
        .map(|b| {
            let idx: Vec<usize> = (0..prepared.rows.len())
                .filter(|i| prepared.rows[*i].benchmark == *b)
                .collect();
            let rows: Vec<_> = idx.iter().map(|i| &prepared.rows[*i]).collect();
            let s: Vec<f32> = idx.iter().map(|i| scores[*i]).collect();
            let v: Vec<_> = idx.iter().map(|i| verdicts[*i].clone()).collect();
            benchmark_figures(b, &rows, &s, &v, prices, policy_threshold)
        })
        .collect()
}

/// Formats a share as a percentage, or `—` when it was never reached.
pub fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |x| format!("{:.1}%", 100.0 * x))
}

/// Prints figures as an aligned table.
pub fn print_table(figures: &[BenchmarkFigures]) {
    println!(
        "{:<10} {:>6} {:>7} {:>7} {:>6} {:>7} {:>7} | {:>8} {:>8} {:>8} {:>8} {:>7} {:>9}",
        "benchmark",
        "n",
        "weak",
        "strong",
        "APGR",
        "CPT50",
        "CPT80",
        "random95",
        "oracle95",
        "pre95",
        "policy95",
        "thr95",
        "costcut95"
    );
    for f in figures {
        println!(
            "{:<10} {:>6} {:>7.4} {:>7.4} {:>6.3} {:>7} {:>7} | {:>8} {:>8} {:>8} {:>8} {:>7} {:>9}{}",
            f.benchmark,
            f.n,
            f.weak_acc,
            f.strong_acc,
            f.apgr,
            pct(f.cpt50),
            pct(f.cpt80),
            pct(f.random_strong_share_at_95),
            pct(f.oracle_strong_share_at_95),
            pct(f.preroute_strong_share_at_95),
            pct(f.strong_share_at_95),
            f.threshold_at_95.map_or_else(|| "—".to_owned(), |t| format!("{t:.4}")),
            pct(f.cost_cut_at_95),
            if f.cascade { "  (cascade)" } else { "" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_token_counts_make_only_the_price_ratio_matter() {
        let prices = PriceArgs {
            cheap_input_price: 0.15,
            cheap_output_price: 0.60,
            strong_input_price: 2.50,
            strong_output_price: 10.0,
        };
        let (cheap, strong) = prices.per_call();
        assert!((cheap / strong - 0.06).abs() < 1e-12);
    }
}
