//! Relaying a live upstream stream: the tap collects the answer's text and usage, hides the
//! usage the sidecar asked for when the client did not, and settles the request when the stream
//! ends (a completed answer, stored and compared like a JSON one) — or when it breaks or is
//! dropped early (a disconnected client still cost what was generated).

use bytes::Bytes;
use futures::{future, stream, StreamExt};
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::money::TokenPrice;
use crate::sse::FrameStream;
use crate::sse::{frame, SseEvent};
use crate::stage::account::{Account, Attempt, TokenSource, Tokens};
use crate::stage::settle::{CompletedAnswer, Settlement};
use crate::tokens;
use crate::upstream::{UpstreamError, UpstreamStream};

/// Everything the tap needs to settle the request when the stream ends.
pub struct StreamTap {
    ctx: RequestContext,
    model: StreamingModel,
    /// Attempts made before this stream (failed calls, escalated answers).
    prior: Vec<Attempt>,
    escalations: u64,
    prompt_tokens: u64,
    client_wants_usage: bool,
    text: String,
    usage: Option<Tokens>,
    finish_reason: Option<String>,
    upstream_model: Option<Value>,
    /// Taken when the stream settles, so it settles once.
    settlement: Option<Settlement>,
}

/// The model a stream comes from.
pub struct StreamingModel {
    /// Its alias in the policy.
    pub alias: String,
    /// Its price.
    pub price: TokenPrice,
}

/// What a tap is made from.
pub struct TapParts {
    /// The request's context.
    pub ctx: RequestContext,
    /// The model streaming.
    pub model: StreamingModel,
    /// Attempts made before this stream.
    pub prior: Vec<Attempt>,
    /// Escalations before this stream.
    pub escalations: u64,
    /// Prompt tokens, counted, for when the upstream reports no usage.
    pub prompt_tokens: u64,
    /// Whether the client asked for the usage chunk.
    pub client_wants_usage: bool,
    /// What the request settles with when the stream ends.
    pub settlement: Settlement,
}

impl StreamTap {
    /// A tap for one stream.
    pub fn new(parts: TapParts) -> Self {
        Self {
            ctx: parts.ctx,
            model: parts.model,
            prior: parts.prior,
            escalations: parts.escalations,
            prompt_tokens: parts.prompt_tokens,
            client_wants_usage: parts.client_wants_usage,
            text: String::new(),
            usage: None,
            finish_reason: None,
            upstream_model: None,
            settlement: Some(parts.settlement),
        }
    }

    /// The frames to send for one upstream event.
    fn on_event(&mut self, event: Result<SseEvent, UpstreamError>) -> Vec<Bytes> {
        match event {
            Ok(SseEvent::Data { raw, json }) => self.on_chunk(raw, json),
            Ok(SseEvent::Done) => match self.complete() {
                Some(account) => vec![account_comment(&account), SseEvent::Done.to_frame()],
                None => vec![SseEvent::Done.to_frame()],
            },
            Err(e) => {
                tracing::warn!(error = %e, "upstream stream failed mid-way");
                self.cut_short();
                let error = ApiError::Upstream(e);
                let body = json!({ "error": error.body()["error"].clone() });
                vec![frame(body.to_string().as_bytes())]
            }
        }
    }

