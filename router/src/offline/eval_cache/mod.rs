//! `frugal eval cache`: how often the semantic cache would serve a right or a wrong answer, on
//! labelled prompt pairs (the JSON Lines schema of ../shared/data/cache). The evaluation itself
//! is in [`evaluation`], its figures in [`report`] and the pairs' format in [`pairs`]; this
//! command parses arguments, loads the pairs and the embedding model, and prints the report.

pub mod evaluation;
pub mod pairs;
pub mod prefilter;
pub mod report;

use std::path::PathBuf;

use anyhow::Context as _;
use frugal_cache::{GuardSet, MiniLmEmbedder, MiniLmOptions, ModelPaths, StaticEmbedder};

use self::evaluation::{self as eval, EvalOptions, Mode};
use self::pairs::{every_kth, read_pairs};

/// Arguments of `frugal eval cache`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalCacheArgs {
    /// Labelled pairs (JSON Lines: `a`, `b`, `duplicate`, optional `hard`), gzip or plain.
    #[arg(long)]
    pub pairs: PathBuf,
    /// Cosine similarity a candidate needs before verification.
    #[arg(long, default_value_t = frugal_cache::DEFAULT_SIMILARITY_THRESHOLD)]
    pub threshold: f32,
    /// Verification guards: `all`, `none`, a comma list (numbers, negation, antonym, quoted,
    /// identifiers, urls_paths, entities, order), or `all,-order`.
    #[arg(long, default_value = "all")]
    pub guards: GuardSet,
    /// `pair`: a fresh scope per pair holding its `a`; `index`: every `a` in one index.
    #[arg(long, default_value = "pair")]
    pub mode: Mode,
    /// Longest question, in model tokens, stored or looked up (as `cache.semantic_max_tokens`);
    /// a pair with a longer side is never a hit.
    #[arg(long, default_value_t = frugal_cache::DEFAULT_SEMANTIC_MAX_TOKENS)]
    pub semantic_max_tokens: usize,
    /// The semantic prefilter's static-vector cosine (as `cache.semantic_prefilter`; 0 turns it
    /// off): a lookup whose static cosine to its stored question(s) is below it is a miss
    /// without MiniLM. The report says how many it ruled out and how many hits that lost.
    #[arg(long, default_value_t = frugal_cache::DEFAULT_PREFILTER_THRESHOLD)]
    pub prefilter: f32,
    /// Nearest candidates verified per lookup (the first that passes is served).
    #[arg(long, default_value_t = 3)]
    pub candidates: usize,
    /// Also print the precision/recall curve across thresholds, with and without guards.
    #[arg(long)]
    pub sweep: bool,
    /// Also print what each guard contributes at the threshold.
    #[arg(long)]
    pub ablation: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Evaluate every K-th pair only (a deterministic subsample, starting with the first).
    #[arg(long, default_value_t = 1)]
    pub every: usize,
    /// Instead of the report, print up to N false hits and N rejected duplicates (with the
    /// guards that fired), for reading what the verifier gets wrong.
    #[arg(long, default_value_t = 0)]
    pub dump_misjudged: usize,
    /// Where the embedding model lives and where embeddings are cached between runs.
    #[command(flatten)]
    pub embed: super::EmbedArgs,
}

/// Runs `frugal eval cache`.
pub fn run(args: &EvalCacheArgs) -> anyhow::Result<()> {
    let pairs = every_kth(read_pairs(&args.pairs)?, args.every);
    let paths = ModelPaths::from_env_or(&args.embed.model_dir);
    let embedder = MiniLmEmbedder::load(&paths, &MiniLmOptions::default())
        .context("cannot load the embedding model")?;
    let disk = args.embed.disk_embeddings();
    let prefilter = (args.prefilter > 0.0)
        .then(|| StaticEmbedder::load(&paths.static_dir))
        .transpose()
        .context("cannot load the prefilter's static vectors (--prefilter 0 turns it off)")?;
    let options = EvalOptions {
        threshold: args.threshold,
        guards: args.guards,
        semantic_max_tokens: args.semantic_max_tokens,
        mode: args.mode,
        candidates: args.candidates,
        sweep: args.sweep,
        ablation: args.ablation,
        ..EvalOptions::default()
    };
    if args.dump_misjudged > 0 {
        let embedded = eval::embed_pairs(
            &pairs,
            &embedder,
            &disk,
            options.progress,
            options.semantic_max_tokens,
        )?;
        let evaluation = eval::Evaluation::new(&pairs, &embedded, &options)?.with_prefilter(
            &pairs,
            prefilter.as_ref(),
            args.prefilter,
            options.mode,
        )?;
        print!(
            "{}",
            eval::misjudged(&pairs, &evaluation, &options, args.dump_misjudged)
        );
        return Ok(());
    }
    let prefilter = prefilter.as_ref().map(|p| (p, args.prefilter));
    let report = eval::run(&pairs, &embedder, &disk, prefilter, &options)
        .with_context(|| format!("cannot evaluate {}", args.pairs.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_table(args.mode, args.guards));
    }
    Ok(())
}
