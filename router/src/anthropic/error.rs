//! Errors in Anthropic's shape, `{"type":"error","error":{"type","message"}}`, with the same
//! HTTP status (and `Retry-After`) the chat endpoint sends for the same failure: only the body
//! changes, so the two endpoints cannot drift apart.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::upstream::UpstreamError;

/// Anthropic's error `type` for an HTTP status. Anthropic answers 529 when overloaded; frugal
/// keeps its own status (503 for an open circuit) and says `overloaded_error`.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        s if (400..500).contains(&s) => "invalid_request_error",
        _ => "api_error",
    }
}

/// The error body for a status and message.
pub fn error_body(status: StatusCode, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": error_type(status), "message": message } })
}

/// The response for an error of the pipeline or the HTTP checks: the chat endpoint's status
/// and headers, Anthropic's body. An upstream's own 4xx keeps the upstream's message.
pub fn error_response(error: ApiError) -> Response {
    let message = match &error {
        ApiError::Upstream(UpstreamError::ClientError { body, .. }) => {
            upstream_message(body).unwrap_or_else(|| error.to_string())
        }
        _ => error.to_string(),
    };
    let mut response = error.into_response();
    let body = error_body(response.status(), &message).to_string();
    *response.body_mut() = Body::from(body);
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A bodiless framework error (a timeout, a wrong method) in Anthropic's shape.
pub fn framework_error(status: StatusCode, message: &str) -> Response {
    crate::error::json_response(status, error_body(status, message).to_string().into())
        .into_response()
}

/// The message of an upstream's error body, OpenAI- or Anthropic-shaped.
fn upstream_message(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The `error` event for an OpenAI-shaped error payload that broke a stream
/// (`{"error":{"message","type","code"}}`).
pub fn stream_error(payload: &Value) -> Value {
    let error = payload.get("error");
    let field = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str);
    let kind = match (field("type"), field("code")) {
        (_, Some("upstream_circuit_open")) => "overloaded_error",
        (_, Some("upstream_timeout")) => "timeout_error",
        (Some("rate_limit_error"), _) => "rate_limit_error",
        _ => "api_error",
    };
    let message = field("message").unwrap_or("The stream broke.");
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_anthropics_error_type() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (408, "invalid_request_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "timeout_error"),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(error_type(status), kind, "{status}");
        }
    }

    #[tokio::test]
    async fn an_api_error_keeps_its_status_and_retry_after() {
        let error = ApiError::TooManyConcurrent {
            message: "Too many requests in flight.".into(),
        };
        let response = error_response(error);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({ "type": "error", "error": { "type": "rate_limit_error", "message": "Too many requests in flight." } })
        );
    }

    #[tokio::test]
    async fn an_upstream_rejection_keeps_the_upstreams_message() {
        let error = ApiError::Upstream(UpstreamError::ClientError {
            provider: "p".into(),
            status: StatusCode::BAD_REQUEST,
            body: bytes::Bytes::from_static(br#"{"error":{"message":"too many stop sequences","type":"invalid_request_error"}}"#),
            retry_after: None,
        });
        let response = error_response(error);
        assert_eq!(response.status(), 400);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["message"], "too many stop sequences");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn a_broken_stream_becomes_an_error_event() {
        let payload = json!({ "error": { "message": "upstream `p` timed out", "type": "upstream_error", "code": "upstream_timeout" } });
        assert_eq!(
            stream_error(&payload),
            json!({ "type": "error", "error": { "type": "timeout_error", "message": "upstream `p` timed out" } })
        );
    }
}
