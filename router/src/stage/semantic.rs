//! The router's side of the semantic tier (the index, its tombstones and rebuilds are
//! frugal-cache's): what the question of a request is. It is the last user message's own words;
//! the context marked in it (`trim.markers`, as the trim stage finds it) and any non-text parts
//! (images, audio) stay in the scope, so the same question about other documents or another
//! image never hits.

use frugal_cache::{CacheScope, ScopeKey, SplitQuestion};
use serde_json::{Map, Value};

/// A request's semantic scope and its question's text, as [`scope`] returns them.
pub type SemanticScope = (ScopeKey, String);

/// The semantic scope of a request within `scope` (every field of the body, canonical, delivery
/// switches aside, except the question) and its question: the last user message's own words
/// (see [`question_text`]).
pub fn scope(
    scope: &CacheScope<'_>,
    body: &Map<String, Value>,
    markers: &[String],
) -> Option<SemanticScope> {
    scope.semantic_key(body, |content| split_question(content, markers))
}

/// The text a semantic lookup embeds and compares: the last user message's own words, without
/// the context marked in it (see [`scope`]).
pub fn question_text(body: &Map<String, Value>, markers: &[String]) -> String {
    let text = crate::tokens::last_user_text(body);
    super::trim::split_marked(&text, markers)
        .own_words
        .trim()
        .to_string()
}

/// A user message's content split into its question (own words, trimmed) and the rest: the
/// marked context and the non-text parts, as one JSON value for the scope hash.
fn split_question(content: Option<&Value>, markers: &[String]) -> SplitQuestion {
    let text = crate::tokens::content_text(content);
    let other_parts: Vec<Value> = match content {
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) != Some("text"))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let split = super::trim::split_marked(&text, markers);
    let context: Vec<&str> = split.context.iter().map(|r| &text[r.clone()]).collect();
    let rest = serde_json::json!({"context": context, "other_parts": other_parts});
    SplitQuestion {
        question: split.own_words.trim().to_string(),
        rest,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn ask(system: &str, question: &str) -> Map<String, Value> {
        body(json!({"temperature": 0, "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question}]}))
    }

    /// [`super::scope`] with the default context markers.
    fn scope(
        tenant: &str,
        namespace: &str,
        model: &str,
        body: &Map<String, Value>,
    ) -> Option<(ScopeKey, String)> {
        let scope = CacheScope {
            tenant,
            namespace,
            model,
        };
        super::scope(&scope, body, &markers())
    }

    fn markers() -> Vec<String> {
        vec!["document".into(), "context".into()]
    }

    #[test]
    fn the_scope_is_everything_but_the_question() {
        let (a, qa) = scope("t", "ns", "m", &ask("Be brief.", "What is Rust?")).unwrap();
        let (b, _) = scope("t", "ns", "m", &ask("Be brief.", "Tell me about Rust")).unwrap();
        assert_eq!(a, b);
        assert_eq!(qa, "What is Rust?");
        let differs = [
            scope("u", "ns", "m", &ask("Be brief.", "What is Rust?")),
            scope("t", "other", "m", &ask("Be brief.", "What is Rust?")),
            scope("t", "ns", "m2", &ask("Be brief.", "What is Rust?")),
            scope("t", "ns", "m", &ask("Be verbose.", "What is Rust?")),
        ];
        for other in differs {
            assert_ne!(other.unwrap().0, a);
        }
        let mut with_tools = ask("Be brief.", "What is Rust?");
        with_tools.insert("tools".into(), json!([{"type": "function"}]));
        assert_ne!(scope("t", "ns", "m", &with_tools).unwrap().0, a);
        let mut streamed = ask("Be brief.", "What is Rust?");
        streamed.insert("stream".into(), json!(true));
        assert_eq!(scope("t", "ns", "m", &streamed).unwrap().0, a);
    }

    #[test]
    fn marked_context_and_non_text_parts_are_scope_not_question() {
        let rag = |doc: &str, question: &str| {
            ask(
                "Answer from the documents.",
                &format!("<document>{doc}</document>\n\nQuestion: {question}"),
            )
        };
        let (a, qa) = scope("t", "ns", "m", &rag("Rust is a language.", "What is Rust?")).unwrap();
        assert_eq!(qa, "Question: What is Rust?");
        let (b, _) = scope("t", "ns", "m", &rag("Rust is a language.", "Define Rust")).unwrap();
        assert_eq!(a, b, "same documents, another question: same scope");
        let (c, _) = scope("t", "ns", "m", &rag("Rust is a fungus.", "What is Rust?")).unwrap();
        assert_ne!(a, c, "other documents: another scope");
        assert_eq!(
            question_text(&rag("Rust is a fungus.", "What is Rust?"), &markers()),
            "Question: What is Rust?"
        );
        let only_context = ask("Answer.", "<document>Only context.</document>\n");
        assert_eq!(scope("t", "ns", "m", &only_context), None);

        let picture = |url: &str| {
            body(json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url}}]}]}))
        };
        let (cat, q) = scope("t", "ns", "m", &picture("https://x/cat.png")).unwrap();
        assert_eq!(q, "What is in this picture?");
        let (dog, _) = scope("t", "ns", "m", &picture("https://x/dog.png")).unwrap();
        assert_ne!(cat, dog, "another image: another scope");
    }
}
