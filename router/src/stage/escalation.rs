//! Why a request climbed the route: the reasons a rung's answer was not served, and the steps
//! of a climb as the client sees them in `x-frugal-escalations`. One `as_str` per value feeds
//! the header, the escalation metric's `reason` label and the logs.

use std::fmt;

use frugal_classifier::answer_checks::Concern;
use frugal_classifier::Tier;

/// Why a rung's answer was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EscalationReason {
    /// The answer stopped at its token limit (`finish_reason: length`).
    Truncated,
    /// The answer has no text and no tool call.
    Empty,
    /// The answer refuses, or hedges about its own correctness.
    RefusalOrHedge,
    /// The answer is not the JSON its `response_format` asked for.
    InvalidJson,
    /// A tool call names no offered tool or its arguments do not match the tool's parameters.
    InvalidToolCall,
    /// The answer's mean token log-probability is below `checks.min_mean_logprob`.
    LowLogprob,
    /// A written calculation is wrong.
    ArithmeticError,
    /// A question wanting a number got no final result.
    NoFinalAnswer,
    /// A quantity the question gives never appears in the worked answer.
    UnusedQuantity,
    /// The rung's call failed (after its retries) or its reply was unusable.
    UpstreamError,
}

impl EscalationReason {
    /// Every reason, in the order checks run.
    pub const ALL: [Self; 10] = [
        Self::Truncated,
        Self::Empty,
        Self::RefusalOrHedge,
        Self::InvalidJson,
        Self::InvalidToolCall,
        Self::LowLogprob,
        Self::ArithmeticError,
        Self::NoFinalAnswer,
        Self::UnusedQuantity,
        Self::UpstreamError,
    ];

    /// The label in headers, metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Empty => "empty",
            Self::RefusalOrHedge => "refusal_or_hedge",
            Self::InvalidJson => "invalid_json",
            Self::InvalidToolCall => "invalid_tool_call",
            Self::LowLogprob => "low_logprob",
            Self::ArithmeticError => "arithmetic_error",
            Self::NoFinalAnswer => "no_final_answer",
            Self::UnusedQuantity => "unused_quantity",
            Self::UpstreamError => "upstream_error",
        }
    }
}

impl From<Concern> for EscalationReason {
    fn from(concern: Concern) -> Self {
        match concern {
            Concern::ArithmeticError => Self::ArithmeticError,
            Concern::Truncated => Self::Truncated,
            Concern::NoFinalAnswer => Self::NoFinalAnswer,
            Concern::UnusedQuantity => Self::UnusedQuantity,
            Concern::RefusalOrHedge => Self::RefusalOrHedge,
        }
    }
}

impl fmt::Display for EscalationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a climb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escalation {
    /// A rung's answer was passed over for the next rung, for these reasons (never empty).
    Climbed(Vec<EscalationReason>),
    /// The last rung tried failed, so an earlier rung's answer was served; not an escalation.
    RungFailed(Option<Tier>),
}

impl Escalation {
    /// Whether this step moved the request up a rung.
    pub fn is_escalation(&self) -> bool {
        matches!(self, Self::Climbed(_))
    }
}

impl fmt::Display for Escalation {
    /// Reasons joined by `+` (`truncated+low_logprob`), or `<tier>_failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Climbed(reasons) => {
                for (i, reason) in reasons.iter().enumerate() {
                    if i > 0 {
                        f.write_str("+")?;
                    }
                    f.write_str(reason.as_str())?;
                }
                Ok(())
            }
            Self::RungFailed(tier) => write!(f, "{}_failed", tier.map_or("model", Tier::as_str)),
        }
    }
}

/// The `x-frugal-escalations` value: the steps in order, comma separated.
pub fn header_value(steps: &[Escalation]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Escalations among the steps (a failed last rung is not one).
pub fn count(steps: &[Escalation]) -> u64 {
    steps.iter().filter(|s| s.is_escalation()).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_as_the_header_always_has() {
        let steps = vec![
            Escalation::Climbed(vec![
                EscalationReason::Truncated,
                EscalationReason::LowLogprob,
            ]),
            Escalation::Climbed(vec![EscalationReason::UpstreamError]),
            Escalation::RungFailed(Some(Tier::Strong)),
        ];
        assert_eq!(
            header_value(&steps),
            "truncated+low_logprob,upstream_error,strong_failed"
        );
        assert_eq!(count(&steps), 2);
        assert_eq!(Escalation::RungFailed(None).to_string(), "model_failed");
    }

    #[test]
    fn every_concern_keeps_its_label() {
        for concern in Concern::ALL {
            assert_eq!(EscalationReason::from(concern).as_str(), concern.as_str());
        }
    }
}
