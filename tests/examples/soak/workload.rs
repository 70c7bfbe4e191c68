//! What the soak sends: a deterministic mix of exact repeats, semantic near-duplicates, unique
//! misses, trimmed contexts and injected upstream faults, spread over tenants, models and
//! streaming. Every request is built from its sequence number and the seed, so two runs with
//! the same arguments send the same traffic.

use std::collections::HashSet;
use std::fmt;

use serde_json::{json, Value};

/// Tenants the soak bills; `None` sends no `x-frugal-tenant` header (tenant `default`).
pub const TENANTS: [Option<&str>; 5] = [
    Some("acme"),
    Some("globex"),
    Some("initech"),
    Some("umbrella"),
    None,
];

/// `gpt-4o` is routed (starts on the cheap rung); `gpt-4o-mini` is called as named.
pub const MODELS: [&str; 2] = ["gpt-4o", "gpt-4o-mini"];

/// Prompts re-sent by the exact class.
const EXACT_POOL: usize = 200;

/// Distinct prompts per fault kind (re-sent, so an error that were cached would show).
const FAULT_POOL: u64 = 10;

/// Share of non-fault requests sent with `stream: true`.
const STREAM_SHARE: f64 = 0.2;

/// An upstream misbehaviour the mock injects for prompts carrying its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// HTTP 500 on every attempt.
    Status500,
    /// HTTP 429 with `Retry-After: 1` on every attempt.
    Status429,
    /// HTTP 400: the upstream refuses the request itself.
    Status400,
    /// The connection is closed without an answer.
    Reset,
    /// 200 with a body (or stream event) that is not JSON.
    Malformed,
    /// A complete answer with `finish_reason: length`.
    Length,
    /// The answer stops after two chunks (a JSON body cut short; a stream without `[DONE]`).
    Truncate,
    /// No answer at all; the sidecar's first-byte timeout must fire.
    Hang,
}

impl Fault {
    /// Every kind, with its weight among fault requests (hangs hold a slot for seconds).
    pub const WEIGHTED: [(Fault, u32); 8] = [
        (Fault::Status500, 4),
        (Fault::Status429, 2),
        (Fault::Status400, 4),
        (Fault::Reset, 4),
        (Fault::Malformed, 4),
        (Fault::Length, 4),
        (Fault::Truncate, 4),
        (Fault::Hang, 1),
    ];

    /// The marker in the prompt (and the label in reports).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Status500 => "500",
            Self::Status429 => "429",
            Self::Status400 => "400",
            Self::Reset => "reset",
            Self::Malformed => "malformed",
            Self::Length => "length",
            Self::Truncate => "truncate",
            Self::Hang => "hang",
        }
    }
}

/// Why a request was sent: what the soak expects of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// A prompt from a fixed pool, re-sent: an exact hit once cached.
    Exact,
    /// The first phrasing of a near-duplicate pair, sent once per scope to seed the cache.
    SemanticSeed,
    /// The second phrasing of a pair: a semantic hit when the cache holds the first.
    Semantic,
    /// A prompt never sent before: a miss.
    Miss,
    /// A unique question with retrieved documents over the trim cap.
    Trim,
    /// A prompt that makes the mock misbehave.
    Fault(Fault),
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact => f.write_str("exact"),
            Self::SemanticSeed => f.write_str("semantic_seed"),
            Self::Semantic => f.write_str("semantic"),
            Self::Miss => f.write_str("miss"),
            Self::Trim => f.write_str("trim"),
            Self::Fault(kind) => write!(f, "fault:{}", kind.as_str()),
        }
    }
}

/// Shares of the mix, in percent of all requests (the miss class takes the rest).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Exact repeats.
    pub exact: f64,
    /// Near-duplicate rephrasings.
    pub semantic: f64,
    /// Requests with documents to trim.
    pub trim: f64,
    /// Injected faults.
    pub fault: f64,
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Why it is sent.
    pub class: Class,
    /// `x-frugal-tenant`, if any.
    pub tenant: Option<&'static str>,
    /// Whether it asks for SSE.
    pub stream: bool,
    /// The JSON body.
    pub body: Value,
    /// Texts a correct answer may quote (the mock quotes the question's first 24 words); empty
    /// when the answer is not checked (trimmed context changes what the mock sees).
    pub quotes: Vec<String>,
}

