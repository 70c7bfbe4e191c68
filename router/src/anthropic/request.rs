//! An Anthropic Messages request translated into an OpenAI chat body, so it runs through the
//! same pipeline as `/v1/chat/completions`. The top level is strict, as Anthropic's is: a field
//! frugal does not know is a 400, not silently sent on; a field it knows but cannot express in
//! OpenAI's API is dropped (`top_k`, `thinking`, `service_tier`) or refused (server-side
//! features). Inside blocks, fields frugal has no use for (`cache_control`, `citations`) are
//! ignored.

use serde_json::{json, Map, Value};

use super::content::{self, Turn};
use crate::error::ApiError;
use crate::request::json_object;

/// Top-level fields translated into the OpenAI body.
const TRANSLATED: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
];

/// Top-level fields accepted and dropped: OpenAI's API has no equivalent.
pub const DROPPED: &[&str] = &["top_k", "thinking", "service_tier"];

/// Top-level fields of Anthropic features frugal does not translate: server-side ones
/// (containers, MCP, context management) and structured outputs (`output_format`,
/// `output_config`). Refused rather than dropped: the client relies on what they do.
const UNSUPPORTED: &[&str] = &[
    "container",
    "mcp_servers",
    "context_management",
    "output_format",
    "output_config",
];

/// A Messages request as an OpenAI chat body.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The OpenAI chat completion body.
    pub body: Map<String, Value>,
    /// Whether the client asked for a stream of Anthropic events.
    pub stream: bool,
}

/// Translates a `POST /v1/messages` body; every mistake is a 400 naming its field.
pub fn translate(bytes: &[u8]) -> Result<Translated, ApiError> {
    let request = json_object(bytes)?;
    check_fields(&request)?;
    let mut body = Map::new();
    match request.get("model") {
        None | Some(Value::Null) => {}
        Some(Value::String(model)) => {
            body.insert("model".into(), json!(model));
        }
        Some(other) => return Err(content::wrong_type("model", "a string", other)),
    }
    let mut messages = system(request.get("system"))?;
    messages.extend(conversation(request.get("messages"))?);
    body.insert("messages".into(), Value::Array(messages));
    body.insert("max_tokens".into(), json!(max_tokens(&request)?));
    for field in ["temperature", "top_p"] {
        if let Some(x) = unit_number(&request, field)? {
            body.insert(field.into(), x);
        }
    }
    match request.get("top_k") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_u64() => {}
        Some(other) => {
            return Err(content::wrong_type(
                "top_k",
                "a non-negative integer",
                other,
            ))
        }
    }
    if let Some(stop) = stop_sequences(request.get("stop_sequences"))? {
        body.insert("stop".into(), stop);
    }
    let stream = match request.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(content::wrong_type("stream", "a boolean", other)),
    };
    if stream {
        body.insert("stream".into(), json!(true));
        // So the closing `message_delta` carries the provider's real token counts.
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let tools = tools(request.get("tools"))?;
    let has_tools = !tools.is_empty();
    if has_tools {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = request.get("tool_choice").filter(|c| !c.is_null()) {
        let (choice, parallel) = tool_choice(choice, has_tools)?;
        if let Some(choice) = choice {
            body.insert("tool_choice".into(), choice);
        }
        if !parallel && has_tools {
            body.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    if let Some(user) = user_id(request.get("metadata"))? {
        body.insert("user".into(), json!(user));
    }
    Ok(Translated { body, stream })
}

/// Refuses unknown and unsupported top-level fields, naming them.
fn check_fields(request: &Map<String, Value>) -> Result<(), ApiError> {
    for key in request.keys() {
        let key = key.as_str();
        if UNSUPPORTED.contains(&key) {
            return Err(ApiError::invalid_param(
                key,
                format!("`{key}` is an Anthropic feature frugal does not translate: not supported through frugal."),
            ));
        }
        if !TRANSLATED.contains(&key) && !DROPPED.contains(&key) {
            return Err(ApiError::invalid_param(
                key,
                format!("{key}: Extra inputs are not permitted (frugal translates the Messages API's documented fields only)."),
            ));
        }
    }
    Ok(())
}

fn max_tokens(request: &Map<String, Value>) -> Result<u64, ApiError> {
    match request.get("max_tokens") {
        None | Some(Value::Null) => Err(ApiError::invalid_param(
            "max_tokens",
            "max_tokens: Field required.",
        )),
        Some(Value::Number(n)) => n.as_u64().filter(|&n| n >= 1).ok_or_else(|| {
            ApiError::invalid_param(
                "max_tokens",
                format!("max_tokens: must be a positive integer, got {n}."),
            )
        }),
        Some(other) => Err(content::wrong_type("max_tokens", "an integer", other)),
    }
}

/// `temperature` and `top_p`, which Anthropic bounds to 0–1.
fn unit_number(request: &Map<String, Value>, field: &str) -> Result<Option<Value>, ApiError> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(Some(Value::Number(n.clone()))),
            _ => Err(ApiError::invalid_param(
                field,
                format!("{field}: must be between 0 and 1, got {n}."),
            )),
        },
        Some(other) => Err(content::wrong_type(field, "a number", other)),
    }
}

