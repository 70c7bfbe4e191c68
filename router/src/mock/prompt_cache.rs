//! The fake upstream's prompt cache, after OpenAI's published rules: a prompt of 1,024 tokens or
//! more is served from the cache for its longest prefix an earlier call to the same model sent
//! token for token (its tools first, then its messages in order), counted in blocks of 128
//! tokens from 1,024 on, and reported as `usage.prompt_tokens_details.cached_tokens`. So the
//! sidecar's `prompt_cache` lever can be tested and demonstrated against what a provider does.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use rustc_hash::FxHasher;
use serde_json::{Map, Value};

use crate::tokens::{content_text, count, split};

/// The shortest prompt the provider caches, in tokens.
pub const MIN_CACHED_TOKENS: u64 = 1024;
/// The provider caches prefixes in blocks of this many tokens.
pub const BLOCK_TOKENS: usize = 128;
/// Prefix blocks remembered before the cache starts over (bounds the mock's memory).
const MAX_BLOCKS: usize = 1 << 20;

/// Prefix blocks seen so far, as chained hashes (a block's hash covers every block before it).
#[derive(Debug, Default)]
pub struct ProviderCache {
    blocks: Mutex<HashSet<u64>>,
}

impl ProviderCache {
    /// The tokens of `body`'s prompt (which bills `prompt_tokens`) served from the cache, and
    /// remembers the prompt's blocks for later calls.
    pub fn read(&self, body: &Map<String, Value>, prompt_tokens: u64) -> u64 {
        if prompt_tokens < MIN_CACHED_TOKENS {
            return 0;
        }
        let tokens = split(&linear_prompt(body));
        let mut chain = FxHasher::default();
        body.get("model").and_then(Value::as_str).hash(&mut chain);
        let hashes: Vec<u64> = tokens
            .chunks_exact(BLOCK_TOKENS)
            .map(|block| {
                block.hash(&mut chain);
                chain.finish()
            })
            .collect();
        let mut seen = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let matched = hashes.iter().take_while(|h| seen.contains(h)).count();
        if seen.len() + hashes.len() > MAX_BLOCKS {
            seen.clear();
        }
        seen.extend(hashes);
        let cached = (matched * BLOCK_TOKENS) as u64;
        if cached < MIN_CACHED_TOKENS {
            0
        } else {
            cached.min(prompt_tokens)
        }
    }

    /// Anthropic's rules for a prompt given as `segments` in order (tools, system blocks, message
    /// blocks; each with whether it carries a `cache_control` breakpoint) for `model`: a
    /// breakpoint's prefix of 1,024 tokens or more an earlier call stored is read from the
    /// cache, and the prefix up to the last breakpoint is stored (written) past what was read.
    /// Returns the prompt's tokens, those read and those written.
    pub fn read_breakpoints(&self, model: &str, segments: &[(String, bool)]) -> (u64, u64, u64) {
        let mut chain = FxHasher::default();
        model.hash(&mut chain);
        let mut total = 0;
        let mut breakpoints = Vec::new();
        for (text, breakpoint) in segments {
            text.hash(&mut chain);
            total += count(text);
            if *breakpoint && total >= MIN_CACHED_TOKENS {
                breakpoints.push((chain.finish(), total));
            }
        }
        let mut seen = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let read = breakpoints
            .iter()
            .filter(|(hash, _)| seen.contains(hash))
            .map(|&(_, tokens)| tokens)
            .max()
            .unwrap_or(0);
        let written = breakpoints
            .last()
            .filter(|(hash, _)| !seen.contains(hash))
            .map_or(0, |&(_, tokens)| tokens.saturating_sub(read));
        if seen.len() + breakpoints.len() > MAX_BLOCKS {
            seen.clear();
        }
        seen.extend(breakpoints.iter().map(|(hash, _)| *hash));
        (total, read, written)
    }

    /// Forgets every prefix (`POST /_mock/reset`).
    pub fn clear(&self) {
        self.blocks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The prompt as the provider sees it, in order: the tools, then each message's role and
/// content (and tool calls).
fn linear_prompt(body: &Map<String, Value>) -> String {
    let mut text = String::new();
    if let Some(tools) = body.get("tools") {
        text.push_str(&tools.to_string());
        text.push('\n');
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for message in messages {
        text.push_str(message.get("role").and_then(Value::as_str).unwrap_or(""));
        text.push('\n');
        text.push_str(&content_text(message.get("content")));
        if let Some(calls) = message.get("tool_calls") {
            text.push_str(&calls.to_string());
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::prompt_tokens;
    use serde_json::json;

    fn request(system: &str, question: &str, tools: &[&str]) -> Map<String, Value> {
        let tools: Vec<Value> = tools
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n}}))
            .collect();
        json!({
            "model": "m",
            "tools": tools,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ],
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn long_system() -> String {
        "You answer questions about the refund policy, politely and briefly. ".repeat(120)
    }

    #[test]
    fn a_repeated_prefix_is_served_in_128_token_blocks_from_1024_on() {
        let cache = ProviderCache::default();
        let first = request(&long_system(), "Where is my order?", &["a", "b"]);
        let billed = prompt_tokens(&first);
        assert!(billed > 1200, "{billed}");
        assert_eq!(cache.read(&first, billed), 0, "nothing cached yet");
        let second = request(&long_system(), "Can I return shoes?", &["a", "b"]);
        let cached = cache.read(&second, prompt_tokens(&second));
        assert!(cached >= 1024, "{cached}");
        assert_eq!(cached % BLOCK_TOKENS as u64, 0);
        assert!(cached <= prompt_tokens(&second));
    }

    #[test]
    fn tools_in_another_order_or_a_changed_start_miss() {
        let cache = ProviderCache::default();
        let first = request(&long_system(), "q1", &["a", "b"]);
        cache.read(&first, prompt_tokens(&first));
        let reordered = request(&long_system(), "q2", &["b", "a"]);
        assert_eq!(cache.read(&reordered, prompt_tokens(&reordered)), 0);
        let stamped = request(
            &format!("Time: 10:32:15. {}", long_system()),
            "q3",
            &["a", "b"],
        );
        assert_eq!(cache.read(&stamped, prompt_tokens(&stamped)), 0);
    }

    #[test]
    fn anthropic_reads_at_breakpoints_and_writes_up_to_the_last_one() {
        let cache = ProviderCache::default();
        let system = long_system();
        let call = |question: &str, marked: bool| {
            vec![(system.clone(), marked), (question.to_string(), false)]
        };
        let (total, read, written) = cache.read_breakpoints("m", &call("q1", true));
        assert_eq!(read, 0);
        assert!(written >= 1024 && written < total, "{written} of {total}");
        let (_, read, written) = cache.read_breakpoints("m", &call("q2", true));
        assert!(read >= 1024 && written == 0, "{read} {written}");
        // Without a breakpoint nothing is cached, however long the prefix.
        let (_, read, written) = cache.read_breakpoints("m", &call("q3", false));
        assert_eq!((read, written), (0, 0));
    }

    #[test]
    fn short_prompts_and_other_models_are_never_cached() {
        let cache = ProviderCache::default();
        let short = request("Be brief.", "hi", &[]);
        cache.read(&short, prompt_tokens(&short));
        assert_eq!(cache.read(&short, prompt_tokens(&short)), 0);
        let first = request(&long_system(), "q", &[]);
        cache.read(&first, prompt_tokens(&first));
        let mut other = first.clone();
        other.insert("model".into(), json!("other"));
        assert_eq!(cache.read(&other, prompt_tokens(&other)), 0);
    }
}
