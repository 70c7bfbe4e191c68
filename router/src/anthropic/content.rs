//! One Anthropic turn's content blocks as OpenAI messages: text and images as content parts,
//! an assistant's `tool_use` blocks as `tool_calls`, a user's `tool_result` blocks as `tool`
//! messages placed before the rest of that turn, thinking blocks dropped.

use serde_json::{json, Value};

use crate::error::ApiError;
pub(crate) use crate::request::wrong_type;

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The client.
    User,
    /// The model (earlier answers, tool calls).
    Assistant,
}

/// The OpenAI messages of one turn at `at` (`messages[i]`).
pub fn turn(role: Turn, content: Option<&Value>, at: &str) -> Result<Vec<Value>, ApiError> {
    let blocks = match content {
        Some(Value::String(text)) => {
            let role = match role {
                Turn::User => "user",
                Turn::Assistant => "assistant",
            };
            return Ok(vec![json!({ "role": role, "content": text })]);
        }
        Some(Value::Array(blocks)) if !blocks.is_empty() => blocks,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid_param(
                format!("{at}.content"),
                format!("{at}.content: at least one content block is required."),
            ))
        }
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_param(
                format!("{at}.content"),
                format!("{at}.content: Field required."),
            ))
        }
        Some(other) => {
            return Err(wrong_type(
                &format!("{at}.content"),
                "a string or an array of content blocks",
                other,
            ))
        }
    };
    match role {
        Turn::User => user_turn(blocks, at),
        Turn::Assistant => assistant_turn(blocks, at),
    }
}

/// A user turn: its tool results first (OpenAI wants them right after the assistant's calls),
/// then one user message with the remaining parts (images a tool returned lead them, as an
/// OpenAI tool message carries text only).
fn user_turn(blocks: &[Value], at: &str) -> Result<Vec<Value>, ApiError> {
    let mut messages = Vec::new();
    let mut tool_images = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match block_type(block, &at)? {
            "text" => parts.push(json!({ "type": "text", "text": text_of(block, &at)? })),
            "image" => parts.push(image_part(block, &at)?),
            "tool_result" => messages.push(tool_message(block, &at, &mut tool_images)?),
            "thinking" | "redacted_thinking" => {}
            "tool_use" => {
                return Err(ApiError::invalid_param(
                    format!("{at}.type"),
                    format!("{at}: `tool_use` blocks belong in assistant turns."),
                ))
            }
            other => return Err(unsupported_block(other, &at)),
        }
    }
    tool_images.extend(parts);
    if !tool_images.is_empty() {
        messages.push(json!({ "role": "user", "content": parts_content(tool_images) }));
    }
    Ok(messages)
}

/// An assistant turn: its text as one string, its `tool_use` blocks as `tool_calls`.
fn assistant_turn(blocks: &[Value], at: &str) -> Result<Vec<Value>, ApiError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match block_type(block, &at)? {
            "text" => texts.push(text_of(block, &at)?),
            "tool_use" => calls.push(tool_call(block, &at)?),
            "thinking" | "redacted_thinking" => {}
            "tool_result" | "image" => {
                return Err(ApiError::invalid_param(
                    format!("{at}.type"),
                    format!("{at}: assistant turns hold `text` and `tool_use` blocks only."),
                ))
            }
            other => return Err(unsupported_block(other, &at)),
        }
    }
    let content = if texts.is_empty() {
        Value::Null
    } else {
        json!(texts.join("\n"))
    };
    let mut message = json!({ "role": "assistant", "content": content });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(vec![message])
}

/// A list of parts as OpenAI content: one text part as a plain string (what most
/// OpenAI-compatible servers and the cache's question split read best), else the parts.
fn parts_content(mut parts: Vec<Value>) -> Value {
    let single_text =
        parts.len() == 1 && parts[0].get("type").and_then(Value::as_str) == Some("text");
    match parts.pop() {
        Some(part) if single_text => part.get("text").cloned().unwrap_or(Value::Null),
        Some(part) => {
            parts.push(part);
            Value::Array(parts)
        }
        None => Value::Array(parts),
    }
}

