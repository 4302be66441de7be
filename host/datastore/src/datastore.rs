//! The datastore: tables plus transactions with read-your-writes, rollback
//! through an undo log, and a net delta on commit.

use std::ops::Bound;

use crate::delta::{DeltaBuilder, SequenceState, TxDelta};
use crate::error::{DbError, DbErrorKind};
use crate::index::{KeyRange, Position, RowId};
use crate::schema::TableSchema;
use crate::table::{PreparedRow, Row, Table, encode_row};

/// A table id: a position in the module's table list.
pub type TableId = usize;

/// An index id: a position in the table's index list.
pub type IndexId = usize;

/// One end of an index scan, as postcard bytes of the first k key columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBound {
    /// No limit on this side.
    Unbounded,
    /// Keys whose first k columns equal these are inside the range.
    Included(Vec<u8>),
    /// Keys whose first k columns equal these are outside the range.
    Excluded(Vec<u8>),
}

/// A scan's position. It does not borrow the datastore, so the caller may
/// keep it while writing: the scan resumes after the last row it returned,
/// so rows written past that position are seen. A full-table scan never
/// returns a row twice; an index scan returns a row again if a write moves
/// its key past the position.
#[derive(Debug, Clone)]
pub struct Cursor {
    table: TableId,
    scan: Scan,
}

#[derive(Debug, Clone)]
enum Scan {
    Rows {
        after: Option<RowId>,
    },
    Index {
        index: IndexId,
        range: KeyRange,
        after: Option<Position>,
    },
    Done,
}

/// What undoing one write takes.
enum Undo {
    Inserted {
        table: TableId,
        id: RowId,
        row: Row,
    },
    Deleted {
        table: TableId,
        id: RowId,
        row: Row,
    },
    Sequence {
        table: TableId,
        sequence: usize,
        next: u128,
    },
}

/// In-memory tables with transactions. No IO: durability and networking
/// are built on the [`TxDelta`]s that [`Datastore::commit`] returns.
pub struct Datastore {
    tables: Vec<Table>,
    schemas: Vec<TableSchema>,
    next_row_id: RowId,
    undo: Option<Vec<Undo>>,
}

impl Datastore {
    /// Empty tables for these (already validated) schemas.
    pub fn new(tables: Vec<TableSchema>) -> Self {
        Self {
            tables: tables.iter().cloned().map(Table::new).collect(),
            schemas: tables,
            next_row_id: 0,
            undo: None,
        }
    }

    /// The tables' schemas, by table id.
    pub fn tables(&self) -> &[TableSchema] {
        &self.schemas
    }

    /// Opens a transaction; fails if one is already open.
    pub fn begin(&mut self) -> Result<(), DbError> {
        if self.undo.is_some() {
            return Err(DbError::new(
                DbErrorKind::NotInTransaction,
                "a transaction is already open",
            ));
        }
        self.undo = Some(Vec::new());
        Ok(())
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.undo.is_some()
    }

    /// Closes the transaction, keeping its writes; returns their net effect.
    pub fn commit(&mut self) -> TxDelta {
        let mut delta = DeltaBuilder::default();
        let mut advanced = Vec::new();
        for undo in self.undo.take().unwrap_or_default() {
            match undo {
                Undo::Inserted { table, id, row } => delta.inserted(table, id, row),
                Undo::Deleted { table, id, row } => delta.deleted(table, id, row),
                Undo::Sequence {
                    table, sequence, ..
                } => {
                    if !advanced.contains(&(table, sequence)) {
                        advanced.push((table, sequence));
                    }
                }
            }
        }
        advanced.sort_unstable();
        let sequences = advanced
            .into_iter()
            .map(|(table, sequence)| SequenceState {
                table,
                sequence,
                next: self.tables[table].sequences[sequence].next,
            })
            .collect();
        delta.finish(sequences)
    }

    /// Closes the transaction, undoing every write, sequence step included.
    pub fn rollback(&mut self) {
        for undo in self.undo.take().unwrap_or_default().into_iter().rev() {
            match undo {
                Undo::Inserted { table, id, .. } => {
                    self.tables[table].take(id);
                }
                Undo::Deleted { table, id, row } => {
                    let table = &mut self.tables[table];
                    let values = table.stored_values(&row);
                    table.put(id, PreparedRow { bytes: row, values });
                }
                Undo::Sequence {
                    table,
                    sequence,
                    next,
                } => {
                    self.tables[table].sequences[sequence].next = next;
                }
            }
        }
    }

