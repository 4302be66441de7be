//! The host side of the `datastore` and `log` imports, for both versions
//! of the world: the logic is written once over version-neutral types, and
//! [`impl_datastore_and_log`] binds it to each version's generated traits.

use wasmtime::component::Resource;
use worldline_datastore::{self as ds, KeyBound};

use crate::module_log::LogLevel;
use crate::state::{HostState, LimitExceeded};

/// Most rows one `cursor.next` call returns, whatever the module asks for.
const MAX_BATCH_ROWS: u32 = 1024;
/// How many rows `cursor.next` takes between checks of its byte cap.
const BYTE_CHECK_ROWS: u32 = 16;

/// What each row counts against the row quotas besides its bytes (the
/// transaction's `max_tx_write_bytes`, the database's
/// `max_database_bytes`): the host keeps a slot, a length and log entries
/// for every row, so rows of few bytes, or none (a table without columns),
/// must not be free.
const ROW_OVERHEAD_BYTES: usize = 16;

/// What a row of `len` bytes counts against the row quotas.
pub(crate) fn quota_bytes(len: usize) -> usize {
    len.saturating_add(ROW_OVERHEAD_BYTES)
}

/// A scan in progress, as [`HostState::open_cursors`] holds it.
pub struct CursorHandle(ds::Cursor);

/// `cursor.next` on a handle whose cursor is closed: the call (or
/// procedure transaction) that opened it has ended. The call traps.
#[derive(Debug, thiserror::Error)]
#[error(
    "cursor.next on a closed cursor: a cursor lives only as long as the reducer call or \
     procedure transaction that opened it (one kept in a global is closed)"
)]
struct ClosedCursor;

type HostResult<T> = wasmtime::Result<T>;

fn table_id(table: u32) -> usize {
    // u32 always fits in usize on the hosts we support (64-bit).
    table as usize
}

/// One end of a key range, as both versions of the WIT spell it.
pub(crate) enum WitBound {
    Unbounded,
    Included(Vec<u8>),
    Excluded(Vec<u8>),
}

fn key_bound(bound: WitBound) -> KeyBound {
    match bound {
        WitBound::Unbounded => KeyBound::Unbounded,
        WitBound::Included(key) => KeyBound::Included(key),
        WitBound::Excluded(key) => KeyBound::Excluded(key),
    }
}

/// A datastore call's answer: a trap (host limits), or the datastore's result.
type DsResult<T> = HostResult<Result<T, ds::DbError>>;

impl HostState {
    /// What this transaction will have written once a row of `len` bytes
    /// more is stored, trapping if that takes it past its quota, or the
    /// database past its own. Counts nothing: a write counts only once it
    /// is stored (see [`HostState::counted`]).
    fn check_write(&self, len: usize) -> HostResult<usize> {
        let written = self.bytes_written.saturating_add(quota_bytes(len));
        self.within_quotas(written)?;
        Ok(written)
    }

    /// Traps if a transaction that wrote `written` (see
    /// [`HostState::bytes_written`]) is past its quota, or its database
    /// past its own.
    fn within_quotas(&self, written: usize) -> HostResult<()> {
        let limit = self.quotas.max_tx_write_bytes;
        if written > limit {
            return Err(LimitExceeded(format!(
                "the transaction inserted or updated more than {limit} bytes of rows and index \
                 entries, the most one transaction may write (EngineConfig::max_tx_write_bytes)"
            ))
            .into());
        }
        // Deletes in this transaction are not counted until it commits.
        let limit = self.quotas.max_database_bytes;
        if self.stored_bytes.saturating_add(written) > limit {
            return Err(LimitExceeded(format!(
                "the database would hold more than {limit} bytes of rows and index entries, the \
                 most one database may hold (EngineConfig::max_database_bytes); delete rows to \
                 make room"
            ))
            .into());
        }
        Ok(())
    }

