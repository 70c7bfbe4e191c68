//! The response cache's semantic tier: a request whose last user message means the same as an
//! earlier one *in the same scope* is answered with the earlier answer. The scope is everything
//! else about the request (tenant, namespace, model, system prompt, tools, sampling parameters,
//! the conversation so far, any context), hashed whole by [`CacheScope::semantic_key`], so a
//! lookup never crosses tenants or contexts. A candidate needs cosine similarity at or above the
//! caller's threshold and must pass verification (numbers, negation, antonyms, quoted strings,
//! identifiers, URLs/paths, entities and word order must agree): similarity alone cannot tell
//! "A sued B" from "B sued A".
//!
//! Vectors live here, answers in the store ([`crate::ResponseCache`]) under their exact key;
//! when the store evicts an answer its vector is tombstoned. Once too many of a scope's vectors
//! are dead the scope's index is rebuilt: inline while it is a small exact scan, on a background
//! thread once it is a graph (seconds for 100k vectors). Lookups keep using the old index
//! meanwhile; changes made during the build are logged and replayed onto the new index, which is
//! then swapped in under the lock.
//!
//! [`CacheScope::semantic_key`]: crate::CacheScope::semantic_key

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use crate::index::{IndexConfig, LiveVectors, VectorIndex};
use crate::scope::{CacheKey, ScopeKey};
use crate::verify::{Analysis, Guard, Verifier};

/// A question the semantic tier looks up, and what a neighbour needs to be served for it.
#[derive(Debug, Clone, Copy)]
pub struct SemanticQuery<'a> {
    /// The scope searched (see [`crate::CacheScope::semantic_key`]).
    pub scope: &'a ScopeKey,
    /// The question's words, which the guards compare.
    pub question: &'a str,
    /// The question's embedding.
    pub vector: &'a [f32],
    /// Cosine similarity a neighbour needs before it is verified.
    pub threshold: f32,
    /// The guards a neighbour must pass.
    pub verifier: &'a Verifier,
}

/// What a semantic lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum SemanticLookup {
    /// A verified neighbour: the exact key of its answer, and how similar it is.
    Hit {
        /// The stored answer's exact-tier key.
        key: CacheKey,
        /// Cosine similarity of the two questions.
        similarity: f32,
    },
    /// The nearest neighbour was similar enough but a guard told them apart.
    Rejected {
        /// The first guard that fired.
        guard: Guard,
        /// Cosine similarity of the two questions.
        similarity: f32,
    },
    /// Nothing close enough in the scope.
    Miss,
}

struct Entry {
    /// The question, which the guards compare; `None` in an index of vectors only (the
    /// prefilter's).
    question: Option<Box<str>>,
    key: CacheKey,
    scope: ScopeKey,
}

struct Scope {
    index: VectorIndex,
    /// A background rebuild of `index` in progress.
    rebuild: Option<PendingRebuild>,
}

/// A rebuild started from a snapshot: changes since then, to replay onto the new index.
struct PendingRebuild {
    generation: u64,
    changes: Vec<Change>,
}

enum Change {
    Insert(u64, Vec<f32>),
    Remove(u64),
}

struct State {
    config: IndexConfig,
    scopes: HashMap<ScopeKey, Scope>,
    entries: HashMap<u64, Entry>,
    by_key: HashMap<CacheKey, u64>,
    next_id: u64,
    next_generation: u64,
}

/// Per-scope vector indexes over stored questions.
pub struct SemanticIndex {
    state: Arc<Mutex<State>>,
    /// Exact keys the store evicted, tombstoned at the next lookup or insert (the store's
    /// eviction listener must not take the index lock).
    evicted: Mutex<Vec<CacheKey>>,
}

impl std::fmt::Debug for SemanticIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticIndex").finish_non_exhaustive()
    }
}