fn stop_sequences(value: Option<&Value>) -> Result<Option<Value>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            Ok((!list.is_empty()).then(|| Value::Array(list.clone())))
        }
        Some(other) => Err(content::wrong_type(
            "stop_sequences",
            "an array of strings",
            other,
        )),
    }
}

/// The system prompt as one OpenAI system message (none when absent or empty): a string as it
/// is, text blocks joined by a blank line.
fn system(value: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.iter().enumerate() {
                let at = format!("system[{i}]");
                match content::block_type(block, &at)? {
                    "text" => texts.push(content::text_of(block, &at)?),
                    other => {
                        return Err(ApiError::invalid_param(
                            format!("{at}.type"),
                            format!("{at}.type: system blocks must be `text`, got `{other}`."),
                        ))
                    }
                }
            }
            texts.join("\n\n")
        }
        Some(other) => {
            return Err(content::wrong_type(
                "system",
                "a string or an array of text blocks",
                other,
            ))
        }
    };
    Ok(if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "role": "system", "content": text })]
    })
}

/// The conversation's turns as OpenAI messages (a user turn holding tool results becomes
/// several).
fn conversation(value: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let turns = match value {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_param(
                "messages",
                "messages: Field required.",
            ))
        }
        Some(Value::Array(turns)) => turns,
        Some(other) => return Err(content::wrong_type("messages", "an array", other)),
    };
    if turns.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "messages: at least one message is required.",
        ));
    }
    let mut messages = Vec::with_capacity(turns.len());
    for (i, turn) in turns.iter().enumerate() {
        let at = format!("messages[{i}]");
        let Value::Object(turn) = turn else {
            return Err(content::wrong_type(&at, "an object", turn));
        };
        let role = match turn.get("role") {
            Some(Value::String(role)) if role == "user" => Turn::User,
            Some(Value::String(role)) if role == "assistant" => Turn::Assistant,
            Some(Value::String(role)) => {
                let hint = if role == "system" {
                    " (a system prompt goes in the top-level `system` field)"
                } else {
                    ""
                };
                return Err(ApiError::invalid_param(
                    format!("{at}.role"),
                    format!("{at}.role: must be `user` or `assistant`, got `{role}`{hint}."),
                ));
            }
            None => {
                return Err(ApiError::invalid_param(
                    format!("{at}.role"),
                    format!("{at}.role: Field required."),
                ))
            }
            Some(other) => {
                return Err(content::wrong_type(
                    &format!("{at}.role"),
                    "a string",
                    other,
                ))
            }
        };
        messages.extend(content::turn(role, turn.get("content"), &at)?);
    }
    Ok(messages)
}

/// Anthropic's client tools as OpenAI function tools; a server tool is refused.
fn tools(value: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(content::wrong_type("tools", "an array", other)),
    };
    let mut tools = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let Value::Object(tool) = tool else {
            return Err(content::wrong_type(&at, "an object", tool));
        };
        match tool.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(kind)) if kind == "custom" => {}
            Some(Value::String(kind)) => {
                return Err(ApiError::invalid_param(
                    format!("{at}.type"),
                    format!("{at}: the server tool `{kind}` runs on Anthropic's side and is not supported through frugal; only client tools (`name`, `description`, `input_schema`) are."),
                ))
            }
            Some(other) => {
                return Err(content::wrong_type(&format!("{at}.type"), "a string", other))
            }
        }
        let name = match tool.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name,
            _ => {
                return Err(ApiError::invalid_param(
                    format!("{at}.name"),
                    format!("{at}.name: a non-empty string is required."),
                ))
            }
        };
        let schema = match tool.get("input_schema") {
            Some(schema @ Value::Object(_)) => schema.clone(),
            _ => {
                return Err(ApiError::invalid_param(
                    format!("{at}.input_schema"),
                    format!("{at}.input_schema: a JSON schema object is required."),
                ))
            }
        };
        let mut function = json!({ "name": name });
        match tool.get("description") {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => function["description"] = json!(text),
            Some(other) => {
                return Err(content::wrong_type(
                    &format!("{at}.description"),
                    "a string",
                    other,
                ))
            }
        }
        function["parameters"] = schema;
        tools.push(json!({ "type": "function", "function": function }));
    }
    Ok(tools)
}

