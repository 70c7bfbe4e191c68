//! The `embeddings:` section, checked: where the model is and how requests share it.

use std::path::Path;
use std::time::Duration;

use super::compile::{duration, duration_or_zero, Errors};
use super::raw::RawEmbeddings;
use crate::embed_worker::{BatchOptions, EmbedderConfig};

/// Checked embedding settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingPolicy {
    /// Model location, threads and batching.
    pub config: EmbedderConfig,
    /// Longest a request waits for its embedding.
    pub deadline: Duration,
}

/// Default wait for an embedding. One all-MiniLM-L6-v2 embedding of a short question takes
/// 7–11 ms of CPU on a 2-core machine (ONNX Runtime alone, measured), more behind a queue under
/// load; 50 ms keeps the semantic tier working on a busy pod and is small beside an LLM call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(50);

/// Checks the `embeddings:` section; `base_dir` is the policy file's folder.
pub(super) fn compile_embeddings(
    raw: Option<&RawEmbeddings>,
    base_dir: &Path,
    errors: &mut Errors,
) -> EmbeddingPolicy {
    let default_raw = RawEmbeddings::default();
    let raw = raw.unwrap_or(&default_raw);
    let defaults = BatchOptions::default();
    let max_batch = raw.max_batch.unwrap_or(defaults.max_batch);
    if !(1..=256).contains(&max_batch) {
        errors.push("embeddings.max_batch", "must be between 1 and 256");
    }
    if raw.threads == Some(0) {
        errors.push("embeddings.threads", "must be at least 1");
    }
    let model_dir = match &raw.model_dir {
        Some(dir) => base_dir.join(dir),
        None => Path::new("models").to_path_buf(),
    };
    EmbeddingPolicy {
        config: EmbedderConfig {
            model_dir,
            threads: raw.threads,
            batch: BatchOptions {
                max_batch,
                window: duration_or_zero(
                    raw.batch_window.as_deref(),
                    "embeddings.batch_window",
                    defaults.window,
                    errors,
                ),
                queue: defaults.queue,
            },
        },
        deadline: duration(
            raw.deadline.as_deref(),
            "embeddings.deadline",
            DEFAULT_DEADLINE,
            errors,
        ),
    }
}
