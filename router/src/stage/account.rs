//! Accounting: what a request actually cost (every upstream attempt, wasted ones included)
//! against what it would have cost without the sidecar (the baseline model on the untrimmed
//! prompt), and the difference split by lever. Each lever is computed from its own inputs, and
//! a property test checks that `trim + cache + route == baseline − actual` exactly (it holds
//! while the trimmed prompt is no longer than the untrimmed one, as the pipeline guarantees).

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
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// Where the counts came from.
    pub source: TokenSource,
}

/// One call to an upstream, successful or not; every one is paid for.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Model alias called.
    pub model: String,
    /// Tokens billed (zero for a call that failed before any answer).
    pub tokens: Tokens,
    /// What it cost at the model's price.
    pub cost: Usd,
}

impl Attempt {
    /// An attempt priced at `price`.
    pub fn new(model: &str, tokens: Tokens, price: TokenPrice) -> Self {
        Self {
            model: model.to_string(),
            tokens,
            cost: price.cost(tokens.input, tokens.output),
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
    /// Baseline price on the trimmed prompt minus what routing actually paid (may be negative).
    pub route: Usd,
}

impl Savings {
    /// Total saved.
    pub fn total(&self) -> Usd {
        self.trim + self.cache + self.route
    }

    /// The levers with their metric labels.
    pub fn by_lever(&self) -> [(&'static str, Usd); 3] {
        [
            ("trim", self.trim),
            ("cache", self.cache),
            ("route", self.route),
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

/// The requested model on the trimmed prompt against every rung actually paid; on a cache hit
/// no call was routed, so only what was still paid (none today) counts, against nothing.
fn route_saving(facts: &Facts) -> Usd {
    let routed = if facts.cache_hit {
        Usd::ZERO
    } else {
        requested_call(facts)
    };
    routed - paid(&facts.attempts)
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
        Tokens {
            input,
            output,
            source: TokenSource::Usage,
        }
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
        ) {
            let trimmed = (untrimmed as f64 * trimmed_share) as u64;
            let attempts = attempts
                .into_iter()
                .map(|(i, o, ti, to)| Attempt::new("m", tokens(ti, to), TokenPrice::per_million(i, o)))
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
