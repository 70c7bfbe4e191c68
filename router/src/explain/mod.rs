//! `frugal policy explain`: what the sidecar would do with one request under a policy, without
//! calling any upstream: the model it resolves to, whether a per-request cap refuses it, the
//! context it would trim (tokens before and after), the cache scope and whether each tier could
//! serve it, the classifier's score and reasons, the rungs it may climb and the checks armed on
//! each answer, what it would cost against the baseline, what it reserves of the budget, and
//! whether the provider's prompt cache could serve its prefix ([`prompt_cache`]).

mod prompt_cache;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use frugal_cache::CacheScope;
use serde_json::{json, Map, Value};

use crate::money::Usd;
use crate::pipeline::{
    baseline_price, check_request_caps, resolve_model, short_hex, worst_case, WorstCase,
};
use crate::policy::{CacheMode, CheckPolicy, LiveState, Policy};
use crate::request::ChatRequest;
use crate::stage::budget::Budgets;
use crate::stage::escalation::EscalationReason;
use crate::stage::{cache, classify, prompt_prefix, route, semantic, trim};

/// Arguments of `frugal policy explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// A user prompt (sent as the only message).
    #[arg(long, conflicts_with = "request", required_unless_present = "request")]
    pub prompt: Option<String>,
    /// A whole chat completion request body (JSON file).
    #[arg(long)]
    pub request: Option<PathBuf>,
    /// The model alias to ask for (default: the request's, else the policy's default).
    #[arg(long)]
    pub model: Option<String>,
    /// The tenant the request is billed to.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// The call before this one (a request body, JSON file): whether the two share a prefix
    /// the provider's prompt cache can serve.
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// Print one JSON object instead of the text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn run(args: &ExplainArgs) -> anyhow::Result<()> {
    let policy = crate::policy::load(&args.policy)
        .map_err(|errors| anyhow::anyhow!("the policy does not load:\n{errors}"))?;
    let body = request_body(args)?;
    let previous = args.previous.as_deref().map(read_request).transpose()?;
    let explanation = explain(policy, &args.tenant, &body, previous.as_ref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{}", render(&explanation));
    }
    Ok(())
}

fn request_body(args: &ExplainArgs) -> anyhow::Result<Vec<u8>> {
    let mut body: Map<String, Value> = match (&args.prompt, &args.request) {
        (Some(prompt), _) => json!({ "messages": [{ "role": "user", "content": prompt }] })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        (None, Some(path)) => read_request(path)?,
        (None, None) => anyhow::bail!("give --prompt TEXT or --request FILE.json"),
    };
    if let Some(model) = &args.model {
        body.insert("model".into(), Value::String(model.clone()));
    }
    Ok(serde_json::to_vec(&body)?)
}

fn read_request(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(body)) => Ok(body),
        Ok(_) => anyhow::bail!("{} is not a JSON object", path.display()),
        Err(e) => anyhow::bail!("{} is not JSON: {e}", path.display()),
    }
}

