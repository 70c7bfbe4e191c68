//! The chat request parser and what runs on a parsed request before any upstream call: any
//! bytes parse into a request or are refused with a 4xx in OpenAI's shape, and a parsed
//! request's cache key, semantic scope, token count and trim agree with themselves.
#![no_main]

#[allow(dead_code)]
#[path = "../../router/tests/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Some(request) = invariants::request_parses_or_is_refused(bytes) {
        invariants::prepared_request_is_consistent(&request);
    }
});
