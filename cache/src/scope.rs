//! Cache identity: which earlier answers a request may be served from.
//!
//! A [`CacheScope`] names whose answers may be shared (a tenant, its cache namespace and the
//! model alias asked for). Within it the exact tier keys a request by every field of its body
//! but the delivery switches ([`CacheScope::exact_key`]); the semantic tier keys it by every
//! field but its question ([`CacheScope::semantic_key`]). Both hash the body in canonical form
//! (object keys sorted), so a field a client adds is part of the key and can never cause a
//! false hit, and neither ever matches across tenants, namespaces or models.

use std::io::{self, Write};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Request fields that change how an answer is delivered, not what it says.
const DELIVERY_FIELDS: &[&str] = &["stream", "stream_options"];

/// Keeps the semantic tier's hashes apart from the exact tier's (bump it when the scope's
/// contents change, so old vectors cannot match new scopes).
const SEMANTIC_DOMAIN: &[u8] = b"semantic-scope-v2";

/// The key of a request in the exact tier.
pub type CacheKey = [u8; 32];

/// The key of a semantic scope: everything about a request but its last user message.
pub type ScopeKey = [u8; 32];

/// Whose answers a request may be served from: the same tenant, cache namespace and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheScope<'a> {
    /// The tenant as the client named it (never a shared overflow label).
    pub tenant: &'a str,
    /// The tenant's cache namespace (tenants sharing one share answers).
    pub namespace: &'a str,
    /// The model alias the request asked for.
    pub model: &'a str,
}

/// A chat request's last user message split into what the semantic tier compares and the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitQuestion {
    /// The words the question is compared by (trimmed); empty means no semantic lookup.
    pub question: String,
    /// Everything else in the message (marked context, images, audio), kept in the scope so the
    /// same question about other documents never hits.
    pub rest: Value,
}

impl CacheScope<'_> {
    /// The exact-tier key of `body`: this scope and every request field except the delivery
    /// switches, in canonical form.
    pub fn exact_key(&self, body: &Map<String, Value>) -> CacheKey {
        self.hash(b"", body, None)
    }

    /// The semantic scope of `body` and its question, or `None` when the request is no
    /// semantic lookup (its last message is not the user's, or the question is empty).
    /// `split` turns the last user message's content into its question and the rest.
    pub fn semantic_key(
        &self,
        body: &Map<String, Value>,
        split: impl FnOnce(Option<&Value>) -> SplitQuestion,
    ) -> Option<(ScopeKey, String)> {
        let messages = body.get("messages").and_then(Value::as_array)?;
        let last_user = messages
            .iter()
            .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
        // Only the final turn may differ: a question followed by other turns is not a lookup.
        if last_user + 1 != messages.len() {
            return None;
        }
        let SplitQuestion { question, rest } = split(messages[last_user].get("content"));
        if question.is_empty() {
            return None;
        }
        let blank = Blank {
            index: last_user,
            content: &rest,
        };
        Some((self.hash(SEMANTIC_DOMAIN, body, Some(blank)), question))
    }

    /// SHA-256 of `domain` (which keeps hashes of different uses apart), the scope and every
    /// request field except the model and the delivery switches, canonical; with `blank`, one
    /// message's content written as another value. The canonical text is written straight
    /// into the hasher, never built as a copy of the body.
    fn hash(&self, domain: &[u8], body: &Map<String, Value>, blank: Option<Blank<'_>>) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(domain);
        for part in [self.tenant, self.namespace, self.model] {
            hasher.update(part.len().to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let fields = fields_of(body).filter(|(k, _)| !DELIVERY_FIELDS.contains(k) && *k != "model");
        let mut out = HashWriter(&mut hasher);
        // A hasher takes every byte: writing to it cannot fail.
        let _ = write_object(&mut out, fields, |out, key, value| {
            match (key, value, blank) {
                ("messages", Value::Array(messages), Some(blank)) => {
                    write_messages(out, messages, blank)
                }
                _ => write_canonical(out, value),
            }
        });
        hasher.finalize().into()
    }
}

/// A message of the semantic scope whose content stands in for the question left out.
#[derive(Clone, Copy)]
struct Blank<'a> {
    /// Its index in `messages`.
    index: usize,
    /// What is written as its content.
    content: &'a Value,
}

/// Feeds what is written to a SHA-256 hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `value` as compact JSON with every object's keys sorted: the canonical form.
fn write_canonical(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    match value {
        Value::Object(map) => write_object(out, fields_of(map), |out, _, value| {
            write_canonical(out, value)
        }),
        Value::Array(items) => write_array(out, items, |out, _, item| write_canonical(out, item)),
        leaf => serde_json::to_writer(out, leaf).map_err(io::Error::other),
    }
}

/// Writes an object of `fields` with its keys sorted, each value by `write_value`.
fn write_object<'a>(
    out: &mut dyn Write,
    fields: impl Iterator<Item = (&'a str, &'a Value)>,
    mut write_value: impl FnMut(&mut dyn Write, &str, &'a Value) -> io::Result<()>,
) -> io::Result<()> {
    let mut fields: Vec<(&str, &Value)> = fields.collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.write_all(b"{")?;
    for (i, (key, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, key).map_err(io::Error::other)?;
        out.write_all(b":")?;
        write_value(out, key, value)?;
    }
    out.write_all(b"}")
}

/// Writes `messages` canonically, the one at `blank.index` with `blank.content` as its content.
fn write_messages(out: &mut dyn Write, messages: &[Value], blank: Blank<'_>) -> io::Result<()> {
    write_array(out, messages, |out, i, message| match message {
        Value::Object(map) if i == blank.index => {
            let fields = fields_of(map)
                .filter(|(k, _)| *k != "content")
                .chain(std::iter::once(("content", blank.content)));
            write_object(out, fields, |out, _, value| write_canonical(out, value))
        }
        _ => write_canonical(out, message),
    })
}

