//! SSE streams are relayed chunk by chunk, in order, and a broken stream is reported, not hidden.

use std::time::{Duration, Instant};

use frugal_tests::{sse_payloads, MockUpstream, Sidecar};
use futures::StreamExt;
use serde_json::{json, Value};

fn stream_body(include_usage: bool) -> Value {
    json!({
        "model": "cheap",
        "stream": true,
        "stream_options": { "include_usage": include_usage },
        "messages": [{ "role": "user", "content": "Count to five." }]
    })
}

#[tokio::test]
async fn stream_is_relayed_in_order_with_usage_and_done() {
    let mock = MockUpstream::start().await;
    mock.always().respond("One, two, three, four, five.");
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar.chat(&stream_body(true)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let payloads = sse_payloads(&text);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "One, two, three, four, five.");
    let usage = &chunks.last().unwrap()["usage"];
    assert!(
        usage["completion_tokens"].as_u64().unwrap() > 5,
        "usage chunk last: {usage}"
    );
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let text = sidecar
        .chat(&stream_body(false))
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn first_chunk_reaches_the_client_before_upstream_finishes() {
    let mock = MockUpstream::start().await;
    // About 12 chunks at 150 ms each: the upstream takes ~2 s to finish.
    mock.always().slow_stream(
        "alpha beta gamma delta epsilon zeta eta theta iota kappa",
        Duration::from_millis(150),
    );
    let sidecar = Sidecar::in_front_of(&mock).await;
    let started = Instant::now();
    let response = sidecar.chat(&stream_body(false)).await;
    let mut body = response.bytes_stream();
    let mut first_content = None;
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        if first_content.is_none() && text.contains("\"content\":\"alpha") {
            first_content = Some(started.elapsed());
        }
    }
    let finished = started.elapsed();
    let first = first_content.expect("content arrived");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(
        finished - first >= Duration::from_secs(1),
        "first chunk at {first:?}, end at {finished:?}: buffered?"
    );
}

#[tokio::test]
async fn truncated_upstream_stream_ends_with_an_error_event_not_done() {
    let mock = MockUpstream::start().await;
    mock.always().truncate(2);
    let sidecar = Sidecar::in_front_of(&mock).await;
    let text = sidecar
        .chat(&stream_body(false))
        .await
        .text()
        .await
        .unwrap();
    let payloads = sse_payloads(&text);
    assert!(!payloads.iter().any(|p| p == "[DONE]"), "{text}");
    let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_invalid_response", "{last}");
    assert_eq!(
        payloads.len(),
        4,
        "role chunk, two content chunks, then the error: {text}"
    );
}

#[tokio::test]
async fn malformed_stream_event_ends_with_an_error_event() {
    let mock = MockUpstream::start().await;
    mock.always().malformed();
    let sidecar = Sidecar::in_front_of(&mock).await;
    let text = sidecar
        .chat(&stream_body(false))
        .await
        .text()
        .await
        .unwrap();
    let last: Value = serde_json::from_str(sse_payloads(&text).last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{text}");
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn upstream_error_before_a_stream_starts_is_a_plain_json_error() {
    let mock = MockUpstream::start().await;
    mock.always().fail_times(3, 503);
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar.chat(&stream_body(false)).await;
    let body = frugal_tests::expect_error(response, 502).await;
    assert_eq!(body["error"]["code"], "upstream_server_error");
}
