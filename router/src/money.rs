//! Money, exactly: amounts are integer pico-dollars (10⁻¹² USD), so per-lever savings add up to
//! baseline − actual to the last digit, and prices are per token, converted once from the
//! policy's USD per million tokens.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, Neg, Sub};

use serde::{Serialize, Serializer};

const PICO_PER_USD: i128 = 1_000_000_000_000;

/// An amount of US dollars, in pico-dollars. Arithmetic saturates instead of panicking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(i128);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(0);

    /// From pico-dollars.
    pub const fn from_pico(pico: i128) -> Self {
        Self(pico)
    }

    /// The amount in pico-dollars.
    pub const fn pico(self) -> i128 {
        self.0
    }

    /// From (finite) dollars, rounded to the nearest pico-dollar.
    pub fn from_dollars(dollars: f64) -> Self {
        Self((dollars * PICO_PER_USD as f64).round() as i128)
    }

    /// The amount in dollars, for display and metrics.
    pub fn dollars(self) -> f64 {
        self.0 as f64 / PICO_PER_USD as f64
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Usd) -> Option<Usd> {
        self.0.checked_add(other.0).map(Usd)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Usd) -> Option<Usd> {
        self.0.checked_sub(other.0).map(Usd)
    }

    /// This per-token price times a token count.
    pub fn times(self, tokens: u64) -> Usd {
        Usd(self.0.saturating_mul(i128::from(tokens)))
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }
}

impl Sub for Usd {
    type Output = Usd;
    fn sub(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }
}

impl Neg for Usd {
    type Output = Usd;
    fn neg(self) -> Usd {
        Usd(self.0.saturating_neg())
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, Add::add)
    }
}

impl fmt::Display for Usd {
    /// Dollars with up to 9 decimals, trailing zeros trimmed (`0.000123`, `-1.5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nano = (self.0 + self.0.signum() * 500) / 1000; // round to nano-dollars
        let sign = if nano < 0 { "-" } else { "" };
        let nano = nano.unsigned_abs();
        // Every real amount is below 2^64 nano-dollars, where u64 arithmetic is cheaper.
        match u64::try_from(nano) {
            Ok(nano) => write_dollars(f, sign, nano / NANO, (nano % NANO) as u32),
            Err(_) => write_dollars(
                f,
                sign,
                nano / u128::from(NANO),
                (nano % u128::from(NANO)) as u32,
            ),
        }
    }
}

/// Nano-dollars in a dollar.
const NANO: u64 = 1_000_000_000;

/// Writes `whole` dollars and `nano` (< 10^9) nano-dollars, trailing zeros trimmed.
fn write_dollars(
    f: &mut fmt::Formatter<'_>,
    sign: &str,
    whole: impl fmt::Display,
    mut nano: u32,
) -> fmt::Result {
    if nano == 0 {
        return write!(f, "{sign}{whole}");
    }
    let mut width = 9;
    while nano.is_multiple_of(10) {
        nano /= 10;
        width -= 1;
    }
    write!(f, "{sign}{whole}.{nano:0width$}")
}

impl Serialize for Usd {
    /// Serialized as a JSON number of dollars.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.dollars())
    }
}

/// What one token costs on a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenPrice {
    /// Per input (prompt) token, at list price.
    pub input: Usd,
    /// Per output (completion) token.
    pub output: Usd,
    /// Per input token the provider served from its prompt cache (the input price unless the
    /// policy names a discount).
    pub cached_input: Usd,
    /// Per input token the provider wrote to its prompt cache (Anthropic bills writes above the
    /// input price; the input price unless the policy names one).
    pub cache_write: Usd,
}

impl TokenPrice {
    /// From the policy's USD per million tokens; prompt-cache reads and writes at the input
    /// price until [`TokenPrice::with_prompt_cache`] says otherwise.
    pub fn per_million(input: f64, output: f64) -> Self {
        let input = Usd::from_dollars(input / 1e6);
        Self {
            input,
            output: Usd::from_dollars(output / 1e6),
            cached_input: input,
            cache_write: input,
        }
    }

