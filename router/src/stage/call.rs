//! One model's answer, fetched resiliently: retries with backoff and jitter for retryable
//! failures while the shared retry budget allows, the provider's circuit breaker consulted
//! before every call, and the model's fallbacks tried in order when it cannot answer. Every
//! attempt is logged for accounting: a failed call costs nothing, but it is recorded.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::metrics;
use crate::policy::{LiveState, ModelRoute};
use crate::stage::account::{Attempt, TokenSource, Tokens};
use crate::upstream::{
    backoff, OpenAiCompatible, Permit, Resilience, UpstreamError, UpstreamReply, UpstreamStream,
};

/// What a successful call returned.
pub enum Answer {
    /// A complete chat completion.
    Json(UpstreamReply),
    /// A live SSE stream (its response headers have arrived).
    Stream(UpstreamStream),
    /// An embeddings list.
    Embeddings(UpstreamReply),
}

/// What a call asks of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// A chat completion, answered whole.
    Complete,
    /// A chat completion, streamed.
    Stream,
    /// Embeddings of the body's `input`.
    Embed,
}

/// An answer and the model that gave it (the one asked for, or one of its fallbacks).
pub struct Answered<'p> {
    /// The answer.
    pub answer: Answer,
    /// The model that answered.
    pub model: &'p ModelRoute,
}

/// Calls `route` (then its fallbacks) with `body`, non-streaming or streaming; failed attempts
/// are appended to `attempts` (the successful one is the caller's to price once it has usage).
pub async fn call<'p>(
    live: &'p LiveState,
    resilience: &Resilience,
    route: &'p ModelRoute,
    body: &Map<String, Value>,
    stream: bool,
    attempts: &mut Vec<Attempt>,
) -> Result<Answered<'p>, UpstreamError> {
    let policy = &live.policy;
    let mut candidates = vec![route];
    candidates.extend(route.fallbacks.iter().filter_map(|a| policy.models.get(a)));
    resilience.on_first_call(&policy.retries);
    let mut last_error = None;
    for (index, model) in candidates.iter().copied().enumerate() {
        if index > 0 {
            tracing::warn!(from = %route.alias, to = %model.alias, "falling back to another model");
        }
        let Some(client) = live.upstreams.get(&model.provider) else {
            last_error = Some(UpstreamError::Config {
                provider: model.provider.clone(),
                reason: "no client for this provider".into(),
            });
            continue;
        };
        let mut outbound = body.clone();
        outbound.insert("model".into(), Value::String(model.upstream.clone()));
        let operation = if stream {
            Operation::Stream
        } else {
            Operation::Complete
        };
        match call_with_retries(
            live, resilience, client, model, &outbound, operation, attempts,
        )
        .await
        {
            Ok(answer) => return Ok(Answered { answer, model }),
            // The request itself was refused: another provider would refuse it too.
            Err(e) if e.is_request_rejected() => return Err(e),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| UpstreamError::Config {
        provider: route.provider.clone(),
        reason: "no model to call".into(),
    }))
}

/// Asks `route`'s provider for the embeddings of `body`, with the same retries, retry budget,
/// circuit breaker and timeouts as a chat call, but never a fallback: another model's vectors
/// live in another space. Failed attempts are appended to `attempts`.
pub async fn embed(
    live: &LiveState,
    resilience: &Resilience,
    route: &ModelRoute,
    body: &Map<String, Value>,
    attempts: &mut Vec<Attempt>,
) -> Result<UpstreamReply, UpstreamError> {
    resilience.on_first_call(&live.policy.retries);
    let Some(client) = live.upstreams.get(&route.provider) else {
        return Err(UpstreamError::Config {
            provider: route.provider.clone(),
            reason: "no client for this provider".into(),
        });
    };
    let mut outbound = body.clone();
    outbound.insert("model".into(), Value::String(route.upstream.clone()));
    let answer = call_with_retries(
        live,
        resilience,
        client,
        route,
        &outbound,
        Operation::Embed,
        attempts,
    )
    .await?;
    match answer {
        Answer::Embeddings(reply) => Ok(reply),
        Answer::Json(_) | Answer::Stream(_) => Err(UpstreamError::InvalidResponse {
            provider: route.provider.clone(),
            reason: "not an embeddings list".into(),
        }),
    }
}

async fn call_with_retries(
    live: &LiveState,
    resilience: &Resilience,
    client: &OpenAiCompatible,
    model: &ModelRoute,
    body: &Map<String, Value>,
    operation: Operation,
    attempts: &mut Vec<Attempt>,
) -> Result<Answer, UpstreamError> {
    let policy = &live.policy;
    let provider = client.name();
    let mut retry = 0;
    let mut previous: Option<UpstreamError> = None;
    // A call's own retries count once against the breaker: one request the provider keeps
    // failing (a poison prompt) must not open the circuit for everyone.
    let mut struck = false;
    loop {
        let permit = resilience.permit(provider);
        if permit == Permit::Refused {
            metrics::record_upstream(provider, &model.alias, "circuit_open", Duration::ZERO);
            // A circuit that opened during this request's retries: report what failed.
            return Err(previous.unwrap_or_else(|| UpstreamError::CircuitOpen {
                provider: provider.to_string(),
            }));
        }
        let started = Instant::now();
        let result = once(client, model, body, operation).await;
        let outcome = result
            .as_ref()
            .map_or_else(UpstreamError::outcome, |_| "ok");
        metrics::record_upstream(provider, &model.alias, outcome, started.elapsed());
        let healthy = !result
            .as_ref()
            .is_err_and(UpstreamError::is_provider_failure);
        if healthy || !struck || permit == Permit::Probe {
            resilience.record(provider, healthy, &policy.circuit_breaker);
        }
        struck |= !healthy;
        let error = match result {
            Ok(answer) => return Ok(answer),
            Err(e) => e,
        };
        attempts.push(Attempt::new(&model.alias, NO_TOKENS, model.token_price));
        retry += 1;
        if !error.is_retryable() || retry >= policy.retries.max_attempts {
            return Err(error);
        }
        let Some(wait) = backoff(&policy.retries, retry, error.retry_after()) else {
            return Err(error);
        };
        if !resilience.try_retry(&policy.retries) {
            tracing::warn!(provider, error = %error, "retry budget spent; not retrying");
            return Err(error);
        }
        metrics::record_retry(provider);
        tracing::info!(provider, error = %error, wait_ms = wait.as_millis(), "retrying upstream call");
        previous = Some(error);
        tokio::time::sleep(wait).await;
    }
}

/// Tokens of a call that failed before any answer.
const NO_TOKENS: Tokens = Tokens::new(0, 0, TokenSource::Counted);

async fn once(
    client: &OpenAiCompatible,
    model: &ModelRoute,
    body: &Map<String, Value>,
    operation: Operation,
) -> Result<Answer, UpstreamError> {
    let call = async {
        match operation {
            Operation::Stream => client.stream(body).await.map(Answer::Stream),
            Operation::Complete => client.complete(body).await.map(Answer::Json),
            Operation::Embed => client.embed(body).await.map(Answer::Embeddings),
        }
    };
    match model.timeout {
        None => call.await,
        Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(UpstreamError::Timeout {
                provider: client.name().to_string(),
                phase: "model",
                after_ms: limit.as_millis(),
            })
        }),
    }
}
