//! The request path, top to bottom: parse, resolve the model, trim, embed the question,
//! classify and plan the route, check the caps, look up the cache, hold the budget, answer,
//! settle. It knows nothing of HTTP framing; it returns a [`Reply`] or an [`ApiError`].

mod answer;
mod caps;
mod climb;
mod reply;

use std::sync::Arc;

use futures::stream;
use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::decisions::record::{
    CacheDecision, ClassifierDecision, PromptPrefixDecision, TrimDecision,
};
use crate::error::ApiError;
use crate::ledger::RequestFacts;
use crate::metrics;
use crate::money::TokenPrice;
use crate::policy::{LiveState, ModelRoute};
use crate::request::ChatRequest;
use crate::stage::cache::CachedAnswer;
use crate::stage::embed::{self, QuestionEmbedding};
use crate::stage::route::{self, Plan};
use crate::stage::settle::{settle, Holds, Settlement};
use crate::stage::{classify, lookup, prompt_prefix, trim};

use answer::Pending;
pub use caps::{baseline_price, resolve_model};
pub(crate) use caps::{check_request_caps, hold, worst_case, WorstCase};
pub use reply::{Reply, ReplyBody, ReplyMeta};

/// Handles one chat completion request.
pub async fn handle(
    live: &LiveState,
    ctx: &RequestContext,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let request = ChatRequest::parse(body)?;
    let requested = resolve_model(&live.policy, request.model.as_deref())?;
    let baseline = baseline_price(&live.policy, requested);
    let mut meta = ReplyMeta::new(requested);
    let logs_prompts = ctx.logs_prompts();
    ctx.note(|d| {
        d.model_requested.clone_from(&requested.alias);
        d.stream = request.stream;
        if logs_prompts {
            d.messages = request.body.get("messages").cloned();
            let params: serde_json::Map<String, serde_json::Value> = request
                .body
                .iter()
                .filter(|(key, _)| *key != "messages" && *key != "model")
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            d.params = Some(serde_json::Value::Object(params));
        }
    });
    let mut outbound = request.body;
    let trimmed = trim::trim_request(
        &live.policy.trim_for(&ctx.tenant),
        live.embedder.as_deref(),
        live.policy.embeddings.deadline,
        &mut outbound,
    )
    .await;
    let tools_sorted = prompt_prefix::shape(&live.policy.prompt_cache, &mut outbound);
    meta.trimmed_tokens = trimmed.map(|t| t.removed);
    let trimmed_tokens = trimmed.map_or(0, |t| t.removed);
    ctx.lap(|l| &mut l.trim);
    ctx.note(|d| {
        d.trim = trimmed.map(|t| TrimDecision {
            before: t.before,
            after: t.after,
        });
    });

    let exact_key = lookup::exact_key(&live.policy, ctx, &requested.alias, &outbound);
    let exact_hit = lookup::exact_hit_ready(&live.policy, ctx, exact_key.as_ref()).await;
    let routed = live.policy.route.applies_to(&requested.alias) && !exact_hit;
    let semantic = !exact_hit && lookup::wants_semantic(&live.policy, ctx, &outbound);
    let readers = embed::Readers { routed, semantic };
    // Computed once: the prefilter, the embedding and the lookup all read it, and the lookup
    // needs it even when the exact hit expected above has gone meanwhile.
    let semantic_scope = lookup::semantic_scope(&live.policy, ctx, &requested.alias, &outbound);
    let question =
        embed::embed_question(live, ctx, &outbound, semantic_scope.as_ref(), readers).await;
    ctx.lap(|l| &mut l.embed);
    ctx.note(|d| d.exact_key = exact_key.as_ref().map(|k| short_hex(k)));
    let plan = plan_route(
        live, ctx, requested, &outbound, routed, &question, &mut meta,
    );

    let worst = worst_case(&live.policy, &ctx.tenant, &plan, &outbound);
    check_request_caps(&live.policy, &worst)?;
    let prefix_break = prompt_prefix::watch(
        &live.policy.prompt_cache,
        &ctx.prefix_watch,
        &ctx.tenant,
        &outbound,
        worst.input,
    );
    meta.prefix_break = prefix_break.as_ref().map(|b| b.cause);
    if tools_sorted || prefix_break.is_some() {
        ctx.note(|d| {
            d.prompt_prefix = Some(PromptPrefixDecision {
                tools_sorted,
                prefix_break: prefix_break.map(|b| b.cause.as_str().to_string()),
            });
        });
    }
    if let Some(run_id) = &ctx.run_id {
        let verdict = ctx
            .runs
            .observe(&live.policy.runs, &ctx.tenant, run_id, &outbound)?;
        meta.loop_flag = verdict.loop_flag;
    }
    let cached = lookup::look_up(
        &live.policy,
        ctx,
        exact_key,
        semantic_scope,
        question.for_lookup(),
    )
    .await;
    meta.note_lookup(&cached);
    ctx.lap(|l| &mut l.lookup);
    ctx.note(|d| {
        d.cache = CacheDecision {
            outcome: cached.lookup.as_str().to_string(),
            similarity: cached.similarity,
            guard: cached.guard.map(|g| g.as_str().to_string()),
            shadow: None,
        };
    });
    if let Some(hit) = cached.serve {
        let replay = Replay {
            stream: request.stream,
            include_usage: answer::wants_usage(&outbound),
        };
        return Ok(serve_hit(ctx, baseline, trimmed_tokens, &hit, replay, meta));
    }
    // Budgets after the cache: a hit costs nothing and is served even when a cap is spent.
    let holds = caps::hold(live, ctx, &worst).await?;
    let pending = Pending {
        live,
        ctx,
        plan,
        outbound,
        settlement: Settlement {
            baseline,
            trimmed_tokens,
            holds,
            cache_slot: cached.slot,
            shadow: cached.shadow,
            embedder: live.embedder.clone(),
        },
        meta,
    };
    if request.stream {
        pending.stream().await
    } else {
        pending.json().await
    }
}

