//! Setting one value in a policy's YAML text without touching anything else: comments, key
//! order, blank lines and flow or block style stay as the user wrote them. A key that is
//! absent is added to its section (which must exist).

use crate::yaml::{self, Position};

/// Why a value could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The text is not YAML.
    #[error("the policy is not YAML: {0}")]
    Yaml(String),
    /// The section the key belongs in is absent.
    #[error("the policy has no `{0}` section to put `{1}` in")]
    NoSection(String, String),
    /// The layout around the key is one this editor does not handle (a multi-line value).
    #[error("cannot edit `{0}` in place: {1}")]
    Layout(String, String),
}

/// `text` with the scalar at dotted `path` (`cache.similarity_threshold`) set to `value`.
pub fn set_scalar(text: &str, path: &str, value: &str) -> Result<String, EditError> {
    let document = yaml::parse(text).map_err(|e| EditError::Yaml(e.to_string()))?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (section, key) = path.rsplit_once('.').unwrap_or(("", path));
    if let Some(position) = document.positions.get(path) {
        return replace_value(&lines, *position, value).ok_or_else(|| {
            EditError::Layout(path.into(), "its value is not on its key's line".into())
        });
    }
    let Some(&section_at) = document.positions.get(section) else {
        return Err(EditError::NoSection(section.into(), key.into()));
    };
    add_key(&lines, &document.positions, section, section_at, key, value)
        .ok_or_else(|| EditError::Layout(path.into(), format!("`{section}` is not a mapping")))
}

/// Byte offset of a 1-based column in a line (columns count characters).
fn offset(line: &str, column: usize) -> usize {
    line.char_indices()
        .nth(column.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i)
}

/// Replaces the plain scalar after the key at `at`.
fn replace_value(lines: &[&str], at: Position, value: &str) -> Option<String> {
    let line = lines.get(at.line - 1)?;
    let start = offset(line, at.column);
    let after_key = line[start..].find(':')? + start + 1;
    let rest = &line[after_key..];
    let leading = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let value_start = after_key + leading;
    let value_end = line[value_start..]
        .find([',', '}', '\n', '\r'])
        .map_or(line.len(), |i| value_start + i);
    let comment = line[value_start..value_end]
        .find(" #")
        .map(|i| value_start + i);
    let value_end = comment.unwrap_or(value_end);
    let old = line[value_start..value_end].trim_end();
    if old.is_empty() || old.starts_with(['{', '[', '|', '>', '&', '*']) {
        return None;
    }
    let edited = format!(
        "{}{value}{}",
        &line[..value_start],
        &line[value_start + old.len()..]
    );
    Some(splice(lines, at.line - 1, &edited))
}

/// Adds `key: value` to the mapping `section`: inside its braces when it is a flow mapping on
/// its key's line, else as the first line of its block, indented like its other keys.
fn add_key(
    lines: &[&str],
    positions: &std::collections::HashMap<String, Position>,
    section: &str,
    at: Position,
    key: &str,
    value: &str,
) -> Option<String> {
    let line = lines.get(at.line - 1)?;
    let start = offset(line, at.column);
    let after_key = line[start..].find(':')? + start + 1;
    let rest = line[after_key..].trim_start();
    if rest.starts_with('{') {
        let brace = after_key + line[after_key..].find('{')?;
        let inner = line[brace + 1..].trim_start();
        let insert = if inner.starts_with('}') {
            format!(" {key}: {value} ")
        } else {
            format!(" {key}: {value},")
        };
        let edited = format!("{}{insert}{}", &line[..=brace], &line[brace + 1..]);
        return Some(splice(lines, at.line - 1, &edited));
    }
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    let prefix = format!("{section}.");
    let child = positions
        .iter()
        .filter(|(path, _)| path.starts_with(&prefix) && !path[prefix.len()..].contains(['.', '[']))
        .map(|(_, p)| *p)
        .min_by_key(|p| p.line)?;
    let indent = " ".repeat(child.column - 1);
    let newline = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
    out.insert(child.line - 1, format!("{indent}{key}: {value}{newline}"));
    Some(out.concat())
}

fn splice(lines: &[&str], index: usize, replacement: &str) -> String {
    let mut out: Vec<&str> = lines.to_vec();
    out[index] = replacement;
    out.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "\
# my policy
cache:
  mode: on   # keep this comment
  similarity_threshold: 0.94 # tuned by hand
route: { ladder: [cheap, strong] }
trim:

  # the cap
  max_context_tokens: 800
";

    #[test]
    fn an_existing_value_changes_and_nothing_else_does() {
        let edited = set_scalar(POLICY, "cache.similarity_threshold", "0.91").unwrap();
        assert_eq!(
            edited,
            POLICY.replace("threshold: 0.94 # tuned", "threshold: 0.91 # tuned")
        );
        let edited = set_scalar(POLICY, "trim.max_context_tokens", "1200").unwrap();
        assert_eq!(edited, POLICY.replace("800", "1200"));
        let edited = set_scalar(POLICY, "route.ladder", "x");
        assert!(matches!(edited, Err(EditError::Layout(..))));
    }

    #[test]
    fn an_absent_key_joins_its_section_in_its_style() {
        let edited = set_scalar(POLICY, "route.start_strong_above", "0.4").unwrap();
        assert!(edited.contains("route: { start_strong_above: 0.4, ladder: [cheap, strong] }"));
        let edited = set_scalar(POLICY, "cache.max_temperature", "0.5").unwrap();
        assert!(edited.contains("cache:\n  max_temperature: 0.5\n  mode: on   # keep"));
        let parsed = crate::yaml::parse(&edited).unwrap();
        assert_eq!(parsed.value["cache"]["max_temperature"], 0.5);
        assert_eq!(
            set_scalar(POLICY, "budget.cap", "1"),
            Err(EditError::NoSection("budget".into(), "cap".into()))
        );
        let empty = set_scalar("route: {}\n", "route.start_strong_above", "0.4").unwrap();
        assert_eq!(empty, "route: { start_strong_above: 0.4 }\n");
    }
}
