//! One policy over the traffic: the sidecar's own router (the same pipeline code `serve` runs)
//! called in-process, its upstreams answered in-process by the labelled simulation, and each
//! request's decision record read back. No sockets, no Redis, one request at a time, so two
//! runs of the same traffic and policy decide the same.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt as _;

use super::tally::{Served, Tally};
use super::traffic::{Item, Traffic};
use crate::admission::Admission;
use crate::decisions::{DecisionLog, DecisionRecord};
use crate::http::{app, AppState, Routes, HEADER_TENANT};
use crate::ledger::Ledger;
use crate::metrics;
use crate::mock::{InProcess, LabelledModels};
use crate::policy::{LiveState, Policy};
use crate::stage::budget::Budgets;
use crate::stage::cache;
use crate::stage::run::Runs;
use crate::tenants::TenantLabels;
use crate::upstream::{Resilience, Simulate, Upstreams};

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// The model asked for by requests that name none (default: the top of the ladder).
    pub model: Option<String>,
    /// Drop tenant budgets and run caps, to compare the levers alone.
    pub without_caps: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// How long to wait for a request's decision record once its answer is back.
const RECORD_WAIT: Duration = Duration::from_secs(2);

/// Replays `traffic` through the policy at `path`; `extra_labels` are labels from a separate
/// file (for traffic of request bodies).
pub async fn replay(
    path: &Path,
    traffic: &Traffic,
    extra_labels: &[frugal_classifier::data::LabelledRow],
    options: &ReplayOptions,
) -> anyhow::Result<Tally> {
    let mut policy = crate::policy::load(path)
        .map_err(|errors| anyhow::anyhow!("{} is not a valid policy:\n{errors}", path.display()))?;
    for_replay(&mut policy, options.without_caps);
    let model = match &options.model {
        Some(model) if policy.models.contains_key(model) => model.clone(),
        Some(model) => anyhow::bail!("--model {model} is not a model of {}", path.display()),
        None => default_model(&policy),
    };
    let rows: Vec<_> = traffic.labels.iter().chain(extra_labels).cloned().collect();
    let labels = if rows.is_empty() {
        None
    } else {
        let (weak, strong) = sides(&policy);
        Some(Arc::new(
            LabelledModels::new(rows, &weak, &strong).map_err(anyhow::Error::msg)?,
        ))
    };
    let (router, records, cache) = sidecar(policy, labels.clone())?;
    let mut tally = Tally::new(path, &model);
    let bar = super::super::progress::progress_bar(
        options.progress,
        traffic.items.len(),
        &format!("replaying through {}", path.display()),
    );
    let mut first_answer: Option<String> = None;
    for item in &traffic.items {
        let served = send(&router, &records, item, &model).await?;
        tally.add(item, &served, labels.as_deref(), &mut first_answer);
        settle_embeddings(&cache).await;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(tally)
}

/// Waits (up to a few seconds) until every question stored without its embedding has it, so the
/// next request sees the index a live sidecar would after a pause: replayed traffic arrives back
/// to back, and its figures should not depend on how fast this machine embeds.
async fn settle_embeddings(cache: &cache::ResponseCache) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while cache.embeddings_pending() > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// What a replay leaves out of the policy: Redis, the policy's own decision log, the budget
/// file, tenant keys (requests name their tenant), and with `without_caps` budgets and caps.
fn for_replay(policy: &mut Policy, without_caps: bool) {
    policy.shared = None;
    policy.decision_log = None;
    policy.budget_state_file = None;
    policy.tenant_keys.clear();
    if without_caps {
        policy.budgets.clear();
        policy.runs.max_cost = None;
        policy.runs.max_tokens = None;
    }
}

/// The model a request names when the traffic does not: the top rung of the ladder (what an
/// agent asks for, and routing may answer cheaper), else the default model.
fn default_model(policy: &Policy) -> String {
    policy
        .route
        .ladder
        .last()
        .cloned()
        .unwrap_or_else(|| policy.default_model.clone())
}

/// Upstream model names answering as the weak model (the ladder's first rung, else the
/// cheapest model) and as the strong one (every other model). Labels know two models only, so
/// a middle rung answers as the strong model.
fn sides(policy: &Policy) -> (Vec<String>, Vec<String>) {
    let price = |m: &crate::policy::ModelRoute| m.price.input_per_mtok + m.price.output_per_mtok;
    let cheapest = policy
        .route
        .ladder
        .first()
        .and_then(|alias| policy.models.get(alias))
        .or_else(|| {
            policy
                .models
                .values()
                .min_by(|a, b| price(a).total_cmp(&price(b)))
        });
    let weak: Vec<String> = cheapest.map(|m| m.upstream.clone()).into_iter().collect();
    let mut strong: Vec<String> = policy
        .models
        .values()
        .map(|m| m.upstream.clone())
        .filter(|m| !weak.contains(m))
        .collect();
    strong.sort();
    strong.dedup();
    (weak, strong)
}

/// The sidecar's router over `policy`, its upstreams simulated, its decision records, and its
/// response cache.
fn sidecar(
    policy: Policy,
    labels: Option<Arc<LabelledModels>>,
) -> anyhow::Result<(
    axum::Router,
    Receiver<DecisionRecord>,
    Arc<cache::ResponseCache>,
)> {
    let request_timeout = policy.limits.request_timeout;
    let simulation: Arc<dyn Simulate> = Arc::new(InProcess::new(labels));
    let upstreams = Upstreams::simulated(&policy, &simulation)?;
    let mut live = LiveState::new(policy, 1).context("cannot load the policy's models")?;
    live.upstreams = upstreams;
    let cache = Arc::new(
        cache::response_cache(&live.policy)
            .context("the semantic cache's prefilter needs its static vectors")?,
    );
    let embeddings = Arc::new(crate::embeddings::embedding_cache(
        &live.policy.cache.embeddings,
    ));
    let (log, records) = DecisionLog::channel(false, 1024);
    let state = AppState {
        live: Arc::new(ArcSwap::from_pointee(live)),
        metrics: metrics::install(),
        draining: Arc::new(AtomicBool::new(false)),
        reloader: None,
        ledger: Arc::new(Ledger::new()),
        budgets: Arc::new(Budgets::default()),
        runs: Arc::new(Runs::default()),
        cache: cache.clone(),
        resilience: Arc::new(Resilience::new()),
        admission: Arc::new(Admission::default()),
        tenants: Arc::new(TenantLabels::default()),
        shared: None,
        warming: Arc::new(AtomicBool::new(false)),
        decisions: Some(Arc::new(log)),
        prefix_watch: Arc::default(),
        embeddings,
    };
    Ok((app(state, request_timeout, Routes::All), records, cache))
}

/// Sends one request and reads its answer and decision record.
async fn send(
    router: &axum::Router,
    records: &Receiver<DecisionRecord>,
    item: &Item,
    model: &str,
) -> anyhow::Result<Served> {
    let mut body = item.body.clone();
    if !item.has_model {
        body.insert("model".into(), Value::String(model.to_string()));
    }
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header(HEADER_TENANT, &item.tenant)
        .body(Body::from(serde_json::to_vec(&body)?))?;
    let response = router
        .clone()
        .oneshot(request)
        .await
        .context("the in-process sidecar failed")?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .context("cannot read an in-process answer")?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_string);
    let error_code = answer["error"]["code"].as_str().map(str::to_string);
    let record = if status == 200 {
        records.recv_timeout(RECORD_WAIT).ok()
    } else {
        records.try_recv().ok()
    };
    Ok(Served {
        status,
        text,
        error_code,
        record,
    })
}
