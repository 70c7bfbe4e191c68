//! The identifiers guard: every code identifier of one text appears in the other.

use std::sync::LazyLock;

use regex::Regex;

use super::analysis::{missing_either_way, regex, Analysis};

/// An identifier of one text is missing from the other (compared case-sensitively).
pub(super) fn fires(a: &Analysis, b: &Analysis) -> bool {
    missing_either_way(a, b, |x| &x.identifiers, |x| &x.text)
}

/// Code identifiers, as written.
pub(super) fn extract(text: &str) -> Vec<String> {
    static IDENT: LazyLock<Regex> = LazyLock::new(|| {
        regex(concat!(
            r"`[^`\s][^`]*`",
            // foo.bar(), foo::bar, foo->bar, foo()
            r"|\b[A-Za-z_]\w*(?:(?:\.|::|->)[A-Za-z_]\w*)*\(\)",
            r"|\b[A-Za-z_]\w*(?:(?:::|->)[A-Za-z_]\w*)+",
            // os.path.join, console.log: dotted lower-case names with parts of 2+ characters
            r"|\b[a-z_][a-z0-9_]+(?:\.[a-z_][a-z0-9_]+)+\b",
            // snake_case, SCREAMING_CASE
            r"|\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b",
            // camelCase
            r"|\b[a-z]+[A-Z][A-Za-z0-9]*\b",
        ))
    });
    IDENT
        .find_iter(text)
        .map(|m| m.as_str().trim_matches('`').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}