    /// Counts a write to table `table` that [`HostState::check_write`]
    /// allowed as `written`, if the datastore stored it (a refused write
    /// writes nothing), with what it added to the table's index entries
    /// (`index_bytes` before it); traps if those take the transaction or
    /// the database past its quota.
    fn counted<T>(
        &mut self,
        table: usize,
        written: usize,
        index_bytes: usize,
        result: Result<T, ds::DbError>,
    ) -> DsResult<T> {
        if result.is_ok() {
            let grown = self
                .datastore
                .index_bytes(table)
                .saturating_sub(index_bytes);
            self.bytes_written = written.saturating_add(grown);
            self.within_quotas(self.bytes_written)?;
        }
        Ok(result)
    }

    /// Keeps a new cursor under a handle no open cursor has, trapping if
    /// the call already holds as many as it may.
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
        let mut rep = self.next_cursor;
        while self.open_cursors.contains_key(&rep) {
            rep = rep.wrapping_add(1);
        }
        self.next_cursor = rep.wrapping_add(1);
        self.open_cursors.insert(rep, CursorHandle(cursor));
        Ok(Resource::new_own(rep))
    }

    pub(crate) fn ds_insert(&mut self, table: u32, row: Vec<u8>) -> DsResult<Vec<u8>> {
        let written = self.check_write(row.len())?;
        let table = table_id(table);
        let index_bytes = self.datastore.index_bytes(table);
        let inserted = self.datastore.insert(table, &row);
        Ok(self
            .counted(table, written, index_bytes, inserted)?
            .map(|r| r.to_vec()))
    }

    pub(crate) fn ds_update(&mut self, table: u32, index: u32, row: Vec<u8>) -> DsResult<Vec<u8>> {
        let written = self.check_write(row.len())?;
        let table = table_id(table);
        let index_bytes = self.datastore.index_bytes(table);
        let updated = self.datastore.update(table, table_id(index), &row);
        Ok(self
            .counted(table, written, index_bytes, updated)?
            .map(|r| r.to_vec()))
    }

    pub(crate) fn ds_delete(&mut self, table: u32, index: u32, key: Vec<u8>) -> DsResult<bool> {
        Ok(self
            .datastore
            .delete(table_id(table), table_id(index), &key))
    }

    pub(crate) fn ds_find(
        &mut self,
        table: u32,
        index: u32,
        key: Vec<u8>,
    ) -> DsResult<Option<Vec<u8>>> {
        Ok(self
            .datastore
            .find_bytes(table_id(table), table_id(index), &key)
            .map(|row| row.map(<[u8]>::to_vec)))
    }

    pub(crate) fn ds_count(&mut self, table: u32) -> DsResult<u64> {
        Ok(self.datastore.count(table_id(table)))
    }

    pub(crate) fn ds_scan(&mut self, table: u32) -> DsResult<Resource<CursorHandle>> {
        match self.datastore.scan(table_id(table)) {
            Ok(cursor) => Ok(Ok(self.open_cursor(cursor)?)),
            Err(err) => Ok(Err(err)),
        }
    }

    pub(crate) fn ds_scan_index(
        &mut self,
        table: u32,
        index: u32,
        lower: WitBound,
        upper: WitBound,
    ) -> DsResult<Resource<CursorHandle>> {
        let scan = self.datastore.scan_index(
            table_id(table),
            table_id(index),
            &key_bound(lower),
            &key_bound(upper),
        );
        match scan {
            Ok(cursor) => Ok(Ok(self.open_cursor(cursor)?)),
            Err(err) => Ok(Err(err)),
        }
    }

    /// The next rows of a cursor: at most `max_rows` (and at most
    /// [`MAX_BATCH_ROWS`]), stopping near the call's byte cap.
    pub(crate) fn cursor_next(
        &mut self,
        cursor: Resource<CursorHandle>,
        max_rows: u32,
    ) -> HostResult<(u32, Vec<u8>)> {
        // #9 item 11: at most `max_rows` rows, so 0 asks for none.
        let max_rows = max_rows.min(MAX_BATCH_ROWS);
        let max_bytes = self.quotas.max_batch_bytes;
        let mut data = Vec::new();
        let handle = self
            .open_cursors
            .get_mut(&cursor.rep())
            .ok_or(ClosedCursor)?;
        // A few rows at a time, stopping once the batch reaches its byte
        // cap: a batch holds at least one row and passes the cap by at
        // most one chunk.
        let count = self.datastore.next_batch_within(
            &mut handle.0,
            max_rows as usize,
            max_bytes,
            BYTE_CHECK_ROWS as usize,
            &mut data,
        );
        Ok((u32::try_from(count).unwrap_or(u32::MAX), data))
    }

    pub(crate) fn cursor_drop(&mut self, cursor: Resource<CursorHandle>) -> HostResult<()> {
        // A cursor left open by an earlier call was closed when that call
        // ended; dropping its handle now has nothing left to close (and no
        // newer cursor has its handle).
        self.open_cursors.remove(&cursor.rep());
        Ok(())
    }

    pub(crate) fn log_write(&mut self, level: LogLevel, message: String) {
        self.log.push(level, message);
        self.logged_this_call = true;
        if level == LogLevel::Panic {
            // The line as kept, so cut to the log's line limit.
            self.panic_message = self.log.last_message();
        }
    }
}

