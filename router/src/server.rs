//! Running the sidecar: bind, serve, and drain in-flight requests on shutdown.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{app, AppState};
use crate::metrics;
use crate::policy::{Live, LiveState, Policy};

/// A sidecar serving in the background (used by `frugal serve` and by tests).
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The live state, swappable for reloads.
    pub live: Live,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Starts serving `policy` on `listener`.
    pub fn start(policy: Policy, listener: TcpListener) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let request_timeout = policy.limits.request_timeout;
        let grace = policy.shutdown_grace;
        let state = LiveState::new(policy, 1)?;
        metrics::record_policy(&state.policy.hash, state.revision);
        for (name, client) in state
            .policy
            .providers
            .keys()
            .filter_map(|n| state.upstreams.get(n).map(|c| (n, c)))
        {
            if !client.has_credentials() {
                tracing::warn!(provider = %name, "the API key environment variable named by the policy is not set");
            }
        }
        let live: Live = Arc::new(ArcSwap::from_pointee(state));
        let draining = Arc::new(AtomicBool::new(false));
        let app_state = AppState {
            live: live.clone(),
            metrics: metrics::install(),
            draining: draining.clone(),
        };
        let router = app(app_state, request_timeout);
        let (stop, stop_rx) = watch::channel(false);
        let mut stop_serving = stop_rx.clone();
        let mut stop_waiting = stop_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stop_serving.wait_for(|stop| *stop).await;
                draining.store(true, Ordering::Relaxed);
            });
            let deadline = async move {
                let _ = stop_waiting.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                result = serve.into_future() => result,
                () = deadline => {
                    tracing::warn!(grace_secs = grace.as_secs_f64(), "grace period over; dropping unfinished requests");
                    Ok(())
                }
            }
        });
        Ok(Self {
            addr,
            live,
            stop,
            task,
        })
    }

    /// Stops accepting, lets in-flight requests finish within the policy's grace period.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await??;
        Ok(())
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutdown signal received; draining in-flight requests");
        self.shutdown().await
    }
}
