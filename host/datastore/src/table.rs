//! One table: its rows in insertion order, its indexes and its sequences.
//! Operations here do no transaction bookkeeping; the datastore does that.

use std::sync::Arc;

use crate::codec::DecodeError;
use crate::error::{DbError, DbErrorKind};
use crate::index::{Index, KeyColumn, KeyDisplay, RowId};
use crate::row::{Column, RowShape};
use crate::schema::TableSchema;
use crate::sequence::{Sequence, SequenceStep};
use crate::store::RowStore;

/// A row's postcard bytes, shared between the table and transaction deltas.
pub type Row = Arc<[u8]>;

/// A table's rows by id (ids grow with every insert, so this is insertion
/// order; see [`RowStore`]), its indexes by index id and its sequences in
/// `auto_inc` order.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) schema: TableSchema,
    shape: RowShape,
    pub(crate) rows: RowStore,
    pub(crate) indexes: Vec<Index>,
    pub(crate) sequences: Vec<Sequence>,
    /// About how many bytes the stored rows' index entries take (see
    /// [`Index::entry_bytes`]).
    pub(crate) index_bytes: usize,
}

impl Table {
    /// An empty table for a validated schema.
    pub(crate) fn new(schema: TableSchema) -> Self {
        let kept = schema
            .indexes
            .iter()
            .flat_map(|index| index.columns.iter().copied())
            .chain(schema.auto_inc.iter().copied());
        let shape = RowShape::new(schema.columns.clone(), kept);
        let indexes = schema
            .indexes
            .iter()
            .map(|index| {
                let columns = index
                    .columns
                    .iter()
                    .map(|&column| KeyColumn {
                        slot: shape.slot(column),
                        name: schema.column_name(column),
                        ty: schema.columns.fields[column].ty.clone(),
                    })
                    .collect();
                Index::new(index.clone(), columns)
            })
            .collect();
        let sequences = schema
            .auto_inc
            .iter()
            .map(|&column| Sequence::new(shape.slot(column), schema.column_name(column)))
            .collect();
        Self {
            schema,
            shape,
            rows: RowStore::default(),
            indexes,
            sequences,
            index_bytes: 0,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.schema.name
    }

    pub(crate) fn index(&self, index: usize) -> Result<&Index, DbError> {
        self.indexes.get(index).ok_or_else(|| {
            DbError::new(
                DbErrorKind::NoSuchIndex,
                format!(
                    "table `{}` has no index {index} ({} indexes)",
                    self.name(),
                    self.indexes.len()
                ),
            )
        })
    }

    pub(crate) fn unique_index(&self, index: usize) -> Result<&Index, DbError> {
        let found = self.index(index)?;
        if !found.is_unique() {
            return Err(DbError::new(
                DbErrorKind::IndexNotUnique,
                format!(
                    "index `{}` of table `{}` is not unique",
                    found.name(),
                    self.name()
                ),
            ));
        }
        Ok(found)
    }

    /// Validates row bytes and decodes the columns the table needs into
    /// `columns`, which must be empty.
    pub(crate) fn decode_row(
        &self,
        bytes: &[u8],
        columns: &mut Vec<Column>,
    ) -> Result<(), DbError> {
        let decoded = self.shape.decode_into(bytes, columns);
        decoded.map_err(|e| self.invalid_row(e))
    }

    /// Like [`decode_row`](Self::decode_row), for a row validated before:
    /// one from a committed delta, read back from a checksummed log record
    /// or snapshot. Only the columns up to the last needed one are read.
    pub(crate) fn decode_validated(
        &self,
        bytes: &[u8],
        columns: &mut Vec<Column>,
    ) -> Result<(), DbError> {
        let decoded = self.shape.decode_validated(bytes, columns);
        decoded.map_err(|e| self.invalid_row(e))
    }

    fn invalid_row(&self, problem: DecodeError) -> DbError {
        DbError::new(
            DbErrorKind::InvalidRow,
            format!("invalid row for table `{}`: {problem}", self.name()),
        )
    }

    /// The needed columns of a stored row, which was validated when stored.
    fn stored_columns(&self, row: &[u8]) -> Vec<Column> {
        let mut columns = Vec::new();
        self.decode_validated(row, &mut columns)
            .expect("stored rows were validated when stored");
        columns
    }

    /// Fills auto-increment columns given as 0 and returns the steps the
    /// sequences must take if the row is stored; the table is not changed.
    pub(crate) fn fill_sequences(&self, row: &mut [Column]) -> Result<Vec<SequenceStep>, DbError> {
        let mut steps = Vec::new();
        for (position, sequence) in self.sequences.iter().enumerate() {
            if let Some(step) = sequence.fill(position, row, self.name())? {
                steps.push(step);
            }
        }
        Ok(steps)
    }

    /// The steps the sequences must take if an update stores `row`: past
    /// its explicit values, as an insert's would; the table is not changed.
    pub(crate) fn pass_sequences(&self, row: &[Column]) -> Vec<SequenceStep> {
        let sequences = self.sequences.iter().enumerate();
        sequences
            .filter_map(|(position, sequence)| sequence.pass(position, row))
            .collect()
    }

    /// Row bytes with the auto-increment columns re-encoded from `row`.
    pub(crate) fn splice_sequences(&self, bytes: &[u8], row: &[Column]) -> Row {
        let mut slots: Vec<usize> = self.sequences.iter().map(|s| s.slot).collect();
        slots.sort_unstable();
        RowShape::splice(bytes, row, &slots).into()
    }

    /// The id of the row that may have exactly these bytes, decoded as
    /// `row`: the row with its key in the first unique index when the table
    /// has one (its bytes are not compared), else the first row with these
    /// bytes, by a full scan.
    pub(crate) fn find_candidate(&self, bytes: &[u8], row: &[Column]) -> Option<RowId> {
        match self.indexes.iter().find(|i| i.is_unique()) {
            Some(index) => index.get(&index.key_in(row)),
            None => Some(self.rows.iter().find(|(_, row)| *row == bytes)?.0),
        }
    }

    /// Fails if storing `row` would duplicate a key of a unique index. For
    /// an update, `replacing` names the row it replaces and the index that
    /// found it; that index is skipped and the row may keep its own keys.
    pub(crate) fn check_unique(
        &self,
        row: &[Column],
        replacing: Option<(RowId, usize)>,
    ) -> Result<(), DbError> {
        for (position, index) in self.indexes.iter().enumerate() {
            if !index.is_unique() || replacing.is_some_and(|(_, by)| by == position) {
                continue;
            }
            let key = index.key_in(row);
            if let Some(existing) = index.get(&key)
                && Some(existing) != replacing.map(|(id, _)| id)
            {
                return Err(DbError::new(
                    DbErrorKind::UniqueViolation,
                    format!(
                        "duplicate key {} in unique index `{}` of table `{}`",
                        KeyDisplay(&key),
                        index.name(),
                        self.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Stores a new row in the table and every index; returns its id.
    pub(crate) fn put(&mut self, bytes: &[u8], row: &[Column]) -> RowId {
        let id = self.rows.push(bytes);
        self.enter(id, row);
        id
    }

    /// Enters row `id`, decoded as `row`, in every index.
    fn enter(&mut self, id: RowId, row: &[Column]) {
        self.index_bytes = self.index_bytes.saturating_add(self.entry_bytes(row));
        index_row(&mut self.indexes, id, row);
    }

    /// About how many bytes a decoded row's entries take in the indexes.
    fn entry_bytes(&self, row: &[Column]) -> usize {
        self.indexes
            .iter()
            .map(|index| index.entry_bytes(row))
            .sum()
    }

    /// Stores a row that was taken out earlier (when rolling back), under its id.
    pub(crate) fn restore(&mut self, id: RowId, bytes: &[u8]) {
        let row = self.stored_columns(bytes);
        self.rows.put_at(id, bytes);
        self.enter(id, &row);
    }

    /// Removes row `id` from the table and every index; returns its bytes.
    pub(crate) fn take(&mut self, id: RowId) -> Option<Row> {
        let bytes = self.rows.take(id)?;
        let row = self.stored_columns(&bytes);
        self.unindex(id, &row);
        Some(bytes)
    }

    /// Like [`take`](Self::take), for a row whose bytes, `bytes`, are
    /// already decoded as `row`: only if row `id` has exactly these bytes
    /// (else `false`, changing nothing).
    pub(crate) fn take_exact(&mut self, id: RowId, bytes: &[u8], row: &[Column]) -> bool {
        if self.rows.get(id) != Some(bytes) {
            return false;
        }
        self.rows.remove(id);
        self.unindex(id, row);
        true
    }

    fn unindex(&mut self, id: RowId, row: &[Column]) {
        self.index_bytes = self.index_bytes.saturating_sub(self.entry_bytes(row));
        for index in &mut self.indexes {
            index.remove(&index.key_in(row), id);
        }
    }

    /// Replaces row `id` with `bytes` (decoded as `row`), keeping its id,
    /// unless it already has exactly these bytes. Index `unchanged` is known
    /// to give both rows the same key; other indexes move only when their
    /// key changes. `None` if there is no row `id`.
    pub(crate) fn replace(
        &mut self,
        id: RowId,
        bytes: &[u8],
        row: &[Column],
        unchanged: usize,
    ) -> Option<Replaced> {
        let stored = self.rows.get(id)?;
        if stored == bytes {
            return Some(Replaced::Identical(Row::from(stored)));
        }
        let old = Row::from(stored);
        self.move_keys(id, &old, row, unchanged);
        self.rows.replace(id, bytes);
        Some(Replaced::Changed {
            old,
            new: Row::from(bytes),
        })
    }

    /// Like [`replace`](Self::replace), only if row `id` has exactly the
    /// bytes `old` (else `false`, changing nothing), and keeping no copy of them.
    pub(crate) fn replace_exact(
        &mut self,
        id: RowId,
        old: &[u8],
        bytes: &[u8],
        row: &[Column],
        unchanged: usize,
    ) -> bool {
        if self.rows.get(id) != Some(old) {
            return false;
        }
        self.move_keys(id, old, row, unchanged);
        self.rows.replace(id, bytes)
    }

    /// Moves row `id`, which was `old` and is now decoded as `row`, in
    /// every index but `unchanged` whose key for it changed.
    fn move_keys(&mut self, id: RowId, old: &[u8], row: &[Column], unchanged: usize) {
        if self.indexes.len() > 1 {
            let old_row = self.stored_columns(old);
            let (before, after) = (self.entry_bytes(&old_row), self.entry_bytes(row));
            self.index_bytes = self
                .index_bytes
                .saturating_sub(before)
                .saturating_add(after);
            for (position, index) in self.indexes.iter_mut().enumerate() {
                if position == unchanged {
                    continue;
                }
                let old_key = index.key_in(&old_row);
                if old_key != index.key_in(row) {
                    index.remove(&old_key, id);
                    index.insert(index.key_of(row), id);
                }
            }
        }
    }

    /// Between transactions: lets the row store drop the space of rows
    /// taken out (see [`RowStore::tidy`]), rebuilding the indexes if it
    /// renumbered the rows.
    pub(crate) fn tidy(&mut self) {
        if !self.rows.tidy() {
            return;
        }
        let mut columns = Vec::new();
        self.indexes.iter_mut().for_each(Index::clear);
        for (id, bytes) in self.rows.iter() {
            columns.clear();
            self.decode_validated(bytes, &mut columns)
                .expect("stored rows were validated when stored");
            index_row(&mut self.indexes, id, &columns);
        }
    }
}

/// Enters row `id`, decoded as `row`, in every index.
fn index_row(indexes: &mut [Index], id: RowId, row: &[Column]) {
    for index in indexes {
        let key = index.key_of(row);
        index.insert(key, id);
    }
}

/// What [`Table::replace`] did.
pub(crate) enum Replaced {
    /// The row already had these bytes; nothing changed.
    Identical(Row),
    /// The row changed from `old` to `new`.
    Changed { old: Row, new: Row },
}
