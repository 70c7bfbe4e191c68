//! The response cache's semantic tier: a request whose last user message means the same as an
//! earlier one *in the same scope* is answered with the earlier answer. The scope is everything
//! else about the request (tenant, namespace, model, system prompt, tools, sampling parameters,
//! the conversation so far, any context), hashed whole, so a lookup never crosses tenants or
//! contexts. A candidate needs cosine similarity at or above the policy's threshold and must
//! pass verification (numbers, negation, antonyms, quoted strings, identifiers, URLs/paths,
//! entities and word order must agree): similarity alone cannot tell "A sued B" from "B sued A".
//!
//! Vectors live here, answers in the exact tier's store under their exact key; when the store
//! evicts an answer its vector is tombstoned (and the index rebuilt once too many are dead).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use frugal_cache::{Analysis, IndexConfig, VectorIndex, Verifier};
use serde_json::{Map, Value};

use crate::stage::cache::{request_hash, CacheKey};

/// Hash of everything in a request but its last user message.
pub type ScopeKey = [u8; 32];

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
        guard: &'static str,
        /// Cosine similarity of the two questions.
        similarity: f32,
    },
    /// Nothing close enough in the scope.
    Miss,
}

struct Entry {
    question: Analysis,
    key: CacheKey,
    scope: ScopeKey,
}

struct Scope {
    index: VectorIndex,
}

#[derive(Default)]
struct State {
    scopes: HashMap<ScopeKey, Scope>,
    entries: HashMap<u64, Entry>,
    by_key: HashMap<CacheKey, u64>,
    next_id: u64,
}

/// Per-scope vector indexes over stored questions.
#[derive(Default)]
pub struct SemanticIndex {
    state: Mutex<State>,
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
        Self::default()
    }

    /// Notes that the store no longer holds the answer under `key`.
    pub fn evicted(&self, key: CacheKey) {
        self.evicted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
    }

    /// The best verified neighbour of `question` (embedded as `vector`) within `scope`.
    pub fn lookup(
        &self,
        scope: &ScopeKey,
        question: &str,
        vector: &[f32],
        threshold: f32,
        verifier: &Verifier,
    ) -> SemanticLookup {
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
        let Some(entry) = state.entries.get(&best.id) else {
            return SemanticLookup::Miss;
        };
        let verdict = verifier.verify(&Analysis::new(question), &entry.question);
        match verdict.first() {
            None => SemanticLookup::Hit {
                key: entry.key,
                similarity: best.similarity,
            },
            Some(guard) => SemanticLookup::Rejected {
                guard: guard.as_str(),
                similarity: best.similarity,
            },
        }
    }

    /// Indexes a stored answer's question under its scope.
    pub fn insert(&self, scope: ScopeKey, key: CacheKey, question: &str, vector: &[f32]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.apply_evictions(&mut state);
        if let Some(old) = state.by_key.get(&key).copied() {
            remove(&mut state, old);
        }
        let id = state.next_id;
        state.next_id += 1;
        let scope_entry = state.scopes.entry(scope).or_insert_with(|| Scope {
            index: VectorIndex::new(vector.len(), IndexConfig::default()),
        });
        if let Err(e) = scope_entry.index.insert(id, vector) {
            tracing::warn!(error = %e, "not indexing a cached question");
            return;
        }
        if scope_entry.index.needs_rebuild() {
            scope_entry.index = scope_entry.index.rebuilt();
        }
        state.entries.insert(
            id,
            Entry {
                question: Analysis::new(question),
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
            remove(&mut state, id);
        }
    }

    /// Questions indexed, over every scope.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether no question is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply_evictions(&self, state: &mut State) {
        let keys =
            std::mem::take(&mut *self.evicted.lock().unwrap_or_else(PoisonError::into_inner));
        for key in keys {
            if let Some(id) = state.by_key.get(&key).copied() {
                remove(state, id);
            }
        }
    }
}

fn remove(state: &mut State, id: u64) {
    let Some(entry) = state.entries.remove(&id) else {
        return;
    };
    state.by_key.remove(&entry.key);
    let empty = match state.scopes.get_mut(&entry.scope) {
        Some(scope) => {
            scope.index.remove(id);
            if scope.index.needs_rebuild() {
                scope.index = scope.index.rebuilt();
            }
            scope.index.is_empty()
        }
        None => false,
    };
    if empty {
        state.scopes.remove(&entry.scope);
    }
}

