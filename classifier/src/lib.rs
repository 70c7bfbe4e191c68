//! frugal-classifier: how hard is a prompt? It turns a request into a [`Complexity`] (a score
//! in [0, 1], the routing tier that score selects, and the reasons behind it) so the router can
//! send easy prompts to a cheap model first and hard ones straight to a strong one.
//!
//! [`features`] computes cheap named text features; [`model`] is the small logistic model over
//! those features and the prompt embedding (passed in: the classifier never loads a second
//! embedding model), stored as JSON under `policies/models/`; [`answer_checks`] inspects a cheap
//! answer for evidence that it should be escalated. The offline side — [`data`] (labelled rows,
//! the only module that reads files), [`train`] (fitting and cross-validation) and [`curve`]
//! (RouteLLM's cost/quality figures) — serves `frugal train` and `frugal eval router`. No
//! network, no async: usable from the server and from offline tools alike.

pub mod answer_checks;
pub mod curve;
pub mod data;
pub mod features;
pub mod model;
pub mod topic_prior;
pub mod train;

use serde::Serialize;

/// A rung of the routing ladder, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The cheapest model of the ladder.
    Cheap,
    /// A middle rung, where the policy has one.
    Mid,
    /// The strongest (most expensive) model.
    Strong,
}

impl Tier {
    /// The label used in headers and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cheap => "cheap",
            Self::Mid => "mid",
            Self::Strong => "strong",
        }
    }
}

/// Why a prompt scored as it did: one feature and how much it pushed the score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// The feature's name, e.g. `code_block` or `multi_step_cue`.
    pub feature: &'static str,
    /// Its contribution to the score's log-odds (positive means harder).
    pub weight: f32,
}

/// The classifier's verdict on one prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Complexity {
    /// Probability-like score in [0, 1] that the cheap model would fall short.
    pub score: f32,
    /// The tier the score selects under the policy's thresholds.
    pub tier: Tier,
    /// The strongest contributions, largest first.
    pub reasons: Vec<Reason>,
}

impl Complexity {
    /// Picks the tier for a score given the policy's thresholds (`mid_above` ≤ `strong_above`).
    pub fn from_score(score: f32, mid_above: f32, strong_above: f32, reasons: Vec<Reason>) -> Self {
        let score = if score.is_nan() {
            1.0
        } else {
            score.clamp(0.0, 1.0)
        };
        let tier = if score > strong_above {
            Tier::Strong
        } else if score > mid_above {
            Tier::Mid
        } else {
            Tier::Cheap
        };
        Self {
            score,
            tier,
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_pick_the_tier() {
        assert_eq!(
            Complexity::from_score(0.1, 0.4, 0.7, vec![]).tier,
            Tier::Cheap
        );
        assert_eq!(
            Complexity::from_score(0.5, 0.4, 0.7, vec![]).tier,
            Tier::Mid
        );
        assert_eq!(
            Complexity::from_score(0.9, 0.4, 0.7, vec![]).tier,
            Tier::Strong
        );
    }

    #[test]
    fn nan_scores_are_treated_as_hard() {
        let c = Complexity::from_score(f32::NAN, 0.4, 0.7, vec![]);
        assert_eq!((c.score, c.tier), (1.0, Tier::Strong));
    }
}