/// What the pipeline would do with `body`, as a JSON object; `previous` is the call before it.
pub async fn explain(
    policy: Policy,
    tenant: &str,
    body: &[u8],
    previous: Option<&Map<String, Value>>,
) -> anyhow::Result<Value> {
    let live = LiveState::new(policy, 0)?;
    let policy = live.policy.as_ref();
    let request = ChatRequest::parse(body).map_err(|e| anyhow::anyhow!("{e}"))?;
    let requested =
        resolve_model(policy, request.model.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut trimmed_body = request.body.clone();
    let trim_policy = policy.trim_for(tenant);
    let trim_outcome = trim::trim_request(
        &trim_policy,
        live.embedder.as_deref(),
        std::time::Duration::from_secs(30),
        &mut trimmed_body,
    )
    .await;
    let tools_sorted = prompt_prefix::shape(&policy.prompt_cache, &mut trimmed_body);
    let body = &trimmed_body;
    // As the pipeline does: the question without the context marked in it.
    let question = semantic::question_text(body, &policy.trim.markers);
    let max_tokens = policy
        .cache
        .semantic
        .as_ref()
        .map_or(usize::MAX, |s| s.max_tokens);
    let question_fits = live
        .embedder
        .as_ref()
        .is_none_or(|w| w.fits_within(&question, max_tokens));

    let embedding = match &live.embedder {
        Some(worker) => {
            worker
                .embed(&question, std::time::Duration::from_secs(10))
                .await
        }
        None => None,
    };
    let routed = policy.route.applies_to(&requested.alias);
    let complexity = routed
        .then(|| classify::classify(&policy.route, body, embedding.as_deref()))
        .flatten();
    let tenant_cap = policy.overrides_for(tenant).and_then(|o| o.max_tier);
    let plan = route::plan(policy, requested, complexity.as_ref(), tenant_cap);

    let worst = worst_case(policy, tenant, &plan, body);
    let refused = check_request_caps(policy, &worst).err();
    let WorstCase {
        cost: worst_cost,
        input,
        output,
        ..
    } = worst;
    let start_cost = plan
        .rungs
        .first()
        .map_or(Usd::ZERO, |r| r.model.token_price.cost(input, output));
    // The baseline is the untrimmed prompt, as the ledger counts it.
    let baseline_price = baseline_price(policy, requested);
    let removed = trim_outcome.map_or(0, |t| t.removed);
    let baseline = baseline_price.cost(input + removed, output);
    let trim_saves = baseline - baseline_price.cost(input, output);
    let budget = Budgets::policy_for(policy, tenant);

    let armed = armed_checks(&policy.route.checks, body);
    let previous = previous.map(|previous| {
        let mut previous = previous.clone();
        prompt_prefix::shape(&policy.prompt_cache, &mut previous);
        previous
    });
    let prompt_cache = prompt_cache::section(
        policy,
        plan.rungs.first().map(|r| r.model),
        body,
        tools_sorted,
        input,
        previous.as_ref(),
    );

    Ok(json!({
        "model": requested.alias,
        "tenant": tenant,
        // Whose `tenants:` entry applies: the tenant's own, `default`'s, or none.
        "tenant_settings": tenant_settings(policy, tenant),
        "tenant_keyed": policy.is_keyed_tenant(tenant),
        "refused": refused.map(|e| json!({"status": e.status().as_u16(), "code": e.code(), "message": e.to_string()})),
        "input_tokens": input,
        "output_tokens_assumed": output,
        "trim": {
            "mode": trim_policy.mode.as_str(),
            "max_context_tokens": trim_policy.max_context_tokens,
            "context_found": trim_outcome.is_some(),
            "tokens_before": trim_outcome.map(|t| t.before),
            "tokens_after": trim_outcome.map(|t| t.before - t.would_remove),
            "tokens_removed": trim_outcome.map(|t| t.removed),
        },
        "cache": cache_section(policy, tenant, &requested.alias, body, question_fits),
        "classifier": complexity.as_ref().map(|c| json!({
            "score": c.score,
            "tier": c.tier.as_str(),
            "embedding": embedding.is_some(),
            "reasons": c.reasons.iter().map(|r| json!({"feature": r.feature, "weight": r.weight})).collect::<Vec<_>>(),
        })),
        "route": {
            "mode": policy.route.mode.as_str(),
            "routed": plan.routed,
            "rungs": plan.rungs.iter().map(|r| json!({
                "model": r.model.alias,
                "tier": r.tier.map(|t| t.as_str()),
            })).collect::<Vec<_>>(),
            "checks_armed": if plan.rungs.len() > 1 { armed } else { Vec::new() },
            "start_strong_above": (f64::from(policy.route.start_strong_above) * 1e4).round() / 1e4,
            "tenant_max_tier": tenant_cap.map(|t| t.as_str()),
        },
        "prompt_cache": prompt_cache,
        "budget": budget.map(|b| json!({
            "window": b.window.as_str(),
            "hard_cap_usd": b.hard_cap.to_string(),
            "reserves_usd": worst_cost.to_string(),
        })),
        "cost_usd": {
            "start_rung": start_cost.to_string(),
            "worst_case": worst_cost.to_string(),
            "baseline": baseline.to_string(),
            "saved_if_start_rung_answers": (baseline - start_cost).to_string(),
            "saved_by_trim": trim_saves.to_string(),
            "saved_by_route": (baseline - trim_saves - start_cost).to_string(),
        },
    }))
}

/// Whose `tenants:` entry applies: the tenant's own, `default`'s, or none.
fn tenant_settings(policy: &Policy, tenant: &str) -> &'static str {
    if policy.lists_tenant(tenant) {
        "own"
    } else if policy.lists_tenant(crate::tenants::DEFAULT_TENANT) {
        "default"
    } else {
        "none"
    }
}

