//! The semantic cache's guards: for any two texts, each passes against itself, the verdict is
//! symmetric and each guard fires alone as it does among all; guard lists round-trip.
#![no_main]

#[allow(dead_code)]
#[path = "../../router/tests/properties/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|texts: (&str, &str)| {
    let (a, b) = texts;
    invariants::guards_are_consistent(a, b);
    invariants::guard_list_round_trips(a);
});
