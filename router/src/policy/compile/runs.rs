//! The `runs:` section: per-run caps and loop detection.

use std::time::Duration;

use super::super::locate::join;
use super::super::raw::RawRuns;
use super::errors::Errors;
use super::types::{LoopAction, RunPolicy};
use super::values::duration;

pub(super) fn compile_runs(raw: Option<&RawRuns>, errors: &mut Errors) -> RunPolicy {
    let Some(raw) = raw else {
        return RunPolicy::default();
    };
    let max_cost = raw.max_cost_usd.and_then(|usd| {
        if usd.is_finite() && usd > 0.0 {
            Some(crate::money::Usd::from_dollars(usd))
        } else {
            errors.push("runs.max_cost_usd", "must be a positive number of dollars");
            None
        }
    });
    for (key, value) in [
        ("max_tokens", raw.max_tokens),
        ("loop_max_repeats", raw.loop_max_repeats),
    ] {
        if value == Some(0) {
            errors.push(join("runs", key), "must be at least 1");
        }
    }
    let loop_action = match raw.loop_action.as_deref() {
        None | Some("block") => LoopAction::Block,
        Some("flag") => LoopAction::Flag,
        Some(other) => {
            errors.push(
                "runs.loop_action",
                format!("`{other}` is not an action: use block or flag"),
            );
            LoopAction::Block
        }
    };
    RunPolicy {
        max_cost,
        max_tokens: raw.max_tokens,
        loop_max_repeats: raw.loop_max_repeats,
        loop_action,
        idle_ttl: duration(
            raw.idle_ttl.as_deref(),
            "runs.idle_ttl",
            Duration::from_secs(3600),
            errors,
        ),
    }
}