/// Writes an array of `items`, each (with its index) by `write_item`.
fn write_array(
    out: &mut dyn Write,
    items: &[Value],
    mut write_item: impl FnMut(&mut dyn Write, usize, &Value) -> io::Result<()>,
) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_item(out, i, item)?;
    }
    out.write_all(b"]")
}

/// An object's fields, keys as `&str`.
fn fields_of(map: &Map<String, Value>) -> impl Iterator<Item = (&str, &Value)> {
    map.iter().map(|(k, v)| (k.as_str(), v))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn key(tenant: &str, namespace: &str, model: &str, body: &Map<String, Value>) -> CacheKey {
        CacheScope {
            tenant,
            namespace,
            model,
        }
        .exact_key(body)
    }

    #[test]
    fn key_ignores_key_order_and_delivery_but_not_content() {
        let a = body(
            json!({"messages":[{"role":"user","content":"hi"}],"temperature":0,"stream":true}),
        );
        let b = body(json!({"temperature":0,"messages":[{"content":"hi","role":"user"}]}));
        assert_eq!(key("t", "ns", "m", &a), key("t", "ns", "m", &b));
        let c = body(json!({"temperature":0,"messages":[{"content":"hi!","role":"user"}]}));
        assert_ne!(key("t", "ns", "m", &a), key("t", "ns", "m", &c));
        assert_ne!(
            key("t", "ns", "m", &a),
            key("u", "ns", "m", &a),
            "never across tenants"
        );
        assert_ne!(
            key("t", "ns", "m", &a),
            key("t", "other", "m", &a),
            "never across namespaces"
        );
        let d = body(json!({"temperature":0,"messages":[{"content":"hi","role":"user"}],"seed":1}));
        assert_ne!(
            key("t", "ns", "m", &b),
            key("t", "ns", "m", &d),
            "unknown fields are part of the key"
        );
    }

    #[test]
    fn the_semantic_key_needs_a_final_user_question_and_differs_from_the_exact_key() {
        let scope = CacheScope {
            tenant: "t",
            namespace: "ns",
            model: "m",
        };
        let whole = |content: Option<&Value>| SplitQuestion {
            question: content.and_then(Value::as_str).unwrap_or("").trim().into(),
            rest: Value::Null,
        };
        let asked = body(json!({"messages":[{"role":"user","content":" What is Rust? "}]}));
        let (semantic, question) = scope.semantic_key(&asked, whole).unwrap();
        assert_eq!(question, "What is Rust?");
        assert_ne!(semantic, scope.exact_key(&asked));
        let answered = body(json!({"messages":[
            {"role":"user","content":"What is Rust?"},
            {"role":"assistant","content":"A language."}]}));
        assert_eq!(scope.semantic_key(&answered, whole), None);
        let blank = body(json!({"messages":[{"role":"user","content":"  "}]}));
        assert_eq!(scope.semantic_key(&blank, whole), None);
    }

    /// The keys as first computed: the canonical body built as a copy, then serialised.
    fn tree_hash(scope: &CacheScope<'_>, domain: &[u8], body: &Map<String, Value>) -> [u8; 32] {
        fn canonical(value: &Value) -> Value {
            match value {
                Value::Object(map) => {
                    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.clone(), canonical(v)))
                            .collect(),
                    )
                }
                Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
                other => other.clone(),
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(domain);
        for part in [scope.tenant, scope.namespace, scope.model] {
            hasher.update(part.len().to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let fields: Map<String, Value> = body
            .iter()
            .filter(|(k, _)| !DELIVERY_FIELDS.contains(&k.as_str()) && k.as_str() != "model")
            .map(|(k, v)| (k.clone(), canonical(v)))
            .collect();
        hasher.update(canonical(&Value::Object(fields)).to_string().as_bytes());
        hasher.finalize().into()
    }

    #[test]
    fn keys_are_byte_for_byte_those_of_a_built_canonical_copy() {
        let scope = CacheScope {
            tenant: "t",
            namespace: "ns",
            model: "m",
        };
        let rest = json!([{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]);
        let split = |_: Option<&Value>| SplitQuestion {
            question: "q".into(),
            rest: rest.clone(),
        };
        let bodies = [
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            json!({"stream": true, "stream_options": {"include_usage": true}, "temperature": 0.25,
                   "z": [1, -2, 3.5e300, 18446744073709551615u64, null, true, false],
                   "messages": [{"role": "system", "content": "Be \"brief\"\n\u{1F600} é \u{0007}"},
                                {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "b": {"y": 1, "x": 2}}]},
                                {"content": [{"type": "text", "text": "what?"}], "role": "user", "name": "n"}],
                   "a": {"c": {}, "b": [], "a": ""}}),
            json!({"messages": [{"role": "user"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}),
        ];
        for body in bodies {
            let body = body.as_object().unwrap().clone();
            assert_eq!(
                scope.exact_key(&body),
                tree_hash(&scope, b"", &body),
                "{body:?}"
            );
            let (semantic, _) = scope.semantic_key(&body, split).unwrap();
            let messages = body["messages"].as_array().unwrap();
            let mut blanked = messages.clone();
            let last = blanked.len() - 1;
            blanked[last]
                .as_object_mut()
                .unwrap()
                .insert("content".into(), rest.clone());
            let mut scoped = body.clone();
            scoped.insert("messages".into(), Value::Array(blanked));
            assert_eq!(
                semantic,
                tree_hash(&scope, SEMANTIC_DOMAIN, &scoped),
                "{body:?}"
            );
        }
    }
}
