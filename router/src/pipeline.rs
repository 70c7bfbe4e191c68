//! The request path, top to bottom: validate, resolve the model, call the upstream, relay,
//! account. It knows nothing of HTTP framing; it returns a [`Reply`] or an [`ApiError`].

use std::sync::Arc;

use bytes::Bytes;
use frugal_cache::{CacheSlot, CacheTier, Guard};
use frugal_classifier::Tier;
use futures::stream;
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::ledger::RequestFacts;
use crate::metrics;
use crate::money::TokenPrice;
use crate::policy::compile::DEFAULT_ASSUMED_OUTPUT_TOKENS;
use crate::policy::{Baseline, LiveState, ModelRoute, Policy, StreamCascade};
use crate::request::ChatRequest;
use crate::sse::{completion_frames, FrameStream};
use crate::stage::account::{Account, Attempt, TokenSource, Tokens};
use crate::stage::budget::{BudgetWarning, Budgets};
use crate::stage::cache::{self, CachedAnswer, Lookup};
use crate::stage::call::{self, Answer, Answered};
use crate::stage::lookup;
use crate::stage::relay::{
    account_comment, relay, reported_tokens, StreamShadow, StreamTap, TapParts,
};
use crate::stage::route::{self, Plan, Rung};
use crate::stage::semantic;
use crate::stage::settle::{settle, Holds};
use crate::stage::{classify, confidence, shadow, trim};
use crate::tokens;
use crate::upstream::{UpstreamError, UpstreamReply};

/// What the pipeline answers.
pub struct Reply {
    /// What the sidecar decided, for response headers.
    pub meta: ReplyMeta,
    /// The answer itself.
    pub body: ReplyBody,
}

/// The decisions behind a reply.
#[derive(Debug, Clone)]
pub struct ReplyMeta {
    /// The model alias that answered.
    pub model: String,
    /// The provider that answered.
    pub provider: String,
    /// The settled account; `None` for a stream, which settles when it ends.
    pub account: Option<Account>,
    /// Soft budget thresholds this request crossed.
    pub budget_warnings: Vec<BudgetWarning>,
    /// A loop the policy flags rather than blocks.
    pub loop_flag: Option<String>,
    /// What the cache did.
    pub cache: Lookup,
    /// The rung that answered, for a routed request.
    pub tier: Option<Tier>,
    /// Why each escalation happened (reasons joined by `+`), in order.
    pub escalations: Vec<String>,
    /// The classifier's score, for a classified request.
    pub complexity: Option<f32>,
    /// Similarity of the semantic cache's candidate, when there was one.
    pub cache_similarity: Option<f32>,
    /// The guard that rejected the semantic candidate, if one did.
    pub cache_guard: Option<Guard>,
    /// Context tokens trimming removed, when the request had context to trim.
    pub trimmed_tokens: Option<u64>,
}

/// A complete JSON completion or a live SSE stream.
pub enum ReplyBody {
    /// A chat completion object, as JSON bytes.
    Json(Bytes),
    /// SSE frames, relayed as they arrive from upstream.
    Stream(FrameStream),
}

