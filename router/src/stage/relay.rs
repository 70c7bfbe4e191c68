//! Relaying a live upstream stream: the tap collects the answer's text and usage, hides the
//! usage the sidecar asked for when the client did not, stores a complete answer in the cache,
//! and settles the account when the stream ends — or when it is dropped early (a disconnected
//! client still cost what was generated).

use std::sync::Arc;

use bytes::Bytes;
use frugal_cache::{CacheSlot, CacheTier};
use futures::{future, stream, StreamExt};
use serde_json::{json, Value};

use crate::context::RequestContext;
use crate::embed_worker::EmbedWorker;
use crate::error::ApiError;
use crate::ledger::RequestFacts;
use crate::money::TokenPrice;
use crate::sse::FrameStream;
use crate::sse::{frame, SseEvent};
use crate::stage::account::{Account, Attempt, TokenSource, Tokens};
use crate::stage::cache::CachedAnswer;
use crate::stage::settle::{settle, Holds};
use crate::stage::shadow;
use crate::tokens;
use crate::upstream::{UpstreamError, UpstreamStream};

/// Everything the tap needs to settle the request when the stream ends.
pub struct StreamTap {
    ctx: RequestContext,
    /// Alias and price of the model streaming.
    model: (String, TokenPrice),
    baseline: TokenPrice,
    /// Attempts made before this stream (failed calls, escalated answers).
    prior: Vec<Attempt>,
    escalations: u64,
    trimmed_tokens: u64,
    prompt_tokens: u64,
    client_wants_usage: bool,
    text: String,
    usage: Option<Tokens>,
    holds: Holds,
    /// Where to store the answer if the stream completes with `finish_reason: stop`.
    cache_slot: Option<CacheSlot>,
    shadow: Option<StreamShadow>,
    finish_reason: Option<String>,
    upstream_model: Option<Value>,
    settled: bool,
}

/// What a tap is made from.
pub struct TapParts {
    /// The request's context.
    pub ctx: RequestContext,
    /// Alias and price of the model streaming.
    pub model: (String, TokenPrice),
    /// The baseline model's price.
    pub baseline: TokenPrice,
    /// Attempts made before this stream.
    pub prior: Vec<Attempt>,
    /// Escalations before this stream.
    pub escalations: u64,
    /// Input tokens trimming removed.
    pub trimmed_tokens: u64,
    /// Prompt tokens, counted, for when the upstream reports no usage.
    pub prompt_tokens: u64,
    /// Whether the client asked for the usage chunk.
    pub client_wants_usage: bool,
    /// What the request holds against its budget and run caps, to settle.
    pub holds: Holds,
    /// Where to store a complete answer.
    pub cache_slot: Option<CacheSlot>,
    /// In cache shadow mode, the answer the cache would have served, to compare.
    pub shadow: Option<StreamShadow>,
}

/// A would-be cache hit to compare with the streamed answer once it completes.
pub struct StreamShadow {
    /// `exact` or `semantic`.
    pub tier: CacheTier,
    /// The answer the cache holds.
    pub cached: Arc<CachedAnswer>,
    /// The embedding worker the comparison uses.
    pub embedder: Option<Arc<EmbedWorker>>,
}

impl StreamTap {
    /// A tap for one stream.
    pub fn new(parts: TapParts) -> Self {
        Self {
            ctx: parts.ctx,
            model: parts.model,
            baseline: parts.baseline,
            prior: parts.prior,
            escalations: parts.escalations,
            trimmed_tokens: parts.trimmed_tokens,
            prompt_tokens: parts.prompt_tokens,
            client_wants_usage: parts.client_wants_usage,
            text: String::new(),
            usage: None,
            holds: parts.holds,
            cache_slot: parts.cache_slot,
            shadow: parts.shadow,
            finish_reason: None,
            upstream_model: None,
            settled: false,
        }
    }

    /// The frames to send for one upstream event.
    fn on_event(&mut self, event: Result<SseEvent, UpstreamError>) -> Vec<Bytes> {
        match event {
            Ok(SseEvent::Data { raw, json }) => self.on_chunk(raw, json),
            Ok(SseEvent::Done) => {
                let account = self.settle();
                self.compare_shadow(&account);
                self.store_answer();
                vec![account_comment(&account), SseEvent::Done.to_frame()]
            }
            Err(e) => {
                tracing::warn!(error = %e, "upstream stream failed mid-way");
                self.settle();
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

    fn settle(&mut self) -> Account {
        self.settled = true;
        let tokens = self.usage.unwrap_or_else(|| Tokens {
            input: self.prompt_tokens,
            output: tokens::count(&self.text),
            source: TokenSource::Counted,
        });
        self.usage = Some(tokens);
        let mut attempts = std::mem::take(&mut self.prior);
        attempts.push(Attempt::new(&self.model.0, tokens, self.model.1));
        let facts = RequestFacts {
            escalations: self.escalations,
            trimmed_tokens: self.trimmed_tokens,
            ..RequestFacts::default()
        };
        // Streams cannot carry a late header; a budget warning is logged and counted.
        let holds = std::mem::take(&mut self.holds);
        let (account, _) = settle(&self.ctx, self.baseline, tokens, attempts, facts, holds);
        account
    }

    /// In shadow mode, compares the completed answer with the one the cache would have served.
    fn compare_shadow(&mut self, account: &Account) {
        let Some(shadow) = self.shadow.take() else {
            return;
        };
        if self.finish_reason.as_deref() != Some("stop") {
            return;
        }
        shadow::compare_texts(
            shadow.embedder,
            shadow.tier,
            shadow::text_of(&shadow.cached.completion),
            self.text.clone(),
            account.actual,
        );
    }

    /// Stores a completed stream's answer as a chat completion object.
    fn store_answer(&mut self) {
        let (Some(slot), Some(tokens)) = (self.cache_slot.take(), self.usage) else {
            return;
        };
        if self.finish_reason.as_deref() != Some("stop") {
            return;
        }
        let completion = json!({
            "id": "chatcmpl-stored",
            "object": "chat.completion",
            "created": 0,
            "model": self.upstream_model.clone().unwrap_or(Value::Null),
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": self.text },
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": tokens.input,
                "completion_tokens": tokens.output,
                "total_tokens": tokens.input + tokens.output,
            },
        });
        if let Value::Object(completion) = completion {
            let model = self.model.0.clone();
            self.ctx.cache.store(
                slot,
                CachedAnswer {
                    completion,
                    tokens,
                    model,
                },
            );
        }
    }
}

impl Drop for StreamTap {
    fn drop(&mut self) {
        if !self.settled {
            self.settle();
        }
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

/// Token counts from a `usage` object.
pub fn reported_tokens(usage: Option<&Value>) -> Option<Tokens> {
    let usage = usage?;
    Some(Tokens {
        input: usage.get("prompt_tokens")?.as_u64()?,
        output: usage.get("completion_tokens")?.as_u64()?,
        source: TokenSource::Usage,
    })
}
