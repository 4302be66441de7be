//! The host side of the `datastore` and `log` imports.

use wasmtime::component::Resource;
use worldline_datastore::{self as ds, DbErrorKind, KeyBound};

use crate::bindings::worldline::module::{datastore, log, types};
use crate::module_log::LogLevel;
use crate::state::{HostState, LimitExceeded};

/// Most rows one `cursor.next` call returns, whatever the module asks for.
const MAX_BATCH_ROWS: u32 = 1024;
/// How many rows `cursor.next` takes between checks of its byte cap.
const BYTE_CHECK_ROWS: u32 = 16;

/// A scan in progress, as held in the module's resource table.
pub struct CursorHandle(ds::Cursor);

type HostResult<T> = wasmtime::Result<T>;
type DbResult<T> = HostResult<Result<T, datastore::DbError>>;

/// Turns a datastore error into the WIT error value, or into a trap for
/// errors that only a broken SDK can cause.
fn to_wit<T>(result: Result<T, ds::DbError>) -> DbResult<T> {
    let err = match result {
        Ok(value) => return Ok(Ok(value)),
        Err(err) => err,
    };
    use datastore::ErrorKind as Wit;
    let kind = match err.kind {
        DbErrorKind::NoSuchTable => Wit::NoSuchTable,
        DbErrorKind::NoSuchIndex => Wit::NoSuchIndex,
        DbErrorKind::IndexNotUnique => Wit::IndexNotUnique,
        DbErrorKind::InvalidRow => Wit::InvalidRow,
        DbErrorKind::InvalidKey => Wit::InvalidKey,
        DbErrorKind::UniqueViolation => Wit::UniqueViolation,
        DbErrorKind::NotFound => Wit::NotFound,
        DbErrorKind::SequenceExhausted => Wit::SequenceExhausted,
        DbErrorKind::NotInTransaction => {
            return Err(wasmtime::Error::msg(format!(
                "datastore write outside a reducer: {}",
                err.message
            )));
        }
    };
    Ok(Err(datastore::DbError {
        kind,
        message: err.message,
    }))
}

fn table_id(table: u32) -> usize {
    // u32 always fits in usize on the hosts we support (64-bit).
    table as usize
}

fn key_bound(bound: datastore::Bound) -> KeyBound {
    match bound {
        datastore::Bound::Unbounded => KeyBound::Unbounded,
        datastore::Bound::Included(key) => KeyBound::Included(key),
        datastore::Bound::Excluded(key) => KeyBound::Excluded(key),
    }
}

impl types::Host for HostState {}

impl HostState {
    /// Counts `bytes` more row bytes written by this call, trapping once
    /// the transaction passes its quota.
    fn charge_write(&mut self, bytes: usize) -> HostResult<()> {
        self.bytes_written = self.bytes_written.saturating_add(bytes);
        let limit = self.quotas.max_tx_write_bytes;
        if self.bytes_written > limit {
            return Err(LimitExceeded(format!(
                "the transaction inserted or updated more than {limit} bytes of rows, the most \
                 one transaction may write (EngineConfig::max_tx_write_bytes)"
            ))
            .into());
        }
        // Deletes in this transaction are not counted until it commits.
        let limit = self.quotas.max_database_bytes;
        if self.stored_bytes.saturating_add(self.bytes_written) > limit {
            return Err(LimitExceeded(format!(
                "the database would hold more than {limit} bytes of rows, the most one database \
                 may hold (EngineConfig::max_database_bytes); delete rows to make room"
            ))
            .into());
        }
        Ok(())
    }

    /// Keeps a new cursor in the resource table, trapping if the call
    /// already holds as many as it may.
    fn open_cursor(&mut self, cursor: ds::Cursor) -> HostResult<Resource<CursorHandle>> {
        let limit = self.quotas.max_cursors;
        if self.open_cursors.len() >= limit {
            return Err(LimitExceeded(format!(
                "the module holds {limit} open cursors, the most one call may hold \
                 (EngineConfig::max_cursors_per_call); drop each cursor (row iterator) \
                 when done with it"
            ))
            .into());
        }
        let handle = self.resources.push(CursorHandle(cursor))?;
        self.open_cursors.insert(handle.rep());
        Ok(handle)
    }
}

impl datastore::Host for HostState {
    fn insert(&mut self, table: u32, row: Vec<u8>) -> DbResult<Vec<u8>> {
        self.charge_write(row.len())?;
        to_wit(
            self.datastore
                .insert(table_id(table), &row)
                .map(|r| r.to_vec()),
        )
    }

    fn update(&mut self, table: u32, index: u32, row: Vec<u8>) -> DbResult<Vec<u8>> {
        self.charge_write(row.len())?;
        to_wit(
            self.datastore
                .update(table_id(table), table_id(index), &row)
                .map(|r| r.to_vec()),
        )
    }

    fn delete(&mut self, table: u32, index: u32, key: Vec<u8>) -> DbResult<bool> {
        to_wit(
            self.datastore
                .delete(table_id(table), table_id(index), &key),
        )
    }

    fn find(&mut self, table: u32, index: u32, key: Vec<u8>) -> DbResult<Option<Vec<u8>>> {
        to_wit(
            self.datastore
                .find(table_id(table), table_id(index), &key)
                .map(|row| row.map(|r| r.to_vec())),
        )
    }

    fn count(&mut self, table: u32) -> DbResult<u64> {
        to_wit(self.datastore.count(table_id(table)))
    }

    fn scan(&mut self, table: u32) -> DbResult<Resource<CursorHandle>> {
        match self.datastore.scan(table_id(table)) {
            Ok(cursor) => Ok(Ok(self.open_cursor(cursor)?)),
            Err(err) => to_wit(Err(err)),
        }
    }

