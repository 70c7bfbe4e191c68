//! Verification of a semantic candidate: a cached prompt whose embedding is close to the query's
//! is only served when cheap lexical checks agree that the two ask the same thing.
//!
//! An embedding cannot tell "What is 2+2" from "What is 2+3", "enable X" from "disable X" or
//! "A sued B" from "B sued A": those pairs sit at cosine ≥ 0.95. Each [`Guard`] looks for one
//! kind of disagreement that a paraphrase never has (different numbers, a negation on one side,
//! an antonym swapped in, a different quoted string, identifier, URL or name, or content words
//! that changed places) and rejects the candidate when it finds one. Every guard can be switched
//! off, and a [`Verdict`] says which guards fired, for metrics and for evaluation.
//!
//! Texts are analysed once ([`Analysis`]), so a cache can keep the analysis of each stored prompt
//! next to its vector and pay only for the query's analysis at lookup time.
//!
//! One file per guard ([`numbers`] … [`order`]: what it extracts from a text and when it
//! fires), the shared [`analysis`], the word lists and stemmer in [`lexicon`], and the guard
//! names and sets in [`guard`].

mod analysis;
mod antonym;
mod entities;
mod guard;
mod identifiers;
mod lexicon;
mod negation;
mod numbers;
mod order;
mod quoted;
mod urls_paths;

pub use analysis::Analysis;
pub use guard::{Guard, GuardSet, UnknownGuard};

/// The outcome of verifying one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    fired: GuardSet,
}

impl Verdict {
    /// Whether every enabled guard passed, so the candidate may be served.
    pub const fn passed(&self) -> bool {
        self.fired.is_empty()
    }

    /// Every enabled guard that rejected the candidate.
    pub const fn fired(&self) -> GuardSet {
        self.fired
    }

    /// The first guard that rejected the candidate (in [`Guard::ALL`] order): the metric label.
    pub fn first(&self) -> Option<Guard> {
        self.fired.iter().next()
    }
}

/// Runs the enabled guards over a query and a cached prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verifier {
    guards: GuardSet,
}

impl Default for Verifier {
    /// Every guard on.
    fn default() -> Self {
        Self::new(GuardSet::ALL)
    }
}

impl Verifier {
    /// A verifier running `guards`.
    pub const fn new(guards: GuardSet) -> Self {
        Self { guards }
    }

    /// The guards this verifier runs.
    pub const fn guards(&self) -> GuardSet {
        self.guards
    }

    /// Checks two texts, analysing both.
    pub fn verify_texts(&self, query: &str, cached: &str) -> Verdict {
        self.verify(&Analysis::new(query), &Analysis::new(cached))
    }

    /// Checks a query against a cached prompt, both analysed already. Symmetric.
    pub fn verify(&self, query: &Analysis, cached: &Analysis) -> Verdict {
        let fired = self
            .guards
            .iter()
            .filter(|g| guard_fires(*g, query, cached))
            .collect();
        Verdict { fired }
    }
}

fn guard_fires(guard: Guard, a: &Analysis, b: &Analysis) -> bool {
    match guard {
        Guard::Numbers => numbers::fires(a, b),
        Guard::Negation => negation::fires(a, b),
        Guard::Antonym => antonym::fires(a, b),
        Guard::Quoted => quoted::fires(a, b),
        Guard::Identifiers => identifiers::fires(a, b),
        Guard::UrlsPaths => urls_paths::fires(a, b),
        Guard::Entities => entities::fires(a, b),
        Guard::Order => order::fires(a, b),
    }
}

#[cfg(test)]
mod tests;
