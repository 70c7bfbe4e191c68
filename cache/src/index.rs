//! The vector index of one cache scope: nearest earlier prompts by cosine similarity.
//!
//! While a scope is small an exact scan over a contiguous array is both exact and faster than a
//! graph; past [`IndexConfig::hnsw_threshold`] live vectors the index moves to an HNSW graph
//! (`graph.rs`, dot product of unit vectors). The graph stores each vector as int8 (component ×
//! [`QUANT_SCALE`]): a quarter of the memory of f32, for a cosine error of about 0.002 (the
//! flat scan stays exact f32). That error reorders near-ties, so by default
//! ([`IndexConfig::exact_rerank`]) the index also keeps each graph vector's rounding residual as
//! int8 (another byte a dimension) and re-ranks the graph's best [`RERANK_CANDIDATES`] with
//! both: similarities within ~1e-5 of the f32 ones, so the graph returns the exact scan's
//! nearest whenever its search reached it, and a threshold decides on the exact similarity.
//! Removals are tombstones: the slot is marked dead and skipped at
//! query time (inside the graph search, so dead points never crowd out live ones).
//! [`VectorIndex::live`] snapshots the live vectors and [`VectorIndex::from_live`] builds a
//! compact index from them, so a caller can rebuild off the lookup path and swap the result in
//! once [`VectorIndex::needs_rebuild`] says so.

use std::collections::HashMap;

use crate::graph::{Graph, GraphConfig};

/// Scale of the graph's int8 components: a unit vector's component `x` is stored as
/// `round(x × QUANT_SCALE)`, so components in [-0.5, 0.5] keep full precision (a unit vector
/// of a few hundred dimensions rarely has one beyond 0.3; larger ones are clamped).
pub const QUANT_SCALE: f32 = 254.0;

/// Scale of a graph vector's residual: the rounding error of `x × QUANT_SCALE` (within ±0.5)
/// is stored as `round(error × RESIDUAL_SCALE)`, so a component is known to within
/// `1 / (2 × QUANT_SCALE × RESIDUAL_SCALE)` (~8e-6). 256 rather than 254 keeps the residual
/// below half a step, so a vector read back quantises to the same int8 values again.
const RESIDUAL_SCALE: f32 = 256.0;

/// Candidates of a graph search re-ranked by their residuals (when the index keeps them): the
/// exact nearest is among the best 16 by int8 unless the search missed it (int8 rounding moves a
/// cosine by ~0.002; 16 candidates span far more than that among real prompts).
pub const RERANK_CANDIDATES: usize = 16;

/// Tuning of a [`VectorIndex`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexConfig {
    /// Live vectors above which the exact scan is replaced by an HNSW graph.
    pub hnsw_threshold: usize,
    /// HNSW links per node and layer (`M`).
    pub max_connections: usize,
    /// HNSW candidate list size while inserting.
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (raised to `k` when smaller), up to
    /// `widen_every` live vectors; see [`IndexConfig::search_width`].
    pub ef_search: usize,
    /// Live vectors for each further `ef_search` of search width, up to [`MAX_WIDENING`] times
    /// `ef_search`; 0 keeps the width at `ef_search` whatever the size.
    pub widen_every: usize,
    /// Dead slots, as a share of all slots, past which [`VectorIndex::needs_rebuild`] is true.
    pub rebuild_dead_share: f32,
    /// Whether a graph keeps each vector's int8 rounding residual (one more byte a dimension)
    /// to re-rank its best [`RERANK_CANDIDATES`] at near-f32 precision; without it similarities
    /// from a graph are off by up to ~0.002 and near-ties come back in any order.
    pub exact_rerank: bool,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            // An exact scan of 4096 × 384 floats (6 MB, cache-resident) takes ~0.25 ms; past
            // that memory bandwidth dominates and the graph wins (`examples/index_bench.rs`).
            hnsw_threshold: 4096,
            // 32 links (64 on layer 0): at 1M entries (105k real QQP/PAWS prompt vectors and
            // points between them, `examples/index_scale.rs`) a search of width 256, re-ranked,
            // returns the exact f32 scan's nearest for 99.8% of near-duplicates and 98.4% of
            // fresh prompts, lookup p99 1.3 ms; a node takes its 384 bytes, 384 of residual and
            // ~260 of links (`SEMANTIC_ENTRY_BYTES`).
            max_connections: 32,
            ef_construction: 100,
            // Cache hits sit at cosine ≥ 0.9, where the graph finds the neighbour easily: up to
            // 125k entries a width of 32 finds every near-duplicate's nearest (p99 ~0.3 ms).
            ef_search: 32,
            // A larger graph needs a wider search for the same recall: at 1M entries (as
            // above) 128 finds 99.8% of near-duplicates' and 97.0% of fresh prompts' nearest,
            // 256 (the width there) 99.8% and 98.4%.
            widen_every: 125_000,
            rebuild_dead_share: 0.3,
            exact_rerank: true,
        }
    }
}