/// Implements one version's `types`, `datastore` (with its cursor) and
/// `log` host traits over [`HostState`]'s version-neutral methods.
/// `$outside_tx` turns a datastore call made with no transaction open into
/// that version's answer.
macro_rules! impl_datastore_and_log {
    ($version:ident, $outside_tx:path, $requires_tx:literal) => {
        mod $version {
            use wasmtime::component::Resource;
            use worldline_datastore::{self as ds, DbErrorKind};

            use super::{CursorHandle, HostResult, WitBound};
            use crate::bindings::$version::worldline::module::{datastore, log, types};
            use crate::module_log::LogLevel;
            use crate::state::HostState;

            type DbResult<T> = HostResult<Result<T, datastore::DbError>>;

            /// Whether a datastore call must be refused because no
            /// transaction is open (0.2.0 refuses reads too; 0.1.0 lets
            /// `describe` read the empty tables).
            fn refused(state: &HostState) -> bool {
                $requires_tx && !state.datastore.in_transaction()
            }

            const NO_TRANSACTION: &str = "no transaction is open: tables are reachable only \
                inside a reducer or between transaction.begin and commit/rollback in a procedure";

            /// Turns a datastore error into the WIT error value, or into a
            /// trap for errors that only a broken SDK can cause.
            fn to_wit<T>(result: HostResult<Result<T, ds::DbError>>) -> DbResult<T> {
                let err = match result? {
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
                    DbErrorKind::NotInTransaction => return $outside_tx(err.message),
                };
                Ok(Err(datastore::DbError {
                    kind,
                    message: err.message,
                }))
            }

            fn bound(bound: datastore::Bound) -> WitBound {
                match bound {
                    datastore::Bound::Unbounded => WitBound::Unbounded,
                    datastore::Bound::Included(key) => WitBound::Included(key),
                    datastore::Bound::Excluded(key) => WitBound::Excluded(key),
                }
            }

            impl types::Host for HostState {}

            impl datastore::Host for HostState {
                fn insert(&mut self, table: u32, row: Vec<u8>) -> DbResult<Vec<u8>> {
                    if refused(self) {
                        return $outside_tx(NO_TRANSACTION.to_owned());
                    }
                    to_wit(self.ds_insert(table, row))
                }

                fn update(&mut self, table: u32, index: u32, row: Vec<u8>) -> DbResult<Vec<u8>> {
                    if refused(self) {
                        return $outside_tx(NO_TRANSACTION.to_owned());
                    }
                    to_wit(self.ds_update(table, index, row))
                }

                fn delete(&mut self, table: u32, index: u32, key: Vec<u8>) -> DbResult<bool> {
                    if refused(self) {
                        return $outside_tx(NO_TRANSACTION.to_owned());
                    }
                    to_wit(self.ds_delete(table, index, key))
                }

                fn find(
                    &mut self,
                    table: u32,
                    index: u32,
                    key: Vec<u8>,
                ) -> DbResult<Option<Vec<u8>>> {
                    if refused(self) {
                        return $outside_tx(NO_TRANSACTION.to_owned());
                    }
                    to_wit(self.ds_find(table, index, key))
                }

                fn count(&mut self, table: u32) -> DbResult<u64> {
                    if refused(self) {
                        return $outside_tx(NO_TRANSACTION.to_owned());
                    }
                    to_wit(self.ds_count(table))
                }

                fn scan(&mut self, table: u32) -> DbResult<Resource<CursorHandle>> {
                    if refused(self) {
                        return $outside_tx(NO_TRANSACTION.to_owned());
                    }
                    to_wit(self.ds_scan(table))
                }

                fn scan_index(
                    &mut self,
                    table: u32,
                    index: u32,
                    lower: datastore::Bound,
                    upper: datastore::Bound,
                ) -> DbResult<Resource<CursorHandle>> {
                    if refused(self) {
                        return $outside_tx(NO_TRANSACTION.to_owned());
                    }
                    to_wit(self.ds_scan_index(table, index, bound(lower), bound(upper)))
                }
            }

            impl datastore::HostCursor for HostState {
                fn next(
                    &mut self,
                    cursor: Resource<CursorHandle>,
                    max_rows: u32,
                ) -> HostResult<datastore::Batch> {
                    let (count, data) = self.cursor_next(cursor, max_rows)?;
                    Ok(datastore::Batch { count, data })
                }

                fn drop(&mut self, cursor: Resource<CursorHandle>) -> HostResult<()> {
                    self.cursor_drop(cursor)
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
                    self.log_write(level, message);
                    Ok(())
                }
            }
        }
    };
}

