//! The database thread's part in scheduled reducers: it wakes when the
//! next scheduled row is due, runs the due rows (a bounded batch at a
//! time, between the commands it serves) and publishes their changes like
//! a reducer call's, released once durable.

use std::time::{Duration, Instant};

use worldline_host::{CallContext, MAX_SCHEDULED_RUNS, ScheduleClocks};

use super::{Actor, PENDING_BYTES, Queued};

/// The longest the thread sleeps on a schedule before looking again.
const MAX_TIMER: Duration = Duration::from_secs(3600);

/// How long the thread runs scheduled rows before it serves commands
/// again (at least one row runs, at most [`MAX_SCHEDULED_RUNS`]).
const MAX_SCHEDULE_BATCH: Duration = Duration::from_millis(20);

/// What woke the database's thread.
pub(super) enum Wake {
    /// A command, or `None` once every handle is gone.
    Command(Option<Queued>),
    /// Transactions became durable.
    Durable,
    /// A scheduled row is due.
    Schedule,
}

/// Sleeps for `wait`, or forever for `None`.
pub(super) async fn timer(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

impl Actor {
    /// How long until the next scheduled row is due (zero when one is
    /// overdue); `None` when none is, or the database stopped.
    pub(super) fn schedule_wait(&self) -> Option<Duration> {
        if self.stopped.is_some() {
            return None;
        }
        let clocks = ScheduleClocks::now();
        let at = self
            .database
            .next_scheduled_at(clocks)?
            .to_micros_since_epoch();
        let now = clocks.wall.to_micros_since_epoch();
        let micros = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
        Some(Duration::from_micros(micros).min(MAX_TIMER))
    }

    /// Runs a batch of the scheduled rows due now, queues their changes
    /// for the subscribers (sent once durable) and releases what is durable.
    pub(super) fn run_schedules(&mut self) {
        if self.stopped.is_some() || self.pending_bytes >= PENDING_BYTES {
            return;
        }
        let clocks = ScheduleClocks::now();
        if self
            .database
            .next_scheduled_at(clocks)
            .is_none_or(|at| at > clocks.wall)
        {
            return;
        }
        let now = self.database.now();
        let ctx = CallContext::new(self.database.owner());
        let started = Instant::now();
        for _ in 0..MAX_SCHEDULED_RUNS {
            if started.elapsed() >= MAX_SCHEDULE_BATCH || self.pending_bytes >= PENDING_BYTES {
                break;
            }
            let Some(run) = self.database.run_next_schedule(now, clocks) else {
                break;
            };
            if let Some(error) = &run.error {
                tracing::debug!("scheduled reducer {} failed: {error}", run.reducer);
            }
            if let Some(outcome) = &run.outcome {
                self.fan_out_reducer(&run.reducer, ctx, outcome);
            }
        }
        self.release();
    }
}
