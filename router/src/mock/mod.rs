//! A deterministic, scriptable fake OpenAI server (`frugal mock-upstream`), for tests, the demo
//! and benchmarks. It answers `POST /v1/chat/completions` (JSON and SSE) with real token counts
//! (and Anthropic's `POST /v1/messages`, [`anthropic`]) and `POST /v1/embeddings` with
//! deterministic vectors ([`embed`]), can be slow, fail, reset, hang, truncate or send bad JSON
//! on cue, and counts calls per model (and embedding inputs).
//!
//! With labels ([`labels`]) it answers prompts of a labelled routing file with what each model
//! recorded, and [`InProcess`] gives the same answers without a socket (for `frugal replay`).
//!
//! Control endpoints: `GET /_mock/calls`, `GET /_mock/requests`, `PUT /_mock/script` (YAML or
//! JSON script), `POST /_mock/rules` (append one rule), `POST /_mock/reset`.

mod anthropic;
pub mod embed;
pub mod labels;
mod prompt_cache;
mod reply;
mod script;
mod simulate;
mod tool_call;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

use crate::tokens::last_user_text;
use crate::trim::Tokenizer;
pub use labels::{LabelledModels, Side, Verdict};
pub use prompt_cache::ProviderCache;
pub use reply::Answer;
pub use script::{Behaviour, CompiledScript, Matcher, Rule, Script};
pub use simulate::InProcess;
pub use tool_call::ToolCall;

/// How long a `reset_after_bytes` answer waits, after its bytes, before dropping the connection.
const FLUSH_BEFORE_RESET: Duration = Duration::from_millis(50);

/// How many request bodies the mock remembers for inspection.
const REMEMBERED_REQUESTS: usize = 256;

/// Marks a response whose connection must be reset instead of answered.
#[derive(Clone, Copy)]
struct ResetConnection;

/// Shared state of a running mock.
#[derive(Debug)]
struct MockState {
    script: RwLock<CompiledScript>,
    initial: Script,
    latency: Duration,
    model_latency: BTreeMap<String, Duration>,
    labels: Option<Arc<LabelledModels>>,
    seq: AtomicU64,
    prompt_cache: ProviderCache,
    calls: Mutex<BTreeMap<String, u64>>,
    embedding_inputs: Mutex<BTreeMap<String, u64>>,
    requests: Mutex<VecDeque<Value>>,
}

/// A running mock upstream; dropping it stops the accept loop.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<MockState>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// How a mock answers.
#[derive(Debug, Clone, Default)]
pub struct MockOptions {
    /// Rules and the default behaviour.
    pub script: Script,
    /// Latency added to every answer.
    pub latency: Duration,
    /// Latency of answers from these upstream models instead of `latency`.
    pub model_latency: BTreeMap<String, Duration>,
    /// Recorded answers for labelled prompts.
    pub labels: Option<Arc<LabelledModels>>,
}

impl MockServer {
    /// Starts a mock on `listener` with a script and a fixed latency added to every answer.
    pub fn start(listener: TcpListener, script: Script, latency: Duration) -> Result<Self, String> {
        Self::start_with(
            listener,
            MockOptions {
                script,
                latency,
                ..MockOptions::default()
            },
        )
    }

