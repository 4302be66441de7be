//! Rebuilding a datastore from committed deltas (a commit log or a
//! snapshot), and reading where its sequences stand.
//!
//! Replay trusts that a delta was committed (its rows were validated and
//! its constraints held when it first ran) only as far as that saves work
//! without risking a panic or a silent divergence: every row is still
//! decoded and validated once (index keys come from it, and stored rows
//! must always decode), a deleted row must be found with identical bytes
//! and an inserted row must not break a unique index, so a delta that does
//! not belong to the state is an error. What it does not do again is the
//! work of a transaction: a deleted row and an inserted row with the same
//! keys in every unique index of the table (an update) become one
//! replacement in place, as the update was, instead of a removal from and
//! an insertion into every index and the row map; such a replacement cannot
//! break a unique index, so it is not checked again. Buffers are reused
//! from one delta to the next.
//!
//! Rows that were validated before and whose bytes a checksum has proved
//! unchanged since (a commit log record or snapshot this datastore's
//! commits produced) need not be validated again:
//! [`Datastore::replay_validated_rows`] reads each row only up to the last
//! column an index or sequence needs, and checks nothing after it. The
//! state checks above stay, so a record that does not belong to the state
//! is still an error.

use crate::datastore::{Datastore, TableId};
use crate::delta::{SequenceState, TxDelta};
use crate::error::{DbError, DbErrorKind};
use crate::index::RowId;
use crate::row::Column;
use crate::table::Table;

/// Above this many inserted rows, pairing deleted rows with inserted ones
/// goes through a list sorted by key instead of a linear search.
const LINEAR_PAIRING: usize = 8;

/// The most decoded columns [`ReplayBuffers`] keep room for between deltas.
const KEPT_COLUMNS: usize = 4096;

/// Buffers [`Datastore::replay_rows`] keeps between calls.
#[derive(Debug, Default)]
pub(crate) struct ReplayBuffers {
    /// Every inserted row's columns, one row after another.
    inserted: Vec<Column>,
    /// Where each inserted row's columns start, and where the last ends.
    starts: Vec<usize>,
    /// The columns of the deleted row being looked up.
    deleted: Vec<Column>,
    /// By inserted row: whether it replaces a deleted row.
    paired: Vec<bool>,
    /// Inserted rows by position, sorted by key (for many inserted rows).
    order: Vec<usize>,
    /// Rows to replace in place: the row id, the deleted and the inserted row's positions.
    replacements: Vec<(RowId, usize, usize)>,
}

impl ReplayBuffers {
    /// Empties the buffers, keeping their room unless a large delta (a
    /// snapshot's table, a bulk insert) made it large.
    fn clear(&mut self) {
        if self.inserted.capacity() > KEPT_COLUMNS {
            *self = Self::default();
            return;
        }
        self.inserted.clear();
        self.starts.clear();
        self.deleted.clear();
        self.paired.clear();
        self.order.clear();
        self.replacements.clear();
    }

    /// The columns of inserted row `i`.
    fn row(&self, i: usize) -> &[Column] {
        &self.inserted[self.starts[i]..self.starts[i + 1]]
    }
}

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

    /// Re-applies a committed delta outside any transaction: for each
    /// table, [`replay_rows`](Self::replay_rows), then for each sequence
    /// [`replay_sequence`](Self::replay_sequence). Stops with an error,
    /// keeping what it already applied, on a row that does not decode, a
    /// delete of a missing row, a unique violation or an unknown table or
    /// sequence: any of them means the delta does not belong to this state.
    pub fn replay(&mut self, delta: &TxDelta) -> Result<(), DbError> {
        for change in &delta.tables {
            self.replay_rows(change.table, &change.deletes, &change.inserts)?;
        }
        for state in &delta.sequences {
            self.replay_sequence(state)?;
        }
        Ok(())
    }

    /// Re-applies one table's part of a committed delta outside any
    /// transaction: deletes the rows with identical bytes to `deletes`,
    /// then stores `inserts`. An inserted row with the same keys as a
    /// deleted row in every unique index replaces it in place and keeps its
    /// place in insertion order, as the update that produced them did;
    /// other inserted rows go at the end. Errors as
    /// [`replay`](Self::replay); `deletes` and `inserts` may be any byte
    /// slices (rows borrowed from a log record, say).
    pub fn replay_rows<R: AsRef<[u8]>>(
        &mut self,
        table: TableId,
        deletes: &[R],
        inserts: &[R],
    ) -> Result<(), DbError> {
        self.replay_table(table, deletes, inserts, Rows::Unchecked)
    }

    /// Like [`replay_rows`](Self::replay_rows), for rows that were
    /// validated when first committed and whose bytes a checksum proved
    /// unchanged since (a log record or snapshot read back): each row is
    /// read only up to the last column the table's indexes and sequences
    /// need. Rows that are not such rows may be stored without an error;
    /// they never make the datastore panic.
    pub fn replay_validated_rows<R: AsRef<[u8]>>(
        &mut self,
        table: TableId,
        deletes: &[R],
        inserts: &[R],
    ) -> Result<(), DbError> {
        self.replay_table(table, deletes, inserts, Rows::Validated)
    }

    fn replay_table<R: AsRef<[u8]>>(
        &mut self,
        table: TableId,
        deletes: &[R],
        inserts: &[R],
        rows: Rows,
    ) -> Result<(), DbError> {
        if self.in_transaction {
            return Err(DbError::new(
                DbErrorKind::NotInTransaction,
                "cannot replay a delta inside a transaction",
            ));
        }
        self.table(table)?;
        let mut buffers = std::mem::take(&mut self.replay_buffers);
        let target = &mut self.tables[table];
        let replayed = replay_table(target, deletes, inserts, rows, &mut buffers);
        target.tidy();
        buffers.clear();
        self.replay_buffers = buffers;
        replayed
    }

    /// Sets a sequence to where a committed delta left it, outside any transaction.
    pub fn replay_sequence(&mut self, state: &SequenceState) -> Result<(), DbError> {
        if self.in_transaction {
            return Err(DbError::new(
                DbErrorKind::NotInTransaction,
                "cannot replay a delta inside a transaction",
            ));
        }
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
        Ok(())
    }
}

