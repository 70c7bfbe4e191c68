//! frugal-cache is frugal's embedding-indexed response cache: it decides whether a chat request
//! can be answered from an earlier response, exactly or by meaning, without calling a model.
//! It holds the [`Embedder`] trait that turns text into L2-normalised vectors, with
//! [`MiniLmEmbedder`] as the in-process implementation (all-MiniLM-L6-v2 int8 through fastembed
//! and a dynamically loaded ONNX Runtime, both installed by `scripts/fetch-models.sh`); the
//! vector index that finds the nearest earlier prompt; the entry store that keeps responses
//! under TTL and size limits; the `CacheScope` key that keeps tenants and contexts apart; and the
//! `Lookup` outcome the router acts on. It is a plain library with no HTTP in it, usable from
//! the server and from the offline tools alike.

mod embed;
pub mod embed_disk;
pub mod eval;
pub mod index;
pub mod pairs;
pub mod progress;
pub mod synthetic;
pub mod verify;

pub use embed::{cosine, EmbedError, Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};
pub use index::{IndexConfig, LiveVectors, Neighbour, VectorIndex, QUANT_SCALE};
pub use verify::{Analysis, Guard, GuardSet, Verdict, Verifier};

/// Cosine similarity a semantic candidate needs before verification, chosen on the development
/// pairs (`frugal eval cache --sweep`): the lowest threshold where, with every guard on, both
/// QQP's and PAWS's false-hit rates are under 2% (1.91% and 1.86%; QQP recall 0.25, precision
/// 0.88).
pub const DEFAULT_SIMILARITY_THRESHOLD: f32 = 0.93;
