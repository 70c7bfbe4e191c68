//! Token counting with a real tokenizer (tiktoken o200k_base), for requests and answers whose
//! upstream gave no `usage`, and for the mock upstream's own `usage`.

use serde_json::{Map, Value};
use tiktoken_rs::CoreBPE;

fn tokenizer() -> &'static CoreBPE {
    tiktoken_rs::o200k_base_singleton()
}

/// Counts a text's tokens.
pub fn count(text: &str) -> u64 {
    tokenizer().encode_ordinary(text).len() as u64
}

/// Splits a text into its tokens' texts (they concatenate back to the text).
pub fn split(text: &str) -> Vec<String> {
    tokenizer()
        .split_by_token_ordinary(text)
        .unwrap_or_else(|_| vec![text.to_string()])
}

/// The text of a message's `content`: a string, or the `text` of its content parts.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The text of the last user message of a request body.
pub fn last_user_text(body: &Map<String, Value>) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default()
}

/// Prompt tokens of a chat request as OpenAI bills them: 3 per message plus role and content,
/// plus 3 priming the reply.
pub fn prompt_tokens(body: &Map<String, Value>) -> u64 {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let per_message: u64 = messages
        .iter()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
            3 + count(role) + count(&content_text(m.get("content")))
        })
        .sum();
    per_message + 3
}