/// Classifies a routed request and plans its rungs, within the client's and the tenant's tier
/// caps; notes the score and the starting rung.
fn plan_route<'p>(
    live: &'p LiveState,
    ctx: &RequestContext,
    requested: &'p ModelRoute,
    outbound: &Map<String, Value>,
    routed: bool,
    question: &QuestionEmbedding,
    meta: &mut ReplyMeta,
) -> Plan<'p> {
    let route = &live.policy.route;
    let complexity = routed
        .then(|| classify::classify(route, outbound, question.vector.as_deref()))
        .flatten();
    let tenant_cap = live
        .policy
        .overrides_for(&ctx.tenant)
        .and_then(|o| o.max_tier);
    let max_tier = match (ctx.max_tier, tenant_cap) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let plan = route::plan(&live.policy, requested, complexity.as_ref(), max_tier);
    if let Some(c) = &complexity {
        meta.complexity = Some(c.score);
        ctx.note(|d| {
            d.classifier = Some(ClassifierDecision {
                score: c.score,
                tier: c.tier.as_str().to_string(),
                reasons: c
                    .reasons
                    .iter()
                    .map(|r| (r.feature.to_string(), r.weight))
                    .collect(),
            });
        });
        let start = plan.rungs.first().and_then(|r| r.tier).unwrap_or(c.tier);
        metrics::record_route_start(start.as_str(), c.score);
    }
    plan
}

/// How a cache hit is replayed.
struct Replay {
    /// As SSE frames rather than one JSON completion.
    stream: bool,
    /// With the usage chunk (a stream whose client asked for it).
    include_usage: bool,
}

/// Serves a cache hit: settled as free (its saving is the call it avoided), replayed as the
/// client asked.
fn serve_hit(
    ctx: &RequestContext,
    baseline: TokenPrice,
    trimmed_tokens: u64,
    hit: &Arc<CachedAnswer>,
    replay: Replay,
    mut meta: ReplyMeta,
) -> Reply {
    let facts = RequestFacts {
        cache_hit: true,
        trimmed_tokens,
        ..RequestFacts::default()
    };
    let (account, _) = settle(ctx, baseline, hit.tokens, vec![], facts, Holds::default());
    meta.account = Some(account);
    meta.model.clone_from(&hit.model);
    let body = if replay.stream {
        let frames = hit.replay_stream(replay.include_usage);
        ReplyBody::Stream(Box::pin(stream::iter(frames)))
    } else {
        ReplyBody::Json(hit.replay_json())
    };
    Reply { meta, body }
}

/// The first 12 hex digits of a key, as logs and `policy explain` show keys.
pub(crate) fn short_hex(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