/// 0.1.0 has no `no-transaction` error: a datastore call the datastore
/// refuses for want of a transaction (a write outside a reducer) traps.
fn v1_outside_tx<T>(message: String) -> HostResult<T> {
    Err(wasmtime::Error::msg(format!(
        "datastore call outside a reducer: {message}"
    )))
}

/// 0.2.0 answers a call with no transaction open with `no-transaction`.
fn v2_outside_tx<T>(
    message: String,
) -> HostResult<Result<T, crate::bindings::v2::worldline::module::datastore::DbError>> {
    use crate::bindings::v2::worldline::module::datastore::{DbError, ErrorKind};
    Ok(Err(DbError {
        kind: ErrorKind::NoTransaction,
        message,
    }))
}

impl_datastore_and_log!(v1, super::v1_outside_tx, false);
impl_datastore_and_log!(v2, super::v2_outside_tx, true);

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
        state.cursor_next(handle, max).expect("next").0
    }

    // #9 item 11: `next(max-rows = 0)` returned one row; the WIT says at most max-rows.
    #[test]
    fn next_returns_at_most_max_rows_and_none_for_zero() {
        let mut state = state_with_rows(5, &EngineConfig::default());
        let cursor = state.ds_scan(0).expect("no trap").expect("a cursor");
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
        let cursor = state.ds_scan(0).expect("no trap").expect("a cursor");
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
            .map(|_| state.ds_scan(0).expect("no trap").expect("a cursor").rep())
            .collect();
        assert_eq!(state.open_cursors.len(), 10);
        state.start_call();
        assert!(state.open_cursors.is_empty());
        for rep in reps {
            let stale = Resource::<CursorHandle>::new_own(rep);
            assert!(
                state.cursor_next(stale, 1).is_err(),
                "cursor {rep} still open"
            );
        }
    }
}
