//! A scripted tool call: the mock answers with OpenAI's `tool_calls` (and `finish_reason:
//! tool_calls`) instead of text, streamed the way OpenAI streams one: a first delta with the id
//! and name, then the arguments in fragments.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How many fragments a streamed call's arguments are split into (at most).
const FRAGMENTS: usize = 3;

/// The call the fake model makes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The function's name.
    pub name: String,
    /// Its arguments: an object is sent as its JSON text, a string as it is (so a script can
    /// send broken JSON); `{}` when absent.
    #[serde(default)]
    pub arguments: Option<Value>,
}

impl ToolCall {
    /// The arguments as the JSON text OpenAI sends.
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            None | Some(Value::Null) => "{}".to_string(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// The `tool_calls` list of a completion's message.
    pub fn message_calls(&self, id: &str) -> Value {
        json!([{ "id": id, "type": "function",
                 "function": { "name": self.name, "arguments": self.arguments_text() } }])
    }

    /// The stream deltas of the call: its head, then the argument fragments.
    pub fn deltas(&self, id: &str) -> Vec<Value> {
        let head = json!({ "tool_calls": [{ "index": 0, "id": id, "type": "function",
                                             "function": { "name": self.name, "arguments": "" } }] });
        let arguments: Vec<char> = self.arguments_text().chars().collect();
        let size = arguments.len().div_ceil(FRAGMENTS).max(1);
        let fragments = arguments.chunks(size).map(|piece| {
            let piece: String = piece.iter().collect();
            json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] })
        });
        std::iter::once(head).chain(fragments).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_fragments_concatenate_to_the_arguments() {
        let call = ToolCall {
            name: "get_weather".into(),
            arguments: Some(json!({ "city": "Paris", "unit": "celsius" })),
        };
        let deltas = call.deltas("call_1");
        assert!(deltas.len() > 2, "split into fragments");
        assert_eq!(
            deltas[0]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let joined: String = deltas
            .iter()
            .filter_map(|d| d["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(joined, call.arguments_text());
        let broken = ToolCall {
            name: "f".into(),
            arguments: Some(json!("{\"a\": ")),
        };
        assert_eq!(broken.arguments_text(), "{\"a\": ");
    }
}