/// An `image` block (`source` base64 or url) as an OpenAI `image_url` part.
fn image_part(block: &Value, at: &str) -> Result<Value, ApiError> {
    let source = block.get("source");
    let field = |name: &str| {
        source
            .and_then(|s| s.get(name))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::invalid_param(
                    format!("{at}.source.{name}"),
                    format!("{at}.source.{name}: a string is required."),
                )
            })
    };
    let url = match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
        Some("base64") => format!("data:{};base64,{}", field("media_type")?, field("data")?),
        Some("url") => field("url")?.to_string(),
        other => {
            return Err(ApiError::invalid_param(
                format!("{at}.source.type"),
                format!(
                    "{at}.source.type: `base64` or `url` is supported through frugal, got {}.",
                    other.map_or("nothing".to_string(), |t| format!("`{t}`"))
                ),
            ))
        }
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A `tool_use` block as an OpenAI tool call (`arguments` is its `input` as JSON text).
fn tool_call(block: &Value, at: &str) -> Result<Value, ApiError> {
    let id = required_string(block, "id", at)?;
    let name = required_string(block, "name", at)?;
    let input = match block.get("input") {
        Some(input @ Value::Object(_)) => input.to_string(),
        _ => {
            return Err(ApiError::invalid_param(
                format!("{at}.input"),
                format!("{at}.input: an object is required."),
            ))
        }
    };
    Ok(json!({ "id": id, "type": "function", "function": { "name": name, "arguments": input } }))
}

/// A `tool_result` block as an OpenAI `tool` message. Its text blocks are joined; an error
/// result says so in the text (OpenAI has no flag for it); images go to `images`.
fn tool_message(block: &Value, at: &str, images: &mut Vec<Value>) -> Result<Value, ApiError> {
    let id = required_string(block, "tool_use_id", at)?;
    let text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (k, inner) in blocks.iter().enumerate() {
                let at = format!("{at}.content[{k}]");
                match block_type(inner, &at)? {
                    "text" => texts.push(text_of(inner, &at)?),
                    "image" => images.push(image_part(inner, &at)?),
                    other => return Err(unsupported_block(other, &at)),
                }
            }
            texts.join("\n")
        }
        Some(other) => {
            return Err(wrong_type(
                &format!("{at}.content"),
                "a string or an array of content blocks",
                other,
            ))
        }
    };
    let is_error = match block.get("is_error") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(wrong_type(&format!("{at}.is_error"), "a boolean", other)),
    };
    let content = if is_error {
        format!("Error: {text}")
    } else {
        text
    };
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": content }))
}

fn unsupported_block(kind: &str, at: &str) -> ApiError {
    ApiError::invalid_param(
        format!("{at}.type"),
        format!("{at}: content blocks of type `{kind}` are not supported through frugal (text, image, tool_use, tool_result and thinking are)."),
    )
}

fn required_string<'a>(block: &'a Value, field: &str, at: &str) -> Result<&'a str, ApiError> {
    block.get(field).and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid_param(
            format!("{at}.{field}"),
            format!("{at}.{field}: a string is required."),
        )
    })
}

/// The `type` of a content block at `at`.
pub fn block_type<'a>(block: &'a Value, at: &str) -> Result<&'a str, ApiError> {
    match block.get("type") {
        Some(Value::String(kind)) => Ok(kind),
        _ if !block.is_object() => Err(wrong_type(at, "a content block object", block)),
        _ => Err(ApiError::invalid_param(
            format!("{at}.type"),
            format!("{at}.type: Field required."),
        )),
    }
}

