//! The request path, top to bottom: validate, resolve the model, call the upstream, relay,
//! account. It knows nothing of HTTP framing; it returns a [`Reply`] or an [`ApiError`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{future, stream, Stream, StreamExt};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::ledger::{Ledger, RequestFacts};
use crate::metrics;
use crate::money::TokenPrice;
use crate::policy::compile::DEFAULT_ASSUMED_OUTPUT_TOKENS;
use crate::policy::{Baseline, CacheMode, LiveState, ModelRoute, Policy};
use crate::request::ChatRequest;
use crate::sse::{frame, SseEvent};
use crate::stage::account::{self, Account, Attempt, Facts, TokenSource, Tokens};
use crate::stage::budget::{BudgetWarning, Budgets, Reservation};
use crate::stage::cache::{self, CacheControl, CacheKey, CachedAnswer, Lookup, ResponseCache};
use crate::stage::run::Runs;
use crate::tokens;
use crate::upstream::{UpstreamError, UpstreamStream};

/// SSE frames ready to send to the client.
pub type FrameStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// Who is asking, and where settled accounts go.
#[derive(Clone)]
pub struct RequestContext {
    /// Tenant the request is billed to.
    pub tenant: String,
    /// Where settled accounts are summed.
    pub ledger: Arc<Ledger>,
    /// Tenant budget state.
    pub budgets: Arc<Budgets>,
    /// The agent run this request belongs to, if it says.
    pub run_id: Option<String>,
    /// Per-run state.
    pub runs: Arc<Runs>,
    /// The response cache.
    pub cache: Arc<ResponseCache>,
    /// What the client asked of the cache.
    pub cache_control: CacheControl,
}

/// What the pipeline answers.
pub struct Reply {
    /// What the sidecar decided, for response headers.
    pub meta: ReplyMeta,
    /// The answer itself.
    pub body: ReplyBody,
}

/// The decisions behind a reply.
#[derive(Debug, Clone)]
pub struct ReplyMeta {
    /// The model alias that answered.
    pub model: String,
    /// The provider that answered.
    pub provider: String,
    /// The settled account; `None` for a stream, which settles when it ends.
    pub account: Option<Account>,
    /// Soft budget thresholds this request crossed.
    pub budget_warnings: Vec<BudgetWarning>,
    /// A loop the policy flags rather than blocks.
    pub loop_flag: Option<String>,
    /// What the cache did.
    pub cache: Lookup,
}

/// A complete JSON completion or a live SSE stream.
pub enum ReplyBody {
    /// A chat completion object, as JSON bytes.
    Json(Bytes),
    /// SSE frames, relayed as they arrive from upstream.
    Stream(FrameStream),
}

/// Handles one chat completion request.
pub async fn handle(
    live: &LiveState,
    ctx: &RequestContext,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let request = ChatRequest::parse(body)?;
    let route = resolve_model(&live.policy, request.model.as_deref())?;
    let upstream = live
        .upstreams
        .get(&route.provider)
        .ok_or_else(|| UpstreamError::Config {
            provider: route.provider.clone(),
            reason: "no client for this provider".into(),
        })?;
    let pricing = Pricing {
        model: route.alias.clone(),
        price: route.token_price,
        baseline: baseline_price(&live.policy, route),
    };
    let mut meta = ReplyMeta {
        model: route.alias.clone(),
        provider: route.provider.clone(),
        account: None,
        budget_warnings: Vec::new(),
        loop_flag: None,
        cache: Lookup::Bypass,
    };

    let mut outbound = request.body;
    outbound.insert("model".into(), Value::String(route.upstream.clone()));
    let worst = worst_case(live, ctx, &pricing, &outbound);
    check_request_caps(&live.policy, &worst)?;
    if let Some(run_id) = &ctx.run_id {
        let verdict = ctx.runs.check(
            &live.policy.runs,
            &ctx.tenant,
            run_id,
            &outbound,
            worst.cost,
            worst.tokens,
        )?;
        meta.loop_flag = verdict.loop_flag;
    }
    let cache_key = cache_key(&live.policy, ctx, route, &outbound);
    if let Some(key) = &cache_key {
        meta.cache = Lookup::Miss;
        let found = (ctx.cache_control != CacheControl::Refresh)
            .then(|| ctx.cache.get(key))
            .flatten();
        match (found, live.policy.cache.mode) {
            (Some(hit), CacheMode::On) => {
                metrics::record_cache_lookup("exact", "hit");
                meta.cache = Lookup::Exact;
                meta.account = Some(settle(ctx, &pricing, hit.tokens, true));
                let body = if request.stream {
                    let frames = ctx.cache.hit_stream(&hit, wants_usage(&outbound));
                    ReplyBody::Stream(Box::pin(stream::iter(frames)))
                } else {
                    ReplyBody::Json(ctx.cache.hit_json(&hit))
                };
                return Ok(Reply { meta, body });
            }
            (Some(_), _) => {
                metrics::record_cache_lookup("exact", "shadow_hit");
                meta.cache = Lookup::ShadowHit;
            }
            (None, _) => metrics::record_cache_lookup("exact", "miss"),
        }
    }
    let reservation = match Budgets::policy_for(&live.policy, &ctx.tenant) {
        Some(budget) => Some(ctx.budgets.reserve(budget, &ctx.tenant, worst.cost)?),
        None => None,
    };
    let started = Instant::now();
    if request.stream {
        // Ask for usage so the stream can be priced; the client only sees it if it asked too.
        let client_wants_usage = wants_usage(&outbound);
        let prompt_tokens = tokens::prompt_tokens(&outbound);
        set_include_usage(&mut outbound);
        let events = upstream.stream(&outbound).await;
        metrics::record_upstream(upstream.name(), outcome(&events), started.elapsed());
        let tap = StreamTap::new(
            ctx.clone(),
            pricing,
            prompt_tokens,
            client_wants_usage,
            reservation,
            cache_key,
        );
        return Ok(Reply {
            meta,
            body: ReplyBody::Stream(relay(events?, tap)),
        });
    }
    let reply = upstream.complete(&outbound).await;
    metrics::record_upstream(upstream.name(), outcome(&reply), started.elapsed());
    let reply = reply?;
    let tokens = reported_tokens(reply.body.get("usage")).unwrap_or_else(|| Tokens {
        input: tokens::prompt_tokens(&outbound),
        output: tokens::count(&answer_text(&reply.body)),
        source: TokenSource::Counted,
    });
    let account = settle(ctx, &pricing, tokens, false);
    if let Some(reservation) = reservation {
        meta.budget_warnings = reservation.settle(account.actual);
    }
    if let Some(key) = cache_key.filter(|_| cache::storable(&reply.body)) {
        ctx.cache.insert(
            key,
            CachedAnswer {
                completion: reply.body,
                tokens,
            },
        );
    }
    meta.account = Some(account);
    Ok(Reply {
        meta,
        body: ReplyBody::Json(reply.raw),
    })
}

