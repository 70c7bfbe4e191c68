//! The simulated upstream in-process: the mock's answers (labelled where a label exists, the
//! default reply otherwise) handed to the upstream client without a socket, for `frugal replay`.
//! No faults and no latency: a replay measures decisions, not timing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::labels::LabelledModels;
use super::reply::Answer;
use super::{labelled, Behaviour, ProviderCache};
use crate::tokens::last_user_text;
use crate::upstream::Simulate;

/// Answers every call in-process, deterministically (ids count up from zero).
#[derive(Debug, Default)]
pub struct InProcess {
    labels: Option<Arc<LabelledModels>>,
    seq: AtomicU64,
    prompt_cache: ProviderCache,
}

impl InProcess {
    /// A simulation answering labelled prompts with their recorded answers.
    pub fn new(labels: Option<Arc<LabelledModels>>) -> Self {
        Self {
            labels,
            seq: AtomicU64::new(0),
            prompt_cache: ProviderCache::default(),
        }
    }

    fn answer(&self, body: &Map<String, Value>) -> Answer {
        let model = body.get("model").and_then(Value::as_str).unwrap_or("mock");
        let behaviour = labelled(
            Behaviour::default(),
            self.labels.as_deref(),
            model,
            &last_user_text(body),
        );
        let mut answer = Answer::new(body, &behaviour, self.seq.fetch_add(1, Ordering::Relaxed));
        answer.cached_tokens = self.prompt_cache.read(body, answer.prompt_tokens as u64);
        answer
    }
}

impl Simulate for InProcess {
    fn complete(&self, body: &Map<String, Value>) -> Bytes {
        Bytes::from(self.answer(body).completion().to_string())
    }

    fn stream(&self, body: &Map<String, Value>) -> Vec<Bytes> {
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut frames: Vec<Bytes> = self
            .answer(body)
            .chunks(include_usage)
            .iter()
            .map(|c| Bytes::from(format!("data: {c}\n\n")))
            .collect();
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        frames
    }
}
