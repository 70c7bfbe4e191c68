//! Settling a request: its account from the attempts it paid (or the cache hit it was), recorded
//! in the ledger, its run and the metrics, and what it held against its tenant's budget and its
//! run's caps turned into what it used. Every answered request, JSON or stream, ends here: a
//! cache hit through [`settle`], an upstream answer through [`Settlement`], which also decides
//! (by one rule, [`cache::storable`]) whether the answer is stored and compared in shadow mode.

use std::sync::Arc;

use frugal_cache::{CacheKey, CacheSlot, SemanticSlot};

use crate::context::RequestContext;
use crate::decisions::PendingRecord;
use crate::embed_worker::EmbedWorker;
use crate::ledger::RequestFacts;
use crate::metrics;
use crate::money::TokenPrice;
use crate::shared::holds::SharedHold;
use crate::stage::account::{self, Account, Attempt, Facts, Tokens};
use crate::stage::budget::{BudgetWarning, Reservation};
use crate::stage::cache::{self, CachedAnswer};
use crate::stage::run::RunReservation;
use crate::stage::shadow::{self, ShadowCandidate};

/// What a request holds against its tenant's budget and its run's caps from the cache miss
/// until it settles; dropping it unsettled (a failed request) releases both.
#[derive(Default)]
pub struct Holds {
    /// The tenant budget's reservation, when the tenant has a budget.
    pub budget: Option<Reservation>,
    /// The run's reservation, when the request belongs to a run with caps.
    pub run: Option<RunReservation>,
    /// The budget's hold across replicas, when budgets are shared and Redis answered.
    pub shared_budget: Option<SharedHold>,
    /// The run's hold across replicas, when run caps are shared and Redis answered.
    pub shared_run: Option<SharedHold>,
}

/// An upstream answer received in full, as the client may see it: a JSON completion, or a
/// stream's chunks put together. It has the shape the cache stores.
pub type CompletedAnswer = CachedAnswer;

/// What a request that missed the cache carries until its answer settles.
pub struct Settlement {
    /// The price savings are measured against.
    pub baseline: TokenPrice,
    /// Input tokens trimming removed.
    pub trimmed_tokens: u64,
    /// What the request holds against its budget and run caps.
    pub holds: Holds,
    /// Where a complete answer is stored.
    pub cache_slot: Option<CacheSlot>,
    /// In cache shadow mode, the answer the cache would have served.
    pub shadow: Option<ShadowCandidate>,
    /// The embedding worker a shadow comparison uses, and that embeds (in its background lane)
    /// a stored question the prefilter let through unembedded.
    pub embedder: Option<Arc<EmbedWorker>>,
}

impl Settlement {
    /// Settles a completed answer: accounts every attempt paid, turns the holds into what was
    /// used, and, when the answer is complete and single ([`cache::storable`]), stores it and
    /// compares it with the shadow candidate. Returns the account and the soft budget
    /// thresholds crossed.
    pub fn complete(
        self,
        ctx: &RequestContext,
        answer: CompletedAnswer,
        attempts: Vec<Attempt>,
        escalations: u64,
    ) -> (Account, Vec<BudgetWarning>) {
        let facts = self.facts(escalations);
        if ctx.logs_prompts() {
            let text = shadow::text_of(&answer.completion);
            ctx.note(|d| d.answer = Some(text));
        }
        let (account, warnings) = settle_spend(
            ctx,
            self.baseline,
            answer.tokens,
            attempts,
            facts,
            self.holds,
        );
        let record = decision(ctx, &account);
        let storable = cache::storable(&answer.completion);
        match (self.shadow.filter(|_| storable), record) {
            // The record waits for the comparison, so it carries the verdict.
            (Some(candidate), record) => shadow::compare(
                self.embedder.clone(),
                candidate,
                &answer.completion,
                account.actual,
                record,
            ),
            (None, Some(record)) => record.write(),
            (None, None) => {}
        }
        if storable {
            if let Some(slot) = self.cache_slot {
                let unembedded = slot
                    .semantic
                    .as_ref()
                    .filter(|s| s.vector.is_none())
                    .cloned();
                if let Some(shared) = ctx.shared.as_ref().filter(|s| s.shares_cache()) {
                    shared.publish(slot.key, slot.semantic.clone(), &answer);
                }
                let key = slot.key;
                ctx.cache.store(slot, answer);
                if let Some((entry, worker)) = unembedded.zip(self.embedder) {
                    embed_after(ctx, worker, key, entry);
                }
            }
        }
        (account, warnings)
    }

