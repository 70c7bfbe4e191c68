//! The decision log: one JSON line per answered request (opt-in with `decision_log:` in the
//! policy), saying what every lever decided and what it cost, so a user can replay, audit and
//! tune on their own traffic. Prompts and answers are written only with `log_prompts: true`.
//! The format is versioned ([`record::VERSION`]) and documented in docs/decision-log.md.
//!
//! The pipeline notes its decisions in the request's [`Draft`] as it makes them; the one
//! settle path ([`crate::stage::settle`]) finishes the record with the account and hands it to
//! the [`DecisionLog`], whose writer thread appends and rotates the file. A full queue drops
//! the record (counted), never slowing a request.

pub mod record;
pub mod writer;

pub use record::{DecisionRecord, Draft};
pub use writer::{DecisionLog, PendingRecord};
