//! Confidence checks on a lower rung's answer: evidence in the answer itself that a stronger
//! model should answer instead. Each check that fires gives its escalation reason label.

use frugal_classifier::answer_checks::{self, Concern};
use serde_json::{Map, Value};

use crate::policy::CheckPolicy;
use crate::stage::escalation::EscalationReason;
use crate::tokens;

/// The reasons to escalate `completion`, an answer to `request`; empty when it may be served.
pub fn check(
    checks: &CheckPolicy,
    request: &Map<String, Value>,
    completion: &Map<String, Value>,
) -> Vec<EscalationReason> {
    let choice = completion
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let Some(choice) = choice else {
        return vec![EscalationReason::Empty];
    };
    let message = choice.get("message");
    let text = tokens::content_text(message.and_then(|m| m.get("content")));
    let tool_calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .filter(|calls| !calls.is_empty());
    let mut reasons = Vec::new();
    if checks.truncated && choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
        reasons.push(EscalationReason::Truncated);
    }
    if checks.empty && text.trim().is_empty() && tool_calls.is_none() {
        reasons.push(EscalationReason::Empty);
    }
    let refused = message
        .and_then(|m| m.get("refusal"))
        .is_some_and(|r| r.as_str().is_some_and(|r| !r.is_empty()));
    if checks.refusal_or_hedge
        && (refused || answer_checks::hedge(&text, &checks.hedge_phrases).is_some())
    {
        reasons.push(EscalationReason::RefusalOrHedge);
    }
    if checks.invalid_json && tool_calls.is_none() && !json_format_honoured(request, &text) {
        reasons.push(EscalationReason::InvalidJson);
    }
    if checks.invalid_tool_call {
        if let Some(calls) = tool_calls {
            if !tool_calls_valid(request, calls) {
                reasons.push(EscalationReason::InvalidToolCall);
            }
        }
    }
    if let (Some(floor), Some(mean)) = (checks.min_mean_logprob, mean_logprob(choice)) {
        if mean < floor {
            reasons.push(EscalationReason::LowLogprob);
        }
    }
    if checks.math && !text.is_empty() {
        reasons.extend(math_concerns(&tokens::last_user_text(request), &text));
    }
    reasons.dedup();
    reasons
}

/// Whether the answer is what a JSON `response_format` asked for (true when none is asked).
fn json_format_honoured(request: &Map<String, Value>, text: &str) -> bool {
    let Some(format) = request.get("response_format") else {
        return true;
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_object") => serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()),
        Some("json_schema") => {
            let Ok(answer) = serde_json::from_str::<Value>(text) else {
                return false;
            };
            match format.get("json_schema").and_then(|s| s.get("schema")) {
                Some(schema) => matches_schema(schema, &answer),
                None => true,
            }
        }
        _ => true,
    }
}

/// Whether `instance` matches `schema`; a schema that does not compile is not held against the
/// answer (the upstream accepted it, frugal cannot judge by it).
fn matches_schema(schema: &Value, instance: &Value) -> bool {
    match jsonschema::validator_for(schema) {
        Ok(validator) => validator.is_valid(instance),
        Err(e) => {
            tracing::debug!(error = %e, "a request's JSON schema does not compile; not checked");
            true
        }
    }
}

/// Every call names a tool the request offered, with JSON arguments matching its parameters.
fn tool_calls_valid(request: &Map<String, Value>, calls: &[Value]) -> bool {
    let tools = request
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    calls.iter().all(|call| {
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .and_then(|a| serde_json::from_str::<Value>(a).ok());
        let (Some(name), Some(arguments)) = (name, arguments) else {
            return false;
        };
        let offered = tools.iter().find(|t| {
            t.get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                == Some(name)
        });
        match offered {
            None => tools.is_empty(),
            Some(tool) => match tool.get("function").and_then(|f| f.get("parameters")) {
                Some(schema) => matches_schema(schema, &arguments),
                None => true,
            },
        }
    })
}