fn outcome<T>(result: &Result<T, UpstreamError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    }
}

/// Finds the route for the requested alias, or the policy's default when none is named.
pub fn resolve_model<'p>(
    policy: &'p Policy,
    requested: Option<&str>,
) -> Result<&'p ModelRoute, ApiError> {
    let alias = requested.unwrap_or(&policy.default_model);
    policy
        .models
        .get(alias)
        .ok_or_else(|| ApiError::ModelNotFound(alias.to_string()))
}

/// The most a request can cost: every prompt token plus `max_tokens` (or the tenant budget's
/// assumed output) at the answering model's price.
struct WorstCase {
    cost: crate::money::Usd,
    input: u64,
    tokens: u64,
}

fn worst_case(
    live: &LiveState,
    ctx: &RequestContext,
    pricing: &Pricing,
    body: &Map<String, Value>,
) -> WorstCase {
    let assumed = Budgets::policy_for(&live.policy, &ctx.tenant)
        .map_or(DEFAULT_ASSUMED_OUTPUT_TOKENS, |b| b.assumed_output_tokens);
    let max_output = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .unwrap_or(assumed);
    let input = tokens::prompt_tokens(body);
    WorstCase {
        cost: pricing.price.cost(input, max_output),
        input,
        tokens: input + max_output,
    }
}

/// The exact-tier key, when the cache is on (or in shadow) and this request may be cached.
fn cache_key(
    policy: &Policy,
    ctx: &RequestContext,
    route: &ModelRoute,
    body: &Map<String, Value>,
) -> Option<CacheKey> {
    let settings = &policy.cache;
    let wanted = settings.mode != CacheMode::Off && ctx.cache_control != CacheControl::Bypass;
    if !wanted || !cache::eligible(settings, body) {
        metrics::record_cache_lookup("exact", "bypass");
        return None;
    }
    Some(cache::key(
        &ctx.tenant,
        &settings.namespace,
        &route.alias,
        body,
    ))
}

/// The policy's per-request caps: prompt size and worst-case cost.
fn check_request_caps(policy: &Policy, worst: &WorstCase) -> Result<(), ApiError> {
    if let Some(cap) = policy
        .limits
        .max_input_tokens
        .filter(|cap| worst.input > *cap)
    {
        return Err(ApiError::InvalidRequest {
            message: format!(
                "The prompt is {} tokens, over this deployment's limit of {cap}.",
                worst.input
            ),
            param: Some("messages".into()),
            code: "input_too_long",
        });
    }
    if let Some(cap) = policy
        .limits
        .max_request_cost
        .filter(|cap| worst.cost > *cap)
    {
        return Err(ApiError::InvalidRequest {
            message: format!(
                "This request may cost up to ${}, over this deployment's per-request limit of ${cap}; lower `max_tokens` or shorten the prompt.",
                worst.cost
            ),
            param: Some("max_tokens".into()),
            code: "request_cost_too_high",
        });
    }
    Ok(())
}

fn baseline_price(policy: &Policy, requested: &ModelRoute) -> TokenPrice {
    match &policy.baseline {
        Baseline::Requested => requested.token_price,
        Baseline::Model(alias) => policy
            .models
            .get(alias)
            .map_or(requested.token_price, |m| m.token_price),
    }
}

