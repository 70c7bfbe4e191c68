//! The complexity model: logistic regression over the standardised [`crate::features`] and the
//! standardised prompt embedding, stored as readable JSON (feature names, means and standard
//! deviations, weights, bias, thresholds, and how it was trained). Every contribution to a score
//! is a named term, so the strongest ones become the [`Reason`]s the router reports.

use serde::{Deserialize, Serialize};

use crate::features::{self, Features};
use crate::topic_prior::TopicPrior;
use crate::{Complexity, Reason};

/// The `format` field of a weights file this crate reads.
pub const FORMAT: &str = "frugal-complexity-logreg";

/// The weights-file version this crate writes and reads.
pub const VERSION: u32 = 1;

/// How many reasons [`ComplexityModel::predict`] reports.
pub const MAX_REASONS: usize = 3;

/// The reason label for the embedding's summed contribution.
pub const EMBEDDING_REASON: &str = "embedding";

/// A trained complexity model, as stored in `policies/models/complexity.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplexityModel {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// Feature names, in the order of the vectors below; must equal [`features::NAMES`].
    pub feature_names: Vec<String>,
    /// Mean of each feature over the training rows.
    pub feature_means: Vec<f32>,
    /// Standard deviation of each feature over the training rows (never 0).
    pub feature_stds: Vec<f32>,
    /// Weight of each standardised feature.
    pub feature_weights: Vec<f32>,
    /// The embedding part, absent for a features-only model.
    pub embedding: Option<EmbeddingWeights>,
    /// The topic part, absent when the model was trained without topics.
    #[serde(default)]
    pub topics: Option<TopicWeights>,
    /// The soft topic prior, an offset to the log-odds; absent when trained without it.
    #[serde(default)]
    pub topic_prior: Option<TopicPrior>,
    /// Intercept of the logistic model.
    pub bias: f32,
    /// Thresholds recommended from cross-validation; a policy may override them.
    pub thresholds: Thresholds,
    /// How the model was trained and what cross-validation said.
    pub training: serde_json::Value,
}

/// Weights over the standardised embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingWeights {
    /// Which embedding model produced the training vectors (e.g. `all-MiniLM-L6-v2-int8`).
    pub model: String,
    /// Mean of each dimension over the training rows.
    pub means: Vec<f32>,
    /// Standard deviation of each dimension over the training rows (never 0).
    pub stds: Vec<f32>,
    /// Weight of each standardised dimension.
    pub weights: Vec<f32>,
}

/// Topics: unit-length centroids of the training embeddings (spherical k-means) and the
/// log-odds each adds when it is a prompt's nearest, relative to the average prompt. They let
/// a linear model give each region of the embedding space its own offset ("law questions are
/// where the strong model earns its price"), which one direction in that space cannot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicWeights {
    /// One unit-length centroid per topic.
    pub centroids: Vec<Vec<f32>>,
    /// Log-odds contribution of each topic.
    pub weights: Vec<f32>,
    /// Share of training rows nearest each topic (for inspection).
    pub shares: Vec<f32>,
}

impl TopicWeights {
    /// The topic whose centroid is most similar to a unit-length vector.
    pub fn nearest(&self, vector: &[f32]) -> Option<usize> {
        nearest_centroid(&self.centroids, vector)
    }
}

/// Index of the centroid with the largest dot product with `vector`.
pub fn nearest_centroid(centroids: &[Vec<f32>], vector: &[f32]) -> Option<usize> {
    centroids
        .iter()
        .map(|c| c.iter().zip(vector).map(|(a, b)| a * b).sum::<f32>())
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// The reason label for the topic's contribution.
pub const TOPIC_REASON: &str = "topic";

/// Score thresholds that pick the start tier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Above this score a prompt starts on the middle rung (equal to `strong_above` when the
    /// ladder has none).
    pub mid_above: f32,
    /// Above this score a prompt starts on the strong model.
    pub strong_above: f32,
}

/// Why a weights file or an input does not fit the model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The file is not JSON of the expected shape.
    #[error("not a complexity model: {0}")]
    Parse(String),
    /// The file's format or version is not the one this build reads.
    #[error(
        "model format {format} v{version} is not {FORMAT} v{VERSION}: retrain with `frugal train`"
    )]
    Version {
        /// The file's format.
        format: String,
        /// The file's version.
        version: u32,
    },
    /// The file's features are not this build's.
    #[error("model features {found:?} differ from this build's {expected:?}: retrain with `frugal train`")]
    Features {
        /// The file's feature names.
        found: Vec<String>,
        /// This build's feature names.
        expected: Vec<&'static str>,
    },
    /// Vectors of the wrong length, non-finite numbers or zero deviations.
    #[error("model is inconsistent: {0}")]
    Invalid(String),
    /// An embedding of the wrong length was passed in.
    #[error("embedding has {actual} dimensions, the model expects {expected}")]
    EmbeddingDim {
        /// The model's embedding length.
        expected: usize,
        /// The length passed in.
        actual: usize,
    },
}