    /// Settles an answer cut short (a stream that broke, a client that left): what was
    /// generated is paid for; nothing is stored or compared.
    pub fn cut_short(
        self,
        ctx: &RequestContext,
        tokens: Tokens,
        attempts: Vec<Attempt>,
        escalations: u64,
    ) -> Account {
        let facts = self.facts(escalations);
        settle(ctx, self.baseline, tokens, attempts, facts, self.holds).0
    }

    fn facts(&self, escalations: u64) -> RequestFacts {
        RequestFacts {
            escalations,
            trimmed_tokens: self.trimmed_tokens,
            ..RequestFacts::default()
        }
    }
}

/// Embeds a stored question in the background (the client already has its answer) and adds
/// the vector to the semantic index and, with a shared tier, to the stream other replicas read.
/// It waits in the worker's background lane, behind requests' own embeddings; one not embedded
/// within [`crate::embed_worker::BACKGROUND_DEADLINE`] (or that finds the lane full) is left
/// to the exact tier.
fn embed_after(
    ctx: &RequestContext,
    worker: Arc<EmbedWorker>,
    key: CacheKey,
    mut entry: SemanticSlot,
) {
    let cache = ctx.cache.clone();
    let shared = ctx.shared.clone().filter(|s| s.shares_cache());
    let pending = cache.embedding_pending();
    tokio::spawn(async move {
        let Some(vector) = worker.embed_in_background(&entry.question).await else {
            cache.embedding_dropped(key);
            metrics::record_deferred_embedding(false);
            tracing::debug!("a stored question was not embedded in time; exact tier only");
            return;
        };
        cache.index_embedding(key, &entry, &vector);
        drop(pending);
        metrics::record_deferred_embedding(true);
        if let Some(shared) = shared {
            entry.vector = Some(vector);
            shared.publish_question(key, entry);
        }
    });
}

/// Settles a request (its upstream attempts, or a cache hit with the stored answer's tokens),
/// records it everywhere spend is counted and in the decision log, and turns what it held into
/// what it used; returns the account and the soft budget thresholds it crossed.
pub fn settle(
    ctx: &RequestContext,
    baseline: TokenPrice,
    tokens: Tokens,
    attempts: Vec<Attempt>,
    facts: RequestFacts,
    holds: Holds,
) -> (Account, Vec<BudgetWarning>) {
    let settled = settle_spend(ctx, baseline, tokens, attempts, facts, holds);
    if let Some(record) = decision(ctx, &settled.0) {
        record.write();
    }
    settled
}

/// The request's finished decision record, when the sidecar keeps a decision log.
fn decision(ctx: &RequestContext, account: &Account) -> Option<PendingRecord> {
    let (draft, log) = (ctx.draft.as_ref()?, ctx.decisions.as_ref()?);
    Some(PendingRecord {
        log: log.clone(),
        record: draft.finish(account),
    })
}

/// [`settle`] without the decision record (its caller writes it, maybe later).
fn settle_spend(
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
    record_spend(ctx, account, facts, holds)
}

/// Settles a request whose account its caller made (an embeddings request, whose saving is
/// the inputs the cache served): recorded like [`settle`], decision record included.
pub fn settle_account(
    ctx: &RequestContext,
    account: Account,
    facts: RequestFacts,
    holds: Holds,
) -> (Account, Vec<BudgetWarning>) {
    let settled = record_spend(ctx, account, facts, holds);
    if let Some(record) = decision(ctx, &settled.0) {
        record.write();
    }
    settled
}

/// Records a settled account in the ledger, its run and the metrics, and turns what the
/// request held into what it used.
fn record_spend(
    ctx: &RequestContext,
    account: Account,
    facts: RequestFacts,
    holds: Holds,
) -> (Account, Vec<BudgetWarning>) {
    ctx.ledger.record(&ctx.tenant, &account, facts);
    match (holds.run, &ctx.run_id) {
        (Some(run), _) => run.settle(&account),
        (None, Some(run_id)) => ctx.runs.settle(run_id, &account),
        (None, None) => {}
    }
    if let Some(hold) = holds.shared_run {
        let tokens = account
            .attempts
            .iter()
            .map(|a| a.tokens.input + a.tokens.output)
            .sum();
        hold.settle(account.actual, tokens);
    }
    if let Some(hold) = holds.shared_budget {
        hold.settle(account.actual, 0);
    }
    let warnings = holds
        .budget
        .map(|reservation| reservation.settle(account.actual))
        .unwrap_or_default();
    metrics::record_account(&ctx.tenant, &account);
    (account, warnings)
}
