//! Sending one request and naming what came back: an [`Outcome`] label such as `200 exact`,
//! `502 upstream_server_error` or `200 stream-error:upstream_invalid_response`, and whether
//! that is what the request's class must produce. Nothing here panics: a transport error or an
//! odd body is a counted outcome.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::workload::{Class, Fault, Spec};

/// What one request ended in.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// A short label: the status and the cache tier, error code or stream defect.
    pub label: String,
    /// Time from sending to the end of the body.
    pub latency: Duration,
    /// A 200 whose answer quotes none of the texts it may quote: another question's answer.
    pub wrong_answer: bool,
}

/// Sends `spec` to the sidecar's chat endpoint and classifies the answer.
pub async fn send(client: &reqwest::Client, url: &str, spec: &Spec) -> Outcome {
    let started = Instant::now();
    let mut request = client.post(url).json(&spec.body);
    if let Some(tenant) = spec.tenant {
        request = request.header("x-frugal-tenant", tenant);
    }
    let (label, wrong_answer) = match request.send().await {
        Err(e) => (transport_label(&e), false),
        Ok(response) => classify(response, spec).await,
    };
    Outcome {
        label,
        latency: started.elapsed(),
        wrong_answer,
    }
}

async fn classify(response: reqwest::Response, spec: &Spec) -> (String, bool) {
    let status = response.status().as_u16();
    let tier = response
        .headers()
        .get("x-frugal-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => return (format!("{status} body-{}", transport_label(&e)), false),
    };
    if status != 200 {
        return (format!("{status} {}", error_code(&body)), false);
    }
    let answer = if spec.stream {
        read_sse(&body)
    } else {
        read_json(&body)
    };
    match answer {
        Err(defect) => (format!("200 {defect}"), false),
        Ok(content) => {
            let wrong = !spec.quotes.is_empty() && !spec.quotes.iter().any(|q| content.contains(q));
            (format!("200 {tier}"), wrong)
        }
    }
}

/// The `error.code` of an OpenAI-shaped error body, or `not-openai-shaped`.
fn error_code(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let shaped = error.is_some_and(|e| e.get("message").is_some_and(Value::is_string));
    match error.and_then(|e| e.get("code")) {
        Some(Value::String(code)) if shaped => code.clone(),
        _ if shaped => "no-code".into(),
        _ => "not-openai-shaped".into(),
    }
}

/// The answer text of a chat completion, or what is wrong with it.
fn read_json(body: &[u8]) -> Result<String, String> {
    let parsed: Value = serde_json::from_slice(body).map_err(|_| "invalid-json".to_string())?;
    let choice = parsed
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| "no-choices".to_string())?;
    choice
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "no-content".to_string())
}

/// The text of an SSE answer, or its defect: an error event, no `[DONE]`, a bad event.
fn read_sse(body: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|_| "stream-not-utf8".to_string())?;
    let mut content = String::new();
    let mut done = false;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let event: Value =
            serde_json::from_str(data).map_err(|_| "stream-invalid-event".to_string())?;
        if let Some(error) = event.get("error") {
            let code = error.get("code").and_then(Value::as_str).unwrap_or("none");
            return Err(format!("stream-error:{code}"));
        }
        let deltas = event.get("choices").and_then(Value::as_array);
        for choice in deltas.into_iter().flatten() {
            if let Some(piece) = choice
                .get("delta")
                .and_then(|d| d.get("content"))
                .and_then(Value::as_str)
            {
                content.push_str(piece);
            }
        }
    }
    if done {
        Ok(content)
    } else {
        Err("stream-no-done".into())
    }
}

fn transport_label(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("transport-{kind}")
}

/// Whether `label` is what a request of `class` (streamed or not) must end in. The fault rows
/// were measured with `--probe` against the sidecar and read off `router/src/upstream` and
/// `pipeline.rs`; see docs/reliability.md, "Soak".
pub fn expected(class: Class, stream: bool, label: &str) -> bool {
    match class {
        Class::Exact | Class::SemanticSeed | Class::Semantic | Class::Miss | Class::Trim => {
            matches!(label, "200 exact" | "200 semantic" | "200 miss")
        }
        // An answer cut by its length limit is still an answer; it is never cached.
        Class::Fault(Fault::Length) => label == "200 miss",
        Class::Fault(kind) => fault_label(kind, stream) == Some(label),
    }
}

/// The one outcome each fault kind must produce.
fn fault_label(kind: Fault, stream: bool) -> Option<&'static str> {
    Some(match (kind, stream) {
        (Fault::Status500, _) => "502 upstream_server_error",
        // The upstream's own 4xx body is passed through; the mock's has `code: null`.
        (Fault::Status429, _) => "429 no-code",
        (Fault::Status400, _) => "400 no-code",
        (Fault::Reset, _) => "502 upstream_unreachable",
        (Fault::Malformed, false) => "502 upstream_invalid_response",
        // A stream's head is sent before its first event: the bad event becomes an error event.
        (Fault::Malformed, true) => "200 stream-error:upstream_invalid_response",
        (Fault::Truncate, false) => "502 upstream_invalid_response",
        (Fault::Truncate, true) => "200 stream-error:upstream_invalid_response",
        (Fault::Hang, _) => "504 upstream_timeout",
        (Fault::Length, _) => return None,
    })
}
