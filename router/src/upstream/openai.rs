//! A provider client: OpenAI-compatible (`POST {base_url}/chat/completions`, JSON or SSE), or
//! Anthropic's Messages API (`POST {base_url}/messages`), translated both ways by
//! [`super::anthropic`] so callers always send and receive OpenAI's shapes; and OpenAI's
//! `POST {base_url}/embeddings`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::Url;
use serde_json::{Map, Value};

use super::anthropic::{self, Shaping, StreamTranslator, Translated};
use super::UpstreamError;
use crate::policy::{ProviderConfig, ProviderKind};
use crate::sse::{SseEvent, SseParser};

/// A complete (non-streaming) reply.
#[derive(Debug, Clone)]
pub struct UpstreamReply {
    /// The body exactly as the provider sent it, relayed byte for byte.
    pub raw: Bytes,
    /// The same body parsed: a chat completion object (or an embeddings list).
    pub body: Map<String, Value>,
}

/// A stream of SSE events from the provider, ending with `Done` or an error.
pub type UpstreamStream = Pin<Box<dyn Stream<Item = Result<SseEvent, UpstreamError>> + Send>>;

/// An upstream answered in-process instead of over HTTP: `frugal replay`'s simulation, so a
/// replay runs the same pipeline code without sockets.
pub trait Simulate: Send + Sync + std::fmt::Debug {
    /// The raw JSON body of the chat completion answering `body`.
    fn complete(&self, body: &Map<String, Value>) -> Bytes;
    /// The SSE frames of the streamed answer to `body`, `data: [DONE]` included.
    fn stream(&self, body: &Map<String, Value>) -> Vec<Bytes>;
}

/// A client for one provider: OpenAI-compatible, or Anthropic's API behind OpenAI's shapes.
#[derive(Debug)]
pub struct OpenAiCompatible {
    config: Arc<ProviderConfig>,
    client: reqwest::Client,
    api_key: Option<String>,
    /// Where requests go, parsed once: a URL parsed per request cost more than the rest of
    /// building the request.
    endpoints: Endpoints,
    /// How requests to an Anthropic provider are shaped.
    shaping: Shaping,
    /// Answers in-process instead of over HTTP (a replay).
    simulated: Option<Arc<dyn Simulate>>,
}

/// A provider's endpoints.
#[derive(Debug)]
struct Endpoints {
    chat_completions: Url,
    embeddings: Url,
    /// Anthropic's Messages API.
    messages: Url,
}

impl Endpoints {
    /// The endpoints under the provider's `base_url`.
    fn of(config: &ProviderConfig) -> Result<Self, UpstreamError> {
        let url = |path: &str| {
            let joined = format!("{}/{path}", config.base_url);
            Url::parse(&joined).map_err(|e| UpstreamError::Config {
                provider: config.name.clone(),
                reason: format!("`{joined}` is not a URL: {e}"),
            })
        };
        Ok(Self {
            chat_completions: url("chat/completions")?,
            embeddings: url("embeddings")?,
            messages: url("messages")?,
        })
    }
}

