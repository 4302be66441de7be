//! Cursors kept past their transaction: in a global across reducer calls,
//! and past a procedure's commit. The host must refuse to read through them.

use std::cell::RefCell;

use crate::bindings::worldline::module::datastore::{self, Cursor};
use crate::bindings::worldline::module::transaction;
use crate::describe::NOTE;

thread_local! {
    /// A cursor kept from one reducer call to the next.
    static STASH: RefCell<Option<Cursor>> = const { RefCell::new(None) };
}

/// Opens a scan of `note` and keeps it in a global.
pub fn stash() -> String {
    match datastore::scan(NOTE) {
        Ok(cursor) => {
            STASH.with(|stash| *stash.borrow_mut() = Some(cursor));
            "stashed".to_owned()
        }
        Err(error) => format!("scan: err({:?})", error.kind),
    }
}

/// Reads through the cursor a previous call kept.
pub fn use_stashed() -> String {
    match STASH.with(|stash| stash.borrow_mut().take()) {
        Some(cursor) => format!("next: {} rows", cursor.next(100).count),
        None => "nothing stashed".to_owned(),
    }
}

/// Opens a scan in a transaction, commits, and reads through the scan.
pub fn past_commit() -> String {
    if let Err(error) = transaction::begin() {
        return format!("begin: err({:?})", error.kind);
    }
    let cursor = match datastore::scan(NOTE) {
        Ok(cursor) => cursor,
        Err(error) => return format!("scan: err({:?})", error.kind),
    };
    if let Err(error) = transaction::commit() {
        return format!("commit: err({:?})", error.kind);
    }
    format!("next after commit: {} rows", cursor.next(100).count)
}
