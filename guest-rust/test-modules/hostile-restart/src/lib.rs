//! A test module whose constructor (run at every instantiation, before
//! any export) traps on about half of them, by a coin toss from
//! `wasi:random`: a database that replaces its trapped instance fails as
//! often as not, and the host must say so without writing a server-log
//! line per attempt.

use std::hash::{BuildHasher, Hasher};

use worldline::{ReducerContext, reducer};

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// The linker's constructor list: what the default `_initialize` runs.
    fn __wasm_call_ctors();
}

/// Runs the constructors, then traps if a fair coin says so.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    // SAFETY: called once, at instantiation, as the default initialiser does.
    unsafe { __wasm_call_ctors() };
    // `RandomState` takes its keys from `wasi:random`.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    if hasher.finish() & 1 == 0 {
        std::process::abort();
    }
}

/// Returns.
#[reducer]
pub fn ok(_ctx: &ReducerContext) {}

/// Traps.
#[reducer]
pub fn trap(_ctx: &ReducerContext) {
    std::process::abort();
}
