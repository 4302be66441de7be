//! Running the scheduled reducers whose rows are due (see `schedule-def`
//! in `wit/worldline.wit`).

use std::time::Instant;

use worldline_datastore::{Datastore, DbError};

use super::{Broken, CallContext, Database, ReducerOutcome, TxOrigin};
use crate::error::CallError;
use crate::identity::Timestamp;
use crate::log_throttle::held_back_note;
use crate::module_log::LogLevel;
use crate::scheduler::{ScheduleKey, ScheduleTable, ScheduledRow};

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

    /// When the earliest scheduled row is due, or `None` if no row is
    /// scheduled or the database is not taking calls (but for a module that
    /// could not be restarted after a trap: then no sooner than its next
    /// restart attempt, at most one a second). A time in the past
    /// means [`run_due_schedules`](Self::run_due_schedules) has work now.
    pub fn next_scheduled_at(&self) -> Option<Timestamp> {
        match &self.broken {
            None => self.scheduler.next_due(),
            // A module that could not be restarted after a trap is tried
            // again for its due rows, at most once a second: its schedules
            // must not wait for a client's call to bring it back.
            Some(Broken::Module(_)) => self.scheduler.next_due().map(|at| {
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
        std::iter::from_fn(|| self.run_next_schedule(now))
            .take(MAX_SCHEDULED_RUNS)
            .collect()
    }

    /// Runs the earliest row due at `now`, as
    /// [`run_due_schedules`](Self::run_due_schedules) runs each; `None`
    /// when no row is due (or the database is not taking calls). A module
    /// that could not be restarted after a trap is restarted first, when a
    /// row is due and its last attempt is a second old. For a
    /// caller that bounds its batches itself (in time, say).
    pub fn run_next_schedule(&mut self, now: Timestamp) -> Option<ScheduledRun> {
        if matches!(self.broken, Some(Broken::Module(_)))
            && now.to_micros_since_epoch() >= self.restart_retry_at
            && self.scheduler.next_due().is_some_and(|at| at <= now)
        {
            self.rebuild_instance();
        }
        while self.broken.is_none() {
            let key = self.scheduler.due(now, 1).pop()?;
            match self.run_scheduled(&key, now) {
                Some(run) => return Some(run),
                // Cannot happen while the queue is exact; never spin on it.
                None => self.scheduler.forget(&key),
            }
        }
        None
    }

    /// Runs one due row; `None` if it is gone or no longer due.
    fn run_scheduled(&mut self, key: &ScheduleKey, now: Timestamp) -> Option<ScheduledRun> {
        let table = self.scheduler.table(key.table)?.clone();
        let found = self
            .datastore()
            .find(table.table, table.primary_key, &key.key);
        let bytes = found.ok().flatten()?;
        let row = table.read(&bytes)?;
        if row.at > now.to_micros_since_epoch() {
            return None;
        }
        let reducer = self.schema.reducers.get(table.reducer)?.name.clone();
        let ctx = CallContext {
            caller: self.owner,
            connection_id: None,
            timestamp: Some(now),
        };
        let mut unmoved = None;
        let ran = self.run_then(table.reducer, &bytes, ctx, |datastore| {
            unmoved = take_off(datastore, &table, &bytes, &row, now)?;
            Ok(())
        });
        match ran {
            Ok(outcome) => {
                if let Some(reason) = unmoved {
                    self.log_unmoved(&table, &row, &reducer, &reason);
                }
                Some(ScheduledRun {
                    reducer,
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
                            row.describe_key(&table),
                            held_back_note(held_back, "failed scheduled runs")
                        ),
                    );
                }
                let outcome = self.take_off_alone(&table, &bytes, &row, &reducer, now, ctx);
                if outcome.is_none() && self.broken.is_none() {
                    // The row could not be taken off: do not run it again
                    // and again (it comes back when written, or at restart).
                    self.scheduler.forget(key);
                }
                Some(ScheduledRun {
                    reducer,
                    outcome,
                    error: Some(error),
                })
            }
        }
    }

    /// After a failed run: takes the row off the schedule in a transaction
    /// of its own, so that a failing row does not run again at once.
    fn take_off_alone(
        &mut self,
        table: &ScheduleTable,
        bytes: &[u8],
        row: &ScheduledRow,
        reducer: &str,
        now: Timestamp,
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
            .and_then(|()| take_off(datastore, table, bytes, row, now));
        match taken {
            Ok(None) => {}
            Ok(Some(reason)) => self.log_unmoved(table, row, reducer, &reason),
            Err(e) => {
                datastore.rollback();
                tracing::error!("could not take a failed scheduled row off its schedule: {e}");
                return None;
            }
        }
        let origin = TxOrigin::Reducer(table.reducer);
        match self.commit_open(origin, ctx.caller, now, started) {
            Ok(outcome) => Some(outcome),
            Err(e) => {
                tracing::error!("could not take a failed scheduled row off its schedule: {e}");
                None
            }
        }
    }
}

/// In the open transaction: deletes the run row or moves its time on,
/// unless the transaction already deleted or changed it. A row that cannot
/// be moved (its new time would break a unique index) is deleted instead,
/// and the reason returned.
fn take_off(
    datastore: &mut Datastore,
    table: &ScheduleTable,
    bytes: &[u8],
    row: &ScheduledRow,
    now: Timestamp,
) -> Result<Option<DbError>, DbError> {
    let current = datastore.find(table.table, table.primary_key, &row.key)?;
    if current.as_deref() != Some(bytes) {
        return Ok(None);
    }
    let unmoved = match table.moved(row, now) {
        // A refused update changes nothing.
        Some(moved) => match datastore.update(table.table, table.primary_key, &moved) {
            Ok(_) => return Ok(None),
            Err(e) => Some(e),
        },
        None => None,
    };
    datastore.delete(table.table, table.primary_key, &row.key)?;
    Ok(unmoved)
}
