//! The net effect of a transaction, computed from its undo log.

use std::collections::{BTreeMap, HashMap};

use crate::index::RowId;
use crate::table::Row;

/// The rows one table gained and lost in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDelta {
    /// The table's id.
    pub table: usize,
    /// Rows that exist after the transaction and did not before, in row order.
    pub inserts: Vec<Row>,
    /// Rows that existed before the transaction and do not after, in row order.
    pub deletes: Vec<Row>,
}

/// Where an auto-increment sequence stands: the next value it hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceState {
    /// The table's id.
    pub table: usize,
    /// The sequence's position in the table's `auto_inc` list.
    pub sequence: usize,
    /// The next value it will hand out.
    pub next: u128,
}

/// The net effect of a committed transaction on every table it changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxDelta {
    /// Changed tables, by ascending table id; unchanged tables are absent.
    pub tables: Vec<TableDelta>,
    /// Sequences the transaction advanced, with their new positions.
    pub sequences: Vec<SequenceState>,
}

impl TxDelta {
    /// Whether the transaction changed no rows.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// Accumulates row insertions and deletions in transaction order and nets them out.
#[derive(Default)]
pub(crate) struct DeltaBuilder {
    tables: BTreeMap<usize, NetRows>,
}

#[derive(Default)]
struct NetRows {
    inserted: BTreeMap<RowId, Row>,
    deleted: BTreeMap<RowId, Row>,
}

impl DeltaBuilder {
    pub(crate) fn inserted(&mut self, table: usize, id: RowId, row: Row) {
        self.tables
            .entry(table)
            .or_default()
            .inserted
            .insert(id, row);
    }

    pub(crate) fn deleted(&mut self, table: usize, id: RowId, row: Row) {
        let net = self.tables.entry(table).or_default();
        // A row inserted by this transaction simply vanishes; a committed row is a delete.
        if net.inserted.remove(&id).is_none() {
            net.deleted.insert(id, row);
        }
    }

    pub(crate) fn finish(self, sequences: Vec<SequenceState>) -> TxDelta {
        let tables = self
            .tables
            .into_iter()
            .filter_map(|(table, net)| {
                let (inserts, deletes) = cancel_identical(net);
                (!inserts.is_empty() || !deletes.is_empty()).then_some(TableDelta {
                    table,
                    inserts,
                    deletes,
                })
            })
            .collect();
        TxDelta { tables, sequences }
    }
}

/// Drops pairs of a deleted and an inserted row with identical bytes: the
/// table holds the same rows as before for them.
fn cancel_identical(net: NetRows) -> (Vec<Row>, Vec<Row>) {
    let mut deleted_bytes: HashMap<&[u8], usize> = HashMap::new();
    for row in net.deleted.values() {
        *deleted_bytes.entry(row).or_default() += 1;
    }
    let mut cancelled: HashMap<&[u8], usize> = HashMap::new();
    let inserts: Vec<Row> = net
        .inserted
        .values()
        .filter(|row| match deleted_bytes.get_mut(&row[..]) {
            Some(count) if *count > 0 => {
                *count -= 1;
                *cancelled.entry(row).or_default() += 1;
                false
            }
            _ => true,
        })
        .cloned()
        .collect();
    let deletes: Vec<Row> = net
        .deleted
        .values()
        .filter(|row| match cancelled.get_mut(&row[..]) {
            Some(count) if *count > 0 => {
                *count -= 1;
                false
            }
            _ => true,
        })
        .cloned()
        .collect();
    (inserts, deletes)
}
