//! The ticker example: a reducer that runs every second on its own.
//!
//! `init` inserts one row into `tick_schedule`, the schedule of the `tick`
//! reducer; the host runs `tick` with that row once a second, as the
//! database owner, and `tick` counts the runs in the public `counter`
//! table. Deleting the schedule row would stop it; a second row would run
//! beside it on its own rhythm.
//!
//! ```sh
//! worldline publish ticker --project-path guest-rust/examples/ticker
//! worldline sql ticker "SELECT * FROM counter"   # ticks goes up by one a second
//! worldline logs ticker                          # one line per tick
//! ```

use std::time::Duration;

use worldline::{ReducerContext, Table, Timestamp, log, reducer, table};

/// How often `tick` runs.
const EVERY: Duration = Duration::from_secs(1);

/// The schedule of `tick`: each row is one repeating run.
#[table(name = tick_schedule, scheduled(tick))]
pub struct TickSchedule {
    /// The schedule's id.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// When `tick` next runs with this row.
    #[schedule_at]
    pub at: Timestamp,
    /// How often, in microseconds.
    #[schedule_interval]
    pub every: u64,
}

/// How many times `tick` has run.
#[table(name = counter, public)]
pub struct Counter {
    /// Always 0: the table has one row.
    #[primary_key]
    pub id: u32,
    /// Runs so far.
    pub ticks: u64,
    /// When the last run happened.
    pub last_tick: Timestamp,
}

/// Starts the counter at zero and schedules the first tick a second from now.
#[reducer(init)]
pub fn init(ctx: &ReducerContext) {
    ctx.db.counter().insert(Counter {
        id: 0,
        ticks: 0,
        last_tick: ctx.timestamp,
    });
    ctx.db.tick_schedule().insert(TickSchedule {
        id: 0,
        at: ctx.timestamp + EVERY,
        every: worldline::micros(EVERY),
    });
}

/// Counts one tick. The host calls it with the schedule row that is due.
#[reducer]
pub fn tick(ctx: &ReducerContext, row: TickSchedule) {
    let ticks = match ctx.db.counter().id().find(&0) {
        Some(mut counter) => {
            counter.ticks += 1;
            counter.last_tick = ctx.timestamp;
            ctx.db.counter().id().update(counter).ticks
        }
        None => {
            ctx.db.counter().insert(Counter {
                id: 0,
                ticks: 1,
                last_tick: ctx.timestamp,
            });
            1
        }
    };
    let late = ctx.timestamp.duration_since(row.at).unwrap_or_default();
    log::info(format!(
        "tick {ticks} (schedule {}, {} µs after its time)",
        row.id,
        late.as_micros()
    ));
}
