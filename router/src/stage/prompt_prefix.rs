//! The provider's prompt cache: it serves the input tokens of a call's longest prefix that an
//! earlier call sent byte for byte (tools first, then the messages in order), from about 1,024
//! tokens on, at a fraction of the input price. Two habits of agents defeat it: offering the same
//! tools in another order, and a system prompt with a part that changes on every call (a
//! timestamp, a request id). This stage keeps the tool order stable when the policy asks
//! ([`shape`]), and watches each tenant's stable prefix (tools, then the leading system
//! messages) for those two changes ([`PrefixWatch`]), so they show up as a metric, a log line
//! and a response header instead of as a quietly higher bill.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use regex::Regex;

use rustc_hash::FxHasher;
use serde_json::{Map, Value};

use crate::metrics;
use crate::policy::PromptCachePolicy;

/// How often a tenant's break of one cause is logged (each one is counted).
const LOG_EVERY: Duration = Duration::from_secs(600);

/// Recent prefixes kept per tenant: one tenant may run a few agents with different prompts.
const RECENT_PER_TENANT: usize = 4;

/// Most system-prompt bytes kept for comparison (a change beyond them is still seen as a change
/// of the whole prefix, through its hash).
const COMPARED_BYTES: usize = 16 * 1024;

/// A changed span this short (in bytes), or this small a share of the prompt, is a volatile
/// part rather than another prompt.
const VOLATILE_MAX_BYTES: usize = 64;
const VOLATILE_MAX_SHARE: f64 = 0.05;

/// Sorts `tools` by function name (a stable sort: tools without a name keep their order, last)
/// when the policy asks for a stable tool order. Returns whether the order changed.
pub fn shape(policy: &PromptCachePolicy, body: &mut Map<String, Value>) -> bool {
    if !policy.stable_tool_order || tools_in_name_order(body) {
        return false;
    }
    match body.get_mut("tools") {
        Some(Value::Array(tools)) => {
            tools.sort_by(by_name);
            true
        }
        _ => false,
    }
}

/// Whether a body's tools (if any) are already in the order [`shape`] sorts them into.
pub fn tools_in_name_order(body: &Map<String, Value>) -> bool {
    match body.get("tools") {
        Some(Value::Array(tools)) => tools.is_sorted_by(|a, b| by_name(a, b) != Ordering::Greater),
        _ => true,
    }
}

/// Tools by function name, named ones first.
fn by_name(a: &Value, b: &Value) -> Ordering {
    let key = |tool| {
        let name = tool_name(tool);
        (name.is_none(), name)
    };
    key(a).cmp(&key(b))
}

/// A tool's function name (`{"type":"function","function":{"name":…}}`).
fn tool_name(tool: &Value) -> Option<&str> {
    tool.pointer("/function/name")
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
}

/// The part of a request the provider's cache can serve across calls: its tools and its
/// leading system (or developer) messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StablePrefix {
    /// Each tool's hash, in the order sent.
    tools: Vec<u64>,
    /// The leading system messages' text, joined (at most [`COMPARED_BYTES`]).
    system: String,
    /// Hash of the tools and the whole system text.
    hash: u64,
}

impl StablePrefix {
    /// The stable prefix of a chat request body.
    pub fn of(body: &Map<String, Value>) -> Self {
        let tools: Vec<u64> = match body.get("tools") {
            Some(Value::Array(tools)) => tools.iter().map(|t| hash_of(&t.to_string())).collect(),
            _ => Vec::new(),
        };
        let system = system_text(body);
        let mut hasher = FxHasher::default();
        tools.hash(&mut hasher);
        system.hash(&mut hasher);
        let hash = hasher.finish();
        let mut kept = system;
        if kept.len() > COMPARED_BYTES {
            let mut end = COMPARED_BYTES;
            while !kept.is_char_boundary(end) {
                end -= 1;
            }
            kept.truncate(end);
        }
        Self {
            tools,
            system: kept,
            hash,
        }
    }

    /// The leading system messages' text.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// Whether there is anything stable to cache.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.system.is_empty()
    }
}

