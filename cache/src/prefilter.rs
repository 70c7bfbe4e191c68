//! The semantic tier's prefilter: the static vectors ([`StaticEmbedder`]) of every question the
//! semantic index holds, per scope. A question whose static vector is below the prefilter's
//! threshold from all of them has, on the development pairs, no MiniLM neighbour near enough to
//! be served, so its MiniLM embedding can wait until after the answer is sent: the request
//! goes upstream without it. The prefilter only ever rules candidates out; whether one is served
//! is decided by MiniLM's similarity and the guards, exactly as without it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::index::IndexConfig;
use crate::scope::{CacheKey, ScopeKey};
use crate::semantic::SemanticIndex;
use crate::static_embed::StaticEmbedder;

/// What the prefilter says of a question in its scope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Screened {
    /// The scope holds no question: nothing to be near.
    Empty,
    /// The nearest stored question's static similarity is below the threshold.
    Far {
        /// That similarity.
        similarity: f32,
    },
    /// A stored question is at or above the threshold (or the prefilter cannot tell): the
    /// question is embedded and looked up as usual.
    Near {
        /// The nearest stored question's static similarity.
        similarity: f32,
    },
}

impl Screened {
    /// Whether the question may have a neighbour worth the model's embedding.
    pub fn is_near(self) -> bool {
        matches!(self, Self::Near { .. })
    }
}

/// How the prefilter's indexes are tuned: as the semantic tier's, without the residuals for an
/// exact re-rank (the prefilter only gates, with a margin far wider than int8's ~0.002 cosine
/// error, and an entry keeps to [`crate::PREFILTER_ENTRY_BYTES`]).
pub fn prefilter_index_config() -> IndexConfig {
    IndexConfig {
        exact_rerank: false,
        ..IndexConfig::default()
    }
}

/// Static vectors of the indexed questions, per scope.
pub(crate) struct Prefilter {
    embedder: Arc<StaticEmbedder>,
    index: Arc<SemanticIndex>,
    /// Scopes holding a question the static model gave no vector: never ruled out.
    unscreened: Mutex<HashSet<ScopeKey>>,
}

impl Prefilter {
    /// An empty prefilter over `embedder`'s vectors.
    pub(crate) fn new(embedder: Arc<StaticEmbedder>) -> Self {
        Self {
            embedder,
            index: Arc::new(SemanticIndex::with_config(prefilter_index_config())),
            unscreened: Mutex::default(),
        }
    }

    /// The index, whose tombstones follow the store's evictions.
    pub(crate) fn index(&self) -> &Arc<SemanticIndex> {
        &self.index
    }

    /// Screens `question` against the questions stored in `scope`.
    pub(crate) fn screen(&self, scope: &ScopeKey, question: &str, threshold: f32) -> Screened {
        let unscreened = self
            .unscreened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(scope);
        let vector = (!unscreened)
            .then(|| self.embedder.embed(question))
            .flatten();
        // A question (stored or asked) with no static vector cannot be ruled out.
        let Some(vector) = vector else {
            return Screened::Near { similarity: 1.0 };
        };
        match self.index.nearest_similarity(scope, &vector) {
            None => Screened::Empty,
            Some(similarity) if similarity >= threshold => Screened::Near { similarity },
            Some(similarity) => Screened::Far { similarity },
        }
    }

    /// Adds a stored question's static vector.
    pub(crate) fn insert(&self, scope: ScopeKey, key: CacheKey, question: &str) {
        match self.embedder.embed(question) {
            Some(vector) => self.index.insert_vector(scope, key, &vector),
            None => {
                self.unscreened
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(scope);
            }
        }
    }

    /// Drops a question (its answer is gone).
    pub(crate) fn forget(&self, key: &CacheKey) {
        self.index.forget(key);
    }
}
