//! Running the scheduled reducers whose rows are due (see `schedule-def`
//! in `wit/worldline.wit`).

use std::time::Instant;

use worldline_datastore::{Datastore, DbError};

use super::{Broken, CallContext, Database, ReducerOutcome, TxOrigin};
use crate::error::CallError;
use crate::identity::Timestamp;
use crate::log_throttle::held_back_note;
use crate::module_log::LogLevel;
use crate::scheduler::{ScheduleClocks, ScheduleKey, ScheduleTable, ScheduledRow};

/// The most scheduled runs one [`Database::run_due_schedules`] makes, so
/// that a schedule repeating every microsecond cannot starve the calls
/// waiting for the database's thread.
pub const MAX_SCHEDULED_RUNS: usize = 64;

/// One run of a scheduled reducer.
#[derive(Debug)]
pub struct ScheduledRun {
    /// The scheduled reducer's name.
    pub reducer: String,
    /// The transaction that committed: the reducer's own, which also took
    /// the row off the schedule; or, when the reducer failed, the one that
    /// only took the row off. Publish its changes and release what waits
    /// on it once its offset is durable, like a reducer call's. `None` if
    /// nothing committed (the database stopped taking calls).
    pub outcome: Option<ReducerOutcome>,
    /// Why the reducer failed, if it did (also written to the module log).
    pub error: Option<CallError>,
}

impl Database {
    /// Writes to the module log that a repeating row was deleted because
    /// its time could not be moved.
    fn log_unmoved(&self, table: &ScheduleTable, row: &ScheduledRow, reducer: &str, why: &DbError) {
        let table_name = &self.schema.tables[table.table].name;
        self.log().push(
            LogLevel::Error,
            format!(
                "row {} of `{table_name}` (scheduling `{reducer}`) could not be moved to its next \
                 time and was deleted: {why}",
                row.describe_key(table)
            ),
        );
    }

    /// The wall-clock time at which the earliest scheduled row is due when
    /// the clocks read `now` (its own time, or one interval after its last
    /// run on the steady clock: see [`ScheduleClocks`]), or `None` if no row
    /// is scheduled or the database is not taking calls (but for a module
    /// that could not be restarted after a trap: then no sooner than its
    /// next restart attempt, at most one a second). A time not later than
    /// `now.wall` means [`run_next_schedule`](Self::run_next_schedule) has
    /// work now.
    pub fn next_scheduled_at(&self, now: ScheduleClocks) -> Option<Timestamp> {
        match &self.broken {
            None => self.scheduler.next_due(now),
            // A module that could not be restarted after a trap is tried
            // again for its due rows, at most once a second: its schedules
            // must not wait for a client's call to bring it back.
            Some(Broken::Module(_)) => self.scheduler.next_due(now).map(|at| {
                Timestamp::from_micros_since_epoch(
                    at.to_micros_since_epoch().max(self.restart_retry_at),
                )
            }),
            Some(_) => None,
        }
    }

    /// Runs the scheduled rows due at `now`, earliest first, at most
    /// [`MAX_SCHEDULED_RUNS`] of them (call again, after serving other
    /// work, while [`next_scheduled_at`](Self::next_scheduled_at) is not
    /// later than now). Each run is one transaction, as the owner, with no
    /// connection and timestamp `now`: the reducer gets the row, and the
    /// row is then deleted (run once) or its time moved to the first
    /// `at + k * interval` later than `now`, unless the reducer deleted or
    /// changed it itself. If the reducer fails, its writes roll back, the
    /// row is taken off the schedule in a transaction of its own, and the
    /// failure goes to the module log (a burst of 10 such lines, then at
    /// most one a second, counting the rest). Returns once the transactions
    /// are committed in memory: wait for their offsets to be durable (see
    /// [`call_reducer_nowait`](Self::call_reducer_nowait)).
    pub fn run_due_schedules(&mut self, now: Timestamp) -> Vec<ScheduledRun> {
        std::iter::from_fn(|| self.run_next_schedule(now, ScheduleClocks::same(now)))
            .take(MAX_SCHEDULED_RUNS)
            .collect()
    }

    /// Runs the earliest row due when the clocks read `clocks`, as
    /// [`run_due_schedules`](Self::run_due_schedules) runs each, in a
    /// transaction of timestamp `now` (the database's [`now`](Self::now),
    /// which never goes back); `None` when no row is due (or the database
    /// is not taking calls). A repeating row's next time is written from
    /// the wall clock. A module that could not be restarted after a trap is
    /// restarted first, when a row is due and its last attempt is a second
    /// old. For a caller that bounds its batches itself (in time, say).
    pub fn run_next_schedule(
        &mut self,
        now: Timestamp,
        clocks: ScheduleClocks,
    ) -> Option<ScheduledRun> {
        if matches!(self.broken, Some(Broken::Module(_)))
            && clocks.wall.to_micros_since_epoch() >= self.restart_retry_at
            && !self.scheduler.due(clocks, 1).is_empty()
        {
            self.rebuild_instance();
        }
        while self.broken.is_none() {
            let key = self.scheduler.due(clocks, 1).pop()?;
            match self.run_scheduled(&key, now, clocks) {
                Some(run) => return Some(run),
                // Cannot happen while the queue is exact; never spin on it.
                None => self.scheduler.forget(&key),
            }
        }
        None
    }

