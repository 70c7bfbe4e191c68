//! The response cache itself: answers under their exact key, bounded by bytes and expiring
//! after a TTL (moka), and the semantic tier's index over their questions. When the store
//! evicts an answer, its question's vector is tombstoned, so the semantic tier never finds an
//! answer that is gone. The store keeps no metrics: it reports evictions and its size through
//! [`StoreEvents`], for the caller to count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::notification::RemovalCause;

use crate::prefilter::{Prefilter, Screened};
use crate::scope::{CacheKey, ScopeKey};
use crate::semantic::{SemanticIndex, SemanticLookup, SemanticQuery};
use crate::static_embed::StaticEmbedder;
use crate::verify::Guard;

/// What the store needs to know of an answer: the bytes it takes, which the byte bound counts.
pub trait Weighted {
    /// Its size in bytes (saturating at `u32::MAX`).
    fn weight(&self) -> u32;
}

/// What the store tells its owner as it changes (the crate keeps no metrics of its own).
pub trait StoreEvents: Send + Sync + 'static {
    /// An answer left for room or age.
    fn evicted(&self) {}
    /// The store's size after an insert: answers and bytes held.
    fn resized(&self, _entries: u64, _bytes: u64) {}
}

/// Events nobody listens to.
impl StoreEvents for () {}

/// How much the store keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes of answers held at most (least recently used go first).
    pub max_bytes: u64,
    /// How long an answer is served after it was stored.
    pub ttl: Duration,
}

/// Where a fresh answer goes: its exact key and, when the semantic tier is on and the question
/// was embedded, its semantic entry.
#[derive(Debug, Clone)]
pub struct CacheSlot {
    /// The exact-tier key.
    pub key: CacheKey,
    /// The semantic entry.
    pub semantic: Option<SemanticSlot>,
}

/// A question to index once its answer is stored.
#[derive(Debug, Clone)]
pub struct SemanticSlot {
    /// Its scope.
    pub scope: ScopeKey,
    /// The question's words.
    pub question: String,
    /// Its embedding; `None` while it waits to be embedded after the answer is sent (the
    /// prefilter kept the model off the request path), when
    /// [`ResponseCache::index_embedding`] adds it.
    pub vector: Option<Vec<f32>>,
}

/// What the semantic tier found for a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Similar<A> {
    /// A verified earlier question whose answer the store still holds.
    Hit {
        /// The answer.
        answer: Arc<A>,
        /// Cosine similarity of the two questions.
        similarity: f32,
    },
    /// The nearest earlier question was similar enough but a guard told them apart.
    Rejected {
        /// The first guard that fired.
        guard: Guard,
        /// Cosine similarity of the two questions.
        similarity: f32,
    },
    /// A verified earlier question whose answer this store does not hold: gone before its
    /// eviction reached the index, or indexed from another replica's entry. The caller fetches
    /// it from where it lives, or [`ResponseCache::forget`]s the key.
    Absent {
        /// The exact key of the answer.
        key: CacheKey,
        /// Cosine similarity of the two questions.
        similarity: f32,
    },
    /// Nothing close enough in the scope.
    Miss,
}

/// The two tiers of stored answers of type `A`.
pub struct ResponseCache<A> {
    store: moka::sync::Cache<CacheKey, Arc<A>>,
    semantic: Arc<SemanticIndex>,
    prefilter: Option<Prefilter>,
    /// Questions stored without their embedding whose embedding is still being computed.
    unembedded: Arc<AtomicUsize>,
    events: Arc<dyn StoreEvents>,
}

/// Counts one question whose embedding is being computed after its answer was stored, until
/// dropped (see [`ResponseCache::embedding_pending`]).
#[derive(Debug)]
pub struct PendingEmbedding(Arc<AtomicUsize>);

impl Drop for PendingEmbedding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<A> std::fmt::Debug for ResponseCache<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.store.entry_count())
            .finish_non_exhaustive()
    }
}

