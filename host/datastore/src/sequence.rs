//! Auto-increment sequences: one per auto-increment column of a table.

use crate::error::{DbError, DbErrorKind};
use crate::row::Column;

/// The sequence of one auto-increment column.
#[derive(Debug)]
pub(crate) struct Sequence {
    /// The column's slot in decoded rows.
    pub(crate) slot: usize,
    /// The column's name, for messages.
    column: String,
    /// The next value to hand out; `None` once every value has been used.
    pub(crate) next: Option<u128>,
}

/// How a sequence moves when a row is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SequenceStep {
    /// The sequence's position in its table.
    pub(crate) sequence: usize,
    /// Its next value afterwards.
    pub(crate) next: Option<u128>,
    /// Whether the row's column was filled from the sequence (so the row changed).
    pub(crate) filled: bool,
}

impl Sequence {
    /// A sequence that starts at 1.
    pub(crate) fn new(slot: usize, column: String) -> Self {
        Self {
            slot,
            column,
            next: Some(1),
        }
    }

    /// Fills the column with the next value if the row gives 0. An explicit
    /// value at or past the next value moves the sequence past it. Returns
    /// the step to take if the row is stored (sequence `position` is this one).
    pub(crate) fn fill(
        &self,
        position: usize,
        row: &mut [Column],
        table: &str,
    ) -> Result<Option<SequenceStep>, DbError> {
        let value = &mut row[self.slot].value;
        match value.as_u128() {
            Some(0) => {
                let exhausted = || {
                    let next = self
                        .next
                        .map_or_else(|| "past u128".into(), |n| n.to_string());
                    DbError::new(
                        DbErrorKind::SequenceExhausted,
                        format!(
                            "the sequence of column `{}` of table `{table}` has no values left \
                             (next would be {next})",
                            self.column
                        ),
                    )
                };
                let next = self.next.ok_or_else(exhausted)?;
                *value = value.with_integer(next).ok_or_else(exhausted)?;
                Ok(Some(SequenceStep {
                    sequence: position,
                    next: next.checked_add(1),
                    filled: true,
                }))
            }
            _ => Ok(self.pass(position, row)),
        }
    }

    /// The step past the column's explicit value, if it is at or past the
    /// next value, to take if the row is stored as it is (an update fills
    /// no column, and a 0 moves nothing). Sequence `position` is this one.
    pub(crate) fn pass(&self, position: usize, row: &[Column]) -> Option<SequenceStep> {
        let given = row[self.slot].value.as_u128()?;
        let passed = given != 0 && self.next.is_some_and(|next| given >= next);
        passed.then(|| SequenceStep {
            sequence: position,
            next: given.checked_add(1),
            filled: false,
        })
    }
}
