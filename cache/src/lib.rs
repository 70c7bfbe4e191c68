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

pub use embed::{cosine, EmbedError, Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};
