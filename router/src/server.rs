//! Running the sidecar: bind, serve, and drain in-flight requests on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accept::{self, ConnectionLimits};
use crate::admission::Admission;
use crate::decisions::DecisionLog;
use crate::embeddings;
use crate::http::{app, AppState, Routes};
use crate::ledger::Ledger;
use crate::metrics;
use crate::policy::{Live, LiveState, Policy, Reloader};
use crate::shared::{follow, SharedTier};
use crate::stage::budget::Budgets;
use crate::stage::cache::{self, ResponseCache};
use crate::stage::run::Runs;
use crate::tenants::TenantLabels;
use crate::upstream::Resilience;

/// The file a served policy was read from, watched for changes.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// The policy file.
    pub path: PathBuf,
    /// How often to re-check it besides file events.
    pub poll: Duration,
}

/// A sidecar serving in the background (used by `frugal serve` and by tests).
pub struct RunningServer {
    /// The API's bound address (every route when there is no admin listener).
    pub addr: SocketAddr,
    /// The admin listener's bound address (metrics, health, reload, savings), if separate.
    pub admin_addr: Option<SocketAddr>,
    /// The live state, swappable for reloads.
    pub live: Live,
    /// Tenant budget state.
    pub budgets: Arc<Budgets>,
    /// The response cache (one for the server's life, across reloads).
    pub cache: Arc<ResponseCache>,
    budget_file: Option<PathBuf>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    /// Policy watcher and budget persister.
    background: Vec<JoinHandle<()>>,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

/// How often changed budget spend is written to the policy's `budget_state_file`.
const BUDGET_SAVE_INTERVAL: Duration = Duration::from_secs(1);

impl RunningServer {
    /// Starts serving every route of `policy` on `listener`; with a `source`, the file is
    /// watched and reloaded.
    pub fn start(
        policy: Policy,
        listener: TcpListener,
        source: Option<PolicySource>,
    ) -> anyhow::Result<Self> {
        Self::start_with_admin(policy, listener, None, source)
    }