/// The escalation checks that could fire on this request's answer.
fn armed_checks(checks: &CheckPolicy, body: &Map<String, Value>) -> Vec<&'static str> {
    EscalationReason::ALL
        .into_iter()
        .filter(|r| match r {
            EscalationReason::Truncated => checks.truncated,
            EscalationReason::Empty => checks.empty,
            EscalationReason::RefusalOrHedge => checks.refusal_or_hedge,
            EscalationReason::InvalidJson => {
                checks.invalid_json && body.contains_key("response_format")
            }
            EscalationReason::InvalidToolCall => {
                checks.invalid_tool_call && body.contains_key("tools")
            }
            EscalationReason::LowLogprob => checks.min_mean_logprob.is_some(),
            EscalationReason::ArithmeticError
            | EscalationReason::NoFinalAnswer
            | EscalationReason::UnusedQuantity => checks.math,
            EscalationReason::UpstreamError => true,
        })
        .map(EscalationReason::as_str)
        .collect()
}

/// What the cache would do with the request: eligibility, keys, scope and the semantic tier.
fn cache_section(
    policy: &Policy,
    tenant: &str,
    model: &str,
    body: &Map<String, Value>,
    question_fits: bool,
) -> Value {
    let cache_settings = &policy.cache;
    let not_cacheable = cache::not_cacheable(cache_settings, body);
    let eligible = cache_settings.mode != CacheMode::Off && not_cacheable.is_none();
    let cache_scope = CacheScope {
        tenant,
        namespace: policy.cache_namespace(tenant),
        model,
    };
    let exact_key = cache_scope.exact_key(body);
    let scope = semantic::scope(&cache_scope, body, &policy.trim.markers);
    json!({
        "mode": cache_settings.mode.as_str(),
        "eligible": eligible,
        "not_cached_because": (cache_settings.mode != CacheMode::Off)
            .then(|| not_cacheable.map(|r| r.to_string()))
            .flatten(),
        "namespace": cache_scope.namespace,
        "exact_key": short_hex(&exact_key),
        "semantic": cache_settings.semantic.map(|s| json!({
            "threshold": (f64::from(s.threshold) * 1e4).round() / 1e4,
            "guards": s.verifier.guards().to_string(),
            "scope": scope.as_ref().map(|(k, _)| short_hex(k)),
            "question": scope.as_ref().map(|(_, q)| q),
            "question_fits_model": question_fits,
        })),
        "in_an_empty_cache": if eligible { "miss" } else { "bypass" },
    })
}

/// The explanation as readable text: one line per stage.
pub fn render(e: &Value) -> String {
    [
        request_line(e),
        trim_line(&e["trim"]),
        cache_line(&e["cache"]),
        classify_line(e),
        route_lines(&e["route"]),
        prompt_cache::lines(&e["prompt_cache"]),
        cost_lines(e),
    ]
    .concat()
}

/// A JSON value as text (a string without quotes, null as `-`).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn request_line(e: &Value) -> String {
    let tenant_note = match (
        e["tenant_settings"].as_str(),
        e["tenant_keyed"] == json!(true),
    ) {
        (_, true) => " (keyed: only requests bearing its key)",
        (Some("default"), false) => " (not listed: tenants.default applies)",
        (Some("none"), false) => " (no tenant settings)",
        _ => "",
    };
    let mut out = format!(
        "request   model {} for tenant {}{tenant_note}: {} input tokens, {} output tokens assumed\n",
        text(&e["model"]),
        text(&e["tenant"]),
        text(&e["input_tokens"]),
        text(&e["output_tokens_assumed"])
    );
    if let Some(refused) = e["refused"].as_object() {
        out.push_str(&format!(
            "refused   {} {}: {}\n",
            text(&refused["status"]),
            text(&refused["code"]),
            text(&refused["message"])
        ));
    }
    out
}

