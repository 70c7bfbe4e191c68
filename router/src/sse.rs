//! Server-sent events: an incremental parser for upstream streams and the encoder for replies.

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use serde_json::Value;

/// SSE frames ready to send to the client.
pub type FrameStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// One dispatched SSE event of an OpenAI-style stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SseEvent {
    /// A `data:` payload that parsed as JSON; `raw` is relayed as received.
    Data {
        /// The payload text as received.
        raw: Bytes,
        /// The parsed payload.
        json: Value,
    },
    /// The `data: [DONE]` terminator.
    Done,
}

impl SseEvent {
    /// Encodes the event as an SSE frame (`data: …\n\n`).
    pub fn to_frame(&self) -> Bytes {
        match self {
            Self::Data { raw, .. } => frame(raw),
            Self::Done => Bytes::from_static(b"data: [DONE]\n\n"),
        }
    }
}

/// Encodes one `data:` frame. A payload of several lines (JSON may break lines between tokens,
/// and an upstream may send it so, as several `data:` lines) is written one `data:` line per
/// line, so that it reads back whole.
pub fn frame(payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 8);
    for line in payload.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

/// A complete chat completion replayed as SSE chunks ending with `[DONE]`: a role chunk, one
/// chunk with each choice's whole content (and tool calls, and logprobs when present), a finish
/// chunk, and the usage chunk when `include_usage`. `id` and `created` name the replay.
pub fn completion_frames(
    completion: &serde_json::Map<String, Value>,
    id: &str,
    created: u64,
    include_usage: bool,
) -> Vec<Bytes> {
    use serde_json::json;
    let model = completion.get("model").cloned().unwrap_or(Value::Null);
    let choices = completion
        .get("choices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let chunk = |choices: Value| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": choices,
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        frame(chunk.to_string().as_bytes())
    };
    let per_choice = |f: &dyn Fn(&Value, Value) -> Value| {
        Value::Array(
            choices
                .iter()
                .enumerate()
                .map(|(i, c)| f(c, json!(c.get("index").cloned().unwrap_or(json!(i)))))
                .collect(),
        )
    };
    let mut frames = vec![
        chunk(per_choice(&|_, index| {
            json!({ "index": index, "delta": { "role": "assistant", "content": "" },
                    "logprobs": null, "finish_reason": null })
        })),
        chunk(per_choice(&|c, index| {
            let message = c.get("message").cloned().unwrap_or(Value::Null);
            let mut delta =
                json!({ "content": message.get("content").cloned().unwrap_or(Value::Null) });
            if let Some(Value::Array(calls)) = message.get("tool_calls") {
                let calls: Vec<Value> = calls
                    .iter()
                    .enumerate()
                    .map(|(i, call)| {
                        let mut call = call.clone();
                        call["index"] = json!(i);
                        call
                    })
                    .collect();
                delta["tool_calls"] = Value::Array(calls);
            }
            if let Some(refusal) = message.get("refusal").filter(|r| !r.is_null()) {
                delta["refusal"] = refusal.clone();
            }
            let logprobs = c.get("logprobs").cloned().unwrap_or(Value::Null);
            json!({ "index": index, "delta": delta, "logprobs": logprobs, "finish_reason": null })
        })),
        chunk(per_choice(&|c, index| {
            let finish = c.get("finish_reason").cloned().unwrap_or(json!("stop"));
            json!({ "index": index, "delta": {}, "logprobs": null, "finish_reason": finish })
        })),
    ];
    if include_usage {
        let usage = completion.get("usage").cloned().unwrap_or(Value::Null);
        let last = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage,
        });
        frames.push(frame(last.to_string().as_bytes()));
    }
    frames.push(SseEvent::Done.to_frame());
    frames
}

/// Splits a byte stream into events, however the bytes are chunked. Lines end as the SSE
/// specification says: `\r\n`, `\n`, or a lone `\r`.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The last line ended with `\r` at the end of a chunk: a `\n` opening the next chunk
    /// belongs to that line end.
    after_cr: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them. An `Err` is a payload that is not JSON.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<SseEvent, String>> {
        let bytes = match (std::mem::take(&mut self.after_cr), bytes) {
            (true, []) => {
                self.after_cr = true;
                bytes
            }
            (true, [b'\n', rest @ ..]) => rest,
            _ => bytes,
        };
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = start + offset;
            let line = &self.pending[start..end];
            if line.is_empty() {
                if let Some(event) = self.dispatch() {
                    events.push(event);
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            // Comments (`:`) and other fields (`event:`, `id:`, `retry:`) carry nothing we relay.
            start = end + 1;
            if self.pending[end] == b'\r' {
                match self.pending.get(start) {
                    Some(b'\n') => start += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.pending.drain(..start);
        events
    }

    fn dispatch(&mut self) -> Option<Result<SseEvent, String>> {
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let data = std::mem::take(&mut self.data);
        if data == b"[DONE]" {
            return Some(Ok(SseEvent::Done));
        }
        Some(match serde_json::from_slice::<Value>(&data) {
            Ok(json) => Ok(SseEvent::Data {
                raw: Bytes::from(data),
                json,
            }),
            Err(e) => {
                let excerpt: String = String::from_utf8_lossy(&data).chars().take(80).collect();
                Err(format!("stream event is not JSON ({e}): {excerpt}"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let input = b"data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        for split in 1..input.len() {
            let mut parser = SseParser::default();
            let mut events = parser.push(&input[..split]);
            events.extend(parser.push(&input[split..]));
            let events: Vec<SseEvent> = events.into_iter().map(|e| e.unwrap()).collect();
            assert_eq!(events.len(), 3, "split at {split}");
            assert_eq!(
                events[0].to_frame(),
                Bytes::from_static(b"data: {\"a\":1}\n\n")
            );
            assert_eq!(events[2], SseEvent::Done);
        }
    }

    #[test]
    fn a_payload_sent_over_several_data_lines_is_relayed_whole() {
        let mut parser = SseParser::default();
        let events = parser.push(b"data: [\ndata: null\ndata: ]\n\n");
        let event = events[0].clone().unwrap();
        assert_eq!(
            event.to_frame(),
            Bytes::from_static(b"data: [\ndata: null\ndata: ]\n\n")
        );
        let again = SseParser::default().push(&event.to_frame());
        assert_eq!(again, vec![Ok(event)]);
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        // `data: {}\r` then `\r\n`: the payload ends at the first `\r`, the second line is
        // empty and dispatches; a payload never keeps a `\r` that its frame would lose.
        let input = b"data: {}\r\r\ndata: [DONE]\r\r";
        let expected = vec![
            Ok(SseEvent::Data {
                raw: Bytes::from_static(b"{}"),
                json: serde_json::json!({}),
            }),
            Ok(SseEvent::Done),
        ];
        for split in 0..=input.len() {
            let mut parser = SseParser::default();
            let mut events = parser.push(&input[..split]);
            events.extend(parser.push(&input[split..]));
            assert_eq!(events, expected, "split at {split}");
        }
    }

    #[test]
    fn malformed_payload_is_an_error() {
        let mut parser = SseParser::default();
        let events = parser.push(b"data: {oops\n\n");
        assert!(events[0].is_err());
    }
}
