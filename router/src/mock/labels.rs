//! Labelled answers: the simulated upstream answers a prompt it finds in a labelled routing file
//! (RouteLLM's rows) with what the model that is asked recorded for it, so the sidecar's
//! decisions can be scored against real outcomes. This measures frugal's decisions against
//! recorded answers, not a live model.
//!
//! * GSM8K rows carry both models' answer texts: the weak model's text answers a weak model,
//!   the strong model's a strong one.
//! * MMLU rows carry only correctness; MT-Bench rows a 1–10 grade. The answer is a short text
//!   naming the row, the side and the recorded outcome, right or wrong as the label says.
//!
//! [`LabelledModels::judge`] scores a served answer for a prompt: the recorded quality of the
//! model whose answer it is (1/0, or grade / 10), and 0 for an answer to another question (a
//! false cache hit) or a cut-short one.

use std::collections::HashMap;
use std::path::Path;

use frugal_classifier::data::{LabelledRow, Outcome};

/// Which of the two labelled models a request's model stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The cheap model of the labels (RouteLLM: Mixtral-8x7B).
    Weak,
    /// The strong model of the labels (RouteLLM: GPT-4).
    Strong,
}

impl Side {
    /// `weak` or `strong`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Weak => "weak",
            Self::Strong => "strong",
        }
    }
}

/// Labelled rows by prompt, and which upstream model names answer as which side.
#[derive(Debug, Clone)]
pub struct LabelledModels {
    rows: Vec<LabelledRow>,
    by_prompt: HashMap<String, usize>,
    sides: HashMap<String, Side>,
}

/// How a served answer scores against a labelled row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The served answer's quality in [0, 1].
    pub quality: f64,
    /// The strong model's recorded quality on the row (what always-strong would score).
    pub strong: f64,
    /// The weak model's recorded quality on the row.
    pub weak: f64,
    /// Whose answer was served: `None` when it was not this row's (another question's answer,
    /// or cut short).
    pub served: Option<Side>,
}

/// Whitespace-insensitive key of a prompt.
fn prompt_key(prompt: &str) -> String {
    prompt.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl LabelledModels {
    /// Rows from a labelled file (JSON Lines, gzip or plain), with the upstream model names
    /// that answer as the weak and the strong model.
    pub fn load(path: &Path, weak: &[String], strong: &[String]) -> Result<Self, String> {
        let data = frugal_classifier::data::load(path).map_err(|e| e.to_string())?;
        Self::new(data.rows, weak, strong)
    }

    /// Labels over `rows`; a model named on both sides is an error.
    pub fn new(rows: Vec<LabelledRow>, weak: &[String], strong: &[String]) -> Result<Self, String> {
        if let Some(both) = weak.iter().find(|m| strong.contains(m)) {
            return Err(format!(
                "model `{both}` cannot answer as both the weak and the strong model"
            ));
        }
        let mut by_prompt = HashMap::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            by_prompt.entry(prompt_key(&row.prompt)).or_insert(index);
        }
        let sides = weak
            .iter()
            .map(|m| (m.clone(), Side::Weak))
            .chain(strong.iter().map(|m| (m.clone(), Side::Strong)))
            .collect();
        Ok(Self {
            rows,
            by_prompt,
            sides,
        })
    }

    /// Labelled rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, in file order.
    pub fn rows(&self) -> &[LabelledRow] {
        &self.rows
    }

    /// The side an upstream model name answers as, if it has one.
    pub fn side_of(&self, model: &str) -> Option<Side> {
        self.sides.get(model).copied()
    }

    /// The labelled row of a prompt (the first, when the file has it twice).
    pub fn row_for(&self, prompt: &str) -> Option<&LabelledRow> {
        self.by_prompt
            .get(&prompt_key(prompt))
            .map(|&index| &self.rows[index])
    }

    /// What `model` answers to `prompt`: `None` when the prompt is not labelled or the model
    /// has no side (the mock then answers as it would without labels).
    pub fn answer(&self, prompt: &str, model: &str) -> Option<String> {
        let side = self.side_of(model)?;
        Some(recorded_answer(self.row_for(prompt)?, side))
    }

    /// Scores `served` (the answer's text) as an answer to `prompt`; `None` for a prompt with
    /// no label.
    pub fn judge(&self, prompt: &str, served: &str) -> Option<Verdict> {
        let row = self.row_for(prompt)?;
        let (weak, strong) = (row.outcome.weak_quality(), row.outcome.strong_quality());
        let served_side = if served == recorded_answer(row, Side::Strong) {
            Some(Side::Strong)
        } else if served == recorded_answer(row, Side::Weak) {
            Some(Side::Weak)
        } else {
            None
        };
        let quality = match served_side {
            Some(Side::Strong) => strong,
            Some(Side::Weak) => weak,
            None => 0.0,
        };
        Some(Verdict {
            quality,
            strong,
            weak,
            served: served_side,
        })
    }
}

