//! Settling a request: its account from the attempts it paid (or the cache hit it was), recorded
//! in the ledger, its run and the metrics, and what it held against its tenant's budget and its
//! run's caps turned into what it used. Every answered request, JSON or stream, ends here.

use crate::context::RequestContext;
use crate::ledger::RequestFacts;
use crate::metrics;
use crate::money::TokenPrice;
use crate::stage::account::{self, Account, Attempt, Facts, Tokens};
use crate::stage::budget::{BudgetWarning, Reservation};
use crate::stage::run::RunReservation;

/// What a request holds against its tenant's budget and its run's caps from the cache miss
/// until it settles; dropping it unsettled (a failed request) releases both.
#[derive(Default)]
pub struct Holds {
    /// The tenant budget's reservation, when the tenant has a budget.
    pub budget: Option<Reservation>,
    /// The run's reservation, when the request belongs to a run with caps.
    pub run: Option<RunReservation>,
}

/// Settles a request (its upstream attempts, or a cache hit with the stored answer's tokens),
/// records it everywhere spend is counted, and turns what it held into what it used; returns
/// the account and the soft budget thresholds it crossed.
pub fn settle(
    ctx: &RequestContext,
    baseline: TokenPrice,
    tokens: Tokens,
    attempts: Vec<Attempt>,
    facts: RequestFacts,
    holds: Holds,
) -> (Account, Vec<BudgetWarning>) {
    let account = account::settle(Facts {
        baseline_price: baseline,
        untrimmed_input: tokens.input + facts.trimmed_tokens,
        trimmed_input: tokens.input,
        output: tokens.output,
        cache_hit: facts.cache_hit,
        attempts,
    });
    ctx.ledger.record(&ctx.tenant, &account, facts);
    match (holds.run, &ctx.run_id) {
        (Some(run), _) => run.settle(&account),
        (None, Some(run_id)) => ctx.runs.settle(run_id, &account),
        (None, None) => {}
    }
    let warnings = holds
        .budget
        .map(|reservation| reservation.settle(account.actual))
        .unwrap_or_default();
    metrics::record_account(&ctx.tenant, &account);
    (account, warnings)
}
