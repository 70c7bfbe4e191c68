//! `frugal calibrate`: sweeps the policy's semantic-cache threshold, start-strong threshold and
//! trim cap on labelled data, prints each cost/quality frontier, picks the cheapest point that
//! meets the targets, and writes the policy with those values (comments and layout kept) and a
//! diff saying what changed and why. With `--traffic` it replays the old and the new policy on
//! that traffic, side by side, before anything reaches production.

pub mod edit;
pub mod plot;
pub mod render;
pub mod sweep;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::replay::{self, traffic, ReplayOptions};
use super::EmbedArgs;
use sweep::Sweep;

/// Arguments of `frugal calibrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct CalibrateArgs {
    /// The policy to calibrate.
    #[arg(long)]
    pub policy: PathBuf,
    /// Labelled routing rows (RouteLLM's format): sweeps `route.start_strong_above`.
    #[arg(long)]
    pub router_data: Option<PathBuf>,
    /// Labelled question pairs (QQP, PAWS): sweeps `cache.similarity_threshold`.
    #[arg(long)]
    pub cache_pairs: Option<PathBuf>,
    /// A decision log written in cache shadow mode (`cache.mode: shadow`): sweeps
    /// `cache.similarity_threshold` on your own traffic, judged by whether the answer the
    /// cache would have served agreed with the fresh one.
    #[arg(long)]
    pub shadow_log: Option<PathBuf>,
    /// Most disagreeing would-be hits (a share of them) for --shadow-log.
    #[arg(long, default_value_t = 0.05)]
    pub max_disagreement: f64,
    /// Claims with gold evidence (SciFact's format): sweeps `trim.max_context_tokens`.
    #[arg(long)]
    pub trim_data: Option<PathBuf>,
    /// Traffic to replay the old and the new policy on, side by side (as `frugal replay`).
    #[arg(long)]
    pub traffic: Option<PathBuf>,
    /// Replay N rows of the traffic spread over the file (all of it by default).
    #[arg(long)]
    pub sample: Option<usize>,
    /// Quality to keep: routing keeps this share of always-strong's quality, trimming this
    /// share of the gold evidence.
    #[arg(long, default_value_t = 0.95)]
    pub target_quality: f64,
    /// Gold evidence trimming must keep (default: --target-quality).
    #[arg(long)]
    pub target_evidence: Option<f64>,
    /// Most false cache hits per pair of different questions.
    #[arg(long, default_value_t = 0.02)]
    pub max_false_hit_rate: f64,
    /// Where to write the calibrated policy (without it, only the diff is printed).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw the frontiers into this PNG, the picked points in red.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the frontiers and the changes as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Where the embedding model and the embedding cache live.
    #[command(flatten)]
    pub embed: EmbedArgs,
}

/// One value the calibration changes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// The policy key (dotted).
    pub key: &'static str,
    /// Its value before, as the policy has it (or its default).
    pub before: String,
    /// Its value after.
    pub after: String,
    /// Why.
    pub why: String,
}

/// The frontiers and what they changed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Calibration {
    /// The routing frontier.
    pub route: Option<Sweep<sweep::RoutePoint>>,
    /// The cache frontier.
    pub cache: Option<Sweep<sweep::CachePoint>>,
    /// The cache frontier on shadow-mode traffic.
    pub shadow: Option<Sweep<sweep::ShadowPoint>>,
    /// The trimming frontier.
    pub trim: Option<Sweep<sweep::TrimPoint>>,
    /// The values changed.
    pub changes: Vec<Change>,
    /// Levers left as they are, and why (already at the pick, no data, section off).
    pub notes: Vec<String>,
}

/// Runs `frugal calibrate`.
pub async fn run(args: &CalibrateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.router_data.is_some()
            || args.cache_pairs.is_some()
            || args.shadow_log.is_some()
            || args.trim_data.is_some(),
        "nothing to calibrate: give --router-data, --cache-pairs, --shadow-log or --trim-data"
    );
    let shares = [
        Some(args.target_quality),
        args.target_evidence,
        Some(args.max_false_hit_rate),
        Some(args.max_disagreement),
    ];
    anyhow::ensure!(
        shares
            .into_iter()
            .flatten()
            .all(|share| (0.0..=1.0).contains(&share)),
        "--target-quality, --target-evidence, --max-false-hit-rate and --max-disagreement are shares between 0 and 1"
    );
    let text = std::fs::read_to_string(&args.policy)
        .with_context(|| format!("cannot read {}", args.policy.display()))?;
    let policy = crate::policy::load(&args.policy).map_err(|errors| {
        anyhow::anyhow!("{} is not a valid policy:\n{errors}", args.policy.display())
    })?;
    let calibration = calibrate(&policy, args)?;
    let mut edited = text.clone();
    for change in &calibration.changes {
        edited = edit::set_scalar(&edited, change.key, &change.after)
            .with_context(|| format!("cannot write {} into the policy", change.key))?;
    }
    crate::policy::parse(&edited, &args.policy.display().to_string()).map_err(|errors| {
        anyhow::anyhow!("the calibrated policy does not check (a bug; nothing written):\n{errors}")
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&calibration)?);
    } else {
        print!("{}", render::report(&calibration, args));
        print!("{}", render::diff(&text, &edited));
    }
    if let Some(out) = &args.out {
        std::fs::write(out, &edited).with_context(|| format!("cannot write {}", out.display()))?;
        if !args.json {
            println!("wrote {} (it passes `frugal policy check`)", out.display());
        }
    }
    if let Some(path) = &args.plot {
        plot::draw(path, &calibration)?;
        if !args.json {
            println!("drew the frontiers into {}", path.display());
        }
    }
    if let Some(traffic_path) = &args.traffic {
        compare_on_traffic(args, traffic_path, &edited).await?;
    }
    Ok(())
}

