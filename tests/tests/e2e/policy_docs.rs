//! The policy references stay complete: every option the schema knows is shown in
//! `policies/default.yaml` (set or commented out, and every commented-out option is valid once
//! uncommented) and documented in `docs/configuration.md`, in the section of its top-level key.

use std::collections::BTreeMap;

use serde_json::Value;

const DEFAULT_POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/default.yaml");
const CONFIGURATION_DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");

/// Every property name in the schema, with its dotted path (`*` for map entries).
fn schema_options(node: &Value, defs: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        return schema_options(&defs[name], defs, path, out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for sub in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            schema_options(sub, defs, path, out);
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            let sub_path = format!("{path}.{name}");
            out.push((name.clone(), sub_path.clone()));
            schema_options(sub, defs, &sub_path, out);
        }
    }
    if let Some(entries) = node.get("additionalProperties").filter(|v| v.is_object()) {
        schema_options(entries, defs, &format!("{path}.*"), out);
    }
    if let Some(items) = node.get("items").filter(|v| v.is_object()) {
        schema_options(items, defs, path, out);
    }
}

/// Whether `key:` appears as an option in the YAML text: first on a line (after indentation,
/// a `#` and `- `) or inside a flow mapping (after `{` or `,`).
fn shows_option(text: &str, key: &str) -> bool {
    let written = format!("{key}:");
    text.lines().any(|line| {
        let bare = line.trim_start().trim_start_matches('#').trim_start();
        let bare = bare.strip_prefix("- ").unwrap_or(bare);
        bare.starts_with(&written)
            || line
                .match_indices(&written)
                .any(|(at, _)| line[..at].trim_end().ends_with(['{', ',']))
    })
}

/// Every option of the policy schema: its key and its dotted path (`.providers.*.base_url`).
fn all_options() -> Vec<(String, String)> {
    let schema = frugal::policy::raw::json_schema();
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut options = Vec::new();
    schema_options(&schema, &defs, "", &mut options);
    assert!(
        options.len() > 60,
        "the schema walk found {}",
        options.len()
    );
    options
}

#[test]
fn every_option_in_the_schema_is_shown_in_the_default_policy() {
    let options = all_options();
    let text = std::fs::read_to_string(DEFAULT_POLICY).unwrap();
    let missing: Vec<&str> = options
        .iter()
        .filter(|(key, _)| !shows_option(&text, key))
        .map(|(_, path)| path.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "document these options in policies/default.yaml: {missing:?}"
    );
}

/// The default policy with every commented-out option line (`# key: …`) uncommented.
fn uncommented(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let rest = line.trim_start();
        let option = rest
            .strip_prefix('#')
            .map(|r| r.strip_prefix(' ').unwrap_or(r))
            .filter(|r| {
                let key = r.trim_start();
                let name: String = key
                    .chars()
                    .take_while(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')
                    })
                    .collect();
                !name.is_empty() && key[name.len()..].starts_with(':')
            });
        match option {
            Some(option) if !rest.starts_with("# yaml-language-server") => {
                out.push_str(indent);
                out.push_str(option);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn every_commented_option_in_the_default_policy_is_valid() {
    let text = std::fs::read_to_string(DEFAULT_POLICY).unwrap();
    let full = uncommented(&text);
    for section in ["tenants:", "runs:", "cache:", "trim:", "embeddings:"] {
        assert!(
            full.lines().any(|l| l == section),
            "`{section}` was not uncommented:\n{full}"
        );
    }
    // The keyed tenant's variable; no other test reads it.
    std::env::set_var("BATCH_JOBS_KEY", "a-key-of-at-least-16-characters");
    // Named as if beside default.yaml, so relative paths (the classifier) resolve the same.
    let name = DEFAULT_POLICY.replace("default.yaml", "default-uncommented.yaml");
    if let Err(errors) = frugal::policy::parse(&full, &name) {
        panic!("{errors}\n--- the uncommented policy:\n{full}");
    }
}

/// The sections of a Markdown page headed `## `key``, by key: each runs to the next `## `
/// heading. Fenced code is left out, so neither a `#` in it nor its text counts.
fn key_sections(page: &str) -> BTreeMap<String, String> {
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut in_code = false;
    for line in page.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            sections.extend(current.take());
            current = heading
                .strip_prefix('`')
                .and_then(|rest| rest.strip_suffix('`'))
                .map(|key| (key.to_string(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    sections.extend(current);
    sections
}

/// Whether `text` names `key` in backticks, alone (`ttl`) or as the end of a dotted path
/// (`limits.request_timeout`).
fn names_option(text: &str, key: &str) -> bool {
    text.split('`')
        .skip(1)
        .step_by(2)
        .any(|span| span.rsplit('.').next() == Some(key))
}

#[test]
fn every_option_in_the_schema_is_documented_in_its_section_of_the_configuration_page() {
    let options = all_options();
    let page = std::fs::read_to_string(CONFIGURATION_DOCS).unwrap();
    let sections = key_sections(&page);
    let top_level = |path: &str| path.split('.').nth(1).unwrap_or_default().to_string();
    let missing: Vec<&str> = options
        .iter()
        .filter(|(key, path)| match sections.get(&top_level(path)) {
            None => true,
            Some(_) if path.matches('.').count() == 1 => false,
            Some(text) => !names_option(text, key),
        })
        .map(|(_, path)| path.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "document these options in docs/configuration.md, each in backticks in the section \
         headed ## `top-level key` (a missing section fails all of its options): {missing:?}"
    );
    let known: Vec<String> = options.iter().map(|(_, path)| top_level(path)).collect();
    let stale: Vec<&String> = sections.keys().filter(|key| !known.contains(key)).collect();
    assert!(
        stale.is_empty(),
        "docs/configuration.md has sections for keys the schema does not know: {stale:?}"
    );
}