/// Mean log-probability of the answer's tokens, when the provider returned them.
pub fn mean_logprob(choice: &Value) -> Option<f64> {
    let content = choice
        .get("logprobs")
        .and_then(|l| l.get("content"))
        .and_then(Value::as_array)?;
    let values: Vec<f64> = content
        .iter()
        .filter_map(|t| t.get("logprob").and_then(Value::as_f64))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Phrases that mark a question wanting a computed number.
const NUMERIC_QUESTION_CUES: &[&str] = &[
    "how many",
    "how much",
    "how long",
    "how far",
    "how old",
    "how fast",
    "what is the total",
    "what percent",
    "calculate",
    "compute",
];

fn math_concerns(question: &str, answer: &str) -> Vec<EscalationReason> {
    let lower = question.to_lowercase();
    let numeric = question.chars().any(|c| c.is_ascii_digit())
        && NUMERIC_QUESTION_CUES.iter().any(|cue| lower.contains(cue));
    if !numeric {
        return if answer_checks::arithmetic_errors(answer).is_empty() {
            vec![]
        } else {
            vec![EscalationReason::ArithmeticError]
        };
    }
    answer_checks::check_math_answer(question, answer)
        .into_iter()
        .map(|f| f.concern)
        .filter(|c| {
            matches!(
                c,
                Concern::ArithmeticError | Concern::NoFinalAnswer | Concern::UnusedQuantity
            )
        })
        .map(EscalationReason::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(message: Value, finish: &str) -> Map<String, Value> {
        let v = json!({"choices": [{"index": 0, "message": message, "finish_reason": finish}]});
        v.as_object().cloned().unwrap_or_default()
    }

    fn request(extra: Value) -> Map<String, Value> {
        let mut body = json!({"messages": [{"role": "user", "content": "Say hi."}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body.as_object().cloned().unwrap_or_default()
    }

    fn reasons(req: Value, message: Value, finish: &str) -> Vec<&'static str> {
        check(
            &CheckPolicy::default(),
            &request(req),
            &answer(message, finish),
        )
        .into_iter()
        .map(EscalationReason::as_str)
        .collect()
    }

    #[test]
    fn a_plain_good_answer_passes() {
        let r = reasons(
            json!({}),
            json!({"role": "assistant", "content": "Hi!"}),
            "stop",
        );
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn truncated_empty_and_hedging_answers_are_flagged() {
        let msg = |c: &str| json!({"role": "assistant", "content": c});
        assert_eq!(reasons(json!({}), msg("Hi"), "length"), ["truncated"]);
        assert_eq!(reasons(json!({}), msg("  "), "stop"), ["empty"]);
        assert_eq!(
            reasons(json!({}), msg("I'm not sure, maybe hi."), "stop"),
            ["refusal_or_hedge"]
        );
        let refusal = json!({"role": "assistant", "content": null, "refusal": "I can't help."});
        assert!(reasons(json!({}), refusal, "stop").contains(&"refusal_or_hedge"));
    }

    #[test]
    fn json_formats_are_checked_against_their_schema() {
        let schema = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "p",
            "schema": {"type": "object", "required": ["age"], "properties": {"age": {"type": "integer"}}}}}});
        let msg = |c: &str| json!({"role": "assistant", "content": c});
        assert!(reasons(schema.clone(), msg(r#"{"age": 3}"#), "stop").is_empty());
        assert_eq!(
            reasons(schema.clone(), msg(r#"{"age": "three"}"#), "stop"),
            ["invalid_json"]
        );
        assert_eq!(reasons(schema, msg("age: 3"), "stop"), ["invalid_json"]);
        let object = json!({"response_format": {"type": "json_object"}});
        assert!(reasons(object.clone(), msg(r#"{"a": 1}"#), "stop").is_empty());
        assert_eq!(reasons(object, msg("[1]"), "stop"), ["invalid_json"]);
    }

    #[test]
    fn tool_calls_must_parse_and_match_the_tool() {
        let tools = json!({"tools": [{"type": "function", "function": {"name": "weather",
            "parameters": {"type": "object", "required": ["city"],
                           "properties": {"city": {"type": "string"}}}}}]});
        let call = |name: &str, args: &str| {
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1",
                "type": "function", "function": {"name": name, "arguments": args}}]})
        };
        assert!(reasons(
            tools.clone(),
            call("weather", r#"{"city":"Oslo"}"#),
            "tool_calls"
        )
        .is_empty());
        for bad in [
            call("weather", r#"{"city":"#),
            call("weather", r#"{"town":"Oslo"}"#),
            call("forecast", r#"{"city":"Oslo"}"#),
        ] {
            assert_eq!(
                reasons(tools.clone(), bad, "tool_calls"),
                ["invalid_tool_call"]
            );
        }
    }

    #[test]
    fn low_mean_logprob_is_flagged_only_when_configured() {
        let mut completion = answer(json!({"role": "assistant", "content": "Hi there"}), "stop");
        completion["choices"][0]["logprobs"] = json!({"content": [{"token": "Hi", "logprob": -2.5}, {"token": " there", "logprob": -1.5}]});
        let req = request(json!({}));
        assert!(check(&CheckPolicy::default(), &req, &completion).is_empty());
        let strict = CheckPolicy {
            min_mean_logprob: Some(-1.0),
            ..CheckPolicy::default()
        };
        assert_eq!(
            check(&strict, &req, &completion),
            [EscalationReason::LowLogprob]
        );
        let lenient = CheckPolicy {
            min_mean_logprob: Some(-3.0),
            ..CheckPolicy::default()
        };
        assert!(check(&lenient, &req, &completion).is_empty());
    }

    #[test]
    fn wrong_arithmetic_is_flagged() {
        let req = json!({"messages": [{"role": "user",
            "content": "Tom has 3 boxes of 60 pencils. How many pencils does he have?"}]});
        let mut body = req.as_object().cloned().unwrap_or_default();
        body.remove("x");
        let wrong = answer(
            json!({"role": "assistant", "content": "3 x 60 = 170. The answer is 170."}),
            "stop",
        );
        assert_eq!(
            check(&CheckPolicy::default(), &body, &wrong),
            [EscalationReason::ArithmeticError]
        );
        let right = answer(
            json!({"role": "assistant", "content": "3 x 60 = 180. The answer is 180."}),
            "stop",
        );
        assert!(check(&CheckPolicy::default(), &body, &right).is_empty());
    }
}