/// Handles one chat completion request.
pub async fn handle(
    live: &LiveState,
    ctx: &RequestContext,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let request = ChatRequest::parse(body)?;
    let requested = resolve_model(&live.policy, request.model.as_deref())?;
    let baseline = baseline_price(&live.policy, requested);
    let mut meta = ReplyMeta {
        model: requested.alias.clone(),
        provider: requested.provider.clone(),
        account: None,
        budget_warnings: Vec::new(),
        loop_flag: None,
        cache: Lookup::Bypass,
        tier: None,
        escalations: Vec::new(),
        complexity: None,
        cache_similarity: None,
        cache_guard: None,
        trimmed_tokens: None,
    };
    let mut outbound = request.body;
    let trimmed = trim::trim_request(
        &live.policy.trim_for(&ctx.tenant),
        live.embedder.as_deref(),
        live.policy.embeddings.deadline,
        &mut outbound,
    )
    .await;
    meta.trimmed_tokens = trimmed.map(|t| t.removed);
    let trimmed_tokens = trimmed.map_or(0, |t| t.removed);

    // One embedding of the question serves the classifier and the semantic cache; an exact
    // cache hit needs neither, so it does not wait for one.
    let route = &live.policy.route;
    let exact_key = lookup::exact_key(&live.policy, ctx, &requested.alias, &outbound);
    let exact_hit = lookup::exact_hit_ready(&live.policy, ctx, exact_key.as_ref());
    let routed = route.applies_to(&requested.alias) && !exact_hit;
    let semantic = !exact_hit && lookup::wants_semantic(&live.policy, ctx, &outbound);
    let (embedding, too_long) = match &live.embedder {
        Some(worker) if routed || semantic => {
            let question = semantic::question_text(&outbound, &live.policy.trim.markers);
            // A question longer than the model reads is no semantic lookup (its vector would
            // stand for its beginning only); the classifier still takes the vector of that
            // beginning.
            let too_long = semantic && !worker.fits(&question);
            let embedding = if routed || !too_long {
                worker
                    .embed(&question, live.policy.embeddings.deadline)
                    .await
            } else {
                None
            };
            (embedding, too_long)
        }
        _ => (None, false),
    };
    let question_vector = match embedding.as_deref() {
        _ if too_long => lookup::QuestionVector::TooLong,
        Some(vector) => lookup::QuestionVector::Ready(vector),
        None => lookup::QuestionVector::Missing,
    };
    let complexity = routed
        .then(|| classify::classify(route, &outbound, embedding.as_deref()))
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
        let start = plan.rungs.first().and_then(|r| r.tier).unwrap_or(c.tier);
        metrics::record_route_start(start.as_str(), c.score);
    }

    let worst = worst_case(&live.policy, &ctx.tenant, &plan, &outbound);
    check_request_caps(&live.policy, &worst)?;
    if let Some(run_id) = &ctx.run_id {
        let verdict = ctx
            .runs
            .observe(&live.policy.runs, &ctx.tenant, run_id, &outbound)?;
        meta.loop_flag = verdict.loop_flag;
    }
    let cached = lookup::look_up(
        &live.policy,
        ctx,
        &requested.alias,
        &outbound,
        exact_key,
        question_vector,
    );
    meta.cache = cached.lookup;
    meta.cache_similarity = cached.similarity;
    meta.cache_guard = cached.guard;
    if let Some(hit) = cached.serve {
        let facts = RequestFacts {
            cache_hit: true,
            trimmed_tokens,
            ..RequestFacts::default()
        };
        let (account, _) = settle(ctx, baseline, hit.tokens, vec![], facts, Holds::default());
        meta.account = Some(account);
        meta.model.clone_from(&hit.model);
        let body = if request.stream {
            let frames = hit.replay_stream(wants_usage(&outbound));
            ReplyBody::Stream(Box::pin(stream::iter(frames)))
        } else {
            ReplyBody::Json(hit.replay_json())
        };
        return Ok(Reply { meta, body });
    }
    let cache_slot = cached.slot;
    let shadow = cached.shadow;
    // Budgets after the cache: a hit costs nothing and is served even when a cap is spent.
    let holds = hold(live, ctx, &worst)?;
    let answer = Pending {
        live,
        ctx,
        plan,
        outbound,
        baseline,
        holds,
        cache_slot,
        trimmed_tokens,
        shadow,
        meta,
    };
    if request.stream {
        answer.stream().await
    } else {
        answer.json().await
    }
}

