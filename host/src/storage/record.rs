//! What the commit log stores for each committed transaction.

use serde::{Deserialize, Serialize, Serializer};
use serde_bytes::Bytes;
use worldline_datastore::{Row, SequenceState, TxDelta};

/// One committed transaction: what caused it and what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The rows one table gained and lost: the delta's rows themselves (no
/// copy of each, which a transaction of a million rows would make into a
/// million allocations on the database's thread), written as byte strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LoggedTable {
    pub(crate) table: u32,
    #[serde(serialize_with = "byte_strings")]
    pub(crate) inserts: Vec<Row>,
    #[serde(serialize_with = "byte_strings")]
    pub(crate) deletes: Vec<Row>,
}

/// Rows as a sequence of byte strings, as `Vec<ByteBuf>` would be.
fn byte_strings<S: Serializer>(rows: &[Row], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(rows.iter().map(|row| Bytes::new(row)))
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

/// A [`LogRecord`] read for replay: the same encoding, decoded without
/// copying its rows (they are borrowed from the bytes it was read from).
#[derive(Debug, Deserialize)]
pub(crate) struct ReplayRecord<'a> {
    pub(crate) offset: u64,
    #[serde(borrow)]
    _reducer: &'a str,
    _caller: [u8; 32],
    _timestamp: i64,
    #[serde(borrow)]
    pub(crate) tables: Vec<ReplayTable<'a>>,
    pub(crate) sequences: Vec<LoggedSequence>,
}

/// A [`LoggedTable`] with borrowed rows.
#[derive(Debug, Deserialize)]
pub(crate) struct ReplayTable<'a> {
    pub(crate) table: u32,
    #[serde(borrow)]
    pub(crate) inserts: Vec<&'a Bytes>,
    #[serde(borrow)]
    pub(crate) deletes: Vec<&'a Bytes>,
}

impl<'a> ReplayRecord<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
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
                    inserts: t.inserts.clone(),
                    deletes: t.deletes.clone(),
                })
                .collect(),
            sequences: delta.sequences.iter().map(LoggedSequence::from).collect(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let buffer = Vec::with_capacity(self.encoded_len_bound());
        postcard::to_extend(self, buffer).expect("encoding to a Vec cannot fail")
    }

    /// At least the encoded length, so that encoding allocates once: each
    /// integer takes at most 19 bytes (a `u128` varint), each length 5.
    fn encoded_len_bound(&self) -> usize {
        let rows: usize = self
            .tables
            .iter()
            .flat_map(|t| t.inserts.iter().chain(&t.deletes))
            .map(|row| row.len() + 5)
            .sum();
        let headers = 10 + 5 + self.reducer.len() + 32 + 10 + 5;
        headers + rows + self.tables.len() * 15 + 5 + self.sequences.len() * 29
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_record_reads_what_a_log_record_wrote() {
        let row = |bytes: &[u8]| Row::from(bytes);
        let delta = TxDelta {
            tables: vec![worldline_datastore::TableDelta {
                table: 3,
                inserts: vec![row(&[1, 2]), row(&[])],
                deletes: vec![row(&[9])],
            }],
            sequences: vec![SequenceState {
                table: 3,
                sequence: 1,
                next: u128::MAX,
            }],
        };
        let encoded = LogRecord::new(7, "transfer", [5; 32], -4, &delta).encode();
        let read = ReplayRecord::decode(&encoded).unwrap();
        assert_eq!(read.offset, 7);
        assert_eq!(read.tables.len(), 1);
        let table = &read.tables[0];
        assert_eq!(table.table, 3);
        let bytes = |rows: &[&Bytes]| rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>();
        assert_eq!(bytes(&table.inserts), [vec![1, 2], vec![]]);
        assert_eq!(bytes(&table.deletes), [vec![9]]);
        assert_eq!(
            read.sequences
                .iter()
                .map(SequenceState::from)
                .collect::<Vec<_>>(),
            delta.sequences
        );
    }

    #[test]
    fn encoding_allocates_once_even_for_the_largest_numbers() {
        let row = |len: usize| Row::from(vec![0xAB; len].as_slice());
        let table = |table: usize| worldline_datastore::TableDelta {
            table,
            inserts: vec![row(0), row(127), row(128), row(70_000)],
            deletes: vec![row(1); 300],
        };
        let delta = TxDelta {
            tables: vec![table(usize::from(u16::MAX)), table(u32::MAX as usize)],
            sequences: vec![
                SequenceState {
                    table: u32::MAX as usize,
                    sequence: u32::MAX as usize,
                    next: u128::MAX,
                };
                3
            ],
        };
        let record = LogRecord::new(u64::MAX, &"r".repeat(300), [0xFF; 32], i64::MIN, &delta);
        let encoded = record.encode();
        assert!(
            encoded.len() <= record.encoded_len_bound(),
            "{} bytes encoded, {} allowed for",
            encoded.len(),
            record.encoded_len_bound()
        );
        assert_eq!(encoded.capacity(), record.encoded_len_bound());
        assert_eq!(ReplayRecord::decode(&encoded).unwrap().offset, u64::MAX);
    }
}