/// Whether replayed rows must be validated.
#[derive(Debug, Clone, Copy)]
enum Rows {
    /// Rows of unknown origin: validated whole.
    Unchecked,
    /// Rows validated before: read up to the last needed column.
    Validated,
}

impl Rows {
    fn decode(self, table: &Table, bytes: &[u8], columns: &mut Vec<Column>) -> Result<(), DbError> {
        match self {
            Rows::Unchecked => table.decode_row(bytes, columns),
            Rows::Validated => table.decode_validated(bytes, columns),
        }
    }
}

/// [`Datastore::replay_rows`] on one table.
fn replay_table<R: AsRef<[u8]>>(
    table: &mut Table,
    deletes: &[R],
    inserts: &[R],
    rows: Rows,
    buffers: &mut ReplayBuffers,
) -> Result<(), DbError> {
    let unique = table.indexes.iter().position(|index| index.is_unique());
    let pairing = unique.filter(|_| !deletes.is_empty() && !inserts.is_empty());
    let Some(unique) = pairing else {
        // Nothing to pair: one row at a time, keeping no decoded rows.
        let columns = &mut buffers.deleted;
        for row in deletes {
            let bytes = row.as_ref();
            columns.clear();
            rows.decode(table, bytes, columns)?;
            let id = table
                .find_candidate(bytes, columns)
                .ok_or_else(|| missing_row(table))?;
            if !table.take_exact(id, bytes, columns) {
                return Err(missing_row(table));
            }
        }
        for row in inserts {
            columns.clear();
            rows.decode(table, row.as_ref(), columns)?;
            table.check_unique(columns, None)?;
            table.put(row.as_ref(), columns);
        }
        return Ok(());
    };
    for row in inserts {
        buffers.starts.push(buffers.inserted.len());
        rows.decode(table, row.as_ref(), &mut buffers.inserted)?;
    }
    buffers.starts.push(buffers.inserted.len());
    buffers.paired.resize(inserts.len(), false);
    if inserts.len() > LINEAR_PAIRING {
        let index = &table.indexes[unique];
        let ReplayBuffers {
            inserted,
            starts,
            order,
            ..
        } = buffers;
        let key_of = |i: usize| index.key_in(&inserted[starts[i]..starts[i + 1]]);
        order.extend(0..inserts.len());
        order.sort_by(|&a, &b| key_of(a).cmp(&key_of(b)));
    }
    for (d, row) in deletes.iter().enumerate() {
        let bytes = row.as_ref();
        buffers.deleted.clear();
        rows.decode(table, bytes, &mut buffers.deleted)?;
        let id = table
            .find_candidate(bytes, &buffers.deleted)
            .ok_or_else(|| missing_row(table))?;
        match partner(table, unique, buffers) {
            Some(i) => {
                buffers.paired[i] = true;
                buffers.replacements.push((id, d, i));
            }
            None => {
                if !table.take_exact(id, bytes, &buffers.deleted) {
                    return Err(missing_row(table));
                }
            }
        }
    }
    for &(id, d, i) in &buffers.replacements {
        let (old, new) = (deletes[d].as_ref(), inserts[i].as_ref());
        if !table.replace_exact(id, old, new, buffers.row(i), unique) {
            return Err(missing_row(table));
        }
    }
    for (i, row) in inserts.iter().enumerate() {
        if buffers.paired[i] {
            continue;
        }
        table.check_unique(buffers.row(i), None)?;
        table.put(row.as_ref(), buffers.row(i));
    }
    Ok(())
}

/// The unpaired inserted row that replaces the deleted row in
/// `buffers.deleted`: one with the same key in every unique index (found
/// through index `unique`, the table's first unique one).
fn partner(table: &Table, unique: usize, buffers: &ReplayBuffers) -> Option<usize> {
    let deleted = &buffers.deleted;
    let index = &table.indexes[unique];
    let key = index.key_in(deleted);
    let matches = |i: usize| {
        !buffers.paired[i]
            && table
                .indexes
                .iter()
                .filter(|index| index.is_unique())
                .all(|index| index.key_in(deleted) == index.key_in(buffers.row(i)))
    };
    if buffers.order.is_empty() {
        return (0..buffers.paired.len()).find(|&i| matches(i));
    }
    let key_of = |i: usize| index.key_in(buffers.row(i));
    let from = buffers.order.partition_point(|&i| *key_of(i) < *key);
    buffers.order[from..]
        .iter()
        .copied()
        .take_while(|&i| *key_of(i) == *key)
        .find(|&i| matches(i))
}

fn missing_row(table: &Table) -> DbError {
    DbError::new(
        DbErrorKind::NotFound,
        format!(
            "replay deletes a row that table `{}` does not have",
            table.name()
        ),
    )
}
