//! Policy mistakes: how one reads, how they are collected with their position, and the first
//! pass over the YAML that checks each section on its own (so one broken section does not hide
//! the mistakes of the others).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::super::locate::{join, Position, SourceMap};
use super::super::raw::{
    RawCache, RawCircuitBreaker, RawDecisionLog, RawEmbeddings, RawLimits, RawModel, RawPolicy,
    RawPromptCache, RawProvider, RawRetries, RawRoute, RawRuns, RawShared, RawTenant, RawTrim,
    TOP_LEVEL_KEYS,
};

/// One mistake in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Dotted path of the offending key, e.g. `models.fast.provider`.
    pub path: String,
    /// Where it is in the file, when known.
    pub position: Option<Position>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "line {}:{}: {}: {}",
                p.line, p.column, self.path, self.message
            ),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every mistake found in a policy file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PolicyErrors {
    /// The file (or source name) the errors are about.
    pub source_name: String,
    /// The errors.
    pub errors: Vec<PolicyError>,
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: {} error{} in policy",
            self.source_name,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.errors {
            writeln!(f, "  {error}")?;
        }
        Ok(())
    }
}

/// Mistakes found so far, located in the source.
pub(in crate::policy) struct Errors<'a> {
    pub(super) source: &'a SourceMap,
    pub(super) list: Vec<PolicyError>,
}

impl Errors<'_> {
    /// Records a mistake at a dotted path.
    pub(in crate::policy) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let position = self.source.find(&path);
        // A top-level key may be the empty string (`"": 1`); its error still names a place.
        let path = if path.is_empty() {
            "(root)".to_string()
        } else {
            path
        };
        self.list.push(PolicyError {
            path,
            position,
            message: message.into(),
        });
    }
}

/// Deserializes section by section and entry by entry, so that every structural mistake
/// (unknown key, wrong type, missing field) is found, not only the first. What does not
/// deserialize is left out and its path remembered in `broken`, so compiling the rest can still
/// find the semantic mistakes without reporting a broken entry a second time.
pub(super) fn diagnose(
    value: &Value,
    errors: &mut Errors,
    broken: &mut BTreeSet<String>,
) -> Option<RawPolicy> {
    let Value::Object(top) = value else {
        errors.push(
            "(root)",
            "a policy must be a mapping of keys such as `providers:` and `models:`",
        );
        return None;
    };
    let mut kept = Map::new();
    for (key, section) in top {
        let name = key.as_str();
        let section = match name {
            "providers" => check_entries::<RawProvider>(section, name, errors, broken),
            "models" => check_entries::<RawModel>(section, name, errors, broken),
            "limits" => check_value::<RawLimits>(section, name, errors, broken),
            "tenants" => check_entries::<RawTenant>(section, name, errors, broken),
            "runs" => check_value::<RawRuns>(section, name, errors, broken),
            "cache" => check_value::<RawCache>(section, name, errors, broken),
            "route" => check_value::<RawRoute>(section, name, errors, broken),
            "retries" => check_value::<RawRetries>(section, name, errors, broken),
            "circuit_breaker" => check_value::<RawCircuitBreaker>(section, name, errors, broken),
            "embeddings" => check_value::<RawEmbeddings>(section, name, errors, broken),
            "trim" => check_value::<RawTrim>(section, name, errors, broken),
            "shared" => check_value::<RawShared>(section, name, errors, broken),
            "decision_log" => check_value::<RawDecisionLog>(section, name, errors, broken),
            "prompt_cache" => check_value::<RawPromptCache>(section, name, errors, broken),
            _ if TOP_LEVEL_KEYS.contains(&name) => {
                check_value::<Option<String>>(section, name, errors, broken)
            }
            _ => {
                errors.push(name, unknown_key_message(name, TOP_LEVEL_KEYS));
                None
            }
        };
        if let Some(section) = section {
            kept.insert(key.clone(), section);
        }
    }
    match serde_path_to_error::deserialize::<_, RawPolicy>(Value::Object(kept)) {
        Ok(raw) => Some(raw),
        Err(e) => {
            errors.push(e.path().to_string(), e.inner().to_string());
            None
        }
    }
}

/// Checks each entry of a name → settings mapping; returns the mapping of the good entries.
fn check_entries<T: DeserializeOwned>(
    section: &Value,
    path: &str,
    errors: &mut Errors,
    broken: &mut BTreeSet<String>,
) -> Option<Value> {
    match section {
        Value::Object(entries) => {
            let good = entries
                .iter()
                .filter(|(name, entry)| {
                    check_value::<T>(entry, &join(path, name), errors, broken).is_some()
                })
                .map(|(name, entry)| (name.clone(), entry.clone()))
                .collect();
            Some(Value::Object(good))
        }
        Value::Null => None,
        _ => {
            errors.push(path, "expected a mapping of names to settings");
            broken.insert(path.to_string());
            None
        }
    }
}

/// Checks one value against its raw type; returns it if it deserializes.
fn check_value<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    errors: &mut Errors,
    broken: &mut BTreeSet<String>,
) -> Option<Value> {
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(_) => Some(value.clone()),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." {
                path.to_string()
            } else {
                join(path, &inner)
            };
            errors.push(full, with_suggestion(&e.inner().to_string()));
            broken.insert(path.to_string());
            None
        }
    }
}

fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    unknown_key_message(unknown, &candidates)
}

pub(super) fn unknown_key_message(unknown: &str, candidates: &[&str]) -> String {
    let best = candidates
        .iter()
        .map(|c| (strsim::levenshtein(unknown, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min();
    match best {
        Some((_, c)) => format!("unknown key `{unknown}`; did you mean `{c}`?"),
        None => format!(
            "unknown key `{unknown}`; expected one of: {}",
            candidates.join(", ")
        ),
    }
}

/// Names of a section's entries, including those already reported as broken (so references
/// to them are not reported a second time).
pub(super) fn known_names<'a, V>(
    section: &'a BTreeMap<String, V>,
    name: &str,
    broken: &'a BTreeSet<String>,
) -> Vec<&'a str> {
    let prefix = format!("{name}.");
    let broken_names = broken
        .iter()
        .filter_map(move |p| p.strip_prefix(prefix.as_str()));
    section
        .keys()
        .map(String::as_str)
        .chain(broken_names)
        .collect()
}
