//! The HTTP surface: routes, tower-http layers, and the mapping of pipeline replies to
//! responses (headers, JSON or SSE). Every error a client can see is OpenAI-shaped, except on
//! Anthropic's Messages API (`/v1/messages`), where it is Anthropic-shaped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::admission::{Admission, AdmissionLimits, Permit};
use crate::anthropic;
use crate::context::RequestContext;
use crate::decisions::{DecisionLog, Draft};
use crate::embeddings::{self, EmbeddingCache, EmbeddingReply};
use crate::error::{json_response, ApiError};
use crate::ledger::{Ledger, MAX_WINDOW};
use crate::metrics::{self, InFlight};
use crate::pipeline::{self, Reply, ReplyBody};
use crate::policy::compile::key_digest;
use crate::policy::{Live, Policy, ReloadOutcome, Reloader};
use crate::shared::SharedTier;
use crate::stage::budget::Budgets;
use crate::stage::cache::{CacheControl, ResponseCache};
use crate::stage::escalation;
use crate::stage::prompt_prefix::PrefixWatch;
use crate::stage::route;
use crate::stage::run::{run_id, OutcomeError, Runs};
use crate::tenants::{TenantLabels, DEFAULT_TENANT};
use crate::upstream::Resilience;
use crate::usd_counters::UsdCounters;

/// Response header naming the model alias that answered.
pub const HEADER_MODEL: &str = "x-frugal-model";
/// Response header naming the provider that answered.
pub const HEADER_PROVIDER: &str = "x-frugal-provider";
/// Request header naming the tenant a request is billed to.
pub const HEADER_TENANT: &str = "x-frugal-tenant";
/// Request header `default|bypass|refresh`; response header `exact|miss|bypass|shadow_hit` (an
/// embeddings request: `hit|partial|miss|bypass`).
pub const HEADER_CACHE: &str = "x-frugal-cache";
/// Request header capping the routing ladder (`cheap`, `mid` or `strong`).
pub const HEADER_MAX_TIER: &str = "x-frugal-max-tier";
/// Request header naming the agent run.
pub const HEADER_RUN_ID: &str = "x-frugal-run-id";
/// Response header of an embeddings request: `N/M`, the inputs served from the cache out of all.
pub const HEADER_CACHED_INPUTS: &str = "x-frugal-cached-inputs";
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Anthropic's Messages API.
const MESSAGES_ROUTE: &str = "/v1/messages";

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// The live policy and upstream clients.
    pub live: Live,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Set once shutdown starts, so `/readyz` turns away new traffic.
    pub draining: Arc<AtomicBool>,
    /// Re-reads the policy file on `POST /v1/frugal/reload` (absent when served from memory).
    pub reloader: Option<Arc<Reloader>>,
    /// Settled accounts, for `/v1/frugal/savings`.
    pub ledger: Arc<Ledger>,
    /// Tenant budget state.
    pub budgets: Arc<Budgets>,
    /// Agent run state.
    pub runs: Arc<Runs>,
    /// The response cache.
    pub cache: Arc<ResponseCache>,
    /// Retry budget and circuit breakers.
    pub resilience: Arc<Resilience>,
    /// Chat and embeddings requests in flight, against the policy's concurrency limits.
    pub admission: Arc<Admission>,
    /// The bounded names tenants are counted under.
    pub tenants: Arc<TenantLabels>,
    /// The shared tier on Redis, when the policy has one.
    pub shared: Option<Arc<SharedTier>>,
    /// Set while the shared tier's warm-up holds back readiness.
    pub warming: Arc<AtomicBool>,
    /// The decision log, when the policy keeps one.
    pub decisions: Option<Arc<DecisionLog>>,
    /// Each tenant's recent prompt prefixes.
    pub prefix_watch: Arc<PrefixWatch>,
    /// The exact per-input cache of `POST /v1/embeddings`.
    pub embeddings: Arc<EmbeddingCache>,
}

/// Which routes one listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Every route, on the one listener (no `admin_listen`).
    All,
    /// What the agent calls: chat completions, embeddings, Anthropic messages, the model list
    /// and run outcomes.
    Api,
    /// What operators, probes and Prometheus call: metrics, health, readiness, policy reload
    /// and the savings report.
    Admin,
}