/// Prices for one request.
#[derive(Debug, Clone)]
struct Pricing {
    model: String,
    price: TokenPrice,
    baseline: TokenPrice,
}

/// Settles a request answered by one upstream call (or by the cache, with the stored answer's
/// tokens) and records it.
fn settle(ctx: &RequestContext, pricing: &Pricing, tokens: Tokens, cache_hit: bool) -> Account {
    let attempts = if cache_hit {
        vec![]
    } else {
        vec![Attempt::new(&pricing.model, tokens, pricing.price)]
    };
    let account = account::settle(Facts {
        baseline_price: pricing.baseline,
        untrimmed_input: tokens.input,
        trimmed_input: tokens.input,
        output: tokens.output,
        cache_hit,
        attempts,
    });
    let facts = RequestFacts {
        cache_hit,
        ..RequestFacts::default()
    };
    ctx.ledger.record(&ctx.tenant, &account, facts);
    if let Some(run_id) = &ctx.run_id {
        ctx.runs.settle(run_id, &account);
    }
    metrics::record_account(&ctx.tenant, &account);
    account
}

fn reported_tokens(usage: Option<&Value>) -> Option<Tokens> {
    let usage = usage?;
    Some(Tokens {
        input: usage.get("prompt_tokens")?.as_u64()?,
        output: usage.get("completion_tokens")?.as_u64()?,
        source: TokenSource::Usage,
    })
}

fn answer_text(body: &Map<String, Value>) -> String {
    body.get("choices")
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .map(|c| tokens::content_text(c.get("message").and_then(|m| m.get("content"))))
                .collect::<Vec<_>>()
                .concat()
        })
        .unwrap_or_default()
}

fn wants_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn set_include_usage(body: &mut Map<String, Value>) {
    match body.get_mut("stream_options") {
        Some(Value::Object(options)) => {
            options.insert("include_usage".into(), Value::Bool(true));
        }
        _ => {
            body.insert("stream_options".into(), json!({ "include_usage": true }));
        }
    }
}

/// Watches a relayed stream: collects the answer's text and usage, hides the usage the sidecar
/// asked for when the client did not, and settles the account when the stream ends — or when
/// it is dropped early (a disconnected client still cost what was generated).
struct StreamTap {
    ctx: RequestContext,
    pricing: Pricing,
    prompt_tokens: u64,
    client_wants_usage: bool,
    text: String,
    usage: Option<Tokens>,
    reservation: Option<Reservation>,
    /// Where to store the answer if the stream completes with `finish_reason: stop`.
    cache_key: Option<CacheKey>,
    finish_reason: Option<String>,
    model: Option<Value>,
    settled: bool,
}

impl StreamTap {
    fn new(
        ctx: RequestContext,
        pricing: Pricing,
        prompt_tokens: u64,
        client_wants_usage: bool,
        reservation: Option<Reservation>,
        cache_key: Option<CacheKey>,
    ) -> Self {
        Self {
            ctx,
            pricing,
            prompt_tokens,
            client_wants_usage,
            text: String::new(),
            usage: None,
            reservation,
            cache_key,
            finish_reason: None,
            model: None,
            settled: false,
        }
    }

    /// The frames to send for one upstream event.
    fn on_event(&mut self, event: Result<SseEvent, UpstreamError>) -> Vec<Bytes> {
        match event {
            Ok(SseEvent::Data { raw, json }) => self.on_chunk(raw, json),
            Ok(SseEvent::Done) => {
                let account = self.settle();
                self.store_answer();
                let note = format!(
                    ": frugal cost_usd={} baseline_usd={} saved_usd={}\n\n",
                    account.actual,
                    account.baseline,
                    account.savings.total()
                );
                vec![Bytes::from(note), SseEvent::Done.to_frame()]
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
        if self.model.is_none() {
            self.model = json.get("model").cloned();
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
        let account = settle(&self.ctx, &self.pricing, tokens, false);
        if let Some(reservation) = self.reservation.take() {
            // Streams cannot carry a late header; the warning is logged and counted.
            reservation.settle(account.actual);
        }
        account
    }
}

impl StreamTap {
    /// Stores a completed stream's answer as a chat completion object.
    fn store_answer(&mut self) {
        let (Some(key), Some(tokens)) = (self.cache_key.take(), self.usage) else {
            return;
        };
        if self.finish_reason.as_deref() != Some("stop") {
            return;
        }
        let completion = json!({
            "id": "chatcmpl-stored",
            "object": "chat.completion",
            "created": 0,
            "model": self.model.clone().unwrap_or(Value::Null),
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
            self.ctx
                .cache
                .insert(key, CachedAnswer { completion, tokens });
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
fn relay(events: UpstreamStream, tap: StreamTap) -> FrameStream {
    let frames = events
        .scan(tap, |tap, event| future::ready(Some(tap.on_event(event))))
        .flat_map(stream::iter);
    Box::pin(frames)
}
