//! The guards by name, and sets of them (which are enabled, which fired).

use std::fmt;
use std::str::FromStr;

/// One verification check; its `as_str()` is the metric label and the policy name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Guard {
    /// Numbers (digits or number words) must agree as a multiset: "top 5" is not "top 10".
    Numbers,
    /// Both texts are negated, or neither is: "not", "never", "n't", "no", …
    Negation,
    /// Neither text uses a word whose antonym the other uses: enable/disable, add/remove, …
    Antonym,
    /// Every quoted string of one text appears in the other.
    Quoted,
    /// Every code identifier (snake_case, camelCase, `foo.bar()`, backticked) of one text
    /// appears in the other.
    Identifiers,
    /// Every URL, file path or file name of one text appears in the other.
    UrlsPaths,
    /// Every named entity (capitalised word not at a sentence start, acronym) of one text
    /// appears in the other.
    Entities,
    /// Words shared by both texts keep their relative order, up to one moved block (a fronted
    /// or trailing clause, a shifted adverb) or swapped conjuncts ("X or Y" / "Y or X"): catches
    /// "A sued B" vs "B sued A" and "from X to Y" vs "from Y to X".
    Order,
}

impl Guard {
    /// Every guard, in the order they are checked and reported.
    pub const ALL: [Guard; 8] = [
        Guard::Numbers,
        Guard::Negation,
        Guard::Antonym,
        Guard::Quoted,
        Guard::Identifiers,
        Guard::UrlsPaths,
        Guard::Entities,
        Guard::Order,
    ];

    /// The guard's stable name: policy key, metric label and report column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Guard::Numbers => "numbers",
            Guard::Negation => "negation",
            Guard::Antonym => "antonym",
            Guard::Quoted => "quoted",
            Guard::Identifiers => "identifiers",
            Guard::UrlsPaths => "urls_paths",
            Guard::Entities => "entities",
            Guard::Order => "order",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A guard name that is not one of [`Guard::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown guard {0:?} (known: numbers, negation, antonym, quoted, identifiers, urls_paths, entities, order, or all / none)")]
pub struct UnknownGuard(pub String);

impl FromStr for Guard {
    type Err = UnknownGuard;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Guard::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| UnknownGuard(s.to_owned()))
    }
}

/// A set of guards: which are enabled, or which fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GuardSet(u8);

impl GuardSet {
    /// No guard.
    pub const NONE: GuardSet = GuardSet(0);
    /// Every guard.
    pub const ALL: GuardSet = GuardSet(0xff);

    /// This set plus `guard`.
    pub const fn with(self, guard: Guard) -> Self {
        GuardSet(self.0 | guard.bit())
    }

    /// This set without `guard`.
    pub const fn without(self, guard: Guard) -> Self {
        GuardSet(self.0 & !guard.bit())
    }

    /// Whether `guard` is in the set.
    pub const fn contains(self, guard: Guard) -> bool {
        self.0 & guard.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The guards in the set, in [`Guard::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Guard> {
        Guard::ALL.into_iter().filter(move |g| self.contains(*g))
    }
}

impl FromIterator<Guard> for GuardSet {
    fn from_iter<I: IntoIterator<Item = Guard>>(iter: I) -> Self {
        iter.into_iter().fold(GuardSet::NONE, GuardSet::with)
    }
}

impl fmt::Display for GuardSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Guard::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for GuardSet {
    type Err = UnknownGuard;

    /// A comma-separated list of guard names, or `all`, or `none`; `all,-order` removes one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = GuardSet::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            set = match part {
                "all" => GuardSet::ALL,
                "none" => GuardSet::NONE,
                _ => match part.strip_prefix('-') {
                    Some(name) => set.without(name.parse()?),
                    None => set.with(part.parse()?),
                },
            };
        }
        Ok(set)
    }
}
