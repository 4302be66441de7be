//! The `hostile-schedule` test module's tables, with `job` no longer the
//! schedule of a reducer and no reducers at all: swapping it in stops the
//! schedule and keeps every row, and swapping `hostile-schedule` back in
//! starts it again.

use worldline::{Timestamp, table};

/// Once the schedule of `run_job`; now a plain table.
#[table(name = job, public)]
pub struct Job {
    /// The job's id.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// When it was due.
    pub at: Timestamp,
    /// Its repeat interval in microseconds.
    pub every: u64,
    /// What its run did.
    pub mode: String,
}

/// As in `hostile-schedule`.
#[table(name = ran, public)]
pub struct Ran {
    /// The mode.
    #[primary_key]
    pub mode: String,
    /// Committed runs.
    pub count: u64,
}

/// As in `hostile-schedule`.
#[table(name = hooks, public)]
pub struct Hooks {
    /// Always 0.
    #[primary_key]
    pub id: u32,
    /// What `client_connected` did.
    pub connected: String,
    /// What `client_disconnected` did.
    pub disconnected: String,
}

/// As in `hostile-schedule`.
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