/// Builds the application serving `routes`, with all layers.
pub fn app(state: AppState, request_timeout: Duration, routes: Routes) -> Router {
    let mut router = Router::new();
    if routes != Routes::Admin {
        router = router
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/embeddings", post(embeddings))
            .route(MESSAGES_ROUTE, post(messages))
            .route("/v1/models", get(list_models))
            .route("/v1/frugal/outcome", post(report_outcome));
    }
    if routes != Routes::Api {
        router = router
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(render_metrics))
            .route("/v1/frugal/reload", post(reload_policy))
            .route("/v1/frugal/savings", get(savings));
    }
    router
        .fallback(not_found)
        // The timeout sits inside the shaping, so its bodiless 408 is OpenAI-shaped too.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(middleware::from_fn(openai_shaped_errors))
        .layer(middleware::from_fn(count_requests))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Admitted {
        live,
        ctx,
        permit,
        bytes,
    } = match admit(&state, &headers, body).await {
        Ok(admitted) => admitted,
        Err(e) => return e.into_response(),
    };
    match pipeline::handle(&live, &ctx, &bytes).await {
        Ok(reply) => respond(reply, permit),
        Err(e) => failed(e).into_response(),
    }
}

async fn embeddings(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Admitted {
        live,
        ctx,
        permit: _permit,
        bytes,
    } = match admit(&state, &headers, body).await {
        Ok(admitted) => admitted,
        Err(e) => return e.into_response(),
    };
    match embeddings::handle(&live, &ctx, &state.embeddings, &bytes).await {
        Ok(reply) => embedding_response(reply),
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(error = %e, "embeddings request failed upstream");
            }
            e.into_response()
        }
    }
}

/// `POST /v1/messages`: Anthropic's Messages API, translated to a chat body at the edge and
/// answered by the same pipeline; replies and errors are told back in Anthropic's terms.
async fn messages(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let mut response = match anthropic_message(&state, &headers, body).await {
        Ok(response) => response,
        Err(e) => anthropic::error::error_response(e),
    };
    // Anthropic's clients read the request id from `request-id`.
    if let Some(id) = headers.get(REQUEST_ID) {
        response.headers_mut().insert("request-id", id.clone());
    }
    response
}

async fn anthropic_message(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    anthropic::check_version(headers)?;
    let admitted = admit(state, headers, body).await?;
    admitted
        .ctx
        .note(|d| d.endpoint = Some(anthropic::ENDPOINT.into()));
    let request = anthropic::translate(&admitted.bytes)?;
    let bytes = serde_json::to_vec(&request.body)
        .map_err(|e| ApiError::invalid_body(format!("Could not encode the request: {e}.")))?;
    let reply = pipeline::handle(&admitted.live, &admitted.ctx, &bytes)
        .await
        .map_err(failed)?;
    Ok(respond(anthropic::reply(reply, &request), admitted.permit))
}

/// A request let in: the live policy, who is asking and what of the cache, its admission
/// permit (held until the answer is sent) and its body.
struct Admitted {
    live: Arc<crate::policy::LiveState>,
    ctx: RequestContext,
    permit: Permit,
    bytes: bytes::Bytes,
}

