//! `frugal replay`: runs traffic (a decision log with prompts, OpenAI request bodies, labelled
//! routing rows or labelled cache pairs) through a policy in-process, against the labelled
//! simulation, and prints what each lever saved next to the quality kept, false cache hits and
//! escalations; `--against` runs a second policy on the same traffic, side by side.
//!
//! The answers come from recorded outcomes ([`crate::mock::labels`]), not a live model: the
//! replay measures the sidecar's decisions against what each model is known to have answered.

pub mod render;
pub mod run;
pub mod tally;
pub mod traffic;

use std::path::PathBuf;

use anyhow::Context as _;

pub use run::{replay, ReplayOptions};
pub use tally::Tally;

/// Arguments of `frugal replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Traffic (JSON Lines, gzip or plain): request bodies, decision-log records written with
    /// `log_prompts: true`, labelled routing rows (RouteLLM) or labelled cache pairs (QQP/PAWS).
    #[arg(long)]
    pub traffic: PathBuf,
    /// The policy to replay.
    #[arg(long)]
    pub policy: PathBuf,
    /// A second policy, replayed on the same traffic and printed beside the first.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Labelled routing rows for traffic of request bodies (matched by the last user message).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The model asked for by requests that name none (default: the top rung of the ladder).
    #[arg(long)]
    pub model: Option<String>,
    /// Replay only the first N rows.
    #[arg(long, conflicts_with = "sample")]
    pub limit: Option<usize>,
    /// Replay N rows spread evenly over the file (every benchmark of a mixed file).
    #[arg(long)]
    pub sample: Option<usize>,
    /// Drop tenant budgets and run caps, to compare the levers alone.
    #[arg(long)]
    pub without_caps: bool,
    /// Print JSON (one object per policy) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `frugal replay`.
pub async fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let pick = match (args.limit, args.sample) {
        (Some(n), _) => traffic::Pick::First(n),
        (None, Some(n)) => traffic::Pick::Spread(n),
        (None, None) => traffic::Pick::All,
    };
    let traffic = traffic::read(&args.traffic, pick)?;
    let extra_labels = match &args.labels {
        Some(path) => {
            frugal_classifier::data::load(path)
                .with_context(|| format!("cannot read labels {}", path.display()))?
                .rows
        }
        None => Vec::new(),
    };
    let options = ReplayOptions {
        model: args.model.clone(),
        without_caps: args.without_caps,
        progress: !args.json,
    };
    let mut tallies = vec![replay(&args.policy, &traffic, &extra_labels, &options).await?];
    if let Some(other) = &args.against {
        tallies.push(replay(other, &traffic, &extra_labels, &options).await?);
    }
    if args.json {
        for tally in &tallies {
            println!("{}", serde_json::to_string(tally)?);
        }
    } else {
        print!("{}", render::table(&args.traffic, &tallies));
    }
    Ok(())
}