/// Builds the request sequence.
pub struct Workload {
    mix: Mix,
    rng: SplitMix64,
    /// Scopes (pair, tenant, model) whose first phrasing has been sent.
    seeded: HashSet<(usize, usize, usize)>,
}

impl Workload {
    /// A workload with the given mix and seed.
    pub fn new(mix: Mix, seed: u64) -> Self {
        Self {
            mix,
            rng: SplitMix64(seed),
            seeded: HashSet::new(),
        }
    }

    /// The request with sequence number `seq` (call in order).
    pub fn next(&mut self, seq: u64) -> Spec {
        let tenant_index = self.rng.below(TENANTS.len() as u64) as usize;
        let model_index = self.rng.below(MODELS.len() as u64) as usize;
        let roll = self.rng.unit() * 100.0;
        let Mix {
            exact,
            semantic,
            trim,
            fault,
        } = self.mix;
        let (class, prompt, quotes) = if roll < exact {
            let prompt = exact_prompt(self.rng.below(EXACT_POOL as u64) as usize);
            let quotes = vec![quote(&prompt)];
            (Class::Exact, prompt, quotes)
        } else if roll < exact + semantic {
            self.semantic(tenant_index, model_index)
        } else if roll < exact + semantic + trim {
            (Class::Trim, trim_prompt(seq), Vec::new())
        } else if roll < exact + semantic + trim + fault {
            let kind = self.fault_kind();
            let prompt = format!(
                "[fault:{}] Please look up the status of order {}.",
                kind.as_str(),
                self.rng.below(FAULT_POOL)
            );
            let quotes = vec![quote(&prompt)];
            (Class::Fault(kind), prompt, quotes)
        } else {
            let prompt = miss_prompt(seq);
            let quotes = vec![quote(&prompt)];
            (Class::Miss, prompt, quotes)
        };
        let stream = match class {
            Class::Fault(Fault::Truncate) => self.rng.unit() < 0.5,
            _ => self.rng.unit() < STREAM_SHARE,
        };
        Spec {
            class,
            tenant: TENANTS[tenant_index],
            stream,
            body: chat_body(MODELS[model_index], &prompt, stream),
            quotes,
        }
    }

    /// A semantic request: the pair's first phrasing the first time its scope is seen, the
    /// rephrasing afterwards (a hit answers with the first phrasing's answer).
    fn semantic(&mut self, tenant: usize, model: usize) -> (Class, String, Vec<String>) {
        let pair = self.rng.below(PAIRS.len() as u64) as usize;
        let (first, second) = PAIRS[pair];
        if self.seeded.insert((pair, tenant, model)) {
            (Class::SemanticSeed, first.to_string(), vec![quote(first)])
        } else {
            let quotes = vec![quote(first), quote(second)];
            (Class::Semantic, second.to_string(), quotes)
        }
    }

    fn fault_kind(&mut self) -> Fault {
        let total: u32 = Fault::WEIGHTED.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.below(u64::from(total)) as u32;
        for (kind, weight) in Fault::WEIGHTED {
            if pick < weight {
                return kind;
            }
            pick -= weight;
        }
        Fault::Status500
    }
}

/// A probe request: one fault kind, streamed or not, to one model.
pub fn probe(kind: Fault, model: &str, stream: bool, seq: u64) -> Spec {
    let prompt = format!(
        "[fault:{}] Probe {seq}: what does this fault become?",
        kind.as_str()
    );
    Spec {
        class: Class::Fault(kind),
        tenant: Some("acme"),
        stream,
        body: chat_body(model, &prompt, stream),
        quotes: vec![quote(&prompt)],
    }
}

/// A chat request at temperature 0 (cacheable) with a fixed system prompt.
fn chat_body(model: &str, prompt: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "temperature": 0,
        "stream": stream,
        "messages": [
            { "role": "system", "content": "You are a concise assistant." },
            { "role": "user", "content": prompt },
        ],
    })
}

/// What the mock quotes of a question: its first 24 words.
pub fn quote(prompt: &str) -> String {
    prompt
        .split_whitespace()
        .take(24)
        .collect::<Vec<_>>()
        .join(" ")
}

