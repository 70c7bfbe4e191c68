//! The policy compiler: whatever the YAML, a compiled policy or located errors, never a panic.

use proptest::prelude::*;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::invariants::policy_compiles_or_lists_errors;

/// Keys the policy schema knows, so generated mappings reach the compiler's checks.
const KEYS: &[&str] = &[
    "providers",
    "models",
    "default_model",
    "route",
    "cache",
    "trim",
    "tenants",
    "limits",
    "runs",
    "retries",
    "circuit_breaker",
    "embeddings",
    "listen",
    "provider",
    "upstream",
    "price",
    "input_per_mtok",
    "output_per_mtok",
    "base_url",
    "timeouts",
    "mode",
    "ladder",
    "ttl",
    "semantic",
    "guards",
    "similarity_threshold",
    "max_context_tokens",
    "markers",
    "budget",
    "window",
    "hard_cap_usd",
    "soft_thresholds",
    "max_tier",
    "checks",
    "classifier",
    "start_strong_above",
    "max_attempts",
    "backoff",
    "fallbacks",
    "baseline_model",
];

/// Scalars a policy holds: names, durations, modes, numbers, thresholds.
const SCALARS: &[&str] = &[
    "on",
    "off",
    "shadow",
    "5s",
    "0s",
    "1h",
    "-1s",
    "gpt-4o",
    "gpt-4o-mini",
    "mock",
    "cheap",
    "strong",
    "day",
    "month",
    "all",
    "none",
    "all,-order",
    "numbers",
    "document",
    "http://127.0.0.1:9100/v1",
    "not a url",
    "",
    "~",
    "0.94",
    "1e400",
    "127.0.0.1:8080",
];

/// The policies the repository ships, by path: valid starting points for mutation.
static SHIPPED: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let mut files = vec![format!("{dir}/default.yaml")];
    for name in ["local", "rag", "support-bot", "coding-agent"] {
        files.push(format!("{dir}/examples/{name}.yaml"));
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, frugal::yaml::parse(&text).unwrap().value)
        })
        .collect()
});

/// A YAML value as a policy might hold, right or wrong.
fn yaml_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-10i64..100_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-2.0f64..3.0).prop_map(Value::from),
        proptest::sample::select(SCALARS).prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..4).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

/// How to change one node of a policy.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Value),
    Remove,
    AddKey(&'static str, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => yaml_value().prop_map(Edit::Replace),
        1 => Just(Edit::Remove),
        2 => (proptest::sample::select(KEYS), yaml_value()).prop_map(|(k, v)| Edit::AddKey(k, v)),
    ]
}

/// Every node of a YAML tree, in depth-first order, as a path of mapping keys and indices, and
/// whether it is a mapping.
fn node_paths(value: &Value, path: &mut Vec<Value>, out: &mut Vec<(Vec<Value>, bool)>) {
    out.push((path.clone(), value.is_object()));
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Value::from(k.as_str()));
                node_paths(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Value::from(i));
                node_paths(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The node at `path`.
fn node_mut<'a>(value: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    let Some((step, rest)) = path.split_first() else {
        return Some(value);
    };
    let child = match value {
        Value::Object(map) => map.get_mut(step.as_str()?)?,
        Value::Array(items) => items.get_mut(usize::try_from(step.as_u64()?).ok()?)?,
        _ => return None,
    };
    node_mut(child, rest)
}

/// Applies `edit` to the `at`-th node (modulo the count) of `policy`.
fn apply(policy: &mut Value, at: usize, edit: Edit) {
    let mut paths = Vec::new();
    node_paths(policy, &mut Vec::new(), &mut paths);
    let (path, _) = &paths[at % paths.len()];
    match edit {
        Edit::Replace(v) => {
            if let Some(node) = node_mut(policy, path) {
                *node = v;
            }
        }
        Edit::Remove => {
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            match node_mut(policy, parent) {
                Some(Value::Object(map)) => {
                    if let Some(key) = last.as_str() {
                        map.remove(key);
                    }
                }
                Some(Value::Array(items)) => {
                    if let Some(i) = last.as_u64().and_then(|i| usize::try_from(i).ok()) {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
        Edit::AddKey(key, v) => {
            if let Some(Value::Object(map)) = node_mut(policy, path) {
                map.insert(key.to_string(), v);
            }
        }
    }
}

/// A tree as block YAML: each mapping key on its own line, sequence items as `- ` lines,
/// scalars and nested sequence items in JSON (flow) form, which is YAML too.
fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

fn emit(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => emit_map(map, indent, out),
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&format!("{pad}- {item}\n"));
            }
        }
        other => out.push_str(&format!("{pad}{other}\n")),
    }
}

fn emit_map(map: &Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in map {
        let key = Value::from(key.as_str());
        let nested = match value {
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        };
        if nested {
            out.push_str(&format!("{pad}{key}:\n"));
            emit(value, indent + 2, out);
        } else {
            out.push_str(&format!("{pad}{key}: {value}\n"));
        }
    }
}

