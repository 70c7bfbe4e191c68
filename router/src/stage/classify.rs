//! How hard is this request? The complexity classifier's verdict on the last user message,
//! with the policy's thresholds; the embedding is passed in (shared with the cache) and may be
//! absent, in which case its term contributes nothing.

use std::time::Instant;

use frugal_classifier::model::Thresholds;
use frugal_classifier::{features, Complexity};
use serde_json::{Map, Value};

use crate::policy::RoutePolicy;
use crate::tokens;

/// Classifies a request body; `None` only if the classifier rejects the embedding's length.
pub fn classify(
    route: &RoutePolicy,
    body: &Map<String, Value>,
    embedding: Option<&[f32]>,
) -> Option<Complexity> {
    let started = Instant::now();
    let text = tokens::last_user_text(body);
    let features = features::extract(&text);
    let thresholds = Thresholds {
        mid_above: route.start_mid_above,
        strong_above: route.start_strong_above,
    };
    let verdict = route
        .classifier
        .predict_with(&features, embedding, thresholds)
        .map_err(|e| tracing::warn!(error = %e, "classifier failed; routing without it"))
        .ok();
    tracing::debug!(
        micros = started.elapsed().as_micros() as u64,
        score = verdict.as_ref().map(|c| c.score),
        "classified"
    );
    verdict
}
