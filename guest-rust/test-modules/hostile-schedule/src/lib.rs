//! A test module whose scheduled and lifecycle reducers misbehave on
//! purpose, for the tests of how the host runs them: a job traps, loops
//! past its deadline, fails every time, or schedules itself again; the
//! schedule is flooded with rows; `client_connected` and
//! `client_disconnected` do what the `hooks` row tells them. The host must
//! keep its CPU, memory and logs bounded and keep serving everyone else.

use std::time::Duration;

use worldline::{ReducerContext, Table, Timestamp, reducer, table};

/// What a job or a hook does when it runs.
const MODES: &str = "`ok`, `err`, `trap`, `spin`, `oom` (allocates until memory runs out), \
     `stack` (recurses until the stack runs out) or `again` (jobs only: schedules itself once \
     more, due at once)";

/// One scheduled run of `job`.
#[table(name = job, public, scheduled(run_job))]
pub struct Job {
    /// The job's id.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// When it is due.
    #[schedule_at]
    pub at: Timestamp,
    /// Repeat every so many microseconds; 0 runs once.
    #[schedule_interval]
    pub every: u64,
    /// What the run does: see [`MODES`].
    pub mode: String,
}

/// How many times jobs of each mode ran and committed.
#[table(name = ran, public)]
pub struct Ran {
    /// The mode.
    #[primary_key]
    pub mode: String,
    /// Committed runs.
    pub count: u64,
}

/// What the lifecycle reducers do (one row, id 0).
#[table(name = hooks, public)]
pub struct Hooks {
    /// Always 0.
    #[primary_key]
    pub id: u32,
    /// What `client_connected` does.
    pub connected: String,
    /// What `client_disconnected` does.
    pub disconnected: String,
}

/// Connections and disconnections the hooks let through.
#[table(name = visits, public)]
pub struct Visits {
    /// Always 0.
    #[primary_key]
    pub id: u32,
    /// Committed `client_connected` runs.
    pub connected: u64,
    /// Committed `client_disconnected` runs.
    pub disconnected: u64,
}

/// Does what `mode` says: returns, fails, traps or never returns.
fn act(mode: &str) -> Result<(), String> {
    match mode {
        "ok" | "again" => Ok(()),
        "err" => Err(format!("failed on purpose ({mode})")),
        "trap" => std::process::abort(),
        "oom" => {
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            loop {
                blocks.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        "stack" => Err(format!("{}", deep(0))),
        "spin" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        other => Err(format!("unknown mode `{other}`; one of {MODES}")),
    }
}

/// Recurses `n` deep with a frame of 1 KiB, so that the stack runs out.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let frame = std::hint::black_box([n as u8; 1024]);
    if n == u64::MAX {
        return 0;
    }
    deep(std::hint::black_box(n + 1)) + u64::from(frame[n as usize % 1024])
}

/// Counts a committed run of `mode`.
fn count(ctx: &ReducerContext, mode: &str) {
    let ran = ctx.db.ran();
    match ran.mode().find(&mode.to_owned()) {
        Some(row) => {
            ran.mode().update(Ran {
                count: row.count + 1,
                ..row
            });
        }
        None => {
            ran.insert(Ran {
                mode: mode.to_owned(),
                count: 1,
            });
        }
    }
}

/// The scheduled reducer: counts the run, then does what the row's mode says.
#[reducer]
pub fn run_job(ctx: &ReducerContext, job: Job) -> Result<(), String> {
    count(ctx, &job.mode);
    if job.mode == "again" {
        ctx.db.job().insert(Job {
            id: 0,
            at: ctx.timestamp,
            every: 0,
            mode: job.mode.clone(),
        });
    }
    act(&job.mode)
}

/// Inserts `rows` jobs of `mode`, due at `at` (microseconds since the
/// epoch), repeating every `every` microseconds.
#[reducer]
pub fn flood(ctx: &ReducerContext, rows: u32, at: i64, every: u64, mode: String) {
    for _ in 0..rows {
        ctx.db.job().insert(Job {
            id: 0,
            at: Timestamp::from_micros(at),
            every,
            mode: mode.clone(),
        });
    }
}

/// Schedules one job of `mode` `micros` from now, repeating every `every`.
#[reducer]
pub fn schedule_in(ctx: &ReducerContext, micros: u64, every: u64, mode: String) {
    ctx.db.job().insert(Job {
        id: 0,
        at: ctx.timestamp + Duration::from_micros(micros),
        every,
        mode,
    });
}

/// Deletes every job.
#[reducer]
pub fn clear_jobs(ctx: &ReducerContext) {
    let ids: Vec<u64> = ctx.db.job().iter().map(|job| job.id).collect();
    for id in ids {
        ctx.db.job().id().delete(&id);
    }
}

/// Sets what the lifecycle reducers do.
#[reducer]
pub fn set_hooks(ctx: &ReducerContext, connected: String, disconnected: String) {
    let hooks = Hooks {
        id: 0,
        connected,
        disconnected,
    };
    if ctx.db.hooks().id().find(&0).is_some() {
        ctx.db.hooks().id().update(hooks);
    } else {
        ctx.db.hooks().insert(hooks);
    }
}

/// The hook mode for a lifecycle reducer, `ok` until set.
fn hook(ctx: &ReducerContext, pick: fn(Hooks) -> String) -> String {
    ctx.db
        .hooks()
        .id()
        .find(&0)
        .map_or_else(|| "ok".to_owned(), pick)
}

/// Counts a committed lifecycle run.
fn visit(ctx: &ReducerContext, connected: u64, disconnected: u64) {
    let visits = ctx.db.visits();
    let row = visits.id().find(&0).unwrap_or(Visits {
        id: 0,
        connected: 0,
        disconnected: 0,
    });
    let row = Visits {
        connected: row.connected + connected,
        disconnected: row.disconnected + disconnected,
        ..row
    };
    if visits.id().find(&0).is_some() {
        visits.id().update(row);
    } else {
        visits.insert(row);
    }
}

/// Does what `hooks.connected` says.
#[reducer(client_connected)]
pub fn connected(ctx: &ReducerContext) -> Result<(), String> {
    visit(ctx, 1, 0);
    act(&hook(ctx, |h| h.connected))
}

/// Does what `hooks.disconnected` says.
#[reducer(client_disconnected)]
pub fn disconnected(ctx: &ReducerContext) -> Result<(), String> {
    visit(ctx, 0, 1);
    act(&hook(ctx, |h| h.disconnected))
}
