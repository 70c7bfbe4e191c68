//! Where each key of a YAML document is: a map from dotted path (`models.fast.price`) to the
//! line and column of its key, so every policy error can point at the line to fix.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// Positions of every mapping key and sequence item, by path.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    positions: HashMap<String, Position>,
}

impl SourceMap {
    /// Index a YAML text. A text that does not parse yields an empty map (the parse error itself
    /// is reported by the deserializer, with its own position).
    pub fn index(text: &str) -> Self {
        let mut indexer = Indexer::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut indexer, false).is_err() {
            return Self::default();
        }
        Self {
            positions: indexer.positions,
        }
    }

    /// The position of `path`, or of its closest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(position) = self.positions.get(path) {
                return Some(*position);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

/// Joins a parent path and a key the way error messages print paths.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
}

impl Indexer {
    /// The path of the value about to be read, recording the position of sequence items.
    fn value_path(&mut self, mark: Marker) -> Option<String> {
        let path = match self.stack.last()? {
            Frame::Map {
                path,
                key: Some(key),
            } => join(path, key),
            Frame::Map { key: None, .. } => return None,
            Frame::Seq { path, index } => format!("{path}[{index}]"),
        };
        if matches!(self.stack.last(), Some(Frame::Seq { .. })) {
            self.positions
                .entry(path.clone())
                .or_insert_with(|| position(mark));
        }
        Some(path)
    }

    /// After a complete value: a map expects its next key, a sequence moves to the next item.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }
}

fn position(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => {
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    let full = join(path, &text);
                    self.positions.entry(full).or_insert_with(|| position(mark));
                    *key = Some(text);
                } else {
                    self.value_path(mark);
                    self.value_done();
                }
            }
            Event::Alias(_) => {
                self.value_path(mark);
                self.value_done();
            }
            Event::MappingStart(..) => {
                let path = self.value_path(mark).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        let text = "a: 1\nmodels:\n  fast:\n    price:\n      input: 2\nlist:\n  - x\n  - y: 3\n";
        let map = SourceMap::index(text);
        assert_eq!(map.find("a"), Some(Position { line: 1, column: 1 }));
        assert_eq!(
            map.find("models.fast.price.input"),
            Some(Position { line: 5, column: 7 })
        );
        assert_eq!(map.find("list[1].y"), Some(Position { line: 8, column: 5 }));
        assert_eq!(
            map.find("models.fast.missing"),
            Some(Position { line: 3, column: 3 })
        );
    }
}
