//! The pipeline's stages, one job each, called in order by [`crate::pipeline::handle`].

pub mod account;
pub mod budget;
pub mod cache;
pub mod call;
pub mod classify;
pub mod confidence;
pub mod embed;
pub mod escalation;
pub mod lookup;
pub mod prompt_prefix;
pub mod relay;
pub mod route;
pub mod run;
pub mod semantic;
pub mod settle;
pub mod shadow;
pub mod trim;