/// The most [`IndexConfig::widen_every`] multiplies [`IndexConfig::ef_search`] by.
pub const MAX_WIDENING: usize = 8;

impl IndexConfig {
    /// The HNSW search width for a graph of `live` vectors: `ef_search` once per
    /// `widen_every` of them (at least once, at most [`MAX_WIDENING`] times).
    pub fn search_width(&self, live: usize) -> usize {
        match live.checked_div(self.widen_every) {
            Some(steps) => self.ef_search * steps.clamp(1, MAX_WIDENING),
            None => self.ef_search,
        }
    }
}

/// A vector the index refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    /// The vector does not have the index's dimension.
    #[error("vector has {actual} dimensions, the index holds {expected}")]
    Dimension {
        /// The index's dimension.
        expected: usize,
        /// The vector's length.
        actual: usize,
    },
    /// The vector is zero or holds NaN or infinity, so it has no direction.
    #[error("vector is zero or not finite")]
    NotFinite,
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// The id the vector was inserted under.
    pub id: u64,
    /// Cosine similarity to the query, in [-1, 1].
    pub similarity: f32,
}

enum Backend {
    /// Slot `s` occupies `vectors[s * dim..(s + 1) * dim]`.
    Flat { vectors: Vec<f32> },
    /// Node id = slot; vectors quantised by [`quantize`].
    Hnsw {
        graph: Box<Graph>,
        /// Node `n`'s residual (see [`residual`]) is `residuals[n * dim..(n + 1) * dim]`;
        /// empty unless [`IndexConfig::exact_rerank`].
        residuals: Vec<i8>,
    },
}

/// Live vectors of an index with their ids, in insertion order: what a rebuild starts from.
#[derive(Debug, Clone, Default)]
pub struct LiveVectors {
    dim: usize,
    ids: Vec<u64>,
    vectors: Vec<Vec<f32>>,
}

impl LiveVectors {
    /// Each id with its vector and the vector's length (1: they are unit vectors).
    fn items(&self) -> Vec<(u64, &[f32], f32)> {
        self.ids
            .iter()
            .zip(&self.vectors)
            .map(|(id, v)| (*id, v.as_slice(), 1.0))
            .collect()
    }

    /// How many vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Nearest-neighbour index over unit vectors, keyed by caller-chosen `u64` ids.
pub struct VectorIndex {
    dim: usize,
    config: IndexConfig,
    backend: Backend,
    /// Id of each slot, and whether it is live.
    slots: Vec<(u64, bool)>,
    /// Live id → slot.
    live: HashMap<u64, usize>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dim", &self.dim)
            .field("live", &self.len())
            .field("dead", &self.dead())
            .field("hnsw", &self.is_hnsw())
            .finish()
    }
}

