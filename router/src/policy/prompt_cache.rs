//! The `prompt_cache:` section, checked: how the sidecar helps the provider's own prompt cache.

use super::compile::Errors;
use super::raw::RawPromptCache;

/// OpenAI's and Anthropic's shortest cached prompt, in tokens.
pub const DEFAULT_MIN_PROMPT_TOKENS: u64 = 1024;

/// Checked prompt-cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptCachePolicy {
    /// Send `tools` sorted by function name.
    pub stable_tool_order: bool,
    /// Watch each tenant's stable prefix for changes that defeat the provider's cache.
    pub watch: bool,
    /// Shortest prompt the provider caches; shorter calls are not watched.
    pub min_prompt_tokens: u64,
    /// Add `cache_control` breakpoints to calls to Anthropic providers.
    pub breakpoints: bool,
}

impl Default for PromptCachePolicy {
    fn default() -> Self {
        Self {
            stable_tool_order: false,
            watch: true,
            min_prompt_tokens: DEFAULT_MIN_PROMPT_TOKENS,
            breakpoints: false,
        }
    }
}

/// Checks the `prompt_cache:` section (defaults when the policy has none).
pub(super) fn compile_prompt_cache(
    raw: Option<&RawPromptCache>,
    errors: &mut Errors,
) -> PromptCachePolicy {
    let defaults = PromptCachePolicy::default();
    let Some(raw) = raw else {
        return defaults;
    };
    let min_prompt_tokens = raw.min_prompt_tokens.unwrap_or(defaults.min_prompt_tokens);
    if min_prompt_tokens == 0 {
        errors.push(
            "prompt_cache.min_prompt_tokens",
            "must be at least 1 (providers cache prompts of 1024 tokens or more)",
        );
    }
    PromptCachePolicy {
        stable_tool_order: raw.stable_tool_order.unwrap_or(defaults.stable_tool_order),
        watch: raw.watch.unwrap_or(defaults.watch),
        min_prompt_tokens,
        breakpoints: raw.breakpoints.unwrap_or(defaults.breakpoints),
    }
}
