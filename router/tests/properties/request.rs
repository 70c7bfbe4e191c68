//! The chat request parser, and what runs on a parsed request before any upstream call.

use frugal::request::ROLES;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::invariants::{prepared_request_is_consistent, request_parses_or_is_refused};

/// Fields the parser checks, and a few it passes through.
const FIELDS: &[&str] = &[
    "messages",
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "seed",
    "top_logprobs",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "tools",
    "user",
];

/// Pieces of message text: words, sentence ends, code, tables, context markers, non-ASCII.
const PIECES: &[&str] = &[
    "the",
    "rust",
    "cache",
    "answer",
    "Paris",
    "France",
    "is",
    "what",
    "how",
    "not",
    "5",
    "ten",
    "3.14",
    ". ",
    "? ",
    "\n",
    "\n\n",
    "```",
    "| a | b |",
    "# Title",
    "<document>",
    "</document>",
    "<document id=1>",
    "<context>",
    "</context>",
    "<documents>",
    "é",
    "日本語",
    "🦀",
    "\t",
    "  ",
];

/// Message text made of [`PIECES`] and, now and then, arbitrary characters.
pub fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => proptest::sample::select(PIECES).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|p| p.join(" "))
}

/// Any JSON value, small.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-5.0f64..5.0).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An object key: a field name the parser knows, a message field, or anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
        2 => proptest::sample::select(&["role", "content", "type", "text", "include_usage"][..])
            .prop_map(str::to_owned),
        1 => "[a-z_]{0,8}",
    ]
}

/// A message: usually well formed, sometimes with a wrong role, content or shape.
fn message() -> impl Strategy<Value = Value> {
    let role = prop_oneof![
        6 => proptest::sample::select(ROLES).prop_map(Value::from),
        1 => json_value(),
    ];
    let part = prop_oneof![
        4 => text().prop_map(|t| json!({"type": "text", "text": t})),
        1 => Just(json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})),
        1 => json_value(),
    ];
    let content = prop_oneof![
        6 => text().prop_map(Value::String),
        2 => proptest::collection::vec(part, 0..3).prop_map(Value::Array),
        1 => json_value(),
    ];
    let well_formed =
        (role, proptest::option::weighted(0.9, content)).prop_map(|(role, content)| {
            let mut m = Map::new();
            m.insert("role".into(), role);
            if let Some(c) = content {
                m.insert("content".into(), c);
            }
            Value::Object(m)
        });
    prop_oneof![9 => well_formed, 1 => json_value()]
}

/// A value for a known field: usually of the right type and range, sometimes anything.
fn field_value(field: &'static str) -> BoxedStrategy<Value> {
    let plausible: BoxedStrategy<Value> = match field {
        "messages" => proptest::collection::vec(message(), 0..5)
            .prop_map(Value::Array)
            .boxed(),
        "model" => "[a-z0-9-]{0,12}".prop_map(Value::from).boxed(),
        "stream" | "logprobs" => any::<bool>().prop_map(Value::from).boxed(),
        "stream_options" => any::<bool>()
            .prop_map(|b| json!({ "include_usage": b }))
            .boxed(),
        "temperature" | "top_p" => (-0.5f64..2.5).prop_map(Value::from).boxed(),
        "presence_penalty" | "frequency_penalty" => (-3.0f64..3.0).prop_map(Value::from).boxed(),
        _ => (-3i64..5000).prop_map(Value::from).boxed(),
    };
    prop_oneof![4 => plausible, 1 => json_value()].boxed()
}

/// A request body: known fields with plausible or wrong values, plus unknown ones.
fn body() -> impl Strategy<Value = Map<String, Value>> {
    let known = proptest::sample::subsequence(FIELDS, 0..FIELDS.len()).prop_flat_map(|fields| {
        fields
            .into_iter()
            .map(|f| field_value(f).prop_map(move |v| (f.to_owned(), v)))
            .collect::<Vec<_>>()
    });
    let unknown = proptest::collection::vec(("[a-z_]{1,8}", json_value()), 0..3);
    (known, unknown).prop_map(|(known, unknown)| unknown.into_iter().chain(known).collect())
}

