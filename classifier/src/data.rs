//! Labelled routing data: JSON Lines rows saying how a weak and a strong model did on a prompt
//! (RouteLLM's MMLU/GSM8K correctness booleans, or MT-Bench's 1–10 grades), read from plain or
//! gzip-compressed files. This is the only module of the crate that touches files, and only the
//! offline tools (`frugal train`, `frugal eval router`) use it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How the two models did on one prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Each answer was right or wrong (MMLU, GSM8K).
    Correct {
        /// The weak (cheap) model answered correctly.
        weak: bool,
        /// The strong (expensive) model answered correctly.
        strong: bool,
    },
    /// Each answer was graded on a 1–10 scale (MT-Bench, judged by GPT-4).
    Graded {
        /// The weak model's grade.
        weak: f32,
        /// The strong model's grade.
        strong: f32,
    },
}

impl Outcome {
    /// Highest grade of the graded scale.
    const MAX_GRADE: f32 = 10.0;

    /// The weak model's quality in [0, 1]: 1/0 for right/wrong, grade / 10 for graded rows.
    pub fn weak_quality(self) -> f64 {
        match self {
            Self::Correct { weak, .. } => f64::from(u8::from(weak)),
            Self::Graded { weak, .. } => f64::from(weak / Self::MAX_GRADE),
        }
    }

    /// The strong model's quality in [0, 1], on the same scale as [`Outcome::weak_quality`].
    pub fn strong_quality(self) -> f64 {
        match self {
            Self::Correct { strong, .. } => f64::from(u8::from(strong)),
            Self::Graded { strong, .. } => f64::from(strong / Self::MAX_GRADE),
        }
    }
}

/// One labelled prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledRow {
    /// The row's id, or `line-N` when the file has none.
    pub id: String,
    /// Which benchmark the row comes from (`mmlu`, `gsm8k`, `mt_bench`, …).
    pub benchmark: String,
    /// The prompt the models saw (the first turn for multi-turn rows).
    pub prompt: String,
    /// How the two models did.
    pub outcome: Outcome,
    /// The weak model's answer, where the data has it (GSM8K), for cascade checks.
    pub weak_response: Option<String>,
    /// The strong model's answer, where the data has it (GSM8K), for labelled simulations.
    pub strong_response: Option<String>,
    /// The row's group: its `subject` (MMLU) or `category` (MT-Bench), else its benchmark.
    pub group: String,
}

/// A labelled data file, read whole.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where the rows came from.
    pub path: PathBuf,
    /// SHA-256 (hex) of the decompressed content, so a gzip and a plain copy hash alike.
    pub content_sha256: String,
    /// The rows, in file order.
    pub rows: Vec<LabelledRow>,
}

/// Why a data file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read (or its gzip stream is corrupt).
    #[error("cannot read {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the file system or the decompressor said.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a JSON object of the expected shape.
    #[error("{}:{line}: {message}", .path.display())]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// The fields a row may carry; anything else (turns, …) is ignored.
#[derive(Deserialize)]
struct RawRow {
    id: Option<String>,
    benchmark: Option<String>,
    prompt: String,
    weak_correct: Option<bool>,
    strong_correct: Option<bool>,
    weak_score: Option<f32>,
    strong_score: Option<f32>,
    weak_response: Option<String>,
    strong_response: Option<String>,
    subject: Option<String>,
    category: Option<String>,
}

/// Reads a JSON Lines file, gzip-compressed or not (told apart by the gzip magic bytes).
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let content = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(io)?;
        out
    } else {
        bytes
    };
    let content_sha256 = hex(&Sha256::digest(&content));
    let rows = parse_rows(BufReader::new(content.as_slice()), path)?;
    Ok(Dataset {
        path: path.to_path_buf(),
        content_sha256,
        rows,
    })
}

/// Parses JSON Lines rows from a reader; `path` only labels errors. Blank lines are skipped.
pub fn parse_rows(reader: impl BufRead, path: &Path) -> Result<Vec<LabelledRow>, DataError> {
    let mut rows = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| DataError::Row {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let raw: RawRow = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let outcome = match (
            raw.weak_correct,
            raw.strong_correct,
            raw.weak_score,
            raw.strong_score,
        ) {
            (Some(weak), Some(strong), _, _) => Outcome::Correct { weak, strong },
            (None, None, Some(weak), Some(strong)) if weak.is_finite() && strong.is_finite() => {
                Outcome::Graded { weak, strong }
            }
            _ => {
                return Err(bad("needs weak_correct and strong_correct (booleans), \
                     or weak_score and strong_score (numbers)"
                    .to_owned()))
            }
        };
        let benchmark = raw.benchmark.unwrap_or_else(|| "unknown".to_owned());
        let group = match raw.subject.or(raw.category) {
            Some(g) => format!("{benchmark}/{g}"),
            None => benchmark.clone(),
        };
        rows.push(LabelledRow {
            id: raw.id.unwrap_or_else(|| format!("line-{line_no}")),
            benchmark,
            prompt: raw.prompt,
            outcome,
            weak_response: raw.weak_response,
            strong_response: raw.strong_response,
            group,
        });
    }
    Ok(rows)
}

/// Lower-case hex of a byte string.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const ROWS: &str = concat!(
        r#"{"id": "a", "benchmark": "mmlu", "subject": "x", "prompt": "2+2?", "weak_correct": true, "strong_correct": false}"#,
        "\n\n",
        r#"{"benchmark": "mt_bench", "prompt": "Write a poem.", "weak_score": 8.5, "strong_score": 9.0, "turns": ["a", "b"]}"#,
        "\n",
    );

    #[test]
    fn reads_boolean_and_graded_rows() {
        let rows = parse_rows(ROWS.as_bytes(), Path::new("t.jsonl")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].outcome,
            Outcome::Correct {
                weak: true,
                strong: false
            }
        );
        assert_eq!(rows[1].id, "line-3");
        assert!((rows[1].outcome.strong_quality() - 0.9).abs() < 1e-6);
    }

    #[test]
    fn row_without_labels_is_an_error_with_its_line() {
        let err = parse_rows(r#"{"prompt": "x"}"#.as_bytes(), Path::new("t.jsonl")).unwrap_err();
        assert!(err.to_string().starts_with("t.jsonl:1:"), "{err}");
    }

    #[test]
    fn gzip_and_plain_copies_hash_alike() {
        let dir = std::env::temp_dir().join(format!("frugal-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("rows.jsonl");
        std::fs::write(&plain, ROWS).unwrap();
        let gz = dir.join("rows.jsonl.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(ROWS.as_bytes()).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();

        let (a, b) = (load(&plain).unwrap(), load(&gz).unwrap());
        assert_eq!(a.content_sha256, b.content_sha256);
        assert_eq!(a.rows, b.rows);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
