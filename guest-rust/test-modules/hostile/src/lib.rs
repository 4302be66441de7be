//! A test module that misbehaves on purpose, for the tests of the host's
//! limits: it logs huge lines, opens cursors and WASI streams and never
//! drops them, loops
//! forever and writes oversized transactions. Every reducer is something
//! an honest module would not do; the host must survive each, say which
//! limit was hit, and keep serving.

use worldline::{ReducerContext, Table, reducer, table};

/// Rows to scan and to write.
#[table(name = blob, public)]
pub struct Blob {
    /// Primary key.
    #[primary_key]
    pub id: u32,
    /// Payload.
    pub data: Vec<u8>,
}

/// A row of a kind; every row of a kind joins every other on `kind`.
#[table(name = tag, public)]
pub struct Tag {
    /// Primary key.
    #[primary_key]
    pub id: u32,
    /// The kind.
    #[index(btree)]
    pub kind: u32,
}

/// Inserts `count` tags of `kind`, with ids from `first` on: one
/// transaction that changes a join of `tag` with itself on `kind` by
/// `count` squared rows.
#[reducer]
pub fn tag_rows(ctx: &ReducerContext, first: u32, count: u32, kind: u32) {
    for i in 0..count {
        ctx.db.tag().insert(Tag {
            id: first + i,
            kind,
        });
    }
}

/// Inserts `count` small rows, so that scans have something to return.
#[reducer]
pub fn seed(ctx: &ReducerContext, count: u32) {
    for id in 0..count {
        ctx.db.blob().insert(Blob { id, data: vec![1] });
    }
}

/// Logs `lines` lines of `bytes` bytes each.
#[reducer]
pub fn log_lines(_ctx: &ReducerContext, lines: u32, bytes: u32) {
    let line = "x".repeat(bytes as usize);
    for _ in 0..lines {
        worldline::log::info(&line);
    }
}

/// Opens `count` scans of `blob` and never drops them.
#[reducer]
pub fn leak_cursors(ctx: &ReducerContext, count: u32) {
    for _ in 0..count {
        std::mem::forget(ctx.db.blob().iter());
    }
}

/// Counts the rows of `blob` by scanning it, and logs the count.
#[reducer]
pub fn scan_count(ctx: &ReducerContext) {
    let rows = ctx.db.blob().iter().count();
    worldline::log::info(format!("scanned {rows} rows"));
}

/// Never returns.
#[reducer]
pub fn spin(_ctx: &ReducerContext) {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Inserts `count` rows of `bytes` bytes each, with ids from `first` on.
#[reducer]
pub fn write_rows(ctx: &ReducerContext, first: u32, count: u32, bytes: u32) {
    for i in 0..count {
        ctx.db.blob().insert(Blob {
            id: first + i,
            data: vec![7; bytes as usize],
        });
    }
}

/// Fails with a reason of `bytes` bytes.
#[reducer]
pub fn fail_long(_ctx: &ReducerContext, bytes: u32) -> Result<(), String> {
    Err("e".repeat(bytes as usize))
}

/// Logs why (if `log`), then traps without panicking (as a module not
/// built with the SDK's panic reporting would).
#[reducer]
pub fn log_then_trap(_ctx: &ReducerContext, log: bool) {
    if log {
        worldline::log::error("invariant broken: the ledger does not balance");
    }
    std::process::abort();
}

/// Prints why on stderr, then traps without panicking (as a module in
/// another language would).
#[reducer]
pub fn print_then_trap(_ctx: &ReducerContext) {
    eprintln!("fatal: the ledger does not balance");
    std::process::abort();
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wasi:cli/stderr@0.2.0")]
unsafe extern "C" {
    /// `wasi:cli/stderr.get-stderr`: a new handle to an output stream,
    /// owned by the caller (the module must drop it).
    #[link_name = "get-stderr"]
    fn get_stderr() -> i32;
}

/// Outside wasm (the workspace's native test build) there is no WASI to leak.
#[cfg(not(target_arch = "wasm32"))]
unsafe fn get_stderr() -> i32 {
    unreachable!("this module only runs as a wasm component")
}

/// Opens `count` WASI output streams (stderr) and never drops them.
#[reducer]
pub fn leak_streams(_ctx: &ReducerContext, count: u32) {
    for _ in 0..count {
        // SAFETY: `get-stderr` takes nothing and returns a handle the module owns.
        std::hint::black_box(unsafe { get_stderr() });
    }
}