/// The text of the messages before the first that is not `system` or `developer`.
pub fn system_text(body: &Map<String, Value>) -> String {
    let Some(Value::Array(messages)) = body.get("messages") else {
        return String::new();
    };
    let mut text = String::new();
    for message in messages {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "system" && role != "developer" {
            break;
        }
        match message.get("content") {
            Some(Value::String(content)) => text.push_str(content),
            Some(Value::Array(parts)) => {
                for part in parts {
                    if let Some(part) = part.get("text").and_then(Value::as_str) {
                        text.push_str(part);
                    }
                }
            }
            _ => {}
        }
        text.push('\n');
    }
    text
}

/// Values in `text` that look like they change from call to call (a time of day, a timestamp,
/// a UUID), with their byte offsets: what `policy explain` points at in a system prompt.
pub fn volatile_values(text: &str) -> Vec<(usize, String)> {
    static PATTERN: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(concat!(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?",
            r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
            r"|\b\d{1,2}:\d{2}(:\d{2})?(\s?[AaPp][Mm])?\b",
            r"|\b1[6-9]\d{8}(\d{3})?\b",
        ))
        .ok()
    });
    PATTERN.as_ref().map_or_else(Vec::new, |pattern| {
        pattern
            .find_iter(text)
            .map(|m| (m.start(), m.as_str().to_string()))
            .collect()
    })
}

fn hash_of(text: &str) -> u64 {
    let mut hasher = FxHasher::default();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Why a call's stable prefix defeats the provider's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakCause {
    /// A small part of the system prompt differs from an earlier call's (a timestamp, an id).
    VolatileSystem,
    /// The same tools as an earlier call, in another order.
    ToolOrder,
}

impl BreakCause {
    /// The metric label and header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VolatileSystem => "volatile_system",
            Self::ToolOrder => "tool_order",
        }
    }
}

/// A prefix change that defeats the provider's cache, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixBreak {
    /// Why.
    pub cause: BreakCause,
    /// Byte offset in the system text where the two prompts start to differ (0 for tool order).
    pub at: usize,
    /// The differing part, as the earlier call had it (shortened).
    pub was: String,
    /// The differing part, as this call has it (shortened).
    pub now: String,
}

impl PrefixBreak {
    /// One line for logs and `policy explain`.
    pub fn describe(&self) -> String {
        match self.cause {
            BreakCause::ToolOrder => {
                "the same tools as an earlier call, in another order: the provider's cache \
                 serves nothing past the first tool that moved (set \
                 prompt_cache.stable_tool_order: true)"
                    .to_string()
            }
            BreakCause::VolatileSystem => format!(
                "the system prompt changes at byte {} ({:?} was {:?}): the provider's cache \
                 serves nothing past that point; move changing values after the stable part",
                self.at, self.now, self.was
            ),
        }
    }
}

/// How a prefix relates to an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Same,
    Broken(PrefixBreak),
    Different,
}

/// Compares a call's stable prefix with an earlier call's.
fn compare(earlier: &StablePrefix, now: &StablePrefix) -> Change {
    if earlier.hash == now.hash {
        return Change::Same;
    }
    if earlier.tools != now.tools {
        let mut a = earlier.tools.clone();
        let mut b = now.tools.clone();
        a.sort_unstable();
        b.sort_unstable();
        return if a == b && earlier.system == now.system {
            Change::Broken(PrefixBreak {
                cause: BreakCause::ToolOrder,
                at: 0,
                was: String::new(),
                now: String::new(),
            })
        } else {
            Change::Different
        };
    }
    match volatile_span(&earlier.system, &now.system) {
        Some((at, was, now)) => Change::Broken(PrefixBreak {
            cause: BreakCause::VolatileSystem,
            at,
            was,
            now,
        }),
        None => Change::Different,
    }
}

/// Where two texts differ, when they differ in one small span: its byte offset and the two
/// versions of it (with a little context, shortened).
fn volatile_span(a: &str, b: &str) -> Option<(usize, String, String)> {
    if a == b || a.is_empty() || b.is_empty() {
        return None;
    }
    let prefix = common_prefix(a, b);
    let suffix = common_suffix(&a[prefix..], &b[prefix..]);
    let changed_a = a.len() - prefix - suffix;
    let changed_b = b.len() - prefix - suffix;
    let longest = a.len().max(b.len());
    let limit = VOLATILE_MAX_BYTES.max((longest as f64 * VOLATILE_MAX_SHARE) as usize);
    if changed_a.max(changed_b) > limit {
        return None;
    }
    // A little context before the change, from the start of its word.
    let start = a[..prefix]
        .char_indices()
        .rev()
        .take(12)
        .last()
        .map_or(prefix, |(i, _)| i);
    let show = |text: &str, end: usize| shorten(&text[start..end]);
    Some((prefix, show(a, a.len() - suffix), show(b, b.len() - suffix)))
}

