//! The question's embedding: computed once and shared by the classifier and the semantic cache.
//! An exact cache hit needs neither, so it never waits for one.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::policy::LiveState;
use crate::stage::lookup::{self, QuestionVector};
use crate::stage::semantic::{self, SemanticScope};

/// The embedding of a request's question, or why there is none.
pub struct QuestionEmbedding {
    /// The vector, when it was computed in time.
    pub vector: Option<Vec<f32>>,
    /// The question is longer than `cache.semantic_max_tokens` (no semantic lookup for it).
    pub too_long: bool,
    /// The prefilter found nothing near it, so it was not embedded (see
    /// [`QuestionVector::Deferred`]).
    pub deferred: bool,
}

impl QuestionEmbedding {
    /// No embedding asked for.
    pub fn none() -> Self {
        Self {
            vector: None,
            too_long: false,
            deferred: false,
        }
    }

    /// The vector the semantic tier may use.
    pub fn for_lookup(&self) -> QuestionVector<'_> {
        match self.vector.as_deref() {
            _ if self.too_long => QuestionVector::TooLong,
            _ if self.deferred => QuestionVector::Deferred,
            Some(vector) => QuestionVector::Ready(vector),
            None => QuestionVector::Missing,
        }
    }
}

/// What the embedding is for.
#[derive(Debug, Clone, Copy)]
pub struct Readers {
    /// The classifier reads it (the model is routed).
    pub routed: bool,
    /// The semantic tier looks it up.
    pub semantic: bool,
}

/// Embeds the question of `outbound` when the classifier or the semantic tier will read it,
/// within the policy's embedding deadline. When only the semantic tier would, and its
/// prefilter finds no stored question near, the embedding waits until after the answer.
/// `semantic_scope` is the request's [`lookup::semantic_scope`] (its question is the text
/// embedded).
pub async fn embed_question(
    live: &LiveState,
    ctx: &RequestContext,
    outbound: &Map<String, Value>,
    semantic_scope: Option<&SemanticScope>,
    readers: Readers,
) -> QuestionEmbedding {
    let Readers { routed, semantic } = readers;
    let Some(worker) = live.embedder.as_ref().filter(|_| routed || semantic) else {
        return QuestionEmbedding::none();
    };
    let question = match semantic_scope {
        Some((_, question)) => Cow::Borrowed(question.as_str()),
        None => Cow::Owned(semantic::question_text(outbound, &live.policy.trim.markers)),
    };
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
    let deferred = semantic
        && !routed
        && !too_long
        && lookup::prefilter_rules_out(&live.policy, ctx, semantic_scope);
    let vector = if routed || !(too_long || deferred) {
        worker
            .embed(&question, live.policy.embeddings.deadline)
            .await
    } else {
        None
    };
    QuestionEmbedding {
        vector,
        too_long,
        deferred,
    }
}
