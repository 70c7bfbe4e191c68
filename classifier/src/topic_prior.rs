//! The topic prior: how much the strong model is worth, on average, for prompts on a prompt's
//! topic. Topics are the training rows' labelled groups (MMLU subjects, the GSM8K benchmark,
//! MT-Bench categories); a prompt belongs to each in proportion to a softmax of its cosine to
//! the group's centroid, so a prompt between "college physics" and "high-school physics" gets a
//! blend of both. The prior is that blend of the groups' mean training targets (shrunk toward
//! the overall mean), and the logistic model adds its log-odds as a fixed offset: the model
//! learns what makes a prompt harder or easier than its topic, not the topic again.
//!
//! Why: knowing the subject alone routes MMLU at 42.5% strong calls in cross-validation, far
//! better than one linear direction in the embedding (about 50%), and a hard nearest-centroid
//! assignment throws away how sure the match is.

use serde::{Deserialize, Serialize};

use crate::train::labelled_groups;

/// The topic prior as stored in a weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicPrior {
    /// Group names, in the order of the vectors below (for inspection).
    pub groups: Vec<String>,
    /// One unit-length centroid per group.
    pub centroids: Vec<Vec<f32>>,
    /// Softmax sharpness over cosines: larger is closer to nearest-centroid.
    pub temperature: f32,
    /// Each group's shrunk mean target, strictly inside (0, 1).
    pub gains: Vec<f32>,
    /// Log-odds of the overall mean target: the prior of a prompt on no particular topic.
    pub base_logit: f32,
}

/// Settings of [`fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriorSettings {
    /// Softmax sharpness over cosines.
    pub temperature: f64,
    /// Pseudo-rows at the overall mean added to every group's mean, so a small group's prior
    /// stays near the overall one.
    pub shrinkage: f64,
}

/// Targets are kept this far inside (0, 1) so the log-odds stay finite.
const TARGET_MARGIN: f64 = 1e-3;

impl TopicPrior {
    /// Each group's share of a unit-length vector: a softmax of the cosines.
    pub fn memberships(&self, vector: &[f32]) -> Vec<f64> {
        memberships(&self.centroids, vector, f64::from(self.temperature))
    }

    /// The prior's log-odds for a unit-length vector, relative to [`TopicPrior::base_logit`]
    /// (positive: a topic where the strong model earns more than on average).
    pub fn contribution(&self, vector: &[f32]) -> f32 {
        let prior: f64 = self
            .memberships(vector)
            .iter()
            .zip(&self.gains)
            .map(|(p, g)| p * f64::from(*g))
            .sum();
        (logit(prior) - f64::from(self.base_logit)) as f32
    }

