//! End-to-end tests: the real `frugal` binary and sidecar against the scriptable fake upstream.
//!
//! One test binary (each module a former file) so a build links the whole stack once, not fifteen times.

mod accounting;
mod binary;
mod budget;
mod cache;
mod errors;
mod passthrough;
mod reload;
mod resilience;
mod route;
mod runs;
mod semantic;
mod shutdown;
mod streaming;
mod tenants;
mod trim;
