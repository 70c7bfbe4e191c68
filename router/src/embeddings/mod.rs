//! `POST /v1/embeddings`, top to bottom: parse, resolve the model, look every input up in the
//! exact per-input cache, hold the budget for the inputs it lacks, send only those upstream in
//! one call (in their order), store them, answer in the original order, settle. Retrieval
//! re-embeds the same queries and chunks, so a repeated input costs nothing. It knows nothing
//! of HTTP framing; it returns an [`EmbeddingReply`] or an [`ApiError`].

pub mod account;
pub mod batch;
pub mod request;
pub mod store;

use std::sync::Arc;

use bytes::Bytes;
use frugal_cache::{CacheKey, CacheScope};

use crate::context::RequestContext;
use crate::decisions::record::{CacheDecision, InputsDecision};
use crate::error::ApiError;
use crate::ledger::RequestFacts;
use crate::metrics;
use crate::pipeline::{self, WorstCase};
use crate::policy::{LiveState, ModelRoute, Policy};
use crate::stage::account::{Account, Attempt, TokenSource};
use crate::stage::budget::BudgetWarning;
use crate::stage::cache::CacheControl;
use crate::stage::call;
use crate::stage::settle::{settle_account, Holds};
use crate::upstream::UpstreamError;

use request::EmbeddingRequest;
pub use store::{embedding_cache, CachedEmbedding, EmbeddingCache, EmbeddingLookup};

/// An answered embeddings request.
#[derive(Debug)]
pub struct EmbeddingReply {
    /// The embeddings list, JSON.
    pub body: Bytes,
    /// The alias asked for (and answered by).
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// What the cache did.
    pub lookup: EmbeddingLookup,
    /// Inputs served from the cache.
    pub cached: usize,
    /// Inputs in the request.
    pub total: usize,
    /// What it cost and saved.
    pub account: Account,
    /// The last soft budget threshold the request crossed.
    pub budget_warning: Option<BudgetWarning>,
}