impl VectorIndex {
    /// An empty index of `dim`-dimensional vectors.
    pub fn new(dim: usize, config: IndexConfig) -> Self {
        Self {
            dim,
            config,
            backend: Backend::Flat {
                vectors: Vec::new(),
            },
            slots: Vec::new(),
            live: HashMap::new(),
        }
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether the index has no live vector.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Removed vectors still occupying a slot.
    pub fn dead(&self) -> usize {
        self.slots.len() - self.live.len()
    }

    /// Searches later lookups with exactly `ef_search`, whatever the size (no widening; for
    /// benchmarks); the graph is unchanged.
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.config.ef_search = ef_search;
        self.config.widen_every = 0;
    }

    /// Whether the index searches an HNSW graph (rather than scanning).
    pub fn is_hnsw(&self) -> bool {
        matches!(self.backend, Backend::Hnsw { .. })
    }

    /// Whether enough slots are dead that a [`VectorIndex::rebuilt`] copy is worth making.
    pub fn needs_rebuild(&self) -> bool {
        !self.slots.is_empty()
            && self.dead() as f32 > self.config.rebuild_dead_share * self.slots.len() as f32
    }

    /// Adds `vector` under `id`, replacing any vector already under it. The vector is
    /// re-normalised, so near-unit input stays exactly comparable. An exact scan that outgrows
    /// [`IndexConfig::hnsw_threshold`] becomes a graph here, at once (see
    /// [`VectorIndex::insert_keeping_scan`] for a caller that builds it elsewhere).
    pub fn insert(&mut self, id: u64, vector: &[f32]) -> Result<(), IndexError> {
        self.insert_keeping_scan(id, vector)?;
        if self.outgrew_scan() {
            self.move_to_graph();
        }
        Ok(())
    }

    /// Whether this is an exact scan holding more vectors than
    /// [`IndexConfig::hnsw_threshold`]: a graph built from [`VectorIndex::live`] (e.g. with
    /// [`VectorIndex::from_live`], off the lookup path) should replace it.
    pub fn outgrew_scan(&self) -> bool {
        !self.is_hnsw() && self.live.len() > self.config.hnsw_threshold
    }

    /// [`VectorIndex::insert`], except that an exact scan stays one past the threshold (it
    /// answers exactly, only more slowly, until its caller swaps a graph in).
    pub fn insert_keeping_scan(&mut self, id: u64, vector: &[f32]) -> Result<(), IndexError> {
        let vector = self.unit(vector)?;
        self.remove(id);
        let slot = self.slots.len();
        self.slots.push((id, true));
        self.live.insert(id, slot);
        match &mut self.backend {
            Backend::Flat { vectors } => vectors.extend_from_slice(&vector),
            Backend::Hnsw { graph, residuals } => {
                let coarse = quantize(&vector, 1.0);
                if self.config.exact_rerank {
                    residuals.extend(residual(&vector, 1.0, &coarse));
                }
                graph.insert(&coarse);
            }
        }
        Ok(())
    }

    /// Tombstones the vector under `id`; false when there was none.
    pub fn remove(&mut self, id: u64) -> bool {
        match self.live.remove(&id) {
            Some(slot) => {
                self.slots[slot].1 = false;
                true
            }
            None => false,
        }
    }