impl SemanticIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::with_config(IndexConfig::default())
    }

    /// An empty index whose scopes use `config`.
    pub fn with_config(config: IndexConfig) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                config,
                scopes: HashMap::new(),
                entries: HashMap::new(),
                by_key: HashMap::new(),
                next_id: 0,
                next_generation: 0,
            })),
            evicted: Mutex::default(),
        }
    }

    /// Notes that the store no longer holds the answer under `key`.
    pub fn evicted(&self, key: CacheKey) {
        self.evicted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
    }

    /// The best verified neighbour of the query's question within its scope.
    pub fn lookup(&self, query: &SemanticQuery<'_>) -> SemanticLookup {
        let SemanticQuery {
            scope,
            question,
            vector,
            threshold,
            verifier,
        } = *query;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.apply_evictions(&mut state);
        let Some(found) = state.scopes.get(scope) else {
            return SemanticLookup::Miss;
        };
        let neighbours = match found.index.nearest(vector, 1) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "semantic lookup failed");
                return SemanticLookup::Miss;
            }
        };
        let Some(best) = neighbours.into_iter().find(|n| n.similarity >= threshold) else {
            return SemanticLookup::Miss;
        };
        let Some((key, stored)) = state
            .entries
            .get(&best.id)
            .and_then(|e| Some((e.key, e.question.clone()?)))
        else {
            return SemanticLookup::Miss;
        };
        // The guards read both questions' analyses, made here (microseconds) without the lock
        // rather than kept for every stored question (kilobytes each).
        drop(state);
        let verdict = verifier.verify(&Analysis::new(question), &Analysis::new(&stored));
        match verdict.first() {
            None => SemanticLookup::Hit {
                key,
                similarity: best.similarity,
            },
            Some(guard) => SemanticLookup::Rejected {
                guard,
                similarity: best.similarity,
            },
        }
    }

    /// The cosine similarity of the nearest vector in `scope` to `vector`; `None` when the scope
    /// holds none. No verification: this is the prefilter's question, "is anything near?".
    pub fn nearest_similarity(&self, scope: &ScopeKey, vector: &[f32]) -> Option<f32> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.apply_evictions(&mut state);
        let found = state.scopes.get(scope)?;
        match found.index.nearest(vector, 1) {
            Ok(neighbours) => neighbours.first().map(|n| n.similarity),
            Err(e) => {
                tracing::warn!(error = %e, "prefilter lookup failed");
                // Unknown: as if a neighbour were at the top of the scale.
                Some(1.0)
            }
        }
    }

    /// Indexes a stored answer's question under its scope.
    pub fn insert(&self, scope: ScopeKey, key: CacheKey, question: &str, vector: &[f32]) {
        self.insert_entry(scope, key, Some(question.into()), vector);
    }

    /// Indexes a vector with no question to verify (the prefilter's static vectors): found by
    /// [`SemanticIndex::nearest_similarity`], never a [`SemanticLookup::Hit`].
    pub fn insert_vector(&self, scope: ScopeKey, key: CacheKey, vector: &[f32]) {
        self.insert_entry(scope, key, None, vector);
    }

    fn insert_entry(
        &self,
        scope: ScopeKey,
        key: CacheKey,
        question: Option<Box<str>>,
        vector: &[f32],
    ) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.apply_evictions(&mut state);
        if let Some(old) = state.by_key.get(&key).copied() {
            self.remove(&mut state, old);
        }
        let id = state.next_id;
        state.next_id += 1;
        let config = state.config;
        let scope_entry = state.scopes.entry(scope).or_insert_with(|| Scope {
            index: VectorIndex::new(vector.len(), config),
            rebuild: None,
        });
        // A scan that outgrows its threshold becomes a graph on a background thread (below),
        // not here under the lock every lookup takes.
        if let Err(e) = scope_entry.index.insert_keeping_scan(id, vector) {
            tracing::warn!(error = %e, "not indexing a cached question");
            return;
        }
        if let Some(pending) = &mut scope_entry.rebuild {
            pending.changes.push(Change::Insert(id, vector.to_vec()));
        }
        rebuild_if_needed(&self.state, &mut state, scope);
        state.entries.insert(
            id,
            Entry {
                question,
                key,
                scope,
            },
        );
        state.by_key.insert(key, id);
    }

    /// Forgets the question stored under `key` (its answer is gone).
    pub fn forget(&self, key: &CacheKey) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = state.by_key.get(key).copied() {
            self.remove(&mut state, id);
        }
    }

    /// Scopes whose index is being rebuilt on a background thread.
    pub fn rebuilds_running(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .scopes
            .values()
            .filter(|s| s.rebuild.is_some())
            .count()
    }

    /// Questions indexed, over every scope.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether no question is indexed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply_evictions(&self, state: &mut State) {
        let keys =
            std::mem::take(&mut *self.evicted.lock().unwrap_or_else(PoisonError::into_inner));
        for key in keys {
            if let Some(id) = state.by_key.get(&key).copied() {
                self.remove(state, id);
            }
        }
    }

    fn remove(&self, state: &mut State, id: u64) {
        let Some(entry) = state.entries.remove(&id) else {
            return;
        };
        state.by_key.remove(&entry.key);
        let Some(scope) = state.scopes.get_mut(&entry.scope) else {
            return;
        };
        scope.index.remove(id);
        if let Some(pending) = &mut scope.rebuild {
            pending.changes.push(Change::Remove(id));
        }
        if scope.index.is_empty() {
            // A rebuild still running for it finds no scope and is dropped.
            state.scopes.remove(&entry.scope);
        } else {
            rebuild_if_needed(&self.state, state, entry.scope);
        }
    }
}

