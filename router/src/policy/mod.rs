//! Policy files: YAML as written (`raw`), where each key is (`locate`), the validated form the
//! request path uses (`compile`), and the live, swappable state (`live`).

pub mod compile;
pub mod live;
pub mod locate;
pub mod raw;

pub use compile::{
    load, parse, ModelRoute, Policy, PolicyError, PolicyErrors, Price, ProviderConfig, Timeouts,
};
pub use live::{Live, LiveState};
