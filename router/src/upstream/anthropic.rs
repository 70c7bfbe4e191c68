//! Anthropic's Messages API as an upstream (`providers.NAME.kind: anthropic`): the pipeline's
//! OpenAI chat body is sent as a Messages request (`POST {base_url}/messages`), and the reply,
//! JSON or SSE, comes back as a chat completion, so every stage after the call (checks, cache,
//! accounting) reads one shape.
//!
//! What does not translate: `logprobs` (Anthropic returns none), `n` above 1, `seed`, penalties
//! and `response_format` are dropped; a temperature above Anthropic's 1.0 is sent as 1.0.
//! `max_tokens` is required by Anthropic: without one, [`DEFAULT_MAX_TOKENS`] is sent.
//!
//! Prompt caching: with `prompt_cache.breakpoints` on, `cache_control` breakpoints mark the end
//! of the tools, of the system prompt and of the conversation before its last turn (three of
//! Anthropic's four), so every later call with the same prefix reads it at a tenth of the input
//! price. The usage Anthropic reports (`cache_read_input_tokens`, `cache_creation_input_tokens`,
//! and `input_tokens` without them) becomes OpenAI's (`prompt_tokens` with them,
//! `prompt_tokens_details.cached_tokens`, `cache_creation_input_tokens`).

use serde_json::{json, Map, Value};

/// The `anthropic-version` header sent upstream.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` sent when the request names none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// How the client's body should be sent to Anthropic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shaping {
    /// Mark the stable prefix with `cache_control` breakpoints.
    pub breakpoints: bool,
}

/// The Messages request for an OpenAI chat body (whose `model` is already the upstream name).
pub fn to_messages_request(
    body: &Map<String, Value>,
    shaping: Shaping,
) -> Result<Map<String, Value>, String> {
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err("Anthropic answers one choice per request; `n` must be 1".into());
    }
    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (mut system, mut turns) = convert_messages(messages)?;
    let mut tools = convert_tools(body.get("tools"))?;
    if shaping.breakpoints {
        mark_breakpoints(&mut tools, &mut system, &mut turns);
    }
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(turns));
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice(body) {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.min(1.0)));
    }
    if let Some(p) = body.get("top_p") {
        out.insert("top_p".into(), p.clone());
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), Value::Bool(true));
    }
    Ok(out)
}

/// System blocks and alternating user/assistant turns from OpenAI messages: system and
/// developer messages join the system prompt, assistant tool calls become `tool_use` blocks,
/// tool messages `tool_result` blocks of a user turn, and consecutive turns of one role merge.
fn convert_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut system = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for message in messages {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_blocks(message.get("content")));
                continue;
            }
            "user" => ("user", content_blocks(message.get("content"))?),
            "assistant" => ("assistant", assistant_blocks(message)?),
            "tool" => ("user", vec![tool_result(message)]),
            other => {
                return Err(format!(
                    "a message with role `{other}` cannot be sent to Anthropic"
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, content)) if last == role => content.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    Ok((system, turns))
}

/// Text blocks of a string or an array of text parts.
fn text_blocks(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::String(text)) if !text.is_empty() => {
            vec![json!({"type": "text", "text": text})]
        }
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|text| json!({"type": "text", "text": text}))
            .collect(),
        _ => Vec::new(),
    }
}

/// A user message's blocks: text, and images (`image_url` parts, data URLs or links).
fn content_blocks(content: Option<&Value>) -> Result<Vec<Value>, String> {
    let Some(Value::Array(parts)) = content else {
        return Ok(text_blocks(content));
    };
    let mut blocks = Vec::new();
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => blocks.extend(text_blocks(Some(&Value::Array(vec![part.clone()])))),
            Some("image_url") => {
                let url = part
                    .pointer("/image_url/url")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                blocks.push(image_block(url)?);
            }
            Some(other) => {
                return Err(format!(
                    "a `{other}` content part cannot be sent to Anthropic"
                ))
            }
            None => return Err("a content part has no `type`".into()),
        }
    }
    Ok(blocks)
}

fn image_block(url: &str) -> Result<Value, String> {
    if let Some(data) = url.strip_prefix("data:") {
        let (media_type, data) = data
            .split_once(";base64,")
            .ok_or("an image data URL must be base64 (`data:image/png;base64,…`)")?;
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}),
        );
    }
    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
}

