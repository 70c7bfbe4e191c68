//! The routing and resilience sections of a policy, checked: the ladder, the classifier and its
//! thresholds, the escalation checks, retries and circuit breakers.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use frugal_classifier::answer_checks::DEFAULT_HEDGES;
use frugal_classifier::model::ComplexityModel;

use super::compile::{duration, unknown_reference, Errors};
use super::raw::{RawChecks, RawCircuitBreaker, RawRetries, RawRoute};

/// The classifier weights built into the binary (`policies/models/complexity.json`).
pub const BUILTIN_CLASSIFIER: &str = include_str!("../../../policies/models/complexity.json");

/// Whether routing changes which model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    /// Every request goes to the model it names.
    Off,
    /// Requests are classified and their would-be start tier counted; the named model answers.
    Shadow,
    /// Routed requests climb the ladder.
    On,
}

impl RouteMode {
    /// The mode's name in policies and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Shadow => "shadow",
            Self::On => "on",
        }
    }
}

/// How a streamed request is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCascade {
    /// Lower rungs answer in full and are checked before anything is sent, then replayed as SSE.
    Buffer,
    /// The start rung streams live; no escalation once it answers.
    Direct,
}

/// Checked routing settings.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// Off, shadow or on.
    pub mode: RouteMode,
    /// Model aliases, cheapest first; every one is a key of `Policy::models`. Empty when off.
    pub ladder: Vec<String>,
    /// Requested aliases that are routed.
    pub routed_models: BTreeSet<String>,
    /// The complexity classifier.
    pub classifier: Arc<ComplexityModel>,
    /// Scores above this start on the strongest rung.
    pub start_strong_above: f32,
    /// Scores above this (and not above `start_strong_above`) start on the middle rung.
    pub start_mid_above: f32,
    /// Most escalations per request.
    pub max_escalations: u32,
    /// How streamed requests are routed.
    pub stream_cascade: StreamCascade,
    /// The confidence checks.
    pub checks: CheckPolicy,
}

impl RoutePolicy {
    /// Whether requests for `alias` are classified (shadow) or routed (on).
    pub fn applies_to(&self, alias: &str) -> bool {
        self.mode != RouteMode::Off && self.routed_models.contains(alias)
    }
}

/// Which confidence checks run on a lower rung's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckPolicy {
    /// finish_reason `length`.
    pub truncated: bool,
    /// No text and no tool call.
    pub empty: bool,
    /// A hedge or refusal phrase.
    pub refusal_or_hedge: bool,
    /// The phrases, lower-cased.
    pub hedge_phrases: Vec<String>,
    /// JSON response formats are honoured.
    pub invalid_json: bool,
    /// Tool calls are well-formed.
    pub invalid_tool_call: bool,
    /// Mean token logprob floor, if checked.
    pub min_mean_logprob: Option<f64>,
    /// Written arithmetic is right, and numeric questions get a stated answer.
    pub math: bool,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        Self {
            truncated: true,
            empty: true,
            refusal_or_hedge: true,
            hedge_phrases: DEFAULT_HEDGES.iter().map(|p| p.to_string()).collect(),
            invalid_json: true,
            invalid_tool_call: true,
            min_mean_logprob: None,
            math: true,
        }
    }
}

/// Checked retry settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Calls per model per request, the first included.
    pub max_attempts: u32,
    /// Retries may add at most this share of first calls.
    pub budget_ratio: f64,
    /// Retries allowed on top of the ratio.
    pub budget_reserve: u32,
    /// First backoff.
    pub backoff: Duration,
    /// Longest backoff and longest `Retry-After` honoured.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            budget_ratio: 0.2,
            budget_reserve: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Checked circuit-breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