fn exact_prompt(index: usize) -> String {
    let topic = TOPICS[index % TOPICS.len()];
    let tips = 2 + index / TOPICS.len();
    format!("Give me {tips} practical tips about {topic}.")
}

fn miss_prompt(seq: u64) -> String {
    let topic = TOPICS[(seq % TOPICS.len() as u64) as usize];
    format!("Case {seq}: summarise what a newcomer should know about {topic} in one paragraph.")
}

/// A unique question with three retrieved documents, together well over the trim cap.
fn trim_prompt(seq: u64) -> String {
    let topic = TOPICS[(seq % TOPICS.len() as u64) as usize];
    let documents: Vec<String> = (0..3)
        .map(|d| {
            let sentences: Vec<String> = (0..8)
                .map(|s| {
                    let filler = FILLER[(seq as usize + d * 8 + s) % FILLER.len()];
                    format!("Note {d}.{s} on {topic}: {filler}")
                })
                .collect();
            format!("<document>{}</document>", sentences.join(" "))
        })
        .collect();
    format!(
        "{}\n\nQuestion {seq}: using the documents above, what matters most about {topic}?",
        documents.join("\n")
    )
}

/// A small, fast, deterministic generator (SplitMix64); the soak needs repeatability, not
/// cryptographic quality.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const TOPICS: [&str; 40] = [
    "code review",
    "unit testing",
    "database indexing",
    "password security",
    "remote work",
    "public speaking",
    "time management",
    "container images",
    "API design",
    "technical writing",
    "home gardening",
    "marathon training",
    "personal budgeting",
    "learning a language",
    "bread baking",
    "job interviews",
    "team meetings",
    "incident response",
    "log retention",
    "cloud costs",
    "caching strategies",
    "load testing",
    "error handling",
    "dependency upgrades",
    "feature flags",
    "schema migrations",
    "on-call rotations",
    "accessibility",
    "mobile performance",
    "data privacy",
    "onboarding engineers",
    "writing changelogs",
    "sleep hygiene",
    "healthy breakfasts",
    "bike maintenance",
    "travel packing",
    "houseplant care",
    "negotiating salary",
    "mentoring juniors",
    "reading research papers",
];

const FILLER: [&str; 12] = [
    "teams that measure before changing anything avoid most regressions.",
    "the cheapest fix is usually the one made earliest in the process.",
    "small, reversible steps make it easy to learn from each change.",
    "documentation that explains why outlives documentation that explains how.",
    "automating the boring parts leaves attention for the hard parts.",
    "a checklist catches the mistakes that experience makes invisible.",
    "feedback loops shorter than a day keep everyone aligned.",
    "most failures come from assumptions nobody wrote down.",
    "budgets and limits are easier to agree on before they are needed.",
    "the first version should be simple enough to throw away.",
    "people adopt a practice when it saves them time in the first week.",
    "reviewing outcomes monthly shows which habits are worth keeping.",
];

