//! The gates before the answer: which model was asked for, the most the request can cost, the
//! policy's per-request caps, and what the request holds against its run and tenant budget.

use serde_json::{Map, Value};

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::money::TokenPrice;
use crate::policy::compile::DEFAULT_ASSUMED_OUTPUT_TOKENS;
use crate::policy::{Baseline, LiveState, ModelRoute, Policy};
use crate::shared::CapLever;
use crate::stage::budget::{Budgets, Reservation};
use crate::stage::route::Plan;
use crate::stage::settle::Holds;
use crate::tokens;

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
pub(crate) async fn hold(
    live: &LiveState,
    ctx: &RequestContext,
    worst: &WorstCase,
) -> Result<Holds, ApiError> {
    let policy = &live.policy;
    let run = match &ctx.run_id {
        Some(run_id) => {
            ctx.runs
                .reserve(&policy.runs, &ctx.tenant, run_id, worst.cost, worst.tokens)?
        }
        None => None,
    };
    let budget_policy = Budgets::policy_for(policy, &ctx.tenant);
    let mut budget = match budget_policy {
        Some(budget) => Some(ctx.budgets.reserve(budget, &ctx.tenant, worst.cost)?),
        None => None,
    };
    // Across replicas too, when the policy shares the lever (Redis failing: local alone).
    let shared = |lever| ctx.shared.as_ref().filter(|s| s.shares(lever));
    let shared_run = match (shared(CapLever::Runs), &ctx.run_id) {
        (Some(tier), Some(run_id)) => {
            tier.hold_run(&policy.runs, &ctx.tenant, run_id, worst.cost, worst.tokens)
                .await?
        }
        _ => None,
    };
    let shared_budget = match (shared(CapLever::Budgets), budget_policy) {
        (Some(tier), Some(limits)) => tier.hold_budget(limits, &ctx.tenant, worst.cost).await?,
        _ => None,
    };
    if shared_budget.is_some() {
        // Soft thresholds warn once across replicas, from the shared spend.
        budget = budget.map(Reservation::without_warnings);
    }
    Ok(Holds {
        budget,
        run,
        shared_budget,
        shared_run,
    })
}