/// A request past every gate, waiting for its answer.
struct Pending<'p> {
    live: &'p LiveState,
    ctx: &'p RequestContext,
    plan: Plan<'p>,
    outbound: Map<String, Value>,
    baseline: TokenPrice,
    holds: Holds,
    cache_slot: Option<CacheSlot>,
    /// Input tokens trimming removed.
    trimmed_tokens: u64,
    /// In cache shadow mode, the answer the cache would have served.
    shadow: Option<(CacheTier, Arc<CachedAnswer>)>,
    meta: ReplyMeta,
}

/// The answer the client gets, and how it was reached.
struct Accepted<'p> {
    reply: UpstreamReply,
    model: &'p ModelRoute,
    tier: Option<Tier>,
    tokens: Tokens,
    /// Logprobs the sidecar asked for; removed before the client sees the answer.
    added_logprobs: bool,
}

impl Accepted<'_> {
    /// The completion as the client may see it: without logprobs the sidecar asked for.
    fn client_completion(&self) -> Map<String, Value> {
        let mut completion = self.reply.body.clone();
        if self.added_logprobs {
            strip_logprobs(&mut completion);
        }
        completion
    }
}

/// How climbing the buffered rungs went.
struct Climb<'p> {
    attempts: Vec<Attempt>,
    escalations: Vec<String>,
    /// The latest answer received; served if nothing better comes.
    best: Option<Accepted<'p>>,
    /// Whether `best` passed its checks (or came from the last rung).
    accepted: bool,
    error: Option<UpstreamError>,
}

impl<'p> Pending<'p> {
    /// Answers with a complete JSON completion.
    async fn json(self) -> Result<Reply, ApiError> {
        let climb = self.climb(&self.plan.rungs, None).await;
        match climb.best {
            Some(best) => Ok(self.finish_json(best, climb.attempts, climb.escalations)),
            None => Err(climb.error.map_or_else(no_answer, ApiError::Upstream)),
        }
    }

    /// Answers with SSE: lower rungs (buffered cascade) answer in full and are checked first;
    /// the last rung streams live, and once its bytes flow nothing escalates.
    async fn stream(mut self) -> Result<Reply, ApiError> {
        let buffered = match self.live.policy.route.stream_cascade {
            StreamCascade::Buffer => self.plan.rungs.len() - 1,
            StreamCascade::Direct => 0,
        };
        let rungs = self.plan.rungs.clone();
        let live_rung = rungs[buffered];
        let mut climb = self.climb(&rungs[..buffered], Some(live_rung)).await;
        if climb.accepted {
            if let Some(best) = climb.best.take() {
                return Ok(self.finish_buffered_stream(best, climb.attempts, climb.escalations));
            }
        }
        let mut body = self.outbound.clone();
        let client_wants_usage = wants_usage(&body);
        set_include_usage(&mut body);
        let prompt_tokens = tokens::prompt_tokens(&body);
        let mut attempts = std::mem::take(&mut climb.attempts);
        let called = call::call(
            self.live,
            &self.ctx.resilience,
            live_rung.model,
            &body,
            true,
            &mut attempts,
        )
        .await;
        let (events, model) = match called {
            Ok(Answered {
                answer: Answer::Stream(events),
                model,
            }) => (events, model),
            Ok(_) => return Err(no_answer()),
            Err(e) => {
                return match climb.best.take() {
                    Some(best) => {
                        climb
                            .escalations
                            .push(format!("{}_failed", tier_label(live_rung.tier)));
                        Ok(self.finish_buffered_stream(best, attempts, climb.escalations))
                    }
                    None => Err(ApiError::Upstream(e)),
                }
            }
        };
        self.meta.model = model.alias.clone();
        self.meta.provider = model.provider.clone();
        self.meta.tier = live_rung.tier;
        self.meta.escalations = climb.escalations;
        let tap = StreamTap::new(TapParts {
            ctx: self.ctx.clone(),
            model: (model.alias.clone(), model.token_price),
            baseline: self.baseline,
            prior: attempts,
            escalations: escalation_count(&self.meta.escalations),
            trimmed_tokens: self.trimmed_tokens,
            prompt_tokens,
            client_wants_usage,
            holds: self.holds,
            cache_slot: self.cache_slot,
            shadow: self.shadow.map(|(tier, cached)| StreamShadow {
                tier,
                cached,
                embedder: self.live.embedder.clone(),
            }),
        });
        Ok(Reply {
            meta: self.meta,
            body: ReplyBody::Stream(relay(events, tap)),
        })
    }

