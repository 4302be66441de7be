//! Attempts on the host's limits: time, memory, the size of one host call,
//! and the resources one instance may hold.

use crate::args::push_varint;
use crate::bindings::worldline::module::{datastore, log};
use crate::describe::NOTE;

/// Never returns.
pub fn spin() -> String {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Blocks in one host call (a WASI pollable) for `ms` milliseconds, where
/// no wasm code runs to notice a deadline.
pub fn sleep(ms: u32) -> String {
    let nanos = u64::from(ms) * 1_000_000;
    wasip2::clocks::monotonic_clock::subscribe_duration(nanos).block();
    format!("slept {ms} ms")
}

/// Recurses until the stack runs out (through a function pointer the
/// compiler cannot see through, so that it cannot become a loop).
pub fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let frame = std::hint::black_box([depth; 64]);
    let next: fn(u64) -> u64 = std::hint::black_box(recurse);
    next(depth + 1).wrapping_add(frame[(depth % 64) as usize])
}

/// Allocates (and touches) 1 MiB after 1 MiB, keeping all of it, forever.
pub fn grow() -> String {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(std::hint::black_box(vec![1u8; 1 << 20]));
    }
}

/// One `note` row whose text is `mib` MiB, postcard-encoded.
fn huge_row(mib: u32) -> Vec<u8> {
    let len = (mib as usize) << 20;
    let mut row = Vec::with_capacity(len + 16);
    push_varint(&mut row, u64::from(u32::MAX));
    push_varint(&mut row, len as u64);
    row.resize(row.len() + len, b'x');
    row
}

/// Inserts a row of `mib` MiB in one host call.
pub fn huge_insert(mib: u32) -> String {
    match datastore::insert(NOTE, &huge_row(mib)) {
        Ok(stored) => format!("insert: ok({} bytes)", stored.len()),
        Err(error) => format!("insert: err({:?}: {})", error.kind, error.message),
    }
}

/// Logs one message of `mib` MiB in one host call.
pub fn huge_log(mib: u32) -> String {
    let message = "y".repeat((mib as usize) << 20);
    log::write(log::Level::Info, &message);
    "log: returned".to_owned()
}

/// Opens cursors on `note`, keeping each, until the host refuses.
pub fn many_cursors() -> String {
    let mut open = Vec::new();
    loop {
        match datastore::scan(NOTE) {
            Ok(cursor) => open.push(cursor),
            Err(error) => {
                return format!(
                    "cursors: {} open, then err({:?}: {})",
                    open.len(),
                    error.kind,
                    error.message
                );
            }
        }
    }
}

/// Opens WASI output streams, keeping each, until the host refuses.
pub fn many_streams() -> String {
    let mut open = Vec::new();
    loop {
        open.push(wasip2::cli::stdout::get_stdout());
        if open.len() > 1 << 20 {
            return format!("streams: {} open and never refused", open.len());
        }
    }
}