    fn table(&self, table: TableId) -> Result<&Table, DbError> {
        self.tables.get(table).ok_or_else(|| {
            DbError::new(DbErrorKind::NoSuchTable, format!("no table has id {table}"))
        })
    }

    fn undo_log(&mut self) -> Result<&mut Vec<Undo>, DbError> {
        self.undo.as_mut().ok_or_else(|| {
            DbError::new(
                DbErrorKind::NotInTransaction,
                "writes need an open transaction",
            )
        })
    }

    /// Inserts a row, filling auto-increment columns given as 0; returns the stored row.
    pub fn insert(&mut self, table: TableId, row: &[u8]) -> Result<Row, DbError> {
        self.undo_log()?;
        let target = self.table(table)?;
        let mut values = target.decode_row(row)?;
        let (filled, advanced) = target.fill_sequences(&mut values)?;
        target.check_unique(&values, None)?;
        let bytes = if filled {
            encode_row(&values)
        } else {
            Row::from(row)
        };
        let id = self.next_row_id;
        self.next_row_id += 1;
        let target = &mut self.tables[table];
        let mut undo = Vec::with_capacity(advanced.len() + 1);
        for (sequence, next) in advanced {
            undo.push(Undo::Sequence {
                table,
                sequence,
                next: target.sequences[sequence].next,
            });
            target.sequences[sequence].next = next;
        }
        target.put(
            id,
            PreparedRow {
                bytes: bytes.clone(),
                values,
            },
        );
        undo.push(Undo::Inserted {
            table,
            id,
            row: bytes.clone(),
        });
        self.undo_log()?.extend(undo);
        Ok(bytes)
    }

    /// Replaces the row with the same key in unique index `index`; returns the stored row.
    pub fn update(&mut self, table: TableId, index: IndexId, row: &[u8]) -> Result<Row, DbError> {
        self.undo_log()?;
        let target = self.table(table)?;
        let by = target.unique_index(index)?;
        let values = target.decode_row(row)?;
        let key = by.key_of(&values);
        let id = by.get(&key).ok_or_else(|| {
            DbError::new(
                DbErrorKind::NotFound,
                format!(
                    "no row of table `{}` has key {} in index `{}`",
                    target.name(),
                    crate::table::KeyDisplay(&key),
                    by.schema.name
                ),
            )
        })?;
        let bytes = Row::from(row);
        if target.rows.get(&id).is_some_and(|old| old[..] == *row) {
            return Ok(bytes);
        }
        target.check_unique(&values, Some(id))?;
        let target = &mut self.tables[table];
        let old = target.take(id).expect("the index named a stored row");
        target.put(
            id,
            PreparedRow {
                bytes: bytes.clone(),
                values,
            },
        );
        let undo = self.undo_log()?;
        undo.push(Undo::Deleted {
            table,
            id,
            row: old,
        });
        undo.push(Undo::Inserted {
            table,
            id,
            row: bytes.clone(),
        });
        Ok(bytes)
    }

    /// Deletes the row with this full key in unique index `index`; returns whether one existed.
    pub fn delete(&mut self, table: TableId, index: IndexId, key: &[u8]) -> Result<bool, DbError> {
        self.undo_log()?;
        let Some(id) = self.find_id(table, index, key)? else {
            return Ok(false);
        };
        let row = self.tables[table]
            .take(id)
            .expect("the index named a stored row");
        self.undo_log()?.push(Undo::Deleted { table, id, row });
        Ok(true)
    }

    /// The row with this full key in unique index `index`.
    pub fn find(&self, table: TableId, index: IndexId, key: &[u8]) -> Result<Option<Row>, DbError> {
        Ok(self
            .find_id(table, index, key)?
            .map(|id| self.tables[table].rows[&id].clone()))
    }

    fn find_id(
        &self,
        table: TableId,
        index: IndexId,
        key: &[u8],
    ) -> Result<Option<RowId>, DbError> {
        let target = self.table(table)?;
        let by = target.unique_index(index)?;
        let key = by.decode_key(key, false, target.name())?;
        Ok(by.get(&key))
    }

    /// How many rows the table has.
    pub fn count(&self, table: TableId) -> Result<u64, DbError> {
        Ok(self.table(table)?.rows.len() as u64)
    }

