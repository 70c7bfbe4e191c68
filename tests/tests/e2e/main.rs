//! End-to-end tests: the real `frugal` binary and sidecar against the scriptable fake upstream.
//!
//! One test binary, a module per area, so a build links the whole stack once rather than once
//! per file (each link of the full stack is tens of MB on disk and seconds of CPU).

mod accounting;
mod admin;
mod admission;
mod anthropic_ingress;
mod anthropic_upstream;
mod binary;
mod budget;
mod cache;
mod decision_log;
mod embeddings;
mod errors;
mod exposition;
mod faults;
mod offline;
mod passthrough;
mod policy_docs;
mod prompt_cache;
mod reload;
mod replay;
mod resilience;
mod route;
mod runs;
mod semantic;
mod shared_client;
mod shared_tier;
mod shutdown;
mod streaming;
mod tenants;
mod trim;
mod under_load;