/// A score with every named contribution to its log-odds.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Probability-like score in [0, 1].
    pub score: f32,
    /// Contributions of each feature (and of the embedding, summed), in [`features::NAMES`]
    /// order with the embedding last.
    pub contributions: Vec<Reason>,
}

impl ComplexityModel {
    /// Parses and checks a weights file's JSON.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let model: Self =
            serde_json::from_str(json).map_err(|e| ModelError::Parse(e.to_string()))?;
        model.validate()?;
        Ok(model)
    }

    /// The model as indented JSON, ready to commit: objects one key per line, arrays of
    /// numbers packed onto lines of about 100 characters so the file stays readable.
    pub fn to_json(&self) -> String {
        // Serialising plain numbers, strings and a JSON value cannot fail.
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut out = String::new();
        write_json(&value, 0, &mut out);
        out
    }

    /// Checks format, version, feature names and that every vector fits.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.format != FORMAT || self.version != VERSION {
            return Err(ModelError::Version {
                format: self.format.clone(),
                version: self.version,
            });
        }
        if !self.feature_names.iter().eq(features::NAMES.iter()) {
            return Err(ModelError::Features {
                found: self.feature_names.clone(),
                expected: features::NAMES.to_vec(),
            });
        }
        let invalid = |what: &str| Err(ModelError::Invalid(what.to_owned()));
        let n = features::COUNT;
        if self.feature_means.len() != n
            || self.feature_stds.len() != n
            || self.feature_weights.len() != n
        {
            return invalid("feature vectors must have one entry per feature");
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        let positive = |v: &[f32]| v.iter().all(|x| x.is_finite() && *x > 0.0);
        if !finite(&self.feature_means) || !finite(&self.feature_weights) || !self.bias.is_finite()
        {
            return invalid("weights and means must be finite");
        }
        if !positive(&self.feature_stds) {
            return invalid("standard deviations must be positive");
        }
        if let Some(e) = &self.embedding {
            let d = e.weights.len();
            if d == 0 || e.means.len() != d || e.stds.len() != d {
                return invalid("embedding means, stds and weights must have the same length");
            }
            if !finite(&e.means) || !finite(&e.weights) || !positive(&e.stds) {
                return invalid("embedding numbers must be finite, deviations positive");
            }
        }
        if let Some(t) = &self.topics {
            let d = self.embedding_dim().unwrap_or(0);
            let k = t.centroids.len();
            if k == 0 || t.weights.len() != k || t.shares.len() != k {
                return invalid("topics need one weight and one share per centroid");
            }
            if t.centroids.iter().any(|c| c.len() != d || !finite(c)) || !finite(&t.weights) {
                return invalid("topic centroids must match the embedding length and be finite");
            }
        }
        if let Some(prior) = &self.topic_prior {
            prior
                .validate(self.embedding_dim().unwrap_or(0))
                .map_err(ModelError::Invalid)?;
        }
        let t = self.thresholds;
        if !(0.0..=1.0).contains(&t.mid_above)
            || !(0.0..=1.0).contains(&t.strong_above)
            || t.mid_above > t.strong_above
        {
            return invalid("thresholds must satisfy 0 <= mid_above <= strong_above <= 1");
        }
        Ok(())
    }

    /// Length of the embedding the model expects, if it uses one.
    pub fn embedding_dim(&self) -> Option<usize> {
        self.embedding.as_ref().map(|e| e.weights.len())
    }

    /// Scores a prompt. Without an embedding (e.g. the embedder missed its deadline) the
    /// embedding term is its training mean, i.e. contributes nothing.
    pub fn score(
        &self,
        features: &Features,
        embedding: Option<&[f32]>,
    ) -> Result<Scored, ModelError> {
        let mut contributions = Vec::with_capacity(features::COUNT + 1);
        let mut logit = self.bias;
        for (i, name) in features::NAMES.iter().enumerate() {
            let z = (features.values[i] - self.feature_means[i]) / self.feature_stds[i];
            let c = self.feature_weights[i] * z;
            logit += c;
            contributions.push(Reason {
                feature: name,
                weight: c,
            });
        }
        if let (Some(weights), Some(vector)) = (&self.embedding, embedding) {
            if vector.len() != weights.weights.len() {
                return Err(ModelError::EmbeddingDim {
                    expected: weights.weights.len(),
                    actual: vector.len(),
                });
            }
            let c: f32 = vector
                .iter()
                .zip(&weights.means)
                .zip(&weights.stds)
                .zip(&weights.weights)
                .map(|(((x, m), s), w)| w * (x - m) / s)
                .sum();
            logit += c;
            contributions.push(Reason {
                feature: EMBEDDING_REASON,
                weight: c,
            });
            if let Some(topic) = self.topics.as_ref() {
                if let Some(k) = topic.nearest(vector) {
                    let c = topic.weights[k];
                    logit += c;
                    contributions.push(Reason {
                        feature: TOPIC_REASON,
                        weight: c,
                    });
                }
            }
            if let Some(prior) = self.topic_prior.as_ref() {
                let c = prior.contribution(vector);
                logit += c;
                contributions.push(Reason {
                    feature: TOPIC_REASON,
                    weight: c,
                });
            }
        }
        Ok(Scored {
            score: sigmoid(logit),
            contributions,
        })
    }

    /// Scores a prompt and picks its tier with the model's own thresholds.
    pub fn predict(
        &self,
        features: &Features,
        embedding: Option<&[f32]>,
    ) -> Result<Complexity, ModelError> {
        self.predict_with(features, embedding, self.thresholds)
    }

    /// Scores a prompt and picks its tier with the given thresholds (the policy's).
    pub fn predict_with(
        &self,
        features: &Features,
        embedding: Option<&[f32]>,
        thresholds: Thresholds,
    ) -> Result<Complexity, ModelError> {
        let scored = self.score(features, embedding)?;
        Ok(Complexity::from_score(
            scored.score,
            thresholds.mid_above,
            thresholds.strong_above,
            strongest(scored.contributions, MAX_REASONS),
        ))
    }
}

