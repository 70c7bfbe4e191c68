//! How a cache lookup ended, as types: the tier, what the tier's lookup found, and what a
//! shadow comparison concluded. Each has one `as_str`, which the metric labels use, so the
//! labels cannot drift from the code that decides them.

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

/// What one tier's lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierResult {
    /// An answer, served.
    Hit,
    /// An answer, not served: the cache is in shadow mode.
    ShadowHit,
    /// Nothing (or the client asked for a refresh).
    Miss,
    /// Not looked up: the cache is off, the request may not be cached, or the client said so.
    Bypass,
    /// The semantic tier's candidate was similar enough, but a guard told them apart.
    Rejected,
    /// The semantic tier had no embedding of the question in time.
    Skipped,
    /// The question is longer than the embedding model reads, so it is not looked up.
    TooLong,
    /// The prefilter found no stored question near it: a miss decided without its embedding.
    Prefiltered,
}

impl TierResult {
    /// A found answer: a hit when the cache serves it, a shadow hit when it only counts it.
    pub const fn found(serves: bool) -> Self {
        if serves {
            Self::Hit
        } else {
            Self::ShadowHit
        }
    }

    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::ShadowHit => "shadow_hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
            Self::Rejected => "rejected",
            Self::Skipped => "skipped",
            Self::TooLong => "too_long",
            Self::Prefiltered => "prefiltered",
        }
    }
}

/// Whether a would-be hit agreed with the answer the upstream gave instead (shadow mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowVerdict {
    /// The two answers say the same.
    Agree,
    /// They differ: serving the hit would have been wrong.
    Differ,
}

impl ShadowVerdict {
    /// Both verdicts, for registering their metric series.
    pub const ALL: [Self; 2] = [Self::Agree, Self::Differ];

    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Agree => "agree",
            Self::Differ => "differ",
        }
    }
}
