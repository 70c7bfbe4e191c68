//! frugal: a sidecar that makes LLM traffic cheaper without making it worse.
//!
//! It speaks the OpenAI Chat Completions API on localhost and forwards each request to the
//! upstream its policy names; trimming, caching, routing and budgets are stages of
//! [`pipeline::handle`]. `POST /v1/embeddings` passes through too, each input served from an
//! exact per-input cache when it can be ([`embeddings::handle`]). This crate holds the HTTP server, the pipeline, upstream clients,
//! policy files, metrics, the CLI, and a scriptable fake OpenAI server ([`mock`]) for tests,
//! demos and benchmarks.

pub mod accept;
pub mod admission;
pub mod anthropic;
pub mod context;
pub mod decisions;
pub mod embed_worker;
pub mod embeddings;
pub mod error;
pub mod explain;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod mock;
pub mod money;
pub mod offline;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod request;
pub mod server;
pub mod shared;
pub mod sse;
pub mod stage;
pub mod telemetry;
pub mod tenants;
pub mod tokens;
pub mod trim;
pub mod upstream;
pub mod usd_counters;
pub mod yaml;