    /// Runs one due row; `None` if it is gone or no longer due.
    fn run_scheduled(
        &mut self,
        key: &ScheduleKey,
        now: Timestamp,
        clocks: ScheduleClocks,
    ) -> Option<ScheduledRun> {
        let table = self.scheduler.table(key.table)?.clone();
        let found = self
            .datastore()
            .find(table.table, table.primary_key, &key.key);
        let bytes = found.ok().flatten()?;
        let row = table.read(&bytes)?;
        if !self.scheduler.is_due(key, clocks) {
            return None;
        }
        let due = DueRow {
            key: key.clone(),
            reducer: self.schema.reducers.get(table.reducer)?.name.clone(),
            table,
            bytes,
            row,
        };
        let ctx = CallContext {
            caller: self.owner,
            connection_id: None,
            timestamp: Some(now),
        };
        let mut taken = TakenOff::LeftAlone;
        let ran = self.run_then(due.table.reducer, &due.bytes, ctx, |datastore| {
            taken = take_off(datastore, &due, clocks.wall)?;
            Ok(())
        });
        let DueRow {
            ref table,
            ref row,
            ref reducer,
            ..
        } = due;
        match ran {
            Ok(outcome) => {
                self.after_take_off(&due, taken, clocks);
                Some(ScheduledRun {
                    reducer: due.reducer,
                    outcome: Some(outcome),
                    error: None,
                })
            }
            Err(error) => {
                if let Some(held_back) = self.schedule_failures.admit(now) {
                    let table_name = &self.schema.tables[table.table].name;
                    self.log().push(
                        LogLevel::Error,
                        format!(
                            "scheduled reducer `{reducer}` failed for row {} of `{table_name}`: \
                             {error}{}",
                            row.describe_key(table),
                            held_back_note(held_back, "failed scheduled runs")
                        ),
                    );
                }
                let outcome = self.take_off_alone(&due, clocks, ctx);
                if outcome.is_none() && self.broken.is_none() {
                    // The row could not be taken off: do not run it again
                    // and again (it comes back when written, or at restart).
                    self.scheduler.forget(key);
                }
                Some(ScheduledRun {
                    reducer: due.reducer,
                    outcome,
                    error: Some(error),
                })
            }
        }
    }

    /// Once what [`take_off`] did has committed: a moved row keeps its
    /// rhythm on the steady clock; one that could not be moved is logged.
    fn after_take_off(&mut self, due: &DueRow, taken: TakenOff, clocks: ScheduleClocks) {
        match taken {
            TakenOff::Moved => self
                .scheduler
                .keep_rhythm(&due.key, clocks, due.row.interval),
            TakenOff::Unmoved(reason) => {
                self.log_unmoved(&due.table, &due.row, &due.reducer, &reason)
            }
            TakenOff::LeftAlone | TakenOff::Deleted => {}
        }
    }

    /// After a failed run: takes the row off the schedule in a transaction
    /// of its own, so that a failing row does not run again at once.
    fn take_off_alone(
        &mut self,
        due: &DueRow,
        clocks: ScheduleClocks,
        ctx: CallContext,
    ) -> Option<ReducerOutcome> {
        if self.broken.is_some() {
            return None;
        }
        let started = Instant::now();
        let datastore = &mut self.instance.store.data_mut().datastore;
        if datastore.in_transaction() {
            datastore.rollback();
        }
        let taken = datastore
            .begin()
            .and_then(|()| take_off(datastore, due, clocks.wall));
        let taken = match taken {
            Ok(taken) => taken,
            Err(e) => {
                datastore.rollback();
                tracing::error!("could not take a failed scheduled row off its schedule: {e}");
                return None;
            }
        };
        let origin = TxOrigin::Reducer(due.table.reducer);
        let now = ctx.timestamp.unwrap_or_else(|| self.now());
        match self.commit_open(origin, ctx.caller, now, started) {
            Ok(outcome) => {
                self.after_take_off(due, taken, clocks);
                Some(outcome)
            }
            Err(e) => {
                tracing::error!("could not take a failed scheduled row off its schedule: {e}");
                None
            }
        }
    }
}

/// A schedule row found due, read for its run.
struct DueRow {
    key: ScheduleKey,
    table: ScheduleTable,
    /// The row as stored.
    bytes: std::sync::Arc<[u8]>,
    row: ScheduledRow,
    /// The scheduled reducer's name.
    reducer: String,
}

/// What [`take_off`] did with the row that ran.
enum TakenOff {
    /// Nothing: the transaction had already deleted or changed it.
    LeftAlone,
    /// Deleted: it ran once.
    Deleted,
    /// Moved on to its next time.
    Moved,
    /// Deleted because its next time could not be written (it would
    /// break a unique index).
    Unmoved(DbError),
}

/// In the open transaction: deletes the run row or moves its time on (from
/// the wall clock's `now`), unless the transaction already deleted or
/// changed it. A row that cannot be moved is deleted instead.
fn take_off(datastore: &mut Datastore, due: &DueRow, now: Timestamp) -> Result<TakenOff, DbError> {
    let DueRow {
        table, bytes, row, ..
    } = due;
    let current = datastore.find(table.table, table.primary_key, &row.key)?;
    if current.as_deref() != Some(&**bytes) {
        return Ok(TakenOff::LeftAlone);
    }
    let taken = match table.moved(row, now) {
        // A refused update changes nothing.
        Some(moved) => match datastore.update(table.table, table.primary_key, &moved) {
            Ok(_) => return Ok(TakenOff::Moved),
            Err(e) => TakenOff::Unmoved(e),
        },
        None => TakenOff::Deleted,
    };
    datastore.delete(table.table, table.primary_key, &row.key)?;
    Ok(taken)
}
