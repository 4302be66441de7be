//! A scheduled reducer for the end-to-end tests of schedules: each run of
//! a `features_schedule` row leaves a row in `schedule_runs`.

use std::time::Duration;

use worldline::{ReducerContext, Table, Timestamp, reducer, table};

/// When to run `on_schedule`, and how often.
#[table(name = features_schedule, public, scheduled(on_schedule))]
pub struct FeaturesSchedule {
    /// The schedule's id.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// When the row is next due.
    #[schedule_at]
    pub at: Timestamp,
    /// Repeat every so many microseconds; 0 runs once.
    #[schedule_interval]
    pub every: u64,
    /// Copied into each run; `fail` makes the run fail after writing.
    pub note: String,
}

/// One run of `on_schedule`.
#[table(name = schedule_runs, public)]
pub struct ScheduleRun {
    /// The run's id, in order of runs.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// The schedule row's note.
    pub note: String,
    /// The run's transaction timestamp.
    pub ran_at: Timestamp,
}

/// Records the run; a row whose note is `fail` fails after writing, so its
/// run rolls back (and the row is taken off the schedule all the same).
#[reducer]
pub fn on_schedule(ctx: &ReducerContext, row: FeaturesSchedule) -> Result<(), String> {
    ctx.db.schedule_runs().insert(ScheduleRun {
        id: 0,
        note: row.note.clone(),
        ran_at: ctx.timestamp,
    });
    if row.note == "fail" {
        return Err(format!("schedule {} failed on purpose", row.id));
    }
    Ok(())
}

/// Schedules `on_schedule` `micros` microseconds from now, repeating every
/// `every` microseconds (0 = once). The first row gets id 1.
#[reducer]
pub fn schedule_in(ctx: &ReducerContext, micros: u64, every: u64, note: String) {
    ctx.db.features_schedule().insert(FeaturesSchedule {
        id: 0,
        at: ctx.timestamp + Duration::from_micros(micros),
        every,
        note,
    });
}

/// Cancels schedule `id`.
#[reducer]
pub fn unschedule(ctx: &ReducerContext, id: u64) -> Result<(), String> {
    if ctx.db.features_schedule().id().delete(&id) {
        Ok(())
    } else {
        Err(format!("no schedule {id}"))
    }
}
