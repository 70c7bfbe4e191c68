//! The quoted guard: every quoted string of one text appears in the other.

use std::sync::LazyLock;

use regex::Regex;

use super::analysis::{missing_either_way, regex, word_key, Analysis};

/// A quoted string of one text is missing from the other's words.
pub(super) fn fires(a: &Analysis, b: &Analysis) -> bool {
    missing_either_way(a, b, |x| &x.quoted, |x| &x.words)
}

/// Strings in double quotes, curly quotes, backticks, LaTeX-style ``…'', or single quotes
/// that open after a space and close before one (so "don't" and "Paris' " are not quotes).
pub(super) fn extract(text: &str) -> Vec<String> {
    static QUOTE: LazyLock<Regex> = LazyLock::new(|| {
        regex(
            r#""([^"]+)"|“([^”]+)”|``([^`']+)''|`([^`]+)`|(?:^|[\s(\[])'([^']+)'(?:$|[\s.,;:!?)\]])"#,
        )
    });
    QUOTE
        .captures_iter(text)
        .filter_map(|c| {
            c.iter()
                .skip(1)
                .flatten()
                .next()
                .map(|m| word_key(m.as_str()))
        })
        .filter(|q| q.len() > 1)
        .collect()
}
