//! Accounting: what a request actually cost (every upstream attempt, wasted ones included)
//! against what it would have cost without the sidecar (the baseline model on the untrimmed
//! prompt, every token at list price), and the difference split by lever. Each lever is
//! computed from its own inputs, and a property test checks that
//! `trim + cache + route + prompt_cache == baseline − actual` exactly (it holds while the trimmed
//! prompt is no longer than the untrimmed one, as the pipeline guarantees).
//!
//! `prompt_cache` is the provider's own discount on input tokens it served from (or wrote to) its
//! prompt cache, as its `usage` reports them: routing is measured at list price, and what the
//! provider's cache took off (or, for a cache write, put on) that price is this lever.

use serde::{Deserialize, Serialize};

use crate::money::{TokenPrice, Usd};

/// Where a token count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The upstream's `usage` object.
    Usage,
    /// Counted by frugal with the model family's tokenizer (the upstream gave no usage).
    Counted,
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Prompt tokens, all of them (those the provider's prompt cache served included).
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// Of `input`, the tokens the provider read from its prompt cache.
    #[serde(default)]
    pub cached_input: u64,
    /// Of `input`, the tokens the provider wrote to its prompt cache (Anthropic bills them).
    #[serde(default)]
    pub cache_write: u64,
    /// Where the counts came from.
    pub source: TokenSource,
}

impl Tokens {
    /// Counts with no prompt-cache reads or writes.
    pub const fn new(input: u64, output: u64, source: TokenSource) -> Self {
        Self {
            input,
            output,
            cached_input: 0,
            cache_write: 0,
            source,
        }
    }
}

/// One call to an upstream, successful or not; every one is paid for.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Model alias called.
    pub model: String,
    /// Tokens billed (zero for a call that failed before any answer).
    pub tokens: Tokens,
    /// What it cost at the model's price, the provider's prompt-cache prices included.
    pub cost: Usd,
    /// What it would have cost with every input token at list price.
    pub list_cost: Usd,
}

impl Attempt {
    /// An attempt priced at `price`.
    pub fn new(model: &str, tokens: Tokens, price: TokenPrice) -> Self {
        Self {
            model: model.to_string(),
            tokens,
            cost: price.cost_with_prompt_cache(
                tokens.input,
                tokens.cached_input,
                tokens.cache_write,
                tokens.output,
            ),
            list_cost: price.cost(tokens.input, tokens.output),
        }
    }
}

/// The facts accounting needs about one answered request.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Price of the baseline model (what the client would have called without the sidecar).
    pub baseline_price: TokenPrice,
    /// Input tokens of the prompt as the client sent it.
    pub untrimmed_input: u64,
    /// Input tokens after trimming (equal to `untrimmed_input` when nothing was trimmed).
    pub trimmed_input: u64,
    /// Output tokens of the answer the client got (for a cache hit: of the stored answer).
    pub output: u64,
    /// Whether the answer came from the cache (no upstream call for this request).
    pub cache_hit: bool,
    /// Every upstream attempt made for this request, in order.
    pub attempts: Vec<Attempt>,
}

/// Dollars saved by each lever; they sum to baseline − actual.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Savings {
    /// Removed input tokens at the baseline input price.
    pub trim: Usd,
    /// The would-be cost of a call the cache answered.
    pub cache: Usd,
    /// Baseline price on the trimmed prompt minus what routing paid at list price (may be
    /// negative).
    pub route: Usd,
    /// What the provider's prompt cache took off the list price of the calls made (negative
    /// when cache writes cost more than reads saved).
    pub prompt_cache: Usd,
}

impl Savings {
    /// Total saved.
    pub fn total(&self) -> Usd {
        self.trim + self.cache + self.route + self.prompt_cache
    }

