//! Building the fake upstream's answers: chat completion objects and SSE chunks with real
//! token counts (tiktoken o200k_base) and optional logprobs.

use serde_json::{json, Map, Value};

use super::script::Behaviour;
use super::tool_call::ToolCall;
use crate::tokens::{count, last_user_text, prompt_tokens, split};

/// `created` is fixed so answers are byte-for-byte reproducible.
const CREATED: u64 = 1_700_000_000;
const DEFAULT_LOGPROB: f64 = -0.05;
/// One piece of a huge answer's filler: 1 KiB of words, sent as one stream chunk.
const FILLER_PIECE_BYTES: usize = 1024;

/// What the fake model will say to one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Completion id.
    pub id: String,
    /// Model name echoed back.
    pub model: String,
    /// The answer split into tokens (their texts concatenate to the answer).
    pub tokens: Vec<String>,
    /// `stop` or `length` (or the script's override).
    pub finish_reason: String,
    /// Prompt tokens, counted the way OpenAI bills chat messages.
    pub prompt_tokens: usize,
    /// Of those, the tokens the provider's prompt cache served ([`super::ProviderCache`]).
    pub cached_tokens: u64,
    /// Completion tokens (the tokens' count, or the real count of a huge answer's filler).
    pub completion_tokens: usize,
    /// Per-token logprob to report, when the client asked for logprobs.
    pub logprobs: Option<(f64, usize)>,
    /// The tool the answer calls, if the script says so.
    pub tool_call: Option<ToolCall>,
}

/// About `bytes` of filler words in 1 KiB pieces, and how many tokens they are.
fn filler(bytes: usize) -> (Vec<String>, usize) {
    let words = "lorem ipsum dolor sit amet ";
    let piece: String =
        words.repeat(FILLER_PIECE_BYTES / words.len() + 1)[..FILLER_PIECE_BYTES].to_string();
    let pieces = bytes.div_ceil(FILLER_PIECE_BYTES).max(1);
    let tokens = count(&piece) as usize * pieces;
    (vec![piece; pieces], tokens)
}

/// The deterministic default reply: names the model and quotes the start of the question.
fn default_reply(model: &str, prompt: &str) -> String {
    let excerpt: Vec<&str> = prompt.split_whitespace().take(24).collect();
    format!(
        "This is {model}, a simulated model. You asked: \"{}\". Here is a concise answer.",
        excerpt.join(" ")
    )
}

impl Answer {
    /// Decides the answer to a request under a behaviour; `seq` makes the id unique.
    pub fn new(body: &Map<String, Value>, behaviour: &Behaviour, seq: u64) -> Self {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock")
            .to_string();
        let prompt = last_user_text(body);
        let (tokens, completion_tokens, mut finish_reason) = match behaviour.reply_bytes {
            // A huge answer is sent whole; `max_tokens` does not cut it (that is the fault).
            Some(bytes) => {
                let (pieces, count) = filler(bytes);
                (pieces, count, "stop".to_string())
            }
            // A tool call says nothing unless the script gives it words too.
            None if behaviour.tool_call.is_some() && behaviour.reply.is_none() => {
                (Vec::new(), 0, "tool_calls".to_string())
            }
            None => {
                let text = behaviour
                    .reply
                    .clone()
                    .unwrap_or_else(|| default_reply(&model, &prompt));
                let mut tokens = split(&text);
                let limit = ["max_completion_tokens", "max_tokens"]
                    .iter()
                    .find_map(|k| body.get(*k).and_then(Value::as_u64))
                    .and_then(|n| usize::try_from(n).ok());
                let mut finish_reason = "stop".to_string();
                if let Some(limit) = limit.filter(|&l| tokens.len() > l) {
                    tokens.truncate(limit);
                    finish_reason = "length".into();
                }
                let count = tokens.len();
                (tokens, count, finish_reason)
            }
        };
        let completion_tokens = completion_tokens
            + behaviour.tool_call.as_ref().map_or(0, |call| {
                count(&call.name) as usize + count(&call.arguments_text()) as usize
            });
        if behaviour.tool_call.is_some() && finish_reason == "stop" {
            finish_reason = "tool_calls".into();
        }
        if let Some(forced) = &behaviour.finish_reason {
            finish_reason = forced.clone();
        }
        let wants_logprobs = body
            .get("logprobs")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let top = body
            .get("top_logprobs")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        Self {
            id: format!("chatcmpl-mock{seq:08}"),
            model,
            tokens,
            finish_reason,
            prompt_tokens: prompt_tokens(body) as usize,
            cached_tokens: 0,
            completion_tokens,
            logprobs: wants_logprobs.then(|| (behaviour.logprob.unwrap_or(DEFAULT_LOGPROB), top)),
            tool_call: behaviour.tool_call.clone(),
        }
    }

