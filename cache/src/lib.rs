//! frugal-cache is frugal's response cache: it decides whether a chat request can be answered
//! from an earlier response, exactly or by meaning, without calling a model. It owns:
//!
//! * the cache's identity: [`CacheScope`] (tenant, namespace, model) and the keys built from it,
//!   the exact key of a whole request and the semantic key of everything but its question;
//! * the store, [`ResponseCache`]: answers under their exact key within a byte bound and a TTL,
//!   and the semantic tier's per-scope vector indexes, whose vectors are
//!   tombstoned when the store evicts their answer and rebuilt once too many are dead;
//! * the vector index ([`VectorIndex`]: an exact scan while small, then an int8 HNSW graph);
//! * the verification guards ([`verify`]) that tell "A sued B" from "B sued A" where cosine
//!   similarity cannot;
//! * the [`Embedder`] trait that turns text into L2-normalised vectors, with [`MiniLmEmbedder`]
//!   as the in-process implementation (all-MiniLM-L6-v2 int8 through fastembed and a
//!   dynamically loaded ONNX Runtime, both installed by `scripts/fetch-models.sh`).
//!
//! It is a plain library with no HTTP and no metrics in it (the store reports evictions and its
//! size through [`StoreEvents`]), usable from the server and from the offline tools alike. The
//! offline evaluation of its decisions on labelled pairs (`frugal eval cache`) lives with the
//! other offline commands in the `frugal` crate.

mod embed;
mod graph;
pub mod index;
mod outcome;
mod percentile;
mod prefilter;
mod scope;
mod semantic;
mod static_embed;
mod store;
pub mod synthetic;
pub mod verify;

pub use embed::{cosine, EmbedError, Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};
pub use index::{
    int8_round_trip, IndexConfig, LiveVectors, Neighbour, VectorIndex, QUANT_SCALE,
    RERANK_CANDIDATES,
};
pub use outcome::{CacheTier, ShadowVerdict, TierResult};
pub use percentile::percentile;
pub use prefilter::{prefilter_index_config, Screened};
pub use scope::{CacheKey, CacheScope, ScopeKey, SplitQuestion};
pub use semantic::SemanticQuery;
pub use static_embed::{StaticEmbedder, StaticModelError};
pub use store::{
    CacheSlot, PendingEmbedding, ResponseCache, SemanticSlot, Similar, StoreEvents, StoreLimits,
    Weighted,
};
pub use verify::{Analysis, Guard, GuardSet, Verdict, Verifier};

/// Cosine similarity a semantic candidate needs before verification, chosen on the development
/// pairs (`frugal eval cache --sweep`): the lowest threshold where, with every guard on, both
/// QQP's and PAWS's false-hit rates stay under 2% with a margin for new data of 1.28 standard
/// errors (a one-sided 90% bound). At 0.94: PAWS 1.68% (bound 1.89%; 0.93 gives 1.79%, bound
/// 2.01%), QQP 1.43% (recall 0.214, precision 0.90; 0.93 gives 1.91% at recall 0.248).
pub const DEFAULT_SIMILARITY_THRESHOLD: f32 = 0.94;

/// Longest question, in the embedding model's tokens, the semantic tier looks up by default.
/// Nearly every duplicate question is far shorter (2 of QQP dev's 56,418 pairs have a side
/// past it, none of PAWS's), while a quarter of Arena-Hard's prompts are longer, and their
/// embeddings are what makes a cacheable miss slow: past 128 tokens one takes tens of
/// milliseconds on a small CPU.
pub const DEFAULT_SEMANTIC_MAX_TOKENS: usize = 128;

/// The semantic tier's prefilter threshold by default: a static-vector (WordLlama) cosine below
/// which a question is taken to have no neighbour the semantic tier could serve. On the
/// development pairs the lowest static cosine of a pair at MiniLM's 0.94 or above is 0.57
/// (QQP) and 0.68 (PAWS); 0.5 leaves a margin for new data, and still rules out about two
/// thirds of Arena-Hard's prompts as they arrive one after another in one scope.
pub const DEFAULT_PREFILTER_THRESHOLD: f32 = 0.5;