    /// Calls `rungs` in order as plain (non-streaming) completions, escalating while a
    /// rung's answer fails its checks. `then` is the rung that follows the climb (the live
    /// stream); without one, the last rung's answer is taken as it is.
    async fn climb(&self, rungs: &[Rung<'p>], then: Option<Rung<'p>>) -> Climb<'p> {
        let checks = &self.live.policy.route.checks;
        let mut climb = Climb {
            attempts: Vec::new(),
            escalations: Vec::new(),
            best: None,
            accepted: false,
            error: None,
        };
        for (i, rung) in rungs.iter().enumerate() {
            let next = rungs.get(i + 1).copied().or(then);
            let is_final = next.is_none();
            let mut body = self.outbound.clone();
            if body.get("stream").and_then(Value::as_bool) == Some(true) {
                // A buffered rung of a streamed request: answered whole, replayed as SSE.
                body.insert("stream".into(), Value::Bool(false));
                body.remove("stream_options");
            }
            let added_logprobs = !is_final && checks.min_mean_logprob.is_some() && {
                let supports = self
                    .live
                    .policy
                    .providers
                    .get(&rung.model.provider)
                    .is_some_and(|p| p.logprobs);
                supports && body.get("logprobs").and_then(Value::as_bool) != Some(true)
            };
            if added_logprobs {
                body.insert("logprobs".into(), Value::Bool(true));
                // Some servers (llama.cpp) return logprobs only with top_logprobs set.
                if !body.contains_key("top_logprobs") {
                    body.insert("top_logprobs".into(), json!(1));
                }
            }
            let called = call::call(
                self.live,
                &self.ctx.resilience,
                rung.model,
                &body,
                false,
                &mut climb.attempts,
            )
            .await;
            let reasons = match called {
                Ok(Answered {
                    answer: Answer::Json(reply),
                    model,
                }) => {
                    let tokens =
                        reported_tokens(reply.body.get("usage")).unwrap_or_else(|| Tokens {
                            input: tokens::prompt_tokens(&body),
                            output: tokens::count(&answer_text(&reply.body)),
                            source: TokenSource::Counted,
                        });
                    climb
                        .attempts
                        .push(Attempt::new(&model.alias, tokens, model.token_price));
                    let reasons = if is_final {
                        Vec::new()
                    } else {
                        confidence::check(checks, &self.outbound, &reply.body)
                    };
                    climb.best = Some(Accepted {
                        reply,
                        model,
                        tier: rung.tier,
                        tokens,
                        added_logprobs,
                    });
                    reasons
                }
                Ok(_) => vec!["upstream_error"],
                // A refused request would be refused higher up too.
                Err(e) if e.is_request_rejected() => {
                    climb.error = Some(e);
                    return climb;
                }
                Err(e) => {
                    climb.error = Some(e);
                    vec!["upstream_error"]
                }
            };
            if reasons.is_empty() {
                climb.accepted = true;
                return climb;
            }
            let Some(next) = next else {
                // The last rung failed; an earlier answer, if any, is served.
                climb
                    .escalations
                    .push(format!("{}_failed", tier_label(rung.tier)));
                return climb;
            };
            if let (Some(from), Some(to)) = (rung.tier, next.tier) {
                metrics::record_escalation(from.as_str(), to.as_str(), reasons[0]);
            }
            tracing::info!(model = %rung.model.alias, reasons = ?reasons, "escalating");
            climb.escalations.push(reasons.join("+"));
        }
        climb
    }