    /// The full answer text.
    pub fn text(&self) -> String {
        self.tokens.concat()
    }

    fn usage(&self) -> Value {
        let completion = self.completion_tokens;
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": { "cached_tokens": self.cached_tokens },
        })
    }

    fn logprobs_for(&self, tokens: &[String]) -> Value {
        match self.logprobs {
            None => Value::Null,
            Some((mean, top)) => {
                let content: Vec<Value> = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, token)| {
                        // Alternate around the mean so the average is exactly `mean` over pairs.
                        let logprob = if i % 2 == 0 { mean * 0.5 } else { mean * 1.5 };
                        let alternatives: Vec<Value> = (0..top)
                            .map(|k| {
                                let (t, lp) = if k == 0 {
                                    (token.clone(), logprob)
                                } else {
                                    (format!("{token}#{k}"), logprob - 2.0 * k as f64)
                                };
                                json!({ "token": t, "logprob": lp, "bytes": t.as_bytes() })
                            })
                            .collect();
                        json!({ "token": token, "logprob": logprob, "bytes": token.as_bytes(), "top_logprobs": alternatives })
                    })
                    .collect();
                json!({ "content": content, "refusal": null })
            }
        }
    }

    /// The id of the answer's tool call.
    fn call_id(&self) -> String {
        self.id.replace("chatcmpl-", "call_")
    }

    /// The non-streaming chat completion object.
    pub fn completion(&self) -> Value {
        let mut message = json!({ "role": "assistant", "content": self.text(), "refusal": null });
        if let Some(call) = &self.tool_call {
            if self.tokens.is_empty() {
                message["content"] = Value::Null;
            }
            message["tool_calls"] = call.message_calls(&self.call_id());
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": CREATED,
            "model": self.model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": self.logprobs_for(&self.tokens),
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage(),
        })
    }

    fn chunk(
        &self,
        delta: Value,
        logprobs: Value,
        finish_reason: Value,
        include_usage: bool,
    ) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "system_fingerprint": "fp_mock",
            "choices": [{ "index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason }],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    /// The stream's JSON chunks in order (without `[DONE]`): role, one per token, finish, usage.
    pub fn chunks(&self, include_usage: bool) -> Vec<Value> {
        let mut chunks = Vec::with_capacity(self.tokens.len() + 3);
        chunks.push(self.chunk(
            json!({ "role": "assistant", "content": "" }),
            Value::Null,
            Value::Null,
            include_usage,
        ));
        for token in &self.tokens {
            let logprobs = self.logprobs_for(std::slice::from_ref(token));
            chunks.push(self.chunk(
                json!({ "content": token }),
                logprobs,
                Value::Null,
                include_usage,
            ));
        }
        for delta in self
            .tool_call
            .iter()
            .flat_map(|c| c.deltas(&self.call_id()))
        {
            chunks.push(self.chunk(delta, Value::Null, Value::Null, include_usage));
        }
        chunks.push(self.chunk(
            json!({}),
            Value::Null,
            json!(self.finish_reason),
            include_usage,
        ));
        if include_usage {
            chunks.push(json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": self.model,
                "system_fingerprint": "fp_mock",
                "choices": [],
                "usage": self.usage(),
            }));
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn max_tokens_truncates_with_length() {
        let b = body(
            json!({"model":"m","messages":[{"role":"user","content":"tell me a long story"}],"max_tokens":3}),
        );
        let answer = Answer::new(&b, &Behaviour::default(), 1);
        assert_eq!(answer.tokens.len(), 3);
        assert_eq!(answer.finish_reason, "length");
        assert_eq!(answer.completion()["usage"]["completion_tokens"], 3);
    }

    #[test]
    fn stream_chunks_concatenate_to_the_completion() {
        let b = body(
            json!({"model":"m","messages":[{"role":"user","content":"hi there"}],"logprobs":true}),
        );
        let answer = Answer::new(
            &b,
            &Behaviour {
                reply: Some("Hello, world!".into()),
                ..Default::default()
            },
            1,
        );
        let chunks = answer.chunks(true);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello, world!");
        assert_eq!(
            chunks.last().unwrap()["usage"]["completion_tokens"],
            answer.tokens.len()
        );
        let lps = &answer.completion()["choices"][0]["logprobs"]["content"];
        assert_eq!(lps.as_array().unwrap().len(), answer.tokens.len());
    }
}
