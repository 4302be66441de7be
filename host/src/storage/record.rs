//! What the commit log stores for each committed transaction.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use worldline_datastore::{Row, SequenceState, TableDelta, TxDelta};

/// One committed transaction: what caused it and what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogRecord {
    /// Position in the database's history: 0 for the first transaction, then 1, 2, ...
    pub(crate) offset: u64,
    /// The reducer that ran.
    pub(crate) reducer: String,
    /// The caller's identity.
    pub(crate) caller: [u8; 32],
    /// The transaction's timestamp, in microseconds since the epoch.
    pub(crate) timestamp: i64,
    /// Rows inserted and deleted, per table.
    pub(crate) tables: Vec<LoggedTable>,
    /// Sequences advanced, with their new positions.
    pub(crate) sequences: Vec<LoggedSequence>,
}

/// The rows one table gained and lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoggedTable {
    pub(crate) table: u32,
    pub(crate) inserts: Vec<ByteBuf>,
    pub(crate) deletes: Vec<ByteBuf>,
}

/// A sequence's position after the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoggedSequence {
    pub(crate) table: u32,
    pub(crate) sequence: u32,
    pub(crate) next: u128,
}

impl From<&SequenceState> for LoggedSequence {
    fn from(s: &SequenceState) -> Self {
        Self {
            table: s.table as u32,
            sequence: s.sequence as u32,
            next: s.next,
        }
    }
}

impl From<&LoggedSequence> for SequenceState {
    fn from(s: &LoggedSequence) -> Self {
        Self {
            table: s.table as usize,
            sequence: s.sequence as usize,
            next: s.next,
        }
    }
}

fn bufs(rows: &[Row]) -> Vec<ByteBuf> {
    rows.iter().map(|r| ByteBuf::from(r.to_vec())).collect()
}

fn rows(bufs: &[ByteBuf]) -> Vec<Row> {
    bufs.iter().map(|b| Row::from(b.as_slice())).collect()
}

impl LogRecord {
    /// The record of a transaction with this delta.
    pub(crate) fn new(
        offset: u64,
        reducer: &str,
        caller: [u8; 32],
        timestamp: i64,
        delta: &TxDelta,
    ) -> Self {
        Self {
            offset,
            reducer: reducer.to_owned(),
            caller,
            timestamp,
            tables: delta
                .tables
                .iter()
                .map(|t| LoggedTable {
                    table: t.table as u32,
                    inserts: bufs(&t.inserts),
                    deletes: bufs(&t.deletes),
                })
                .collect(),
            sequences: delta.sequences.iter().map(LoggedSequence::from).collect(),
        }
    }

    /// The delta to replay.
    pub(crate) fn delta(&self) -> TxDelta {
        TxDelta {
            tables: self
                .tables
                .iter()
                .map(|t| TableDelta {
                    table: t.table as usize,
                    inserts: rows(&t.inserts),
                    deletes: rows(&t.deletes),
                })
                .collect(),
            sequences: self.sequences.iter().map(SequenceState::from).collect(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding to a Vec cannot fail")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
