//! The SSE parser: upstream streams read the same however they are chunked, events re-frame to
//! themselves, and cached completions replay as valid streams.

use frugal::sse::SseEvent;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::invariants::{replay_frames_parse, sse_events_survive_chunking};
use crate::request::{json_value, text};

/// One event of a generated stream, and how it is written.
#[derive(Debug, Clone)]
enum Written {
    /// A JSON payload; `pretty` spreads it over several `data:` lines.
    Data { json: Value, pretty: bool },
    /// `data: [DONE]`.
    Done,
    /// A comment or a field frugal ignores (`event:`, `id:`, `retry:`), in its own block.
    Ignored(String),
}

fn written() -> impl Strategy<Value = Written> {
    let chunk = (json_value(), text(), proptest::option::of(json_value())).prop_map(
        |(extra, content, usage)| {
            let mut chunk = json!({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}],
                "extra": extra,
            });
            if let Some(u) = usage {
                chunk["usage"] = u;
            }
            chunk
        },
    );
    prop_oneof![
        6 => (chunk, any::<bool>()).prop_map(|(json, pretty)| Written::Data { json, pretty }),
        2 => (json_value(), any::<bool>()).prop_map(|(json, pretty)| Written::Data { json, pretty }),
        1 => Just(Written::Done),
        1 => prop_oneof![
            Just(": keep-alive".to_string()),
            Just("event: message".to_string()),
            Just("id: 7".to_string()),
            Just("retry: 1000".to_string()),
            // Never `data`: an unknown field name.
            "x[a-z]{0,5}: [ -~]{0,10}",
        ]
        .prop_map(Written::Ignored),
    ]
}

/// Encodes events as an upstream might: LF or CRLF line ends, `data:` with or without its
/// space, multi-line payloads.
fn encode(events: &[Written], crlf: bool, spaced: bool) -> Vec<u8> {
    let end = if crlf { "\r\n" } else { "\n" };
    let data = if spaced { "data: " } else { "data:" };
    let mut out = String::new();
    for event in events {
        match event {
            Written::Data { json, pretty } => {
                let payload = if *pretty {
                    serde_json::to_string_pretty(json).unwrap()
                } else {
                    json.to_string()
                };
                for line in payload.lines() {
                    out.push_str(data);
                    out.push_str(line);
                    out.push_str(end);
                }
            }
            Written::Done => {
                out.push_str(data);
                out.push_str("[DONE]");
                out.push_str(end);
            }
            Written::Ignored(line) => {
                out.push_str(line);
                out.push_str(end);
            }
        }
        out.push_str(end);
    }
    out.into_bytes()
}

/// Bytes that look like SSE often enough to reach every branch of the parser.
fn sse_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data:".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"[DONE]".to_vec()),
        Just(b"{\"a\":1}".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b": x".to_vec()),
        Just(b"\"".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

/// A stored completion: well formed or not, with content, tool calls, refusals, usage.
fn completion() -> impl Strategy<Value = Map<String, Value>> {
    let message = prop_oneof![
        3 => text().prop_map(|t| json!({"role": "assistant", "content": t})),
        1 => json_value().prop_map(|c| json!({"role": "assistant", "content": c})),
        1 => Just(json!({"role": "assistant", "content": null,
                         "tool_calls": [{"id": "c", "type": "function",
                                         "function": {"name": "f", "arguments": "{}"}}]})),
        1 => text().prop_map(|t| json!({"role": "assistant", "content": null, "refusal": t})),
        1 => json_value(),
    ];
    let choice = (message, json_value(), proptest::option::of(json_value())).prop_map(
        |(message, finish, index)| {
            let mut c = json!({"message": message, "finish_reason": finish, "logprobs": null});
            if let Some(i) = index {
                c["index"] = i;
            }
            c
        },
    );
    let choices = prop_oneof![
        4 => proptest::collection::vec(choice, 0..3).prop_map(Value::Array),
        1 => json_value(),
    ];
    (choices, json_value(), json_value()).prop_map(|(choices, model, usage)| {
        let mut m = Map::new();
        m.insert("id".into(), "chatcmpl-1".into());
        m.insert("model".into(), model);
        m.insert("choices".into(), choices);
        m.insert("usage".into(), usage);
        m
    })
}

proptest! {
    #![proptest_config(crate::config(20_000))]

    /// A stream reads as the events written, however its bytes are chunked, with LF or CRLF,
    /// payloads on one line or several.
    #[test]
    fn a_stream_reads_the_same_however_it_is_chunked(
        events in proptest::collection::vec(written(), 0..6),
        crlf in any::<bool>(),
        spaced in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let bytes = encode(&events, crlf, spaced);
        let read = sse_events_survive_chunking(&bytes, &cuts);
        let expected: Vec<Value> = events
            .iter()
            .filter_map(|e| match e {
                Written::Data { json, .. } => Some(json.clone()),
                Written::Done => Some(json!("[DONE]")),
                Written::Ignored(_) => None,
            })
            .collect();
        let got: Vec<Value> = read
            .into_iter()
            .map(|e| match e.unwrap() {
                SseEvent::Data { json, .. } => json,
                SseEvent::Done => json!("[DONE]"),
            })
            .collect();
        prop_assert_eq!(got, expected);
    }
}

proptest! {
    #![proptest_config(crate::config(15_000))]

    /// Any bytes read the same whole, chunked or byte by byte, without a panic; whatever they
    /// yield re-frames to itself.
    #[test]
    fn any_bytes_read_the_same_however_they_are_chunked(
        bytes in sse_like_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        sse_events_survive_chunking(&bytes, &cuts);
    }
}

proptest! {
    #![proptest_config(crate::config(10_000))]

    /// Any stored completion replays as a valid stream spelling its answer.
    #[test]
    fn a_cached_completion_replays_as_a_valid_stream(completion in completion()) {
        replay_frames_parse(&completion);
    }
}
