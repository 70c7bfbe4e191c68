//! Cache identity: which earlier answers a request may be served from.
//!
//! A [`CacheScope`] names whose answers may be shared (a tenant, its cache namespace and the
//! model alias asked for). Within it the exact tier keys a request by every field of its body
//! but the delivery switches ([`CacheScope::exact_key`]); the semantic tier keys it by every
//! field but its question ([`CacheScope::semantic_key`]). Both hash the body in canonical form
//! (object keys sorted), so a field a client adds is part of the key and can never cause a
//! false hit, and neither ever matches across tenants, namespaces or models.

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
        self.hash(b"", body)
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
        let mut blanked = messages.clone();
        if let Some(message) = blanked[last_user].as_object_mut() {
            message.insert("content".into(), rest);
        }
        let mut scoped = body.clone();
        scoped.insert("messages".into(), Value::Array(blanked));
        Some((self.hash(SEMANTIC_DOMAIN, &scoped), question))
    }

    /// SHA-256 of `domain` (which keeps hashes of different uses apart), the scope and every
    /// request field except the model and the delivery switches, canonical.
    fn hash(&self, domain: &[u8], body: &Map<String, Value>) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(domain);
        for part in [self.tenant, self.namespace, self.model] {
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
}

/// The value with every object's keys sorted.
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
}
