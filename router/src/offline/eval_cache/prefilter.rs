//! The semantic prefilter in `frugal eval cache`: which lookups its static vectors rule out
//! before MiniLM, and what that costs in hits (on the development pairs, none).

use std::collections::HashMap;
use std::time::Instant;

use frugal_cache::{cosine, prefilter_index_config, StaticEmbedder, VectorIndex};
use serde::Serialize;

use super::evaluation::Mode;
use super::pairs::Pair;

/// What the prefilter did in one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefilterReport {
    /// Static-vector cosine below which a lookup is ruled out (`cache.semantic_prefilter`).
    pub threshold: f32,
    /// Lookups ruled out (a miss without MiniLM).
    pub ruled_out: usize,
    /// Ruled out / pairs.
    pub ruled_out_share: f64,
    /// Ruled-out lookups whose nearest MiniLM candidate was at or above the similarity
    /// threshold (would have been verified).
    pub candidates_lost: usize,
    /// Hits the evaluation would serve without the prefilter and does not with it.
    pub hits_lost: usize,
    /// Mean time to embed one text with the static model, in microseconds.
    pub static_embed_mean_us: f64,
}

/// Per pair, whether the prefilter rules its lookup out at `threshold`: in pair mode, `b`'s
/// static cosine to its own `a`; in index mode, to the nearest of every distinct `a`. Also the
/// mean time to embed a text, in microseconds.
pub fn ruled_out(
    pairs: &[Pair],
    embedder: &StaticEmbedder,
    mode: Mode,
    threshold: f32,
) -> Result<(Vec<bool>, f64), frugal_cache::index::IndexError> {
    let started = Instant::now();
    let a: Vec<Option<Vec<f32>>> = pairs.iter().map(|p| embedder.embed(&p.a)).collect();
    let b: Vec<Option<Vec<f32>>> = pairs.iter().map(|p| embedder.embed(&p.b)).collect();
    let mean_us = started.elapsed().as_secs_f64() * 1e6 / (2 * pairs.len()).max(1) as f64;
    // A text with no static vector is never ruled out (as in the sidecar).
    let far = |similarity: Option<f32>| similarity.is_some_and(|s| s < threshold);
    let out = match mode {
        Mode::Pair => a
            .iter()
            .zip(&b)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => far(Some(cosine(a, b))),
                _ => false,
            })
            .collect(),
        Mode::Index => {
            let mut index = VectorIndex::new(embedder.dim(), prefilter_index_config());
            let mut entry_of: HashMap<&str, u64> = HashMap::new();
            for (pair, vector) in pairs.iter().zip(&a) {
                let next = entry_of.len() as u64;
                let entry = *entry_of.entry(pair.a.as_str()).or_insert(next);
                if entry == next {
                    if let Some(vector) = vector {
                        index.insert(entry, vector)?;
                    }
                }
            }
            let mut out = Vec::with_capacity(b.len());
            for vector in &b {
                out.push(match vector {
                    Some(v) => far(index.nearest(v, 1)?.first().map(|n| n.similarity)),
                    None => false,
                });
            }
            out
        }
    };
    Ok((out, mean_us))
}