    /// The `k` live vectors most similar to `query`, most similar first.
    pub fn nearest(&self, query: &[f32], k: usize) -> Result<Vec<Neighbour>, IndexError> {
        let query = self.unit(query)?;
        if k == 0 || self.live.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: Vec<Neighbour> = match &self.backend {
            Backend::Flat { vectors } => {
                let mut all: Vec<Neighbour> = vectors
                    .chunks_exact(self.dim)
                    .zip(&self.slots)
                    .filter(|(_, (_, alive))| *alive)
                    .map(|(v, (id, _))| Neighbour {
                        id: *id,
                        similarity: dot(v, &query),
                    })
                    .collect();
                let k = k.min(all.len());
                all.select_nth_unstable_by(k - 1, |a, b| b.similarity.total_cmp(&a.similarity));
                all.truncate(k);
                all
            }
            Backend::Hnsw { graph, residuals } => {
                let alive = |node: u32| self.slots.get(node as usize).is_some_and(|s| s.1);
                // The filter costs a check per visited node: skip it while nothing is dead.
                let filter: Option<&dyn Fn(u32) -> bool> = (self.dead() > 0).then_some(&alive);
                let rerank = self.config.exact_rerank && !residuals.is_empty();
                let candidates = if rerank { k.max(RERANK_CANDIDATES) } else { k };
                graph
                    .search(
                        &quantize(&query, 1.0),
                        candidates,
                        self.config.search_width(self.live.len()),
                        filter,
                    )
                    .into_iter()
                    .filter_map(|(dot, node)| {
                        let slot = node as usize;
                        let (id, alive) = *self.slots.get(slot)?;
                        let similarity = match residuals.get(slot * self.dim..(slot + 1) * self.dim)
                        {
                            Some(fine) if rerank => dot_refined(&query, graph.vector(slot), fine),
                            _ => dot as f32 / (QUANT_SCALE * QUANT_SCALE),
                        };
                        alive.then_some(Neighbour {
                            id,
                            similarity: similarity.clamp(-1.0, 1.0),
                        })
                    })
                    .collect()
            }
        };
        found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        found.truncate(k);
        Ok(found)
    }

    /// A compact copy holding only the live vectors (exact scan or graph by its size).
    pub fn rebuilt(&self) -> Self {
        Self::from_live(self.config, self.live())
    }

    /// Every live vector with its id, in insertion order (graph vectors come back dequantised,
    /// with their residuals when kept, and quantise to the same int8 values again).
    pub fn live(&self) -> LiveVectors {
        let mut found: Vec<(usize, u64, Vec<f32>)> = match &self.backend {
            Backend::Flat { vectors } => vectors
                .chunks_exact(self.dim)
                .enumerate()
                .filter_map(|(slot, v)| {
                    let (id, alive) = *self.slots.get(slot)?;
                    alive.then(|| (slot, id, v.to_vec()))
                })
                .collect(),
            Backend::Hnsw { graph, residuals } => (0..graph.len())
                .filter_map(|slot| {
                    let (id, alive) = *self.slots.get(slot)?;
                    let fine = residuals.get(slot * self.dim..(slot + 1) * self.dim);
                    alive.then(|| (slot, id, dequantize(graph.vector(slot), fine)))
                })
                .collect(),
        };
        found.sort_unstable_by_key(|(slot, _, _)| *slot);
        let (ids, vectors) = found.into_iter().map(|(_, id, v)| (id, v)).unzip();
        LiveVectors {
            dim: self.dim,
            ids,
            vectors,
        }
    }

    /// An index over `live` (a [`VectorIndex::live`] snapshot): exact scan or graph by size.
    /// Building a large graph takes a while; do it off the lookup path.
    pub fn from_live(config: IndexConfig, live: LiveVectors) -> Self {
        let mut fresh = Self::new(live.dim, config);
        if live.len() > config.hnsw_threshold {
            fresh.install_graph(&live.items());
        } else {
            for (id, v) in live.ids.iter().zip(&live.vectors) {
                // A snapshot holds unit vectors of the index's dimension: this cannot fail.
                let _ = fresh.insert(*id, v);
            }
        }
        fresh
    }

    /// An index over `items` built in one go: an exact scan or, past
    /// [`IndexConfig::hnsw_threshold`], a graph whose vectors are inserted in parallel (on two
    /// cores about twice as fast as one [`VectorIndex::insert`] at a time). As with `insert`,
    /// vectors are re-normalised and a later vector under an id replaces an earlier one.
    /// Building a large graph takes a while; do it off the lookup path.
    pub fn from_vectors<'a>(
        dim: usize,
        config: IndexConfig,
        items: impl IntoIterator<Item = (u64, &'a [f32])>,
    ) -> Result<Self, IndexError> {
        let mut chosen: Vec<(u64, &[f32], f32)> = Vec::new();
        let mut position: HashMap<u64, usize> = HashMap::new();
        for (id, vector) in items {
            let item = (id, vector, norm(dim, vector)?);
            match position.get(&id) {
                Some(&at) => chosen[at] = item,
                None => {
                    position.insert(id, chosen.len());
                    chosen.push(item);
                }
            }
        }
        let mut fresh = Self::new(dim, config);
        if chosen.len() > config.hnsw_threshold {
            fresh.install_graph(&chosen);
        } else {
            for (id, vector, _) in chosen {
                fresh.insert(id, vector)?;
            }
        }
        Ok(fresh)
    }

