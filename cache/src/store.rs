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

/// What the store needs to know of an answer: the memory it takes, which the byte bound counts.
pub trait Weighted {
    /// The bytes of memory it holds, its own struct included (saturating at `u32::MAX`).
    fn weight(&self) -> u32;
}

/// Memory of one entry of the store besides its answer: the key, moka's own bookkeeping
/// (its hash table, LRU and expiry queues) and the answer's `Arc`. Measured, with the next two,
/// by `router/examples/cache_memory.rs` (jemalloc, 4,000–50,000 entries of real prompts in one
/// scope): what is counted is within 1% of the process's resident growth for answers alone,
/// 1–8% above it for answers with their questions, and more for questions from other replicas
/// (it never counts less than is held).
pub const STORE_ENTRY_BYTES: u32 = 200;
/// Memory of one question in the semantic tier besides its text: its vector in the scope's
/// index (a 384-dimension f32 row while the scope is an exact scan, ~2.5 KB with the maps as
/// measured at 4,000 entries; once it is a graph, an int8 node with its links and its int8
/// residual for the re-rank, ~2.0 KB + 384 bytes at 20,000–50,000), and the entry and key maps.
/// The graph's figure with a margin, so a scan over-counts a little.
pub const SEMANTIC_ENTRY_BYTES: u32 = 2900;
/// Memory of one question's static vector in the prefilter's index (256 dimensions, as above:
/// 0.6–0.9 KB measured).
pub const PREFILTER_ENTRY_BYTES: u32 = 900;

/// What the store holds under a key: an answer, or only a question indexed from another replica
/// (whose answer lives there), so that both count towards the byte bound and expire.
struct Held<A> {
    /// The answer; `None` for a question whose answer this store does not hold.
    answer: Option<Arc<A>>,
    /// Bytes the key's questions take in the semantic tier and the prefilter.
    indexed: u32,
}

impl<A> Clone for Held<A> {
    fn clone(&self) -> Self {
        Self {
            answer: self.answer.clone(),
            indexed: self.indexed,
        }
    }
}

impl<A: Weighted> Held<A> {
    /// Bytes it counts towards the bound.
    fn weight(&self) -> u32 {
        let answer = self.answer.as_ref().map_or(0, |a| a.weight());
        STORE_ENTRY_BYTES
            .saturating_add(answer)
            .saturating_add(self.indexed)
    }
}

/// What the store tells its owner as it changes (the crate keeps no metrics of its own).
pub trait StoreEvents: Send + Sync + 'static {
    /// An entry left for room or age.
    fn evicted(&self) {}
    /// The store's size after an insert: answers and bytes held.
    fn resized(&self, _entries: u64, _bytes: u64) {}
}

/// Events nobody listens to.
impl StoreEvents for () {}

