//! `WHERE` clauses as trees of column comparisons, evaluated on decoded rows.

use std::cmp::Ordering;

use worldline_datastore::Value;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Comparison {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Comparison {
    /// The operator seen from the other side: `a < b` is `b > a`.
    pub(crate) fn flipped(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::LtEq => Self::GtEq,
            Self::Gt => Self::Lt,
            Self::GtEq => Self::LtEq,
            other => other,
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Self::Eq => ordering == Ordering::Equal,
            Self::NotEq => ordering != Ordering::Equal,
            Self::Lt => ordering == Ordering::Less,
            Self::LtEq => ordering != Ordering::Greater,
            Self::Gt => ordering == Ordering::Greater,
            Self::GtEq => ordering != Ordering::Less,
        }
    }
}

/// A boolean condition on one row. A chain of `AND`s (or `OR`s) is one
/// node however long it is, so a condition nests only as deep as the
/// query's parentheses, which the compiler bounds by
/// [`MAX_NESTING_DEPTH`](worldline_datastore::MAX_NESTING_DEPTH): evaluating,
/// hashing, comparing and dropping it recurse no deeper.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Predicate {
    /// `column <op> literal`, the literal already of the column's type.
    Compare {
        column: usize,
        op: Comparison,
        literal: Value,
    },
    /// Every part holds (at least two parts).
    And(Vec<Predicate>),
    /// Some part holds (at least two parts).
    Or(Vec<Predicate>),
}

impl Predicate {
    /// The conjunction of `parts`: `None` for no parts, the part itself for one.
    pub(crate) fn all(mut parts: Vec<Predicate>) -> Option<Predicate> {
        match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Predicate::And(parts)),
        }
    }

    /// How many comparisons it holds: what evaluating it for a row costs
    /// at most.
    pub(crate) fn comparisons(&self) -> u64 {
        match self {
            Predicate::Compare { .. } => 1,
            Predicate::And(parts) | Predicate::Or(parts) => {
                parts.iter().map(Predicate::comparisons).sum()
            }
        }
    }

    /// Whether the row with these columns satisfies the condition.
    pub(crate) fn matches(&self, row: &[Value]) -> bool {
        match self {
            Predicate::Compare {
                column,
                op,
                literal,
            } => op.holds(row[*column].cmp(literal)),
            Predicate::And(parts) => parts.iter().all(|part| part.matches(row)),
            Predicate::Or(parts) => parts.iter().any(|part| part.matches(row)),
        }
    }
}
