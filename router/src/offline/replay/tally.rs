//! What a replay counts: answers and refusals, cache outcomes, dollars per lever from the
//! decision records, calls per model, escalations by reason, quality kept against the labels,
//! and right and wrong cache hits on labelled pairs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::traffic::{Item, PairRole};
use crate::decisions::DecisionRecord;
use crate::mock::LabelledModels;
use crate::tokens::last_user_text;

/// One request's answer, as the replay saw it.
#[derive(Debug)]
pub struct Served {
    /// HTTP status.
    pub status: u16,
    /// The answer's text (a 200).
    pub text: Option<String>,
    /// The error's `code` (not a 200).
    pub error_code: Option<String>,
    /// The decision record (answered requests).
    pub record: Option<DecisionRecord>,
}

/// Dollars per lever.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Levers {
    /// Saved by trimming context.
    pub trim: f64,
    /// Saved by cache hits.
    pub cache: f64,
    /// Saved by routing cheaper.
    pub route: f64,
    /// The provider's prompt-cache discount.
    pub prompt_cache: f64,
}

impl Levers {
    /// All levers together.
    pub fn total(&self) -> f64 {
        self.trim + self.cache + self.route + self.prompt_cache
    }
}

/// Quality against the labels: each answer scores the recorded quality of the model whose
/// answer it is (1/0, or grade / 10), 0 when it answers another question.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Quality {
    /// Answered requests whose prompt is labelled.
    pub labelled: usize,
    /// Sum of the served answers' quality.
    pub served: f64,
    /// Sum of the strong model's recorded quality (always-strong).
    pub strong: f64,
    /// Sum of the weak model's recorded quality (always-weak).
    pub weak: f64,
    /// Answers that were another question's (false cache hits on labelled prompts).
    pub wrong_question: usize,
}

impl Quality {
    /// Served quality as a share of always-strong's.
    pub fn kept(&self) -> Option<f64> {
        (self.strong > 0.0).then(|| self.served / self.strong)
    }

    /// Always-weak quality as a share of always-strong's.
    pub fn weak_kept(&self) -> Option<f64> {
        (self.strong > 0.0).then(|| self.weak / self.strong)
    }
}

/// Cache hits on the second question of labelled pairs.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Pairs {
    /// Pairs labelled duplicates.
    pub duplicate: usize,
    /// Pairs labelled different questions.
    pub different: usize,
    /// Duplicates whose second question was served the first one's answer from the cache.
    pub right_hits: usize,
    /// Second questions served another question's answer from the cache.
    pub false_hits: usize,
}

impl Pairs {
    /// False hits per pair of different questions.
    pub fn false_hit_rate(&self) -> Option<f64> {
        (self.different > 0).then(|| self.false_hits as f64 / self.different as f64)
    }

    /// Right hits per duplicate pair.
    pub fn recall(&self) -> Option<f64> {
        (self.duplicate > 0).then(|| self.right_hits as f64 / self.duplicate as f64)
    }
}

/// Everything one policy's replay counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// The policy file.
    pub policy: String,
    /// The model asked for by requests that named none.
    pub model: String,
    /// Requests sent.
    pub requests: usize,
    /// Answered (200).
    pub answered: usize,
    /// Refused or failed, by status and error code.
    pub refused: BTreeMap<String, usize>,
    /// Answers by cache outcome (`miss`, `exact`, `semantic`, `bypass`, …).
    pub cache: BTreeMap<String, usize>,
    /// What the answers cost.
    pub cost_usd: f64,
    /// What they would have cost without frugal.
    pub baseline_usd: f64,
    /// Saved per lever.
    pub saved_usd: Levers,
    /// Upstream calls per model.
    pub calls: BTreeMap<String, usize>,
    /// Input tokens of the upstream calls.
    pub input_tokens: u64,
    /// Of those, the tokens the provider read from its prompt cache.
    pub prompt_cached_tokens: u64,
    /// Escalations by reason.
    pub escalations: BTreeMap<String, usize>,
    /// Quality against the labels, when the traffic has any.
    pub quality: Option<Quality>,
    /// Cache hits on labelled pairs, when the traffic has any.
    pub pairs: Option<Pairs>,
    /// The first few answers served to another question than the one asked, to read.
    pub wrong_answers: Vec<WrongAnswer>,
}