    /// The same price with the provider's prompt-cache prices, USD per million tokens (`None`
    /// keeps the input price).
    pub fn with_prompt_cache(self, cached_input: Option<f64>, cache_write: Option<f64>) -> Self {
        let per_token = |usd: Option<f64>| usd.map(|usd| Usd::from_dollars(usd / 1e6));
        Self {
            cached_input: per_token(cached_input).unwrap_or(self.input),
            cache_write: per_token(cache_write).unwrap_or(self.input),
            ..self
        }
    }

    /// The cost of a call with these token counts, every input token at list price.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> Usd {
        self.input.times(input_tokens) + self.output.times(output_tokens)
    }

    /// The cost of a call whose `input_tokens` include `cached` tokens read from and `written`
    /// tokens written to the provider's prompt cache (each clamped to what is left of the input).
    pub fn cost_with_prompt_cache(
        &self,
        input_tokens: u64,
        cached: u64,
        written: u64,
        output_tokens: u64,
    ) -> Usd {
        let cached = cached.min(input_tokens);
        let written = written.min(input_tokens - cached);
        let plain = input_tokens - cached - written;
        self.input.times(plain)
            + self.cached_input.times(cached)
            + self.cache_write.times(written)
            + self.output.times(output_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_prices_are_exact_per_token() {
        let mini = TokenPrice::per_million(0.15, 0.60);
        assert_eq!(mini.input.pico(), 150_000);
        assert_eq!(mini.cost(1_000_000, 0), Usd::from_dollars(0.15));
        let flash = TokenPrice::per_million(0.075, 0.30);
        assert_eq!(flash.cost(3, 2).pico(), 3 * 75_000 + 2 * 300_000);
    }

    #[test]
    fn prompt_cache_reads_and_writes_have_their_own_price() {
        let sonnet = TokenPrice::per_million(3.0, 15.0).with_prompt_cache(Some(0.3), Some(3.75));
        let cost = sonnet.cost_with_prompt_cache(10_000, 8_000, 1_000, 100);
        let expected = Usd::from_dollars(
            (1_000.0 * 3.0 + 8_000.0 * 0.3 + 1_000.0 * 3.75 + 100.0 * 15.0) / 1e6,
        );
        assert_eq!(cost, expected);
        // Without prompt-cache prices, cached tokens cost what any input token costs.
        let plain = TokenPrice::per_million(3.0, 15.0);
        assert_eq!(
            plain.cost_with_prompt_cache(10_000, 8_000, 1_000, 100),
            plain.cost(10_000, 100)
        );
        // Counts beyond the input are clamped, never billed twice.
        assert_eq!(
            sonnet.cost_with_prompt_cache(10, 50, 50, 0),
            sonnet.cached_input.times(10)
        );
    }

    #[test]
    fn display_is_plain_dollars() {
        assert_eq!(Usd::from_dollars(0.000123).to_string(), "0.000123");
        assert_eq!(Usd::from_dollars(-1.5).to_string(), "-1.5");
        assert_eq!(Usd::ZERO.to_string(), "0");
        assert_eq!(Usd::from_pico(150_000).to_string(), "0.00000015");
        assert_eq!(Usd::from_pico(12_000_000_000_000).to_string(), "12");
        assert_eq!(Usd::from_pico(1_230_000_000_000).to_string(), "1.23");
        assert_eq!(Usd::from_pico(1_000_000_001_000).to_string(), "1.000000001");
        // Past 2^64 nano-dollars, where the u128 path formats it.
        let huge = i128::from(u64::MAX) * 1000 * 10;
        assert_eq!(Usd::from_pico(huge).to_string(), "184467440737.09551615");
        assert_eq!(Usd::from_pico(-huge).to_string(), "-184467440737.09551615");
    }
}