/// An assistant message's text and tool calls.
fn assistant_blocks(message: &Value) -> Result<Vec<Value>, String> {
    let mut blocks = text_blocks(message.get("content"));
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for call in calls {
            let arguments = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let input: Value = serde_json::from_str(arguments)
                .map_err(|e| format!("a tool call's arguments are not JSON ({e})"))?;
            blocks.push(json!({
                "type": "tool_use",
                "id": call.get("id").cloned().unwrap_or(Value::Null),
                "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
                "input": input,
            }));
        }
    }
    Ok(blocks)
}

fn tool_result(message: &Value) -> Value {
    json!({
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id").cloned().unwrap_or(Value::Null),
        "content": crate::tokens::content_text(message.get("content")),
    })
}

/// OpenAI function tools as Anthropic tools.
fn convert_tools(tools: Option<&Value>) -> Result<Vec<Value>, String> {
    let Some(Value::Array(tools)) = tools else {
        return Ok(Vec::new());
    };
    tools
        .iter()
        .map(|tool| {
            let function = tool
                .get("function")
                .ok_or("only function tools can be sent to Anthropic")?;
            let mut out = json!({
                "name": function.get("name").cloned().unwrap_or(Value::Null),
                "input_schema": function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"})),
            });
            if let Some(description) = function.get("description") {
                out["description"] = description.clone();
            }
            Ok(out)
        })
        .collect()
}

/// `tool_choice` (and `parallel_tool_calls: false`) in Anthropic's form.
fn tool_choice(body: &Map<String, Value>) -> Option<Value> {
    let mut choice = match body.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => json!({"type": "any"}),
        Some(Value::String(s)) if s == "none" => json!({"type": "none"}),
        Some(Value::Object(named)) => {
            let name = named.get("function")?.get("name")?.clone();
            json!({"type": "tool", "name": name})
        }
        _ => json!({"type": "auto"}),
    };
    if body.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        choice["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Some(choice)
}

/// `cache_control` on the last tool, the last system block and the last block of the turn
/// before the final one: three breakpoints, within Anthropic's four.
fn mark_breakpoints(tools: &mut [Value], system: &mut [Value], turns: &mut [Value]) {
    let mark = |block: Option<&mut Value>| {
        if let Some(Value::Object(block)) = block {
            block.insert("cache_control".into(), json!({"type": "ephemeral"}));
        }
    };
    mark(tools.last_mut());
    mark(system.last_mut());
    if turns.len() >= 2 {
        let before_last = turns.len() - 2;
        let content = turns[before_last]
            .get_mut("content")
            .and_then(Value::as_array_mut)
            .and_then(|c| c.last_mut());
        mark(content);
    }
}

/// OpenAI's `usage` for Anthropic's.
fn usage(anthropic: Option<&Value>) -> Value {
    let count = |key: &str| {
        anthropic
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (read, written) = (
        count("cache_read_input_tokens"),
        count("cache_creation_input_tokens"),
    );
    let prompt = count("input_tokens") + read + written;
    let completion = count("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": read },
        "cache_creation_input_tokens": written,
    })
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
fn finish_reason(stop_reason: Option<&str>) -> Value {
    match stop_reason {
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"),
        None => Value::Null,
    }
}

