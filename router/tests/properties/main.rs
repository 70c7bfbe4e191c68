//! Property tests of the parsers that read what clients, upstreams and operators send: the chat
//! request parser (and what runs on a request before any upstream call), the Anthropic edge
//! (request and stream translation), the SSE parser, the
//! policy compiler and the semantic cache's guards. The invariants themselves live in
//! [`invariants`], shared with the fuzz targets in `fuzz/`.
//!
//! A default run generates over 100,000 cases in all. `PROPTEST_CASES=N` runs every property
//! N times instead: small for a quick local run, large for a long hunt.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod anthropic;
mod guards;
mod invariants;
mod policy;
mod request;
mod sse;

use proptest::prelude::ProptestConfig;

/// The config of one property: `default` cases unless `PROPTEST_CASES` says otherwise. Failures
/// are not persisted to files: a failing case is printed, shrunk, and belongs in a named
/// regression test.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
