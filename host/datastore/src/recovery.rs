//! Rebuilding a datastore from committed deltas (a commit log or a
//! snapshot), and reading where its sequences stand.

use crate::datastore::Datastore;
use crate::delta::{SequenceState, TxDelta};
use crate::error::{DbError, DbErrorKind};

impl Datastore {
    /// Where every sequence stands, by table id and then `auto_inc` position, for snapshots.
    pub fn sequences(&self) -> Vec<SequenceState> {
        (0..self.tables.len())
            .flat_map(|table| {
                (0..self.tables[table].sequences.len())
                    .map(move |sequence| self.sequence_state(table, sequence))
            })
            .collect()
    }

    /// Re-applies a committed delta outside any transaction: deletes rows
    /// with identical bytes, inserts rows (as new rows, at the end of
    /// insertion order) and sets sequences. Stops with an error, keeping
    /// what it already applied, on a row that does not decode, a delete of a
    /// missing row, a unique violation or an unknown sequence: any of them
    /// means the delta does not belong to this state.
    pub fn replay(&mut self, delta: &TxDelta) -> Result<(), DbError> {
        if self.in_transaction {
            return Err(DbError::new(
                DbErrorKind::NotInTransaction,
                "cannot replay a delta inside a transaction",
            ));
        }
        for change in &delta.tables {
            self.table(change.table)?;
            for row in &change.deletes {
                let target = &self.tables[change.table];
                let id = target.find_identical(row).ok_or_else(|| {
                    DbError::new(
                        DbErrorKind::NotFound,
                        format!(
                            "replay deletes a row that table `{}` does not have",
                            target.name()
                        ),
                    )
                })?;
                self.tables[change.table].take(id);
            }
            for row in &change.inserts {
                let target = &self.tables[change.table];
                let mut columns = Vec::new();
                target.decode_row(row, &mut columns)?;
                target.check_unique(&columns, None)?;
                let id = self.next_row_id;
                self.next_row_id += 1;
                self.tables[change.table].put(id, row.clone(), &columns);
            }
        }
        for state in &delta.sequences {
            let sequence = self
                .tables
                .get_mut(state.table)
                .and_then(|t| t.sequences.get_mut(state.sequence))
                .ok_or_else(|| {
                    DbError::new(
                        DbErrorKind::NoSuchTable,
                        format!(
                            "replay names sequence {} of table {}, which does not exist",
                            state.sequence, state.table
                        ),
                    )
                })?;
            sequence.next = (state.next != 0).then_some(state.next);
        }
        Ok(())
    }
}
