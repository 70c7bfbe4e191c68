//! `frugal eval cache` as a standalone example, for trying the evaluation without the router:
//!
//! ```text
//! cargo run --release -p frugal-cache --example eval_cache -- \
//!     --pairs ../shared/data/cache/paws_dev.jsonl.gz [--threshold T] [--guards all] \
//!     [--mode pair|index] [--sweep] [--ablation] [--json] [--every K]
//! ```
//!
//! `--dump-misjudged N` also prints up to N false hits and N rejected duplicates (with the
//! guards that fired), for reading what the verifier gets wrong.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Parser;
use frugal_cache::embed_disk::DiskEmbeddings;
use frugal_cache::eval::{self, EvalOptions, Evaluation, Mode};
use frugal_cache::pairs::{every_kth, read_pairs};
use frugal_cache::{GuardSet, MiniLmEmbedder, MiniLmOptions, ModelPaths};

/// Semantic-cache decisions on labelled pairs.
#[derive(Debug, Parser)]
struct Args {
    /// Labelled pairs (JSON Lines: a, b, duplicate, optional hard), gzip or plain.
    #[arg(long)]
    pairs: PathBuf,
    /// Cosine similarity a candidate needs before verification.
    #[arg(long, default_value_t = frugal_cache::DEFAULT_SIMILARITY_THRESHOLD)]
    threshold: f32,
    /// Guards to run: `all`, `none`, a comma list, or `all,-order`.
    #[arg(long, default_value = "all")]
    guards: GuardSet,
    /// `pair`: a fresh scope per pair; `index`: every `a` in one index.
    #[arg(long, default_value = "pair")]
    mode: Mode,
    /// Nearest candidates verified per lookup.
    #[arg(long, default_value_t = 3)]
    candidates: usize,
    /// Print the precision/recall curve across thresholds, with and without guards.
    #[arg(long)]
    sweep: bool,
    /// Print what each guard contributes at the threshold.
    #[arg(long)]
    ablation: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Evaluate every K-th pair only (a deterministic subsample).
    #[arg(long, default_value_t = 1)]
    every: usize,
    /// Folder filled by scripts/fetch-models.sh (FRUGAL_MODEL_DIR overrides it).
    #[arg(long, default_value = "models")]
    model_dir: PathBuf,
    /// Folder for cached embeddings (never commit it).
    #[arg(long, default_value = "target/frugal-embeddings-cache")]
    embedding_cache: PathBuf,
    /// Print up to N false hits and N rejected duplicates.
    #[arg(long, default_value_t = 0)]
    dump_misjudged: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pairs = every_kth(read_pairs(&args.pairs)?, args.every);
    let paths = ModelPaths::from_env_or(&args.model_dir);
    let embedder = MiniLmEmbedder::load(&paths, &MiniLmOptions::default())
        .context("cannot load the embedding model")?;
    let disk = DiskEmbeddings::new(Some(Path::new(&args.embedding_cache)), &model_key());
    let options = EvalOptions {
        threshold: args.threshold,
        guards: args.guards,
        mode: args.mode,
        candidates: args.candidates,
        sweep: args.sweep,
        ablation: args.ablation,
        ..EvalOptions::default()
    };
    if args.dump_misjudged > 0 {
        let embedded = eval::embed_pairs(&pairs, &embedder, &disk, true)?;
        let evaluation = Evaluation::new(&pairs, &embedded, &options)?;
        dump(&pairs, &evaluation, &options, args.dump_misjudged);
        return Ok(());
    }
    let report = eval::run(&pairs, &embedder, &disk, &options)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_table(args.mode, args.guards));
    }
    Ok(())
}

/// The embedding cache file's key: model folder and token cap.
fn model_key() -> String {
    format!(
        "{}-max{}",
        ModelPaths::EMBEDDER_SUBDIR,
        MiniLmOptions::default().max_tokens
    )
}

fn dump(
    pairs: &[frugal_cache::pairs::Pair],
    evaluation: &Evaluation,
    options: &EvalOptions,
    n: usize,
) {
    let (mut false_hits, mut rejected) = (0, 0);
    for (i, pair) in pairs.iter().enumerate() {
        let top = evaluation.top(i);
        let hit = evaluation.hit(i, options.threshold, options.guards);
        if !pair.duplicate && hit.is_some() && false_hits < n {
            false_hits += 1;
            println!(
                "FALSE HIT {:.3}\n  a: {}\n  b: {}",
                hit.map_or(0.0, |h| h.1),
                pair.a,
                pair.b
            );
        }
        if let Some((similarity, fired)) = top {
            if pair.duplicate && hit.is_none() && similarity >= options.threshold && rejected < n {
                rejected += 1;
                println!(
                    "REJECTED DUP {similarity:.3} by {fired}\n  a: {}\n  b: {}",
                    pair.a, pair.b
                );
            }
        }
    }
}
