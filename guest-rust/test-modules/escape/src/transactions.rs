//! The `note` table, and attempts on the transaction rules: tables outside
//! a transaction, `transaction.begin` from a reducer, a transaction held
//! open forever.

use crate::args::{encode_string, push_varint};
use crate::bindings::worldline::module::{datastore, transaction};
use crate::describe::NOTE;

/// Inserts a `note` with the next id (the row count) and `text`.
fn insert_note(text: &str) -> Result<u64, String> {
    let id = datastore::count(NOTE).map_err(|e| format!("count: {:?}", e.kind))?;
    let mut row = Vec::new();
    push_varint(&mut row, id);
    row.extend_from_slice(&encode_string(text));
    datastore::insert(NOTE, &row).map_err(|e| format!("insert: {:?}: {}", e.kind, e.message))?;
    Ok(id)
}

/// The honest reducer: inserts a note.
pub fn add_note(text: &str) -> Result<(), String> {
    insert_note(text).map(drop)
}

/// The honest procedure: inserts a note in a transaction of its own.
pub fn add_in_transaction(text: &str) -> String {
    if let Err(error) = transaction::begin() {
        return format!("begin: err({:?})", error.kind);
    }
    match insert_note(text) {
        Ok(id) => match transaction::commit() {
            Ok(()) => format!("added {id}"),
            Err(error) => format!("commit: err({:?})", error.kind),
        },
        Err(error) => error,
    }
}

/// Counts and inserts without opening a transaction.
pub fn touch_outside() -> String {
    let count = datastore::count(NOTE).map_err(|e| e.kind);
    let mut row = Vec::new();
    push_varint(&mut row, 1_000_000);
    row.extend_from_slice(&encode_string("outside"));
    let insert = datastore::insert(NOTE, &row).map_err(|e| e.kind);
    let scan = datastore::scan(NOTE).map(drop).map_err(|e| e.kind);
    format!("count: {count:?}; insert: {insert:?}; scan: {scan:?}")
}

/// Calls `transaction.begin` (and commit, rollback) from a reducer.
pub fn begin_in_reducer() -> String {
    let begin = transaction::begin().map_err(|e| e.kind);
    let commit = transaction::commit().map_err(|e| e.kind);
    let rollback = transaction::rollback().map_err(|e| e.kind);
    format!("begin: {begin:?}; commit: {commit:?}; rollback: {rollback:?}")
}

/// Breaks every rule of `transaction` in turn: commit and rollback with
/// nothing open, begin twice, `http.send` (to `url`) inside the transaction.
pub fn misuse(url: &str) -> String {
    let commit = transaction::commit().map_err(|e| e.kind);
    let rollback = transaction::rollback().map_err(|e| e.kind);
    let first = transaction::begin().map(drop).map_err(|e| e.kind);
    let second = transaction::begin().map(drop).map_err(|e| e.kind);
    let http = crate::network::fetch(url, 0);
    let end = transaction::rollback().map_err(|e| e.kind);
    format!(
        "commit: {commit:?}; rollback: {rollback:?}; begin: {first:?}; begin again: {second:?}; \
         http: {http}; rollback: {end:?}"
    )
}

/// Inserts a note (in a transaction of its own when `procedure`), then
/// exits the "process" through `wasi:cli/exit` with `code` (0 = success).
pub fn insert_then_exit(code: u32, procedure: bool) -> String {
    if procedure && let Err(error) = transaction::begin() {
        return format!("begin: err({:?})", error.kind);
    }
    if let Err(error) = insert_note("exiting") {
        return error;
    }
    std::process::exit(code as i32)
}

/// Opens a transaction, writes a note in it, and never ends it.
pub fn hold_open() -> String {
    if let Err(error) = transaction::begin() {
        return format!("begin: err({:?})", error.kind);
    }
    if let Err(error) = insert_note("held") {
        return error;
    }
    crate::limits::spin()
}
