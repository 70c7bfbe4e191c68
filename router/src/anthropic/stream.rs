//! The pipeline's OpenAI SSE frames re-told as Anthropic's event stream: `message_start`,
//! `ping`, then per content block `content_block_start`, `content_block_delta` (`text_delta`,
//! or `input_json_delta` carrying a tool call's argument fragments as they arrive; one block
//! per tool call) and `content_block_stop`, then `message_delta` (stop reason, the provider's
//! token counts) and `message_stop`. A stream that breaks ends with an `error` event. The
//! sidecar's `: frugal …` account comment is kept (clients ignore comments).

use bytes::Bytes;
use futures::{stream, StreamExt};
use serde_json::{json, Value};

use super::error::stream_error;
use super::response::{message_id, stop, usage};
use crate::sse::FrameStream;
use crate::tokens;

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    /// A tool call, by its OpenAI `index`.
    Tool(u64),
}

/// Translates one stream, frame by frame.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    input_estimate: u64,
    /// Bytes of an event not yet complete.
    pending: Vec<u8>,
    started: bool,
    /// Content blocks started so far (the next one's index).
    blocks: usize,
    open: Option<Open>,
    finish: Option<Value>,
    usage: Option<Value>,
    /// Text and arguments sent, counted when the upstream reports no usage.
    output: String,
    ended: bool,
}

impl StreamTranslator {
    /// A translator for an answer by the alias `model`; `input_estimate` (the prompt's tokens
    /// as the sidecar counts them) fills `message_start`, before the provider's count arrives
    /// in `message_delta`.
    pub fn new(model: &str, input_estimate: u64) -> Self {
        Self {
            model: model.to_string(),
            input_estimate,
            pending: Vec::new(),
            started: false,
            blocks: 0,
            open: None,
            finish: None,
            usage: None,
            output: String::new(),
            ended: false,
        }
    }

    /// The Anthropic frames for the next bytes of the OpenAI stream.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Bytes> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = find(&self.pending, b"\n\n") {
            let event: Vec<u8> = self.pending.drain(..end + 2).collect();
            if !self.ended {
                self.on_event(&event[..end], &mut out);
            }
        }
        out
    }

    /// The frames that close a stream that ended without `[DONE]` or an error.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        let error = json!({ "error": { "message": "The stream ended before the answer was complete.", "type": "upstream_error" } });
        vec![event("error", &stream_error(&error))]
    }

    fn on_event(&mut self, raw: &[u8], out: &mut Vec<Bytes>) {
        let text = String::from_utf8_lossy(raw);
        let mut data: Vec<&str> = Vec::new();
        for line in text.lines() {
            if let Some(payload) = line.strip_prefix("data:") {
                data.push(payload.strip_prefix(' ').unwrap_or(payload));
            }
        }
        if data.is_empty() {
            // A comment (the account line): passed on as it came.
            let mut frame = raw.to_vec();
            frame.extend_from_slice(b"\n\n");
            out.push(Bytes::from(frame));
            return;
        }
        let payload = data.join("\n");
        if payload == "[DONE]" {
            self.done(out);
            return;
        }
        match serde_json::from_str::<Value>(&payload) {
            Ok(json) if json.get("error").is_some() => {
                self.ended = true;
                out.push(event("error", &stream_error(&json)));
            }
            Ok(json) => self.on_chunk(&json, out),
            Err(e) => tracing::warn!(error = %e, "skipped a stream frame that is not JSON"),
        }
    }

    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        self.start(chunk.get("id").and_then(Value::as_str), out);
        if let Some(reported) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(reported.clone());
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return;
        };
        let delta = choice.get("delta");
        for field in ["content", "refusal"] {
            if let Some(text) = delta
                .and_then(|d| d.get(field))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                self.text(text, out);
            }
        }
        let calls = delta
            .and_then(|d| d.get("tool_calls"))
            .and_then(Value::as_array);
        for call in calls.map(Vec::as_slice).unwrap_or_default() {
            self.tool_call(call, out);
        }
        if choice.get("finish_reason").is_some_and(Value::is_string) {
            self.finish = Some(choice.clone());
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<Bytes>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let message = json!({
            "id": message_id(id), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": self.input_estimate, "output_tokens": 0 },
        });
        out.push(event(
            "message_start",
            &json!({ "type": "message_start", "message": message }),
        ));
        out.push(event("ping", &json!({ "type": "ping" })));
    }

    fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        if self.open != Some(Open::Text) {
            self.open_block(Open::Text, json!({ "type": "text", "text": "" }), out);
        }
        self.output.push_str(text);
        out.push(self.delta(json!({ "type": "text_delta", "text": text })));
    }

    /// A tool call's delta: its first opens a `tool_use` block, each argument fragment is an
    /// `input_json_delta` of that block.
    fn tool_call(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function");
        if self.open != Some(Open::Tool(index)) {
            let block = json!({
                "type": "tool_use",
                "id": call.get("id").cloned().unwrap_or_else(|| json!(format!("toolu_frugal_{index}"))),
                "name": function.and_then(|f| f.get("name")).cloned().unwrap_or_else(|| json!("")),
                "input": {},
            });
            self.open_block(Open::Tool(index), block, out);
        }
        if let Some(fragment) = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            self.output.push_str(fragment);
            out.push(self.delta(json!({ "type": "input_json_delta", "partial_json": fragment })));
        }
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<Bytes>) {
        self.close_block(out);
        self.open = Some(kind);
        self.blocks += 1;
        out.push(event(
            "content_block_start",
            &json!({ "type": "content_block_start", "index": self.blocks - 1, "content_block": block }),
        ));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if self.open.take().is_some() {
            out.push(event(
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": self.blocks - 1 }),
            ));
        }
    }

    fn delta(&self, delta: Value) -> Bytes {
        event(
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": self.blocks.saturating_sub(1), "delta": delta }),
        )
    }

    /// `[DONE]`: the open block closes, then the stop reason and the counts.
    fn done(&mut self, out: &mut Vec<Bytes>) {
        self.start(None, out);
        self.close_block(out);
        self.ended = true;
        let (stop_reason, stop_sequence) = stop(self.finish.as_ref());
        let mut counts = usage(self.usage.as_ref());
        if self.usage.is_none() {
            counts["input_tokens"] = json!(self.input_estimate);
            counts["output_tokens"] = json!(tokens::count(&self.output));
        }
        out.push(event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason, "stop_sequence": stop_sequence },
                "usage": counts,
            }),
        ));
        out.push(event("message_stop", &json!({ "type": "message_stop" })));
    }
}

