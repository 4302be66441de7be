//! One table: its rows in insertion order, its indexes and its sequences.
//! Operations here do no transaction bookkeeping; the datastore does that.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::codec::{decode_product, encode_value};
use crate::error::{DbError, DbErrorKind};
use crate::index::{Index, Key, RowId};
use crate::schema::TableSchema;
use crate::value::{Value, write_list};

/// A row's postcard bytes, shared between the table and transaction deltas.
pub type Row = Arc<[u8]>;

/// An auto-increment sequence: the next value it will hand out.
pub(crate) struct Sequence {
    pub(crate) column: usize,
    pub(crate) next: u128,
}

pub(crate) struct Table {
    pub(crate) schema: TableSchema,
    pub(crate) rows: BTreeMap<RowId, Row>,
    pub(crate) indexes: Vec<Index>,
    pub(crate) sequences: Vec<Sequence>,
}

/// A row ready to be stored: its bytes and decoded columns.
pub(crate) struct PreparedRow {
    pub(crate) bytes: Row,
    pub(crate) values: Vec<Value>,
}

impl Table {
    pub(crate) fn new(schema: TableSchema) -> Self {
        let indexes = schema
            .indexes
            .iter()
            .map(|index| Index::new(index.clone(), &schema.columns))
            .collect();
        let sequences = schema
            .auto_inc
            .iter()
            .map(|&column| Sequence { column, next: 1 })
            .collect();
        Self {
            schema,
            rows: BTreeMap::new(),
            indexes,
            sequences,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.schema.name
    }

    pub(crate) fn index(&self, index: usize) -> Result<&Index, DbError> {
        self.indexes.get(index).ok_or_else(|| {
            DbError::new(
                DbErrorKind::NoSuchIndex,
                format!("table `{}` has no index {index}", self.name()),
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
                    found.schema.name,
                    self.name()
                ),
            ));
        }
        Ok(found)
    }

    /// Decodes row bytes as this table's row type.
    pub(crate) fn decode_row(&self, bytes: &[u8]) -> Result<Vec<Value>, DbError> {
        decode_product(&self.schema.columns, bytes).map_err(|e| {
            DbError::new(
                DbErrorKind::InvalidRow,
                format!("row for table `{}`: {e}", self.name()),
            )
        })
    }

    /// Decoded columns of a stored row, which was validated when stored.
    pub(crate) fn stored_values(&self, row: &[u8]) -> Vec<Value> {
        decode_product(&self.schema.columns, row).expect("stored rows were validated on insert")
    }

    /// Fills auto-increment columns given as 0. Returns the sequence values
    /// to store afterwards (sequence position, new next value); tables are
    /// not changed here.
    pub(crate) fn fill_sequences(
        &self,
        values: &mut [Value],
    ) -> Result<(bool, Vec<(usize, u128)>), DbError> {
        let mut filled = false;
        let mut advanced = Vec::new();
        for (position, sequence) in self.sequences.iter().enumerate() {
            let column = &mut values[sequence.column];
            let exhausted = || {
                DbError::new(
                    DbErrorKind::SequenceExhausted,
                    format!(
                        "the sequence of column `{}` of table `{}` has no values left",
                        self.schema.column_name(sequence.column),
                        self.name()
                    ),
                )
            };
            match column.as_u128() {
                Some(0) => {
                    *column = column.with_integer(sequence.next).ok_or_else(exhausted)?;
                    filled = true;
                    advanced.push((position, sequence.next + 1));
                }
                Some(given) if given >= sequence.next => {
                    advanced.push((position, given.saturating_add(1)))
                }
                _ => {}
            }
        }
        Ok((filled, advanced))
    }

    /// Fails if storing `values` would duplicate a key of a unique index,
    /// ignoring the row `replacing` (the row an update replaces).
    pub(crate) fn check_unique(
        &self,
        values: &[Value],
        replacing: Option<RowId>,
    ) -> Result<(), DbError> {
        for index in self.indexes.iter().filter(|i| i.is_unique()) {
            let key = index.key_of(values);
            if let Some(existing) = index.get(&key)
                && Some(existing) != replacing
            {
                return Err(DbError::new(
                    DbErrorKind::UniqueViolation,
                    format!(
                        "duplicate key {} in unique index `{}` of table `{}`",
                        KeyDisplay(&key),
                        index.schema.name,
                        self.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Stores a row under `id` in the table and every index.
    pub(crate) fn put(&mut self, id: RowId, row: PreparedRow) {
        for index in &mut self.indexes {
            let key = index.key_of(&row.values);
            index.insert(key, id);
        }
        self.rows.insert(id, row.bytes);
    }

    /// The id of a row with exactly these bytes: found through a unique
    /// index when the table has one, by a full scan otherwise.
    pub(crate) fn find_identical(&self, row: &[u8]) -> Option<RowId> {
        if let Some(index) = self.indexes.iter().find(|i| i.is_unique()) {
            let values = self.decode_row(row).ok()?;
            let id = index.get(&index.key_of(&values))?;
            return (self.rows[&id][..] == *row).then_some(id);
        }
        self.rows
            .iter()
            .find(|(_, stored)| stored[..] == *row)
            .map(|(&id, _)| id)
    }

    /// Removes row `id` from the table and every index; returns its bytes.
    pub(crate) fn take(&mut self, id: RowId) -> Option<Row> {
        let row = self.rows.remove(&id)?;
        let values = self.stored_values(&row);
        for index in &mut self.indexes {
            let key = index.key_of(&values);
            index.remove(key, id);
        }
        Some(row)
    }
}

/// Re-encodes decoded columns as row bytes.
pub(crate) fn encode_row(values: &[Value]) -> Row {
    let mut bytes = Vec::new();
    values.iter().for_each(|v| encode_value(v, &mut bytes));
    bytes.into()
}

/// Shows a key as `(v1, v2)`.
pub(crate) struct KeyDisplay<'a>(pub(crate) &'a Key);

impl std::fmt::Display for KeyDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_list(f, "(", self.0, ")")
    }
}
