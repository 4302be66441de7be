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

/// A boolean condition on one row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Predicate {
    /// `column <op> literal`, the literal already of the column's type.
    Compare {
        column: usize,
        op: Comparison,
        literal: Value,
    },
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
}

impl Predicate {
    /// Whether the row with these columns satisfies the condition.
    pub(crate) fn matches(&self, row: &[Value]) -> bool {
        match self {
            Predicate::Compare {
                column,
                op,
                literal,
            } => op.holds(row[*column].cmp(literal)),
            Predicate::And(a, b) => a.matches(row) && b.matches(row),
            Predicate::Or(a, b) => a.matches(row) || b.matches(row),
        }
    }
}
