//! Scans: cursors over a whole table or a key range of an index, read in
//! batches that resume after the last row returned.

use std::ops::Bound;

use crate::datastore::{Datastore, IndexId, TableId};
use crate::error::DbError;
use crate::index::{Key, KeyForm, KeyRange, Position, RowId};

/// One end of an index scan: postcard bytes of the first k key columns,
/// 1 <= k <= the number of key columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBound {
    /// No limit on this side.
    Unbounded,
    /// Keys whose first k columns equal these are inside the range.
    Included(Vec<u8>),
    /// Keys whose first k columns equal these are outside the range.
    Excluded(Vec<u8>),
}

/// A scan's position, owned by the caller. It does not borrow the
/// datastore, so the caller may keep it while writing: each batch resumes
/// after the last row returned by seeking the table or index, so rows
/// written past that position are seen. Within a transaction a table scan
/// never returns a row twice; an index scan returns a row again if a write
/// moves its key past the position. Between transactions a table may give
/// its rows new ids (when rows taken out leave it sparse), so a cursor kept
/// past its transaction may return rows again, but never skips one.
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

impl Datastore {
    /// A cursor over all rows of the table, in insertion order.
    pub fn scan(&self, table: TableId) -> Result<Cursor, DbError> {
        self.table(table)?;
        Ok(Cursor {
            table,
            scan: Scan::Rows { after: None },
        })
    }

    /// A cursor over the rows whose key in index `index` lies between the
    /// bounds (compared on as many columns as each bound holds), in key
    /// order; rows with equal keys come in insertion order.
    pub fn scan_index(
        &self,
        table: TableId,
        index: IndexId,
        lower: &KeyBound,
        upper: &KeyBound,
    ) -> Result<Cursor, DbError> {
        let target = self.table(table)?;
        let by = target.index(index)?;
        let decode = |bytes: &[u8]| by.decode_key(bytes, KeyForm::Prefix, target.name());
        let bound = |bound: &KeyBound| -> Result<Bound<Key>, DbError> {
            Ok(match bound {
                KeyBound::Unbounded => Bound::Unbounded,
                KeyBound::Included(bytes) => Bound::Included(decode(bytes)?),
                KeyBound::Excluded(bytes) => Bound::Excluded(decode(bytes)?),
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

    /// Appends up to `max_rows` more rows of the cursor's scan to `out`,
    /// `chunk` rows at a time, stopping once `out` holds `max_bytes` or
    /// more (so it passes that by at most one chunk), and returns how many.
    /// As [`next_batch`](Self::next_batch), 0 means the scan is over; a
    /// batch of fewer rows than asked does not end it: rows written past
    /// its position are still seen by later batches. (A chunk that comes
    /// short ends the batch without looking again, which would find none
    /// and end the scan while the batch holds rows.)
    pub fn next_batch_within(
        &self,
        cursor: &mut Cursor,
        max_rows: usize,
        max_bytes: usize,
        chunk: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        let chunk = chunk.max(1);
        let mut count = 0;
        while count < max_rows && out.len() < max_bytes {
            let asked = (max_rows - count).min(chunk);
            let added = self.next_batch(cursor, asked, out);
            count += added;
            if added < asked {
                break;
            }
        }
        count
    }

    /// Appends the bytes of up to `max_rows` more rows of the cursor's scan
    /// to `out`, one after another, and returns how many. 0 means the scan
    /// is over (and stays over), except that asking for 0 rows returns 0
    /// and leaves the cursor as it was.
    pub fn next_batch(&self, cursor: &mut Cursor, max_rows: usize, out: &mut Vec<u8>) -> usize {
        if max_rows == 0 {
            return 0;
        }
        let count = match (self.table(cursor.table), &mut cursor.scan) {
            (_, Scan::Done) | (Err(_), _) => 0,
            (Ok(table), Scan::Rows { after }) => {
                let start = after.map_or(0, |id| id + 1);
                let mut count = 0;
                for (id, row) in table.rows.iter_from(start).take(max_rows) {
                    out.extend_from_slice(row);
                    *after = Some(id);
                    count += 1;
                }
                count
            }
            (
                Ok(table),
                Scan::Index {
                    index,
                    range,
                    after,
                },
            ) => {
                let Some(by) = table.indexes.get(*index) else {
                    cursor.scan = Scan::Done;
                    return 0;
                };
                let mut count = 0;
                let mut last = None;
                let rows = by
                    .range(range, after.as_ref())
                    .filter_map(|(key, id)| Some((key, id, table.rows.get(id)?)));
                for (key, id, row) in rows.take(max_rows) {
                    out.extend_from_slice(row);
                    last = Some((key, id));
                    count += 1;
                }
                if let Some((key, id)) = last {
                    *after = Some((key.into_owned(), id));
                }
                count
            }
        };
        if count == 0 {
            cursor.scan = Scan::Done;
        }
        count
    }
}
