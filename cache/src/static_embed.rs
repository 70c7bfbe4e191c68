//! A static word-embedding model (WordLlama `l2_supercat`, 256 dimensions): a sentence's vector
//! is the mean of its tokens' vectors, so one costs a tokenisation and a few hundred additions,
//! tens of microseconds where MiniLM takes milliseconds. It is weaker at telling paraphrases
//! apart (so it never decides a hit), but a question whose static vector is far from every
//! stored one has no MiniLM neighbour near enough to be served either: the semantic tier's
//! prefilter uses it to keep MiniLM off the path of such misses.

use std::path::{Path, PathBuf};

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Why the static model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StaticModelError {
    /// A file is missing or unreadable.
    #[error(
        "static embedding file {} is missing or unreadable: run scripts/fetch-models.sh",
        .path.display()
    )]
    File {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The tokenizer file could not be parsed.
    #[error("static embedding tokenizer {} failed to load: {reason}", .path.display())]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// The tokenizers crate's message.
        reason: String,
    },
    /// The weights file is not the expected safetensors layout (one F16 `[vocab, dim]` matrix).
    #[error("static embedding weights {} are malformed: {reason}", .path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Token vectors and the tokenizer that indexes them.
pub struct StaticEmbedder {
    tokenizer: tokenizers::Tokenizer,
    /// `vocab × dim` half floats, row-major.
    weights: Vec<f16>,
    vocab: usize,
    dim: usize,
}

impl std::fmt::Debug for StaticEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticEmbedder")
            .field("vocab", &self.vocab)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl StaticEmbedder {
    /// Folder name of the model inside the model folder (see `scripts/fetch-models.sh`).
    pub const SUBDIR: &'static str = "wordllama-l2-supercat-256";
    /// Name of the tensor holding the token vectors.
    const TENSOR: &'static str = "embedding.weight";

    /// Loads `weights.safetensors` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, StaticModelError> {
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(
                |e| match std::fs::metadata(&tokenizer_path) {
                    Err(source) => StaticModelError::File {
                        path: tokenizer_path.clone(),
                        source,
                    },
                    Ok(_) => StaticModelError::Tokenizer {
                        path: tokenizer_path.clone(),
                        reason: e.to_string(),
                    },
                },
            )?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| StaticModelError::Tokenizer {
                path: tokenizer_path.clone(),
                reason: e.to_string(),
            })?;
        let weights_path = dir.join("weights.safetensors");
        let bytes = std::fs::read(&weights_path).map_err(|source| StaticModelError::File {
            path: weights_path.clone(),
            source,
        })?;
        let (weights, vocab, dim) =
            parse_matrix(&bytes, Self::TENSOR).map_err(|reason| StaticModelError::Weights {
                path: weights_path,
                reason,
            })?;
        Ok(Self {
            tokenizer,
            weights,
            vocab,
            dim,
        })
    }

    /// Length of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The unit-length mean of the text's token vectors; `None` for a text with no tokens.
    pub fn embed(&self, text: &str) -> Option<Vec<f32>> {
        let encoding = self.tokenizer.encode_fast(text, false).ok()?;
        let ids = encoding.get_ids();
        if ids.is_empty() {
            return None;
        }
        let mut sum = vec![0.0f32; self.dim];
        let mut row = vec![0.0f32; self.dim];
        for &id in ids {
            let id = (id as usize).min(self.vocab - 1);
            let start = id * self.dim;
            self.weights[start..start + self.dim].convert_to_f32_slice(&mut row);
            for (s, x) in sum.iter_mut().zip(&row) {
                *s += x;
            }
        }
        let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_normal() {
            return None;
        }
        sum.iter_mut().for_each(|x| *x /= norm);
        Some(sum)
    }
}

/// The F16 matrix named `tensor` in a safetensors file: its values, rows and columns.
fn parse_matrix(bytes: &[u8], tensor: &str) -> Result<(Vec<f16>, usize, usize), String> {
    let header_len = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or("shorter than its header length")?;
    let header_end = usize::try_from(header_len)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or("header runs past the end of the file")?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..header_end]).map_err(|e| format!("header: {e}"))?;
    let entry = header
        .get(tensor)
        .ok_or_else(|| format!("no tensor {tensor:?}"))?;
    if entry.get("dtype").and_then(|d| d.as_str()) != Some("F16") {
        return Err(format!("tensor {tensor:?} is not F16"));
    }
    let numbers = |field: &str| -> Option<Vec<usize>> {
        entry
            .get(field)?
            .as_array()?
            .iter()
            .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
            .collect()
    };
    let (shape, offsets) = (numbers("shape"), numbers("data_offsets"));
    let (Some(&[vocab, dim]), Some(&[begin, end])) = (shape.as_deref(), offsets.as_deref()) else {
        return Err(format!(
            "tensor {tensor:?} is not a matrix with data offsets"
        ));
    };
    let data = bytes
        .get(header_end + begin..header_end + end)
        .filter(|d| vocab > 0 && dim > 0 && d.len() == vocab * dim * 2)
        .ok_or_else(|| format!("tensor {tensor:?}: data does not match its shape"))?;
    let weights = data
        .chunks_exact(2)
        .map(|b| f16::from_le_bytes([b[0], b[1]]))
        .collect();
    Ok((weights, vocab, dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn reads_an_f16_matrix_and_rejects_other_layouts() {
        let values: Vec<u8> = [1.0f32, 2.0, -0.5, 0.25, 3.0, 4.0]
            .iter()
            .flat_map(|x| f16::from_f32(*x).to_le_bytes())
            .collect();
        let good = safetensors(
            r#"{"embedding.weight":{"dtype":"F16","shape":[3,2],"data_offsets":[0,12]}}"#,
            &values,
        );
        let (weights, vocab, dim) = parse_matrix(&good, "embedding.weight").unwrap();
        assert_eq!((vocab, dim), (3, 2));
        assert_eq!(weights[2].to_f32(), -0.5);
        for (header, why) in [
            (
                r#"{"other":{"dtype":"F16","shape":[3,2],"data_offsets":[0,12]}}"#,
                "no tensor",
            ),
            (
                r#"{"embedding.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[0,12]}}"#,
                "F16",
            ),
            (
                r#"{"embedding.weight":{"dtype":"F16","shape":[4,2],"data_offsets":[0,12]}}"#,
                "shape",
            ),
            (
                r#"{"embedding.weight":{"dtype":"F16","shape":[6],"data_offsets":[0,12]}}"#,
                "matrix",
            ),
        ] {
            let err = parse_matrix(&safetensors(header, &values), "embedding.weight").unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        assert!(parse_matrix(&[1, 2, 3], "embedding.weight").is_err());
        assert!(parse_matrix(&safetensors("{", &[]), "embedding.weight").is_err());
    }

    #[test]
    fn a_missing_folder_names_the_file_and_the_fix() {
        let err = StaticEmbedder::load(Path::new("/nonexistent/static")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("tokenizer.json"), "{message}");
        assert!(message.contains("fetch-models.sh"), "{message}");
    }
}
