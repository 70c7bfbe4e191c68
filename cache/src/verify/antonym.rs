//! The antonym guard: neither text uses a word whose antonym the other uses in its place.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::lexicon::{stem, ANTONYMS};
use super::Analysis;

fn antonym_index() -> &'static HashMap<String, Vec<String>> {
    static INDEX: LazyLock<HashMap<String, Vec<String>>> = LazyLock::new(|| {
        let mut index: HashMap<String, Vec<String>> = HashMap::new();
        for (x, y) in ANTONYMS {
            index.entry(stem(x)).or_default().push(stem(y));
            index.entry(stem(y)).or_default().push(stem(x));
        }
        index
    });
    &INDEX
}

/// One text uses a word the other lacks, and the other uses its antonym in its place.
pub(super) fn fires(a: &Analysis, b: &Analysis) -> bool {
    let index = antonym_index();
    a.stems.difference(&b.stems).any(|x| {
        index.get(x).is_some_and(|ys| {
            ys.iter()
                .any(|y| b.stems.contains(y) && !a.stems.contains(y))
        })
    })
}