    /// Moves a flat index that outgrew the scan into a graph, dropping dead slots on the way.
    fn move_to_graph(&mut self) {
        let live = self.live();
        self.install_graph(&live.items());
    }

    /// Makes `items` (distinct ids, each with a vector of the index's dimension and its length)
    /// this index's whole content, in a graph (slot = position in `items`).
    fn install_graph(&mut self, items: &[(u64, &[f32], f32)]) {
        self.slots = items.iter().map(|(id, _, _)| (*id, true)).collect();
        self.live = items
            .iter()
            .enumerate()
            .map(|(s, (id, _, _))| (*id, s))
            .collect();
        let mut vectors = Vec::with_capacity(items.len() * self.dim);
        let mut residuals = Vec::new();
        if self.config.exact_rerank {
            residuals.reserve_exact(items.len() * self.dim);
        }
        for (_, v, norm) in items {
            let coarse = quantize(v, *norm);
            if self.config.exact_rerank {
                residuals.extend(residual(v, *norm, &coarse));
            }
            vectors.extend(coarse);
        }
        let config = GraphConfig {
            links: self.config.max_connections,
            ef_construction: self.config.ef_construction,
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let graph = Graph::build(self.dim, config, vectors, threads);
        self.backend = Backend::Hnsw {
            graph: Box::new(graph),
            residuals,
        };
    }

    fn unit(&self, vector: &[f32]) -> Result<Vec<f32>, IndexError> {
        unit(self.dim, vector)
    }
}

/// `vector` scaled to unit length, or why it cannot be indexed with `dim` dimensions.
fn unit(dim: usize, vector: &[f32]) -> Result<Vec<f32>, IndexError> {
    let norm = norm(dim, vector)?;
    Ok(vector.iter().map(|x| x / norm).collect())
}

/// The length of `vector`, or why it cannot be indexed with `dim` dimensions.
fn norm(dim: usize, vector: &[f32]) -> Result<f32, IndexError> {
    if vector.len() != dim {
        return Err(IndexError::Dimension {
            expected: dim,
            actual: vector.len(),
        });
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(IndexError::NotFinite);
    }
    Ok(norm)
}

/// The int8 form for the graph of `vector` divided by `norm`, its length (see [`QUANT_SCALE`]).
/// Graph vectors read back by [`VectorIndex::live`] are quantised with a `norm` of 1, so they
/// come back to the same int8 values.
fn quantize(vector: &[f32], norm: f32) -> Vec<i8> {
    let scale = QUANT_SCALE / norm;
    vector
        .iter()
        .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// What [`quantize`] rounded off `vector / norm` (its int8 form `coarse`), in units of
/// `1 / (QUANT_SCALE × RESIDUAL_SCALE)`: the component is `(coarse + residual / RESIDUAL_SCALE)
/// / QUANT_SCALE` to within ~8e-6 (clamped components, beyond ±0.5, keep only part of theirs).
fn residual<'a>(vector: &'a [f32], norm: f32, coarse: &'a [i8]) -> impl Iterator<Item = i8> + 'a {
    let scale = QUANT_SCALE / norm;
    vector.iter().zip(coarse).map(move |(x, c)| {
        ((x * scale - f32::from(*c)) * RESIDUAL_SCALE)
            .round()
            .clamp(-127.0, 127.0) as i8
    })
}

/// What the graph makes of a unit vector, as f32: its int8 form (as a query or a stored vector
/// of unit length is quantised) read back. For checking a search against an exact scan of
/// what the graph holds.
pub fn int8_round_trip(vector: &[f32]) -> Vec<f32> {
    dequantize(&quantize(vector, 1.0), None)
}

/// The f32 vector an int8 graph vector (with its residual, if kept) stands for.
fn dequantize(coarse: &[i8], residual: Option<&[i8]>) -> Vec<f32> {
    match residual {
        Some(fine) => coarse
            .iter()
            .zip(fine)
            .map(|(c, r)| (f32::from(*c) + f32::from(*r) / RESIDUAL_SCALE) / QUANT_SCALE)
            .collect(),
        None => coarse.iter().map(|c| f32::from(*c) / QUANT_SCALE).collect(),
    }
}

/// The dot product of the f32 `query` with the graph vector whose int8 form is `coarse` and
/// residual `fine`, at near-f32 precision; eight partial sums, as in [`dot`].
fn dot_refined(query: &[f32], coarse: &[i8], fine: &[i8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (cq, cc, cf) = (
        query.chunks_exact(8),
        coarse.chunks_exact(8),
        fine.chunks_exact(8),
    );
    let tail: f32 = cq
        .remainder()
        .iter()
        .zip(cc.remainder().iter().zip(cf.remainder()))
        .map(|(q, (c, f))| q * (f32::from(*c) + f32::from(*f) / RESIDUAL_SCALE))
        .sum();
    for ((q, c), f) in cq.zip(cc).zip(cf) {
        for i in 0..8 {
            acc[i] += q[i] * (f32::from(c[i]) + f32::from(f[i]) / RESIDUAL_SCALE);
        }
    }
    (acc.iter().sum::<f32>() + tail) / QUANT_SCALE
}

/// Dot product with eight independent partial sums, which the compiler turns into SIMD (a
/// plain `sum()` must keep the sequential order of float additions and cannot).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use super::*;

    use crate::synthetic::random_units as vectors;

    fn small() -> IndexConfig {
        IndexConfig {
            hnsw_threshold: 64,
            ..IndexConfig::default()
        }
    }

    #[test]
    fn the_search_widens_with_the_graph_up_to_its_limit() {
        let config = IndexConfig::default();
        let base = config.ef_search;
        assert_eq!(config.search_width(0), base);
        assert_eq!(config.search_width(config.widen_every - 1), base);
        assert_eq!(config.search_width(2 * config.widen_every), 2 * base);
        assert_eq!(config.search_width(usize::MAX), MAX_WIDENING * base);
        let fixed = IndexConfig {
            widen_every: 0,
            ..config
        };
        assert_eq!(fixed.search_width(usize::MAX), base);
    }

    #[test]
    fn finds_itself_first_in_both_backends() {
        let data = vectors(300, 32, 7);
        let mut index = VectorIndex::new(32, small());
        for (i, v) in data.iter().enumerate().take(50) {
            index.insert(i as u64, v).unwrap();
        }
        assert!(!index.is_hnsw());
        let hit = index.nearest(&data[10], 3).unwrap();
        assert_eq!(hit[0].id, 10);
        assert!((hit[0].similarity - 1.0).abs() < 1e-5);
        assert!(hit[0].similarity >= hit[1].similarity && hit[1].similarity >= hit[2].similarity);

        for (i, v) in data.iter().enumerate().skip(50) {
            index.insert(i as u64, v).unwrap();
        }
        assert!(index.is_hnsw());
        assert_eq!(index.len(), 300);
        for probe in [0usize, 57, 123, 299] {
            let hit = index.nearest(&data[probe], 1).unwrap();
            assert_eq!(hit[0].id, probe as u64);
            // The graph's int8 vectors make its similarities approximate.
            assert!(hit[0].similarity > 0.99, "{hit:?}");
        }
    }

    #[test]
    fn removed_vectors_are_never_returned() {
        let data = vectors(200, 16, 3);
        for config in [IndexConfig::default(), small()] {
            let mut index = VectorIndex::new(16, config);
            for (i, v) in data.iter().enumerate() {
                index.insert(i as u64, v).unwrap();
            }
            assert!(index.remove(5));
            assert!(!index.remove(5));
            let hits = index.nearest(&data[5], 10).unwrap();
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|n| n.id != 5), "{hits:?}");
            assert_eq!(index.len(), 199);
            assert_eq!(index.dead(), 1);
        }
    }