fn write_json(value: &serde_json::Value, depth: usize, out: &mut String) {
    use serde_json::Value;
    let pad = |n: usize| "  ".repeat(n);
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (key, v)) in map.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_json(v, depth + 1, out);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(items) if items.iter().all(|v| v.is_number()) && !items.is_empty() => {
            out.push_str("[\n");
            let mut line = pad(depth + 1);
            for (i, v) in items.iter().enumerate() {
                let text = v.to_string();
                if line.len() + text.len() > 100 && !line.trim().is_empty() {
                    out.push_str(line.trim_end());
                    out.push('\n');
                    line = pad(depth + 1);
                }
                line.push_str(&text);
                if i + 1 < items.len() {
                    line.push_str(", ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
            out.push_str(&pad(depth));
            out.push(']');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, v) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                write_json(v, depth + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The `n` contributions of largest magnitude, largest first; zero contributions are dropped.
pub fn strongest(mut contributions: Vec<Reason>, n: usize) -> Vec<Reason> {
    contributions.retain(|r| r.weight != 0.0);
    contributions.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    contributions.truncate(n);
    contributions
}

/// The logistic function, safe for large magnitudes.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tier;

    fn toy() -> ComplexityModel {
        let n = features::COUNT;
        let mut weights = vec![0.0; n];
        weights[0] = 2.0; // length_tokens
        weights[2] = -0.5; // code_block
        ComplexityModel {
            format: FORMAT.to_owned(),
            version: VERSION,
            feature_names: features::NAMES.iter().map(|s| (*s).to_owned()).collect(),
            feature_means: vec![0.0; n],
            feature_stds: vec![1.0; n],
            feature_weights: weights,
            embedding: Some(EmbeddingWeights {
                model: "toy".to_owned(),
                means: vec![0.0, 0.0],
                stds: vec![1.0, 1.0],
                weights: vec![1.0, -1.0],
            }),
            topics: None,
            topic_prior: None,
            bias: -3.0,
            thresholds: Thresholds {
                mid_above: 0.5,
                strong_above: 0.5,
            },
            training: serde_json::json!({}),
        }
    }

    #[test]
    fn json_round_trips() {
        let model = toy();
        assert_eq!(ComplexityModel::from_json(&model.to_json()).unwrap(), model);
    }

    #[test]
    fn reasons_name_the_strongest_contributions() {
        let model = toy();
        let mut f = Features {
            values: [0.0; features::COUNT],
        };
        f.values[0] = 2.0;
        let c = model.predict(&f, Some(&[0.5, 0.0])).unwrap();
        // logit = -3 + 4 + 0.5 = 1.5
        assert!((c.score - sigmoid(1.5)).abs() < 1e-6);
        assert_eq!(c.tier, Tier::Strong);
        let names: Vec<_> = c.reasons.iter().map(|r| r.feature).collect();
        assert_eq!(names, ["length_tokens", "embedding"]);
    }

    #[test]
    fn missing_embedding_contributes_nothing() {
        let model = toy();
        let f = Features {
            values: [0.0; features::COUNT],
        };
        let c = model.predict(&f, None).unwrap();
        assert!((c.score - sigmoid(-3.0)).abs() < 1e-6);
        assert_eq!(c.tier, Tier::Cheap);
    }

    #[test]
    fn wrong_embedding_length_is_an_error() {
        let f = Features {
            values: [0.0; features::COUNT],
        };
        let err = toy().predict(&f, Some(&[1.0; 3])).unwrap_err();
        assert_eq!(
            err,
            ModelError::EmbeddingDim {
                expected: 2,
                actual: 3
            }
        );
    }

    #[test]
    fn file_with_other_features_is_refused() {
        let mut model = toy();
        model.feature_names[0] = "something_else".to_owned();
        let err = ComplexityModel::from_json(&model.to_json()).unwrap_err();
        assert!(matches!(err, ModelError::Features { .. }), "{err}");
    }

    #[test]
    fn zero_deviation_is_refused() {
        let mut model = toy();
        model.feature_stds[3] = 0.0;
        assert!(matches!(model.validate(), Err(ModelError::Invalid(_))));
    }
}