    fn scan_index(
        &mut self,
        table: u32,
        index: u32,
        lower: datastore::Bound,
        upper: datastore::Bound,
    ) -> DbResult<Resource<CursorHandle>> {
        let scan = self.datastore.scan_index(
            table_id(table),
            table_id(index),
            &key_bound(lower),
            &key_bound(upper),
        );
        match scan {
            Ok(cursor) => Ok(Ok(self.open_cursor(cursor)?)),
            Err(err) => to_wit(Err(err)),
        }
    }
}

impl datastore::HostCursor for HostState {
    fn next(
        &mut self,
        cursor: Resource<CursorHandle>,
        max_rows: u32,
    ) -> HostResult<datastore::Batch> {
        // #9 item 11: at most `max_rows` rows, so 0 asks for none.
        let max_rows = max_rows.min(MAX_BATCH_ROWS);
        let max_bytes = self.quotas.max_batch_bytes;
        let mut data = Vec::new();
        let mut count = 0;
        let handle = self.resources.get_mut(&cursor)?;
        // A few rows at a time, stopping once the batch reaches its byte
        // cap: a batch holds at least one row and passes the cap by at
        // most one chunk.
        while count < max_rows && data.len() < max_bytes {
            let chunk = (max_rows - count).min(BYTE_CHECK_ROWS) as usize;
            let added = self.datastore.next_batch(&mut handle.0, chunk, &mut data);
            if added == 0 {
                break;
            }
            count += u32::try_from(added).unwrap_or(u32::MAX);
        }
        Ok(datastore::Batch { count, data })
    }

    fn drop(&mut self, cursor: Resource<CursorHandle>) -> HostResult<()> {
        // A cursor left open by an earlier call was closed when that call
        // ended; dropping its handle now has nothing left to close.
        if self.open_cursors.remove(&cursor.rep()) {
            self.resources.delete(cursor)?;
        }
        Ok(())
    }
}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) -> HostResult<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
            log::Level::Panic => LogLevel::Panic,
        };
        self.log.push(level, message);
        self.logged_this_call = true;
        if level == LogLevel::Panic {
            // The line as kept, so cut to the log's line limit.
            self.panic_message = self.log.records().last().map(|r| r.message.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use worldline_datastore::{AlgebraicType, Datastore, Field, ProductType, TableSchema};

    use super::*;
    use crate::engine::EngineConfig;
    use crate::module_log::ModuleLog;

    /// A host state over one table `numbers(n: u32)` holding 0..`rows`.
    fn state_with_rows(rows: u32, config: &EngineConfig) -> HostState {
        let table = TableSchema {
            name: "numbers".into(),
            columns: ProductType {
                fields: vec![Field {
                    name: Some("n".into()),
                    ty: AlgebraicType::U32,
                }],
            },
            primary_key: None,
            indexes: Vec::new(),
            auto_inc: Vec::new(),
            public: true,
        };
        let mut datastore = Datastore::new(vec![table]);
        datastore.begin().expect("a transaction");
        for n in 0..rows {
            let row = postcard::to_allocvec(&n).expect("encoding");
            datastore.insert(0, &row).expect("inserting");
        }
        datastore.commit();
        let log = ModuleLog::new(crate::module_log::LogLimits {
            max_lines: 10,
            max_line_bytes: 100,
            max_bytes: 1000,
        });
        HostState::new(datastore, log, config)
    }

    fn next(state: &mut HostState, cursor: &Resource<CursorHandle>, max: u32) -> u32 {
        let handle = Resource::new_own(cursor.rep());
        datastore::HostCursor::next(state, handle, max)
            .expect("next")
            .count
    }

    // #9 item 11: `next(max-rows = 0)` returned one row; the WIT says at most max-rows.
    #[test]
    fn next_returns_at_most_max_rows_and_none_for_zero() {
        let mut state = state_with_rows(5, &EngineConfig::default());
        let cursor = datastore::Host::scan(&mut state, 0)
            .expect("no trap")
            .expect("a cursor");
        assert_eq!(next(&mut state, &cursor, 0), 0);
        assert_eq!(next(&mut state, &cursor, 2), 2);
        assert_eq!(next(&mut state, &cursor, 10), 3);
        assert_eq!(next(&mut state, &cursor, 10), 0);
    }

    // #9 item 10: one batch is capped in bytes (and holds at least one row).
    #[test]
    fn a_batch_stops_near_its_byte_cap() {
        let config = EngineConfig {
            max_batch_bytes: 3,
            ..EngineConfig::default()
        };
        let mut state = state_with_rows(100, &config);
        let cursor = datastore::Host::scan(&mut state, 0)
            .expect("no trap")
            .expect("a cursor");
        let first = next(&mut state, &cursor, 1000);
        assert!(
            (1..=BYTE_CHECK_ROWS).contains(&first),
            "{first} rows for a 3-byte cap"
        );
    }

    // #9 item 11: cursors a call leaves open are closed when the next starts.
    #[test]
    fn cursors_left_open_are_closed_at_the_next_call() {
        let mut state = state_with_rows(1, &EngineConfig::default());
        let reps: Vec<u32> = (0..10)
            .map(|_| {
                datastore::Host::scan(&mut state, 0)
                    .expect("no trap")
                    .expect("a cursor")
                    .rep()
            })
            .collect();
        assert_eq!(state.open_cursors.len(), 10);
        state.start_call();
        assert!(state.open_cursors.is_empty());
        for rep in reps {
            let stale = Resource::<CursorHandle>::new_own(rep);
            assert!(
                state.resources.get(&stale).is_err(),
                "cursor {rep} still open"
            );
        }
    }
}