/// Byte length of the longest common prefix, on a character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    let mut len = 0;
    for ((i, ca), cb) in a.char_indices().zip(b.chars()) {
        if ca != cb {
            return i;
        }
        len = i + ca.len_utf8();
    }
    len
}

/// Byte length of the longest common suffix, on a character boundary.
fn common_suffix(a: &str, b: &str) -> usize {
    let mut len = 0;
    for (ca, cb) in a.chars().rev().zip(b.chars().rev()) {
        if ca != cb {
            break;
        }
        len += ca.len_utf8();
    }
    len
}

fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 48;
    match text.char_indices().nth(MAX_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Each tenant's recent stable prefixes, to tell a prefix that defeats the provider's cache.
/// Tenants are the bounded names of [`crate::tenants`], and each keeps a few prefixes of at
/// most [`COMPARED_BYTES`], so memory stays bounded.
#[derive(Debug, Default)]
pub struct PrefixWatch {
    recent: Mutex<HashMap<String, VecDeque<StablePrefix>>>,
    logged: Mutex<HashMap<(String, BreakCause), Instant>>,
}

/// Watches one call's prefix when the policy asks and the prompt is long enough for the
/// provider to cache: a break is counted (`frugal_prompt_prefix_breaks_total`), logged at most
/// every ten minutes per tenant and cause, and returned for the response header.
pub fn watch(
    policy: &PromptCachePolicy,
    prefixes: &PrefixWatch,
    tenant: &str,
    body: &Map<String, Value>,
    prompt_tokens: u64,
) -> Option<PrefixBreak> {
    if !policy.watch || prompt_tokens < policy.min_prompt_tokens {
        return None;
    }
    let found = prefixes.observe(tenant, StablePrefix::of(body))?;
    metrics::record_prefix_break(tenant, found.cause.as_str());
    if prefixes.first_in_a_while(tenant, found.cause) {
        tracing::warn!(
            tenant,
            cause = found.cause.as_str(),
            "prompt prefix defeats the provider's prompt cache: {}",
            found.describe()
        );
    }
    Some(found)
}

impl PrefixWatch {
    /// Whether a break of `cause` for `tenant` was not logged in the last ten minutes (and
    /// notes it as logged now).
    fn first_in_a_while(&self, tenant: &str, cause: BreakCause) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match logged.get(&(tenant.to_string(), cause)) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            _ => {
                logged.insert((tenant.to_string(), cause), now);
                true
            }
        }
    }

    /// Notes `prefix` as `tenant`'s latest and says whether it breaks the provider's cache
    /// against one of the tenant's recent prefixes (an exact repeat of any is no break).
    pub fn observe(&self, tenant: &str, prefix: StablePrefix) -> Option<PrefixBreak> {
        if prefix.is_empty() {
            return None;
        }
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = recent.entry(tenant.to_string()).or_default();
        let mut found = None;
        for earlier in kept.iter() {
            match compare(earlier, &prefix) {
                Change::Same => {
                    found = None;
                    break;
                }
                Change::Broken(b) if found.is_none() => found = Some(b),
                Change::Broken(_) | Change::Different => {}
            }
        }
        if let Some(i) = kept.iter().position(|p| p.hash == prefix.hash) {
            kept.remove(i);
        }
        kept.push_front(prefix);
        kept.truncate(RECENT_PER_TENANT);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(system: &str, tools: &[&str]) -> Map<String, Value> {
        let tools: Vec<Value> = tools
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {}}}))
            .collect();
        let body = json!({
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": "hi"}],
            "tools": tools,
        });
        body.as_object().cloned().unwrap_or_default()
    }

    fn prompt(time: &str) -> String {
        format!(
            "Current time: {time}. You are a support agent for Acme. {}",
            "Follow the refund policy and answer briefly. ".repeat(40)
        )
    }

    #[test]
    fn a_timestamp_in_the_system_prompt_is_a_volatile_break() {
        let watch = PrefixWatch::default();
        let first = StablePrefix::of(&body(&prompt("2026-12-04 10:32:11"), &["a"]));
        let second = StablePrefix::of(&body(&prompt("2026-12-04 10:32:15"), &["a"]));
        assert_eq!(watch.observe("t", first), None);
        let found = watch.observe("t", second).unwrap();
        assert_eq!(found.cause, BreakCause::VolatileSystem);
        assert_eq!(found.at, "Current time: 2026-12-04 10:32:1".len());
        assert!(found.now.ends_with("10:32:15"), "{found:?}");
        assert!(found.was.ends_with("10:32:11"), "{found:?}");
        assert!(found.describe().contains("byte 32"), "{}", found.describe());
    }

    #[test]
    fn the_same_tools_in_another_order_break_and_sorting_them_mends_it() {
        let watch = PrefixWatch::default();
        let system = prompt("fixed");
        let mut first = body(&system, &["search", "fetch", "calc"]);
        let mut second = body(&system, &["calc", "search", "fetch"]);
        assert_eq!(watch.observe("t", StablePrefix::of(&first)), None);
        let found = watch.observe("t", StablePrefix::of(&second)).unwrap();
        assert_eq!(found.cause, BreakCause::ToolOrder);

        let policy = PromptCachePolicy {
            stable_tool_order: true,
            ..PromptCachePolicy::default()
        };
        assert!(shape(&policy, &mut first));
        assert!(shape(&policy, &mut second));
        assert_eq!(first, second);
        assert!(!shape(&policy, &mut second), "already in order");
        let sorted = StablePrefix::of(&first);
        let watch = PrefixWatch::default();
        assert_eq!(watch.observe("t", sorted.clone()), None);
        assert_eq!(watch.observe("t", StablePrefix::of(&second)), None);
        // Off by default: the request is sent as written.
        let mut third = body(&system, &["b", "a"]);
        assert!(!shape(&PromptCachePolicy::default(), &mut third));
    }

    #[test]
    fn another_agent_repeats_and_other_tenants_are_no_break() {
        let watch = PrefixWatch::default();
        let support = StablePrefix::of(&body(&prompt("x"), &["a"]));
        let coder = StablePrefix::of(&body(
            &"You write Rust code and explain it. ".repeat(60),
            &["a"],
        ));
        assert_eq!(watch.observe("t", support.clone()), None);
        assert_eq!(
            watch.observe("t", coder.clone()),
            None,
            "a different prompt"
        );
        assert_eq!(watch.observe("t", support.clone()), None, "a repeat");
        assert_eq!(watch.observe("t", coder), None, "a repeat");
        let other = StablePrefix::of(&body(&prompt("y"), &["a"]));
        assert_eq!(watch.observe("u", other.clone()), None, "another tenant");
        assert!(watch.observe("t", other).is_some(), "same tenant");
    }

    #[test]
    fn no_system_prompt_and_no_tools_is_nothing_to_watch() {
        let watch = PrefixWatch::default();
        let bare = json!({"messages": [{"role": "user", "content": "hi"}]});
        let bare = bare.as_object().cloned().unwrap_or_default();
        assert!(StablePrefix::of(&bare).is_empty());
        assert_eq!(watch.observe("t", StablePrefix::of(&bare)), None);
    }

    #[test]
    fn times_timestamps_and_ids_look_volatile_but_dates_and_versions_do_not() {
        let found = volatile_values(
            "Now: 2026-12-04T10:32:11Z. Session 3f2b9c1e-0d4a-4c1b-9e2f-1a2b3c4d5e6f at 10:32 pm, \
             epoch 1764844331. Released 2026-12-04, version 1.24.4, ratio 3:1.",
        );
        let texts: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "2026-12-04T10:32:11Z",
                "3f2b9c1e-0d4a-4c1b-9e2f-1a2b3c4d5e6f",
                "10:32 pm",
                "1764844331"
            ]
        );
        assert_eq!(found[0].0, "Now: ".len());
    }

    #[test]
    fn spans_respect_character_boundaries() {
        let (at, was, now) =
            volatile_span("Zeit: 10:00 — héllo wörld", "Zeit: 11:00 — héllo wörld")
                .unwrap_or_default();
        assert_eq!(at, "Zeit: 1".len());
        assert!(was.ends_with("10") && now.ends_with("11"), "{was} {now}");
        assert_eq!(volatile_span("ä", "ö").map(|s| s.0), Some(0));
    }
}
