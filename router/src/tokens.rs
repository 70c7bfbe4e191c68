//! Token counting with a real tokenizer (OpenAI's o200k_base), for requests and answers whose
//! upstream gave no `usage`, and for the mock upstream's own `usage`.

use serde_json::{Map, Value};

use crate::trim::Tokenizer;

/// Counts a text's tokens (o200k_base).
pub fn count(text: &str) -> u64 {
    Tokenizer::O200kBase.count(text) as u64
}

/// Splits a text into its tokens' texts (o200k_base); they concatenate back to the text. A
/// token that ends inside a multi-byte character is joined with the tokens that complete it.
pub fn split(text: &str) -> Vec<String> {
    let tokenizer = bpe_openai::o200k_base();
    let mut pieces = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for token in tokenizer.encode(text) {
        pending.extend_from_slice(tokenizer.bpe.token_bytes(token));
        if let Ok(piece) = std::str::from_utf8(&pending) {
            pieces.push(piece.to_string());
            pending.clear();
        }
    }
    if !pending.is_empty() {
        pieces.push(String::from_utf8_lossy(&pending).into_owned());
    }
    pieces
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
            let content = match m.get("content") {
                Some(Value::String(text)) => count(text),
                other => count(&content_text(other)),
            };
            3 + role_tokens(role) + content
        })
        .sum();
    per_message + 3
}

/// The roles OpenAI's API knows, each one token in o200k_base.
const ONE_TOKEN_ROLES: [&str; 5] = ["system", "user", "assistant", "tool", "developer"];

/// A role's tokens, without running the tokenizer for the roles every request names.
fn role_tokens(role: &str) -> u64 {
    if ONE_TOKEN_ROLES.contains(&role) {
        1
    } else {
        count(role)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use super::*;

    #[test]
    fn the_known_roles_are_one_token_each() {
        for role in ONE_TOKEN_ROLES {
            assert_eq!(count(role), 1, "{role}");
            assert_eq!(role_tokens(role), count(role));
        }
        assert_eq!(role_tokens("narrator"), count("narrator"));
    }

    #[test]
    fn split_matches_tiktoken_and_concatenates_back() {
        let tiktoken = tiktoken_rs::o200k_base_singleton();
        for text in [
            "The quick brown fox jumps over the lazy dog.",
            "fn main() {\n    println!(\"{}\", 2 + 2);\n}",
            "héllo wörld, 日本語のテキスト and 👋🏽 emoji",
        ] {
            let pieces = split(text);
            assert_eq!(pieces.concat(), text);
            assert_eq!(count(text) as usize, tiktoken.encode_ordinary(text).len());
            // tiktoken-rs decodes a token that ends inside a character lossily ("�"); where
            // it does not, the pieces agree.
            let expected = tiktoken.split_by_token_ordinary(text).unwrap();
            if expected.concat() == text {
                assert_eq!(pieces, expected, "{text}");
            }
        }
    }
}