/// How much the store keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes of memory held at most: answers and their questions' index entries (least recently
    /// used go first).
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
    store: moka::sync::Cache<CacheKey, Held<A>>,
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
            .weigher(|_key: &CacheKey, held: &Held<A>| held.weight())
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
        self.store.get(key)?.answer
    }

    /// Entries held and the bytes they count towards [`StoreLimits::max_bytes`], once the
    /// store's pending bookkeeping is done.
    pub fn size(&self) -> (u64, u64) {
        self.store.run_pending_tasks();
        (self.store.entry_count(), self.store.weighted_size())
    }

    /// Scopes whose index (the semantic tier's or the prefilter's) is being rebuilt on a
    /// background thread.
    pub fn rebuilds_running(&self) -> usize {
        self.semantic.rebuilds_running()
            + self
                .prefilter
                .as_ref()
                .map_or(0, |p| p.index().rebuilds_running())
    }

    /// Stores an answer in its slot: the exact tier and, with a semantic entry, the index.
    pub fn store(&self, slot: CacheSlot, answer: A) {
        let indexed = slot
            .semantic
            .as_ref()
            .map_or(0, |entry| self.index_bytes(&entry.question));
        let held = Held {
            answer: Some(Arc::new(answer)),
            indexed,
        };
        self.store.insert(slot.key, held);
        self.resized();
        if let Some(entry) = slot.semantic {
            self.index_if_held(slot.key, entry);
        }
    }

    /// Stores an answer under its exact key only (one fetched from another replica, whose
    /// question the index already has or does not need).
    pub fn store_exact(&self, key: CacheKey, answer: Arc<A>) {
        // The key's question, when indexed here, keeps counting.
        self.store.entry(key).and_upsert_with(|held| Held {
            answer: Some(answer),
            indexed: held.map_or(0, |h| h.into_value().indexed),
        });
        self.resized();
    }

    /// Indexes a question whose answer lives elsewhere under `key` (another replica stored
    /// it); a hit on it is [`Similar::Absent`] until the answer is fetched. The question counts
    /// towards the byte bound and expires with the TTL like a stored answer, so a replica
    /// following a busy fleet holds only as many as fit.
    pub fn index_elsewhere(&self, key: CacheKey, entry: SemanticSlot) {
        let indexed = self.index_bytes(&entry.question);
        self.store.entry(key).and_upsert_with(|held| Held {
            answer: held.and_then(|h| h.into_value().answer),
            indexed,
        });
        self.resized();
        self.index_if_held(key, entry);
    }

    /// Adds the embedding of a question stored without one ([`SemanticSlot::vector`] `None`),
    /// unless its answer is gone meanwhile. (One evicted between the check and the insert is
    /// [`Similar::Absent`] at its next hit, as with [`ResponseCache::store`].)
    pub fn index_embedding(&self, key: CacheKey, entry: &SemanticSlot, vector: &[f32]) {
        if self.store.contains_key(&key) {
            self.semantic
                .insert(entry.scope, key, &entry.question, vector);
        }
    }

    /// Notes that a question stored without its embedding will not get one (the embedding
    /// worker had no room for it): its answer stays, for the exact tier, and no longer counts
    /// the semantic entry it was stored with room for.
    pub fn embedding_dropped(&self, key: CacheKey) {
        let indexed = self.prefilter_bytes();
        self.store.entry(key).and_compute_with(|held| match held {
            Some(held) if held.value().indexed > indexed => {
                let answer = held.into_value().answer;
                moka::ops::compute::Op::Put(Held { answer, indexed })
            }
            _ => moka::ops::compute::Op::Nop,
        });
        self.resized();
    }

    /// Drops a key's question from the semantic index (its answer is gone everywhere).
    pub fn forget(&self, key: &CacheKey) {
        // What held only the question goes too.
        self.store.entry(*key).and_compute_with(|held| match held {
            Some(h) if h.value().answer.is_none() => moka::ops::compute::Op::Remove,
            _ => moka::ops::compute::Op::Nop,
        });
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

    /// Bytes a question takes in the semantic tier (and the prefilter, when on).
    fn index_bytes(&self, question: &str) -> u32 {
        let text = u32::try_from(question.len()).unwrap_or(u32::MAX);
        SEMANTIC_ENTRY_BYTES
            .saturating_add(text)
            .saturating_add(self.prefilter_bytes())
    }

    /// Bytes a question takes in the prefilter (none without one).
    fn prefilter_bytes(&self) -> u32 {
        if self.prefilter.is_some() {
            PREFILTER_ENTRY_BYTES
        } else {
            0
        }
    }

    /// Tells the owner the store's size after a change.
    fn resized(&self) {
        let (entries, bytes) = self.size();
        self.events.resized(entries, bytes);
    }

    /// Indexes a question under `key` if the store took the key in: moka may refuse a new
    /// entry room (it admits by how often keys are used), and a question indexed without one
    /// would count towards no bound and never leave.
    fn index_if_held(&self, key: CacheKey, entry: SemanticSlot) {
        if self.store.contains_key(&key) {
            self.index(key, entry);
        }
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

    /// What an answer of [`Answer`]'s 100 bytes with an indexed `question` counts (no
    /// prefilter).
    fn entry_bytes(question: &str) -> u64 {
        u64::from(STORE_ENTRY_BYTES + 100 + SEMANTIC_ENTRY_BYTES) + question.len() as u64
    }

    #[test]
    fn an_evicted_answer_is_reported_and_its_question_tombstoned() {
        let events = Arc::new(Counted::default());
        let room = entry_bytes("second question") * 3 / 2;
        let cache = ResponseCache::new(limits(room), events.clone());
        cache.store(slot(1, "first question", &[1.0, 0.0]), Answer("one"));
        cache.store(slot(2, "second question", &[0.0, 1.0]), Answer("two"));
        // Room for one answer and its question: one of the two went, and its vector with it
        // (or was refused room, and not indexed).
        assert_eq!(events.entries.load(Ordering::Relaxed), 1);
        let verifier = Verifier::new(crate::GuardSet::NONE);
        let mut hits = 0;
        for vector in [[1.0, 0.0], [0.0, 1.0]] {
            if let Similar::Hit { .. } =
                cache.find_similar(&query(&[1; 32], "question", &vector, &verifier))
            {
                hits += 1;
            }
        }
        assert_eq!(hits, 1);
        assert_eq!(cache.semantic.len(), 1);
    }

    /// An answer that says which question it answers.
    #[derive(Debug, PartialEq)]
    struct Numbered(u64);

    impl Weighted for Numbered {
        fn weight(&self) -> u32 {
            100
        }
    }

    #[test]
    fn concurrent_stores_and_lookups_stay_within_the_bound_and_never_serve_another_answer() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 2500;
        let question = |n: u64| format!("question {n}");
        // Room for ~5,000 of the 10,000 entries: evictions race with stores and lookups, and
        // the scope's index outgrows its scan (4,096) and moves to a graph on the way.
        let room = entry_bytes(&question(THREADS * PER_THREAD)) * 5000;
        let cache: ResponseCache<Numbered> = ResponseCache::new(limits(room), Arc::new(()));
        let vectors = crate::synthetic::random_units((THREADS * PER_THREAD) as usize, 64, 23);
        let verifier = Verifier::new(crate::GuardSet::NONE);
        let hits = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (cache, vectors, verifier, hits) = (&cache, &vectors, &verifier, &hits);
                s.spawn(move || {
                    for n in t * PER_THREAD..(t + 1) * PER_THREAD {
                        let mut key = [0u8; 32];
                        key[..8].copy_from_slice(&n.to_le_bytes());
                        let vector = &vectors[n as usize];
                        let slot = CacheSlot {
                            key,
                            semantic: Some(SemanticSlot {
                                scope: [1; 32],
                                question: question(n),
                                vector: Some(vector.clone()),
                            }),
                        };
                        cache.store(slot, Numbered(n));
                        // Look up a question stored a little earlier, by this or another thread.
                        let earlier = n.saturating_sub(37 * (t + 1));
                        let asked = question(earlier);
                        let vector = &vectors[earlier as usize];
                        let found = cache.find_similar(&query(&[1; 32], &asked, vector, verifier));
                        if let Similar::Hit { answer, .. } = found {
                            assert_eq!(*answer, Numbered(earlier), "another question's answer");
                            hits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let (entries, bytes) = cache.size();
        assert!(
            bytes <= room,
            "{bytes} bytes counted past the bound of {room}"
        );
        assert!(entries > 0 && entries < THREADS * PER_THREAD);
        assert!(
            hits.load(Ordering::Relaxed) > 0,
            "no lookup found its question"
        );
    }

    #[test]
    fn the_bound_counts_each_question_with_its_answer() {
        let cache = ResponseCache::new(limits(1 << 20), Arc::new(()));
        cache.store(slot(1, "first question", &[1.0, 0.0]), Answer("one"));
        cache.store_exact([2; 32], Arc::new(Answer("two")));
        let exact_only = u64::from(STORE_ENTRY_BYTES + 100);
        assert_eq!(
            cache.size(),
            (2, entry_bytes("first question") + exact_only)
        );
    }

    #[test]
    fn a_question_left_unembedded_stops_counting_its_semantic_entry() {
        let cache = ResponseCache::new(limits(1 << 20), Arc::new(()));
        let mut unembedded = slot(1, "first question", &[1.0, 0.0]);
        if let Some(entry) = unembedded.semantic.as_mut() {
            entry.vector = None;
        }
        cache.store(unembedded, Answer("one"));
        assert_eq!(cache.size().1, entry_bytes("first question"));
        cache.embedding_dropped([1; 32]);
        assert_eq!(cache.size(), (1, u64::from(STORE_ENTRY_BYTES + 100)));
        assert_eq!(cache.get(&[1; 32]).as_deref(), Some(&Answer("one")));
    }

    #[test]
    fn questions_from_other_replicas_count_towards_the_bound_and_leave_with_it() {
        let room = entry_bytes("question 00") * 10;
        let cache: ResponseCache<Answer> = ResponseCache::new(limits(room), Arc::new(()));
        for i in 0..100u8 {
            let entry = SemanticSlot {
                scope: [1; 32],
                question: format!("question {i:02}"),
                vector: Some(vec![1.0, f32::from(i)]),
            };
            cache.index_elsewhere([i; 32], entry);
        }
        let (held, bytes) = cache.size();
        assert!(bytes <= room, "{bytes} bytes held in a bound of {room}");
        assert!((1..=10).contains(&held), "{held} held");
        // Each question left the index with its place in the store.
        assert_eq!(cache.semantic.len() as u64, held);
    }

    #[test]
    fn a_fetched_answer_keeps_its_question_counted_and_a_forgotten_question_leaves() {
        let cache: ResponseCache<Answer> = ResponseCache::new(limits(1 << 20), Arc::new(()));
        let entry = |question: &str| SemanticSlot {
            scope: [1; 32],
            question: question.into(),
            vector: Some(vec![1.0, 0.0]),
        };
        cache.index_elsewhere([7; 32], entry("fetched question"));
        cache.index_elsewhere([8; 32], entry("forgotten question"));
        assert_eq!(cache.get(&[7; 32]), None, "only the question is held");
        let question_only = u64::from(STORE_ENTRY_BYTES + SEMANTIC_ENTRY_BYTES);
        assert_eq!(cache.size().1, 2 * question_only + 34);
        cache.store_exact([7; 32], Arc::new(Answer("fetched")));
        cache.forget(&[8; 32]);
        assert_eq!(cache.size(), (1, entry_bytes("fetched question")));
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
