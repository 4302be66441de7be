//! A test module whose constructor (run at every instantiation, before
//! any export) traps on about half of them, by a coin toss from
//! `wasi:random`, after spinning for 50 ms: a database that replaces its
//! trapped instance fails as often as not, and slowly, and the host must
//! say so without writing a server-log line per attempt or spending its
//! time on attempts.

use std::time::Duration;

use worldline::{ReducerContext, Table, Timestamp, reducer, table};

/// The schedule of `run_tick`.
#[table(name = tick, public, scheduled(run_tick))]
pub struct Tick {
    /// Primary key.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// When it is due.
    #[schedule_at]
    pub at: Timestamp,
    /// Repeat interval in microseconds; 0 runs once.
    #[schedule_interval]
    pub every: u64,
}

/// One row per committed run of `run_tick`, keyed by the tick's id.
#[table(name = ticked, public)]
pub struct Ticked {
    /// The tick's id.
    #[primary_key]
    pub id: u64,
}

/// The scheduled reducer: records the run.
#[reducer]
pub fn run_tick(ctx: &ReducerContext, tick: Tick) {
    ctx.db.ticked().insert(Ticked { id: tick.id });
}

/// Schedules one run of `run_tick`, `micros` from now.
#[reducer]
pub fn schedule(ctx: &ReducerContext, micros: u64) {
    ctx.db.tick().insert(Tick {
        id: 0,
        at: ctx.timestamp + Duration::from_micros(micros),
        every: 0,
    });
}

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// The linker's constructor list: what the default `_initialize` runs.
    fn __wasm_call_ctors();
}

/// Runs the constructors, then spins for 50 ms and traps if a fair coin
/// says so.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    use std::hash::{BuildHasher, Hasher};
    // SAFETY: called once, at instantiation, as the default initialiser does.
    unsafe { __wasm_call_ctors() };
    // `RandomState` takes its keys from `wasi:random`.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    if hasher.finish() & 1 == 0 {
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {}
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
