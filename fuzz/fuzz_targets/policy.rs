//! The policy compiler: any text compiles or is refused with a list of located errors; never
//! a panic.
#![no_main]

#[allow(dead_code)]
#[path = "../../router/tests/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes) {
        // A folder that does not exist: relative model paths in the text read nothing.
        invariants::policy_compiles_or_lists_errors(text, "/nonexistent-frugal-fuzz/policy.yaml");
    }
});