/// The semantic scope of a request: tenant, namespace, model alias and every field of the
/// body (canonical, delivery switches aside) with the last user message's content blanked.
/// Everything but the question itself must match for a semantic hit.
pub fn scope(
    tenant: &str,
    namespace: &str,
    model: &str,
    body: &Map<String, Value>,
) -> Option<(ScopeKey, String)> {
    let messages = body.get("messages").and_then(Value::as_array)?;
    let last_user = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    // Only the final turn may differ: a question followed by other turns is not a lookup.
    if last_user + 1 != messages.len() {
        return None;
    }
    let question = crate::tokens::content_text(messages[last_user].get("content"));
    if question.trim().is_empty() {
        return None;
    }
    let mut blanked = messages.clone();
    if let Some(message) = blanked[last_user].as_object_mut() {
        message.insert("content".into(), Value::Null);
    }
    let mut scoped = body.clone();
    scoped.insert("messages".into(), Value::Array(blanked));
    let key = request_hash(b"semantic-scope-v1", tenant, namespace, model, &scoped);
    Some((key, question))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn ask(system: &str, question: &str) -> Map<String, Value> {
        body(json!({"temperature": 0, "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question}]}))
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn the_scope_is_everything_but_the_question() {
        let (a, qa) = scope("t", "ns", "m", &ask("Be brief.", "What is Rust?")).unwrap();
        let (b, _) = scope("t", "ns", "m", &ask("Be brief.", "Tell me about Rust")).unwrap();
        assert_eq!(a, b);
        assert_eq!(qa, "What is Rust?");
        let differs = [
            scope("u", "ns", "m", &ask("Be brief.", "What is Rust?")),
            scope("t", "other", "m", &ask("Be brief.", "What is Rust?")),
            scope("t", "ns", "m2", &ask("Be brief.", "What is Rust?")),
            scope("t", "ns", "m", &ask("Be verbose.", "What is Rust?")),
        ];
        for other in differs {
            assert_ne!(other.unwrap().0, a);
        }
        let mut with_tools = ask("Be brief.", "What is Rust?");
        with_tools.insert("tools".into(), json!([{"type": "function"}]));
        assert_ne!(scope("t", "ns", "m", &with_tools).unwrap().0, a);
        let mut streamed = ask("Be brief.", "What is Rust?");
        streamed.insert("stream".into(), json!(true));
        assert_eq!(scope("t", "ns", "m", &streamed).unwrap().0, a);
    }

    #[test]
    fn hits_need_similarity_and_verification_and_stay_in_their_scope() {
        let index = SemanticIndex::new();
        let verifier = Verifier::default();
        let (scope_a, scope_b) = ([1; 32], [2; 32]);
        let v = unit(&[1.0, 0.0, 0.1]);
        index.insert(scope_a, [9; 32], "How do I enable logging?", &v);
        let near = unit(&[1.0, 0.02, 0.1]);
        assert!(matches!(
            index.lookup(&scope_a, "How can I enable logging?", &near, 0.9, &verifier),
            SemanticLookup::Hit { key, .. } if key == [9; 32]
        ));
        assert_eq!(
            index.lookup(&scope_b, "How can I enable logging?", &near, 0.9, &verifier),
            SemanticLookup::Miss,
            "never across scopes"
        );
        assert!(matches!(
            index.lookup(&scope_a, "How do I disable logging?", &near, 0.9, &verifier),
            SemanticLookup::Rejected {
                guard: "antonym",
                ..
            }
        ));
        let far = unit(&[0.0, 1.0, 0.0]);
        assert_eq!(
            index.lookup(&scope_a, "Unrelated", &far, 0.9, &verifier),
            SemanticLookup::Miss
        );
        index.evicted([9; 32]);
        assert_eq!(
            index.lookup(&scope_a, "How can I enable logging?", &near, 0.9, &verifier),
            SemanticLookup::Miss,
            "an evicted answer's question is tombstoned"
        );
        assert!(index.is_empty());
    }
}
