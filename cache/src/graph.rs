//! An HNSW graph (Malkov & Yashunin, 2016) over int8 vectors, the vector index's backend past
//! its exact-scan size.
//!
//! Laid out flat for memory and speed: the vectors in one array, each node's layer-0 links in a
//! fixed-size row of one array (`2 × links` ids and their count), the few nodes above layer 0
//! with their upper rows in another. A node costs its vector plus ~4 × (2 × links + 1) bytes.
//!
//! Links are chosen with the paper's heuristic (a candidate is kept only if it is nearer the
//! node than to every link already kept) both when a node is inserted and when a neighbour's
//! full row takes the new node back, so dense regions keep links that lead out of them. (Keeping
//! just the nearest when a row overflows, as hnsw_rs 0.3 does, cut near-duplicate recall@1 at 1M
//! augmented prompt vectors to 0.53–0.67.)
//!
//! Similarity is the int8 dot product (the vectors are quantised unit vectors), larger nearer.
//! A bulk build inserts on every core: rows are atomics, so a search may read a row while another
//! thread rewrites it (it sees old or new ids, all of inserted nodes), and writers take the lock
//! of the row's stripe.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// No node (an empty graph's entry point, a level-0 node's upper rows).
const NONE: u32 = u32::MAX;
/// Highest layer a node may get (a million nodes reach ~4 with 32 links).
const MAX_LEVEL: u8 = 15;
/// Row locks, shared by nodes with the same id modulo this.
const STRIPES: usize = 1024;

/// Tuning of a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GraphConfig {
    /// Links per node on layers above 0 (`M`); layer 0 keeps twice as many.
    pub links: usize,
    /// Candidates considered when a node is inserted (`ef_construction`).
    pub ef_construction: usize,
}

/// An HNSW graph; node ids are insertion order.
pub(crate) struct Graph {
    dim: usize,
    config: GraphConfig,
    /// Node `n`'s vector is `vectors[n * dim..(n + 1) * dim]`.
    vectors: Vec<i8>,
    /// Each node's top layer.
    levels: Vec<u8>,
    /// Node `n`'s layer-0 row at `n * row0`: its link count, then up to `2 × links` ids.
    layer0: Vec<AtomicU32>,
    /// Where node `n`'s upper rows start in `upper` (one row of `links + 1` per layer above 0),
    /// or [`NONE`].
    upper_at: Vec<u32>,
    upper: Vec<AtomicU32>,
    entry: u32,
    top: u8,
    rng: u64,
    locks: Box<[Mutex<()>]>,
    /// Visited sets of finished searches, for the next ones to reuse.
    spare: Mutex<Vec<Visited>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("nodes", &self.len())
            .field("top", &self.top)
            .field("config", &self.config)
            .finish()
    }
}

/// Candidates of a search, nearest first: (similarity, node).
type Ranked = Vec<(i32, u32)>;