/// Every mapping node of a tree, as paths.
fn mapping_paths(policy: &Value) -> Vec<Vec<Value>> {
    let mut paths = Vec::new();
    node_paths(policy, &mut Vec::new(), &mut paths);
    paths
        .into_iter()
        .filter_map(|(path, is_mapping)| is_mapping.then_some(path))
        .collect()
}

/// YAML-ish text: indentation, flow syntax, anchors, tags, quotes, keys and scalars.
fn yaml_like_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(|k| format!("{k}:")),
        3 => proptest::sample::select(SCALARS).prop_map(str::to_owned),
        3 => proptest::sample::select(
            &["\n", "\n  ", "\n    ", " ", "- ", "{", "}", "[", "]", ", ", ": ", "&a ", "*a",
              "!!str ", "!!binary ", "'", "\"", "#", "? ", "|\n  ", ">-\n  ", "<<: *a", "---\n",
              "...\n", "\t", "%YAML 1.2\n"][..],
        )
        .prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..48).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(crate::config(3_000))]

    /// A shipped policy with one node replaced, removed or given a new key compiles or lists
    /// its errors, each located inside the text.
    #[test]
    fn an_edited_policy_compiles_or_lists_located_errors(
        which in any::<usize>(),
        edits in proptest::collection::vec((any::<usize>(), edit()), 1..3),
    ) {
        let (path, mut policy) = SHIPPED[which % SHIPPED.len()].clone();
        for (at, edit) in edits {
            apply(&mut policy, at, edit);
        }
        let text = to_yaml(&policy);
        policy_compiles_or_lists_errors(&text, &path);
    }
}

proptest! {
    #![proptest_config(crate::config(1_500))]

    /// An unknown key anywhere in a shipped policy is refused at its own line.
    #[test]
    fn an_unknown_key_is_refused_at_its_line(which in any::<usize>(), at in any::<usize>()) {
        let (path, mut policy) = SHIPPED[which % SHIPPED.len()].clone();
        let mappings = mapping_paths(&policy);
        let target = &mappings[at % mappings.len()];
        if let Some(Value::Object(map)) = node_mut(&mut policy, target) {
            map.insert("zz_unknown_key".into(), Value::from(1));
        }
        let text = to_yaml(&policy);
        let errors = frugal::policy::parse(&text, &path).err();
        prop_assert!(errors.is_some(), "accepted an unknown key:\n{text}");
        let errors = errors.unwrap().errors;
        let lines: Vec<&str> = text.lines().collect();
        let at_its_line = errors.iter().any(|e| {
            e.path.contains("zz_unknown_key")
                && e.position.is_some_and(|p| lines[p.line - 1].contains("zz_unknown_key"))
        });
        prop_assert!(at_its_line, "{errors:#?}\n{text}");
    }
}

proptest! {
    #![proptest_config(crate::config(6_000))]

    /// Any YAML-like text compiles or lists located errors, never a panic.
    #[test]
    fn any_text_compiles_or_lists_located_errors(text in yaml_like_text()) {
        policy_compiles_or_lists_errors(&text, "/nonexistent-frugal-properties/policy.yaml");
    }
}

/// The helpers above find and change the nodes they say they do.
#[test]
fn edits_reach_nested_nodes() {
    let mut policy: Value = frugal::yaml::parse("a: { b: [1, 2] }\nc: 3\n")
        .unwrap()
        .value;
    let mut paths = Vec::new();
    node_paths(&policy, &mut Vec::new(), &mut paths);
    assert_eq!(paths.len(), 6);
    apply(&mut policy, 3, Edit::Replace(Value::from("x")));
    apply(&mut policy, 1, Edit::AddKey("mode", Value::Null));
    let expected: Value = frugal::yaml::parse("a: { b: [x, 2], mode: null }\nc: 3\n")
        .unwrap()
        .value;
    assert_eq!(
        frugal::yaml::parse(&to_yaml(&policy)).unwrap().value,
        policy
    );
    assert_eq!(policy, expected);
    assert_eq!(mapping_paths(&policy).len(), 2);
}

/// Found by the `policy` fuzz target: an empty top-level key (here a folded block scalar as a
/// complex key, with lone `\r` line ends) was reported with an empty path.
#[test]
fn an_empty_top_level_key_is_reported_with_a_path() {
    let text = "#lc\rche:\r\r\r?\rcache:\r\r\r?\r\r#m#lche:\r\r\r>\r#m+lg\r\r";
    assert!(policy_compiles_or_lists_errors(text, "/nonexistent/policy.yaml").is_none());
    let errors = frugal::policy::parse("\"\": 1\n", "policy.yaml")
        .unwrap_err()
        .errors;
    assert_eq!(errors[0].path, "(root)");
    assert_eq!(errors[0].position.map(|p| p.line), Some(1));
}