    /// Like [`RunningServer::start`], but with an `admin` listener the admin routes (metrics,
    /// health, readiness, reload, savings) are served there and only the API on `listener`.
    /// On shutdown the API stops accepting at once and drains; the admin listener keeps
    /// answering (`/readyz` 503, `/metrics`) until the API has drained, all within the grace
    /// period.
    pub fn start_with_admin(
        policy: Policy,
        listener: TcpListener,
        admin: Option<TcpListener>,
        source: Option<PolicySource>,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
        let request_timeout = policy.limits.request_timeout;
        let grace = policy.shutdown_grace;
        let limits = ConnectionLimits {
            max_connections: policy.limits.max_connections,
            header_read_timeout: policy.limits.header_read_timeout,
        };
        let budget_file = policy.budget_state_file.clone();
        let budgets = Arc::new(match &budget_file {
            Some(path) => {
                let budgets = Budgets::load(path).map_err(|e| {
                    anyhow::anyhow!("cannot read budget_state_file {}: {e}", path.display())
                })?;
                budgets.save_now(path).map_err(|e| {
                    anyhow::anyhow!("cannot write budget_state_file {}: {e}", path.display())
                })?;
                budgets
            }
            None => Budgets::default(),
        });
        // The recorder must exist before the first metric, or that metric is lost.
        let metrics_handle = metrics::install();
        metrics::register_shadow_series();
        metrics::register_admission_series();
        metrics::register_tenant_overflow();
        metrics::register_decision_log();
        let state = LiveState::new(policy, 1)?;
        metrics::record_policy(&state.policy.hash, state.revision);
        for client in state.upstreams.iter().filter(|c| !c.has_credentials()) {
            tracing::warn!(provider = %client.name(), "the API key environment variable named by the policy is not set");
        }
        let live: Live = Arc::new(ArcSwap::from_pointee(state));
        let draining = Arc::new(AtomicBool::new(false));
        let reloader = source
            .as_ref()
            .map(|s| Arc::new(Reloader::new(s.path.clone(), live.clone())));
        let mut background = Vec::new();
        if let Some((reloader, poll)) = reloader.clone().zip(source.map(|s| s.poll)) {
            if !poll.is_zero() {
                background.push(tokio::spawn(reloader.watch(poll)));
            }
        }
        if let Some(path) = &budget_file {
            let persister = budgets.clone().persist(path.clone(), BUDGET_SAVE_INTERVAL);
            background.push(tokio::spawn(persister));
        }
        let cache = Arc::new(cache::response_cache(&live.load().policy).map_err(|e| {
            anyhow::anyhow!(
                "the semantic cache's prefilter needs its static vectors \
                     (cache.semantic_prefilter: 0 turns it off): {e}"
            )
        })?);
        let shared = match &live.load().policy.shared {
            Some(settings) => Some(
                SharedTier::connect(settings, live.load().policy.cache.ttl)
                    .map_err(|e| anyhow::anyhow!("cannot start the shared tier: {e}"))?,
            ),
            None => None,
        };
        let warming = Arc::new(AtomicBool::new(shared.is_some()));
        let decisions = match &live.load().policy.decision_log {
            Some(settings) => Some(Arc::new(DecisionLog::start(settings).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open decision_log.path {}: {e}",
                    settings.path.display()
                )
            })?)),
            None => None,
        };
        if let Some(tier) = &shared {
            background.push(tokio::spawn(follow::run(
                tier.clone(),
                cache.clone(),
                warming.clone(),
            )));
        }
        let app_state = AppState {
            live: live.clone(),
            metrics: metrics_handle,
            draining: draining.clone(),
            reloader,
            ledger: Arc::new(Ledger::new()),
            budgets: budgets.clone(),
            runs: Arc::new(Runs::default()),
            cache: cache.clone(),
            resilience: Arc::new(Resilience::new()),
            admission: Arc::new(Admission::default()),
            tenants: Arc::new(TenantLabels::default()),
            shared: shared.clone(),
            warming: warming.clone(),
            decisions,
            prefix_watch: Arc::default(),
            embeddings: Arc::new(embeddings::embedding_cache(
                &live.load().policy.cache.embeddings,
            )),
        };
        let (stop, stop_rx) = watch::channel(false);
        let serve = |listener: TcpListener, routes: Routes, until: BoxFuture<'static, ()>| {
            let router = app(app_state.clone(), request_timeout, routes);
            accept::serve(listener, router, limits, until)
        };
        // The API stops accepting at once and flags the sidecar as draining; an admin listener
        // keeps answering (`/readyz` 503, `/metrics`) until the API has drained.
        let api_stopped = {
            let mut stop_serving = stop_rx.clone();
            let draining = draining.clone();
            async move {
                let _ = stop_serving.wait_for(|stop| *stop).await;
                draining.store(true, Ordering::Relaxed);
            }
        };
        let serving: BoxFuture<'static, ()> = match admin {
            None => Box::pin(serve(listener, Routes::All, Box::pin(api_stopped))),
            Some(admin) => {
                let (api_drained, api_drained_rx) = tokio::sync::oneshot::channel::<()>();
                let api = serve(listener, Routes::Api, Box::pin(api_stopped));
                let admin = serve(
                    admin,
                    Routes::Admin,
                    Box::pin(async move {
                        let _ = api_drained_rx.await;
                    }),
                );
                Box::pin(async move {
                    let api = async move {
                        api.await;
                        let _ = api_drained.send(());
                    };
                    tokio::join!(api, admin);
                })
            }
        };
        let mut stop_waiting = stop_rx;
        let task = tokio::spawn(async move {
            let deadline = async move {
                let _ = stop_waiting.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                () = serving => Ok(()),
                () = deadline => {
                    tracing::warn!(grace_secs = grace.as_secs_f64(), "grace period over; dropping unfinished requests");
                    Ok(())
                }
            }
        });
        Ok(Self {
            addr,
            admin_addr,
            live,
            budgets,
            cache,
            budget_file,
            stop,
            task,
            background,
        })
    }

    /// Stops accepting, lets in-flight requests finish within the policy's grace period.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        (&mut self.task).await??;
        for task in self.background.drain(..) {
            task.abort();
        }
        if let Some(path) = &self.budget_file {
            self.budgets.save(path)?;
        }
        Ok(())
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutdown signal received; draining in-flight requests");
        self.shutdown().await
    }
}