    #[test]
    fn reinserting_an_id_replaces_its_vector() {
        let data = vectors(3, 8, 11);
        let mut index = VectorIndex::new(8, IndexConfig::default());
        index.insert(1, &data[0]).unwrap();
        index.insert(1, &data[1]).unwrap();
        assert_eq!(index.len(), 1);
        let hit = index.nearest(&data[1], 5).unwrap();
        assert_eq!(hit.len(), 1);
        assert!(hit[0].similarity > 0.999);
    }

    #[test]
    fn rebuild_drops_dead_slots_and_keeps_answers() {
        let data = vectors(200, 16, 5);
        let mut index = VectorIndex::new(16, small());
        for (i, v) in data.iter().enumerate() {
            index.insert(i as u64, v).unwrap();
        }
        for id in 0..100 {
            index.remove(id);
        }
        assert!(index.needs_rebuild());
        let fresh = index.rebuilt();
        assert_eq!((fresh.len(), fresh.dead()), (100, 0));
        assert!(fresh.is_hnsw());
        assert_eq!(fresh.nearest(&data[150], 1).unwrap()[0].id, 150);
        assert!(fresh
            .nearest(&data[50], 5)
            .unwrap()
            .iter()
            .all(|n| n.id >= 100));
    }

    #[test]
    fn bulk_build_answers_like_one_insert_at_a_time() {
        let data = vectors(400, 32, 13);
        for count in [40, 400] {
            let mut one_by_one = VectorIndex::new(32, small());
            for (i, v) in data.iter().enumerate().take(count) {
                one_by_one.insert(i as u64, v).unwrap();
            }
            let items = data.iter().enumerate().take(count);
            let bulk =
                VectorIndex::from_vectors(32, small(), items.map(|(i, v)| (i as u64, &v[..])))
                    .unwrap();
            assert_eq!((bulk.len(), bulk.is_hnsw()), (count, count > 64));
            for probe in [0, count / 2, count - 1] {
                let (a, b) = (
                    bulk.nearest(&data[probe], 1).unwrap(),
                    one_by_one.nearest(&data[probe], 1).unwrap(),
                );
                assert_eq!((a[0].id, b[0].id), (probe as u64, probe as u64));
            }
        }
    }

