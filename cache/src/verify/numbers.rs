//! The numbers guard: digits and number words must agree as a multiset, and so must the
//! arithmetic between them (`sqrt(2)*sqrt(3)` is not `sqrt(2) + sqrt(3)`).

use std::sync::LazyLock;

use regex::Regex;

use super::analysis::{regex, Analysis};
use super::lexicon::NUMBER_WORDS;

pub(super) fn extract(text: &str) -> Vec<String> {
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(r"\d+(?:,\d{3})*(?:\.\d+)?"));
    static WORD: LazyLock<Regex> = LazyLock::new(|| regex(r"[A-Za-z]+"));
    let mut out: Vec<String> = NUMBER
        .find_iter(text)
        .map(|m| {
            let digits = m.as_str().replace(',', "");
            digits.parse::<f64>().map_or(digits, |v| format!("{v}"))
        })
        .collect();
    for m in WORD.find_iter(text) {
        let lower = m.as_str().to_lowercase();
        if let Some((_, v)) = NUMBER_WORDS.iter().find(|(w, _)| *w == lower) {
            out.push(format!("{v}"));
        }
    }
    out.sort();
    out
}

/// The arithmetic symbols written between operands (after a digit or a closing bracket, before
/// a word, digit or opening bracket), sorted; and whether the text spells an operation out in
/// words (`plus`, `times`, …), which may stand for a symbol on the other side. `-` is left out:
/// it joins ranges, dates and names far more often than it subtracts; and so is a `/` between
/// two numbers written close (`1980/1981`, `9/11`, `1/2`), unless a bracket or a space sets it
/// apart as division (`6 / 3`, `(x+1)/2`).
pub(super) fn operators(text: &str) -> (Vec<char>, bool) {
    static SYMBOL: LazyLock<Regex> = LazyLock::new(|| regex(r"[0-9)\]]\s*([+*×÷^])\s*[\w(\[√]"));
    static DIVISION: LazyLock<Regex> = LazyLock::new(|| {
        regex(r"[0-9)\]]\s+/\s*[\w(\[]|[0-9)\]]\s*/\s+[\w(\[]|\)\s*/\s*[\w(\[]|[0-9]\s*/\s*\(")
    });
    static WORDS: LazyLock<Regex> = LazyLock::new(|| {
        regex(r"(?i)\b(plus|times|multiplied|divided|over|minus|squared|cubed|power|sum|product)\b")
    });
    let mut symbols: Vec<char> = SYMBOL
        .captures_iter(text)
        .filter_map(|c| c.get(1).and_then(|m| m.as_str().chars().next()))
        .map(|c| match c {
            '×' => '*',
            '÷' => '/',
            other => other,
        })
        .chain(DIVISION.find_iter(text).map(|_| '/'))
        .collect();
    symbols.sort_unstable();
    (symbols, WORDS.is_match(text))
}

/// The arithmetic differs: both sides write operators and they differ, or one side writes some
/// and the other neither writes nor spells out any.
fn arithmetic_differs(a: &Analysis, b: &Analysis) -> bool {
    match (a.operators.is_empty(), b.operators.is_empty()) {
        (false, false) => a.operators != b.operators,
        (false, true) => !b.operator_words,
        (true, false) => !a.operator_words,
        (true, true) => false,
    }
}

/// Numbers agree when their multisets are equal, except that a "1" on one side may stand for
/// the word "one" on the other ("in 1 month" / "in one month"), which by itself is usually a
/// pronoun ("how can one …") and so not counted as a number.
pub(super) fn fires(a: &Analysis, b: &Analysis) -> bool {
    /// Whether what `x` has beyond `y` is only "1"s that `y`'s "one"s can stand for.
    fn explained(x: &[String], y: &[String], ones: usize) -> bool {
        let mut y: Vec<&String> = y.iter().collect();
        let mut unexplained_ones = 0;
        for n in x {
            match y.iter().position(|m| *m == n) {
                Some(p) => {
                    y.swap_remove(p);
                }
                None if n == "1" => unexplained_ones += 1,
                None => return false,
            }
        }
        unexplained_ones <= ones
    }
    !(explained(&a.numbers, &b.numbers, b.ones) && explained(&b.numbers, &a.numbers, a.ones))
        || arithmetic_differs(a, b)
}