/// The `text` of a text block at `at`.
pub fn text_of(block: &Value, at: &str) -> Result<String, ApiError> {
    required_string(block, "text", at).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(role: Turn, content: Value) -> Vec<Value> {
        turn(role, Some(&content), "messages[0]").unwrap()
    }

    #[test]
    fn images_become_image_url_parts() {
        let out = messages(
            Turn::User,
            json!([
                { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBOR" } },
                { "type": "image", "source": { "type": "url", "url": "https://example.com/cat.jpg" } },
                { "type": "text", "text": "What are these?" },
            ]),
        );
        assert_eq!(
            out,
            vec![json!({ "role": "user", "content": [
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBOR" } },
                { "type": "image_url", "image_url": { "url": "https://example.com/cat.jpg" } },
                { "type": "text", "text": "What are these?" },
            ] })]
        );
    }

    #[test]
    fn a_tool_use_round_trip_becomes_tool_calls_and_tool_messages() {
        let assistant = messages(
            Turn::Assistant,
            json!([
                { "type": "thinking", "thinking": "The user wants weather.", "signature": "sig" },
                { "type": "text", "text": "Let me check." },
                { "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": { "city": "Paris" } },
                { "type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {} },
            ]),
        );
        assert_eq!(
            assistant,
            vec![
                json!({ "role": "assistant", "content": "Let me check.", "tool_calls": [
                { "id": "toolu_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } },
                { "id": "toolu_2", "type": "function", "function": { "name": "get_time", "arguments": "{}" } },
            ] })
            ]
        );
        let user = messages(
            Turn::User,
            json!([
                { "type": "text", "text": "Also, thanks!" },
                { "type": "tool_result", "tool_use_id": "toolu_1", "content": [{ "type": "text", "text": "18°C" }] },
                { "type": "tool_result", "tool_use_id": "toolu_2", "content": "clock broke", "is_error": true },
            ]),
        );
        assert_eq!(
            user,
            vec![
                json!({ "role": "tool", "tool_call_id": "toolu_1", "content": "18°C" }),
                json!({ "role": "tool", "tool_call_id": "toolu_2", "content": "Error: clock broke" }),
                json!({ "role": "user", "content": "Also, thanks!" }),
            ]
        );
    }

    #[test]
    fn a_turn_of_tool_results_only_adds_no_user_message() {
        let user = messages(
            Turn::User,
            json!([{ "type": "tool_result", "tool_use_id": "t", "content": "ok" }]),
        );
        assert_eq!(
            user,
            vec![json!({ "role": "tool", "tool_call_id": "t", "content": "ok" })]
        );
    }

    #[test]
    fn an_image_a_tool_returned_follows_the_tool_messages() {
        let user = messages(
            Turn::User,
            json!([{ "type": "tool_result", "tool_use_id": "t", "content": [
                { "type": "text", "text": "screenshot:" },
                { "type": "image", "source": { "type": "url", "url": "https://example.com/s.png" } },
            ] }]),
        );
        assert_eq!(user.len(), 2);
        assert_eq!(user[0]["content"], "screenshot:");
        assert_eq!(user[1]["role"], "user");
        assert_eq!(user[1]["content"][0]["type"], "image_url");
    }

    #[test]
    fn an_assistant_turn_of_calls_only_has_null_content() {
        let out = messages(
            Turn::Assistant,
            json!([{ "type": "tool_use", "id": "t", "name": "f", "input": { "a": 1 } }]),
        );
        assert_eq!(out[0]["content"], Value::Null);
        assert_eq!(
            out[0]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
    }

    #[test]
    fn unsupported_blocks_are_refused_by_name() {
        for (role, block, param) in [
            (
                Turn::User,
                json!({ "type": "document", "source": {} }),
                "messages[0].content[0].type",
            ),
            (
                Turn::User,
                json!({ "type": "tool_use", "id": "t", "name": "f", "input": {} }),
                "messages[0].content[0].type",
            ),
            (
                Turn::Assistant,
                json!({ "type": "server_tool_use", "id": "s", "name": "web_search", "input": {} }),
                "messages[0].content[0].type",
            ),
            (
                Turn::User,
                json!({ "type": "image", "source": { "type": "file", "file_id": "f" } }),
                "messages[0].content[0].source.type",
            ),
            (
                Turn::User,
                json!({ "type": "text" }),
                "messages[0].content[0].text",
            ),
            (Turn::User, json!("text"), "messages[0].content[0]"),
        ] {
            match turn(role, Some(&json!([block])), "messages[0]") {
                Err(e) => assert_eq!(e.param(), Some(param), "{block}"),
                Ok(out) => panic!("accepted {block}: {out:?}"),
            }
        }
    }
}
