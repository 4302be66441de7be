//! The net effect of a transaction, computed from its row writes.

use crate::datastore::TableId;
use crate::index::RowId;
use crate::table::Row;

/// The rows one table gained and lost in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDelta {
    /// The table's id.
    pub table: TableId,
    /// Rows that exist after the transaction and did not before, in row order.
    pub inserts: Vec<Row>,
    /// Rows that existed before the transaction and do not after, in row order.
    pub deletes: Vec<Row>,
}

/// Where an auto-increment sequence stands: the next value it hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceState {
    /// The table's id.
    pub table: TableId,
    /// The sequence's position in the table's `auto_inc` list.
    pub sequence: usize,
    /// The next value it will hand out, or 0 once it has handed out
    /// `u128::MAX` (sequences start at 1, so 0 is never a next value).
    pub next: u128,
}

/// The net effect of a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxDelta {
    /// Changed tables, by ascending table id; unchanged tables are absent.
    pub tables: Vec<TableDelta>,
    /// Sequences the transaction advanced, with their new positions, by
    /// table id and then sequence position.
    pub sequences: Vec<SequenceState>,
}

impl TxDelta {
    /// Whether the transaction changed no rows.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

/// One row written by a transaction: stored (`inserted`) or taken out.
struct RowWrite {
    table: TableId,
    id: RowId,
    inserted: bool,
    row: Row,
}

/// Collects a transaction's row writes in the order they happened and nets them out.
#[derive(Default)]
pub(crate) struct DeltaBuilder {
    writes: Vec<RowWrite>,
}

impl DeltaBuilder {
    pub(crate) fn inserted(&mut self, table: TableId, id: RowId, row: Row) {
        self.writes.push(RowWrite {
            table,
            id,
            inserted: true,
            row,
        });
    }

    pub(crate) fn deleted(&mut self, table: TableId, id: RowId, row: Row) {
        self.writes.push(RowWrite {
            table,
            id,
            inserted: false,
            row,
        });
    }

    /// The net delta. A row id's first write tells whether the row existed
    /// before (a delete comes first) and with which bytes; its last write
    /// tells whether it exists after. Rows unchanged by that measure, and
    /// pairs of a deleted and an inserted row with identical bytes, are left out.
    pub(crate) fn finish(mut self, sequences: Vec<SequenceState>) -> TxDelta {
        // Stable: the writes of each row stay in the order they happened.
        self.writes.sort_by_key(|w| (w.table, w.id));
        let mut tables: Vec<TableDelta> = Vec::new();
        for writes in self
            .writes
            .chunk_by(|a, b| (a.table, a.id) == (b.table, b.id))
        {
            let (first, last) = (&writes[0], &writes[writes.len() - 1]);
            let before = (!first.inserted).then_some(&first.row);
            let after = last.inserted.then_some(&last.row);
            if before.map(|r| &r[..]) == after.map(|r| &r[..]) {
                continue;
            }
            let delta = match tables.last_mut() {
                Some(delta) if delta.table == first.table => delta,
                _ => {
                    tables.push(TableDelta {
                        table: first.table,
                        inserts: Vec::new(),
                        deletes: Vec::new(),
                    });
                    tables.last_mut().expect("just pushed")
                }
            };
            delta.deletes.extend(before.cloned());
            delta.inserts.extend(after.cloned());
        }
        for delta in &mut tables {
            cancel_identical(&mut delta.inserts, &mut delta.deletes);
        }
        tables.retain(|delta| !delta.inserts.is_empty() || !delta.deletes.is_empty());
        TxDelta { tables, sequences }
    }
}

/// Drops pairs of a deleted and an inserted row with identical bytes (a
/// row deleted and inserted again): the table holds the same rows as before.
fn cancel_identical(inserts: &mut Vec<Row>, deletes: &mut Vec<Row>) {
    if inserts.is_empty() || deletes.is_empty() {
        return;
    }
    let mut by_bytes: Vec<usize> = (0..deletes.len()).collect();
    by_bytes.sort_by(|&a, &b| deletes[a].cmp(&deletes[b]));
    let mut cancelled = vec![false; deletes.len()];
    inserts.retain(|row| {
        let start = by_bytes.partition_point(|&d| deletes[d] < *row);
        let partner = by_bytes[start..]
            .iter()
            .take_while(|&&d| deletes[d] == *row)
            .find(|&&d| !cancelled[d]);
        match partner {
            Some(&d) => {
                cancelled[d] = true;
                false
            }
            None => true,
        }
    });
    let mut cancelled = cancelled.into_iter();
    deletes.retain(|_| !cancelled.next().unwrap_or(false));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bytes: &[u8]) -> Row {
        Row::from(bytes)
    }

    #[test]
    fn nets_writes_per_row_and_cancels_identical_pairs() {
        let mut builder = DeltaBuilder::default();
        // Row 1 of table 0 is updated twice: old out, final in.
        builder.deleted(0, 1, row(b"a"));
        builder.inserted(0, 1, row(b"b"));
        builder.deleted(0, 1, row(b"b"));
        builder.inserted(0, 1, row(b"c"));
        // Row 2 is inserted and deleted: nowhere.
        builder.inserted(0, 2, row(b"t"));
        builder.deleted(0, 2, row(b"t"));
        // Row 3 is deleted and its bytes come back as row 4: nowhere.
        builder.deleted(0, 3, row(b"x"));
        builder.inserted(0, 4, row(b"x"));
        // Row 5 is updated away and back: nowhere.
        builder.deleted(0, 5, row(b"p"));
        builder.inserted(0, 5, row(b"q"));
        builder.deleted(0, 5, row(b"q"));
        builder.inserted(0, 5, row(b"p"));
        // Table 2 loses a row and gains two identical ones; one pair cancels.
        builder.deleted(2, 7, row(b"d"));
        builder.inserted(2, 9, row(b"d"));
        builder.inserted(2, 8, row(b"d"));
        // Table 1 only inserts and deletes the same row.
        builder.inserted(1, 6, row(b"z"));
        builder.deleted(1, 6, row(b"z"));
        let sequences = vec![SequenceState {
            table: 0,
            sequence: 0,
            next: 5,
        }];
        let delta = builder.finish(sequences.clone());
        assert_eq!(
            delta,
            TxDelta {
                tables: vec![
                    TableDelta {
                        table: 0,
                        inserts: vec![row(b"c")],
                        deletes: vec![row(b"a")],
                    },
                    TableDelta {
                        table: 2,
                        inserts: vec![row(b"d")],
                        deletes: vec![],
                    },
                ],
                sequences,
            }
        );
        assert!(!delta.is_empty());
        assert!(DeltaBuilder::default().finish(vec![]).is_empty());
    }
}