/// The answer `side` recorded for `row`: its text where the row has one, else a short text that
/// names the row and the recorded outcome.
fn recorded_answer(row: &LabelledRow, side: Side) -> String {
    let text = match side {
        Side::Weak => row.weak_response.as_deref(),
        Side::Strong => row.strong_response.as_deref(),
    };
    if let Some(text) = text {
        return text.to_string();
    }
    let outcome = match (row.outcome, side) {
        (Outcome::Correct { weak, .. }, Side::Weak) => right_or_wrong(weak).to_string(),
        (Outcome::Correct { strong, .. }, Side::Strong) => right_or_wrong(strong).to_string(),
        (Outcome::Graded { weak, .. }, Side::Weak) => format!("graded {weak}/10"),
        (Outcome::Graded { strong, .. }, Side::Strong) => format!("graded {strong}/10"),
    };
    format!(
        "[{}] The {} model's recorded answer to this question: {outcome}.",
        row.id,
        side.as_str()
    )
}

const fn right_or_wrong(correct: bool) -> &'static str {
    if correct {
        "right"
    } else {
        "wrong"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<LabelledRow> {
        frugal_classifier::data::parse_rows(
            concat!(
                r#"{"id": "m1", "benchmark": "mmlu", "prompt": "What is 2+2?\nA. 3\nB. 4", "weak_correct": false, "strong_correct": true}"#,
                "\n",
                r#"{"id": "g1", "benchmark": "gsm8k", "prompt": "Tom has 3 apples.", "weak_correct": true, "strong_correct": true, "weak_response": "He has 3. #### 3", "strong_response": "3 apples. #### 3"}"#,
                "\n",
                r#"{"id": "t1", "benchmark": "mt_bench", "prompt": "Write a haiku.", "weak_score": 6.0, "strong_score": 9.0}"#,
                "\n",
            )
            .as_bytes(),
            Path::new("t.jsonl"),
        )
        .unwrap()
    }

    fn labels() -> LabelledModels {
        LabelledModels::new(rows(), &["cheap-up".into()], &["strong-up".into()]).unwrap()
    }

    #[test]
    fn each_model_answers_what_it_recorded_and_is_judged_by_its_label() {
        let labels = labels();
        // Whitespace does not matter when finding the row.
        let prompt = "What is 2+2?  A. 3\nB. 4";
        let weak = labels.answer(prompt, "cheap-up").unwrap();
        let strong = labels.answer(prompt, "strong-up").unwrap();
        assert!(weak.contains("[m1]") && weak.contains("wrong"), "{weak}");
        assert!(strong.contains("right"), "{strong}");
        assert_eq!(labels.judge(prompt, &weak).unwrap().quality, 0.0);
        let verdict = labels.judge(prompt, &strong).unwrap();
        assert_eq!((verdict.quality, verdict.served), (1.0, Some(Side::Strong)));
        // GSM8K answers are the recorded texts.
        assert_eq!(
            labels.answer("Tom has 3 apples.", "cheap-up").unwrap(),
            "He has 3. #### 3"
        );
        // Graded rows score grade / 10.
        let haiku = labels.answer("Write a haiku.", "cheap-up").unwrap();
        assert!((labels.judge("Write a haiku.", &haiku).unwrap().quality - 0.6).abs() < 1e-6);
    }

    #[test]
    fn another_questions_answer_scores_zero_and_unknowns_are_not_labelled() {
        let labels = labels();
        let other = labels.answer("Tom has 3 apples.", "strong-up").unwrap();
        let verdict = labels.judge("Write a haiku.", &other).unwrap();
        assert_eq!((verdict.quality, verdict.served), (0.0, None));
        assert_eq!(verdict.strong, 0.9_f32 as f64);
        assert!(labels.judge("Not in the file", "x").is_none());
        assert!(labels.answer("Write a haiku.", "unknown-model").is_none());
        assert!(LabelledModels::new(rows(), &["m".into()], &["m".into()]).is_err());
    }
}
