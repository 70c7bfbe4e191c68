//! An OpenAI chat completion translated into an Anthropic message: text and tool calls as
//! content blocks, `finish_reason` as `stop_reason`, and `usage` split the way Anthropic counts
//! it (its `input_tokens` excludes the tokens read from or written to the prompt cache).

use serde_json::{json, Map, Value};

use crate::stage::relay::reported_tokens;

/// The Anthropic message for a completion answered by the model alias `model`.
pub fn message(completion: &Map<String, Value>, model: &str) -> Value {
    let choice = completion
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let answer = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    let text = answer
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| {
            answer
                .and_then(|m| m.get("refusal"))
                .and_then(Value::as_str)
        });
    if let Some(text) = text {
        content.push(json!({ "type": "text", "text": text }));
    }
    let calls = answer
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for call in calls {
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).cloned();
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or_else(|| json!("toolu_frugal")),
            "name": name.unwrap_or_else(|| json!("")),
            "input": tool_input(arguments),
        }));
    }
    let (stop_reason, stop_sequence) = stop(choice);
    json!({
        "id": message_id(completion.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage(completion.get("usage")),
    })
}

/// A tool call's arguments as the `input` object Anthropic promises. Arguments that are not a
/// JSON object (a model's broken JSON) become `{}`, logged: a client cannot be handed a
/// `tool_use` whose input is not an object.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(input @ Value::Object(_)) => input,
        _ => {
            tracing::warn!(
                arguments,
                "tool call arguments are not a JSON object; sent as input {{}}"
            );
            json!({})
        }
    }
}

/// `msg_…` from a completion id (`chatcmpl-abc` → `msg_abc`), so the two can be matched in logs.
pub fn message_id(completion_id: Option<&str>) -> String {
    let id = completion_id.unwrap_or("frugal");
    let id = id.strip_prefix("chatcmpl-").unwrap_or(id);
    format!("msg_{id}")
}

/// `stop_reason` and `stop_sequence` of a choice. OpenAI says `stop` both for a natural end
/// and a matched stop sequence; only servers that name the sequence (vLLM's `stop_reason`)
/// give `stop_sequence`.
pub fn stop(choice: Option<&Value>) -> (&'static str, Value) {
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let matched = choice
        .and_then(|c| c.get("stop_reason"))
        .filter(|s| s.is_string());
    match (finish, matched) {
        (Some("stop"), Some(sequence)) => ("stop_sequence", sequence.clone()),
        (finish, _) => (stop_reason(finish), Value::Null),
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's `usage` for an OpenAI one: `input_tokens` are the prompt tokens neither read
/// from nor written to the provider's prompt cache, which are counted apart.
pub fn usage(usage: Option<&Value>) -> Value {
    match reported_tokens(usage) {
        Some(tokens) => json!({
            "input_tokens": tokens.input - tokens.cached_input - tokens.cache_write,
            "output_tokens": tokens.output,
            "cache_read_input_tokens": tokens.cached_input,
            "cache_creation_input_tokens": tokens.cache_write,
        }),
        None => json!({
            "input_tokens": 0, "output_tokens": 0,
            "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(message: Value, finish: &str, usage: Value) -> Map<String, Value> {
        json!({
            "id": "chatcmpl-42", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": usage,
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn plain_usage() -> Value {
        json!({ "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17 })
    }

    #[test]
    fn a_text_answer_becomes_a_message() {
        let out = message(
            &completion(
                json!({ "role": "assistant", "content": "Paris." }),
                "stop",
                plain_usage(),
            ),
            "cheap",
        );
        assert_eq!(
            out,
            json!({
                "id": "msg_42", "type": "message", "role": "assistant", "model": "cheap",
                "content": [{ "type": "text", "text": "Paris." }],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": { "input_tokens": 12, "output_tokens": 5,
                           "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0 },
            })
        );
    }

    #[test]
    fn tool_calls_become_tool_use_blocks_with_parsed_input() {
        let out = message(
            &completion(
                json!({ "role": "assistant", "content": null, "tool_calls": [
                    { "id": "call_1", "type": "function", "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } },
                    { "id": "call_2", "type": "function", "function": { "name": "broken", "arguments": "{\"city\": Par" } },
                ] }),
                "tool_calls",
                plain_usage(),
            ),
            "cheap",
        );
        assert_eq!(out["stop_reason"], "tool_use");
        assert_eq!(
            out["content"],
            json!([
                { "type": "tool_use", "id": "call_1", "name": "get_weather", "input": { "city": "Paris" } },
                { "type": "tool_use", "id": "call_2", "name": "broken", "input": {} },
            ])
        );
    }

    #[test]
    fn each_finish_reason_has_its_stop_reason() {
        for (finish, expected) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("function_call", "tool_use"),
            ("content_filter", "refusal"),
        ] {
            let out = message(
                &completion(json!({ "content": "x" }), finish, plain_usage()),
                "m",
            );
            assert_eq!(out["stop_reason"], expected, "{finish}");
        }
        let mut named = completion(json!({ "content": "x" }), "stop", plain_usage());
        named["choices"][0]["stop_reason"] = json!("END");
        let out = message(&named, "m");
        assert_eq!(out["stop_reason"], "stop_sequence");
        assert_eq!(out["stop_sequence"], "END");
    }

    #[test]
    fn input_tokens_exclude_cache_reads_and_writes() {
        let openai = json!({ "prompt_tokens": 2000, "completion_tokens": 10,
                             "prompt_tokens_details": { "cached_tokens": 1536 } });
        assert_eq!(
            usage(Some(&openai)),
            json!({ "input_tokens": 464, "output_tokens": 10,
                    "cache_read_input_tokens": 1536, "cache_creation_input_tokens": 0 })
        );
        let gateway = json!({ "prompt_tokens": 3000, "completion_tokens": 7,
                              "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 1500 });
        assert_eq!(
            usage(Some(&gateway)),
            json!({ "input_tokens": 500, "output_tokens": 7,
                    "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 1500 })
        );
    }
}