impl Default for SemanticIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// Rebuilds `scope`'s index once too many of its vectors are dead (at once while it is a
/// small exact scan, on a background thread once it is a graph), and turns a scan that
/// outgrew its threshold into a graph on a background thread (the scan serves meanwhile).
fn rebuild_if_needed(shared: &Arc<Mutex<State>>, state: &mut State, scope: ScopeKey) {
    let Some(found) = state.scopes.get_mut(&scope) else {
        return;
    };
    let outgrew = found.index.outgrew_scan();
    if found.rebuild.is_some() || !(outgrew || found.index.needs_rebuild()) {
        return;
    }
    if !found.index.is_hnsw() && !outgrew {
        found.index = found.index.rebuilt();
        return;
    }
    let Some((generation, snapshot)) = begin_rebuild(state, scope) else {
        return;
    };
    let config = state.config;
    let shared = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new()
        .name("frugal-index-rebuild".into())
        .spawn(move || build_and_swap(&shared, scope, generation, config, snapshot));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for an index rebuild; the old index serves on");
        if let Some(found) = state.scopes.get_mut(&scope) {
            found.rebuild = None;
        }
    }
}

fn begin_rebuild(state: &mut State, scope: ScopeKey) -> Option<(u64, LiveVectors)> {
    let generation = state.next_generation;
    state.next_generation += 1;
    let found = state.scopes.get_mut(&scope)?;
    found.rebuild = Some(PendingRebuild {
        generation,
        changes: Vec::new(),
    });
    Some((generation, found.index.live()))
}

/// Changes made during a rebuild that are replayed onto the fresh index under the lock; more
/// are replayed without it first (a graph insert takes a millisecond or so, and every lookup
/// waits for the lock).
const REPLAY_UNDER_LOCK: usize = 32;

/// Builds a fresh index from `snapshot` without the lock, catches it up with the changes made
/// meanwhile (most of them without the lock too), then swaps it in.
fn build_and_swap(
    shared: &Weak<Mutex<State>>,
    scope: ScopeKey,
    generation: u64,
    config: IndexConfig,
    snapshot: LiveVectors,
) {
    let started = Instant::now();
    let vectors = snapshot.len();
    let mut fresh = VectorIndex::from_live(config, snapshot);
    loop {
        // The cache may have been dropped (a policy change) while this ran.
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pending) = pending_rebuild(&mut state, scope, generation) else {
            return;
        };
        if pending.changes.len() > REPLAY_UNDER_LOCK {
            let changes = std::mem::take(&mut pending.changes);
            drop(state);
            replay(&mut fresh, changes);
            continue;
        }
        let swapped = finish_rebuild(&mut state, scope, generation, fresh);
        // What changed while it was built (removals, a scan's growth) may call for another.
        if swapped {
            rebuild_if_needed(&shared, &mut state, scope);
        }
        tracing::debug!(
            vectors,
            swapped,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "semantic index rebuilt"
        );
        return;
    }
}

/// The rebuild of `scope` from `generation`, if it is still the one wanted.
fn pending_rebuild(
    state: &mut State,
    scope: ScopeKey,
    generation: u64,
) -> Option<&mut PendingRebuild> {
    state
        .scopes
        .get_mut(&scope)?
        .rebuild
        .as_mut()
        .filter(|p| p.generation == generation)
}

/// Applies changes logged against the old index to a fresh one, in order.
fn replay(fresh: &mut VectorIndex, changes: Vec<Change>) {
    for change in changes {
        match change {
            Change::Insert(id, vector) => {
                // The old index accepted this vector, so the new one does too.
                let _ = fresh.insert(id, &vector);
            }
            Change::Remove(id) => {
                fresh.remove(id);
            }
        }
    }
}

