//! Anthropic's Messages API at the edge: any body is translated into a chat body the pipeline's
//! own parser accepts, or refused with a 4xx; the stream translator turns any sequence of the
//! pipeline's frames, however split, into well-formed events that end exactly once.

use frugal::anthropic::stream::StreamTranslator;
use frugal::anthropic::translate;
use frugal::request::ChatRequest;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::invariants::assert_client_error;
use crate::request::{json_value, text};

/// A content block: usually one of the kinds the edge translates, sometimes anything.
fn block() -> impl Strategy<Value = Value> {
    let id = "[a-z0-9_]{0,6}";
    prop_oneof![
        4 => text().prop_map(|t| json!({ "type": "text", "text": t })),
        1 => Just(json!({ "type": "image", "source": { "type": "url", "url": "https://example.com/a.png" } })),
        1 => Just(json!({ "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBOR" } })),
        2 => (id, "[a-z_]{1,8}", json_value()).prop_map(|(id, name, input)| {
            json!({ "type": "tool_use", "id": id, "name": name, "input": input })
        }),
        2 => (id, prop_oneof![text().prop_map(Value::from), json_value()], any::<bool>())
            .prop_map(|(id, content, is_error)| {
                json!({ "type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error })
            }),
        1 => text().prop_map(|t| json!({ "type": "thinking", "thinking": t, "signature": "s" })),
        1 => json_value(),
    ]
}

/// A turn: a role (usually user or assistant) and a string or blocks.
fn turn() -> impl Strategy<Value = Value> {
    let role = prop_oneof![
        6 => proptest::sample::select(&["user", "assistant"][..]).prop_map(Value::from),
        1 => json_value(),
    ];
    let content = prop_oneof![
        3 => text().prop_map(Value::from),
        4 => proptest::collection::vec(block(), 0..4).prop_map(Value::Array),
        1 => json_value(),
    ];
    (role, content).prop_map(|(role, content)| json!({ "role": role, "content": content }))
}

/// A tool: usually a client tool, sometimes a server tool or anything.
fn tool() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => ("[a-z_]{1,8}", proptest::option::of(text())).prop_map(|(name, description)| {
            json!({ "name": name, "description": description,
                    "input_schema": { "type": "object", "properties": {} } })
        }),
        1 => Just(json!({ "type": "web_search_20250305", "name": "web_search" })),
        1 => json_value(),
    ]
}

/// A value for a field of the Messages API: usually plausible, sometimes anything.
fn field(name: &'static str) -> BoxedStrategy<Value> {
    let plausible: BoxedStrategy<Value> = match name {
        "messages" => proptest::collection::vec(turn(), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        "system" => prop_oneof![
            text().prop_map(Value::from),
            proptest::collection::vec(text().prop_map(|t| json!({ "type": "text", "text": t })), 0..3)
                .prop_map(Value::Array),
        ]
        .boxed(),
        "max_tokens" | "top_k" => (-2i64..5000).prop_map(Value::from).boxed(),
        "temperature" | "top_p" => (-0.5f64..1.5).prop_map(Value::from).boxed(),
        "stream" => any::<bool>().prop_map(Value::from).boxed(),
        "stop_sequences" => proptest::collection::vec(text().prop_map(Value::from), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        "tools" => proptest::collection::vec(tool(), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        "tool_choice" => (
            proptest::sample::select(&["auto", "any", "tool", "none", "other"][..]),
            proptest::option::of("[a-z_]{1,8}"),
            any::<bool>(),
        )
            .prop_map(|(kind, name, disable)| {
                json!({ "type": kind, "name": name, "disable_parallel_tool_use": disable })
            })
            .boxed(),
        "metadata" => proptest::option::of("[a-z0-9-]{0,8}")
            .prop_map(|id| json!({ "user_id": id }))
            .boxed(),
        _ => "[a-z0-9-]{0,12}".prop_map(Value::from).boxed(),
    };
    prop_oneof![5 => plausible, 1 => json_value()].boxed()
}

const FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
];

/// A Messages body: known fields, and now and then an unknown one.
fn body() -> impl Strategy<Value = Map<String, Value>> {
    let known = proptest::sample::subsequence(FIELDS, 0..FIELDS.len()).prop_flat_map(|fields| {
        fields
            .into_iter()
            .map(|f| field(f).prop_map(move |v| (f.to_owned(), v)))
            .collect::<Vec<_>>()
    });
    let unknown = proptest::collection::vec(("[a-z_]{1,8}", json_value()), 0..2);
    (known, proptest::option::weighted(0.1, unknown)).prop_map(|(known, unknown)| {
        known
            .into_iter()
            .chain(unknown.unwrap_or_default())
            .collect()
    })
}

/// A well-formed turn: blocks of the kinds the edge translates, in the role they belong to.
fn valid_turn() -> impl Strategy<Value = Value> {
    let text_block = || text().prop_map(|t| json!({ "type": "text", "text": t }));
    let user_block = prop_oneof![
        4 => text_block(),
        1 => Just(json!({ "type": "image", "source": { "type": "url", "url": "https://example.com/a.png" } })),
        2 => ("[a-z0-9_]{1,6}", text(), any::<bool>()).prop_map(|(id, t, is_error)| {
            json!({ "type": "tool_result", "tool_use_id": id, "content": [{ "type": "text", "text": t }], "is_error": is_error })
        }),
    ];
    let assistant_block = prop_oneof![
        3 => text_block(),
        2 => ("[a-z0-9_]{1,6}", "[a-z_]{1,8}", text()).prop_map(|(id, name, t)| {
            json!({ "type": "tool_use", "id": id, "name": name, "input": { "q": t } })
        }),
        1 => text().prop_map(|t| json!({ "type": "thinking", "thinking": t, "signature": "s" })),
    ];
    prop_oneof![
        2 => text().prop_map(|t| json!({ "role": "user", "content": t })),
        3 => proptest::collection::vec(user_block, 1..4)
            .prop_map(|blocks| json!({ "role": "user", "content": blocks })),
        3 => proptest::collection::vec(assistant_block, 1..4)
            .prop_map(|blocks| json!({ "role": "assistant", "content": blocks })),
    ]
}

/// A body the edge should accept: a model, `max_tokens`, well-formed turns, and options.
fn valid_body() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::collection::vec(valid_turn(), 1..5),
        1u32..4096,
        proptest::option::of(field("system")),
        proptest::option::of(proptest::collection::vec(tool(), 1..3)),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0.0f64..=1.0),
    )
        .prop_map(
            |(messages, max_tokens, system, tools, stream, temperature)| {
                let mut body = Map::new();
                body.insert("model".into(), json!("m"));
                body.insert("max_tokens".into(), json!(max_tokens));
                body.insert("messages".into(), Value::Array(messages));
                let options = [
                    ("system", system),
                    ("tools", tools.map(Value::Array)),
                    ("stream", stream.map(Value::from)),
                    ("temperature", temperature.map(Value::from)),
                ];
                for (name, value) in options {
                    if let Some(value) = value {
                        body.insert(name.into(), value);
                    }
                }
                body
            },
        )
}

