//! The two tiers of the response cache.

/// The cache tier a lookup or a would-be hit belongs to, as the metric label shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTier {
    /// The same request, byte for byte (after normalisation), in the same scope.
    Exact,
    /// A question that means the same, found by embedding and verified by the guards.
    Semantic,
}

impl CacheTier {
    /// Both tiers, for registering their metric series.
    pub const ALL: [Self; 2] = [Self::Exact, Self::Semantic];

    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Semantic => "semantic",
        }
    }
}