    /// Checks that the vectors fit each other and an embedding of `dim` dimensions.
    pub fn validate(&self, dim: usize) -> Result<(), String> {
        let k = self.centroids.len();
        if k == 0 || self.groups.len() != k || self.gains.len() != k {
            return Err("the topic prior needs one group name and one gain per centroid".into());
        }
        if self.centroids.iter().any(|c| c.len() != dim) {
            return Err("topic prior centroids must match the embedding length".into());
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if self.centroids.iter().any(|c| !finite(c))
            || !self.temperature.is_finite()
            || self.temperature <= 0.0
            || !self.base_logit.is_finite()
        {
            return Err("topic prior numbers must be finite, its temperature positive".into());
        }
        if self.gains.iter().any(|g| !(*g > 0.0 && *g < 1.0)) {
            return Err("topic prior gains must lie strictly between 0 and 1".into());
        }
        Ok(())
    }
}

/// Softmax of `temperature` × cosine over the centroids (the vectors are unit length).
fn memberships(centroids: &[Vec<f32>], vector: &[f32], temperature: f64) -> Vec<f64> {
    let scaled: Vec<f64> = centroids
        .iter()
        .map(|c| {
            let cosine: f32 = c.iter().zip(vector).map(|(a, b)| a * b).sum();
            temperature * f64::from(cosine)
        })
        .collect();
    let top = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scaled.iter().map(|s| (s - top).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(TARGET_MARGIN, 1.0 - TARGET_MARGIN);
    (p / (1.0 - p)).ln()
}

/// A fitted prior and, for every training row, its offset (the prior's full log-odds) with the
/// row's own target left out of its group's mean, so the model never sees its own label.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedPrior {
    /// The prior to store.
    pub prior: TopicPrior,
    /// One log-odds offset per training row, in input order.
    pub offsets: Vec<f64>,
}

/// Fits the prior on rows (unit-length vector, group, target); `None` when fewer than two
/// groups have [`crate::train::MIN_GROUP_ROWS`] rows (a prior over one topic says nothing).
/// Deterministic: groups are in name order ([`labelled_groups`]).
pub fn fit(rows: &[(&[f32], &str, f64)], settings: PriorSettings) -> Option<FittedPrior> {
    let vectors: Vec<&[f32]> = rows.iter().map(|(v, _, _)| *v).collect();
    let names: Vec<&str> = rows.iter().map(|(_, g, _)| *g).collect();
    let overall = rows.iter().map(|(_, _, t)| t).sum::<f64>() / rows.len().max(1) as f64;
    let mut groups = Vec::new();
    let mut centroids = Vec::new();
    let mut target_sums = Vec::new();
    let mut counts = Vec::new();
    for group in labelled_groups(&vectors, &names) {
        groups.push(group.name.to_owned());
        centroids.push(group.centroid);
        target_sums.push(group.members.iter().map(|&i| rows[i].2).sum::<f64>());
        counts.push(group.members.len() as f64);
    }
    if groups.len() < 2 {
        return None;
    }
    let m = settings.shrinkage.max(0.0);
    let shrunk = |sum: f64, count: f64| {
        ((sum + m * overall) / (count + m)).clamp(TARGET_MARGIN, 1.0 - TARGET_MARGIN)
    };
    let gains: Vec<f64> = target_sums
        .iter()
        .zip(&counts)
        .map(|(s, c)| shrunk(*s, *c))
        .collect();
    let offsets = rows
        .iter()
        .map(|(v, g, t)| {
            let p = memberships(&centroids, v, settings.temperature);
            let own = groups.iter().position(|name| name == g);
            let prior: f64 = p
                .iter()
                .enumerate()
                .map(|(k, share)| {
                    let gain = if Some(k) == own {
                        shrunk(target_sums[k] - t, counts[k] - 1.0)
                    } else {
                        gains[k]
                    };
                    share * gain
                })
                .sum();
            logit(prior)
        })
        .collect();
    let prior = TopicPrior {
        groups,
        centroids,
        temperature: settings.temperature as f32,
        gains: gains.iter().map(|g| *g as f32).collect(),
        base_logit: logit(overall) as f32,
    };
    Some(FittedPrior { prior, offsets })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: PriorSettings = PriorSettings {
        temperature: 20.0,
        shrinkage: 0.0,
    };

    /// 30 rows near the x axis (targets 0.9) and 30 near the y axis (targets 0.1).
    fn two_topics() -> Vec<(Vec<f32>, &'static str, f64)> {
        let mut rows = Vec::new();
        for i in 0..30 {
            let e = i as f32 * 0.002;
            let norm = (1.0 + e * e).sqrt();
            rows.push((vec![1.0 / norm, e / norm], "hard", 0.9));
            rows.push((vec![e / norm, 1.0 / norm], "easy", 0.1));
        }
        rows
    }

    fn refs<'a>(rows: &'a [(Vec<f32>, &'static str, f64)]) -> Vec<(&'a [f32], &'a str, f64)> {
        rows.iter()
            .map(|(v, g, t)| (v.as_slice(), *g, *t))
            .collect()
    }

    #[test]
    fn a_prompt_takes_its_topics_mean_and_a_blend_between_topics() {
        let rows = two_topics();
        let fitted = fit(&refs(&rows), SETTINGS).unwrap();
        let prior = &fitted.prior;
        assert_eq!(prior.groups, ["easy", "hard"]);
        assert!(prior.validate(2).is_ok());
        let hard = prior.contribution(&[1.0, 0.0]);
        let easy = prior.contribution(&[0.0, 1.0]);
        let between = prior.contribution(&[0.5f32.sqrt(), 0.5f32.sqrt()]);
        assert!(hard > 1.5 && easy < -1.5, "{hard} {easy}");
        assert!(
            between.abs() < 0.01,
            "halfway is the overall mean: {between}"
        );
    }

    #[test]
    fn a_training_rows_offset_leaves_its_own_target_out() {
        let mut rows = two_topics();
        rows[0].2 = 0.0; // one "hard" row the weak model got right anyway
        let fitted = fit(&refs(&rows), SETTINGS).unwrap();
        // Its group's mean without it is 0.9; with it, lower.
        let leave_one_out = fitted.offsets[0];
        let with_itself =
            f64::from(fitted.prior.contribution(&rows[0].0)) + f64::from(fitted.prior.base_logit);
        assert!(leave_one_out > with_itself, "{leave_one_out} {with_itself}");
        assert!((leave_one_out - logit(0.9)).abs() < 0.05, "{leave_one_out}");
    }

    #[test]
    fn small_groups_are_no_topics_and_one_topic_is_no_prior() {
        let mut rows = two_topics();
        rows.push((vec![0.6, 0.8], "tiny", 0.5));
        let fitted = fit(&refs(&rows), SETTINGS).unwrap();
        assert_eq!(fitted.prior.groups, ["easy", "hard"]);
        let one: Vec<_> = rows.into_iter().filter(|r| r.1 == "hard").collect();
        assert!(fit(&refs(&one), SETTINGS).is_none());
    }

    #[test]
    fn shrinkage_pulls_gains_toward_the_overall_mean() {
        let rows = two_topics();
        let loose = fit(&refs(&rows), SETTINGS).unwrap().prior;
        let shrunk = fit(
            &refs(&rows),
            PriorSettings {
                shrinkage: 30.0,
                ..SETTINGS
            },
        )
        .unwrap()
        .prior;
        assert!((loose.gains[1] - 0.9).abs() < 1e-6);
        assert!((shrunk.gains[1] - 0.7).abs() < 1e-6, "{}", shrunk.gains[1]);
    }

    #[test]
    fn inconsistent_priors_are_refused() {
        let mut prior = fit(&refs(&two_topics()), SETTINGS).unwrap().prior;
        assert!(prior.validate(3).is_err());
        prior.gains[0] = 1.0;
        assert!(prior.validate(2).is_err());
    }
}