/// One frame the pipeline may send on a stream.
fn frame() -> impl Strategy<Value = String> {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({ "id": "chatcmpl-1", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
        )
    };
    prop_oneof![
        6 => text().prop_map(move |t| chunk(json!({ "content": t }), Value::Null)),
        2 => (0u64..3, proptest::option::of("[a-z]{1,6}"), "[{}\":a-z0-9 ]{0,8}").prop_map(
            move |(index, name, args)| {
                let mut call = json!({ "index": index, "function": { "arguments": args } });
                if let Some(name) = name {
                    call["id"] = json!(format!("call_{index}"));
                    call["function"]["name"] = json!(name);
                }
                chunk(json!({ "tool_calls": [call] }), Value::Null)
            }
        ),
        1 => proptest::sample::select(&["stop", "length", "tool_calls", "content_filter"][..])
            .prop_map(move |f| chunk(json!({}), json!(f))),
        1 => (0u64..5000, 0u64..500, 0u64..5000).prop_map(|(p, c, cached)| {
            format!("data: {}\n\n", json!({ "choices": [], "usage": {
                "prompt_tokens": p, "completion_tokens": c,
                "prompt_tokens_details": { "cached_tokens": cached } } }))
        }),
        1 => Just(": frugal cost_usd=0 baseline_usd=0 saved_usd=0\n\n".to_string()),
        1 => Just("data: [DONE]\n\n".to_string()),
        1 => Just("data: {\"error\":{\"message\":\"boom\",\"type\":\"upstream_error\",\"code\":\"upstream_timeout\"}}\n\n".to_string()),
    ]
}

proptest! {
    #![proptest_config(crate::config(3000))]

    #[test]
    fn any_messages_body_becomes_a_chat_body_the_pipeline_accepts_or_a_4xx(
        body in prop_oneof![3 => valid_body(), 2 => body()],
    ) {
        let bytes = serde_json::to_vec(&body).unwrap();
        match translate(&bytes) {
            Ok(translated) => {
                let chat = serde_json::to_vec(&translated.body).unwrap();
                let parsed = ChatRequest::parse(&chat);
                prop_assert!(parsed.is_ok(), "{:?} from {}", parsed.err(), Value::Object(body.clone()));
                prop_assert_eq!(translated.stream, body.get("stream") == Some(&Value::Bool(true)));
            }
            Err(error) => assert_client_error(&error),
        }
    }

    #[test]
    fn any_stream_however_split_becomes_events_that_end_once(
        frames in proptest::collection::vec(frame(), 0..12),
        split in 1usize..64,
    ) {
        let input = frames.concat();
        let mut translator = StreamTranslator::new("m", 7);
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(split) {
            out.extend(translator.push(piece));
        }
        out.extend(translator.finish());
        let text: String = out.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        let mut names = Vec::new();
        for event in text.split("\n\n").filter(|e| !e.is_empty() && !e.starts_with(':')) {
            let mut lines = event.lines();
            let name = lines.next().and_then(|l| l.strip_prefix("event: "));
            let data = lines.next().and_then(|l| l.strip_prefix("data: "));
            prop_assert!(name.is_some() && data.is_some(), "malformed event {event:?}");
            let data: Value = serde_json::from_str(data.unwrap_or_default()).unwrap();
            prop_assert_eq!(data["type"].as_str(), name);
            names.push(name.unwrap_or_default().to_string());
        }
        let ends = names.iter().filter(|n| *n == "message_stop" || *n == "error").count();
        prop_assert_eq!(ends, 1, "{:?}", names);
        prop_assert!(names.last().is_some_and(|n| n == "message_stop" || n == "error"));
        let starts = names.iter().filter(|n| *n == "content_block_start").count();
        let stops = names.iter().filter(|n| *n == "content_block_stop").count();
        if names.last().is_some_and(|n| n == "message_stop") {
            prop_assert_eq!(starts, stops, "{:?}", names);
        }
    }
}