/// Runs the sweeps the arguments ask for and collects the changes they pick.
fn calibrate(policy: &crate::policy::Policy, args: &CalibrateArgs) -> anyhow::Result<Calibration> {
    let mut calibration = Calibration::default();
    if let Some(data) = &args.router_data {
        match sweep::route(policy, data, args.target_quality, &args.embed) {
            Ok(route) => {
                let current = policy.route.start_strong_above;
                let unchanged = route
                    .picked()
                    .is_some_and(|p| (p.same_from..p.same_below).contains(&current));
                if unchanged {
                    calibration.notes.push(format!(
                        "route: start_strong_above {current:.4} already routes these rows as the picked point does"
                    ));
                } else if let Some(point) = route.picked() {
                    calibration.changes.push(Change {
                        key: "route.start_strong_above",
                        before: format!("{:.4}", policy.route.start_strong_above),
                        after: format!("{:.4}", point.start_strong_above),
                        why: format!(
                            "the cheapest point keeping {:.1}% of always-strong's quality: {:.1}% kept, {:.1}% of prompts reach the strong model, cost {:.1}% of always-strong",
                            100.0 * args.target_quality,
                            100.0 * point.quality,
                            100.0 * point.strong_share,
                            100.0 * point.cost
                        ),
                    });
                } else {
                    calibration.notes.push(format!(
                        "route: no threshold keeps {:.1}% of always-strong's quality",
                        100.0 * args.target_quality
                    ));
                }
                calibration.route = Some(route);
            }
            Err(e) => calibration.notes.push(format!("route: {e:#}")),
        }
    }
    if let Some(pairs) = &args.cache_pairs {
        match sweep::cache(policy, pairs, args.max_false_hit_rate, &args.embed) {
            Ok(cache) => {
                let before = policy.cache.semantic.as_ref().map(|s| s.threshold);
                if let Some(point) = cache.picked() {
                    calibration.changes.push(Change {
                        key: "cache.similarity_threshold",
                        before: before.map_or_else(String::new, |t| format!("{t:.3}")),
                        after: format!("{:.3}", point.similarity_threshold),
                        why: format!(
                            "the most duplicates served ({:.1}%) with false hits within {:.2}% ({:.2}%)",
                            100.0 * point.recall,
                            100.0 * args.max_false_hit_rate,
                            100.0 * point.false_hit_rate
                        ),
                    });
                } else {
                    calibration.notes.push(format!(
                        "cache: no threshold keeps false hits within {:.2}%",
                        100.0 * args.max_false_hit_rate
                    ));
                }
                calibration.cache = Some(cache);
            }
            Err(e) => calibration.notes.push(format!("cache: {e:#}")),
        }
    }
    if let Some(log) = &args.shadow_log {
        shadow_threshold(policy, log, args, &mut calibration);
    }
    if let Some(data) = &args.trim_data {
        let target = args.target_evidence.unwrap_or(args.target_quality);
        match sweep::trim(policy, data, target, &args.embed) {
            Ok(trim) => {
                if let Some(point) = trim.picked() {
                    calibration.changes.push(Change {
                        key: "trim.max_context_tokens",
                        before: policy.trim.max_context_tokens.to_string(),
                        after: point.max_context_tokens.to_string(),
                        why: format!(
                            "the smallest cap keeping {:.1}% of the gold evidence ({:.1}% kept, {:.1}% of context tokens removed)",
                            100.0 * target,
                            100.0 * point.evidence_kept,
                            100.0 * point.token_reduction
                        ),
                    });
                } else {
                    calibration.notes.push(format!(
                        "trim: no cap up to {} tokens keeps {:.1}% of the gold evidence",
                        sweep::TRIM_CAPS[sweep::TRIM_CAPS.len() - 1],
                        100.0 * target
                    ));
                }
                calibration.trim = Some(trim);
            }
            Err(e) => calibration.notes.push(format!("trim: {e:#}")),
        }
    }
    let (same, changed): (Vec<Change>, Vec<Change>) = std::mem::take(&mut calibration.changes)
        .into_iter()
        .partition(|c| c.before == c.after);
    calibration.changes = changed;
    for change in same {
        calibration.notes.push(format!(
            "{} is already {} ({})",
            change.key, change.after, change.why
        ));
    }
    Ok(calibration)
}

