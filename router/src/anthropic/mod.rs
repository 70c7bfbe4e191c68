//! The Anthropic Messages API (`POST /v1/messages`), translated at the edge: the request becomes
//! an OpenAI chat body ([`request`]), runs through the same pipeline as a chat completion
//! (trim, cache, route, budgets, accounting), and its reply is told back as an Anthropic
//! message ([`response`]) or event stream ([`stream`]); errors take Anthropic's shape
//! ([`error`]). Nothing past the edge knows which API a request came in by.

pub mod content;
pub mod error;
pub mod request;
pub mod response;
pub mod stream;

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::pipeline::{Reply, ReplyBody};
use crate::tokens;

pub use request::{translate, Translated};

/// The endpoint's name in metrics and the decision log.
pub const ENDPOINT: &str = "messages";

/// Request header naming the Messages API version the client speaks.
pub const HEADER_VERSION: &str = "anthropic-version";

/// Checks `anthropic-version`: absent (curl) or a date `YYYY-MM-DD`; frugal speaks the one
/// version there is (`2023-06-01`) whatever the date says.
pub fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(HEADER_VERSION) else {
        return Ok(());
    };
    let is_date = value.to_str().ok().is_some_and(|v| {
        let bytes = v.as_bytes();
        bytes.len() == 10
            && bytes.iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                _ => b.is_ascii_digit(),
            })
    });
    if is_date {
        Ok(())
    } else {
        Err(ApiError::invalid_param(
            HEADER_VERSION,
            format!("The `{HEADER_VERSION}` header must be a date like 2023-06-01."),
        ))
    }
}

/// The pipeline's reply told in Anthropic's terms: a message for a JSON answer, events for a
/// stream. `request` is the translated request it answers.
pub fn reply(reply: Reply, request: &Translated) -> Reply {
    let body = match reply.body {
        ReplyBody::Json(bytes) => ReplyBody::Json(message_bytes(&bytes, &reply.meta.model)),
        ReplyBody::Stream(frames) => {
            let estimate = tokens::prompt_tokens(&request.body);
            let translator = stream::StreamTranslator::new(&reply.meta.model, estimate);
            ReplyBody::Stream(stream::translate(frames, translator))
        }
    };
    Reply {
        meta: reply.meta,
        body,
    }
}

fn message_bytes(completion: &[u8], model: &str) -> Bytes {
    let completion = match serde_json::from_slice::<Value>(completion) {
        Ok(Value::Object(completion)) => completion,
        _ => {
            // The pipeline only answers with completions it parsed; this is a bug, not a reply.
            tracing::error!("a chat completion to translate was not a JSON object");
            Map::new()
        }
    };
    Bytes::from(response::message(&completion, model).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_header_is_optional_but_must_be_a_date() {
        let mut headers = HeaderMap::new();
        assert!(check_version(&headers).is_ok());
        for good in ["2023-06-01", "2025-01-31"] {
            headers.insert(HEADER_VERSION, good.parse().unwrap());
            assert!(check_version(&headers).is_ok(), "{good}");
        }
        for bad in ["2023-6-1", "latest", "2023_06_01", "2023-06-01x"] {
            headers.insert(HEADER_VERSION, bad.parse().unwrap());
            assert!(check_version(&headers).is_err(), "{bad}");
        }
    }
}