/// What every API request goes through before its handler: the body-size limit, the request
/// headers (`x-frugal-cache`, `x-frugal-max-tier`, the tenant and its key, the run id), the
/// concurrency limits, and the body read within its deadline.
async fn admit(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Admitted, ApiError> {
    let live = state.live.load_full();
    let limit = live.policy.limits.max_body_bytes;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(actual) = announced.filter(|&n| n > limit) {
        return Err(ApiError::PayloadTooLarge { actual, limit });
    }
    let cache_control = match headers
        .get(HEADER_CACHE)
        .map(|v| v.to_str().ok().and_then(CacheControl::parse))
    {
        None => CacheControl::Default,
        Some(Some(control)) => control,
        Some(None) => {
            let message =
                format!("The `{HEADER_CACHE}` header must be default, bypass or refresh.");
            return Err(ApiError::invalid_param(HEADER_CACHE, message));
        }
    };
    let max_tier = match headers
        .get(HEADER_MAX_TIER)
        .map(|v| v.to_str().ok().and_then(route::parse_tier))
    {
        None => None,
        Some(Some(tier)) => Some(tier),
        Some(None) => {
            let message = format!("The `{HEADER_MAX_TIER}` header must be cheap, mid or strong.");
            return Err(ApiError::invalid_param(HEADER_MAX_TIER, message));
        }
    };
    let claimed = tenant_of(headers, &live.policy)?;
    let tenant = state.tenants.label(&live.policy, &claimed);
    let limits = AdmissionLimits {
        max_concurrent: live.policy.limits.max_concurrent_requests,
        max_concurrent_per_tenant: live.policy.limits.max_concurrent_per_tenant,
    };
    // Tenants past `limits.max_tenants` share the `other` label, and so one per-tenant limit.
    let permit = state.admission.admit(&tenant, limits)?;
    let bytes = read_body(body, limit, live.policy.limits.body_read_timeout).await?;
    let run_id = run_id(
        headers.get(HEADER_RUN_ID).and_then(|v| v.to_str().ok()),
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
    );
    let ctx = RequestContext {
        tenant: tenant.clone(),
        cache_tenant: claimed,
        ledger: state.ledger.clone(),
        budgets: state.budgets.clone(),
        run_id: run_id.clone(),
        runs: state.runs.clone(),
        cache: state.cache.clone(),
        cache_control,
        resilience: state.resilience.clone(),
        max_tier,
        shared: state.shared.clone(),
        prefix_watch: state.prefix_watch.clone(),
        draft: state.decisions.as_ref().map(|_| {
            let request_id = headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            Draft::new(request_id, &tenant, run_id.as_deref())
        }),
        decisions: state.decisions.clone(),
    };
    Ok(Admitted {
        live,
        ctx,
        permit,
        bytes,
    })
}

/// The response for a pipeline reply; a stream keeps its admission permit until it ends.
fn respond(reply: Reply, permit: Permit) -> Response {
    let streaming = matches!(reply.body, ReplyBody::Stream(_));
    let response = reply_response(reply);
    if streaming {
        held_until_sent(response, permit)
    } else {
        response
    }
}

/// Logs a pipeline failure the sidecar or its upstream is to blame for, and passes it on.
fn failed(e: ApiError) -> ApiError {
    if e.status().is_server_error() {
        tracing::warn!(error = %e, "model request failed upstream");
    }
    e
}

/// The tenant a request is billed to. `x-frugal-tenant` names it (1–64 characters of
/// `[A-Za-z0-9_.-]`, default `default`); a tenant with a sidecar key in the policy can only be
/// claimed by presenting that key as `Authorization: Bearer …` (or `x-api-key`, as Anthropic's
/// clients send it), so no tenant can bill another.
fn tenant_of(headers: &HeaderMap, policy: &Policy) -> Result<String, ApiError> {
    let claimed = match headers.get(HEADER_TENANT) {
        None => None,
        Some(value) => {
            let valid = value.to_str().ok().filter(|t| {
                !t.is_empty()
                    && t.len() <= 64
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            });
            Some(valid.ok_or_else(|| ApiError::InvalidRequest {
                message: format!("The `{HEADER_TENANT}` header must be 1-64 characters of letters, digits, `_`, `.` or `-`."),
                param: Some(HEADER_TENANT.to_string()),
                code: "invalid_tenant",
            })?)
        }
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let keyed = [bearer, api_key]
        .into_iter()
        .flatten()
        .find_map(|key| policy.tenant_keys.get(&key_digest(key.trim())));
    let forbidden = |message: String| ApiError::Http {
        status: StatusCode::FORBIDDEN,
        message,
    };
    match (keyed, claimed) {
        (Some(owner), Some(claimed)) if owner != claimed => Err(forbidden(format!(
            "This key belongs to tenant `{owner}`, not `{claimed}`."
        ))),
        (Some(owner), _) => Ok(owner.clone()),
        (None, claimed) => {
            let tenant = claimed.unwrap_or(DEFAULT_TENANT);
            if policy.is_keyed_tenant(tenant) {
                return Err(forbidden(format!(
                    "Tenant `{tenant}` requires its key: send it as `Authorization: Bearer <key>` or `x-api-key: <key>`."
                )));
            }
            Ok(tenant.to_string())
        }
    }
}

/// The request body, at most `limit` bytes, arriving within `deadline` (a client that sends
/// it slowly gets a 408 instead of holding its place for the whole request timeout).
async fn read_body(body: Body, limit: u64, deadline: Duration) -> Result<bytes::Bytes, ApiError> {
    let read = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match tokio::time::timeout(deadline, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(ApiError::PayloadTooLarge {
            actual: limit + 1,
            limit,
        }),
        Ok(Err(e)) => Err(ApiError::invalid_body(format!(
            "Could not read the request body: {e}."
        ))),
        Err(_) => Err(ApiError::Http {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "The request body did not arrive within {} s.",
                deadline.as_secs_f64()
            ),
        }),
    }
}

/// Keeps the request's admission permit until its body has been sent (a stream counts for
/// as long as it runs).
fn held_until_sent(response: Response, permit: Permit) -> Response {
    response.map(|body| {
        let frames = body.into_data_stream().map(move |frame| {
            let _held = &permit;
            frame
        });
        Body::from_stream(frames)
    })
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util_limit::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// axum re-exports the body limit error only through its source chain; name it once here.
mod http_body_util_limit {
    pub use http_body_util::LengthLimitError;
}

fn reply_response(reply: Reply) -> Response {
    let mut response = match reply.body {
        ReplyBody::Json(body) => json_response(StatusCode::OK, body),
        ReplyBody::Stream(frames) => {
            let body = Body::from_stream(frames.map(Ok::<_, std::convert::Infallible>));
            let mut response = Response::new(body);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    };
    let headers = response.headers_mut();
    let mut values = vec![
        (HEADER_MODEL, reply.meta.model),
        (HEADER_PROVIDER, reply.meta.provider),
    ];
    if let Some(account) = &reply.meta.account {
        values.push(("x-frugal-cost-usd", account.actual.to_string()));
        values.push(("x-frugal-baseline-usd", account.baseline.to_string()));
        values.push(("x-frugal-saved-usd", account.savings.total().to_string()));
        let cached: u64 = account.attempts.iter().map(|a| a.tokens.cached_input).sum();
        if cached > 0 {
            values.push(("x-frugal-prompt-cached-tokens", cached.to_string()));
        }
    }
    if let Some(cause) = reply.meta.prefix_break {
        values.push(("x-frugal-prompt-prefix-break", cause.as_str().to_string()));
    }
    values.push((HEADER_CACHE, reply.meta.cache.as_str().to_string()));
    if let Some(similarity) = reply.meta.cache_similarity {
        values.push(("x-frugal-cache-similarity", format!("{similarity:.4}")));
    }
    if let Some(guard) = reply.meta.cache_guard {
        values.push(("x-frugal-cache-guard", guard.as_str().to_string()));
    }
    if let Some(removed) = reply.meta.trimmed_tokens {
        values.push(("x-frugal-trimmed-tokens", removed.to_string()));
    }
    if let Some(tier) = reply.meta.tier {
        values.push(("x-frugal-tier", tier.as_str().to_string()));
    }
    if !reply.meta.escalations.is_empty() {
        values.push((
            "x-frugal-escalations",
            escalation::header_value(&reply.meta.escalations),
        ));
    }
    if let Some(score) = reply.meta.complexity {
        values.push(("x-frugal-complexity", format!("{score:.3}")));
    }
    if let Some(finding) = &reply.meta.loop_flag {
        values.push(("x-frugal-loop-detected", finding.clone()));
    }
    if let Some(warning) = reply.meta.budget_warnings.last() {
        values.push(("x-frugal-budget-warning", warning.to_string()));
    }
    insert_headers(headers, values);
    response
}

/// Sets the `x-frugal-*` headers (a value that is not a valid header value is left out).
fn insert_headers(headers: &mut HeaderMap, values: Vec<(&'static str, String)>) {
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

fn embedding_response(reply: EmbeddingReply) -> Response {
    let account = &reply.account;
    let mut values = vec![
        (HEADER_MODEL, reply.model),
        (HEADER_PROVIDER, reply.provider),
        (HEADER_CACHE, reply.lookup.as_str().to_string()),
        (
            HEADER_CACHED_INPUTS,
            format!("{}/{}", reply.cached, reply.total),
        ),
        ("x-frugal-cost-usd", account.actual.to_string()),
        ("x-frugal-baseline-usd", account.baseline.to_string()),
        ("x-frugal-saved-usd", account.savings.total().to_string()),
    ];
    if let Some(warning) = &reply.budget_warning {
        values.push(("x-frugal-budget-warning", warning.to_string()));
    }
    let mut response = json_response(StatusCode::OK, reply.body);
    insert_headers(response.headers_mut(), values);
    response
}

async fn list_models(State(state): State<AppState>) -> Response {
    let live = state.live.load();
    let data: Vec<_> = live
        .policy
        .models
        .keys()
        .map(|alias| json!({ "id": alias, "object": "model", "created": 0, "owned_by": "frugal" }))
        .collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let live = state.live.load();
    let draining = state.draining.load(Ordering::Relaxed);
    let warming = state.warming.load(Ordering::Relaxed);
    let body = json!({
        "status": if draining { "draining" } else if warming { "warming" } else { "ready" },
        "policy_hash": live.policy.hash,
        "policy_revision": live.revision,
        "models": live.policy.models.len(),
    });
    let status = if draining || warming {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    state.budgets.refresh_gauges(&state.live.load().policy);
    let mut text = state.metrics.render();
    text.push_str(&UsdCounters::global().render());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn reload_policy(State(state): State<AppState>) -> Response {
    let Some(reloader) = &state.reloader else {
        let message = "This sidecar was started without a policy file; there is nothing to reload.";
        return ApiError::NotFound(message.into()).into_response();
    };
    let outcome = reloader.check(true).await;
    let status = match outcome {
        ReloadOutcome::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    (status, Json(outcome)).into_response()
}

/// Query of `GET /v1/frugal/savings`.
#[derive(Debug, serde::Deserialize)]
struct SavingsQuery {
    /// A window like `15m`, `1h`, `24h`; since start when absent.
    window: Option<String>,
}

async fn savings(State(state): State<AppState>, Query(query): Query<SavingsQuery>) -> Response {
    let window = match query.window.as_deref().map(humantime::parse_duration) {
        None => None,
        Some(Ok(window)) if !window.is_zero() && window <= MAX_WINDOW => Some(window),
        Some(_) => {
            let message = "`window` must be a duration like 15m, 1h or 24h (at most 24h).";
            return ApiError::invalid_param("window", message).into_response();
        }
    };
    Json(state.ledger.report(window)).into_response()
}

/// Body of `POST /v1/frugal/outcome`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeReport {
    run_id: String,
    resolved: bool,
}

async fn report_outcome(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let report: OutcomeReport = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(e) => {
            let message = format!("Expected {{\"run_id\": string, \"resolved\": boolean}}: {e}.");
            return ApiError::invalid_body(message).into_response();
        }
    };
    match state.runs.report_outcome(&report.run_id, report.resolved) {
        Ok(summary) => {
            state.ledger.record_outcome(&summary);
            Json(summary).into_response()
        }
        Err(OutcomeError::Unknown) => {
            let message = format!(
                "No request of run `{}` has been seen (or it expired).",
                report.run_id
            );
            ApiError::NotFound(message).into_response()
        }
        Err(OutcomeError::AlreadyReported) => ApiError::Http {
            status: StatusCode::CONFLICT,
            message: format!(
                "The outcome of run `{}` was already reported.",
                report.run_id
            ),
        }
        .into_response(),
    }
}

async fn not_found(request: Request) -> Response {
    let message = format!(
        "Unknown route: {} {}.",
        request.method(),
        request.uri().path()
    );
    let error = ApiError::NotFound(message);
    // What an Anthropic client may look for beside messages (`count_tokens`, batches).
    if request.uri().path().starts_with(MESSAGES_ROUTE) {
        return anthropic::error::error_response(error);
    }
    error.into_response()
}

/// Rewrites framework-level errors (timeouts, wrong methods, …) that carry no JSON body into
/// OpenAI-shaped ones (Anthropic-shaped on `/v1/messages`), so a client never has to parse two
/// error formats.
async fn openai_shaped_errors(request: Request, next: Next) -> Response {
    let anthropic = request.uri().path() == MESSAGES_ROUTE;
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let message = match status {
        StatusCode::REQUEST_TIMEOUT => "The request took too long and was cancelled.".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "This HTTP method is not allowed on this route.".to_string()
        }
        _ => status
            .canonical_reason()
            .unwrap_or("HTTP error")
            .to_string(),
    };
    let mut shaped = if anthropic {
        anthropic::error::framework_error(status, &message)
    } else {
        let body = ApiError::Http { status, message }.body().to_string();
        json_response(status, body.into())
    };
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    shaped
}

/// Counts requests by matched route and status, and times them to the response head.
async fn count_requests(request: Request, next: Next) -> Response {
    let endpoint = endpoint_label(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    // The scrape that reads the gauge is not a request being served.
    let _in_flight = (endpoint != "metrics").then(InFlight::start);
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::record_request(endpoint, response.status().as_u16(), started.elapsed());
    response
}

/// Maps a matched route to a fixed label, keeping the label set closed.
fn endpoint_label(matched: Option<&str>) -> &'static str {
    match matched {
        Some("/v1/chat/completions") => "chat_completions",
        Some("/v1/embeddings") => "embeddings",
        Some(MESSAGES_ROUTE) => anthropic::ENDPOINT,
        Some("/v1/models") => "models",
        Some("/healthz") => "healthz",
        Some("/readyz") => "readyz",
        Some("/metrics") => "metrics",
        Some("/v1/frugal/reload") => "reload",
        Some("/v1/frugal/savings") => "savings",
        Some("/v1/frugal/outcome") => "outcome",
        _ => "other",
    }
}
