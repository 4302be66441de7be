//! The datastore: tables plus transactions with read-your-writes, rollback
//! through an undo log, and a net delta on commit.

use crate::delta::{DeltaBuilder, SequenceState, TxDelta};
use crate::error::{DbError, DbErrorKind};
use crate::index::{KeyDisplay, KeyForm, RowId};
use crate::recovery::ReplayBuffers;
use crate::row::Column;
use crate::schema::TableSchema;
use crate::sequence::SequenceStep;
use crate::table::{Replaced, Row, Table};

/// The most undo entries whose room the log keeps between transactions
/// (a bulk insert's would otherwise stay allocated).
const KEPT_UNDO: usize = 4096;

/// A table id: a position in the module's table list.
pub type TableId = usize;

/// An index id: a position in the table's index list.
pub type IndexId = usize;

/// What undoing one write takes.
#[derive(Debug)]
enum Undo {
    /// Row `id` was stored; undo by taking it out.
    Inserted { table: TableId, id: RowId, row: Row },
    /// Row `id` was taken out; undo by storing it again.
    Deleted { table: TableId, id: RowId, row: Row },
    /// A sequence moved on from `next`.
    Sequence {
        table: TableId,
        sequence: usize,
        next: Option<u128>,
    },
}

/// In-memory tables with transactions. No IO: durability and networking
/// are built on the [`TxDelta`]s that [`Datastore::commit`] returns.
///
/// Writes happen in place and are recorded in an undo log, so every read
/// inside a transaction sees its writes, and [`Datastore::rollback`]
/// restores every row, index entry and sequence exactly. There is one
/// transaction at a time (reducers of a database run one after another).
#[derive(Debug)]
pub struct Datastore {
    schemas: Vec<TableSchema>,
    pub(crate) tables: Vec<Table>,
    pub(crate) in_transaction: bool,
    /// The open transaction's writes, oldest first; kept allocated between transactions.
    undo: Vec<Undo>,
    /// A buffer for the decoded columns of the row being written, reused
    /// so that writes do not allocate for it.
    columns: Vec<Column>,
    /// Buffers for [`Datastore::replay_rows`], reused so that replaying a
    /// log allocates little per transaction.
    pub(crate) replay_buffers: ReplayBuffers,
}

impl Datastore {
    /// Empty tables for these schemas, which must have passed
    /// [`ModuleSchema::validate`](crate::ModuleSchema::validate) (an index
    /// naming a column that does not exist panics here).
    pub fn new(tables: Vec<TableSchema>) -> Self {
        Self {
            tables: tables.iter().cloned().map(Table::new).collect(),
            schemas: tables,
            in_transaction: false,
            undo: Vec::new(),
            columns: Vec::new(),
            replay_buffers: ReplayBuffers::default(),
        }
    }

    /// The tables' schemas, by table id.
    pub fn tables(&self) -> &[TableSchema] {
        &self.schemas
    }

