//! What the fake upstream does: rules matched by model and prompt, each with a behaviour
//! (a reply, a delay, or a fault), loaded from YAML/JSON or built in code by tests.

use std::sync::atomic::{AtomicU64, Ordering};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::tool_call::ToolCall;

/// A whole script: rules tried in order, then the default behaviour.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What to do when no rule matches.
    #[serde(default)]
    pub default: Behaviour,
}

/// One rule: when a request matches, behave this way (at most `times` times, if set).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Conditions; an empty one matches every request.
    #[serde(default)]
    pub when: Matcher,
    /// How many matching requests this rule answers before it is skipped.
    #[serde(default)]
    pub times: Option<u64>,
    /// The behaviour.
    #[serde(default)]
    pub then: Behaviour,
}

/// Conditions on a request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// Exact upstream model name.
    #[serde(default)]
    pub model: Option<String>,
    /// Regular expression searched in the last user message.
    #[serde(default)]
    pub prompt: Option<String>,
}

/// How to answer. Faults take precedence over the reply, in the order listed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Fixed reply text; by default a deterministic answer that quotes the prompt.
    #[serde(default)]
    pub reply: Option<String>,
    /// `finish_reason` to report (default `stop`, or `length` when `max_tokens` cut the reply).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Mean token logprob reported when the client asks for `logprobs` (default -0.05).
    #[serde(default)]
    pub logprob: Option<f64>,
    /// Wait this long before the response headers.
    #[serde(default)]
    pub delay_ms: u64,
    /// Wait this long between stream chunks.
    #[serde(default)]
    pub token_delay_ms: u64,
    /// Answer with this HTTP error status and an OpenAI-shaped error body.
    #[serde(default)]
    pub status: Option<u16>,
    /// With `status`: the `Retry-After` header, in seconds.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Close the connection without answering (TCP reset).
    #[serde(default)]
    pub reset: bool,
    /// Never answer (the client's timeout must fire).
    #[serde(default)]
    pub hang: bool,
    /// Answer 200 with a body (or stream event) that is not valid JSON.
    #[serde(default)]
    pub malformed: bool,
    /// Streams: stop after this many content chunks, without a finish or `[DONE]`.
    /// Non-streaming: cut the JSON body short.
    #[serde(default)]
    pub truncate_after: Option<usize>,
    /// Send the response head and this many bytes of the body (JSON or SSE), then drop the
    /// connection mid-body.
    #[serde(default)]
    pub reset_after_bytes: Option<usize>,
    /// A huge answer: filler text of about this many bytes (1 KiB per stream chunk).
    #[serde(default)]
    pub reply_bytes: Option<usize>,
    /// Answer with a call to this tool (`finish_reason: tool_calls`); text only if `reply`
    /// says so too.
    #[serde(default)]
    pub tool_call: Option<ToolCall>,
}

/// A script ready to match: regexes compiled, per-rule counters.
#[derive(Debug, Default)]
pub struct CompiledScript {
    rules: Vec<CompiledRule>,
    default: Behaviour,
}

#[derive(Debug)]
struct CompiledRule {
    model: Option<String>,
    prompt: Option<Regex>,
    remaining: Option<AtomicU64>,
    behaviour: Behaviour,
}

impl CompiledScript {
    /// Compiles a script; a bad regex is an error naming the rule.
    pub fn compile(script: Script) -> Result<Self, String> {
        let rules = script
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| compile_rule(rule).map_err(|e| format!("rules[{i}].when.prompt: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            default: script.default,
        })
    }

    /// Adds a rule after the existing ones.
    pub fn push(&mut self, rule: Rule) -> Result<(), String> {
        self.rules.push(compile_rule(rule)?);
        Ok(())
    }

    /// The behaviour for a request, consuming one use of a counted rule.
    pub fn pick(&self, model: &str, prompt: &str) -> Behaviour {
        for rule in &self.rules {
            let model_ok = rule.model.as_deref().is_none_or(|m| m == model);
            let prompt_ok = rule.prompt.as_ref().is_none_or(|re| re.is_match(prompt));
            if !(model_ok && prompt_ok) {
                continue;
            }
            let available = match &rule.remaining {
                None => true,
                Some(left) => left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok(),
            };
            if available {
                return rule.behaviour.clone();
            }
        }
        self.default.clone()
    }
}

fn compile_rule(rule: Rule) -> Result<CompiledRule, String> {
    let prompt = rule
        .when
        .prompt
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(CompiledRule {
        model: rule.when.model,
        prompt,
        remaining: rule.times.map(AtomicU64::new),
        behaviour: rule.then,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_expire_then_fall_through() {
        let yaml = "rules:\n  - when: { model: cheap }\n    times: 2\n    then: { status: 503 }\ndefault: { reply: ok }\n";
        let script = CompiledScript::compile(crate::yaml::from_str(yaml).unwrap()).unwrap();
        assert_eq!(script.pick("cheap", "q").status, Some(503));
        assert_eq!(script.pick("strong", "q").status, None);
        assert_eq!(script.pick("cheap", "q").status, Some(503));
        assert_eq!(script.pick("cheap", "q").reply.as_deref(), Some("ok"));
    }

    #[test]
    fn prompt_patterns_are_regexes() {
        let mut script = CompiledScript::default();
        script
            .push(Rule {
                when: Matcher {
                    prompt: Some("(?i)capital of \\w+".into()),
                    ..Default::default()
                },
                then: Behaviour {
                    reply: Some("Paris".into()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            script
                .pick("m", "What is the Capital of France?")
                .reply
                .as_deref(),
            Some("Paris")
        );
        assert_eq!(script.pick("m", "hello").reply, None);
    }
}