    /// A query and `count` stored vectors, of which the first ten are near-ties: the query
    /// plus a little noise each, within a few thousandths of cosine of one another (int8's
    /// rounding reorders them); the rest are random.
    fn near_ties(count: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
        let mut rng = crate::synthetic::Xorshift::new(23);
        let query = rng.unit_vector(64);
        let stored = (0..count)
            .map(|i| match i {
                0..10 => crate::synthetic::normalised(
                    query
                        .iter()
                        .map(|x| x + 0.03 * rng.next_centered())
                        .collect(),
                ),
                _ => rng.unit_vector(64),
            })
            .collect();
        (query, stored)
    }

    #[test]
    fn a_graph_re_ranks_near_ties_to_the_exact_scans_order() {
        let (query, stored) = near_ties(300);
        let exact: Vec<f32> = stored.iter().map(|v| dot(v, &query)).collect();
        let mut best: Vec<usize> = (0..stored.len()).collect();
        best.sort_by(|a, b| exact[*b].total_cmp(&exact[*a]));
        let items = stored.iter().enumerate().map(|(i, v)| (i as u64, &v[..]));
        let index = VectorIndex::from_vectors(64, small(), items).unwrap();
        assert!(index.is_hnsw());
        let found = index.nearest(&query, 5).unwrap();
        let ids: Vec<u64> = found.iter().map(|n| n.id).collect();
        let expected: Vec<u64> = best[..5].iter().map(|&i| i as u64).collect();
        assert_eq!(ids, expected, "the exact scan's five nearest, in its order");
        for n in &found {
            let error = (n.similarity - exact[n.id as usize]).abs();
            assert!(error < 2e-5, "similarity off by {error}");
        }

        // Without the residuals the int8 similarities are coarser than the ties' spread.
        let coarse = IndexConfig {
            exact_rerank: false,
            ..small()
        };
        let items = stored.iter().enumerate().map(|(i, v)| (i as u64, &v[..]));
        let index = VectorIndex::from_vectors(64, coarse, items).unwrap();
        let worst = index
            .nearest(&query, 5)
            .unwrap()
            .iter()
            .map(|n| (n.similarity - exact[n.id as usize]).abs())
            .fold(0.0f32, f32::max);
        assert!(worst > 1e-4, "int8 alone is off by {worst}");
    }

