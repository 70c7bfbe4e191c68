//! The semantic cache's guards: a question passes against itself, verdicts are symmetric, each
//! guard decides alone as it does among all, and guard lists round-trip.

use proptest::prelude::*;

use crate::invariants::{guard_list_round_trips, guards_are_consistent};

/// Words that wake each guard: numbers and number words, negations, antonyms, quotes,
/// identifiers, URLs and paths, names, modifiers and coordinators that the order guard knows.
const WORDS: &[&str] = &[
    "how",
    "do",
    "I",
    "what",
    "is",
    "the",
    "a",
    "of",
    "to",
    "learn",
    "Python",
    "Rust",
    "in",
    "India",
    "Paris",
    "France",
    "NASA",
    "top",
    "5",
    "five",
    "one",
    "1",
    "10",
    "3.5",
    "1,000",
    "not",
    "never",
    "don't",
    "can't",
    "no",
    "enable",
    "disable",
    "add",
    "remove",
    "before",
    "after",
    "from",
    "to",
    "and",
    "or",
    "quickly",
    "\"hello world\"",
    "'quoted'",
    "`foo_bar`",
    "fooBar",
    "foo.bar()",
    "snake_case",
    "https://example.com/a?b=1",
    "/etc/hosts",
    "main.rs",
    "X",
    "Y",
    "sued",
    "Lake",
    "Georgetown",
    "Σ",
    "ΑΣ",
    "İ",
    "ß",
    "ﬁ",
    "é",
    "日本",
    "🦀",
    ",",
    ".",
    "?",
    "!",
    "(",
    ")",
    "\n",
    "’",
    "“",
    "”",
    "``",
    "''",
];

/// A question made of [`WORDS`] and, now and then, any character.
fn question() -> impl Strategy<Value = Vec<String>> {
    let word = prop_oneof![
        12 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(word, 0..16)
}

/// A question and a variant of it: words swapped, replaced, dropped, or a block moved.
fn pair() -> impl Strategy<Value = (String, String)> {
    (
        question(),
        proptest::collection::vec((any::<usize>(), any::<usize>(), 0u8..4), 0..3),
        proptest::sample::select(WORDS),
    )
        .prop_map(|(words, edits, word)| {
            let mut other = words.clone();
            for (i, j, kind) in edits {
                if other.is_empty() {
                    break;
                }
                let (i, j) = (i % other.len(), j % other.len());
                match kind {
                    0 => other.swap(i, j),
                    1 => other[i] = word.to_owned(),
                    2 => {
                        other.remove(i);
                    }
                    _ => {
                        let (lo, hi) = (i.min(j), i.max(j));
                        other[lo..=hi].rotate_left(1);
                    }
                }
            }
            (words.join(" "), other.join(" "))
        })
}

proptest! {
    #![proptest_config(crate::config(20_000))]

    /// Questions and their variants: self-pass, symmetry, guards independent.
    #[test]
    fn guards_are_symmetric_and_pass_a_question_against_itself((a, b) in pair()) {
        guards_are_consistent(&a, &b);
    }
}

proptest! {
    #![proptest_config(crate::config(8_000))]

    /// Any two texts at all, without a panic.
    #[test]
    fn any_two_texts_get_a_consistent_verdict(a in any::<String>(), b in any::<String>()) {
        guards_are_consistent(&a, &b);
    }

    /// A guard list that parses prints as one that parses back to the same set.
    #[test]
    fn guard_lists_round_trip(
        parts in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(
                    &["all", "none", "numbers", "-order", "order", "-numbers", "entities",
                      "urls_paths", " ", "", "-", "bogus"][..],
                ).prop_map(str::to_owned),
                "[ -~]{0,6}",
            ],
            0..6,
        )
    ) {
        guard_list_round_trips(&parts.join(","));
    }
}