impl OpenAiCompatible {
    /// Builds the HTTP client; the API key is read from the environment now, once.
    pub fn new(config: Arc<ProviderConfig>) -> Result<Self, UpstreamError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| UpstreamError::Config {
                provider: config.name.clone(),
                reason: e.to_string(),
            })?;
        let api_key = config
            .api_key_env
            .as_deref()
            .and_then(|var| std::env::var(var).ok());
        let endpoints = Endpoints::of(&config)?;
        Ok(Self {
            config,
            client,
            api_key,
            endpoints,
            shaping: Shaping::default(),
            simulated: None,
        })
    }

    /// The same client, shaping Anthropic requests as `shaping` says.
    pub fn with_shaping(self, shaping: Shaping) -> Self {
        Self { shaping, ..self }
    }

    fn is_anthropic(&self) -> bool {
        self.config.kind == ProviderKind::Anthropic && self.simulated.is_none()
    }

    /// A client whose calls `simulation` answers in-process (no HTTP), with the provider's
    /// settings otherwise.
    pub fn simulated(
        config: Arc<ProviderConfig>,
        simulation: Arc<dyn Simulate>,
    ) -> Result<Self, UpstreamError> {
        Ok(Self {
            simulated: Some(simulation),
            ..Self::new(config)?
        })
    }

    /// The provider's name in the policy.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether the API key named in the policy was found in the environment (true if none is named).
    pub fn has_credentials(&self) -> bool {
        self.config.api_key_env.is_none() || self.api_key.is_some()
    }

    fn request(&self, body: &Map<String, Value>) -> Result<reqwest::RequestBuilder, UpstreamError> {
        if self.is_anthropic() {
            let body = anthropic::to_messages_request(body, self.shaping)
                .map_err(|reason| self.untranslatable(&reason))?;
            let request = self
                .client
                .post(self.endpoints.messages.clone())
                .header("anthropic-version", anthropic::API_VERSION)
                .json(&body);
            return Ok(match &self.api_key {
                Some(key) => request.header("x-api-key", key),
                None => request,
            });
        }
        Ok(self.post(&self.endpoints.chat_completions, body))
    }

    /// A POST of `body` to one of an OpenAI-compatible provider's endpoints, with the key as a
    /// bearer token.
    fn post(&self, url: &Url, body: &Map<String, Value>) -> reqwest::RequestBuilder {
        let request = self.client.post(url.clone()).json(body);
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// A request Anthropic cannot take, refused as the provider would: a 400 in OpenAI's shape.
    fn untranslatable(&self, reason: &str) -> UpstreamError {
        let body = serde_json::json!({ "error": {
            "message": format!("provider `{}` (Anthropic) cannot take this request: {reason}", self.config.name),
            "type": "invalid_request_error", "param": null, "code": "unsupported_by_provider",
        }});
        UpstreamError::ClientError {
            provider: self.config.name.clone(),
            status: StatusCode::BAD_REQUEST,
            body: Bytes::from(body.to_string()),
            retry_after: None,
        }
    }

    /// A reply body as a chat completion: as sent by an OpenAI-compatible provider, translated
    /// from an Anthropic message.
    fn completion(&self, raw: Bytes) -> Result<UpstreamReply, UpstreamError> {
        if !self.is_anthropic() {
            let body = parse_completion(&raw).map_err(|reason| self.invalid(reason))?;
            return Ok(UpstreamReply { raw, body });
        }
        let message: Map<String, Value> = match serde_json::from_slice(&raw) {
            Ok(Value::Object(message)) => message,
            Ok(_) => return Err(self.invalid("not a JSON object".into())),
            Err(e) => return Err(self.invalid(format!("not JSON ({e})"))),
        };
        let body = anthropic::to_completion(&message).map_err(|reason| self.invalid(reason))?;
        let raw = Bytes::from(Value::Object(body.clone()).to_string());
        Ok(UpstreamReply { raw, body })
    }

    /// Sends a non-streaming request and parses the reply.
    pub async fn complete(
        &self,
        body: &Map<String, Value>,
    ) -> Result<UpstreamReply, UpstreamError> {
        if let Some(simulation) = &self.simulated {
            let raw = simulation.complete(body);
            let body = parse_completion(&raw).map_err(|reason| self.invalid(reason))?;
            return Ok(UpstreamReply { raw, body });
        }
        let request = self.request(body)?;
        self.send_and_parse(request, |raw| self.completion(raw))
            .await
    }

    /// Sends an embeddings request and checks the reply is an embeddings list (a `data`
    /// array); the caller checks its items against what it asked for.
    pub async fn embed(&self, body: &Map<String, Value>) -> Result<UpstreamReply, UpstreamError> {
        if self.simulated.is_some() {
            // A replay simulates chat answers only; it never sends embeddings.
            return Err(self.invalid("the simulated upstream does not answer embeddings".into()));
        }
        if self.is_anthropic() {
            return Err(self.untranslatable("Anthropic has no embeddings API"));
        }
        self.send_and_parse(self.post(&self.endpoints.embeddings, body), |raw| {
            let body = parse_embeddings(&raw).map_err(|reason| self.invalid(reason))?;
            Ok(UpstreamReply { raw, body })
        })
        .await
    }

    /// Sends `request` and parses the whole reply with `parse`, within the request timeout.
    async fn send_and_parse(
        &self,
        request: reqwest::RequestBuilder,
        parse: impl FnOnce(Bytes) -> Result<UpstreamReply, UpstreamError>,
    ) -> Result<UpstreamReply, UpstreamError> {
        let timeout = self.config.timeouts.request;
        let call = async {
            let response = request.send().await.map_err(|e| self.transport_error(e))?;
            let response = self.check_status(response).await?;
            let raw = response
                .bytes()
                .await
                .map_err(|e| self.transport_error(e))?;
            parse(raw)
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout("request", timeout)),
        }
    }

    /// Sends a streaming request; returns once the provider's response headers arrive.
    pub async fn stream(&self, body: &Map<String, Value>) -> Result<UpstreamStream, UpstreamError> {
        if let Some(simulation) = &self.simulated {
            let frames = simulation.stream(body).into_iter().map(Ok);
            return Ok(self.events(futures::stream::iter(frames)));
        }
        let first_byte = self.config.timeouts.first_byte;
        let request = self.request(body)?;
        let response = match tokio::time::timeout(first_byte, request.send()).await {
            Ok(result) => result.map_err(|e| self.transport_error(e))?,
            Err(_) => return Err(self.timeout("first_byte", first_byte)),
        };
        let response = self.check_status(response).await?;
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(
                self.invalid("asked for a stream but the reply is not text/event-stream".into())
            );
        }
        Ok(self.events(response.bytes_stream()))
    }

    /// The SSE events of a body arriving in chunks, each within the idle timeout. The stream is
    /// read where it is polled (no task or channel in between, so no thread hop per chunk); it
    /// ends after `[DONE]` or its first error.
    fn events(
        &self,
        bytes: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
    ) -> UpstreamStream {
        let reading = EventReader {
            bytes,
            parser: SseParser::default(),
            translator: self.is_anthropic().then(StreamTranslator::default),
            ready: VecDeque::new(),
            ended: false,
            idle: self.config.timeouts.idle,
            provider: self.config.name.clone(),
        };
        Box::pin(futures::stream::unfold(reading, |mut reading| async move {
            let event = reading.next_event().await?;
            Some((event, reading))
        }))
    }

    async fn check_status(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, UpstreamError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs >= 0.0)
            .map(Duration::from_secs_f64);
        let mut body = response.bytes().await.unwrap_or_default();
        if self.is_anthropic() {
            if let Some(converted) = anthropic::error_body(&body) {
                body = Bytes::from(converted);
            }
        }
        let provider = self.config.name.clone();
        if status.is_client_error() {
            Err(UpstreamError::ClientError {
                provider,
                status,
                body,
                retry_after,
            })
        } else {
            let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            Err(UpstreamError::ServerError {
                provider,
                status,
                excerpt,
                retry_after,
            })
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            self.timeout("connect", self.config.timeouts.connect)
        } else {
            unreachable_error(&self.config.name, &e)
        }
    }

    fn timeout(&self, phase: &'static str, after: Duration) -> UpstreamError {
        timeout_error(&self.config.name, phase, after)
    }

    fn invalid(&self, reason: String) -> UpstreamError {
        invalid_error(&self.config.name, reason)
    }
}