    /// Opens a transaction. Fails with [`DbErrorKind::NotInTransaction`]
    /// (the kind for every misuse of transaction state) if one is already open.
    pub fn begin(&mut self) -> Result<(), DbError> {
        if self.in_transaction {
            return Err(DbError::new(
                DbErrorKind::NotInTransaction,
                "a transaction is already open; commit or roll it back first",
            ));
        }
        self.in_transaction = true;
        Ok(())
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Closes the transaction, keeping its writes, and returns their net
    /// effect: rows and the new positions of the sequences that moved.
    /// Without an open transaction it returns an empty delta.
    pub fn commit(&mut self) -> TxDelta {
        self.in_transaction = false;
        let mut delta = DeltaBuilder::default();
        let mut moved = Vec::new();
        for undo in self.undo.drain(..) {
            match undo {
                Undo::Inserted { table, id, row } => delta.inserted(table, id, row),
                Undo::Deleted { table, id, row } => delta.deleted(table, id, row),
                Undo::Sequence {
                    table, sequence, ..
                } => moved.push((table, sequence)),
            }
        }
        moved.sort_unstable();
        moved.dedup();
        let sequences = moved
            .into_iter()
            .map(|(table, sequence)| self.sequence_state(table, sequence))
            .collect();
        let delta = delta.finish(sequences);
        self.undo.shrink_to(KEPT_UNDO);
        self.tables.iter_mut().for_each(Table::tidy);
        delta
    }

    pub(crate) fn sequence_state(&self, table: TableId, sequence: usize) -> SequenceState {
        SequenceState {
            table,
            sequence,
            next: self.tables[table].sequences[sequence].next.unwrap_or(0),
        }
    }

    /// Closes the transaction, undoing every write, sequence steps included.
    /// Without an open transaction it does nothing.
    pub fn rollback(&mut self) {
        self.in_transaction = false;
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Inserted { table, id, .. } => {
                    self.tables[table].take(id);
                }
                Undo::Deleted { table, id, row } => self.tables[table].restore(id, &row),
                Undo::Sequence {
                    table,
                    sequence,
                    next,
                } => self.tables[table].sequences[sequence].next = next,
            }
        }
        self.undo.shrink_to(KEPT_UNDO);
    }

    pub(crate) fn table(&self, table: TableId) -> Result<&Table, DbError> {
        self.tables.get(table).ok_or_else(|| {
            DbError::new(
                DbErrorKind::NoSuchTable,
                format!("no table has id {table} ({} tables)", self.tables.len()),
            )
        })
    }

    fn require_transaction(&self) -> Result<(), DbError> {
        if self.in_transaction {
            Ok(())
        } else {
            Err(DbError::new(
                DbErrorKind::NotInTransaction,
                "writes need an open transaction",
            ))
        }
    }

    /// Runs a write with the reusable column buffer, leaving it empty.
    fn with_columns<T>(&mut self, write: impl FnOnce(&mut Self, &mut Vec<Column>) -> T) -> T {
        let mut columns = std::mem::take(&mut self.columns);
        let result = write(self, &mut columns);
        columns.clear();
        self.columns = columns;
        result
    }

    /// Inserts a row and returns the stored row, which differs from `row`
    /// only where auto-increment columns given as 0 were filled in. A unique
    /// violation changes nothing, sequences included.
    pub fn insert(&mut self, table: TableId, row: &[u8]) -> Result<Row, DbError> {
        self.with_columns(|store, columns| store.insert_with(table, row, columns))
    }

    fn insert_with(
        &mut self,
        table: TableId,
        row: &[u8],
        columns: &mut Vec<Column>,
    ) -> Result<Row, DbError> {
        self.require_transaction()?;
        let target = self.table(table)?;
        target.decode_row(row, columns)?;
        let steps = target.fill_sequences(columns)?;
        target.check_unique(columns, None)?;
        let bytes = if steps.iter().any(|step| step.filled) {
            target.splice_sequences(row, columns)
        } else {
            Row::from(row)
        };
        self.take_steps(table, steps);
        let id = self.tables[table].put(&bytes, columns);
        self.undo.push(Undo::Inserted {
            table,
            id,
            row: bytes.clone(),
        });
        Ok(bytes)
    }

    /// Moves the sequences of table `table` as `steps` say, undoably.
    fn take_steps(&mut self, table: TableId, steps: Vec<SequenceStep>) {
        for step in steps {
            let sequence = &mut self.tables[table].sequences[step.sequence];
            self.undo.push(Undo::Sequence {
                table,
                sequence: step.sequence,
                next: sequence.next,
            });
            sequence.next = step.next;
        }
    }

    /// Replaces the row that has the same key in unique index `index` as
    /// `row` and returns the stored row. Other unique indexes must not hold
    /// the new row's keys for another row. Auto-increment columns are kept
    /// as given, and an explicit value at or past its sequence's next value
    /// moves the sequence past it, as an insert does (so that inserting 0
    /// later never takes a value an update gave a row). The row keeps its
    /// place in insertion order.
    pub fn update(&mut self, table: TableId, index: IndexId, row: &[u8]) -> Result<Row, DbError> {
        self.with_columns(|store, columns| store.update_with(table, index, row, columns))
    }

    fn update_with(
        &mut self,
        table: TableId,
        index: IndexId,
        row: &[u8],
        columns: &mut Vec<Column>,
    ) -> Result<Row, DbError> {
        self.require_transaction()?;
        let target = self.table(table)?;
        let by = target.unique_index(index)?;
        target.decode_row(row, columns)?;
        let key = by.key_in(columns);
        let Some(id) = by.get(&key) else {
            return Err(DbError::new(
                DbErrorKind::NotFound,
                format!(
                    "no row has key {} in unique index `{}` of table `{}`",
                    KeyDisplay(&key),
                    by.name(),
                    target.name()
                ),
            ));
        };
        target.check_unique(columns, Some((id, index)))?;
        let steps = target.pass_sequences(columns);
        self.take_steps(table, steps);
        let replaced = self.tables[table]
            .replace(id, row, columns, index)
            .expect("indexes name stored rows");
        Ok(match replaced {
            Replaced::Identical(row) => row,
            Replaced::Changed { old, new } => {
                self.undo.push(Undo::Deleted {
                    table,
                    id,
                    row: old,
                });
                self.undo.push(Undo::Inserted {
                    table,
                    id,
                    row: new.clone(),
                });
                new
            }
        })
    }

    /// Deletes the row with this full key in unique index `index`; returns
    /// whether one existed.
    pub fn delete(&mut self, table: TableId, index: IndexId, key: &[u8]) -> Result<bool, DbError> {
        self.require_transaction()?;
        let Some(id) = self.find_id(table, index, key)? else {
            return Ok(false);
        };
        let row = self.tables[table]
            .take(id)
            .expect("indexes name stored rows");
        self.undo.push(Undo::Deleted { table, id, row });
        Ok(true)
    }

    /// The row with this full key in unique index `index`.
    pub fn find(&self, table: TableId, index: IndexId, key: &[u8]) -> Result<Option<Row>, DbError> {
        Ok(self.find_bytes(table, index, key)?.map(Row::from))
    }

    /// [`find`](Self::find), borrowing the row's bytes from the table
    /// instead of copying them into a [`Row`].
    pub fn find_bytes(
        &self,
        table: TableId,
        index: IndexId,
        key: &[u8],
    ) -> Result<Option<&[u8]>, DbError> {
        let id = self.find_id(table, index, key)?;
        Ok(id.and_then(|id| self.tables[table].rows.get(id)))
    }

    fn find_id(
        &self,
        table: TableId,
        index: IndexId,
        key: &[u8],
    ) -> Result<Option<RowId>, DbError> {
        let target = self.table(table)?;
        let by = target.unique_index(index)?;
        let key = by.decode_key(key, KeyForm::Full, target.name())?;
        Ok(by.get(key.as_slice()))
    }

    /// About how many bytes of memory the entries of table `table`'s rows
    /// take in its indexes (0 for a table that does not exist): a value
    /// for each key column of each index, and the bytes of the strings,
    /// elements, fields and payloads in them.
    pub fn index_bytes(&self, table: TableId) -> usize {
        self.tables.get(table).map_or(0, |t| t.index_bytes)
    }

    /// [`index_bytes`](Self::index_bytes) of every table together.
    pub fn all_index_bytes(&self) -> usize {
        self.tables.iter().map(|t| t.index_bytes).sum()
    }

    /// How many rows the table has.
    pub fn count(&self, table: TableId) -> Result<u64, DbError> {
        Ok(self.table(table)?.rows.len() as u64)
    }

    /// The bytes of the table's rows in insertion order (an updated row
    /// keeps its place). They are borrowed from the table's pages: make a
    /// [`Row`] of those that must outlive the borrow.
    pub fn rows(&self, table: TableId) -> Result<impl Iterator<Item = &[u8]> + '_, DbError> {
        Ok(self.table(table)?.rows.iter().map(|(_, row)| row))
    }
}