/// A request the parser must accept: one to four well-formed messages ending with a user turn
/// (with marked context inside, sometimes), tool messages as context, and valid options.
fn valid_body() -> impl Strategy<Value = Map<String, Value>> {
    let turn = prop_oneof![
        (
            proptest::sample::select(&["system", "developer", "assistant"][..]),
            text()
        )
            .prop_map(|(role, t)| json!({"role": role, "content": t})),
        text().prop_map(|t| json!({"role": "tool", "tool_call_id": "call_1", "content": t})),
        Just(json!({"role": "assistant", "content": null, "tool_calls": []})),
    ];
    let question = (text(), proptest::option::of(text()), proptest::bool::ANY).prop_map(
        |(words, context, parts)| {
            let text = match context {
                Some(c) => format!("{words}\n<document>\n{c}\n</document>\nSo {words}?"),
                None => words,
            };
            if parts {
                json!({"role": "user", "content": [{"type": "text", "text": text}]})
            } else {
                json!({"role": "user", "content": text})
            }
        },
    );
    (
        proptest::collection::vec(turn, 0..4),
        question,
        proptest::option::of("[a-z0-9-]{1,12}"),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0.0f64..=2.0),
        proptest::option::of(1u32..4096),
        proptest::collection::vec(("x_[a-z]{1,6}", json_value()), 0..3),
    )
        .prop_map(
            |(turns, question, model, stream, temperature, max_tokens, extra)| {
                let mut messages = turns;
                messages.push(question);
                let mut body = Map::new();
                body.extend(extra);
                if let Some(m) = model {
                    body.insert("model".into(), m.into());
                }
                body.insert("messages".into(), messages.into());
                if let Some(s) = stream {
                    body.insert("stream".into(), s.into());
                }
                if let Some(t) = temperature {
                    body.insert("temperature".into(), t.into());
                }
                if let Some(n) = max_tokens {
                    body.insert("max_tokens".into(), n.into());
                }
                body
            },
        )
}

proptest! {
    #![proptest_config(crate::config(25_000))]

    /// Any JSON object is a request or a 4xx in OpenAI's shape, never a 5xx or a panic.
    #[test]
    fn any_json_object_is_a_request_or_a_4xx(body in body()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        request_parses_or_is_refused(&bytes);
    }
}

proptest! {
    #![proptest_config(crate::config(10_000))]

    /// Any bytes (a valid body cut short or with a byte changed, or noise) are a request or a
    /// 4xx: never a panic.
    #[test]
    fn any_bytes_are_a_request_or_a_4xx(
        body in valid_body(),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        at in any::<usize>(),
        edit in 0u8..3,
    ) {
        let mut bytes = serde_json::to_vec(&body).unwrap();
        let i = at % bytes.len();
        match edit {
            0 => bytes.truncate(i),
            1 => bytes[i] = noise.first().copied().unwrap_or(b'}'),
            _ => bytes = noise,
        }
        request_parses_or_is_refused(&bytes);
    }

    /// A valid request is accepted with its model, stream switch and every field, in order.
    #[test]
    fn a_valid_request_round_trips_its_fields(body in valid_body()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let request = request_parses_or_is_refused(&bytes);
        prop_assert!(request.is_some(), "refused: {}", String::from_utf8_lossy(&bytes));
        let request = request.unwrap();
        let keys: Vec<&String> = request.body.keys().collect();
        prop_assert_eq!(keys, body.keys().collect::<Vec<_>>());
        prop_assert_eq!(request.model.as_deref(), body.get("model").and_then(Value::as_str));
        prop_assert_eq!(request.stream, body.get("stream") == Some(&Value::Bool(true)));
    }
}

proptest! {
    #![proptest_config(crate::config(5_000))]

    /// Cache key, semantic scope, token count and trimming accept any valid request and agree
    /// with themselves (see [`prepared_request_is_consistent`]).
    #[test]
    fn what_runs_before_the_upstream_agrees_with_itself(body in valid_body()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        if let Some(request) = request_parses_or_is_refused(&bytes) {
            prepared_request_is_consistent(&request);
        }
    }
}