/// An answer served to another question than the one asked (a false cache hit).
#[derive(Debug, Clone, Serialize)]
pub struct WrongAnswer {
    /// The start of the question asked.
    pub asked: String,
    /// The start of the answer served.
    pub served: String,
}

/// Wrong answers kept for reading.
const WRONG_ANSWERS_KEPT: usize = 5;

/// The first `chars` characters of `text`, on one line.
fn excerpt(text: &str, chars: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

fn dollars(text: &str) -> f64 {
    text.parse().unwrap_or(0.0)
}

impl Tally {
    /// An empty tally for the policy at `path`.
    pub fn new(path: &Path, model: &str) -> Self {
        Self {
            policy: path.display().to_string(),
            model: model.to_string(),
            ..Self::default()
        }
    }

    /// Counts one request. `first_answer` carries the text served to a pair's first question
    /// over to its second.
    pub fn add(
        &mut self,
        item: &Item,
        served: &Served,
        labels: Option<&LabelledModels>,
        first_answer: &mut Option<String>,
    ) {
        self.requests += 1;
        if served.status != 200 {
            let code = served.error_code.as_deref().unwrap_or("error");
            *self
                .refused
                .entry(format!("{} {code}", served.status))
                .or_default() += 1;
        } else {
            self.answered += 1;
        }
        let cache_outcome = served.record.as_ref().map(|r| r.cache.outcome.clone());
        if let Some(record) = &served.record {
            self.add_record(record);
        }
        let text = served.text.as_deref().filter(|_| served.status == 200);
        if let (Some(labels), Some(text)) = (labels, text) {
            if let Some(verdict) = labels.judge(&last_user_text(&item.body), text) {
                let quality = self.quality.get_or_insert_with(Quality::default);
                quality.labelled += 1;
                quality.served += verdict.quality;
                quality.strong += verdict.strong;
                quality.weak += verdict.weak;
                if verdict.served.is_none() {
                    quality.wrong_question += 1;
                    if self.wrong_answers.len() < WRONG_ANSWERS_KEPT {
                        self.wrong_answers.push(WrongAnswer {
                            asked: excerpt(&last_user_text(&item.body), 160),
                            served: excerpt(text, 160),
                        });
                    }
                }
            }
        }
        match item.pair {
            Some(PairRole::First) => *first_answer = text.map(str::to_string),
            Some(PairRole::Second { duplicate }) => {
                let pairs = self.pairs.get_or_insert_with(Pairs::default);
                let hit = cache_outcome
                    .as_deref()
                    .is_some_and(|o| o == "exact" || o == "semantic");
                let same_answer = text.is_some() && text == first_answer.as_deref();
                if duplicate {
                    pairs.duplicate += 1;
                    pairs.right_hits += usize::from(hit && same_answer);
                    pairs.false_hits += usize::from(hit && !same_answer);
                } else {
                    pairs.different += 1;
                    pairs.false_hits += usize::from(hit);
                }
                *first_answer = None;
            }
            None => {}
        }
    }

    fn add_record(&mut self, record: &DecisionRecord) {
        *self.cache.entry(record.cache.outcome.clone()).or_default() += 1;
        self.cost_usd += dollars(&record.cost_usd);
        self.baseline_usd += dollars(&record.baseline_usd);
        self.saved_usd.trim += dollars(&record.saved_usd.trim);
        self.saved_usd.cache += dollars(&record.saved_usd.cache);
        self.saved_usd.route += dollars(&record.saved_usd.route);
        self.saved_usd.prompt_cache += dollars(&record.saved_usd.prompt_cache);
        for attempt in &record.attempts {
            *self.calls.entry(attempt.model.clone()).or_default() += 1;
            self.input_tokens += attempt.input_tokens;
            self.prompt_cached_tokens += attempt.cached_input_tokens;
        }
        for reason in &record.escalations {
            *self.escalations.entry(reason.clone()).or_default() += 1;
        }
    }

    /// Share of the calls' input tokens the provider read from its prompt cache.
    pub fn prompt_cached_share(&self) -> Option<f64> {
        (self.input_tokens > 0).then(|| self.prompt_cached_tokens as f64 / self.input_tokens as f64)
    }

    /// Saved as a share of the baseline.
    pub fn saved_share(&self) -> Option<f64> {
        (self.baseline_usd > 0.0).then(|| self.saved_usd.total() / self.baseline_usd)
    }
}
