//! Compile-time checks behind `#[table(scheduled(reducer))]`: the macro
//! cannot see types, so it asks the compiler through these.

use crate::context::ReducerContext;
use crate::registry::IntoReducerResult;
use crate::types::Timestamp;

/// The types a `#[schedule_at]` column may have.
#[diagnostic::on_unimplemented(
    message = "a #[schedule_at] column must be a `worldline::Timestamp`, not `{Self}`"
)]
pub trait ScheduleAtColumn {}

impl ScheduleAtColumn for Timestamp {}

/// The types a `#[schedule_interval]` column may have.
#[diagnostic::on_unimplemented(
    message = "a #[schedule_interval] column must be a `u64` (microseconds), not `{Self}`"
)]
pub trait ScheduleIntervalColumn {}

impl ScheduleIntervalColumn for u64 {}

/// Compiles only if `T` may be a `#[schedule_at]` column.
pub const fn schedule_at_column<T: ScheduleAtColumn>() {}

/// Compiles only if `T` may be a `#[schedule_interval]` column.
pub const fn schedule_interval_column<T: ScheduleIntervalColumn>() {}

/// Compiles only if `reducer` takes the context and one `Row`, as a
/// scheduled reducer must.
pub const fn scheduled_reducer<Row, R: IntoReducerResult>(_reducer: fn(&ReducerContext, Row) -> R) {
}
