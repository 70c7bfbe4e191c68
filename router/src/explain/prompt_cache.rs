//! `policy explain`'s prompt-cache section: the request's stable prefix (tools, then the leading
//! system messages), whether the provider's prompt cache could serve it on a later call and why
//! not, and, given the previous call's body, whether the two share that prefix.

use serde_json::{json, Map, Value};

use crate::money::Usd;
use crate::policy::{ModelRoute, Policy, ProviderKind};
use crate::stage::prompt_prefix::{self, PrefixWatch, StablePrefix};
use crate::tokens;

/// The provider caches prefixes in blocks of this many tokens.
const BLOCK_TOKENS: u64 = 128;

/// The section for `body` (as the pipeline would send it: trimmed, tools sorted when the policy
/// says), which `model` would answer first; `previous` is the call before it, if given.
pub(super) fn section(
    policy: &Policy,
    model: Option<&ModelRoute>,
    body: &Map<String, Value>,
    tools_sorted: bool,
    input_tokens: u64,
    previous: Option<&Map<String, Value>>,
) -> Value {
    let settings = &policy.prompt_cache;
    let minimum = settings.min_prompt_tokens;
    let tools_tokens = body
        .get("tools")
        .map_or(0, |tools| tokens::count(&tools.to_string()));
    let system = prompt_prefix::system_text(body);
    let system_tokens = tokens::count(&system);
    let stable_tokens = tools_tokens + system_tokens;
    let volatile = prompt_prefix::volatile_values(&system);
    // What the provider could serve on a later call: the prefix up to the first value that
    // changes per call, else the whole stable prefix.
    let servable = match volatile.first() {
        Some((at, _)) => tools_tokens + tokens::count(&system[..*at]),
        None => stable_tokens,
    };
    let servable_blocks = (servable.min(input_tokens) / BLOCK_TOKENS) * BLOCK_TOKENS;
    let anthropic = model
        .and_then(|m| policy.providers.get(&m.provider))
        .is_some_and(|p| p.kind == ProviderKind::Anthropic);
    let (would_hit, why) = if anthropic && !settings.breakpoints {
        (
            false,
            "Anthropic caches only up to `cache_control` breakpoints, and this policy adds none \
             (set prompt_cache.breakpoints: true)"
                .to_string(),
        )
    } else {
        verdict(
            input_tokens,
            minimum,
            stable_tokens,
            servable_blocks,
            volatile.first(),
        )
    };
    let saving_per_repeat = model.map_or(Usd::ZERO, |m| {
        let price = m.token_price;
        let cached = if would_hit { servable_blocks } else { 0 };
        price.cost(cached, 0) - price.cost_with_prompt_cache(cached, cached, 0, 0)
    });
    let unsorted_tools = !settings.stable_tool_order && !prompt_prefix::tools_in_name_order(body);
    let against_previous = previous.map(|previous| {
        let watch = PrefixWatch::default();
        watch.observe("explain", StablePrefix::of(previous));
        match watch.observe("explain", StablePrefix::of(body)) {
            Some(found) => {
                json!({"shared": false, "cause": found.cause.as_str(), "detail": found.describe()})
            }
            None if StablePrefix::of(previous) == StablePrefix::of(body) => {
                json!({"shared": true, "cause": null, "detail": "the same tools and system prompt"})
            }
            None => {
                json!({"shared": false, "cause": null, "detail": "another prompt altogether"})
            }
        }
    });
    json!({
        "stable_tool_order": settings.stable_tool_order,
        "tools_sorted": tools_sorted,
        "tools_unsorted": unsorted_tools,
        "watch": settings.watch,
        "min_prompt_tokens": minimum,
        "prefix_tokens": { "tools": tools_tokens, "system": system_tokens, "total": stable_tokens },
        "volatile_values": volatile.iter().map(|(at, v)| json!({"at_byte": at, "value": v})).collect::<Vec<_>>(),
        "would_hit": would_hit,
        "cacheable_tokens": if would_hit { servable_blocks } else { 0 },
        "why": why,
        "saved_per_repeat_usd": saving_per_repeat.to_string(),
        "against_previous": against_previous,
    })
}

/// Whether a later call with the same prefix would be served from the provider's cache, and why.
fn verdict(
    input_tokens: u64,
    minimum: u64,
    stable_tokens: u64,
    servable_blocks: u64,
    first_volatile: Option<&(usize, String)>,
) -> (bool, String) {
    if input_tokens < minimum {
        return (
            false,
            format!(
                "the prompt is {input_tokens} tokens; providers cache prompts of {minimum} tokens or more"
            ),
        );
    }
    if let Some((at, value)) = first_volatile {
        if servable_blocks < minimum {
            return (
                false,
                format!(
                    "{value:?} at byte {at} of the system prompt looks like a value that changes \
                     from call to call; the provider can serve only the prefix before it, below \
                     its {minimum}-token minimum: move it after the stable part"
                ),
            );
        }
        return (
            true,
            format!(
                "up to {servable_blocks} tokens, the prefix before {value:?} at byte {at} of the \
                 system prompt (a value that looks like it changes from call to call)"
            ),
        );
    }
    if stable_tokens < minimum {
        return (
            false,
            format!(
                "the tools and system prompt are {stable_tokens} tokens, below the provider's \
                 {minimum}-token minimum; only a conversation's later turns, which repeat its \
                 earlier messages, can hit"
            ),
        );
    }
    (
        true,
        format!(
            "from the second call with the same tools and system prompt: {servable_blocks} tokens \
             at the cached price"
        ),
    )
}

/// The section as text.
pub(super) fn lines(p: &Value) -> String {
    let text = super::text;
    let mut out = format!(
        "prefix    tools {} + system {} tokens; the provider's cache {} ({})\n",
        text(&p["prefix_tokens"]["tools"]),
        text(&p["prefix_tokens"]["system"]),
        if p["would_hit"] == json!(true) {
            format!(
                "would serve it, saving ${} per repeat",
                text(&p["saved_per_repeat_usd"])
            )
        } else {
            "would not serve it".to_string()
        },
        text(&p["why"]),
    );
    if p["tools_sorted"] == json!(true) {
        out.push_str(
            "          tools sorted by name before the call (prompt_cache.stable_tool_order)\n",
        );
    } else if p["tools_unsorted"] == json!(true) {
        out.push_str(
            "          tools are not in name order: if their order varies between calls the cache \
             misses; prompt_cache.stable_tool_order: true sorts them\n",
        );
    }
    if let Some(previous) = p["against_previous"].as_object() {
        out.push_str(&format!(
            "          against the previous call: {}\n",
            text(&previous["detail"])
        ));
    }
    out
}
