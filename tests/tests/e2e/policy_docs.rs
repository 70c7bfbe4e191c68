//! `policies/default.yaml` is the policy reference: every option the schema knows is shown in
//! it (set or commented out), and every commented-out option is valid once uncommented.

use serde_json::Value;

const DEFAULT_POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/default.yaml");

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

#[test]
fn every_option_in_the_schema_is_shown_in_the_default_policy() {
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