    #[test]
    fn residuals_survive_inserts_and_rebuilds() {
        let (query, stored) = near_ties(200);
        let mut index = VectorIndex::new(64, small());
        for (i, v) in stored.iter().enumerate() {
            index.insert(i as u64, v).unwrap();
        }
        assert!(
            index.is_hnsw(),
            "the last inserts went into the graph one at a time"
        );
        index.remove(0);
        // The near ties (ids 1..=9, all within 0.001 of each other and far from the rest):
        // any search finds them, and only the residuals order them the same every time. (A
        // rebuilt graph is another graph, so which far vector comes tenth may differ.)
        let before = index.nearest(&query, 9).unwrap();
        assert!(before.iter().all(|n| (1..=9).contains(&n.id)), "{before:?}");
        let rebuilt = index.rebuilt();
        assert_eq!(rebuilt.nearest(&query, 9).unwrap(), before);
        assert_eq!(rebuilt.rebuilt().nearest(&query, 9).unwrap(), before);
        for n in &before {
            assert!((n.similarity - dot(&stored[n.id as usize], &query)).abs() < 2e-5);
        }
    }

    #[test]
    fn bulk_build_keeps_the_last_vector_of_a_repeated_id() {
        let data = vectors(100, 16, 17);
        let items = data
            .iter()
            .enumerate()
            .map(|(i, v)| ((i % 90) as u64, &v[..]));
        let index = VectorIndex::from_vectors(16, small(), items).unwrap();
        assert_eq!((index.len(), index.dead()), (90, 0));
        assert_eq!(index.nearest(&data[95], 1).unwrap()[0].id, 5);
        assert!(index.nearest(&data[5], 1).unwrap()[0].similarity < 0.9);
    }

    #[test]
    fn bulk_build_refuses_a_bad_vector() {
        let good = [1.0, 0.0, 0.0];
        let items = [(1, &good[..]), (2, &[0.0, 0.0, 0.0][..])];
        assert_eq!(
            VectorIndex::from_vectors(3, small(), items).err(),
            Some(IndexError::NotFinite)
        );
        let short = [(1, &good[..2])];
        assert!(matches!(
            VectorIndex::from_vectors(3, small(), short),
            Err(IndexError::Dimension { .. })
        ));
    }

    #[test]
    fn refuses_wrong_dimension_and_zero_vectors() {
        let mut index = VectorIndex::new(4, IndexConfig::default());
        assert!(matches!(
            index.insert(1, &[1.0, 0.0]),
            Err(IndexError::Dimension { .. })
        ));
        assert_eq!(index.insert(1, &[0.0; 4]), Err(IndexError::NotFinite));
        assert_eq!(
            index.nearest(&[f32::NAN, 0.0, 0.0, 0.0], 1),
            Err(IndexError::NotFinite)
        );
        assert!(index.nearest(&[1.0, 0.0, 0.0, 0.0], 1).unwrap().is_empty());
    }

    #[test]
    fn index_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<VectorIndex>();
    }
}
