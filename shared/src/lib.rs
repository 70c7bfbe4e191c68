//! frugal's shared tier on Redis (or Valkey; plain, no modules), so that every replica of a
//! deployment shares what one learned:
//!
//! * [`cache`]: answers by exact key, with a TTL;
//! * [`stream`]: one Redis stream of semantic entries (question vector and the exact key of
//!   its answer) that every replica reads into its own index, and from which a new replica warms;
//! * [`counters`]: tenant budget and run spend, reserved and settled atomically (Lua), keyed by
//!   window so windows roll over by key, each hold leased so a lost one cannot hold room for
//!   long, and a once-per-window flag for soft warnings.
//!
//! Every operation is bounded by the configured timeout and returns a [`SharedError`] rather
//! than waiting on a slow or absent Redis: the caller skips the shared tier for that operation.
//! The connection is made lazily and re-made with backoff ([`redis::aio::ConnectionManager`]).
//! This crate keeps no metrics; the router counts the errors it returns.

pub mod cache;
pub mod client;
pub mod counters;
pub mod entry;
pub mod keys;
pub mod stream;

pub use client::{SharedClient, SharedConfig, SharedError};
pub use counters::{Amounts, Cap, Caps, Counter, HoldKey, Lifetimes, Reserve};
pub use entry::SemanticEntry;
pub use stream::StreamBatch;