fn timeout_error(provider: &str, phase: &'static str, after: Duration) -> UpstreamError {
    UpstreamError::Timeout {
        provider: provider.to_string(),
        phase,
        after_ms: after.as_millis(),
    }
}

fn invalid_error(provider: &str, reason: String) -> UpstreamError {
    UpstreamError::InvalidResponse {
        provider: provider.to_string(),
        reason,
    }
}

fn unreachable_error(provider: &str, e: &reqwest::Error) -> UpstreamError {
    // The Display of reqwest errors hides the cause ("error sending request"); show the chain.
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    UpstreamError::Unreachable {
        provider: provider.to_string(),
        reason,
    }
}

/// One Anthropic stream event as the chat completion events it stands for.
fn translate(
    translator: &mut StreamTranslator,
    event: Result<SseEvent, UpstreamError>,
    provider: &str,
) -> Vec<Result<SseEvent, UpstreamError>> {
    let data = match event {
        Ok(SseEvent::Data { json, .. }) => json,
        // Anthropic ends with `message_stop`, never `[DONE]`; pass one through all the same.
        other => return vec![other],
    };
    let chunk = |json: Value| {
        Ok(SseEvent::Data {
            raw: Bytes::from(json.to_string()),
            json,
        })
    };
    match translator.event(&data) {
        Translated::Chunks(chunks) => chunks.into_iter().map(chunk).collect(),
        Translated::Done(chunks) => chunks
            .into_iter()
            .map(chunk)
            .chain([Ok(SseEvent::Done)])
            .collect(),
        Translated::Error(message) => vec![Err(invalid_error(
            provider,
            format!("Anthropic reported an error mid-stream: {message}"),
        ))],
    }
}

