//! Checks shared by every section: durations, environment variable names, and the message for
//! a name that refers to nothing.

use std::time::Duration;

use super::errors::{unknown_key_message, Errors};

pub(in crate::policy) fn unknown_reference(kind: &str, name: &str, known: &[&str]) -> String {
    let hint = unknown_key_message(name, known);
    let hint = hint.split_once("; ").map_or(hint.as_str(), |(_, h)| h);
    format!("no {kind} named `{name}`; {hint}")
}

/// A duration setting, longer than zero.
pub(in crate::policy) fn duration(
    text: Option<&str>,
    path: &str,
    default: Duration,
    errors: &mut Errors,
) -> Duration {
    parse_duration(text, path, default, false, errors)
}

/// Whether `var` can name an environment variable (letters, digits and `_`, not starting with a
/// digit).
pub(in crate::policy) fn is_env_var_name(var: &str) -> bool {
    !var.is_empty()
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A duration setting that may be zero (`0s`, `0ms`).
pub(in crate::policy) fn duration_or_zero(
    text: Option<&str>,
    path: &str,
    default: Duration,
    errors: &mut Errors,
) -> Duration {
    parse_duration(text, path, default, true, errors)
}

fn parse_duration(
    text: Option<&str>,
    path: &str,
    default: Duration,
    zero_ok: bool,
    errors: &mut Errors,
) -> Duration {
    let Some(text) = text else { return default };
    match humantime::parse_duration(text) {
        Ok(d) if zero_ok || !d.is_zero() => d,
        Ok(_) => {
            errors.push(path, "must be longer than zero");
            default
        }
        Err(e) => {
            errors.push(
                path,
                format!("`{text}` is not a duration like 500ms, 30s or 2m ({e})"),
            );
            default
        }
    }
}