/// The chat completion for a Messages reply.
pub fn to_completion(message: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let content = message
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no `content` array")?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": block.get("input").map_or_else(|| "{}".to_string(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let mut reply = json!({ "role": "assistant", "content": text });
    if !calls.is_empty() {
        reply["tool_calls"] = Value::Array(calls);
    }
    let completion = json!({
        "id": message.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": 0,
        "model": message.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": null,
            "finish_reason": finish_reason(message.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage(message.get("usage")),
    });
    match completion {
        Value::Object(map) => Ok(map),
        _ => Err("unreachable: a completion is an object".into()),
    }
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`) in OpenAI's shape;
/// any other body is kept.
pub fn error_body(body: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let converted = json!({ "error": {
        "message": error.get("message").cloned().unwrap_or(Value::Null),
        "type": error.get("type").cloned().unwrap_or(Value::Null),
        "param": null,
        "code": error.get("type").cloned().unwrap_or(Value::Null),
    }});
    serde_json::to_vec(&converted).ok()
}

/// Turns Anthropic's stream events into chat completion chunks: text deltas into `content`,
/// each `tool_use` block into a tool call (its `input_json_delta`s into `arguments`), the stop
/// reason into `finish_reason`, and the usage (from `message_start` and `message_delta`) into a
/// last usage-only chunk, followed by `[DONE]` at `message_stop`.
#[derive(Debug, Default)]
pub struct StreamTranslator {
    id: Value,
    model: Value,
    usage: Map<String, Value>,
    /// Content block index → tool call index, for the blocks that are tool calls.
    tool_blocks: Vec<(u64, usize)>,
}

/// What one Anthropic event becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Translated {
    /// Chunks to relay, as JSON.
    Chunks(Vec<Value>),
    /// The stream is over: relay these chunks, then `[DONE]`.
    Done(Vec<Value>),
    /// Anthropic reported an error mid-stream.
    Error(String),
}

impl StreamTranslator {
    /// Translates one event's `data` payload.
    pub fn event(&mut self, data: &Value) -> Translated {
        let chunk = |this: &Self, delta: Value, finish: Value| {
            json!({
                "id": this.id, "object": "chat.completion.chunk", "created": 0, "model": this.model,
                "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
            })
        };
        match data.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let message = data.get("message").cloned().unwrap_or(Value::Null);
                self.id = message.get("id").cloned().unwrap_or(Value::Null);
                self.model = message.get("model").cloned().unwrap_or(Value::Null);
                if let Some(Value::Object(usage)) = message.get("usage") {
                    self.usage.extend(usage.clone());
                }
                Translated::Chunks(vec![chunk(
                    self,
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                )])
            }
            Some("content_block_start") => {
                let block = data.get("content_block").cloned().unwrap_or(Value::Null);
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return Translated::Chunks(Vec::new());
                }
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let call = self.tool_blocks.len();
                self.tool_blocks.push((index, call));
                let delta = json!({"tool_calls": [{
                    "index": call, "id": block.get("id").cloned().unwrap_or(Value::Null), "type": "function",
                    "function": {"name": block.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                }]});
                Translated::Chunks(vec![chunk(self, delta, Value::Null)])
            }
            Some("content_block_delta") => {
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").cloned().unwrap_or(json!(""));
                        Translated::Chunks(vec![chunk(self, json!({"content": text}), Value::Null)])
                    }
                    Some("input_json_delta") => {
                        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let Some(&(_, call)) = self.tool_blocks.iter().find(|(i, _)| *i == index)
                        else {
                            return Translated::Chunks(Vec::new());
                        };
                        let partial = delta.get("partial_json").cloned().unwrap_or(json!(""));
                        let delta = json!({"tool_calls": [{"index": call, "function": {"arguments": partial}}]});
                        Translated::Chunks(vec![chunk(self, delta, Value::Null)])
                    }
                    _ => Translated::Chunks(Vec::new()),
                }
            }
            Some("message_delta") => {
                if let Some(Value::Object(usage)) = data.get("usage") {
                    self.usage.extend(usage.clone());
                }
                let stop = data.pointer("/delta/stop_reason").and_then(Value::as_str);
                Translated::Chunks(vec![chunk(self, json!({}), finish_reason(stop))])
            }
            Some("message_stop") => {
                let usage = usage(Some(&Value::Object(self.usage.clone())));
                Translated::Done(vec![json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
                    "choices": [], "usage": usage,
                })])
            }
            Some("error") => Translated::Error(
                data.pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("an error event")
                    .to_string(),
            ),
            _ => Translated::Chunks(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_tool_conversation_becomes_alternating_turns_with_tool_use_and_results() {
        let body = object(json!({
            "model": "claude-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "12°C"},
                {"role": "user", "content": "And tomorrow?"},
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "temperature": 1.5,
            "stop": "END",
            "logprobs": true,
        }));
        let request = to_messages_request(&body, Shaping::default()).unwrap();
        assert_eq!(request["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(
            request["system"],
            json!([{"type": "text", "text": "Be brief."}])
        );
        let turns = request["messages"].as_array().unwrap();
        let roles: Vec<&str> = turns.iter().map(|t| t["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(turns[1]["content"][0]["type"], "tool_use");
        assert_eq!(turns[1]["content"][0]["input"], json!({"city": "Paris"}));
        assert_eq!(turns[2]["content"][0]["type"], "tool_result");
        assert_eq!(turns[2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(turns[2]["content"][1]["text"], "And tomorrow?");
        assert_eq!(
            request["tools"][0]["input_schema"],
            json!({"type": "object"})
        );
        assert_eq!(
            request["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        assert_eq!(request["temperature"], 1.0);
        assert_eq!(request["stop_sequences"], json!(["END"]));
        assert!(request.get("logprobs").is_none());
    }

    #[test]
    fn breakpoints_mark_tools_system_and_the_conversation_before_the_last_turn() {
        let body = object(json!({
            "messages": [
                {"role": "system", "content": "Long instructions."},
                {"role": "user", "content": "First."},
                {"role": "assistant", "content": "Answer."},
                {"role": "user", "content": "Second."},
            ],
            "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}],
        }));
        let request = to_messages_request(&body, Shaping { breakpoints: true }).unwrap();
        let ephemeral = json!({"type": "ephemeral"});
        assert_eq!(request["tools"][1]["cache_control"], ephemeral);
        assert!(request["tools"][0].get("cache_control").is_none());
        assert_eq!(request["system"][0]["cache_control"], ephemeral);
        assert_eq!(
            request["messages"][1]["content"][0]["cache_control"],
            ephemeral
        );
        assert!(request["messages"][2]["content"][0]
            .get("cache_control")
            .is_none());
        let plain = to_messages_request(&body, Shaping::default()).unwrap();
        assert!(!plain
            .values()
            .any(|v| v.to_string().contains("cache_control")));
    }

    #[test]
    fn what_anthropic_cannot_take_is_refused_with_a_reason() {
        let two = object(json!({"n": 2, "messages": [{"role": "user", "content": "hi"}]}));
        assert!(to_messages_request(&two, Shaping::default())
            .unwrap_err()
            .contains("`n`"));
        let audio =
            object(json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}));
        assert!(to_messages_request(&audio, Shaping::default())
            .unwrap_err()
            .contains("input_audio"));
        let image = object(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}));
        let request = to_messages_request(&image, Shaping::default()).unwrap();
        assert_eq!(
            request["messages"][0]["content"][0]["source"]["media_type"],
            "image/png"
        );
    }

    #[test]
    fn a_reply_with_text_and_a_tool_call_and_cached_tokens_becomes_a_completion() {
        let message = object(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 2048, "cache_creation_input_tokens": 10},
        }));
        let completion = to_completion(&message).unwrap();
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Checking.");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(completion["usage"]["prompt_tokens"], 2108);
        assert_eq!(
            completion["usage"]["prompt_tokens_details"]["cached_tokens"],
            2048
        );
        assert_eq!(completion["usage"]["cache_creation_input_tokens"], 10);
        let tokens = crate::stage::relay::reported_tokens(completion.get("usage")).unwrap();
        assert_eq!(
            (tokens.input, tokens.cached_input, tokens.cache_write),
            (2108, 2048, 10)
        );
    }

    #[test]
    fn stream_events_become_chunks_and_a_usage_chunk_then_done() {
        let mut t = StreamTranslator::default();
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 10, "cache_read_input_tokens": 1024, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"ci"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ty\":\"Paris\"}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 15}}),
        ];
        let mut chunks = Vec::new();
        for event in &events {
            match t.event(event) {
                Translated::Chunks(c) => chunks.extend(c),
                other => panic!("{other:?}"),
            }
        }
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello");
        let arguments: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(arguments, "{\"city\":\"Paris\"}");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
        let Translated::Done(last) = t.event(&json!({"type": "message_stop"})) else {
            panic!("message_stop ends the stream");
        };
        assert_eq!(last[0]["usage"]["prompt_tokens"], 1034);
        assert_eq!(last[0]["usage"]["completion_tokens"], 15);
        assert_eq!(
            t.event(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
            Translated::Error("Overloaded".into())
        );
    }

    #[test]
    fn anthropic_errors_get_openais_shape() {
        let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#;
        let converted: Value = serde_json::from_slice(&error_body(body).unwrap()).unwrap();
        assert_eq!(converted["error"]["message"], "max_tokens: too big");
        assert_eq!(converted["error"]["type"], "invalid_request_error");
        assert!(error_body(b"not json").is_none());
    }
}
