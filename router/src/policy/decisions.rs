//! The `decision_log:` section, checked.

use std::path::PathBuf;

use super::compile::Errors;
use super::raw::RawDecisionLog;

/// Default size at which the log rotates: 100 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Default number of rotated files kept.
pub const DEFAULT_KEEP: usize = 5;

/// Checked decision-log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionLogPolicy {
    /// The file lines are appended to.
    pub path: PathBuf,
    /// Size at which it rotates.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: usize,
    /// Whether lines carry the messages and the answer's text.
    pub log_prompts: bool,
}

/// Checks the `decision_log:` section; `None` when the policy has none (no log).
pub(super) fn compile_decision_log(
    raw: Option<&RawDecisionLog>,
    errors: &mut Errors,
) -> Option<DecisionLogPolicy> {
    let raw = raw?;
    if raw.path.trim().is_empty() {
        errors.push("decision_log.path", "must name a file");
    }
    let max_bytes = raw.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes < 4096 {
        errors.push("decision_log.max_bytes", "must be at least 4096");
    }
    let keep = raw.keep.unwrap_or(DEFAULT_KEEP);
    if keep > 1000 {
        errors.push("decision_log.keep", "must be at most 1000");
    }
    Some(DecisionLogPolicy {
        path: PathBuf::from(&raw.path),
        max_bytes,
        keep,
        log_prompts: raw.log_prompts.unwrap_or(false),
    })
}
