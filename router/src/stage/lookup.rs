//! The cache lookup stage: the exact tier first, then the semantic tier, within the request's
//! tenant, namespace and scope. It returns what to serve (if the policy serves hits) and the
//! slot where a fresh answer will be stored.

use std::sync::Arc;

use frugal_cache::{
    CacheKey, CacheScope, CacheSlot, CacheTier, Guard, SemanticQuery, SemanticSlot, Similar,
    TierResult,
};
use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::metrics;
use crate::policy::{CacheMode, Policy};
use crate::shared::answers::Fetched;
use crate::stage::cache::{self, CacheControl, CachedAnswer, Lookup};
use crate::stage::semantic::{self, SemanticScope};
use crate::stage::shadow::ShadowCandidate;

/// What the lookup decided.
#[derive(Debug)]
pub struct CacheOutcome {
    /// For the header and metrics.
    pub lookup: Lookup,
    /// The answer to serve, when the cache is on and found one.
    pub serve: Option<Arc<CachedAnswer>>,
    /// Similarity of a semantic candidate (hit, shadow hit or rejected).
    pub similarity: Option<f32>,
    /// The guard that rejected a semantic candidate.
    pub guard: Option<Guard>,
    /// Where to store a fresh answer.
    pub slot: Option<CacheSlot>,
    /// In shadow mode, the answer the cache would have served, and its tier.
    pub shadow: Option<ShadowCandidate>,
}

impl CacheOutcome {
    fn bypass() -> Self {
        Self {
            lookup: Lookup::Bypass,
            serve: None,
            similarity: None,
            guard: None,
            slot: None,
            shadow: None,
        }
    }

    /// Takes an answer `tier` found: served when the cache serves hits, kept for the shadow
    /// comparison when it only counts them.
    fn found(&mut self, tier: CacheTier, answer: Arc<CachedAnswer>, serves: bool) {
        metrics::record_cache_lookup(tier, TierResult::found(serves));
        self.lookup = match (serves, tier) {
            (false, _) => Lookup::ShadowHit,
            (true, CacheTier::Exact) => Lookup::Exact,
            (true, CacheTier::Semantic) => Lookup::Semantic,
        };
        if serves {
            self.serve = Some(answer);
        } else {
            self.shadow = Some(ShadowCandidate {
                tier,
                cached: answer,
            });
        }
    }
}

/// Whether the semantic tier would look this request up (so its question is worth embedding).
pub fn wants_semantic(policy: &Policy, ctx: &RequestContext, body: &Map<String, Value>) -> bool {
    let settings = &policy.cache;
    settings.mode != CacheMode::Off
        && settings.semantic.is_some()
        && ctx.cache_control != CacheControl::Bypass
        && cache::eligible(settings, body)
}

/// The request's exact-tier key, or `None` when the cache is off, the client bypasses it or
/// the request may not be cached.
pub fn exact_key(
    policy: &Policy,
    ctx: &RequestContext,
    model: &str,
    body: &Map<String, Value>,
) -> Option<CacheKey> {
    let settings = &policy.cache;
    let wanted = settings.mode != CacheMode::Off && ctx.cache_control != CacheControl::Bypass;
    (wanted && cache::eligible(settings, body))
        .then(|| cache_scope(policy, ctx, model).exact_key(body))
}

/// Whose answers the request may be served from.
fn cache_scope<'a>(policy: &'a Policy, ctx: &'a RequestContext, model: &'a str) -> CacheScope<'a> {
    CacheScope {
        tenant: &ctx.cache_tenant,
        namespace: policy.cache_namespace(&ctx.cache_tenant),
        model,
    }
}

/// Whether the exact tier holds an answer for `key` the cache would serve now (mode on, no
/// refresh), so the request needs no embedding and no routing. An answer this replica lacks
/// is asked of the shared tier first (and kept here when found), before any embedding.
pub async fn exact_hit_ready(
    policy: &Policy,
    ctx: &RequestContext,
    key: Option<&CacheKey>,
) -> bool {
    let Some(key) = key.filter(|_| serves_at_once(policy, ctx)) else {
        return false;
    };
    ctx.cache.get(key).is_some() || fetch_shared(ctx, *key, CacheTier::Exact).await.is_some()
}

/// The request's semantic scope and question, when the semantic tier would look it up (see
/// [`wants_semantic`]: not for a client's bypass or a request the cache may not hold) and it
/// has a question (computed once per request, for the prefilter, the embedding, the lookup and
/// the store).
pub fn semantic_scope(
    policy: &Policy,
    ctx: &RequestContext,
    model: &str,
    body: &Map<String, Value>,
) -> Option<SemanticScope> {
    if !wants_semantic(policy, ctx, body) {
        return None;
    }
    let markers = &policy.trim.markers;
    semantic::scope(&cache_scope(policy, ctx, model), body, markers)
}

/// Whether the semantic tier's prefilter rules out every stored question of the request's
/// scope, so the question's embedding can wait until after the answer (see
/// `cache.semantic_prefilter`). False without a prefilter, or when the request has no semantic
/// scope (its lookup is skipped anyway).
pub fn prefilter_rules_out(
    policy: &Policy,
    ctx: &RequestContext,
    semantic_scope: Option<&SemanticScope>,
) -> bool {
    let Some(threshold) = policy.cache.semantic.as_ref().and_then(|s| s.prefilter) else {
        return false;
    };
    let Some((scope, question)) = semantic_scope.filter(|_| ctx.cache.has_prefilter()) else {
        return false;
    };
    ctx.cache
        .screen(scope, question, threshold)
        .is_some_and(|screened| !screened.is_near())
}

