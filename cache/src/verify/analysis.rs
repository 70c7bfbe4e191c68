//! What the guards need to know about one text, computed once: the normalised text and its
//! tokens, with what each guard extracts from them.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::lexicon::{canonical_entity, stem, NEGATIONS};
use super::{entities, identifiers, numbers, quoted, urls_paths};

/// What the guards need to know about one text, computed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The text as given (identifiers compare case-sensitively).
    pub(super) text: String,
    /// Lower-cased, whitespace collapsed (URLs compare against it).
    pub(super) folded: String,
    /// Lower-cased words separated by single spaces, with a space at each end (quoted strings,
    /// in the same form, must occur in it: punctuation inside quotes does not count).
    pub(super) words: String,
    /// Stems of every word.
    pub(super) stems: HashSet<String>,
    /// Numbers in canonical form, sorted (a multiset).
    pub(super) numbers: Vec<String>,
    /// Occurrences of the word "one".
    pub(super) ones: usize,
    /// Arithmetic symbols between operands, sorted (a multiset).
    pub(super) operators: Vec<char>,
    /// Whether an operation is spelled out in words.
    pub(super) operator_words: bool,
    /// Negation cues.
    pub(super) negations: usize,
    /// Quoted strings, as ` word word `.
    pub(super) quoted: Vec<String>,
    /// Code identifiers, as written.
    pub(super) identifiers: Vec<String>,
    /// URLs and paths, folded.
    pub(super) urls: Vec<String>,
    /// Stems of named entities.
    pub(super) entities: Vec<String>,
    /// Stems of the word pieces, in order, for the order guard.
    pub(super) sequence: Vec<String>,
    /// The lower-cased surface form of each `sequence` word ("meaning" where the stem is
    /// "mean").
    pub(super) surface: Vec<String>,
}

impl Analysis {
    /// Analyses one text.
    pub fn new(text: &str) -> Self {
        let normalised = normalise(text);
        let tokens = tokenise(&normalised);
        let stems = tokens
            .iter()
            .filter(|t| is_word(t))
            .flat_map(|t| {
                let parts = t.split(['-', '_', '/', '.']).filter(|p| !p.is_empty());
                std::iter::once(*t).chain(parts)
            })
            .map(|t| canonical_entity(&stem(t)))
            .collect();
        let surface: Vec<String> = tokens
            .iter()
            .filter(|t| is_word(t))
            .flat_map(|t| t.split(['-', '_', '/', '.']))
            .filter(|p| p.chars().any(char::is_alphanumeric))
            .map(str::to_lowercase)
            .collect();
        let sequence = surface.iter().map(|w| stem(w)).collect();
        let (operators, operator_words) = numbers::operators(&normalised);
        Self {
            operators,
            operator_words,
            folded: fold(&normalised),
            words: word_key(&normalised),
            stems,
            numbers: numbers::extract(&normalised),
            ones: tokens
                .iter()
                .filter(|t| t.eq_ignore_ascii_case("one"))
                .count(),
            negations: tokens
                .iter()
                .filter(|t| NEGATIONS.contains(&t.to_lowercase().as_str()))
                .count(),
            quoted: quoted::extract(&normalised),
            identifiers: identifiers::extract(&normalised),
            urls: urls_paths::extract(&normalised),
            entities: entities::extract(&tokens),
            sequence,
            surface,
            text: normalised,
        }
    }
}

/// Curly quotes and apostrophes as ASCII; "can't" split as "ca n't" so negation is one token.
fn normalise(text: &str) -> String {
    static NT: LazyLock<Regex> = LazyLock::new(|| regex(r"(\w)n't\b"));
    let ascii: String = text
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{02bc}' => '\'',
            _ => c,
        })
        .collect();
    NT.replace_all(&ascii, "$1 n't").into_owned()
}

/// ` word word word `: lower-case alphanumeric runs between single spaces.
pub(super) fn word_key(text: &str) -> String {
    let mut key = String::from(" ");
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        key.push_str(&word.to_lowercase());
        key.push(' ');
    }
    key
}

fn fold(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Compiles one of this module's fixed patterns.
pub(super) fn regex(pattern: &str) -> Regex {
    // The patterns are constants covered by the unit tests; a typo shows there, not in traffic.
    Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in pattern {pattern:?}: {e}"))
}

fn tokenise(text: &str) -> Vec<&str> {
    static TOKEN: LazyLock<Regex> =
        LazyLock::new(|| regex(r"[\p{L}\p{N}]+(?:['._\-][\p{L}\p{N}]+)*|n't|[^\s\p{L}\p{N}]"));
    TOKEN.find_iter(text).map(|m| m.as_str()).collect()
}

pub(super) fn is_word(token: &str) -> bool {
    token.chars().next().is_some_and(char::is_alphanumeric) || token == "n't"
}

/// Whether an item of either text (its quoted strings, identifiers, URLs) is missing from the
/// other's `haystack` (the form of the text those items must occur in).
pub(super) fn missing_either_way(
    a: &Analysis,
    b: &Analysis,
    items: fn(&Analysis) -> &[String],
    haystack: fn(&Analysis) -> &str,
) -> bool {
    let missing =
        |x: &Analysis, y: &Analysis| items(x).iter().any(|i| !haystack(y).contains(i.as_str()));
    missing(a, b) || missing(b, a)
}
