//! The question's embedding: computed once and shared by the classifier and the semantic cache.
//! An exact cache hit needs neither, so it never waits for one.

use serde_json::{Map, Value};

use crate::policy::LiveState;
use crate::stage::{lookup::QuestionVector, semantic};

/// The embedding of a request's question, or why there is none.
pub struct QuestionEmbedding {
    /// The vector, when it was computed in time.
    pub vector: Option<Vec<f32>>,
    /// The question is longer than `cache.semantic_max_tokens` (no semantic lookup for it).
    pub too_long: bool,
}

impl QuestionEmbedding {
    /// No embedding asked for.
    pub fn none() -> Self {
        Self {
            vector: None,
            too_long: false,
        }
    }

    /// The vector the semantic tier may use.
    pub fn for_lookup(&self) -> QuestionVector<'_> {
        match self.vector.as_deref() {
            _ if self.too_long => QuestionVector::TooLong,
            Some(vector) => QuestionVector::Ready(vector),
            None => QuestionVector::Missing,
        }
    }
}

/// Embeds the question of `outbound` when the classifier (`routed`) or the semantic tier
/// (`semantic`) will read it, within the policy's embedding deadline.
pub async fn embed_question(
    live: &LiveState,
    outbound: &Map<String, Value>,
    routed: bool,
    semantic: bool,
) -> QuestionEmbedding {
    let Some(worker) = live.embedder.as_ref().filter(|_| routed || semantic) else {
        return QuestionEmbedding::none();
    };
    let question = semantic::question_text(outbound, &live.policy.trim.markers);
    // A question longer than `cache.semantic_max_tokens` is no semantic lookup (past the model's
    // 256 tokens its vector would stand for its beginning only, and a long question is slow to
    // embed); the classifier still takes the vector of its beginning.
    let max_tokens = live
        .policy
        .cache
        .semantic
        .as_ref()
        .map_or(usize::MAX, |s| s.max_tokens);
    let too_long = semantic && !worker.fits_within(&question, max_tokens);
    let vector = if routed || !too_long {
        worker
            .embed(&question, live.policy.embeddings.deadline)
            .await
    } else {
        None
    };
    QuestionEmbedding { vector, too_long }
}
