//! What a condition pins its columns to: the constants its top-level `AND`ed
//! comparisons compare a column with, as a point or a range of values.
//! The subscription index files queries under these, and initial rows are
//! read through datastore indexes with them.

use worldline_datastore::Value;

use crate::predicate::{Comparison, Predicate};

/// A place on a column's line of values, just before or just after a value.
/// Edges order by value, then "before" ahead of "after", so that a value
/// `v` lies between `Edge::before(v)` and `Edge::after(v)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Edge {
    pub(crate) value: Value,
    pub(crate) after: bool,
}

impl Edge {
    /// The edge just before `value`.
    pub(crate) fn before(value: Value) -> Self {
        Self {
            value,
            after: false,
        }
    }

    /// The edge just after `value`.
    pub(crate) fn after(value: Value) -> Self {
        Self { value, after: true }
    }
}

/// The values a condition allows in one column (a superset of them when
/// some of its comparisons are not of this form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Constraint {
    /// `column = value`.
    Point(Value),
    /// The values between `lower` and `upper` (edges; `None` is unbounded).
    Range {
        lower: Option<Edge>,
        upper: Option<Edge>,
    },
}

impl Constraint {
    /// Whether no value satisfies the constraint.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Constraint::Point(_) => false,
            Constraint::Range {
                lower: Some(lower),
                upper: Some(upper),
            } => lower >= upper,
            Constraint::Range { .. } => false,
        }
    }

    /// Narrows a range by one comparison with `literal`; a point stays as it is.
    fn narrow(&mut self, op: Comparison, literal: &Value) {
        let Constraint::Range { lower, upper } = self else {
            return;
        };
        let (is_lower, edge) = match op {
            Comparison::Gt => (true, Edge::after(literal.clone())),
            Comparison::GtEq => (true, Edge::before(literal.clone())),
            Comparison::Lt => (false, Edge::before(literal.clone())),
            Comparison::LtEq => (false, Edge::after(literal.clone())),
            Comparison::Eq | Comparison::NotEq => return,
        };
        if is_lower {
            if lower.as_ref().is_none_or(|old| edge > *old) {
                *lower = Some(edge);
            }
        } else if upper.as_ref().is_none_or(|old| edge < *old) {
            *upper = Some(edge);
        }
    }
}

/// The columns the condition's top-level conjuncts pin, in order of first
/// mention, each with the tightest point or range they give it. A row the
/// condition matches satisfies every returned constraint; `<>`, `OR` and
/// nested conditions pin nothing.
pub(crate) fn constraints(predicate: Option<&Predicate>) -> Vec<(usize, Constraint)> {
    let conjuncts: &[Predicate] = match predicate {
        None => &[],
        Some(Predicate::And(parts)) => parts,
        Some(single) => std::slice::from_ref(single),
    };
    let mut pinned: Vec<(usize, Constraint)> = Vec::new();
    for conjunct in conjuncts {
        let Predicate::Compare {
            column,
            op,
            literal,
        } = conjunct
        else {
            continue;
        };
        if *op == Comparison::NotEq {
            continue;
        }
        let position = match pinned.iter().position(|(c, _)| c == column) {
            Some(position) => position,
            None => {
                pinned.push((
                    *column,
                    Constraint::Range {
                        lower: None,
                        upper: None,
                    },
                ));
                pinned.len() - 1
            }
        };
        let constraint = &mut pinned[position].1;
        if *op == Comparison::Eq {
            if matches!(constraint, Constraint::Range { .. }) {
                *constraint = Constraint::Point(literal.clone());
            }
        } else {
            constraint.narrow(*op, literal);
        }
    }
    pinned
}
