//! The host side of the `datastore` and `log` imports.

use wasmtime::component::Resource;
use worldline_datastore::{self as ds, DbErrorKind, KeyBound};

use crate::bindings::worldline::module::{datastore, log, types};
use crate::module_log::LogLevel;
use crate::state::HostState;

/// Most rows one `cursor.next` call returns, whatever the module asks for.
const MAX_BATCH_ROWS: u32 = 1024;

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

impl datastore::Host for HostState {
    fn insert(&mut self, table: u32, row: Vec<u8>) -> DbResult<Vec<u8>> {
        to_wit(
            self.datastore
                .insert(table_id(table), &row)
                .map(|r| r.to_vec()),
        )
    }

    fn update(&mut self, table: u32, index: u32, row: Vec<u8>) -> DbResult<Vec<u8>> {
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
            Ok(cursor) => Ok(Ok(self.resources.push(CursorHandle(cursor))?)),
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
            Ok(cursor) => Ok(Ok(self.resources.push(CursorHandle(cursor))?)),
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
        let max_rows = max_rows.clamp(1, MAX_BATCH_ROWS) as usize;
        let mut data = Vec::new();
        let handle = self.resources.get_mut(&cursor)?;
        let count = self
            .datastore
            .next_batch(&mut handle.0, max_rows, &mut data);
        Ok(datastore::Batch {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            data,
        })
    }

    fn drop(&mut self, cursor: Resource<CursorHandle>) -> HostResult<()> {
        self.resources.delete(cursor)?;
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
        if level == LogLevel::Panic {
            self.panic_message = Some(message.clone());
        }
        self.log.push(level, message);
        Ok(())
    }
}