    /// The levers with their metric labels.
    pub fn by_lever(&self) -> [(&'static str, Usd); 4] {
        [
            ("trim", self.trim),
            ("cache", self.cache),
            ("route", self.route),
            ("prompt_cache", self.prompt_cache),
        ]
    }
}

/// The settled account of one request.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// Counterfactual cost without the sidecar.
    pub baseline: Usd,
    /// What was actually paid upstream.
    pub actual: Usd,
    /// The difference, by lever.
    pub savings: Savings,
    /// Every upstream attempt.
    pub attempts: Vec<Attempt>,
}

/// Settles one request: each lever is computed from its own inputs, so the property test that
/// they add up to `baseline − actual` checks every one of them.
pub fn settle(facts: Facts) -> Account {
    let baseline = facts
        .baseline_price
        .cost(facts.untrimmed_input, facts.output);
    let actual = paid(&facts.attempts);
    let savings = Savings {
        trim: trim_saving(&facts),
        cache: cache_saving(&facts),
        route: route_saving(&facts),
        prompt_cache: prompt_cache_saving(&facts.attempts),
    };
    Account {
        baseline,
        actual,
        savings,
        attempts: facts.attempts,
    }
}

/// Everything paid upstream: every attempt, failed and escalated ones included.
fn paid(attempts: &[Attempt]) -> Usd {
    attempts.iter().map(|a| a.cost).sum()
}

/// The tokens trimming removed, at the requested model's input price.
fn trim_saving(facts: &Facts) -> Usd {
    let removed = facts.untrimmed_input.saturating_sub(facts.trimmed_input);
    facts.baseline_price.input.times(removed)
}

/// The call a cache hit avoided: the requested model on the (trimmed) prompt.
fn cache_saving(facts: &Facts) -> Usd {
    if facts.cache_hit {
        requested_call(facts)
    } else {
        Usd::ZERO
    }
}

/// The requested model on the trimmed prompt against every rung actually paid, at list price;
/// on a cache hit no call was routed, so only what was still paid (none today) counts, against
/// nothing.
fn route_saving(facts: &Facts) -> Usd {
    let routed = if facts.cache_hit {
        Usd::ZERO
    } else {
        requested_call(facts)
    };
    routed - facts.attempts.iter().map(|a| a.list_cost).sum()
}

/// The provider's prompt-cache discount on every attempt: list price minus what was paid.
fn prompt_cache_saving(attempts: &[Attempt]) -> Usd {
    attempts.iter().map(|a| a.list_cost - a.cost).sum()
}