    /// The table's rows in insertion order.
    pub fn rows(&self, table: TableId) -> Result<impl Iterator<Item = &Row> + '_, DbError> {
        Ok(self.table(table)?.rows.values())
    }

    /// A cursor over all rows of the table, in insertion order.
    pub fn scan(&self, table: TableId) -> Result<Cursor, DbError> {
        self.table(table)?;
        Ok(Cursor {
            table,
            scan: Scan::Rows { after: None },
        })
    }

    /// A cursor over the rows whose key in `index` lies between the bounds, in key order.
    pub fn scan_index(
        &self,
        table: TableId,
        index: IndexId,
        lower: &KeyBound,
        upper: &KeyBound,
    ) -> Result<Cursor, DbError> {
        let target = self.table(table)?;
        let by = target.index(index)?;
        let bound = |bound: &KeyBound| -> Result<Bound<_>, DbError> {
            Ok(match bound {
                KeyBound::Unbounded => Bound::Unbounded,
                KeyBound::Included(bytes) => {
                    Bound::Included(by.decode_key(bytes, true, target.name())?)
                }
                KeyBound::Excluded(bytes) => {
                    Bound::Excluded(by.decode_key(bytes, true, target.name())?)
                }
            })
        };
        let range = KeyRange {
            lower: bound(lower)?,
            upper: bound(upper)?,
        };
        Ok(Cursor {
            table,
            scan: Scan::Index {
                index,
                range,
                after: None,
            },
        })
    }

    /// Where every sequence stands, for snapshots.
    pub fn sequences(&self) -> Vec<SequenceState> {
        self.tables
            .iter()
            .enumerate()
            .flat_map(|(table, t)| {
                t.sequences
                    .iter()
                    .enumerate()
                    .map(move |(sequence, s)| SequenceState {
                        table,
                        sequence,
                        next: s.next,
                    })
            })
            .collect()
    }

    /// Re-applies a committed delta (from a commit log or snapshot) outside
    /// any transaction: deletes rows with identical bytes, inserts rows and
    /// sets sequences. Fails, changing nothing further, on a row that does
    /// not decode, a delete of a missing row, or a unique violation: any of
    /// them means the log does not belong to this state.
    pub fn replay(&mut self, delta: &TxDelta) -> Result<(), DbError> {
        if self.undo.is_some() {
            return Err(DbError::new(
                DbErrorKind::NotInTransaction,
                "cannot replay inside a transaction",
            ));
        }
        for change in &delta.tables {
            self.table(change.table)?;
            for row in &change.deletes {
                let table = &self.tables[change.table];
                let id = table.find_identical(row).ok_or_else(|| {
                    DbError::new(
                        DbErrorKind::NotFound,
                        format!(
                            "replay deletes a row that table `{}` does not have",
                            table.name()
                        ),
                    )
                })?;
                self.tables[change.table].take(id);
            }
            for row in &change.inserts {
                let target = &self.tables[change.table];
                let values = target.decode_row(row)?;
                target.check_unique(&values, None)?;
                let id = self.next_row_id;
                self.next_row_id += 1;
                self.tables[change.table].put(
                    id,
                    PreparedRow {
                        bytes: row.clone(),
                        values,
                    },
                );
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
                            "replay names sequence {} of table {}",
                            state.sequence, state.table
                        ),
                    )
                })?;
            sequence.next = state.next;
        }
        Ok(())
    }

    /// Appends up to `max_rows` more rows of the cursor's scan to `out` and
    /// returns how many; 0 means the scan is over.
    pub fn next_batch(&self, cursor: &mut Cursor, max_rows: usize, out: &mut Vec<u8>) -> usize {
        let Some(table) = self.tables.get(cursor.table) else {
            return 0;
        };
        let mut count = 0;
        match &mut cursor.scan {
            Scan::Done => {}
            Scan::Rows { after } => {
                let start = after.map_or(Bound::Unbounded, Bound::Excluded);
                for (&id, row) in table.rows.range((start, Bound::Unbounded)).take(max_rows) {
                    out.extend_from_slice(row);
                    *after = Some(id);
                    count += 1;
                }
            }
            Scan::Index {
                index,
                range,
                after,
            } => {
                let Some(by) = table.indexes.get(*index) else {
                    return 0;
                };
                let mut last = None;
                by.scan(range, after.as_ref(), |key, id| {
                    out.extend_from_slice(&table.rows[&id]);
                    last = Some((key.clone(), id));
                    count += 1;
                    count < max_rows
                });
                if last.is_some() {
                    *after = last;
                }
            }
        }
        if count == 0 {
            cursor.scan = Scan::Done;
        }
        count
    }
}