/// The similarity threshold from a shadow-mode decision log. With --cache-pairs too, the
/// higher of the two picks wins: both limits then hold.
fn shadow_threshold(
    policy: &crate::policy::Policy,
    log: &Path,
    args: &CalibrateArgs,
    calibration: &mut Calibration,
) {
    if policy.cache.mode == crate::policy::CacheMode::Off {
        calibration.notes.push(
            "cache (shadow log): the policy's cache is off (no `cache:` section, or `mode: off`)"
                .into(),
        );
        return;
    }
    let shadow = match sweep::shadow_cache(log, args.max_disagreement) {
        Ok(shadow) => shadow,
        Err(e) => {
            calibration.notes.push(format!("cache (shadow log): {e:#}"));
            return;
        }
    };
    let Some(point) = shadow.picked() else {
        calibration.notes.push(format!(
            "cache (shadow log): no threshold keeps disagreement within {:.1}% on at least {} compared would-be hits",
            100.0 * args.max_disagreement,
            sweep::MIN_COMPARED
        ));
        calibration.shadow = Some(shadow);
        return;
    };
    let after = format!("{:.3}", point.similarity_threshold);
    let why = format!(
        "on your traffic, the lowest threshold whose would-be hits disagree with the fresh answer at most {:.1}% of the time ({:.1}% of {}); it would serve {:.1}% of requests",
        100.0 * args.max_disagreement,
        100.0 * point.disagreement,
        point.compared,
        100.0 * point.would_serve
    );
    let key = "cache.similarity_threshold";
    match calibration.changes.iter_mut().find(|c| c.key == key) {
        Some(existing) if existing.after.as_str() >= after.as_str() => {
            calibration.notes.push(format!(
                "cache (shadow log) would pick {after}, below the pairs' pick {}",
                existing.after
            ));
        }
        Some(existing) => {
            existing.after = after;
            existing.why = format!("{why}; higher than the pairs' pick, so both limits hold");
        }
        None => calibration.changes.push(Change {
            key,
            before: policy
                .cache
                .semantic
                .as_ref()
                .map_or_else(String::new, |s| format!("{:.3}", s.threshold)),
            after,
            why,
        }),
    }
    calibration.shadow = Some(shadow);
}

/// Replays the policy before and after on `traffic`, side by side. The calibrated text is
/// written beside the original (relative paths in it resolve the same) for the replay.
async fn compare_on_traffic(
    args: &CalibrateArgs,
    traffic_path: &Path,
    edited: &str,
) -> anyhow::Result<()> {
    let pick = args
        .sample
        .map_or(traffic::Pick::All, traffic::Pick::Spread);
    let traffic = traffic::read(traffic_path, pick)?;
    let candidate = match &args.out {
        Some(out) => CandidateFile::kept(out.clone()),
        None => CandidateFile::temporary(&args.policy, edited)?,
    };
    let options = ReplayOptions {
        progress: !args.json,
        ..ReplayOptions::default()
    };
    let before = replay::replay(&args.policy, &traffic, &[], &options).await?;
    let after = replay::replay(&candidate.path, &traffic, &[], &options).await?;
    if args.json {
        println!("{}", serde_json::to_string(&before)?);
        println!("{}", serde_json::to_string(&after)?);
    } else {
        print!("{}", replay::render::table(traffic_path, &[before, after]));
    }
    Ok(())
}

/// The calibrated policy on disk for a replay: the `--out` file, or a temporary one beside the
/// original, removed when dropped.
struct CandidateFile {
    path: PathBuf,
    remove: bool,
}

impl CandidateFile {
    fn kept(path: PathBuf) -> Self {
        Self {
            path,
            remove: false,
        }
    }

    fn temporary(original: &Path, text: &str) -> anyhow::Result<Self> {
        let name = original
            .file_stem()
            .map_or_else(|| "policy".into(), |s| s.to_string_lossy().into_owned());
        let path =
            original.with_file_name(format!(".{name}.calibrated.{}.yaml", std::process::id()));
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { path, remove: true })
    }
}

impl Drop for CandidateFile {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