/// `tool_choice` as OpenAI's, and whether parallel tool calls stay allowed. Without tools,
/// `auto` and `none` mean nothing and are dropped; `any` and `tool` are a mistake.
fn tool_choice(choice: &Value, has_tools: bool) -> Result<(Option<Value>, bool), ApiError> {
    let Value::Object(choice) = choice else {
        return Err(content::wrong_type("tool_choice", "an object", choice));
    };
    let parallel = match choice.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(disable)) => !disable,
        Some(other) => {
            return Err(content::wrong_type(
                "tool_choice.disable_parallel_tool_use",
                "a boolean",
                other,
            ))
        }
    };
    let kind = match choice.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        _ => {
            return Err(ApiError::invalid_param(
                "tool_choice.type",
                "tool_choice.type: one of `auto`, `any`, `tool` or `none` is required.",
            ))
        }
    };
    let translated = match kind {
        "auto" => json!("auto"),
        "none" => json!("none"),
        "any" => json!("required"),
        "tool" => match choice.get("name") {
            Some(Value::String(name)) => {
                json!({ "type": "function", "function": { "name": name } })
            }
            _ => {
                return Err(ApiError::invalid_param(
                    "tool_choice.name",
                    "tool_choice.name: required when tool_choice.type is `tool`.",
                ))
            }
        },
        other => {
            return Err(ApiError::invalid_param(
                "tool_choice.type",
                format!(
                    "tool_choice.type: must be `auto`, `any`, `tool` or `none`, got `{other}`."
                ),
            ))
        }
    };
    if !has_tools {
        if matches!(kind, "any" | "tool") {
            return Err(ApiError::invalid_param(
                "tool_choice",
                format!("tool_choice.type `{kind}` requires `tools`."),
            ));
        }
        return Ok((None, parallel));
    }
    Ok((Some(translated), parallel))
}

