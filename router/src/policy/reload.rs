//! Hot reload: the policy file is watched (file events plus a poll fallback, which also covers
//! a Kubernetes ConfigMap's `..data` symlink swap) and re-checked on demand. A valid new policy
//! replaces the live state atomically; an invalid one is rejected and the old one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::{mpsc, Mutex};

use super::compile::{self, text_hash, Policy, PolicyError};
use super::live::{Live, LiveState};
use crate::metrics;

/// What one reload check did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The file has not changed since the live (or last rejected) version.
    Unchanged {
        /// Live revision.
        revision: u64,
        /// Live policy hash.
        hash: String,
    },
    /// A new policy is live.
    Applied {
        /// New revision.
        revision: u64,
        /// New policy hash.
        hash: String,
    },
    /// The file is invalid (or unreadable); the old policy keeps serving.
    Rejected {
        /// Revision still serving.
        revision: u64,
        /// Hash of the policy still serving.
        hash: String,
        /// Every error found in the new file.
        errors: Vec<String>,
    },
}

impl ReloadOutcome {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unchanged { .. } => "unchanged",
            Self::Applied { .. } => "applied",
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// Re-reads the policy file and swaps it in when it changed and is valid.
pub struct Reloader {
    path: PathBuf,
    live: Live,
    /// Hash of the last text looked at (applied or rejected), so an unchanged file is skipped.
    last_seen: Mutex<String>,
}

impl Reloader {
    /// A reloader for `path`, whose current contents are already live.
    pub fn new(path: PathBuf, live: Live) -> Self {
        let hash = live.load().policy.hash.clone();
        Self {
            path,
            live,
            last_seen: Mutex::new(hash),
        }
    }

    /// Checks the file once. `force` re-reports a rejected file that has not changed since.
    pub async fn check(&self, force: bool) -> ReloadOutcome {
        let mut last_seen = self.last_seen.lock().await;
        let current = self.live.load_full();
        let (revision, live_hash) = (current.revision, current.policy.hash.clone());
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(e) => {
                let error = format!("{}: cannot read: {e}", self.path.display());
                return self.reject(revision, live_hash, vec![error]);
            }
        };
        let hash = text_hash(&text);
        if hash == live_hash || (hash == *last_seen && !force) {
            return ReloadOutcome::Unchanged {
                revision,
                hash: live_hash,
            };
        }
        *last_seen = hash;
        let policy = match compile::parse(&text, &self.path.display().to_string()) {
            Ok(policy) => policy,
            Err(errors) => {
                let errors = errors.errors.iter().map(PolicyError::to_string).collect();
                return self.reject(revision, live_hash, errors);
            }
        };
        let fixed = restart_only_changes(&current.policy, &policy);
        if !fixed.is_empty() {
            tracing::warn!(
                settings = %fixed.join(", "),
                "these settings are read at start: the running values stay until a restart"
            );
        }
        let next = revision + 1;
        match LiveState::new(policy, next) {
            Ok(state) => {
                let hash = state.policy.hash.clone();
                self.live.store(Arc::new(state));
                metrics::record_policy_swap(&live_hash, revision, &hash, next);
                metrics::record_reload("applied");
                tracing::info!(revision = next, %hash, "policy reloaded");
                ReloadOutcome::Applied {
                    revision: next,
                    hash,
                }
            }
            Err(e) => self.reject(revision, live_hash, vec![e.to_string()]),
        }
    }

    fn reject(&self, revision: u64, hash: String, errors: Vec<String>) -> ReloadOutcome {
        metrics::record_reload("rejected");
        tracing::error!(path = %self.path.display(), errors = %errors.join("; "), "policy reload rejected; the previous policy keeps serving");
        ReloadOutcome::Rejected {
            revision,
            hash,
            errors,
        }
    }

    /// Watches the file's folder for events and polls every `poll`; runs until dropped.
    pub async fn watch(self: Arc<Self>, poll: Duration) {
        let (tx, mut events) = mpsc::channel::<()>(16);
        // Watch the folder, not the file: editors and ConfigMaps replace the file (or a symlink
        // above it) rather than writing it in place.
        let watcher = start_watcher(&self.path, tx);
        if let Err(e) = &watcher {
            tracing::warn!(error = %e, "file events unavailable; relying on polling");
        }
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                Some(()) = events.recv() => {
                    // Let a burst of events (write, rename, chmod) settle first.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while events.try_recv().is_ok() {}
                }
            }
            self.check(false).await;
        }
    }
}

fn start_watcher(path: &Path, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(folder, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// The settings a reload changed that the server reads only at start (the addresses it listens
/// on, its drain time and request deadline, where budget spend is saved).
fn restart_only_changes(old: &Policy, new: &Policy) -> Vec<&'static str> {
    [
        ("listen", old.listen != new.listen),
        ("admin_listen", old.admin_listen != new.admin_listen),
        ("shutdown_grace", old.shutdown_grace != new.shutdown_grace),
        (
            "limits.request_timeout",
            old.limits.request_timeout != new.limits.request_timeout,
        ),
        (
            "limits.max_connections",
            old.limits.max_connections != new.limits.max_connections,
        ),
        (
            "limits.header_read_timeout",
            old.limits.header_read_timeout != new.limits.header_read_timeout,
        ),
        (
            "budget_state_file",
            old.budget_state_file != new.budget_state_file,
        ),
        ("shared", old.shared != new.shared),
        ("decision_log", old.decision_log != new.decision_log),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

#[cfg(test)]
mod restart_tests {
    use super::*;

    #[test]
    fn settings_read_at_start_are_named_when_a_reload_changes_them() {
        let base = "providers: { p: { base_url: 'http://127.0.0.1:1/v1' } }\n\
                    models: { m: { provider: p, price: { input_per_mtok: 1, output_per_mtok: 1 } } }\n";
        let old = compile::parse(base, "old.yaml").unwrap();
        let same = compile::parse(&format!("{base}cache: {{ mode: on }}\n"), "new.yaml").unwrap();
        assert!(restart_only_changes(&old, &same).is_empty());
        let moved = compile::parse(
            &format!(
                "{base}listen: 127.0.0.1:9999\nadmin_listen: 127.0.0.1:9998\nshutdown_grace: 3s\n"
            ),
            "new.yaml",
        )
        .unwrap();
        assert_eq!(
            restart_only_changes(&old, &moved),
            vec!["listen", "admin_listen", "shutdown_grace"]
        );
    }
}
