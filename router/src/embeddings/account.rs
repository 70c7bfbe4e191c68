//! What an embeddings request cost and saved. The upstream bills the batch it was sent; each
//! input's share of that bill is its share of the batch's counted tokens, so a stored input
//! carries the tokens a repeat saves. Actual is every upstream attempt; the baseline adds the
//! inputs the cache served at the model's input price, and that difference is the cache
//! lever's, so baseline − actual = the levers, as for chat.

use crate::money::{TokenPrice, Usd};
use crate::stage::account::{Account, Savings, TokenSource, Tokens};
use crate::tokens;
use serde_json::Value;

/// An input's tokens as frugal counts them (o200k_base for text; a token array is its length).
pub fn counted_tokens(item: &Value) -> u64 {
    match item {
        Value::String(text) => tokens::count(text),
        Value::Array(ids) => ids.len() as u64,
        _ => 0,
    }
}

/// Splits `total` over items in proportion to `weights` (largest remainder first), so the
/// shares add up to `total` exactly; equal shares when every weight is zero.
pub fn apportion(total: u64, weights: &[u64]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let (weights, sum) = if sum == 0 {
        (vec![1; weights.len()], weights.len() as u128)
    } else {
        (weights.to_vec(), sum)
    };
    let total = u128::from(total);
    let mut shares: Vec<u128> = weights
        .iter()
        .map(|&w| total * u128::from(w) / sum)
        .collect();
    let mut left = total - shares.iter().sum::<u128>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Largest remainder first; ties to the earlier input.
    order.sort_by_key(|&i| std::cmp::Reverse(total * u128::from(weights[i]) % sum));
    for i in order {
        if left == 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    shares
        .into_iter()
        .map(|s| u64::try_from(s).unwrap_or(u64::MAX))
        .collect()
}

/// Input tokens billed for one call (embeddings have no output).
pub fn billed(input: u64, source: TokenSource) -> Tokens {
    Tokens::new(input, 0, source)
}

/// The account of a request that paid `attempts` and had inputs of `cached_tokens` tokens
/// served from the cache.
pub fn account(
    price: TokenPrice,
    attempts: Vec<crate::stage::account::Attempt>,
    cached_tokens: u64,
) -> Account {
    let actual: Usd = attempts.iter().map(|a| a.cost).sum();
    let saved = price.input.times(cached_tokens);
    Account {
        baseline: actual + saved,
        actual,
        savings: Savings {
            cache: saved,
            ..Default::default()
        },
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::stage::account::Attempt;

    #[test]
    fn shares_follow_the_counted_tokens_and_add_up() {
        assert_eq!(apportion(10, &[1, 1, 3]), vec![2, 2, 6]);
        assert_eq!(apportion(7, &[1, 1, 1]), vec![3, 2, 2]);
        assert_eq!(apportion(5, &[0, 0]), vec![3, 2]);
        assert_eq!(apportion(0, &[4, 2]), vec![0, 0]);
        assert!(apportion(9, &[]).is_empty());
    }

    #[test]
    fn text_is_counted_and_token_arrays_are_their_length() {
        assert!(counted_tokens(&json!("hello world")) >= 2);
        assert_eq!(counted_tokens(&json!([5, 6, 7])), 3);
    }

    #[test]
    fn a_full_hit_saves_its_inputs_at_the_input_price() {
        let price = TokenPrice::per_million(0.02, 0.0);
        let account = account(price, vec![], 1000);
        assert_eq!(account.actual, Usd::ZERO);
        assert_eq!(account.savings.cache, price.input.times(1000));
        assert_eq!(account.savings.total(), account.baseline);
    }

    proptest! {
        #[test]
        fn apportioned_shares_always_add_up(total in 0u64..1_000_000, weights in proptest::collection::vec(0u64..10_000, 1..50)) {
            let shares = apportion(total, &weights);
            prop_assert_eq!(shares.len(), weights.len());
            prop_assert_eq!(shares.iter().sum::<u64>(), total);
        }

        #[test]
        fn levers_sum_to_baseline_minus_actual(
            price in 0.0f64..100.0,
            paid in proptest::collection::vec((0u64..2_000_000, 0.0f64..100.0), 0..4),
            cached in 0u64..2_000_000,
        ) {
            let attempts = paid
                .into_iter()
                .map(|(tokens, p)| Attempt::new("m", billed(tokens, TokenSource::Usage), TokenPrice::per_million(p, 0.0)))
                .collect();
            let account = account(TokenPrice::per_million(price, 0.0), attempts, cached);
            prop_assert_eq!(account.savings.total(), account.baseline - account.actual);
            prop_assert!(account.savings.cache >= Usd::ZERO);
        }
    }
}