    /// Starts a mock on `listener` that answers as `options` say.
    pub fn start_with(listener: TcpListener, options: MockOptions) -> Result<Self, String> {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // Its `usage` counts tokens: the counter loads now, not in the first answer (~50 ms).
        Tokenizer::O200kBase.load();
        let MockOptions {
            script,
            latency,
            model_latency,
            labels,
        } = options;
        let state = Arc::new(MockState {
            script: RwLock::new(CompiledScript::compile(script.clone())?),
            initial: script,
            latency,
            model_latency,
            labels,
            seq: AtomicU64::new(0),
            prompt_cache: ProviderCache::default(),
            calls: Mutex::new(BTreeMap::new()),
            embedding_inputs: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(VecDeque::new()),
        });
        let router = router(state.clone());
        let accept = tokio::spawn(accept_loop(listener, router));
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL of this mock (`http://ADDR/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Appends a rule (tried after the existing ones).
    pub fn push_rule(&self, rule: Rule) -> Result<(), String> {
        self.state
            .script
            .write()
            .map_err(|_| "script lock poisoned".to_string())?
            .push(rule)
    }

    /// Calls received for an upstream model name.
    pub fn calls(&self, model: &str) -> u64 {
        self.state
            .calls
            .lock()
            .map(|c| c.get(model).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Calls received in total.
    pub fn total_calls(&self) -> u64 {
        self.state
            .calls
            .lock()
            .map(|c| c.values().sum())
            .unwrap_or(0)
    }

    /// Embedding inputs received for an upstream model name (over all its calls).
    pub fn embedding_inputs(&self, model: &str) -> u64 {
        self.state
            .embedding_inputs
            .lock()
            .map(|c| c.get(model).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The most recent request bodies, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.state
            .requests
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

async fn accept_loop(listener: TcpListener, router: Router) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(async move {
            let (reset_tx, reset_rx) = oneshot::channel::<()>();
            let reset_tx = Arc::new(Mutex::new(Some(reset_tx)));
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    let reset_tx = reset_tx.clone();
                    async move {
                        let response = router
                            .oneshot(request.map(Body::new))
                            .await
                            .unwrap_or_else(|e| match e {});
                        if response.extensions().get::<ResetConnection>().is_some() {
                            if let Some(tx) = reset_tx.lock().ok().and_then(|mut t| t.take()) {
                                let _ = tx.send(());
                            }
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, Infallible>(response)
                    }
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = reset_rx => {} // dropping the connection closes the socket unanswered
            }
        });
    }
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok" }))
        .route("/_mock/calls", get(calls))
        .route("/_mock/requests", get(requests))
        .route("/_mock/script", put(replace_script))
        .route("/_mock/rules", post(append_rule))
        .route("/_mock/reset", post(reset))
        .with_state(state)
}

fn error_response(status: StatusCode, message: &str, kind: &str) -> Response {
    let body =
        json!({ "error": { "message": message, "type": kind, "param": null, "code": null } });
    (status, Json(body)).into_response()
}

async fn chat_completions(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
        );
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock")
        .to_string();
    let prompt = last_user_text(&request);
    let behaviour = match received(&state, &request, &model, &prompt, scripted_error).await {
        Ok(behaviour) => behaviour,
        Err(response) => return response,
    };
    let seq = state.seq.fetch_add(1, Ordering::Relaxed);
    let mut answer = Answer::new(&request, &behaviour, seq);
    answer.cached_tokens = state
        .prompt_cache
        .read(&request, answer.prompt_tokens as u64);
    if request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        stream_answer(&request, &answer, &behaviour)
    } else {
        json_answer(&answer, &behaviour)
    }
}

async fn embeddings(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let request = match crate::embeddings::request::EmbeddingRequest::parse(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &e.to_string(),
                "invalid_request_error",
            )
        }
    };
    let model = request.model.clone();
    if let Ok(mut inputs) = state.embedding_inputs.lock() {
        *inputs.entry(model.clone()).or_default() += request.items.len() as u64;
    }
    let prompt = embed::prompt_of(&request);
    let behaviour = match received(&state, &request.body, &model, &prompt, scripted_error).await {
        Ok(behaviour) => behaviour,
        Err(response) => return response,
    };
    let answer = match embed::answer(&request, &model, behaviour.truncate_after) {
        Ok(answer) => answer.to_string(),
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, &message, "invalid_request_error")
        }
    };
    let body = if behaviour.malformed {
        r#"{"object": "list", "data": [{"embedding": oops"#.to_string()
    } else {
        answer
    };
    json_body(body, behaviour.reset_after_bytes)
}

/// Counts and remembers a request, picks the script's behaviour for it and waits its latency;
/// `Err` is the whole answer when the behaviour is a fault (reset, hang, an error status).
async fn received(
    state: &MockState,
    request: &Map<String, Value>,
    model: &str,
    prompt: &str,
    scripted: ScriptedError,
) -> Result<Behaviour, Response> {
    if let Ok(mut calls) = state.calls.lock() {
        *calls.entry(model.to_string()).or_default() += 1;
    }
    if let Ok(mut remembered) = state.requests.lock() {
        if remembered.len() == REMEMBERED_REQUESTS {
            remembered.pop_front();
        }
        remembered.push_back(Value::Object(request.clone()));
    }
    let behaviour = match state.script.read() {
        Ok(script) => script.pick(model, prompt),
        Err(_) => Behaviour::default(),
    };
    let behaviour = labelled(behaviour, state.labels.as_deref(), model, prompt);
    let latency = state
        .model_latency
        .get(model)
        .copied()
        .unwrap_or(state.latency);
    let delay = latency + Duration::from_millis(behaviour.delay_ms);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if behaviour.reset {
        let mut response = StatusCode::OK.into_response();
        response.extensions_mut().insert(ResetConnection);
        return Err(response);
    }
    if behaviour.hang {
        std::future::pending::<()>().await;
    }
    if let Some(status) = behaviour.status {
        return Err(scripted(status, behaviour.retry_after));
    }
    Ok(behaviour)
}

/// The answer to a scripted error status (and `Retry-After` seconds), in an API's error shape.
type ScriptedError = fn(u16, Option<u64>) -> Response;

/// The behaviour with the labelled answer of `model` to `prompt` as its reply, unless the
/// script already says what to reply.
fn labelled(
    mut behaviour: Behaviour,
    labels: Option<&LabelledModels>,
    model: &str,
    prompt: &str,
) -> Behaviour {
    if behaviour.reply.is_none() && behaviour.reply_bytes.is_none() {
        behaviour.reply = labels.and_then(|l| l.answer(prompt, model));
    }
    behaviour
}

fn scripted_error(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_error"
    } else {
        "server_error"
    };
    let message = format!("Simulated upstream failure (HTTP {}).", status.as_u16());
    let mut response = error_response(status, &message, kind);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn json_answer(answer: &Answer, behaviour: &Behaviour) -> Response {
    let body = answer.completion().to_string();
    let body = if behaviour.malformed {
        format!(
            "{{\"id\": \"{}\", \"choices\": [{{\"message\": oops",
            answer.id
        )
    } else if behaviour.truncate_after.is_some() {
        body[..body.len() / 2].to_string()
    } else {
        body
    };
    json_body(body, behaviour.reset_after_bytes)
}

/// A JSON response of `body`, or of its first `reset_after_bytes` bytes before the connection
/// drops.
fn json_body(body: String, reset_after_bytes: Option<usize>) -> Response {
    let mut response = match reset_after_bytes {
        Some(limit) => cut_off(vec![Bytes::from(body)], Duration::ZERO, limit),
        None => Response::new(Body::from(body)),
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn stream_answer(request: &Map<String, Value>, answer: &Answer, behaviour: &Behaviour) -> Response {
    let include_usage = request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut frames: Vec<Bytes> = answer
        .chunks(include_usage)
        .iter()
        .map(|c| Bytes::from(format!("data: {c}\n\n")))
        .collect();
    if behaviour.malformed {
        frames.insert(
            frames.len().min(2),
            Bytes::from_static(b"data: {\"choices\": [oops\n\n"),
        );
    }
    match behaviour.truncate_after {
        Some(n) => frames.truncate(n + 1), // the role chunk plus n content chunks
        None => frames.push(Bytes::from_static(b"data: [DONE]\n\n")),
    }
    let pause = Duration::from_millis(behaviour.token_delay_ms);
    let mut response = match behaviour.reset_after_bytes {
        Some(limit) => cut_off(frames, pause, limit),
        None => Response::new(Body::from_stream(
            paced(frames, pause).map(Ok::<_, Infallible>),
        )),
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// The frames one by one, `pause` before each.
fn paced(frames: Vec<Bytes>, pause: Duration) -> impl futures::Stream<Item = Bytes> {
    futures::stream::iter(frames).then(move |frame| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        frame
    })
}

/// A body of the frames' first `limit` bytes that then fails, so the server drops the
/// connection mid-body (the client sees a body cut short, not a clean end).
fn cut_off(frames: Vec<Bytes>, pause: Duration, limit: usize) -> Response {
    let mut left = limit;
    let mut kept = Vec::new();
    for frame in frames {
        if left == 0 {
            break;
        }
        let take = frame.len().min(left);
        kept.push(frame.slice(..take));
        left -= take;
    }
    let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock reset mid-body");
    let body = paced(kept, pause)
        .map(Ok::<_, std::io::Error>)
        .chain(futures::stream::once(async move {
            // Let the head and the bytes go out first: an error while they are still buffered
            // would drop the whole response, a reset before the head rather than mid-body.
            tokio::time::sleep(FLUSH_BEFORE_RESET).await;
            Err(reset)
        }));
    Response::new(Body::from_stream(body))
}

async fn models(State(state): State<Arc<MockState>>) -> Response {
    let seen: Vec<Value> = state
        .calls
        .lock()
        .map(|c| {
            c.keys()
                .map(|m| json!({ "id": m, "object": "model", "owned_by": "mock" }))
                .collect()
        })
        .unwrap_or_default();
    Json(json!({ "object": "list", "data": seen })).into_response()
}

async fn calls(State(state): State<Arc<MockState>>) -> Response {
    let by_model = state.calls.lock().map(|c| c.clone()).unwrap_or_default();
    let total: u64 = by_model.values().sum();
    let inputs = state
        .embedding_inputs
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    Json(json!({ "total": total, "by_model": by_model, "embedding_inputs": inputs }))
        .into_response()
}

async fn requests(State(state): State<Arc<MockState>>) -> Response {
    let list: Vec<Value> = state
        .requests
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default();
    Json(Value::Array(list)).into_response()
}

async fn replace_script(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let parsed = std::str::from_utf8(&body)
        .map_err(|e| e.to_string())
        .and_then(crate::yaml::from_str::<Script>);
    match parsed.and_then(CompiledScript::compile) {
        Ok(compiled) => match state.script.write() {
            Ok(mut script) => {
                *script = compiled;
                Json(json!({ "status": "replaced" })).into_response()
            }
            Err(_) => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "script lock poisoned",
                "server_error",
            ),
        },
        Err(e) => error_response(
            StatusCode::BAD_REQUEST,
            &format!("bad script: {e}"),
            "invalid_request_error",
        ),
    }
}

async fn append_rule(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let text = std::str::from_utf8(&body).map_err(|e| e.to_string());
    let rule = match text.and_then(crate::yaml::from_str::<Rule>) {
        Ok(rule) => rule,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("bad rule: {e}"),
                "invalid_request_error",
            )
        }
    };
    match state
        .script
        .write()
        .map_err(|_| "script lock poisoned".to_string())
        .and_then(|mut s| s.push(rule))
    {
        Ok(()) => Json(json!({ "status": "added" })).into_response(),
        Err(e) => error_response(StatusCode::BAD_REQUEST, &e, "invalid_request_error"),
    }
}

async fn reset(State(state): State<Arc<MockState>>) -> Response {
    if let (Ok(mut script), Ok(initial)) = (
        state.script.write(),
        CompiledScript::compile(state.initial.clone()),
    ) {
        *script = initial;
    }
    if let Ok(mut calls) = state.calls.lock() {
        calls.clear();
    }
    if let Ok(mut inputs) = state.embedding_inputs.lock() {
        inputs.clear();
    }
    if let Ok(mut requests) = state.requests.lock() {
        requests.clear();
    }
    state.prompt_cache.clear();
    Json(json!({ "status": "reset" })).into_response()
}
