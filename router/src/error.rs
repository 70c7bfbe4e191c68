//! The client-facing error model: every failure becomes an OpenAI-shaped JSON body
//! (`{"error":{"message","type","param","code"}}`) with the right HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::upstream::UpstreamError;

/// An error returned to the client of the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON, or a field has the wrong type or value.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, in words the client can act on.
        message: String,
        /// The offending request field, if one can be named.
        param: Option<String>,
        /// A machine-readable code.
        code: &'static str,
    },
    /// The requested model alias is not in the live policy.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// The request body is larger than the policy allows.
    #[error("Request body is {actual} bytes, over the limit of {limit} bytes.")]
    PayloadTooLarge {
        /// Bytes received (or announced by Content-Length).
        actual: u64,
        /// The policy's limit.
        limit: u64,
    },
    /// The route exists but not for this HTTP method, or does not exist at all.
    #[error("{0}")]
    NotFound(String),
    /// The tenant's budget cannot cover this request.
    #[error("Budget exceeded for tenant `{tenant}`: ${committed} of its ${cap} {window} budget is spent or reserved, and this request may cost up to ${estimate}. It resets in {retry_after_secs} s.")]
    BudgetExceeded {
        /// Tenant.
        tenant: String,
        /// Budget window label.
        window: &'static str,
        /// Hard cap.
        cap: crate::money::Usd,
        /// Spent plus reserved in the window.
        committed: crate::money::Usd,
        /// This request's estimated cost.
        estimate: crate::money::Usd,
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
    /// A per-run cap or the loop detector stopped the request.
    #[error("{message}")]
    RunLimit {
        /// What was exceeded.
        message: String,
        /// `run_budget_exceeded` or `loop_detected`.
        code: &'static str,
    },
    /// Too many requests in flight at once, in all or for the tenant (a 429 with Retry-After).
    #[error("{message}")]
    TooManyConcurrent {
        /// Which limit, in words.
        message: String,
    },
    /// The upstream provider failed; see [`UpstreamError`].
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A framework-level rejection that has no richer description (kept OpenAI-shaped).
    #[error("{message}")]
    Http {
        /// The HTTP status to send.
        status: StatusCode,
        /// What happened.
        message: String,
    },
}

impl ApiError {
    /// A 400 for a named field.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
            code: "invalid_value",
        }
    }

    /// A 400 for a malformed body as a whole.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: None,
            code: "invalid_json",
        }
    }

    /// The HTTP status this error is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::ModelNotFound(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BudgetExceeded { .. }
            | Self::RunLimit { .. }
            | Self::TooManyConcurrent { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream(e) => e.client_status(),
            Self::Http { status, .. } => *status,
        }
    }

    /// The OpenAI error `type` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. }
            | Self::ModelNotFound(_)
            | Self::PayloadTooLarge { .. }
            | Self::NotFound(_) => "invalid_request_error",
            Self::BudgetExceeded { .. } | Self::RunLimit { .. } => "insufficient_quota",
            Self::TooManyConcurrent { .. } => "rate_limit_error",
            Self::Upstream(_) => "upstream_error",
            Self::Http { status, .. } if status.is_client_error() => "invalid_request_error",
            Self::Http { .. } => "server_error",
        }
    }

    /// The OpenAI error `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest { code, .. } => code,
            Self::ModelNotFound(_) => "model_not_found",
            Self::PayloadTooLarge { .. } => "request_too_large",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::RunLimit { code, .. } => code,
            Self::TooManyConcurrent { .. } => "too_many_concurrent_requests",
            Self::NotFound(_) => "not_found",
            Self::Upstream(e) => e.code(),
            Self::Http { status, .. } => match *status {
                StatusCode::REQUEST_TIMEOUT => "request_timeout",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
                _ => "http_error",
            },
        }
    }

    /// The OpenAI error `param` field.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::InvalidRequest { param, .. } => param.as_deref(),
            Self::ModelNotFound(_) => Some("model"),
            _ => None,
        }
    }

    /// The JSON body sent to the client.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::BudgetExceeded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::TooManyConcurrent { .. } => Some(1),
            // The provider's wait, when frugal gave up before it: the client's own retries
            // (the OpenAI SDKs honour Retry-After) must not come sooner.
            Self::Upstream(e) => e.retry_after().map(whole_seconds),
            _ => None,
        };
        // An upstream 4xx is the upstream's answer to the client's request: pass it through as is.
        let passed_through = match &self {
            Self::Upstream(UpstreamError::ClientError { status, body, .. })
                if serde_json::from_slice::<serde_json::Value>(body).is_ok() =>
            {
                Some(json_response(*status, body.clone()))
            }
            _ => None,
        };
        let mut response = passed_through
            .unwrap_or_else(|| json_response(self.status(), Bytes::from(self.body().to_string())));
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A wait in whole seconds, rounded up (`Retry-After` has no fractions).
fn whole_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A response with a JSON body and content type.
pub fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
