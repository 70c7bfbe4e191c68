//! The numbers guard: digits and number words must agree as a multiset.

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
}