    fn on_chunk(&mut self, raw: Bytes, mut json: Value) -> Vec<Bytes> {
        if self.upstream_model.is_none() {
            self.upstream_model = json.get("model").cloned();
        }
        if let Some(choices) = json.get("choices").and_then(Value::as_array) {
            for choice in choices {
                if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(reason.to_string());
                }
                if let Some(text) = choice
                    .get("delta")
                    .and_then(|d| d.get("content"))
                    .and_then(Value::as_str)
                {
                    self.text.push_str(text);
                }
            }
        }
        if let Some(tokens) = reported_tokens(json.get("usage")) {
            self.usage = Some(tokens);
        }
        if self.client_wants_usage || json.get("usage").is_none() {
            return vec![frame(&raw)];
        }
        let usage_only = json
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if usage_only {
            return vec![];
        }
        if let Some(object) = json.as_object_mut() {
            object.remove("usage");
        }
        vec![frame(json.to_string().as_bytes())]
    }

    /// The tokens the stream used: as reported, or counted when the upstream sent no usage.
    fn tokens(&self) -> Tokens {
        self.usage.unwrap_or_else(|| {
            Tokens::new(
                self.prompt_tokens,
                tokens::count(&self.text),
                TokenSource::Counted,
            )
        })
    }

    /// Every attempt paid, this stream's last.
    fn attempts(&mut self, tokens: Tokens) -> Vec<Attempt> {
        let mut attempts = std::mem::take(&mut self.prior);
        attempts.push(Attempt::new(&self.model.alias, tokens, self.model.price));
        attempts
    }

    /// Settles the stream that ended with `[DONE]` as a completed answer. Streams cannot carry
    /// a late header; a budget warning is logged and counted.
    fn complete(&mut self) -> Option<Account> {
        let settlement = self.settlement.take()?;
        let tokens = self.tokens();
        let attempts = self.attempts(tokens);
        let answer = CompletedAnswer {
            completion: self.completion(tokens),
            tokens,
            model: self.model.alias.clone(),
        };
        let (account, _) = settlement.complete(&self.ctx, answer, attempts, self.escalations);
        Some(account)
    }

    /// Settles a stream that broke or whose client left: what was generated is paid for.
    fn cut_short(&mut self) {
        let Some(settlement) = self.settlement.take() else {
            return;
        };
        let tokens = self.tokens();
        let attempts = self.attempts(tokens);
        settlement.cut_short(&self.ctx, tokens, attempts, self.escalations);
    }

    /// The streamed answer as a chat completion object.
    fn completion(&self, tokens: Tokens) -> Map<String, Value> {
        let completion = json!({
            "id": "chatcmpl-stored",
            "object": "chat.completion",
            "created": 0,
            "model": self.upstream_model.clone().unwrap_or(Value::Null),
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": self.text },
                "logprobs": null,
                "finish_reason": self.finish_reason,
            }],
            "usage": {
                "prompt_tokens": tokens.input,
                "completion_tokens": tokens.output,
                "total_tokens": tokens.input + tokens.output,
            },
        });
        match completion {
            Value::Object(completion) => completion,
            _ => Map::new(),
        }
    }
}

impl Drop for StreamTap {
    fn drop(&mut self) {
        self.cut_short();
    }
}

/// Turns upstream events into client frames through the tap. The upstream stream ends after
/// `[DONE]` or its first error, so the relay ends with it.
pub fn relay(events: UpstreamStream, tap: StreamTap) -> FrameStream {
    let frames = events
        .scan(tap, |tap, event| future::ready(Some(tap.on_event(event))))
        .flat_map(stream::iter);
    Box::pin(frames)
}

/// The SSE comment that carries a stream's settled account (a stream cannot send late
/// headers; clients ignore comments).
pub fn account_comment(account: &Account) -> Bytes {
    Bytes::from(format!(
        ": frugal cost_usd={} baseline_usd={} saved_usd={}\n\n",
        account.actual,
        account.baseline,
        account.savings.total()
    ))
}

/// Token counts from a `usage` object: OpenAI's (`prompt_tokens` holds every input token,
/// `prompt_tokens_details.cached_tokens` those read from the provider's prompt cache), with the
/// prompt-cache fields OpenAI-compatible gateways in front of Anthropic add
/// (`cache_read_input_tokens`, `cache_creation_input_tokens`, counted within `prompt_tokens`).
pub fn reported_tokens(usage: Option<&Value>) -> Option<Tokens> {
    let usage = usage?;
    let count = |value: Option<&Value>| value.and_then(Value::as_u64).unwrap_or(0);
    let input = usage.get("prompt_tokens")?.as_u64()?;
    let cached = count(
        usage
            .pointer("/prompt_tokens_details/cached_tokens")
            .or_else(|| usage.get("cache_read_input_tokens")),
    )
    .min(input);
    let written = count(usage.get("cache_creation_input_tokens")).min(input - cached);
    Some(Tokens {
        input,
        output: usage.get("completion_tokens")?.as_u64()?,
        cached_input: cached,
        cache_write: written,
        source: TokenSource::Usage,
    })
}