/// Whether an exact hit would be served before anything else is done (mode on, no refresh):
/// then [`exact_hit_ready`] has already asked the shared tier for the exact key.
fn serves_at_once(policy: &Policy, ctx: &RequestContext) -> bool {
    policy.cache.mode == CacheMode::On && ctx.cache_control == CacheControl::Default
}

/// The question's embedding, as the semantic tier sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuestionVector<'a> {
    /// The embedding of the whole question.
    Ready(&'a [f32]),
    /// No embedding (none in time, or no model): the semantic tier is skipped.
    Missing,
    /// The prefilter found no stored question near enough to be served: the semantic tier is a
    /// miss without the embedding, which is computed after the answer is sent, for storing.
    Deferred,
    /// The question is longer than `cache.semantic_max_tokens` (at most what the model reads,
    /// past which its vector would stand for its beginning only): it is neither looked up nor
    /// stored in the semantic tier, and, unrouted, not embedded at all.
    TooLong,
}

/// Looks a request up under its [`exact_key`] and, in the semantic tier, its
/// [`semantic_scope`]; `vector` is its question's embedding. With a shared tier, what this
/// replica lacks is asked of Redis: the exact key on a local miss, and the answer of a semantic
/// neighbour another replica stored.
pub async fn look_up(
    policy: &Policy,
    ctx: &RequestContext,
    key: Option<CacheKey>,
    semantic_scope: Option<SemanticScope>,
    vector: QuestionVector<'_>,
) -> CacheOutcome {
    let settings = &policy.cache;
    let Some(key) = key else {
        metrics::record_cache_lookup(CacheTier::Exact, TierResult::Bypass);
        return CacheOutcome::bypass();
    };
    let serves = settings.mode == CacheMode::On;
    let look = ctx.cache_control != CacheControl::Refresh;
    let slot = CacheSlot {
        key,
        semantic: match (&semantic_scope, vector) {
            (Some((scope, question)), QuestionVector::Ready(vector)) => Some(SemanticSlot {
                scope: *scope,
                question: question.clone(),
                vector: Some(vector.to_vec()),
            }),
            (Some((scope, question)), QuestionVector::Deferred) => Some(SemanticSlot {
                scope: *scope,
                question: question.clone(),
                vector: None,
            }),
            _ => None,
        },
    };
    let mut outcome = CacheOutcome {
        lookup: Lookup::Miss,
        serve: None,
        similarity: None,
        guard: None,
        slot: Some(slot),
        shadow: None,
    };
    if !look {
        return outcome;
    }
    if let Some(hit) = ctx.cache.get(&key) {
        outcome.found(CacheTier::Exact, hit, serves);
        return outcome;
    }
    // Asked once per request: exact_hit_ready already asked Redis when the hit would serve.
    if !serves_at_once(policy, ctx) {
        if let Some(hit) = fetch_shared(ctx, key, CacheTier::Exact).await {
            outcome.found(CacheTier::Exact, hit, serves);
            return outcome;
        }
    }
    metrics::record_cache_lookup(CacheTier::Exact, TierResult::Miss);
    let (Some(settings_semantic), Some((scope, question))) = (settings.semantic, semantic_scope)
    else {
        return outcome;
    };
    let vector = match vector {
        QuestionVector::Ready(vector) => vector,
        QuestionVector::Missing => {
            metrics::record_cache_lookup(CacheTier::Semantic, TierResult::Skipped);
            return outcome;
        }
        QuestionVector::TooLong => {
            metrics::record_cache_lookup(CacheTier::Semantic, TierResult::TooLong);
            return outcome;
        }
        QuestionVector::Deferred => {
            metrics::record_cache_lookup(CacheTier::Semantic, TierResult::Prefiltered);
            return outcome;
        }
    };
    let found = ctx.cache.find_similar(&SemanticQuery {
        scope: &scope,
        question: &question,
        vector,
        threshold: settings_semantic.threshold,
        verifier: &settings_semantic.verifier,
    });
    match found {
        Similar::Hit { answer, similarity } => {
            outcome.found(CacheTier::Semantic, answer, serves);
            outcome.similarity = Some(similarity);
        }
        Similar::Rejected { guard, similarity } => {
            metrics::record_cache_lookup(CacheTier::Semantic, TierResult::Rejected);
            metrics::record_guard_rejection(guard);
            outcome.similarity = Some(similarity);
            outcome.guard = Some(guard);
        }
        Similar::Absent { key, similarity } => {
            match fetch_shared(ctx, key, CacheTier::Semantic).await {
                Some(answer) => {
                    outcome.found(CacheTier::Semantic, answer, serves);
                    outcome.similarity = Some(similarity);
                }
                None => metrics::record_cache_lookup(CacheTier::Semantic, TierResult::Miss),
            }
        }
        Similar::Miss => metrics::record_cache_lookup(CacheTier::Semantic, TierResult::Miss),
    }
    outcome
}

/// The answer under `key` from the shared tier, kept in this replica's store once found. An
/// answer gone from Redis (evicted, expired; or no shared tier) has its question forgotten
/// here; when Redis cannot be asked, nothing is forgotten.
async fn fetch_shared(
    ctx: &RequestContext,
    key: CacheKey,
    tier: CacheTier,
) -> Option<Arc<CachedAnswer>> {
    let shared = ctx.shared.as_ref().filter(|s| s.shares_cache());
    let fetched = match shared {
        Some(shared) => shared.fetch(&key).await,
        None => Fetched::Gone,
    };
    match fetched {
        Fetched::Found(answer) => {
            ctx.cache.store_exact(key, answer.clone());
            metrics::record_shared_hit(tier);
            Some(answer)
        }
        Fetched::Gone => {
            if tier == CacheTier::Semantic {
                ctx.cache.forget(&key);
            }
            None
        }
        Fetched::Unavailable => None,
    }
}
