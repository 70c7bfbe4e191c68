//! The request path, top to bottom: validate, resolve the model, call the upstream, relay.
//!
//! It knows nothing of HTTP framing or Prometheus; it returns a [`Reply`] or an [`ApiError`].

use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::metrics;
use crate::policy::{LiveState, ModelRoute, Policy};
use crate::request::ChatRequest;
use crate::sse::frame;
use crate::upstream::UpstreamError;

/// SSE frames ready to send to the client.
pub type FrameStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

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
}

/// A complete JSON completion or a live SSE stream.
pub enum ReplyBody {
    /// A chat completion object, as JSON bytes.
    Json(Bytes),
    /// SSE frames, relayed as they arrive from upstream.
    Stream(FrameStream),
}

/// Handles one chat completion request.
pub async fn handle(live: &LiveState, body: &[u8]) -> Result<Reply, ApiError> {
    let request = ChatRequest::parse(body)?;
    let route = resolve_model(&live.policy, request.model.as_deref())?;
    let upstream = live
        .upstreams
        .get(&route.provider)
        .ok_or_else(|| UpstreamError::Config {
            provider: route.provider.clone(),
            reason: "no client for this provider".into(),
        })?;
    let meta = ReplyMeta {
        model: route.alias.clone(),
        provider: route.provider.clone(),
    };

    let mut outbound = request.body;
    outbound.insert("model".into(), Value::String(route.upstream.clone()));

    let started = Instant::now();
    let body = if request.stream {
        let events = upstream.stream(&outbound).await;
        metrics::record_upstream(upstream.name(), outcome(&events), started.elapsed());
        ReplyBody::Stream(relay(events?))
    } else {
        let reply = upstream.complete(&outbound).await;
        metrics::record_upstream(upstream.name(), outcome(&reply), started.elapsed());
        ReplyBody::Json(reply?.raw)
    };
    Ok(Reply { meta, body })
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

/// Turns upstream events into client frames. A stream that breaks ends with an OpenAI-shaped
/// error event instead of `[DONE]`, so the client knows the answer is incomplete.
fn relay(events: crate::upstream::UpstreamStream) -> FrameStream {
    let frames = events.map(|event| match event {
        Ok(event) => event.to_frame(),
        Err(e) => {
            tracing::warn!(error = %e, "upstream stream failed mid-way");
            let error = ApiError::Upstream(e);
            let body = json!({ "error": error.body()["error"].clone() });
            frame(body.to_string().as_bytes())
        }
    });
    // The upstream stream ends after `[DONE]` or its first error, so the relay ends with it.
    Box::pin(frames)
}