fn trim_line(t: &Value) -> String {
    if t["context_found"] == json!(true) {
        format!(
            "trim      mode {}: context {} → {} tokens (cap {}), {} removed from the request\n",
            text(&t["mode"]),
            text(&t["tokens_before"]),
            text(&t["tokens_after"]),
            text(&t["max_context_tokens"]),
            text(&t["tokens_removed"])
        )
    } else {
        format!(
            "trim      mode {}: no context (tool messages or marked documents) to trim\n",
            text(&t["mode"])
        )
    }
}

fn cache_line(c: &Value) -> String {
    let mut out = format!(
        "cache     mode {}, {} (exact key {}",
        text(&c["mode"]),
        match (
            c["eligible"] == json!(true),
            c["not_cached_because"].as_str()
        ) {
            (true, _) => "eligible".to_string(),
            (false, Some(reason)) => format!("not cached: {reason}"),
            (false, None) => "not cached".to_string(),
        },
        text(&c["exact_key"])
    );
    if c["namespace"] != json!("default") {
        out.push_str(&format!(", namespace {}", text(&c["namespace"])));
    }
    if c["semantic"].is_object() {
        out.push_str(&format!(
            ", semantic scope {} at similarity ≥ {} with guards {}",
            text(&c["semantic"]["scope"]),
            text(&c["semantic"]["threshold"]),
            text(&c["semantic"]["guards"])
        ));
        if c["semantic"]["question_fits_model"] == json!(false) {
            out.push_str(
                ", no semantic lookup: the question is longer than cache.semantic_max_tokens",
            );
        }
    }
    out.push_str(&format!(
        "); in an empty cache: {}\n",
        text(&c["in_an_empty_cache"])
    ));
    out
}

fn classify_line(e: &Value) -> String {
    let Some(k) = e["classifier"].as_object() else {
        return "classify  not routed, not classified\n".into();
    };
    let reasons: Vec<String> = k["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| {
                    format!(
                        "{} {:+.2}",
                        text(&r["feature"]),
                        r["weight"].as_f64().unwrap_or(0.0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "classify  score {:.3} → {} (start strong above {}){}; reasons: {}\n",
        k["score"].as_f64().unwrap_or(0.0),
        text(&k["tier"]),
        text(&e["route"]["start_strong_above"]),
        if k["embedding"] == json!(true) {
            ""
        } else {
            " without the embedding"
        },
        reasons.join(", ")
    )
}

fn route_lines(route: &Value) -> String {
    let rungs: Vec<String> = route["rungs"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| match r["tier"].as_str() {
                    Some(t) => format!("{} ({t})", text(&r["model"])),
                    None => text(&r["model"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let cap_note = match route["tenant_max_tier"].as_str() {
        Some(tier) => format!(" (the tenant's max_tier is {tier})"),
        None => String::new(),
    };
    let mut out = format!("route     {}{cap_note}\n", rungs.join(" → "));
    let armed: Vec<String> = route["checks_armed"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    if !armed.is_empty() {
        out.push_str(&format!("escalate  on {}\n", armed.join(", ")));
    }
    out
}

fn cost_lines(e: &Value) -> String {
    let cost = &e["cost_usd"];
    let mut out = format!(
        "cost      ${} if the start rung answers, ${} at worst, baseline ${} (saves ${}: trim ${}, route ${})\n",
        text(&cost["start_rung"]),
        text(&cost["worst_case"]),
        text(&cost["baseline"]),
        text(&cost["saved_if_start_rung_answers"]),
        text(&cost["saved_by_trim"]),
        text(&cost["saved_by_route"])
    );
    if let Some(budget) = e["budget"].as_object() {
        out.push_str(&format!(
            "budget    reserves ${} of the {} cap ${} until the answer is settled\n",
            text(&budget["reserves_usd"]),
            text(&budget["window"]),
            text(&budget["hard_cap_usd"])
        ));
    }
    out
}
