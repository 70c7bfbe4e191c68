//! YAML text → a JSON value, with the position of every mapping key and sequence item, in one
//! pass of one parser (saphyr, YAML 1.2 core schema). Policies and mock scripts are read with it;
//! serde deserializes the value, and error messages point at the positions.
//!
//! Why saphyr: `serde_yaml` is deprecated and unmaintained, and before this the policy was also
//! parsed a second time by `yaml-rust2` only to find line numbers. saphyr is maintained, YAML
//! 1.2, has no unsafe code, and reports a span with every event, so one parse gives both the
//! value and the positions. Duplicate keys are an error (a YAML mapping's keys are unique).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver, Tag};
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

/// A 1-based line and column in a YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// A YAML text that does not parse, or holds a duplicate key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where, when known.
    pub position: Option<Position>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some(p) => write!(f, "line {}:{}: {}", p.line, p.column, self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A parsed document: its value (null when empty) and where each key and item is, by dotted
/// path (`models.fast.price`, `list[1]`).
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// The value.
    pub value: Value,
    /// Positions by path.
    pub positions: HashMap<String, Position>,
}

/// Parses the first document of `text`.
pub fn parse(text: &str) -> Result<Document, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, false) {
        let mark = e.marker();
        return Err(YamlError {
            position: Some(position(mark.line(), mark.col())),
            message: e.info().to_string(),
        });
    }
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(Document {
        value: builder.root.unwrap_or(Value::Null),
        positions: builder.positions,
    })
}

/// Deserializes `text` into `T` (a mock script, say); the error says where and what.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let document = parse(text).map_err(|e| e.to_string())?;
    serde_json::from_value(document.value).map_err(|e| e.to_string())
}

/// Joins a parent path and a key the way error messages print paths.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn position(line: usize, col: usize) -> Position {
    Position {
        line,
        column: col + 1,
    }
}

/// A collection being built.
enum Frame {
    Map {
        path: String,
        map: Map<String, Value>,
        key: Option<String>,
        anchor: usize,
    },
    Seq {
        path: String,
        items: Vec<Value>,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    anchors: HashMap<usize, Value>,
    positions: HashMap<String, Position>,
    error: Option<YamlError>,
}

impl Builder {
    /// The path of the value about to be read (recording a sequence item's position).
    fn value_path(&mut self, span: Span) -> String {
        match self.stack.last() {
            Some(Frame::Map { path, key, .. }) => join(path, key.as_deref().unwrap_or_default()),
            Some(Frame::Seq { path, items, .. }) => {
                let path = format!("{path}[{}]", items.len());
                self.positions
                    .entry(path.clone())
                    .or_insert_with(|| position(span.start.line(), span.start.col()));
                path
            }
            None => String::new(),
        }
    }

    /// Puts a finished value where it belongs: under the pending key, as the next item, or
    /// as the document.
    fn place(&mut self, value: Value, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            Some(Frame::Map { map, key, .. }) => {
                if let Some(key) = key.take() {
                    map.insert(key, value);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(value),
            None => self.root = Some(value),
        }
    }

    /// Takes a key of the mapping on top: a duplicate is an error.
    fn take_key(&mut self, key: String, span: Span) {
        let Some(Frame::Map {
            path,
            map,
            key: pending,
            ..
        }) = self.stack.last_mut()
        else {
            return;
        };
        let full = join(path, &key);
        let at = position(span.start.line(), span.start.col());
        if map.contains_key(&key) && self.error.is_none() {
            self.error = Some(YamlError {
                position: Some(at),
                message: format!("duplicate key `{full}`"),
            });
        }
        self.positions.entry(full).or_insert(at);
        *pending = Some(key);
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, event: Event<'input>, span: Span) {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_ref());
                if self.expecting_key() {
                    let key = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    self.take_key(key, span);
                } else {
                    self.value_path(span);
                    self.place(value, anchor);
                }
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                if self.expecting_key() {
                    self.take_key(value.to_string(), span);
                } else {
                    self.value_path(span);
                    self.place(value, 0);
                }
            }
            Event::MappingStart(anchor, _) => {
                let path = self.value_path(span);
                self.stack.push(Frame::Map {
                    path,
                    map: Map::new(),
                    key: None,
                    anchor,
                });
            }
            Event::SequenceStart(anchor, _) => {
                let path = self.value_path(span);
                self.stack.push(Frame::Seq {
                    path,
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    None => return,
                };
                if self.expecting_key() {
                    // A collection as a key: kept as its JSON text, which no policy key matches.
                    self.take_key(value.to_string(), span);
                } else {
                    self.place(value, anchor);
                }
            }
            _ => {}
        }
    }
}

/// A scalar as the YAML 1.2 core schema reads it (quoted: always a string).
fn scalar(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&Cow<'_, Tag>>) -> Value {
    let raw = text.to_string();
    match Scalar::parse_from_cow_and_metadata(text, style, tag) {
        Some(Scalar::Null) => Value::Null,
        Some(Scalar::Boolean(b)) => Value::Bool(b),
        Some(Scalar::Integer(i)) => Value::Number(Number::from(i)),
        Some(Scalar::FloatingPoint(f)) => {
            Number::from_f64(f.into_inner()).map_or(Value::String(raw), Value::Number)
        }
        Some(Scalar::String(s)) => Value::String(s.into_owned()),
        None => Value::String(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_follow_the_core_schema() {
        let doc =
            parse("a: 1\nb: 0.5\nc: true\nd: ~\ne: on\nf: '1'\ng: 10m\nh: [x, {y: 2}]\n").unwrap();
        assert_eq!(
            doc.value,
            json!({"a": 1, "b": 0.5, "c": true, "d": null, "e": "on", "f": "1", "g": "10m",
                   "h": ["x", {"y": 2}]})
        );
        assert_eq!(parse("").unwrap().value, Value::Null);
        assert_eq!(
            parse("x: &a {k: 1}\ny: *a\n").unwrap().value,
            json!({"x": {"k": 1}, "y": {"k": 1}})
        );
    }

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        let text = "a: 1\nmodels:\n  fast:\n    price:\n      input: 2\nlist:\n  - x\n  - y: 3\n";
        let doc = parse(text).unwrap();
        let at = |path: &str| doc.positions.get(path).copied();
        assert_eq!(at("a"), Some(Position { line: 1, column: 1 }));
        assert_eq!(
            at("models.fast.price.input"),
            Some(Position { line: 5, column: 7 })
        );
        assert_eq!(at("list[1].y"), Some(Position { line: 8, column: 5 }));
        assert_eq!(at("list[0]"), Some(Position { line: 7, column: 5 }));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_located() {
        let error = parse("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!(error.message, "duplicate key `b.c`");
        assert_eq!(error.position, Some(Position { line: 4, column: 3 }));
        let error = parse("models: [unclosed\n").unwrap_err();
        assert!(error.position.is_some(), "{error}");
    }
}