/// Checks the `route:` section; `models` are the known aliases, `base_dir` the policy's folder.
/// `None` when the classifier cannot be loaded (the error is listed).
pub(super) fn compile_route(
    raw: Option<&RawRoute>,
    models: &[&str],
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<RoutePolicy> {
    let default_raw = RawRoute::default();
    let raw = raw.unwrap_or(&default_raw);
    let mode = match raw.mode.as_ref().map(|m| m.name()) {
        None if raw.ladder.is_empty() => RouteMode::Off,
        None | Some("on") => RouteMode::On,
        Some("off") => RouteMode::Off,
        Some("shadow") => RouteMode::Shadow,
        Some(other) => {
            errors.push(
                "route.mode",
                format!("`{other}` is not a mode: use off, shadow or on"),
            );
            RouteMode::Off
        }
    };
    if mode != RouteMode::Off && !(2..=3).contains(&raw.ladder.len()) {
        errors.push(
            "route.ladder",
            format!(
                "a ladder has two rungs (cheap, strong) or three (cheap, mid, strong), found {}",
                raw.ladder.len()
            ),
        );
    }
    check_aliases("route.ladder", &raw.ladder, models, errors);
    let mut seen = BTreeSet::new();
    for alias in &raw.ladder {
        if !seen.insert(alias) {
            errors.push("route.ladder", format!("`{alias}` appears twice"));
        }
    }
    let routed_models: BTreeSet<String> = match &raw.routed_models {
        Some(list) => {
            check_aliases("route.routed_models", list, models, errors);
            list.iter().cloned().collect()
        }
        None => raw.ladder.last().cloned().into_iter().collect(),
    };
    let classifier = load_classifier(raw.classifier.as_deref(), base_dir, errors);
    let thresholds = classifier.as_ref().map(|c| c.thresholds);
    let start_strong_above = raw
        .start_strong_above
        .or(thresholds.map(|t| t.strong_above))
        .unwrap_or(0.5);
    if let Some(mid) = raw.start_mid_above.filter(|mid| *mid > start_strong_above) {
        errors.push(
            "route.start_mid_above",
            format!(
                "{mid} is above start_strong_above ({start_strong_above}), so no prompt would start on the middle rung"
            ),
        );
    }
    let start_mid_above = raw
        .start_mid_above
        .or(thresholds.map(|t| t.mid_above))
        .unwrap_or(start_strong_above)
        .min(start_strong_above);
    for (key, value) in [
        ("start_strong_above", start_strong_above),
        ("start_mid_above", start_mid_above),
    ] {
        if !(0.0..=1.0).contains(&value) {
            errors.push(format!("route.{key}"), "must be between 0 and 1");
        }
    }
    let max_escalations = raw
        .max_escalations
        .unwrap_or_else(|| u32::try_from(raw.ladder.len().saturating_sub(1)).unwrap_or(0));
    let stream_cascade = match raw.stream_cascade.as_deref() {
        None | Some("buffer") => StreamCascade::Buffer,
        Some("direct") => StreamCascade::Direct,
        Some(other) => {
            errors.push(
                "route.stream_cascade",
                format!("`{other}` is not a cascade mode: use buffer or direct"),
            );
            StreamCascade::Buffer
        }
    };
    let checks = compile_checks(raw.checks.as_ref(), errors);
    Some(RoutePolicy {
        mode,
        ladder: if mode == RouteMode::Off {
            Vec::new()
        } else {
            raw.ladder.clone()
        },
        routed_models,
        classifier: Arc::new(classifier?),
        start_strong_above,
        start_mid_above,
        max_escalations,
        stream_cascade,
        checks,
    })
}

fn check_aliases(path: &str, list: &[String], models: &[&str], errors: &mut Errors) {
    for alias in list {
        if !models.contains(&alias.as_str()) {
            errors.push(path, unknown_reference("model", alias, models));
        }
    }
}

/// [`BUILTIN_CLASSIFIER`], parsed once: every compile (each reload, each `policy check`) needs
/// it, and parsing its 570 KB of JSON was most of a compile's time.
static BUILTIN_MODEL: std::sync::LazyLock<Result<ComplexityModel, String>> =
    std::sync::LazyLock::new(|| {
        ComplexityModel::from_json(BUILTIN_CLASSIFIER).map_err(|e| e.to_string())
    });

fn load_classifier(
    path: Option<&str>,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<ComplexityModel> {
    let (text, origin) = match path {
        None => {
            return match &*BUILTIN_MODEL {
                Ok(model) => Some(model.clone()),
                Err(e) => {
                    errors.push(
                        "route.classifier",
                        format!("the built-in weights are not usable: {e}"),
                    );
                    None
                }
            }
        }
        Some(path) => {
            let full = base_dir.join(path);
            match std::fs::read_to_string(&full) {
                Ok(text) => (text, full.display().to_string()),
                Err(e) => {
                    errors.push(
                        "route.classifier",
                        format!("cannot read {}: {e}", full.display()),
                    );
                    return None;
                }
            }
        }
    };
    match ComplexityModel::from_json(&text) {
        Ok(model) => Some(model),
        Err(e) => {
            errors.push("route.classifier", format!("{origin} are not usable: {e}"));
            None
        }
    }
}

fn compile_checks(raw: Option<&RawChecks>, errors: &mut Errors) -> CheckPolicy {
    let defaults = CheckPolicy::default();
    let Some(raw) = raw else { return defaults };
    if let Some(floor) = raw.min_mean_logprob {
        if !floor.is_finite() || floor >= 0.0 {
            errors.push(
                "route.checks.min_mean_logprob",
                "must be a negative log-probability such as -1.0",
            );
        }
    }
    let hedge_phrases = match &raw.hedge_phrases {
        Some(list) => {
            if list.iter().any(|p| p.trim().is_empty()) {
                errors.push("route.checks.hedge_phrases", "phrases must not be empty");
            }
            list.iter().map(|p| p.to_lowercase()).collect()
        }
        None => defaults.hedge_phrases,
    };
    CheckPolicy {
        truncated: raw.truncated.unwrap_or(defaults.truncated),
        empty: raw.empty.unwrap_or(defaults.empty),
        refusal_or_hedge: raw.refusal_or_hedge.unwrap_or(defaults.refusal_or_hedge),
        hedge_phrases,
        invalid_json: raw.invalid_json.unwrap_or(defaults.invalid_json),
        invalid_tool_call: raw.invalid_tool_call.unwrap_or(defaults.invalid_tool_call),
        min_mean_logprob: raw.min_mean_logprob,
        math: raw.math.unwrap_or(defaults.math),
    }
}

/// Checks the `retries:` section.
pub(super) fn compile_retries(raw: Option<&RawRetries>, errors: &mut Errors) -> RetryPolicy {
    let defaults = RetryPolicy::default();
    let Some(raw) = raw else { return defaults };
    let max_attempts = raw.max_attempts.unwrap_or(defaults.max_attempts);
    if !(1..=10).contains(&max_attempts) {
        errors.push("retries.max_attempts", "must be between 1 and 10");
    }
    let budget_ratio = raw.budget_ratio.unwrap_or(defaults.budget_ratio);
    if !(0.0..=1.0).contains(&budget_ratio) {
        errors.push("retries.budget_ratio", "must be between 0 and 1");
    }
    let backoff = duration(
        raw.backoff.as_deref(),
        "retries.backoff",
        defaults.backoff,
        errors,
    );
    let max_backoff = duration(
        raw.max_backoff.as_deref(),
        "retries.max_backoff",
        defaults.max_backoff,
        errors,
    );
    if max_backoff < backoff {
        errors.push("retries.max_backoff", "must not be shorter than `backoff`");
    }
    RetryPolicy {
        max_attempts,
        budget_ratio,
        budget_reserve: raw.budget_reserve.unwrap_or(defaults.budget_reserve),
        backoff,
        max_backoff,
    }
}

/// Checks the `circuit_breaker:` section.
pub(super) fn compile_breaker(
    raw: Option<&RawCircuitBreaker>,
    errors: &mut Errors,
) -> BreakerPolicy {
    let defaults = BreakerPolicy::default();
    let Some(raw) = raw else { return defaults };
    let failure_threshold = raw.failure_threshold.unwrap_or(defaults.failure_threshold);
    if failure_threshold == 0 {
        errors.push("circuit_breaker.failure_threshold", "must be at least 1");
    }
    BreakerPolicy {
        failure_threshold,
        open_for: duration(
            raw.open_for.as_deref(),
            "circuit_breaker.open_for",
            defaults.open_for,
            errors,
        ),
    }
}