/// Handles one embeddings request.
pub async fn handle(
    live: &LiveState,
    ctx: &RequestContext,
    cache: &EmbeddingCache,
    body: &[u8],
) -> Result<EmbeddingReply, ApiError> {
    let request = EmbeddingRequest::parse(body)?;
    let route = live
        .policy
        .models
        .get(&request.model)
        .ok_or_else(|| ApiError::ModelNotFound(request.model.clone()))?;
    ctx.note(|d| {
        d.endpoint = Some("embeddings".into());
        d.model_requested.clone_from(&route.alias);
    });
    let keys = cache_keys(&live.policy, ctx, route, &request);
    let looks_up = keys.is_some() && ctx.cache_control == CacheControl::Default;
    let found: Vec<Option<Arc<CachedEmbedding>>> = match keys.as_ref().filter(|_| looks_up) {
        Some(keys) => keys.iter().map(|k| cache.get(k)).collect(),
        None => vec![None; request.items.len()],
    };
    let misses: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();
    let cached_tokens: u64 = found.iter().flatten().map(|e| e.tokens).sum();
    let total = request.items.len();
    let cached = total - misses.len();
    // A refresh looks nothing up but stores what it fetches: a miss, as for chat.
    let lookup = EmbeddingLookup::of(keys.is_some(), cached, total);
    ctx.lap(|l| &mut l.lookup);
    ctx.note(|d| {
        d.cache = CacheDecision {
            outcome: lookup.as_str().to_string(),
            ..CacheDecision::default()
        };
        d.inputs = Some(InputsDecision { total, cached });
    });

    let mut attempts = Vec::new();
    let fetched = if misses.is_empty() {
        Fetched::default()
    } else {
        fetch(live, ctx, route, &request, &misses, &mut attempts).await?
    };
    if let Some(keys) = &keys {
        for (&i, embedding) in misses.iter().zip(&fetched.embeddings) {
            cache.store_exact(keys[i], embedding.clone());
        }
    }
    metrics::record_embedding_inputs(
        &ctx.tenant,
        cached as u64,
        misses.len() as u64,
        keys.is_some(),
    );

    let mut fresh = fetched.embeddings.into_iter();
    let served = found
        .into_iter()
        .map(|hit| hit.or_else(|| fresh.next()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid(route, "fewer embeddings than inputs".into()))?;
    let billed_tokens: u64 = served.iter().map(|e| e.tokens).sum();
    let model = fetched.model.unwrap_or_else(|| route.upstream.clone());
    let body = batch::response_body(
        served.iter().map(|e| e.embedding.as_str()),
        &model,
        billed_tokens,
    );
    let account = account::account(route.token_price, attempts, cached_tokens);
    let facts = RequestFacts {
        cache_hit: lookup == EmbeddingLookup::Hit,
        ..RequestFacts::default()
    };
    let (account, warnings) = settle_account(ctx, account, facts, fetched.holds);
    Ok(EmbeddingReply {
        body,
        model: route.alias.clone(),
        provider: route.provider.clone(),
        lookup,
        cached,
        total,
        account,
        budget_warning: warnings.last().cloned(),
    })
}

/// Each input's cache key, or `None` when the embeddings cache is off or the client bypasses it.
fn cache_keys(
    policy: &Policy,
    ctx: &RequestContext,
    route: &ModelRoute,
    request: &EmbeddingRequest,
) -> Option<Vec<CacheKey>> {
    let wanted = policy.cache.embeddings.on && ctx.cache_control != CacheControl::Bypass;
    wanted.then(|| {
        let scope = CacheScope {
            tenant: &ctx.cache_tenant,
            namespace: policy.cache_namespace(&ctx.cache_tenant),
            model: &route.alias,
        };
        store::input_keys(scope, &request.key_params(), &request.items)
    })
}

/// What one upstream call brought for the inputs the cache lacked (nothing, when it lacked
/// none).
#[derive(Default)]
struct Fetched {
    /// Their embeddings, in the order sent, each with its share of the billed tokens.
    embeddings: Vec<Arc<CachedEmbedding>>,
    /// The model name the upstream reported.
    model: Option<String>,
    /// What the request holds against its budget and run caps until it settles.
    holds: Holds,
}

/// Holds the worst case of the inputs at `misses` against the run's and the tenant's caps,
/// sends them upstream in one call, checks the answer fits them, and prices the call.
async fn fetch(
    live: &LiveState,
    ctx: &RequestContext,
    route: &ModelRoute,
    request: &EmbeddingRequest,
    misses: &[usize],
    attempts: &mut Vec<Attempt>,
) -> Result<Fetched, ApiError> {
    let counted: Vec<u64> = misses
        .iter()
        .map(|&i| account::counted_tokens(&request.items[i]))
        .collect();
    let input: u64 = counted.iter().sum();
    let worst = WorstCase {
        cost: route.token_price.input.times(input),
        input,
        output: 0,
        tokens: input,
    };
    // Budgets after the cache: inputs it serves cost nothing and are served even when a cap
    // is spent.
    let holds = pipeline::hold(live, ctx, &worst).await?;
    let body = request.upstream_body(misses);
    let reply = call::embed(live, &ctx.resilience, route, &body, attempts).await?;
    let batch = batch::read(&reply.body, misses.len(), request.encoding)
        .map_err(|reason| invalid(route, reason))?;
    let (billed, source) = match batch.reported_tokens {
        Some(reported) => (reported, TokenSource::Usage),
        None => (input, TokenSource::Counted),
    };
    attempts.push(Attempt::new(
        &route.alias,
        account::billed(billed, source),
        route.token_price,
    ));
    let shares = account::apportion(billed, &counted);
    let embeddings = batch
        .embeddings
        .into_iter()
        .zip(shares)
        .map(|(embedding, tokens)| Arc::new(CachedEmbedding { embedding, tokens }))
        .collect();
    Ok(Fetched {
        embeddings,
        model: batch.model,
        holds,
    })
}

fn invalid(route: &ModelRoute, reason: String) -> ApiError {
    ApiError::Upstream(UpstreamError::InvalidResponse {
        provider: route.provider.clone(),
        reason,
    })
}
