//! Okapi BM25 over a handful of texts (the chunks or documents of one request), with the
//! collection statistics taken from those texts alone: a word the whole context repeats tells
//! little about which part of it answers the question.

use rustc_hash::FxHashMap;

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
/// removed, stemmed so "cells" meets "cell" and "reduces" meets "reduction".
pub fn terms(text: &str) -> Vec<String> {
    TERMS.with(|cell| {
        let (stemmer, memo) = &mut *cell.borrow_mut();
        if memo.len() >= MAX_REMEMBERED_WORDS {
            memo.clear();
        }
        let mut lower = String::new();
        let mut out = Vec::new();
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            lower.clear();
            lower.extend(word.chars().flat_map(char::to_lowercase));
            let term = match memo.get(lower.as_str()) {
                Some(term) => term.clone(),
                None => {
                    let term = (STOPWORDS.binary_search(&lower.as_str()).is_err())
                        .then(|| stemmer.stem(&lower).into_owned());
                    memo.insert(lower.clone(), term.clone());
                    term
                }
            };
            out.extend(term);
        }
        out
    })
}

/// Most words whose terms are remembered per thread before the memo starts afresh.
const MAX_REMEMBERED_WORDS: usize = 1 << 16;

thread_local! {
    /// Snowball's English stemmer ("reduces", "reduced", "reduction" → "reduc"), and the term
    /// each recently seen lower-cased word gave (`None`: a stopword): a context repeats its
    /// words, and stemming costs more than a look-up.
    static TERMS: std::cell::RefCell<(rust_stemmers::Stemmer, FxHashMap<String, Option<String>>)> =
        std::cell::RefCell::new((
            rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English),
            FxHashMap::default(),
        ));
}

/// A BM25 index over a small collection of texts, each given as its terms. Terms are interned
/// as numbers, so indexing hashes each occurrence once and scoring compares integers.
#[derive(Debug)]
pub struct Bm25 {
    ids: FxHashMap<String, u32>,
    /// Per text, (term id, frequency), sorted by id.
    docs: Vec<Vec<(u32, u32)>>,
    lengths: Vec<f32>,
    avg_length: f32,
    /// Per term id, the texts it occurs in.
    doc_freq: Vec<u32>,
}

impl Bm25 {
    /// Indexes the texts (already split by [`terms`]).
    pub fn new(texts: &[Vec<String>]) -> Self {
        let mut ids: FxHashMap<String, u32> = FxHashMap::default();
        let mut doc_freq: Vec<u32> = Vec::new();
        let docs: Vec<Vec<(u32, u32)>> = texts
            .iter()
            .map(|t| {
                let mut occurrences: Vec<u32> = t
                    .iter()
                    .map(|term| {
                        if let Some(&id) = ids.get(term.as_str()) {
                            return id;
                        }
                        let id = doc_freq.len() as u32;
                        ids.insert(term.clone(), id);
                        doc_freq.push(0);
                        id
                    })
                    .collect();
                occurrences.sort_unstable();
                let mut tf: Vec<(u32, u32)> = Vec::new();
                for id in occurrences {
                    match tf.last_mut() {
                        Some((last, n)) if *last == id => *n += 1,
                        _ => tf.push((id, 1)),
                    }
                }
                for (id, _) in &tf {
                    doc_freq[*id as usize] += 1;
                }
                tf
            })
            .collect();
        let lengths: Vec<f32> = texts.iter().map(|t| t.len() as f32).collect();
        let avg_length = lengths.iter().sum::<f32>() / lengths.len().max(1) as f32;
        Self {
            ids,
            docs,
            lengths,
            avg_length: avg_length.max(1.0),
            doc_freq,
        }
    }

    /// Inverse document frequency of a term found in `df` texts (the non-negative BM25+ form).
    fn idf(&self, df: u32) -> f32 {
        let n = self.docs.len() as f32;
        let df = df as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The BM25 score of every text against the query terms (each distinct term counted once).
    pub fn scores(&self, query: &[String]) -> Vec<f32> {
        // Terms no text contains add nothing to any score.
        let mut weighted: Vec<(u32, f32)> = query
            .iter()
            .filter_map(|t| self.ids.get(t.as_str()).copied())
            .map(|id| (id, self.idf(self.doc_freq[id as usize])))
            .filter(|(_, idf)| *idf > 0.0)
            .collect();
        weighted.sort_unstable_by_key(|(id, _)| *id);
        weighted.dedup_by_key(|(id, _)| *id);
        self.docs
            .iter()
            .zip(&self.lengths)
            .map(|(tf, len)| {
                let norm = K1 * (1.0 - B + B * len / self.avg_length);
                weighted
                    .iter()
                    .filter_map(|(id, idf)| {
                        let at = tf.binary_search_by_key(id, |(t, _)| *t).ok()?;
                        let f = tf[at].1 as f32;
                        Some(idf * f * (K1 + 1.0) / (f + norm))
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
    fn word_forms_share_a_stem() {
        let t = terms("Inhibition reduces it; the inhibitor reduced it. INHIBITS");
        assert_eq!(t, vec!["inhibit", "reduc", "inhibitor", "reduc", "inhibit"]);
    }

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
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
