//! The mock's Anthropic Messages endpoint (`POST /v1/messages`), for providers of `kind:
//! anthropic`: the same deterministic answers and script as the chat endpoint, in Anthropic's
//! shapes (a `message` object, or its event stream), with Anthropic's errors and its prompt
//! cache (`cache_control` breakpoints; `usage.cache_read_input_tokens`,
//! `cache_creation_input_tokens`, and `input_tokens` without them).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::reply::Answer;
use super::tool_call::ToolCall;
use super::{paced, received, MockState};
use crate::tokens::content_text;

/// Answers one Messages request.
pub(super) async fn messages(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON.",
        );
    };
    let Some(max_tokens) = request.get("max_tokens").and_then(Value::as_u64) else {
        return error(StatusCode::BAD_REQUEST, "max_tokens: Field required");
    };
    if !request.get("messages").is_some_and(Value::is_array) {
        return error(StatusCode::BAD_REQUEST, "messages: Field required");
    }
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock")
        .to_string();
    let prompt = last_user_text(&request);
    let behaviour = match received(&state, &request, &model, &prompt, scripted_error).await {
        Ok(behaviour) => behaviour,
        Err(response) => return response,
    };
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let chat = json!({"model": model, "max_tokens": max_tokens,
                      "messages": [{"role": "user", "content": prompt}]});
    let chat = chat.as_object().cloned().unwrap_or_default();
    let answer = Answer::new(&chat, &behaviour, seq);
    let (total, read, written) = state
        .prompt_cache
        .read_breakpoints(&model, &segments(&request));
    let usage = json!({
        "input_tokens": total - read - written,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
        "output_tokens": answer.completion_tokens,
    });
    let stop_reason = match answer.finish_reason.as_str() {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        _ => "end_turn",
    };
    let id = format!("msg_mock{seq:08}");
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let frames = stream_frames(&id, seq, &model, &answer, stop_reason, &usage);
        let pause = Duration::from_millis(behaviour.token_delay_ms);
        let mut response = Response::new(Body::from_stream(
            paced(frames, pause).map(Ok::<_, Infallible>),
        ));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        return response;
    }
    let mut content = Vec::new();
    if !answer.tokens.is_empty() {
        content.push(json!({"type": "text", "text": answer.text()}));
    }
    if let Some(call) = &answer.tool_call {
        content.push(
            json!({"type": "tool_use", "id": tool_use_id(seq), "name": call.name,
                            "input": tool_input(call)}),
        );
    }
    Json(json!({
        "id": id, "type": "message", "role": "assistant", "model": model,
        "content": content,
        "stop_reason": stop_reason, "stop_sequence": null, "usage": usage,
    }))
    .into_response()
}

fn tool_use_id(seq: u64) -> String {
    format!("toolu_mock{seq:08}")
}

/// A scripted call's arguments as Anthropic's `input` object (`{}` when they are not JSON).
fn tool_input(call: &ToolCall) -> Value {
    serde_json::from_str(&call.arguments_text()).unwrap_or_else(|_| json!({}))
}

/// The event stream of an answer: `message_start`, one text block delta per token, a scripted
/// tool call as a `tool_use` block with its input in three `input_json_delta` fragments,
/// `message_delta` with the stop reason and output tokens, `message_stop`.
fn stream_frames(
    id: &str,
    seq: u64,
    model: &str,
    answer: &Answer,
    stop: &str,
    usage: &Value,
) -> Vec<Bytes> {
    let event = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut frames = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    for token in &answer.tokens {
        frames.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": token}}),
        ));
    }
    frames.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    if let Some(call) = &answer.tool_call {
        frames.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block":
                {"type": "tool_use", "id": tool_use_id(seq), "name": call.name, "input": {}}}),
        ));
        let arguments: Vec<char> = tool_input(call).to_string().chars().collect();
        for piece in arguments.chunks(arguments.len().div_ceil(3).max(1)) {
            frames.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta":
                    {"type": "input_json_delta", "partial_json": piece.iter().collect::<String>()}}),
            ));
        }
        frames.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ));
    }
    frames.push(event(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": answer.completion_tokens}}),
    ));
    frames.push(event("message_stop", json!({"type": "message_stop"})));
    frames
}

/// The text of the last user turn (its text blocks; tool results are not a question).
fn last_user_text(request: &Map<String, Value>) -> String {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| match m.get("content") {
            Some(Value::Array(blocks)) => blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            other => content_text(other),
        })
        .unwrap_or_default()
}

/// The prompt in Anthropic's cache order (tools, system, messages), one segment per block, each
/// with whether it carries a `cache_control` breakpoint.
fn segments(request: &Map<String, Value>) -> Vec<(String, bool)> {
    let marked = |block: &Value| block.get("cache_control").is_some();
    let without_marker = |block: &Value| {
        let mut block = block.clone();
        if let Some(object) = block.as_object_mut() {
            object.remove("cache_control");
        }
        block.to_string()
    };
    let mut out = Vec::new();
    for tool in request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push((without_marker(tool), marked(tool)));
    }
    match request.get("system") {
        Some(Value::String(text)) => out.push((text.clone(), false)),
        Some(Value::Array(blocks)) => {
            out.extend(blocks.iter().map(|b| (without_marker(b), marked(b))));
        }
        _ => {}
    }
    for message in request
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        match message.get("content") {
            Some(Value::Array(blocks)) => {
                out.extend(
                    blocks
                        .iter()
                        .map(|b| (format!("{role}: {}", without_marker(b)), marked(b))),
                );
            }
            other => out.push((format!("{role}: {}", content_text(other)), false)),
        }
    }
    out
}

/// A scripted failure in Anthropic's shape, with its `Retry-After`.
fn scripted_error(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("Simulated upstream failure (HTTP {}).", status.as_u16());
    let mut response = error(status, &message);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// An error in Anthropic's shape, its `type` from the status.
fn error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, Json(body)).into_response()
}
