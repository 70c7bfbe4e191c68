//! The fake upstream's embeddings: a deterministic unit vector per (model, input), 1536
//! components unless the request asks for `dimensions`, as floats or as base64 of
//! little-endian f32s, with `usage` counted the way the sidecar counts inputs.

use base64::Engine as _;
use frugal_cache::synthetic::Xorshift;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::embeddings::account::counted_tokens;
use crate::embeddings::request::{EmbeddingRequest, Encoding};

/// Components of a vector when the request names no `dimensions` (text-embedding-3-small's).
pub const DEFAULT_DIMENSIONS: usize = 1536;

/// Most `dimensions` the mock answers (text-embedding-3-large's).
pub const MAX_DIMENSIONS: usize = 3072;

/// The unit vector of `input` under `model`: the same every time, different for every input.
pub fn vector(model: &str, input: &Value, dimensions: usize) -> Vec<f32> {
    let digest = Sha256::new()
        .chain_update(model.as_bytes())
        .chain_update([0])
        .chain_update(input.to_string().as_bytes())
        .finalize();
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&digest[..8]);
    Xorshift::new(u64::from_le_bytes(seed)).unit_vector(dimensions)
}

/// The `embedding` value of a vector in `encoding`.
pub fn encode(vector: &[f32], encoding: Encoding) -> Value {
    match encoding {
        Encoding::Float => json!(vector),
        Encoding::Base64 => {
            let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// The embeddings list answering `request` for the upstream model `model`; with `keep`, only
/// the first `keep` embeddings (a reply that does not fit the request).
pub fn answer(
    request: &EmbeddingRequest,
    model: &str,
    keep: Option<usize>,
) -> Result<Value, String> {
    let dimensions = match request.body.get("dimensions").and_then(Value::as_u64) {
        None => DEFAULT_DIMENSIONS,
        Some(d) => usize::try_from(d)
            .ok()
            .filter(|d| *d <= MAX_DIMENSIONS)
            .ok_or_else(|| format!("'dimensions' must be at most {MAX_DIMENSIONS}."))?,
    };
    let data: Vec<Value> = request
        .items
        .iter()
        .take(keep.unwrap_or(usize::MAX))
        .enumerate()
        .map(|(index, item)| {
            json!({
                "object": "embedding",
                "index": index,
                "embedding": encode(&vector(model, item, dimensions), request.encoding),
            })
        })
        .collect();
    let tokens: u64 = request.items.iter().map(counted_tokens).sum();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
}

/// The text script rules match an embeddings request by: its inputs, one per line.
pub fn prompt_of(request: &EmbeddingRequest) -> String {
    request
        .items
        .iter()
        .map(|item| match item {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> EmbeddingRequest {
        EmbeddingRequest::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn vectors_are_deterministic_unit_length_and_differ_by_input() {
        let a = vector("m", &json!("hello"), 64);
        assert_eq!(a, vector("m", &json!("hello"), 64));
        assert_ne!(a, vector("m", &json!("hullo"), 64));
        assert_ne!(a, vector("n", &json!("hello"), 64));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let v = [1.0f32, -0.5];
        let Value::String(text) = encode(&v, Encoding::Base64) else {
            panic!("not a string")
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
    }

    #[test]
    fn the_answer_has_one_embedding_per_input_and_counted_usage() {
        let r = request(json!({"model": "m", "input": ["a b", "c"], "dimensions": 8}));
        let answer = answer(&r, "up", None).unwrap();
        assert_eq!(answer["data"].as_array().unwrap().len(), 2);
        assert_eq!(answer["data"][1]["index"], 1);
        assert_eq!(answer["data"][0]["embedding"].as_array().unwrap().len(), 8);
        assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() >= 2);
        let short = super::answer(&r, "up", Some(1)).unwrap();
        assert_eq!(short["data"].as_array().unwrap().len(), 1);
        let huge = request(json!({"model": "m", "input": "x", "dimensions": 100000}));
        assert!(super::answer(&huge, "up", None).is_err());
    }
}