impl Graph {
    /// An empty graph of `dim`-dimensional vectors.
    pub(crate) fn new(dim: usize, config: GraphConfig) -> Self {
        let config = GraphConfig {
            links: config.links.max(2),
            ef_construction: config.ef_construction.max(1),
        };
        Self {
            dim,
            config,
            vectors: Vec::new(),
            levels: Vec::new(),
            layer0: Vec::new(),
            upper_at: Vec::new(),
            upper: Vec::new(),
            entry: NONE,
            top: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// A graph of `vectors` (flat, `dim` each; node `n` is the `n`th), inserted on `threads`
    /// threads.
    pub(crate) fn build(dim: usize, config: GraphConfig, vectors: Vec<i8>, threads: usize) -> Self {
        let mut graph = Self::new(dim, config);
        let count = vectors.len() / dim.max(1);
        graph.vectors = vectors;
        graph.vectors.truncate(count * dim);
        for _ in 0..count {
            graph.allocate();
        }
        let Some(first) = (0..count).max_by_key(|&n| (graph.levels[n], Reverse(n))) else {
            return graph;
        };
        graph.entry = first as u32;
        graph.top = graph.levels[first];
        let next = AtomicUsize::new(0);
        let work = || {
            let mut visited = Visited::new(count);
            loop {
                let node = next.fetch_add(1, Ordering::Relaxed);
                if node >= count {
                    break;
                }
                if node != first {
                    graph.link(node as u32, &mut visited);
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads.max(1) {
                s.spawn(work);
            }
            work();
        });
        graph
    }

    /// Nodes in the graph.
    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    /// Node `node`'s vector.
    pub(crate) fn vector(&self, node: usize) -> &[i8] {
        &self.vectors[node * self.dim..(node + 1) * self.dim]
    }

    /// Adds `vector` (of the graph's dimension) as the next node.
    pub(crate) fn insert(&mut self, vector: &[i8]) {
        self.vectors.extend_from_slice(vector);
        let node = self.allocate();
        if self.entry == NONE {
            self.entry = node;
            self.top = self.levels[node as usize];
            return;
        }
        let mut visited = self.take_visited();
        self.link(node, &mut visited);
        self.give_back(visited);
        if self.levels[node as usize] > self.top {
            self.entry = node;
            self.top = self.levels[node as usize];
        }
    }

    /// Up to `k` nodes nearest `query` that `keep` accepts, nearest first, with their
    /// similarity; `ef` candidates are kept while searching layer 0 (at least `k`). Nodes
    /// `keep` refuses are walked through but never returned.
    pub(crate) fn search(
        &self,
        query: &[i8],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u32) -> bool>,
    ) -> Ranked {
        if self.entry == NONE || k == 0 {
            return Vec::new();
        }
        let mut at = self.entry;
        for layer in (1..=self.top).rev() {
            at = self.greedy(query, at, layer);
        }
        let mut visited = self.take_visited();
        let mut found = self.search_layer(query, at, ef.max(k), 0, keep, &mut visited);
        self.give_back(visited);
        found.truncate(k);
        found
    }

    /// A visited set covering every node, reused from an earlier search when one is spare.
    fn take_visited(&self) -> Visited {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut visited = spare.unwrap_or_else(|| Visited::new(0));
        visited.cover(self.len());
        visited
    }

    fn give_back(&self, visited: Visited) {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(visited);
    }

    /// Gives the next node its level and empty rows; returns its id.
    fn allocate(&mut self) -> u32 {
        let node = self.levels.len() as u32;
        let level = self.random_level();
        self.levels.push(level);
        let row0 = self.row_len(0);
        self.layer0.extend((0..row0).map(|_| AtomicU32::new(0)));
        if level > 0 {
            self.upper_at.push(self.upper.len() as u32);
            let rows = usize::from(level) * self.row_len(1);
            self.upper.extend((0..rows).map(|_| AtomicU32::new(0)));
        } else {
            self.upper_at.push(NONE);
        }
        node
    }

    /// A level drawn with P(level ≥ l) = links^−l.
    fn random_level(&mut self) -> u8 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let uniform = ((self.rng >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let level = -uniform.ln() / (self.config.links as f64).ln();
        level.min(f64::from(MAX_LEVEL)) as u8
    }

    /// Most links a row of `layer` holds.
    fn capacity(&self, layer: u8) -> usize {
        if layer == 0 {
            2 * self.config.links
        } else {
            self.config.links
        }
    }

    /// Length of a row of `layer`: its count, then room for its links.
    fn row_len(&self, layer: u8) -> usize {
        self.capacity(layer) + 1
    }

    /// Node `node`'s row on `layer`: its count, then its ids.
    fn row(&self, node: u32, layer: u8) -> &[AtomicU32] {
        let len = self.row_len(layer);
        if layer == 0 {
            let start = node as usize * len;
            &self.layer0[start..start + len]
        } else {
            let start = self.upper_at[node as usize] as usize + (usize::from(layer) - 1) * len;
            &self.upper[start..start + len]
        }
    }

    /// The ids in a row (as much of it as is filled).
    fn links_of(row: &[AtomicU32]) -> impl Iterator<Item = u32> + '_ {
        let count = (row[0].load(Ordering::Relaxed) as usize).min(row.len() - 1);
        row[1..=count].iter().map(|id| id.load(Ordering::Relaxed))
    }

    fn write_row(row: &[AtomicU32], ids: &[u32]) {
        for (slot, id) in row[1..].iter().zip(ids) {
            slot.store(*id, Ordering::Relaxed);
        }
        row[0].store(ids.len() as u32, Ordering::Release);
    }

    fn lock(&self, node: u32) -> std::sync::MutexGuard<'_, ()> {
        self.locks[node as usize % STRIPES]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn similarity(&self, query: &[i8], node: u32) -> i32 {
        dot_i8(query, self.vector(node as usize))
    }

    /// Links an allocated node into the graph from the current entry point.
    fn link(&self, node: u32, visited: &mut Visited) {
        let query = self.vector(node as usize);
        let level = self.levels[node as usize];
        let mut at = self.entry;
        for layer in (level.saturating_add(1)..=self.top).rev() {
            at = self.greedy(query, at, layer);
        }
        for layer in (0..=level.min(self.top)).rev() {
            let candidates =
                self.search_layer(query, at, self.config.ef_construction, layer, None, visited);
            let Some(&(_, nearest)) = candidates.first() else {
                continue;
            };
            let chosen = self.select(&candidates, self.config.links, node);
            {
                let _guard = self.lock(node);
                Self::write_row(self.row(node, layer), &chosen);
            }
            for &neighbour in &chosen {
                self.link_back(neighbour, node, layer);
            }
            at = nearest;
        }
    }

    /// Adds `node` to `neighbour`'s row on `layer`, re-selecting the row when it is full.
    fn link_back(&self, neighbour: u32, node: u32, layer: u8) {
        let _guard = self.lock(neighbour);
        let row = self.row(neighbour, layer);
        let mut ids: Vec<u32> = Self::links_of(row).collect();
        if ids.contains(&node) {
            return;
        }
        if ids.len() < self.capacity(layer) {
            ids.push(node);
            Self::write_row(row, &ids);
            return;
        }
        let base = self.vector(neighbour as usize);
        let mut candidates: Ranked = ids
            .iter()
            .chain([&node])
            .map(|&id| (self.similarity(base, id), id))
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let kept = self.select(&candidates, self.capacity(layer), neighbour);
        Self::write_row(row, &kept);
    }

    /// Up to `wanted` of `candidates` (nearest first) for `node`'s row: each is kept only if
    /// it is nearer to `node` than to every one kept before it.
    fn select(&self, candidates: &[(i32, u32)], wanted: usize, node: u32) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(wanted);
        for &(similarity, candidate) in candidates {
            if kept.len() >= wanted {
                break;
            }
            if candidate == node {
                continue;
            }
            let vector = self.vector(candidate as usize);
            if kept
                .iter()
                .all(|&k| self.similarity(vector, k) <= similarity)
            {
                kept.push(candidate);
            }
        }
        kept
    }

    /// The node nearest `query` reached by always moving to a nearer link on `layer`.
    fn greedy(&self, query: &[i8], from: u32, layer: u8) -> u32 {
        let mut at = from;
        let mut best = self.similarity(query, at);
        loop {
            let mut moved = false;
            for id in Self::links_of(self.row(at, layer)) {
                let similarity = self.similarity(query, id);
                if similarity > best {
                    best = similarity;
                    at = id;
                    moved = true;
                }
            }
            if !moved {
                return at;
            }
        }
    }

    /// Best-first search of one layer from `from`, keeping `ef` results that `keep` accepts;
    /// nearest first.
    fn search_layer(
        &self,
        query: &[i8],
        from: u32,
        ef: usize,
        layer: u8,
        keep: Option<&dyn Fn(u32) -> bool>,
        visited: &mut Visited,
    ) -> Ranked {
        visited.clear();
        let accepts = |id: u32| keep.is_none_or(|keep| keep(id));
        let mut candidates: BinaryHeap<(i32, u32)> = BinaryHeap::new();
        let mut results: BinaryHeap<Reverse<(i32, u32)>> = BinaryHeap::new();
        let start = (self.similarity(query, from), from);
        visited.insert(from);
        candidates.push(start);
        if accepts(from) {
            results.push(Reverse(start));
        }
        while let Some((similarity, at)) = candidates.pop() {
            let worst = results.peek().map(|Reverse((s, _))| *s);
            if results.len() >= ef && worst.is_some_and(|w| similarity < w) {
                break;
            }
            for id in Self::links_of(self.row(at, layer)) {
                if !visited.insert(id) {
                    continue;
                }
                let similarity = self.similarity(query, id);
                let worst = results.peek().map(|Reverse((s, _))| *s);
                if results.len() < ef || worst.is_some_and(|w| similarity > w) {
                    candidates.push((similarity, id));
                    if accepts(id) {
                        results.push(Reverse((similarity, id)));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        let mut ranked: Ranked = results.into_iter().map(|Reverse(r)| r).collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        ranked
    }
}

/// Nodes seen by one search: a generation stamp per node, so clearing is O(1).
struct Visited {
    stamps: Vec<u32>,
    generation: u32,
}

impl Visited {
    fn new(nodes: usize) -> Self {
        Self {
            stamps: vec![0; nodes],
            generation: 0,
        }
    }

    /// Makes room for `nodes` nodes.
    fn cover(&mut self, nodes: usize) {
        if self.stamps.len() < nodes {
            self.stamps.resize(nodes, 0);
        }
    }

    fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamps.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `node`; false when it was already marked.
    fn insert(&mut self, node: u32) -> bool {
        let Some(stamp) = self.stamps.get_mut(node as usize) else {
            return false;
        };
        if *stamp == self.generation {
            return false;
        }
        *stamp = self.generation;
        true
    }
}

/// Dot product of two int8 vectors: products of pairs summed in i16 (at most 2 × 127²), then
/// in 16 independent i32 lanes, which the compiler vectorises.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            let pair = i16::from(x[2 * i]) * i16::from(y[2 * i])
                + i16::from(x[2 * i + 1]) * i16::from(y[2 * i + 1]);
            acc[i] += i32::from(pair);
        }
    }
    acc.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::random_units;

    const DIM: usize = 48;

    fn quantised(n: usize, seed: u64) -> Vec<Vec<i8>> {
        random_units(n, DIM, seed)
            .into_iter()
            .map(|v| v.iter().map(|x| (x * 254.0).round() as i8).collect())
            .collect()
    }

    fn config() -> GraphConfig {
        GraphConfig {
            links: 8,
            ef_construction: 64,
        }
    }

    /// The exact nearest of `query` among `vectors` that `keep` accepts.
    fn exact(vectors: &[Vec<i8>], query: &[i8], keep: impl Fn(u32) -> bool) -> u32 {
        (0..vectors.len() as u32)
            .filter(|&n| keep(n))
            .max_by_key(|&n| (dot_i8(query, &vectors[n as usize]), Reverse(n)))
            .unwrap_or(NONE)
    }

    /// Share of `queries` whose first result is the exact nearest.
    fn recall(graph: &Graph, vectors: &[Vec<i8>], queries: &[Vec<i8>], ef: usize) -> f64 {
        let hits = queries
            .iter()
            .filter(|q| {
                let found = graph.search(q, 1, ef, None);
                found.first().map(|f| f.1) == Some(exact(vectors, q, |_| true))
            })
            .count();
        hits as f64 / queries.len() as f64
    }

    #[test]
    fn one_at_a_time_and_in_bulk_both_find_the_exact_nearest() {
        let vectors = quantised(3000, 7);
        let queries = quantised(200, 8);
        let near_duplicates: Vec<Vec<i8>> = queries
            .iter()
            .enumerate()
            .map(|(i, noise)| {
                let source = &vectors[i * 13];
                source
                    .iter()
                    .zip(noise)
                    .map(|(s, n)| s.saturating_add(n / 8))
                    .collect()
            })
            .collect();
        let mut single = Graph::new(DIM, config());
        for v in &vectors {
            single.insert(v);
        }
        let bulk = Graph::build(DIM, config(), vectors.concat(), 2);
        assert_eq!((single.len(), bulk.len()), (3000, 3000));
        for graph in [&single, &bulk] {
            // Random queries in 48 dimensions are far from everything: the hardest case.
            let found = recall(graph, &vectors, &queries, 128);
            assert!(found >= 0.95, "recall@1 {found}");
            let found = recall(graph, &vectors, &near_duplicates, 32);
            assert!(found >= 0.98, "near-duplicate recall@1 {found}");
        }
        assert_eq!(bulk.vector(42), vectors[42].as_slice());
    }

    #[test]
    fn a_stored_vector_finds_itself_and_results_come_nearest_first() {
        let vectors = quantised(2000, 11);
        let graph = Graph::build(DIM, config(), vectors.concat(), 2);
        for n in [0usize, 1, 999, 1999] {
            let found = graph.search(&vectors[n], 5, 32, None);
            assert_eq!(found[0].1, n as u32);
            assert_eq!(found.len(), 5);
            assert!(found.windows(2).all(|w| w[0].0 >= w[1].0));
        }
    }

    #[test]
    fn refused_nodes_are_walked_through_but_never_returned() {
        let vectors = quantised(2000, 13);
        let graph = Graph::build(DIM, config(), vectors.concat(), 1);
        // Refuse nine nodes in ten: the search must cross them to reach the rest.
        let keep = |n: u32| n.is_multiple_of(10);
        for q in quantised(50, 14) {
            let found = graph.search(&q, 3, 64, Some(&keep));
            assert!(found.iter().all(|f| keep(f.1)));
            assert_eq!(found.len(), 3);
            assert_eq!(found[0].1, exact(&vectors, &q, keep));
        }
        assert!(graph
            .search(&vectors[0], 3, 32, Some(&|_| false))
            .is_empty());
    }

    #[test]
    fn rows_never_exceed_their_capacity_and_never_link_a_node_to_itself() {
        let vectors = quantised(1500, 17);
        let graph = Graph::build(DIM, config(), vectors.concat(), 2);
        for node in 0..graph.len() as u32 {
            for layer in 0..=graph.levels[node as usize] {
                let links: Vec<u32> = Graph::links_of(graph.row(node, layer)).collect();
                assert!(links.len() <= graph.capacity(layer));
                assert!(!links.contains(&node));
                assert!(links.iter().all(|&l| (l as usize) < graph.len()));
            }
        }
    }

    #[test]
    fn an_empty_graph_finds_nothing() {
        let graph = Graph::new(DIM, config());
        assert!(graph.search(&[0; DIM], 3, 32, None).is_empty());
        let built = Graph::build(DIM, config(), Vec::new(), 2);
        assert_eq!(built.len(), 0);
        assert!(built.search(&[0; DIM], 3, 32, None).is_empty());
    }
}