    fn finish_json(
        mut self,
        best: Accepted<'p>,
        attempts: Vec<Attempt>,
        escalations: Vec<String>,
    ) -> Reply {
        let account = self.settle_answer(&best, attempts, escalations);
        self.meta.account = Some(account);
        let raw = if best.added_logprobs {
            Bytes::from(Value::Object(best.client_completion()).to_string())
        } else {
            best.reply.raw.clone()
        };
        Reply {
            meta: self.meta,
            body: ReplyBody::Json(raw),
        }
    }

    fn finish_buffered_stream(
        mut self,
        best: Accepted<'p>,
        attempts: Vec<Attempt>,
        escalations: Vec<String>,
    ) -> Reply {
        let account = self.settle_answer(&best, attempts, escalations);
        let completion = best.client_completion();
        let id = completion
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("chatcmpl-frugal")
            .to_string();
        let created = completion
            .get("created")
            .and_then(Value::as_u64)
            .unwrap_or_else(cache::unix_now);
        let mut frames = completion_frames(&completion, &id, created, wants_usage(&self.outbound));
        frames.insert(frames.len() - 1, account_comment(&account));
        Reply {
            meta: self.meta,
            body: ReplyBody::Stream(Box::pin(stream::iter(frames))),
        }
    }

    /// Settles an answered request, stores it in the cache, and fills the reply's model and
    /// escalations.
    fn settle_answer(
        &mut self,
        best: &Accepted<'p>,
        attempts: Vec<Attempt>,
        escalations: Vec<String>,
    ) -> Account {
        self.meta.escalations = escalations;
        let facts = RequestFacts {
            escalations: escalation_count(&self.meta.escalations),
            trimmed_tokens: self.trimmed_tokens,
            ..RequestFacts::default()
        };
        let holds = std::mem::take(&mut self.holds);
        let (account, warnings) =
            settle(self.ctx, self.baseline, best.tokens, attempts, facts, holds);
        self.meta.budget_warnings = warnings;
        if let Some(slot) = self
            .cache_slot
            .take()
            .filter(|_| cache::storable(&best.reply.body))
        {
            self.ctx.cache.store(
                slot,
                CachedAnswer {
                    completion: best.client_completion(),
                    tokens: best.tokens,
                    model: best.model.alias.clone(),
                },
            );
        }
        if let Some((tier, cached)) = self.shadow.take() {
            shadow::compare(
                self.live.embedder.clone(),
                tier,
                &cached.completion,
                &best.reply.body,
                account.actual,
            );
        }
        self.meta.model = best.model.alias.clone();
        self.meta.provider = best.model.provider.clone();
        self.meta.tier = best.tier;
        account
    }
}

fn no_answer() -> ApiError {
    ApiError::Upstream(UpstreamError::InvalidResponse {
        provider: "frugal".into(),
        reason: "no model answered".into(),
    })
}

/// Escalations among the reasons recorded (a failed last rung is not one).
fn escalation_count(reasons: &[String]) -> u64 {
    reasons.iter().filter(|r| !r.ends_with("_failed")).count() as u64
}

fn tier_label(tier: Option<Tier>) -> &'static str {
    tier.map_or("model", Tier::as_str)
}

/// Removes the logprobs the sidecar asked for from every choice.
fn strip_logprobs(completion: &mut Map<String, Value>) {
    if let Some(Value::Array(choices)) = completion.get_mut("choices") {
        for choice in choices {
            if let Some(choice) = choice.as_object_mut() {
                choice.insert("logprobs".into(), Value::Null);
            }
        }
    }
}

/// Finds the route for the requested alias, or the policy's default when none is named.
pub fn resolve_model<'p>(
    policy: &'p Policy,
    requested: Option<&str>,
) -> Result<&'p ModelRoute, ApiError> {
    let alias = requested.unwrap_or(&policy.default_model);
    policy
        .models
        .get(alias)
        .ok_or_else(|| ApiError::ModelNotFound(alias.to_string()))
}