/// Checks that a body is a chat completion object: JSON with a `choices` array.
fn parse_completion(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    object_with_array(bytes, "choices")
}

/// Checks that a body is an embeddings list: JSON with a `data` array.
fn parse_embeddings(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    object_with_array(bytes, "data")
}

/// A JSON object with an array under `field`.
fn object_with_array(bytes: &[u8], field: &str) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    if !map.get(field).is_some_and(Value::is_array) {
        return Err(format!("no `{field}` array"));
    }
    Ok(map)
}

/// An upstream SSE body being read: the events parsed (and translated from Anthropic's) but not
/// yet taken.
struct EventReader<S> {
    bytes: S,
    parser: SseParser,
    translator: Option<StreamTranslator>,
    ready: VecDeque<Result<SseEvent, UpstreamError>>,
    /// `[DONE]` or an error was taken: nothing follows.
    ended: bool,
    idle: Duration,
    provider: String,
}

impl<S> EventReader<S>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Unpin,
{
    /// The next event, reading more of the body when none is parsed; `None` once the stream
    /// has ended.
    async fn next_event(&mut self) -> Option<Result<SseEvent, UpstreamError>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(event) = self.ready.pop_front() {
                self.ended = !matches!(event, Ok(SseEvent::Data { .. }));
                return Some(event);
            }
            let next = match tokio::time::timeout(self.idle, self.bytes.next()).await {
                Ok(next) => next,
                Err(_) => return self.end(timeout_error(&self.provider, "idle", self.idle)),
            };
            match next {
                Some(Ok(chunk)) => {
                    for event in self.parser.push(&chunk) {
                        let event = event.map_err(|reason| invalid_error(&self.provider, reason));
                        match self.translator.as_mut() {
                            Some(translator) => {
                                self.ready
                                    .extend(translate(translator, event, &self.provider));
                            }
                            None => self.ready.push_back(event),
                        }
                    }
                }
                Some(Err(e)) => return self.end(unreachable_error(&self.provider, &e)),
                None => {
                    let reason = "the stream ended before `data: [DONE]`".to_string();
                    return self.end(invalid_error(&self.provider, reason));
                }
            }
        }
    }

    /// Ends the stream with `error`.
    fn end(&mut self, error: UpstreamError) -> Option<Result<SseEvent, UpstreamError>> {
        self.ended = true;
        Some(Err(error))
    }
}
