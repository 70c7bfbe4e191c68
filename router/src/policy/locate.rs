//! Where each key of a policy is: a map from dotted path (`models.fast.price`) to the line and
//! column of its key, so every policy error can point at the line to fix. The positions come
//! from the one parse of the text ([`crate::yaml`]).

use std::collections::HashMap;

pub use crate::yaml::{join, Position};

/// Positions of every mapping key and sequence item, by path.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    positions: HashMap<String, Position>,
}

impl SourceMap {
    /// A map of the positions a parse recorded.
    pub fn new(positions: HashMap<String, Position>) -> Self {
        Self { positions }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_points_at_its_closest_ancestor() {
        let text = "a: 1\nmodels:\n  fast:\n    price:\n      input: 2\n";
        let map = SourceMap::new(crate::yaml::parse(text).unwrap().positions);
        assert_eq!(
            map.find("models.fast.missing"),
            Some(Position { line: 3, column: 3 })
        );
        assert_eq!(map.find("nowhere"), None);
    }
}