/// Replays the changes logged since the snapshot onto `fresh` and makes it the scope's index;
/// false (and nothing changes) when the scope is gone or rebuilding from a later snapshot.
fn finish_rebuild(
    state: &mut State,
    scope: ScopeKey,
    generation: u64,
    mut fresh: VectorIndex,
) -> bool {
    let Some(found) = state.scopes.get_mut(&scope) else {
        return false;
    };
    let Some(pending) = found.rebuild.take_if(|p| p.generation == generation) else {
        return false;
    };
    replay(&mut fresh, pending.changes);
    found.index = fresh;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::random_units;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn hits_need_similarity_and_verification_and_stay_in_their_scope() {
        let index = SemanticIndex::new();
        let verifier = Verifier::default();
        let (scope_a, scope_b) = ([1; 32], [2; 32]);
        let lookup = |scope, question, vector| {
            index.lookup(&SemanticQuery {
                scope,
                question,
                vector,
                threshold: 0.9,
                verifier: &verifier,
            })
        };
        let v = unit(&[1.0, 0.0, 0.1]);
        index.insert(scope_a, [9; 32], "How do I enable logging?", &v);
        let near = unit(&[1.0, 0.02, 0.1]);
        assert!(matches!(
            lookup(&scope_a, "How can I enable logging?", &near),
            SemanticLookup::Hit { key, .. } if key == [9; 32]
        ));
        assert_eq!(
            lookup(&scope_b, "How can I enable logging?", &near),
            SemanticLookup::Miss,
            "never across scopes"
        );
        assert!(matches!(
            lookup(&scope_a, "How do I disable logging?", &near),
            SemanticLookup::Rejected {
                guard: Guard::Antonym,
                ..
            }
        ));
        let far = unit(&[0.0, 1.0, 0.0]);
        assert_eq!(lookup(&scope_a, "Unrelated", &far), SemanticLookup::Miss);
        index.evicted([9; 32]);
        assert_eq!(
            lookup(&scope_a, "How can I enable logging?", &near),
            SemanticLookup::Miss,
            "an evicted answer's question is tombstoned"
        );
        assert!(index.is_empty());
    }

    fn graph_config() -> IndexConfig {
        IndexConfig {
            hnsw_threshold: 8,
            ..IndexConfig::default()
        }
    }

    fn key(i: usize) -> CacheKey {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        k
    }

    fn nearest_key(index: &SemanticIndex, scope: &ScopeKey, v: &[f32]) -> Option<CacheKey> {
        let state = index.state.lock().unwrap();
        let best = state.scopes.get(scope)?.index.nearest(v, 1).unwrap();
        Some(state.entries.get(&best.first()?.id)?.key)
    }

    #[test]
    fn changes_during_a_rebuild_are_replayed_onto_the_new_index() {
        let index = SemanticIndex::with_config(graph_config());
        let scope = [3; 32];
        let data = random_units(40, 16, 9);
        for (i, v) in data.iter().enumerate().take(30) {
            index.insert(scope, key(i), &format!("question {i}"), v);
        }
        let mut state = index.state.lock().unwrap();
        let (generation, snapshot) = begin_rebuild(&mut state, scope).unwrap();
        drop(state);
        // While the new index is built: one answer goes, one arrives.
        index.forget(&key(4));
        index.insert(scope, key(35), "question 35", &data[35]);
        let fresh = VectorIndex::from_live(graph_config(), snapshot);

        let mut state = index.state.lock().unwrap();
        assert!(!finish_rebuild(
            &mut state,
            scope,
            generation + 1,
            fresh.rebuilt()
        ));
        assert!(finish_rebuild(&mut state, scope, generation, fresh));
        assert!(state.scopes[&scope].rebuild.is_none());
        drop(state);
        assert_eq!(nearest_key(&index, &scope, &data[35]), Some(key(35)));
        assert_ne!(nearest_key(&index, &scope, &data[4]), Some(key(4)));
        assert_eq!(nearest_key(&index, &scope, &data[20]), Some(key(20)));
    }

    #[test]
    fn a_scan_that_outgrows_its_threshold_becomes_a_graph_off_the_insert() {
        let index = SemanticIndex::with_config(graph_config());
        let scope = [5; 32];
        let data = random_units(40, 16, 23);
        for (i, v) in data.iter().enumerate() {
            index.insert(scope, key(i), &format!("question {i}"), v);
            // Whatever the index is at this moment, it answers for what it holds.
            assert_eq!(nearest_key(&index, &scope, v), Some(key(i)));
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let state = index.state.lock().unwrap();
            let found = &state.scopes[&scope];
            if found.rebuild.is_none() && found.index.is_hnsw() {
                assert_eq!(found.index.len(), 40);
                break;
            }
            drop(state);
            assert!(Instant::now() < deadline, "the graph never landed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for (i, v) in data.iter().enumerate() {
            assert_eq!(nearest_key(&index, &scope, v), Some(key(i)));
        }
    }

    #[test]
    fn a_graph_with_many_dead_vectors_is_rebuilt_in_the_background() {
        let index = SemanticIndex::with_config(graph_config());
        let scope = [4; 32];
        let data = random_units(60, 16, 21);
        for (i, v) in data.iter().enumerate().take(50) {
            index.insert(scope, key(i), &format!("question {i}"), v);
        }
        for i in 0..25 {
            index.forget(&key(i));
        }
        index.insert(scope, key(55), "question 55", &data[55]);
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let state = index.state.lock().unwrap();
            let found = &state.scopes[&scope];
            if found.rebuild.is_none() && found.index.dead() < 10 {
                assert!(found.index.is_hnsw());
                break;
            }
            drop(state);
            assert!(Instant::now() < deadline, "the rebuild never landed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(nearest_key(&index, &scope, &data[55]), Some(key(55)));
        assert_eq!(nearest_key(&index, &scope, &data[30]), Some(key(30)));
        for (i, v) in data.iter().enumerate().take(25) {
            assert_ne!(nearest_key(&index, &scope, v), Some(key(i)));
        }
    }
}