/// Handcrafted near-duplicates: the same question phrased twice, differing only in wording a
/// reader would not notice (no numbers, negations or names changed), so the semantic tier
/// should answer the second with the first's answer.
const PAIRS: [(&str, &str); 50] = [
    (
        "How do I reverse a list in Python?",
        "How can I reverse a list in Python?",
    ),
    (
        "How do I sort a dictionary by value in Python?",
        "How can I sort a dictionary by value in Python?",
    ),
    (
        "What is the difference between a process and a thread?",
        "What's the difference between a process and a thread?",
    ),
    (
        "How do I undo the last git commit?",
        "How can I undo the last git commit?",
    ),
    (
        "How do I center a div in CSS?",
        "How can I center a div with CSS?",
    ),
    (
        "What is the capital of Australia?",
        "What's the capital of Australia?",
    ),
    (
        "How do I read a file line by line in Rust?",
        "How can I read a file line by line in Rust?",
    ),
    (
        "How do I remove duplicates from a list in Python?",
        "How can I remove duplicates from a Python list?",
    ),
    (
        "What causes inflation in an economy?",
        "What causes inflation in the economy?",
    ),
    (
        "How do I merge two dictionaries in Python?",
        "How can I merge two dictionaries in Python?",
    ),
    (
        "How does photosynthesis work?",
        "How does photosynthesis work in plants?",
    ),
    (
        "How do I convert a string to an integer in Java?",
        "How can I convert a string to an integer in Java?",
    ),
    (
        "What is a closure in JavaScript?",
        "What exactly is a closure in JavaScript?",
    ),
    (
        "How do I create a virtual environment in Python?",
        "How can I create a Python virtual environment?",
    ),
    ("Why is the sky blue?", "Why does the sky look blue?"),
    (
        "How do I check if a file exists in Bash?",
        "How can I check whether a file exists in Bash?",
    ),
    (
        "What is the difference between TCP and UDP?",
        "What's the difference between TCP and UDP?",
    ),
    (
        "How do I delete a remote branch in git?",
        "How can I delete a remote git branch?",
    ),
    (
        "How do I make a cup of green tea?",
        "How should I make a cup of green tea?",
    ),
    (
        "What are the symptoms of dehydration?",
        "What are the signs of dehydration?",
    ),
    (
        "How do I improve my sleep quality?",
        "How can I improve the quality of my sleep?",
    ),
    (
        "What is the time complexity of binary search?",
        "What's the time complexity of binary search?",
    ),
    (
        "How do I write a unit test in Go?",
        "How can I write a unit test in Go?",
    ),
    (
        "How do I parse JSON in JavaScript?",
        "How can I parse JSON in JavaScript?",
    ),
    (
        "What is dependency injection?",
        "What is dependency injection in software?",
    ),
    (
        "How do I learn to play the guitar?",
        "How can I learn to play guitar?",
    ),
    (
        "What is the difference between a list and a tuple in Python?",
        "What's the difference between a list and a tuple in Python?",
    ),
    (
        "How do I rename a column in pandas?",
        "How can I rename a column in a pandas DataFrame?",
    ),
    (
        "How do I find the largest file in a directory on Linux?",
        "How can I find the largest file in a directory on Linux?",
    ),
    (
        "How do I handle errors in Rust?",
        "How should I handle errors in Rust?",
    ),
    ("What is a black hole?", "What exactly is a black hole?"),
    (
        "How do I bake sourdough bread?",
        "How can I bake sourdough bread at home?",
    ),
    (
        "How do I generate a random string in Python?",
        "How can I generate a random string in Python?",
    ),
    (
        "What is the purpose of a load balancer?",
        "What does a load balancer do?",
    ),
    (
        "How do I install Docker on Ubuntu?",
        "How can I install Docker on Ubuntu?",
    ),
    (
        "How do I join two tables in SQL?",
        "How can I join two tables in SQL?",
    ),
    (
        "What are the benefits of regular exercise?",
        "What are the benefits of exercising regularly?",
    ),
    (
        "How do I configure SSH keys for GitHub?",
        "How can I set up SSH keys for GitHub?",
    ),
    (
        "What is the difference between RAM and storage?",
        "What's the difference between RAM and storage?",
    ),
    (
        "How do I split a string by a delimiter in C++?",
        "How can I split a string by a delimiter in C++?",
    ),
    (
        "How do I start investing with little money?",
        "How can I start investing with little money?",
    ),
    (
        "How do I flatten a nested list in Python?",
        "How can I flatten a nested list in Python?",
    ),
    (
        "What is the role of mitochondria in a cell?",
        "What role do mitochondria play in a cell?",
    ),
    (
        "How do I reset a forgotten password on Linux?",
        "How can I reset a forgotten password on Linux?",
    ),
    (
        "How do I use async and await in JavaScript?",
        "How can I use async and await in JavaScript?",
    ),
    (
        "What is the difference between HTTP and HTTPS?",
        "What's the difference between HTTP and HTTPS?",
    ),
    (
        "How do I stop procrastinating?",
        "How can I stop procrastinating?",
    ),
    (
        "How do I compute the mean of a NumPy array?",
        "How can I compute the mean of a NumPy array?",
    ),
    ("What is a REST API?", "What exactly is a REST API?"),
    (
        "How do I write a good cover letter?",
        "How can I write a good cover letter?",
    ),
];
