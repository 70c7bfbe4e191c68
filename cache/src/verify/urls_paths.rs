//! The URLs-and-paths guard: every URL, file path or file name of one text appears in the other.

use std::sync::LazyLock;

use regex::Regex;

use super::analysis::{missing_either_way, regex, Analysis};

/// A URL or path of one text is missing from the other's folded text.
pub(super) fn fires(a: &Analysis, b: &Analysis) -> bool {
    missing_either_way(a, b, |x| &x.urls, |x| &x.folded)
}

/// URLs and paths, folded.
pub(super) fn extract(text: &str) -> Vec<String> {
    static URL: LazyLock<Regex> = LazyLock::new(|| {
        regex(concat!(
            r"\b(?:https?|ftp|file|s3|gs)://\S+",
            r"|\bwww\.\S+",
            r"|(?:^|\s)(?:~|\.{1,2})?/[\w.\-]+(?:/[\w.\-]*)*",
            r"|\b[A-Za-z]:\\[\w.\\\-]+",
            r"|\b[\w\-]+\.(?:py|rs|js|ts|json|yaml|yml|toml|txt|md|csv|html|css|java|go|cpp|hpp|sh|sql|xml|log|conf|cfg|ini|exe|dll|so|jar|pdf|docx?|xlsx?|png|jpe?g|gif|zip|tar|gz)\b",
        ))
    });
    URL.find_iter(text)
        .map(|m| {
            m.as_str()
                .trim()
                .trim_end_matches(['.', ',', ';', ':', '!', '?', ')'])
                .to_lowercase()
        })
        .filter(|u| u.len() > 1)
        .collect()
}