impl<A: Weighted + Send + Sync + 'static> ResponseCache<A> {
    /// An empty cache within `limits`, telling `events` of evictions and of its size.
    pub fn new(limits: StoreLimits, events: Arc<dyn StoreEvents>) -> Self {
        Self::with_prefilter(limits, events, None)
    }

    /// Like [`ResponseCache::new`], with the semantic tier's prefilter over `prefilter`'s static
    /// vectors when given (see [`ResponseCache::screen`]).
    pub fn with_prefilter(
        limits: StoreLimits,
        events: Arc<dyn StoreEvents>,
        prefilter: Option<Arc<StaticEmbedder>>,
    ) -> Self {
        let semantic = Arc::new(SemanticIndex::new());
        let prefilter = prefilter.map(Prefilter::new);
        let tombstones = semantic.clone();
        let prefilter_tombstones = prefilter.as_ref().map(|p| p.index().clone());
        let on_evict = events.clone();
        let store = moka::sync::Cache::builder()
            .max_capacity(limits.max_bytes)
            .weigher(|_key: &CacheKey, answer: &Arc<A>| answer.weight())
            .time_to_live(limits.ttl)
            .eviction_listener(move |key: Arc<CacheKey>, _answer, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    on_evict.evicted();
                    tombstones.evicted(*key);
                    if let Some(index) = &prefilter_tombstones {
                        index.evicted(*key);
                    }
                }
            })
            .build();
        Self {
            store,
            semantic,
            prefilter,
            unembedded: Arc::default(),
            events,
        }
    }

    /// The answer stored under an exact key.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<A>> {
        self.store.get(key)
    }

    /// Stores an answer in its slot: the exact tier and, with a semantic entry, the index.
    pub fn store(&self, slot: CacheSlot, answer: A) {
        self.store.insert(slot.key, Arc::new(answer));
        self.store.run_pending_tasks();
        self.events
            .resized(self.store.entry_count(), self.store.weighted_size());
        if let Some(entry) = slot.semantic {
            self.index(slot.key, entry);
        }
    }

    /// Stores an answer under its exact key only (one fetched from another replica, whose
    /// question the index already has or does not need).
    pub fn store_exact(&self, key: CacheKey, answer: Arc<A>) {
        self.store.insert(key, answer);
        self.store.run_pending_tasks();
        self.events
            .resized(self.store.entry_count(), self.store.weighted_size());
    }

    /// Indexes a question whose answer lives elsewhere under `key` (another replica stored
    /// it); a hit on it is [`Similar::Absent`] until the answer is fetched.
    pub fn index_elsewhere(&self, key: CacheKey, entry: SemanticSlot) {
        self.index(key, entry);
    }

    /// Adds the embedding of a question stored without one ([`SemanticSlot::vector`] `None`). As
    /// with [`ResponseCache::store`], an answer gone meanwhile makes a later hit on it
    /// [`Similar::Absent`].
    pub fn index_embedding(&self, key: CacheKey, entry: &SemanticSlot, vector: &[f32]) {
        self.semantic
            .insert(entry.scope, key, &entry.question, vector);
    }

    /// Drops a key's question from the semantic index (its answer is gone everywhere).
    pub fn forget(&self, key: &CacheKey) {
        self.semantic.forget(key);
        if let Some(prefilter) = &self.prefilter {
            prefilter.forget(key);
        }
    }

    /// Marks a question stored without its embedding as being embedded, until the returned
    /// guard is dropped.
    pub fn embedding_pending(&self) -> PendingEmbedding {
        self.unembedded.fetch_add(1, Ordering::AcqRel);
        PendingEmbedding(self.unembedded.clone())
    }

    /// Questions stored without their embedding whose embedding is still being computed (an
    /// offline replay waits for none before its next request, so its figures do not depend on
    /// timing).
    pub fn embeddings_pending(&self) -> usize {
        self.unembedded.load(Ordering::Acquire)
    }

    /// Whether the prefilter is on (the cache was built with static vectors).
    pub fn has_prefilter(&self) -> bool {
        self.prefilter.is_some()
    }

    /// What the prefilter says of `question` in `scope` at `threshold` (a static-vector
    /// cosine); `None` without a prefilter. A question that is not [`Screened::is_near`] has no
    /// stored question the semantic tier could serve, so its embedding can wait.
    pub fn screen(&self, scope: &ScopeKey, question: &str, threshold: f32) -> Option<Screened> {
        let prefilter = self.prefilter.as_ref()?;
        Some(prefilter.screen(scope, question, threshold))
    }

    /// Indexes a question under `key`: its static vector for the prefilter, and its embedding
    /// when it has one.
    fn index(&self, key: CacheKey, entry: SemanticSlot) {
        if let Some(prefilter) = &self.prefilter {
            prefilter.insert(entry.scope, key, &entry.question);
        }
        if let Some(vector) = &entry.vector {
            self.semantic
                .insert(entry.scope, key, &entry.question, vector);
        }
    }

    /// The answer to the best verified earlier question like the query's, within its scope.
    pub fn find_similar(&self, query: &SemanticQuery<'_>) -> Similar<A> {
        match self.semantic.lookup(query) {
            SemanticLookup::Hit { key, similarity } => match self.get(&key) {
                Some(answer) => Similar::Hit { answer, similarity },
                None => Similar::Absent { key, similarity },
            },
            SemanticLookup::Rejected { guard, similarity } => {
                Similar::Rejected { guard, similarity }
            }
            SemanticLookup::Miss => Similar::Miss,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::verify::Verifier;

    #[derive(Debug, PartialEq)]
    struct Answer(&'static str);

    impl Weighted for Answer {
        fn weight(&self) -> u32 {
            100
        }
    }

    #[derive(Default)]
    struct Counted {
        evicted: AtomicU64,
        entries: AtomicU64,
    }

    impl StoreEvents for Counted {
        fn evicted(&self) {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }

        fn resized(&self, entries: u64, _bytes: u64) {
            self.entries.store(entries, Ordering::Relaxed);
        }
    }

    fn limits(max_bytes: u64) -> StoreLimits {
        StoreLimits {
            max_bytes,
            ttl: Duration::from_secs(60),
        }
    }

    fn slot(key: u8, question: &str, vector: &[f32]) -> CacheSlot {
        CacheSlot {
            key: [key; 32],
            semantic: Some(SemanticSlot {
                scope: [1; 32],
                question: question.into(),
                vector: Some(vector.to_vec()),
            }),
        }
    }

    /// A lookup of `question` (embedded as `vector`) in `scope`, at 0.9 with `verifier`.
    fn query<'a>(
        scope: &'a ScopeKey,
        question: &'a str,
        vector: &'a [f32],
        verifier: &'a Verifier,
    ) -> SemanticQuery<'a> {
        SemanticQuery {
            scope,
            question,
            vector,
            threshold: 0.9,
            verifier,
        }
    }

    #[test]
    fn a_stored_answer_is_found_exactly_and_by_a_verified_similar_question() {
        let cache = ResponseCache::new(limits(10_000), Arc::new(()));
        let question = "How do I enable logging?";
        cache.store(slot(9, question, &[1.0, 0.0]), Answer("on"));
        assert_eq!(cache.get(&[9; 32]).as_deref(), Some(&Answer("on")));
        let verifier = Verifier::default();
        let find =
            |scope, question| cache.find_similar(&query(scope, question, &[1.0, 0.0], &verifier));
        assert!(matches!(
            find(&[1; 32], "How can I enable logging?"),
            Similar::Hit { answer, .. } if *answer == Answer("on")
        ));
        assert!(matches!(
            find(&[1; 32], "How do I disable logging?"),
            Similar::Rejected {
                guard: Guard::Antonym,
                ..
            }
        ));
        assert_eq!(
            find(&[2; 32], "How can I enable logging?"),
            Similar::Miss,
            "never across scopes"
        );
    }

    #[test]
    fn an_evicted_answer_is_reported_and_its_question_tombstoned() {
        let events = Arc::new(Counted::default());
        let cache = ResponseCache::new(limits(150), events.clone());
        cache.store(slot(1, "first question", &[1.0, 0.0]), Answer("one"));
        cache.store(slot(2, "second question", &[0.0, 1.0]), Answer("two"));
        // Room for one answer of 100 bytes: one of the two went, and its vector with it.
        assert_eq!(events.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(events.entries.load(Ordering::Relaxed), 1);
        let verifier = Verifier::new(crate::GuardSet::NONE);
        let mut hits = 0;
        for vector in [[1.0, 0.0], [0.0, 1.0]] {
            match cache.find_similar(&query(&[1; 32], "question", &vector, &verifier)) {
                Similar::Hit { .. } => hits += 1,
                // Indexed after its answer was refused room: the caller forgets it.
                Similar::Absent { key, .. } => cache.forget(&key),
                _ => {}
            }
        }
        assert_eq!(hits, 1);
        assert_eq!(cache.semantic.len(), 1);
    }

    #[test]
    fn a_question_whose_answer_is_elsewhere_is_absent_until_fetched_or_forgotten() {
        let cache: ResponseCache<Answer> = ResponseCache::new(limits(10_000), Arc::new(()));
        let question = "How do I enable logging?";
        let entry = SemanticSlot {
            scope: [1; 32],
            question: question.into(),
            vector: Some(vec![1.0, 0.0]),
        };
        cache.index_elsewhere([7; 32], entry);
        let verifier = Verifier::default();
        let find = || cache.find_similar(&query(&[1; 32], question, &[1.0, 0.0], &verifier));
        assert!(matches!(find(), Similar::Absent { key, .. } if key == [7; 32]));
        cache.store_exact([7; 32], Arc::new(Answer("fetched")));
        assert!(matches!(find(), Similar::Hit { answer, .. } if *answer == Answer("fetched")));
        cache.forget(&[7; 32]);
        assert_eq!(find(), Similar::Miss);
    }
}
