//! The upstream's answer for the inputs sent, checked against what was asked (one embedding per
//! input, of the encoding asked for, each index once), and the client's answer put together in
//! the original order.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::request::Encoding;

/// The embeddings of the inputs sent upstream, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Each input's `embedding` as JSON text.
    pub embeddings: Vec<String>,
    /// The input tokens the upstream reported for the whole batch (`usage.prompt_tokens`),
    /// or `None` when it reported none.
    pub reported_tokens: Option<u64>,
    /// The model name the upstream reported.
    pub model: Option<String>,
}

/// Reads an embeddings list answering `sent` inputs with `encoding`; any mismatch is a reason
/// the upstream's answer is invalid (never a wrong answer passed on).
pub fn read(body: &Map<String, Value>, sent: usize, encoding: Encoding) -> Result<Batch, String> {
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or("no `data` array")?;
    if data.len() != sent {
        return Err(format!("{} embeddings for {sent} inputs sent", data.len()));
    }
    let indices: Vec<Option<u64>> = data
        .iter()
        .map(|item| item.get("index").and_then(Value::as_u64))
        .collect();
    let positional = indices.iter().all(Option::is_none);
    let mut embeddings: Vec<Option<String>> = vec![None; sent];
    for (position, (item, index)) in data.iter().zip(&indices).enumerate() {
        let slot = match (positional, index) {
            (true, _) => position,
            (false, Some(i)) => usize::try_from(*i).unwrap_or(usize::MAX),
            (false, None) => return Err(format!("data[{position}] has no `index`")),
        };
        let embedding = match (encoding, item.get("embedding")) {
            (Encoding::Float, Some(v @ Value::Array(_)))
            | (Encoding::Base64, Some(v @ Value::String(_))) => v.to_string(),
            _ => {
                return Err(format!(
                    "data[{position}] has no {} `embedding`",
                    encoding.as_str()
                ))
            }
        };
        match embeddings.get_mut(slot) {
            Some(place @ None) => *place = Some(embedding),
            Some(Some(_)) => return Err(format!("index {slot} appears twice")),
            None => return Err(format!("index {slot} is out of range for {sent} inputs")),
        }
    }
    let embeddings = embeddings
        .into_iter()
        .collect::<Option<Vec<String>>>()
        .ok_or("an input has no embedding")?;
    let usage = body.get("usage");
    let reported_tokens = usage
        .and_then(|u| u.get("prompt_tokens").or_else(|| u.get("total_tokens")))
        .and_then(Value::as_u64);
    Ok(Batch {
        embeddings,
        reported_tokens,
        model: body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The client's answer: the embeddings in request order with their indices, the model, and
/// the usage the whole input is billed (`prompt_tokens` = `total_tokens` = `tokens`).
pub fn response_body<'a>(
    embeddings: impl Iterator<Item = &'a str>,
    model: &str,
    tokens: u64,
) -> Bytes {
    let mut body = String::from(r#"{"object":"list","data":["#);
    for (index, embedding) in embeddings.enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"object":"embedding","index":{index},"embedding":{embedding}}}"#
        ));
    }
    body.push_str(r#"],"model":"#);
    body.push_str(&Value::String(model.to_string()).to_string());
    body.push_str(&format!(
        r#","usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#
    ));
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn embeddings_are_put_in_the_order_of_their_indices() {
        let reply = body(json!({
            "object": "list", "model": "up",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.5]},
                {"object": "embedding", "index": 0, "embedding": [0.25, -1.0]},
            ],
            "usage": {"prompt_tokens": 7, "total_tokens": 7},
        }));
        let batch = read(&reply, 2, Encoding::Float).unwrap();
        assert_eq!(batch.embeddings, vec!["[0.25,-1.0]", "[0.5]"]);
        assert_eq!(batch.reported_tokens, Some(7));
        assert_eq!(batch.model.as_deref(), Some("up"));
    }

    #[test]
    fn without_indices_the_order_is_the_position() {
        let reply = body(json!({"data": [{"embedding": "AAA="}, {"embedding": "AAB="}]}));
        let batch = read(&reply, 2, Encoding::Base64).unwrap();
        assert_eq!(batch.embeddings, vec![r#""AAA=""#, r#""AAB=""#]);
        assert_eq!(batch.reported_tokens, None);
    }

    #[test]
    fn an_answer_that_does_not_fit_the_inputs_is_refused() {
        let one = |index: Value, embedding: Value| json!({"index": index, "embedding": embedding});
        let cases = [
            (
                json!({"data": [one(json!(0), json!([1.0]))]}),
                2,
                Encoding::Float,
            ),
            (
                json!({"data": [one(json!(0), json!([1.0])), one(json!(0), json!([1.0]))]}),
                2,
                Encoding::Float,
            ),
            (
                json!({"data": [one(json!(0), json!([1.0])), one(json!(5), json!([1.0]))]}),
                2,
                Encoding::Float,
            ),
            (
                json!({"data": [one(json!(0), json!("AAA="))]}),
                1,
                Encoding::Float,
            ),
            (
                json!({"data": [one(json!(0), json!([1.0]))]}),
                1,
                Encoding::Base64,
            ),
            (json!({"data": [{"index": 0}]}), 1, Encoding::Float),
            (
                json!({"data": [one(json!(0), json!([1.0])), {"embedding": [1.0]}]}),
                2,
                Encoding::Float,
            ),
            (json!({"data": "nope"}), 1, Encoding::Float),
        ];
        for (reply, sent, encoding) in cases {
            assert!(
                read(&body(reply.clone()), sent, encoding).is_err(),
                "{reply}"
            );
        }
    }

    #[test]
    fn the_response_lists_every_embedding_with_its_index_and_the_usage() {
        let bytes = response_body(
            ["[1.0]", r#""AAA=""#].into_iter(),
            "text-embedding-3-small",
            12,
        );
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!({
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 0, "embedding": [1.0]},
                    {"object": "embedding", "index": 1, "embedding": "AAA="},
                ],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 12, "total_tokens": 12},
            })
        );
    }
}
