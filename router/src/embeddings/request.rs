//! A `POST /v1/embeddings` body, validated: `model`, `input` (split into its items),
//! `encoding_format`, `dimensions` and `user` are checked; every other field is kept and
//! reaches the upstream untouched.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::request::{json_object, wrong_type};

/// Most inputs one request may hold (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// How the client wrote `input`, so the inputs sent upstream are written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    /// One string.
    Text,
    /// An array of strings.
    Texts,
    /// One array of token ids.
    Tokens,
    /// An array of arrays of token ids.
    TokenLists,
}

/// How the embeddings are encoded in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// An array of numbers (OpenAI's default).
    Float,
    /// A base64 string of little-endian f32s (what the official Python client asks for).
    Base64,
}

impl Encoding {
    /// The `encoding_format` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Base64 => "base64",
        }
    }
}

/// A validated embeddings request.
#[derive(Debug, Clone)]
pub struct EmbeddingRequest {
    /// The model alias asked for.
    pub model: String,
    /// The inputs, in order: each a non-empty string or a non-empty array of token ids.
    pub items: Vec<Value>,
    /// How `input` was written.
    pub shape: InputShape,
    /// The encoding asked for (`float` when absent).
    pub encoding: Encoding,
    /// The full body as sent, in its original key order.
    pub body: Map<String, Value>,
}

impl EmbeddingRequest {
    /// Parses and validates a request body; every mistake is a 400 naming the field.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        let body = json_object(bytes)?;
        let model = match body.get("model") {
            None | Some(Value::Null) => return Err(missing("model")),
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(Value::String(_)) => {
                return Err(ApiError::invalid_param(
                    "model",
                    "`model` must not be empty.",
                ))
            }
            Some(other) => return Err(wrong_type("model", "a string", other)),
        };
        let (items, shape) = split_input(body.get("input"))?;
        let encoding = match body.get("encoding_format") {
            None | Some(Value::Null) => Encoding::Float,
            Some(Value::String(f)) if f == "float" => Encoding::Float,
            Some(Value::String(f)) if f == "base64" => Encoding::Base64,
            Some(Value::String(f)) => {
                return Err(ApiError::invalid_param(
                    "encoding_format",
                    format!("Invalid value for 'encoding_format': '{f}'. Supported values are: float, base64."),
                ))
            }
            Some(other) => return Err(wrong_type("encoding_format", "a string", other)),
        };
        match body.get("dimensions") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|d| d >= 1) => {}
            Some(other) => {
                return Err(ApiError::invalid_param(
                    "dimensions",
                    format!("'dimensions' must be a positive integer, got {other}."),
                ))
            }
        }
        match body.get("user") {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(other) => return Err(wrong_type("user", "a string", other)),
        }
        Ok(Self {
            model,
            items,
            shape,
            encoding,
            body,
        })
    }

    /// The fields that decide what an input's embedding is: every field but `input`, `model`
    /// (the cache scope holds the alias) and `user` (an end-user id for the provider's abuse
    /// monitoring), with `encoding_format` written out, so leaving it out and asking for
    /// `float` share entries.
    pub fn key_params(&self) -> Map<String, Value> {
        let mut params: Map<String, Value> = self
            .body
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "input" | "model" | "user"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.insert(
            "encoding_format".into(),
            Value::String(self.encoding.as_str().into()),
        );
        params
    }

    /// The body sent upstream for the inputs at `indices` (in their order), written the way
    /// the client wrote `input`.
    pub fn upstream_body(&self, indices: &[usize]) -> Map<String, Value> {
        let picked: Vec<Value> = indices
            .iter()
            .filter_map(|&i| self.items.get(i).cloned())
            .collect();
        let input = match (self.shape, picked.as_slice()) {
            (InputShape::Text | InputShape::Tokens, [one]) => one.clone(),
            _ => Value::Array(picked),
        };
        let mut body = self.body.clone();
        body.insert("input".into(), input);
        body
    }
}

/// Splits `input` into its items: one string, an array of strings, one array of token ids, or
/// an array of arrays of token ids; none may be empty.
fn split_input(input: Option<&Value>) -> Result<(Vec<Value>, InputShape), ApiError> {
    let list = match input {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(s)) if s.is_empty() => return Err(empty("input")),
        Some(Value::String(s)) => return Ok((vec![Value::String(s.clone())], InputShape::Text)),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(wrong_type(
                "input",
                "a string, an array of strings or an array of token arrays",
                other,
            ))
        }
    };
    if list.is_empty() {
        return Err(empty("input"));
    }
    if list.len() > MAX_INPUTS {
        return Err(ApiError::invalid_param(
            "input",
            format!(
                "'input' holds {} items, over the limit of {MAX_INPUTS}.",
                list.len()
            ),
        ));
    }
    match &list[0] {
        Value::Number(_) => {
            check_tokens("input", list)?;
            Ok((vec![Value::Array(list.clone())], InputShape::Tokens))
        }
        Value::String(_) => {
            for (i, item) in list.iter().enumerate() {
                let at = format!("input[{i}]");
                match item {
                    Value::String(s) if s.is_empty() => return Err(empty(&at)),
                    Value::String(_) => {}
                    other => return Err(wrong_type(&at, "a string", other)),
                }
            }
            Ok((list.clone(), InputShape::Texts))
        }
        Value::Array(_) => {
            for (i, item) in list.iter().enumerate() {
                let at = format!("input[{i}]");
                match item {
                    Value::Array(tokens) if tokens.is_empty() => return Err(empty(&at)),
                    Value::Array(tokens) => check_tokens(&at, tokens)?,
                    other => return Err(wrong_type(&at, "an array of token ids", other)),
                }
            }
            Ok((list.clone(), InputShape::TokenLists))
        }
        other => Err(wrong_type(
            "input[0]",
            "a string, a token id or an array of token ids",
            other,
        )),
    }
}

