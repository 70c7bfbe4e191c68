//! The negation guard: both texts are negated, or neither is.

use super::Analysis;

/// One text is negated and the other is not.
pub(super) fn fires(a: &Analysis, b: &Analysis) -> bool {
    (a.negations > 0) != (b.negations > 0)
}