/// One Anthropic SSE event.
fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The pipeline's OpenAI frames as Anthropic events. Dropping the result drops `frames`
/// (a client that leaves still settles what was generated).
pub fn translate(frames: FrameStream, translator: StreamTranslator) -> FrameStream {
    let translated = stream::unfold(
        (frames, translator, false),
        |(mut frames, mut translator, finished)| async move {
            if finished {
                return None;
            }
            match frames.next().await {
                Some(bytes) => {
                    let out = translator.push(&bytes);
                    Some((out, (frames, translator, false)))
                }
                None => {
                    let out = translator.finish();
                    Some((out, (frames, translator, true)))
                }
            }
        },
    )
    .flat_map(stream::iter);
    Box::pin(translated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `(event, data)` pairs of Anthropic frames, comments as `(":", text)`.
    fn events(frames: &[Bytes]) -> Vec<(String, Value)> {
        frames
            .iter()
            .map(|f| {
                let text = String::from_utf8_lossy(f).to_string();
                if text.starts_with(':') {
                    return (":".to_string(), json!(text.trim_end()));
                }
                let mut lines = text.lines();
                let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
                let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
                (name.to_string(), serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Value) -> String {
        let chunk = json!({ "id": "chatcmpl-7", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
        format!("data: {chunk}\n\n")
    }

    fn usage_chunk(prompt: u64, completion: u64, cached: u64) -> String {
        let chunk = json!({ "id": "chatcmpl-7", "choices": [], "usage": {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "prompt_tokens_details": { "cached_tokens": cached } } });
        format!("data: {chunk}\n\n")
    }

    fn translate_all(input: &str, split: usize) -> Vec<(String, Value)> {
        let mut translator = StreamTranslator::new("cheap", 11);
        let bytes = input.as_bytes();
        let mut frames = Vec::new();
        for piece in bytes.chunks(split.max(1)) {
            frames.extend(translator.push(piece));
        }
        frames.extend(translator.finish());
        events(&frames)
    }

    #[test]
    fn a_text_stream_becomes_anthropic_events() {
        let input = [
            chunk(json!({ "role": "assistant", "content": "" }), Value::Null),
            chunk(json!({ "content": "Hel" }), Value::Null),
            chunk(json!({ "content": "lo" }), Value::Null),
            chunk(json!({}), json!("stop")),
            usage_chunk(20, 2, 0),
            ": frugal cost_usd=0.1 baseline_usd=0.2 saved_usd=0.1\n\n".to_string(),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        for split in [1, 7, input.len()] {
            let out = translate_all(&input, split);
            let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                [
                    "message_start",
                    "ping",
                    "content_block_start",
                    "content_block_delta",
                    "content_block_delta",
                    ":",
                    "content_block_stop",
                    "message_delta",
                    "message_stop"
                ],
                "split {split}"
            );
            assert_eq!(out[0].1["message"]["id"], "msg_7");
            assert_eq!(out[0].1["message"]["model"], "cheap");
            assert_eq!(out[0].1["message"]["usage"]["input_tokens"], 11);
            assert_eq!(
                out[3].1["delta"],
                json!({ "type": "text_delta", "text": "Hel" })
            );
            assert!(out[5].1.as_str().unwrap().starts_with(": frugal cost_usd="));
            assert_eq!(
                out[7].1,
                json!({ "type": "message_delta",
                        "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                        "usage": { "input_tokens": 20, "output_tokens": 2,
                                   "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0 } })
            );
        }
    }

    #[test]
    fn tool_call_fragments_become_input_json_deltas_one_block_per_call() {
        let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
            let mut function = json!({ "arguments": args });
            if let Some(name) = name {
                function["name"] = json!(name);
            }
            let mut call = json!({ "index": index, "function": function });
            if let Some(id) = id {
                call["id"] = json!(id);
                call["type"] = json!("function");
            }
            chunk(json!({ "tool_calls": [call] }), Value::Null)
        };
        let input = [
            chunk(
                json!({ "role": "assistant", "content": "Checking." }),
                Value::Null,
            ),
            call(0, Some("call_a"), Some("get_weather"), ""),
            call(0, None, None, "{\"ci"),
            call(0, None, None, "ty\": \"Paris\"}"),
            call(1, Some("call_b"), Some("get_time"), "{}"),
            chunk(json!({}), json!("tool_calls")),
            usage_chunk(2000, 30, 1536),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let out = translate_all(&input, 5);
        let starts: Vec<&Value> = out
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(starts.len(), 3);
        assert_eq!(starts[0]["content_block"]["type"], "text");
        assert_eq!(
            starts[1]["content_block"],
            json!({ "type": "tool_use", "id": "call_a", "name": "get_weather", "input": {} })
        );
        assert_eq!(starts[2]["index"], 2);
        let json_of = |index: u64| -> String {
            out.iter()
                .filter(|(n, d)| n == "content_block_delta" && d["index"] == index)
                .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
                .collect()
        };
        assert_eq!(json_of(1), "{\"city\": \"Paris\"}");
        assert_eq!(json_of(2), "{}");
        let stops = out
            .iter()
            .filter(|(n, _)| n == "content_block_stop")
            .count();
        assert_eq!(stops, 3);
        let delta = &out.iter().find(|(n, _)| n == "message_delta").unwrap().1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["input_tokens"], 464);
        assert_eq!(delta["usage"]["cache_read_input_tokens"], 1536);
    }

    #[test]
    fn a_broken_stream_ends_with_an_error_event() {
        let input = [
            chunk(json!({ "content": "Hel" }), Value::Null),
            "data: {\"error\":{\"message\":\"upstream reset\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"upstream_unreachable\"}}\n\n".to_string(),
        ]
        .concat();
        let out = translate_all(&input, 3);
        let last = out.last().unwrap();
        assert_eq!(last.0, "error");
        assert_eq!(
            last.1,
            json!({ "type": "error", "error": { "type": "api_error", "message": "upstream reset" } })
        );
        assert_eq!(out.iter().filter(|(n, _)| n == "error").count(), 1);
    }

    #[test]
    fn a_stream_cut_without_done_ends_with_an_error_event() {
        let out = translate_all(&chunk(json!({ "content": "Hel" }), Value::Null), 100);
        assert_eq!(out.last().unwrap().0, "error");
    }

    #[test]
    fn without_reported_usage_the_output_is_counted() {
        let input = [
            chunk(json!({ "content": "Hello there" }), json!("length")),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let out = translate_all(&input, 1000);
        let delta = &out.iter().find(|(n, _)| n == "message_delta").unwrap().1;
        assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
        assert_eq!(delta["usage"]["input_tokens"], 11);
        assert_eq!(delta["usage"]["output_tokens"], 2);
    }
}
