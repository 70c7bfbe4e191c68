//! The entities guard: every named entity of one text appears in the other.

use super::analysis::{is_word, Analysis};
use super::lexicon::{canonical_entity, is_stopword, stem};

/// A named entity of one text is not among the other's stems.
pub(super) fn fires(a: &Analysis, b: &Analysis) -> bool {
    a.entities.iter().any(|e| !b.stems.contains(e))
        || b.entities.iter().any(|e| !a.stems.contains(e))
}

/// Capitalised words that do not start a sentence, and acronyms. A text written mostly in
/// Title Case has no telling capitals, so only its acronyms count.
pub(super) fn extract(tokens: &[&str]) -> Vec<String> {
    let words: Vec<&str> = tokens
        .iter()
        .copied()
        .filter(|t| t.chars().next().is_some_and(char::is_alphabetic))
        .collect();
    let capitalised = words
        .iter()
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .count();
    let title_case = words.len() >= 4 && capitalised * 5 > words.len() * 3;
    let mut out = Vec::new();
    let mut sentence_start = true;
    for token in tokens {
        if !is_word(token) {
            if matches!(*token, "." | "?" | "!" | ":" | ";") {
                sentence_start = true;
            }
            continue;
        }
        let lower = token.to_lowercase();
        // "I'm", "I've": the pronoun, not a name.
        let pronoun = lower == "i" || lower.starts_with("i'");
        let acronym = token.chars().count() >= 2
            && token.chars().any(char::is_alphabetic)
            && !token.chars().any(char::is_lowercase)
            && !is_stopword(&lower);
        let capital = token.chars().next().is_some_and(char::is_uppercase)
            && !sentence_start
            && !title_case
            && !pronoun
            && !is_stopword(&lower);
        if acronym || capital {
            out.push(canonical_entity(&stem(token)));
        }
        sentence_start = false;
    }
    out
}
