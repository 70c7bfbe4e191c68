//! Okapi BM25 over a handful of texts (the chunks or documents of one request), with the
//! collection statistics taken from those texts alone: a word the whole context repeats tells
//! little about which part of it answers the question.

use std::collections::HashMap;

/// Term-frequency saturation: the standard value.
const K1: f32 = 1.2;
/// Length normalisation: the standard value.
const B: f32 = 0.75;

/// Words too common to say anything about relevance.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "how",
    "i", "if", "in", "into", "is", "it", "its", "may", "more", "most", "of", "on", "or", "our",
    "over", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "through", "to", "was", "we", "were", "what", "when", "which", "while", "who",
    "will", "with", "would", "you", "your",
];

/// The lower-cased words of a text that count for matching: letter and digit runs, stopwords
/// removed, a plural `s` dropped so "cells" meets "cell".
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| stem(&w).to_owned())
        .collect()
}

fn stem(word: &str) -> &str {
    let n = word.len();
    if n > 3 && word.ends_with('s') && !word.ends_with("ss") && !word.ends_with("us") {
        &word[..n - 1]
    } else {
        word
    }
}

/// A BM25 index over a small collection of texts, each given as its terms.
#[derive(Debug)]
pub struct Bm25 {
    docs: Vec<HashMap<String, u32>>,
    lengths: Vec<f32>,
    avg_length: f32,
    doc_freq: HashMap<String, u32>,
}

impl Bm25 {
    /// Indexes the texts (already split by [`terms`]).
    pub fn new(texts: &[Vec<String>]) -> Self {
        let mut doc_freq: HashMap<String, u32> = HashMap::new();
        let docs: Vec<HashMap<String, u32>> = texts
            .iter()
            .map(|t| {
                let mut tf: HashMap<String, u32> = HashMap::new();
                for term in t {
                    *tf.entry(term.clone()).or_default() += 1;
                }
                for term in tf.keys() {
                    *doc_freq.entry(term.clone()).or_default() += 1;
                }
                tf
            })
            .collect();
        let lengths: Vec<f32> = texts.iter().map(|t| t.len() as f32).collect();
        let avg_length = lengths.iter().sum::<f32>() / lengths.len().max(1) as f32;
        Self {
            docs,
            lengths,
            avg_length: avg_length.max(1.0),
            doc_freq,
        }
    }

    /// Inverse document frequency of a term (the non-negative BM25+ form).
    pub fn idf(&self, term: &str) -> f32 {
        let n = self.docs.len() as f32;
        let df = self.doc_freq.get(term).copied().unwrap_or(0) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The BM25 score of every text against the query terms (each distinct term counted once).
    pub fn scores(&self, query: &[String]) -> Vec<f32> {
        let mut distinct: Vec<&String> = query.iter().collect();
        distinct.sort();
        distinct.dedup();
        let weighted: Vec<(&String, f32)> = distinct
            .into_iter()
            .map(|t| (t, self.idf(t)))
            .filter(|(_, idf)| *idf > 0.0)
            .collect();
        self.docs
            .iter()
            .zip(&self.lengths)
            .map(|(tf, len)| {
                let norm = K1 * (1.0 - B + B * len / self.avg_length);
                weighted
                    .iter()
                    .filter_map(|(t, idf)| {
                        tf.get(*t).map(|&f| {
                            let f = f as f32;
                            idf * f * (K1 + 1.0) / (f + norm)
                        })
                    })
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use super::*;

    #[test]
    fn terms_lowercase_drop_stopwords_and_plurals() {
        assert_eq!(
            terms("The Cells of mice, and GLASS."),
            vec!["cell", "mice", "glass"]
        );
    }

    #[test]
    fn rarer_matching_terms_score_higher() {
        let texts: Vec<Vec<String>> = [
            "insulin resistance in obese mice",
            "mice were fed a normal diet",
            "the weather was fine",
        ]
        .iter()
        .map(|t| terms(t))
        .collect();
        let bm25 = Bm25::new(&texts);
        let s = bm25.scores(&terms("insulin resistance"));
        assert!(s[0] > 0.0);
        assert_eq!(s[1], 0.0);
        assert_eq!(s[2], 0.0);
        let s = bm25.scores(&terms("obese mice"));
        assert!(s[0] > s[1] && s[1] > 0.0);
    }
}
