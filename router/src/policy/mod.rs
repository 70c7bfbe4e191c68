//! Policy files: YAML as written (`raw`), where each key is (`locate`), the validated form the
//! request path uses (`compile`), the live, swappable state (`live`), hot reload (`reload`),
//! and the line `frugal policy check` prints (`summary`).

pub mod compile;
pub mod decisions;
pub mod embeddings;
pub mod live;
pub mod locate;
pub mod prompt_cache;
pub mod raw;
pub mod reload;
pub mod route;
pub mod shared;
pub mod summary;
pub mod trim;

pub use compile::{
    load, parse, Baseline, BudgetPolicy, BudgetWindow, CacheMode, CachePolicy,
    EmbeddingCachePolicy, LoopAction, ModelRoute, Policy, PolicyError, PolicyErrors, Price,
    ProviderConfig, ProviderKind, RunPolicy, SemanticPolicy, TenantOverrides, Timeouts,
};
pub use decisions::DecisionLogPolicy;
pub use live::{Live, LiveState};
pub use prompt_cache::PromptCachePolicy;
pub use reload::{ReloadOutcome, Reloader};
pub use route::{BreakerPolicy, CheckPolicy, RetryPolicy, RouteMode, RoutePolicy, StreamCascade};
pub use shared::SharedPolicy;
pub use trim::{TrimMode, TrimPolicy};