/// What the requested model would have charged for the trimmed prompt and the answer given.
fn requested_call(facts: &Facts) -> Usd {
    facts.baseline_price.cost(facts.trimmed_input, facts.output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tokens(input: u64, output: u64) -> Tokens {
        Tokens::new(input, output, TokenSource::Usage)
    }

    #[test]
    fn prompt_cache_reads_are_their_own_lever_and_routing_stays_at_list_price() {
        let mini = TokenPrice::per_million(0.15, 0.6).with_prompt_cache(Some(0.075), None);
        let strong = TokenPrice::per_million(2.5, 10.0);
        let read = Tokens {
            cached_input: 1536,
            ..tokens(2000, 100)
        };
        let account = settle(Facts {
            baseline_price: strong,
            untrimmed_input: 2000,
            trimmed_input: 2000,
            output: 100,
            cache_hit: false,
            attempts: vec![Attempt::new("mini", read, mini)],
        });
        assert_eq!(
            account.savings.prompt_cache,
            Usd::from_dollars(1536.0 * 0.075 / 1e6)
        );
        assert_eq!(
            account.savings.route,
            strong.cost(2000, 100) - mini.cost(2000, 100)
        );
        assert_eq!(account.savings.total(), account.baseline - account.actual);
    }

    #[test]
    fn a_prompt_cache_write_dearer_than_input_is_a_negative_saving() {
        let sonnet = TokenPrice::per_million(3.0, 15.0).with_prompt_cache(Some(0.3), Some(3.75));
        let written = Tokens {
            cache_write: 4000,
            ..tokens(4100, 50)
        };
        let account = settle(Facts {
            baseline_price: sonnet,
            untrimmed_input: 4100,
            trimmed_input: 4100,
            output: 50,
            cache_hit: false,
            attempts: vec![Attempt::new("sonnet", written, sonnet)],
        });
        assert!(account.savings.prompt_cache < Usd::ZERO);
        assert_eq!(account.savings.route, Usd::ZERO);
        assert_eq!(account.savings.total(), account.baseline - account.actual);
    }

    #[test]
    fn cache_hit_saves_the_original_calls_cost() {
        let price = TokenPrice::per_million(2.5, 10.0);
        let account = settle(Facts {
            baseline_price: price,
            untrimmed_input: 1000,
            trimmed_input: 1000,
            output: 200,
            cache_hit: true,
            attempts: vec![],
        });
        assert_eq!(account.actual, Usd::ZERO);
        assert_eq!(account.savings.cache, price.cost(1000, 200));
        assert_eq!(account.savings.total(), account.baseline);
    }

    #[test]
    fn trim_saves_removed_tokens_at_the_input_price() {
        let price = TokenPrice::per_million(2.5, 10.0);
        let attempt = Attempt::new("strong", tokens(1500, 100), price);
        let account = settle(Facts {
            baseline_price: price,
            untrimmed_input: 6000,
            trimmed_input: 1500,
            output: 100,
            cache_hit: false,
            attempts: vec![attempt],
        });
        assert_eq!(account.savings.trim, price.input.times(4500));
        assert_eq!(account.savings.route, Usd::ZERO);
    }

    #[test]
    fn failed_and_escalated_attempts_are_all_paid() {
        let (cheap, strong) = (
            TokenPrice::per_million(0.15, 0.6),
            TokenPrice::per_million(2.5, 10.0),
        );
        let attempts = vec![
            Attempt::new("cheap", tokens(0, 0), cheap), // a 503 before any answer
            Attempt::new("cheap", tokens(800, 40), cheap), // a weak answer, escalated
            Attempt::new("strong", tokens(800, 120), strong),
        ];
        let account = settle(Facts {
            baseline_price: strong,
            untrimmed_input: 800,
            trimmed_input: 800,
            output: 120,
            cache_hit: false,
            attempts,
        });
        assert_eq!(account.actual, cheap.cost(800, 40) + strong.cost(800, 120));
        assert!(
            account.savings.route < Usd::ZERO,
            "escalation wasted the cheap call"
        );
    }

    proptest! {
        #[test]
        fn levers_sum_to_baseline_minus_actual(
            input_price in 0.0f64..100.0,
            output_price in 0.0f64..200.0,
            untrimmed in 0u64..2_000_000,
            trimmed_share in 0.0f64..=1.0,
            output in 0u64..100_000,
            cache_hit in any::<bool>(),
            attempts in proptest::collection::vec((0.0f64..100.0, 0.0f64..200.0, 0u64..2_000_000, 0u64..100_000), 0..4),
            cache_prices in (0.0f64..100.0, 0.0f64..200.0),
            cached_share in (0.0f64..=1.0, 0.0f64..=1.0),
        ) {
            let trimmed = (untrimmed as f64 * trimmed_share) as u64;
            let attempts = attempts
                .into_iter()
                .map(|(i, o, ti, to)| {
                    let price = TokenPrice::per_million(i, o)
                        .with_prompt_cache(Some(cache_prices.0), Some(cache_prices.1));
                    let read = (ti as f64 * cached_share.0) as u64;
                    let written = ((ti - read) as f64 * cached_share.1) as u64;
                    let counts = Tokens { cached_input: read, cache_write: written, ..tokens(ti, to) };
                    Attempt::new("m", counts, price)
                })
                .collect();
            let account = settle(Facts {
                baseline_price: TokenPrice::per_million(input_price, output_price),
                untrimmed_input: untrimmed,
                trimmed_input: trimmed,
                output,
                cache_hit,
                attempts,
            });
            prop_assert_eq!(account.savings.total(), account.baseline - account.actual);
        }
    }
}