/// The most a request can cost: every prompt token plus `max_tokens` (or the tenant budget's
/// assumed output) on every rung it may climb.
pub(crate) struct WorstCase {
    /// The sum over the rungs.
    pub(crate) cost: crate::money::Usd,
    /// Prompt tokens.
    pub(crate) input: u64,
    /// Output tokens assumed.
    pub(crate) output: u64,
    /// Prompt plus output tokens.
    pub(crate) tokens: u64,
}

/// The worst case of `body` for `tenant` under `plan`.
pub(crate) fn worst_case(
    policy: &Policy,
    tenant: &str,
    plan: &Plan,
    body: &Map<String, Value>,
) -> WorstCase {
    let assumed = Budgets::policy_for(policy, tenant)
        .map_or(DEFAULT_ASSUMED_OUTPUT_TOKENS, |b| b.assumed_output_tokens);
    let max_output = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .unwrap_or(assumed);
    let input = tokens::prompt_tokens(body);
    let cost = plan
        .rungs
        .iter()
        .map(|r| r.model.token_price.cost(input, max_output))
        .sum();
    WorstCase {
        cost,
        input,
        output: max_output,
        tokens: input + max_output,
    }
}

/// The policy's per-request caps: prompt size and worst-case cost.
pub(crate) fn check_request_caps(policy: &Policy, worst: &WorstCase) -> Result<(), ApiError> {
    if let Some(cap) = policy
        .limits
        .max_input_tokens
        .filter(|cap| worst.input > *cap)
    {
        return Err(ApiError::InvalidRequest {
            message: format!(
                "The prompt is {} tokens, over this deployment's limit of {cap}.",
                worst.input
            ),
            param: Some("messages".into()),
            code: "input_too_long",
        });
    }
    if let Some(cap) = policy
        .limits
        .max_request_cost
        .filter(|cap| worst.cost > *cap)
    {
        return Err(ApiError::InvalidRequest {
            message: format!(
                "This request may cost up to ${}, over this deployment's per-request limit of ${cap}; lower `max_tokens` or shorten the prompt.",
                worst.cost
            ),
            param: Some("max_tokens".into()),
            code: "request_cost_too_high",
        });
    }
    Ok(())
}

/// The price savings are measured against for a request naming `requested`.
pub fn baseline_price(policy: &Policy, requested: &ModelRoute) -> TokenPrice {
    match &policy.baseline {
        Baseline::Requested => requested.token_price,
        Baseline::Model(alias) => policy
            .models
            .get(alias)
            .map_or(requested.token_price, |m| m.token_price),
    }
}

/// Reserves the worst case against the run's caps and the tenant's budget; the 429 of
/// whichever refuses (what was reserved is released).
fn hold(live: &LiveState, ctx: &RequestContext, worst: &WorstCase) -> Result<Holds, ApiError> {
    let run = match &ctx.run_id {
        Some(run_id) => ctx.runs.reserve(
            &live.policy.runs,
            &ctx.tenant,
            run_id,
            worst.cost,
            worst.tokens,
        )?,
        None => None,
    };
    let budget = match Budgets::policy_for(&live.policy, &ctx.tenant) {
        Some(budget) => Some(ctx.budgets.reserve(budget, &ctx.tenant, worst.cost)?),
        None => None,
    };
    Ok(Holds { budget, run })
}

fn answer_text(body: &Map<String, Value>) -> String {
    body.get("choices")
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .map(|c| tokens::content_text(c.get("message").and_then(|m| m.get("content"))))
                .collect::<Vec<_>>()
                .concat()
        })
        .unwrap_or_default()
}

fn wants_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn set_include_usage(body: &mut Map<String, Value>) {
    match body.get_mut("stream_options") {
        Some(Value::Object(options)) => {
            options.insert("include_usage".into(), Value::Bool(true));
        }
        _ => {
            body.insert("stream_options".into(), json!({ "include_usage": true }));
        }
    }
}
