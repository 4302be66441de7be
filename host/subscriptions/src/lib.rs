//! Worldline's subscription engine, sans-IO: SQL queries compiled against
//! a module's schema, their initial rows, and what each committed
//! transaction changes for them, computed from the transaction's delta
//! rather than by re-running the query. Identical queries are evaluated
//! once, however many clients subscribe to them. Queries are filed by the
//! constants their conditions compare (`col = k`, `col > a AND col <= b`,
//! on either side of a join), so a transaction checks only the queries its
//! changed rows can match, and initial rows are read through a datastore
//! index when a condition pins an indexed column.
//!
//! Supported: `SELECT * FROM t [WHERE ...]` with `=`, `<>`, `<`, `<=`, `>`,
//! `>=`, `AND`, `OR`, parentheses and literals of every primitive column type
//! (identities as `0x...` hex, `NULL` for optional columns); and
//! `SELECT t.* FROM t JOIN u ON t.a = u.b [WHERE ...]` where both join
//! columns have an index and each `AND`ed condition names one table. A join
//! yields a row of `t` once per matching row of `u`.
//!
//! Queries are bounded before they are parsed: at most [`MAX_QUERY_BYTES`] of
//! text, [`MAX_QUERY_TOKENS`] tokens and
//! [`MAX_NESTING_DEPTH`](worldline_datastore::MAX_NESTING_DEPTH) levels of
//! nesting, so that no query can exhaust the stack of the thread compiling or
//! evaluating it.
#![deny(missing_docs)]

mod access;
mod clauses;
mod constraint;
mod engine;
mod join;
mod predicate;
mod query_index;
mod sql;

pub use access::{ROW_WORK, WorkMeter};
pub use engine::{QueryId, QueryUpdate, SubscriptionEngine};
pub use join::{MIN_ROW_BYTES, RowsRefused, RowsTooLarge, row_cost};
pub use sql::{
    CompiledQuery, MAX_QUERY_BYTES, MAX_QUERY_TOKENS, QUOTED_QUERY_CHARS, QueryError, compile,
    query_excerpt,
};
