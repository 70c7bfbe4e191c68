//! A chat completion request, validated: the fields frugal relies on are checked and typed,
//! and the whole body is kept so unknown fields reach the upstream untouched.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Roles a chat message may have.
pub const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// A validated `POST /v1/chat/completions` body.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The model alias the client asked for, if any.
    pub model: Option<String>,
    /// Whether the client asked for an SSE stream.
    pub stream: bool,
    /// The full body as sent, in its original key order.
    pub body: Map<String, Value>,
}

impl ChatRequest {
    /// Parses and validates a request body; every mistake is a 400 naming the field.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        let body = json_object(bytes)?;
        validate_messages(body.get("messages"))?;
        let model = match body.get("model") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => Some(m.clone()),
            Some(other) => return Err(wrong_type("model", "a string", other)),
        };
        let stream = optional_bool(&body, "stream")?.unwrap_or(false);
        if let Some(options) = body.get("stream_options") {
            match options {
                Value::Object(o) => {
                    if let Some(v) = o
                        .get("include_usage")
                        .filter(|v| !v.is_boolean() && !v.is_null())
                    {
                        return Err(wrong_type("stream_options.include_usage", "a boolean", v));
                    }
                }
                Value::Null => {}
                other => return Err(wrong_type("stream_options", "an object", other)),
            }
        }
        for field in [
            "max_tokens",
            "max_completion_tokens",
            "n",
            "seed",
            "top_logprobs",
        ] {
            optional_integer(&body, field)?;
        }
        if body.get("n").and_then(Value::as_i64).is_some_and(|n| n < 1) {
            return Err(ApiError::invalid_param("n", "`n` must be at least 1."));
        }
        for (field, low, high) in [
            ("temperature", 0.0, 2.0),
            ("top_p", 0.0, 1.0),
            ("presence_penalty", -2.0, 2.0),
            ("frequency_penalty", -2.0, 2.0),
        ] {
            optional_number_in(&body, field, low, high)?;
        }
        optional_bool(&body, "logprobs")?;
        Ok(Self {
            model,
            stream,
            body,
        })
    }
}

fn validate_messages(messages: Option<&Value>) -> Result<(), ApiError> {
    let messages = match messages {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_param(
                "messages",
                "Missing required parameter: 'messages'.",
            ))
        }
        Some(Value::Array(list)) => list,
        Some(other) => return Err(wrong_type("messages", "an array", other)),
    };
    if messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "`messages` must contain at least one message.",
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        let at = |field: &str| format!("messages[{i}].{field}");
        let Value::Object(message) = message else {
            return Err(wrong_type(&format!("messages[{i}]"), "an object", message));
        };
        let role = match message.get("role") {
            Some(Value::String(role)) => role.as_str(),
            None => {
                return Err(ApiError::invalid_param(
                    at("role"),
                    format!("Missing required parameter: '{}'.", at("role")),
                ))
            }
            Some(other) => return Err(wrong_type(&at("role"), "a string", other)),
        };
        if !ROLES.contains(&role) {
            return Err(ApiError::invalid_param(
                at("role"),
                format!(
                    "Invalid value for '{}': '{role}'. Supported values are: {}.",
                    at("role"),
                    ROLES.join(", ")
                ),
            ));
        }
        match message.get("content") {
            Some(Value::String(_)) => {}
            Some(Value::Array(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    let part_at = format!("{}[{j}]", at("content"));
                    match part.get("type") {
                        Some(Value::String(_)) => {}
                        _ => {
                            return Err(ApiError::invalid_param(
                                format!("{part_at}.type"),
                                format!(
                                    "Each content part needs a string 'type' ('{part_at}.type')."
                                ),
                            ))
                        }
                    }
                }
            }
            // An assistant turn that only calls tools may have no content.
            None | Some(Value::Null) if role == "assistant" => {}
            None | Some(Value::Null) => {
                return Err(ApiError::invalid_param(
                    at("content"),
                    format!("Missing required parameter: '{}'.", at("content")),
                ))
            }
            Some(other) => {
                return Err(wrong_type(
                    &at("content"),
                    "a string or an array of content parts",
                    other,
                ))
            }
        }
    }
    Ok(())
}

/// A request body that must be a JSON object; a 400 when it is not.
pub(crate) fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_body(format!("The request body is not valid JSON: {e}.")))?;
    match value {
        Value::Object(body) => Ok(body),
        _ => Err(ApiError::invalid_body(
            "The request body must be a JSON object.",
        )),
    }
}

/// A 400 for a field of the wrong JSON type, naming what was expected and what came.
pub(crate) fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ApiError::invalid_param(
        param,
        format!("Invalid type for '{param}': expected {expected}, but got {got}."),
    )
}

fn optional_bool(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(field, "a boolean", other)),
    }
}

fn optional_integer(body: &Map<String, Value>, field: &str) -> Result<(), ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        Some(other) => Err(wrong_type(field, "an integer", other)),
    }
}

fn optional_number_in(
    body: &Map<String, Value>,
    field: &str,
    low: f64,
    high: f64,
) -> Result<(), ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if (low..=high).contains(&x) => Ok(()),
            _ => Err(ApiError::invalid_param(
                field,
                format!("'{field}' must be between {low} and {high}, got {n}."),
            )),
        },
        Some(other) => Err(wrong_type(field, "a number", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(body: &str) -> Option<String> {
        match ChatRequest::parse(body.as_bytes()) {
            Err(ApiError::InvalidRequest { param, .. }) => param,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn each_mistake_names_its_field() {
        assert_eq!(param_of(r#"{"model":"m"}"#).as_deref(), Some("messages"));
        assert_eq!(param_of(r#"{"messages":[]}"#).as_deref(), Some("messages"));
        assert_eq!(
            param_of(r#"{"messages":"hi"}"#).as_deref(),
            Some("messages")
        );
        assert_eq!(
            param_of(r#"{"messages":[{"content":"x"}]}"#).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param_of(r#"{"messages":[{"role":"robot","content":"x"}]}"#).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":5}]}"#).as_deref(),
            Some("messages[0].content")
        );
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#).as_deref(),
            Some("stream")
        );
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":1.5}"#).as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":"x"}],"temperature":7}"#).as_deref(),
            Some("temperature")
        );
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":"x"}],"model":3}"#).as_deref(),
            Some("model")
        );
        assert_eq!(param_of("{not json"), None);
        assert_eq!(param_of("[1]"), None);
    }

    #[test]
    fn unknown_fields_are_kept_in_order() {
        let body = r#"{"zeta":1,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}],"alpha":{"b":2}}"#;
        let request = ChatRequest::parse(body.as_bytes()).unwrap();
        let keys: Vec<&str> = request.body.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["zeta", "messages", "tools", "alpha"]);
        assert!(!request.stream);
        assert_eq!(request.model, None);
    }
}
