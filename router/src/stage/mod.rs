//! The pipeline's stages, one job each, called in order by [`crate::pipeline::handle`].

pub mod account;
pub mod budget;
pub mod cache;
pub mod run;