/// Every item a token id: a non-negative integer.
fn check_tokens(param: &str, tokens: &[Value]) -> Result<(), ApiError> {
    match tokens.iter().position(|t| t.as_u64().is_none()) {
        None => Ok(()),
        Some(i) => Err(ApiError::invalid_param(
            format!("{param}[{i}]"),
            format!("'{param}[{i}]' must be a token id (a non-negative integer)."),
        )),
    }
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid_param(param, format!("Missing required parameter: '{param}'."))
}

fn empty(param: &str) -> ApiError {
    ApiError::invalid_param(param, format!("'{param}' must not be empty."))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: Value) -> Result<EmbeddingRequest, ApiError> {
        EmbeddingRequest::parse(body.to_string().as_bytes())
    }

    fn param_of(body: Value) -> Option<String> {
        match parse(body) {
            Err(ApiError::InvalidRequest { param, .. }) => param,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn each_input_shape_splits_into_its_items() {
        let one = parse(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!((one.items.len(), one.shape), (1, InputShape::Text));
        let texts = parse(json!({"model": "m", "input": ["a", "b", "c"]})).unwrap();
        assert_eq!((texts.items.len(), texts.shape), (3, InputShape::Texts));
        let tokens = parse(json!({"model": "m", "input": [1, 2, 3]})).unwrap();
        assert_eq!((tokens.items.len(), tokens.shape), (1, InputShape::Tokens));
        assert_eq!(tokens.items[0], json!([1, 2, 3]));
        let lists = parse(json!({"model": "m", "input": [[1], [2, 3]]})).unwrap();
        assert_eq!(
            (lists.items.len(), lists.shape),
            (2, InputShape::TokenLists)
        );
        assert_eq!(lists.encoding, Encoding::Float);
    }

    #[test]
    fn the_misses_go_upstream_written_as_the_client_wrote_them() {
        let texts = parse(json!({"model": "m", "input": ["a", "b", "c"], "x": 1})).unwrap();
        let body = texts.upstream_body(&[0, 2]);
        assert_eq!(body["input"], json!(["a", "c"]));
        assert_eq!(body["x"], 1, "unknown fields are passed through");
        assert_eq!(texts.upstream_body(&[1])["input"], json!(["b"]));
        let one = parse(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(one.upstream_body(&[0])["input"], json!("hi"));
        let tokens = parse(json!({"model": "m", "input": [5, 6]})).unwrap();
        assert_eq!(tokens.upstream_body(&[0])["input"], json!([5, 6]));
    }

    #[test]
    fn key_params_leave_out_the_input_the_model_and_the_user() {
        let request =
            parse(json!({"model": "m", "input": "x", "user": "u1", "dimensions": 8})).unwrap();
        let params = request.key_params();
        assert_eq!(
            Value::Object(params),
            json!({"dimensions": 8, "encoding_format": "float"})
        );
    }

    #[test]
    fn each_mistake_names_its_field() {
        assert_eq!(param_of(json!({"input": "x"})).as_deref(), Some("model"));
        assert_eq!(
            param_of(json!({"model": 3, "input": "x"})).as_deref(),
            Some("model")
        );
        assert_eq!(param_of(json!({"model": "m"})).as_deref(), Some("input"));
        assert_eq!(
            param_of(json!({"model": "m", "input": ""})).as_deref(),
            Some("input")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": []})).as_deref(),
            Some("input")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": 5})).as_deref(),
            Some("input")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": ["a", ""]})).as_deref(),
            Some("input[1]")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": ["a", 3]})).as_deref(),
            Some("input[1]")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": [[1], []]})).as_deref(),
            Some("input[1]")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": [[1], [2, -3]]})).as_deref(),
            Some("input[1][1]")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": [1, "a"]})).as_deref(),
            Some("input[1]")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": [{"a": 1}]})).as_deref(),
            Some("input[0]")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": "x", "encoding_format": "int8"})).as_deref(),
            Some("encoding_format")
        );
        for bad in [json!(0), json!(-2), json!(1.5), json!("8")] {
            assert_eq!(
                param_of(json!({"model": "m", "input": "x", "dimensions": bad})).as_deref(),
                Some("dimensions")
            );
        }
        assert_eq!(
            param_of(json!({"model": "m", "input": "x", "user": 7})).as_deref(),
            Some("user")
        );
        assert_eq!(
            param_of(json!({"model": "m", "input": vec!["a"; MAX_INPUTS + 1]})).as_deref(),
            Some("input")
        );
        assert!(matches!(
            EmbeddingRequest::parse(b"{nope"),
            Err(ApiError::InvalidRequest { param: None, .. })
        ));
    }
}