/// `metadata.user_id`, which becomes OpenAI's `user`.
fn user_id(metadata: Option<&Value>) -> Result<Option<String>, ApiError> {
    match metadata {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(metadata)) => match metadata.get("user_id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(id)) => Ok(Some(id.clone())),
            Some(other) => Err(content::wrong_type("metadata.user_id", "a string", other)),
        },
        Some(other) => Err(content::wrong_type("metadata", "an object", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translated(request: Value) -> Translated {
        translate(request.to_string().as_bytes()).unwrap()
    }

    fn rejected(request: Value) -> (String, String) {
        match translate(request.to_string().as_bytes()) {
            Err(e @ ApiError::InvalidRequest { .. }) => {
                (e.param().unwrap_or_default().to_string(), e.to_string())
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_request_becomes_the_same_chat_body() {
        let t = translated(json!({
            "model": "cheap", "max_tokens": 64, "system": "Be brief.",
            "messages": [{ "role": "user", "content": "Hi" }],
            "temperature": 0, "top_p": 0.9, "top_k": 5, "stop_sequences": ["END"],
            "metadata": { "user_id": "u-1" },
        }));
        assert_eq!(
            Value::Object(t.body),
            json!({
                "model": "cheap",
                "messages": [
                    { "role": "system", "content": "Be brief." },
                    { "role": "user", "content": "Hi" },
                ],
                "max_tokens": 64, "temperature": 0, "top_p": 0.9, "stop": ["END"], "user": "u-1",
            })
        );
        assert!(!t.stream);
    }

    #[test]
    fn system_blocks_join_and_their_cache_control_is_ignored() {
        let t = translated(json!({
            "model": "cheap", "max_tokens": 8,
            "system": [
                { "type": "text", "text": "You are terse." },
                { "type": "text", "text": "Long reference text.", "cache_control": { "type": "ephemeral" } },
            ],
            "messages": [{ "role": "user", "content": [{ "type": "text", "text": "Q?", "cache_control": { "type": "ephemeral" } }] }],
        }));
        assert_eq!(
            t.body["messages"],
            json!([
                { "role": "system", "content": "You are terse.\n\nLong reference text." },
                { "role": "user", "content": "Q?" },
            ])
        );
    }

    #[test]
    fn a_stream_asks_the_pipeline_for_usage() {
        let t = translated(json!({
            "model": "cheap", "max_tokens": 8, "stream": true,
            "messages": [{ "role": "user", "content": "Hi" }],
        }));
        assert!(t.stream);
        assert_eq!(t.body["stream"], true);
        assert_eq!(t.body["stream_options"], json!({ "include_usage": true }));
    }

    #[test]
    fn tools_and_each_tool_choice_translate() {
        let tool = json!({ "name": "get_weather", "description": "Weather now.",
                           "input_schema": { "type": "object", "properties": { "city": { "type": "string" } } },
                           "cache_control": { "type": "ephemeral" } });
        let with_choice = |choice: Value| {
            translated(json!({
                "model": "cheap", "max_tokens": 8, "tools": [tool.clone()], "tool_choice": choice,
                "messages": [{ "role": "user", "content": "Weather?" }],
            }))
            .body
        };
        let body = with_choice(json!({ "type": "auto" }));
        assert_eq!(
            body["tools"],
            json!([{ "type": "function", "function": {
                "name": "get_weather", "description": "Weather now.",
                "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }])
        );
        assert_eq!(body["tool_choice"], "auto");
        assert!(!body.contains_key("parallel_tool_calls"));
        assert_eq!(
            with_choice(json!({ "type": "any" }))["tool_choice"],
            "required"
        );
        assert_eq!(
            with_choice(json!({ "type": "none" }))["tool_choice"],
            "none"
        );
        let named = with_choice(
            json!({ "type": "tool", "name": "get_weather", "disable_parallel_tool_use": true }),
        );
        assert_eq!(
            named["tool_choice"],
            json!({ "type": "function", "function": { "name": "get_weather" } })
        );
        assert_eq!(named["parallel_tool_calls"], false);
    }

    #[test]
    fn a_tool_choice_without_tools_is_dropped_or_refused() {
        let body = translated(
            json!({ "model": "m", "max_tokens": 8, "tool_choice": { "type": "auto" },
                                      "messages": [{ "role": "user", "content": "x" }] }),
        )
        .body;
        assert!(!body.contains_key("tool_choice"));
        let (param, _) = rejected(
            json!({ "model": "m", "max_tokens": 8, "tool_choice": { "type": "any" },
                                          "messages": [{ "role": "user", "content": "x" }] }),
        );
        assert_eq!(param, "tool_choice");
    }

    #[test]
    fn server_tools_are_refused_by_name() {
        let (param, message) = rejected(json!({
            "model": "m", "max_tokens": 8,
            "tools": [{ "type": "web_search_20250305", "name": "web_search", "max_uses": 5 }],
            "messages": [{ "role": "user", "content": "x" }],
        }));
        assert_eq!(param, "tools[0].type");
        assert!(
            message.contains("not supported through frugal"),
            "{message}"
        );
    }

    #[test]
    fn each_mistake_names_its_field() {
        let user = json!([{ "role": "user", "content": "x" }]);
        let cases = [
            (json!({ "model": "m", "messages": user }), "max_tokens"),
            (
                json!({ "model": "m", "max_tokens": 0, "messages": user }),
                "max_tokens",
            ),
            (json!({ "model": "m", "max_tokens": 8 }), "messages"),
            (
                json!({ "model": "m", "max_tokens": 8, "messages": [] }),
                "messages",
            ),
            (
                json!({ "model": 3, "max_tokens": 8, "messages": user }),
                "model",
            ),
            (
                json!({ "model": "m", "max_tokens": 8, "messages": user, "temperature": 1.5 }),
                "temperature",
            ),
            (
                json!({ "model": "m", "max_tokens": 8, "messages": user, "stop_sequences": "END" }),
                "stop_sequences",
            ),
            (
                json!({ "model": "m", "max_tokens": 8, "messages": user, "stream": "yes" }),
                "stream",
            ),
            (
                json!({ "model": "m", "max_tokens": 8, "messages": user, "frequency_penalty": 1 }),
                "frequency_penalty",
            ),
            (
                json!({ "model": "m", "max_tokens": 8, "messages": user, "mcp_servers": [] }),
                "mcp_servers",
            ),
            (
                json!({ "model": "m", "max_tokens": 8, "messages": [{ "role": "system", "content": "x" }] }),
                "messages[0].role",
            ),
            (
                json!({ "model": "m", "max_tokens": 8, "messages": user, "tools": [{ "name": "f" }] }),
                "tools[0].input_schema",
            ),
        ];
        for (request, param) in cases {
            assert_eq!(rejected(request.clone()).0, param, "{request}");
        }
        assert_eq!(rejected(json!([1])).0, "");
    }

    #[test]
    fn dropped_fields_are_accepted_and_not_sent() {
        let body = translated(json!({
            "model": "m", "max_tokens": 8, "top_k": 40, "service_tier": "auto",
            "thinking": { "type": "enabled", "budget_tokens": 1024 },
            "messages": [{ "role": "user", "content": "x" }],
        }))
        .body;
        for field in DROPPED {
            assert!(!body.contains_key(*field), "{field}");
        }
    }
}
