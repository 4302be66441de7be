//! Joins: their rows in the committed state, and how a transaction changes them.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use worldline_datastore::{Datastore, Row, Value};

use crate::access::{
    Decoded, ROW_WORK, WorkMeter, each_lookup, each_matching, holds, reads_through_index, row_work,
};
use crate::sql::{CompiledQuery, Join};

/// The rows of a join in the committed state: a row of the query's table
/// once per matching row of the joined table. Read from whichever side's
/// condition pins an indexed column (the query's table first), else by
/// scanning the query's table.
///
/// A join's result can be the product of its tables' sizes; `budget` stops
/// it early (see [`Budget`]), as `meter` does (each row examined on either
/// side counts: the rows read before it ran out, if it did).
pub(crate) fn join_rows(
    query: &CompiledQuery,
    join: &Join,
    datastore: &Datastore,
    meter: &WorkMeter,
    budget: &mut Budget,
) -> Result<Vec<Row>, RowsTooLarge> {
    let tables = datastore.tables();
    let (Some(schema), Some(other)) = (tables.get(query.table), tables.get(join.other)) else {
        return Ok(Vec::new());
    };
    let from_joined = !reads_through_index(schema, &query.predicate)
        && reads_through_index(other, &join.other_predicate);
    let mut rows = Vec::new();
    let read = if from_joined {
        let work = row_work(&query.predicate);
        each_matching(
            datastore,
            join.other,
            &join.other_predicate,
            meter,
            |_, partner| {
                let Some(value) = partner.get(join.other_column) else {
                    return ControlFlow::Continue(());
                };
                each_lookup(
                    datastore,
                    query.table,
                    join.index,
                    value,
                    |bytes, values| {
                        if !meter.charge(work) {
                            // Stops the read; the meter says why.
                            return ControlFlow::Break(RowsTooLarge { limit: 0 });
                        }
                        if holds(&query.predicate, &values) {
                            budget.take(bytes, 1)?;
                            rows.push(Row::from(bytes));
                        }
                        ControlFlow::Continue(())
                    },
                )
            },
        )
    } else {
        each_matching(
            datastore,
            query.table,
            &query.predicate,
            meter,
            |bytes, values| {
                let copies = values
                    .get(join.column)
                    .map_or(0, |value| partners_in_store(join, value, datastore));
                let partners_work = u64::try_from(copies).unwrap_or(u64::MAX);
                if !meter.charge(partners_work.saturating_mul(ROW_WORK)) {
                    // Stops the read; the meter says why.
                    return ControlFlow::Break(RowsTooLarge { limit: 0 });
                }
                budget.take(bytes, copies)?;
                if copies > 0 {
                    rows.extend(std::iter::repeat_n(Row::from(bytes), copies));
                }
                ControlFlow::Continue(())
            },
        )
    };
    // A read the meter stopped breaks too: the caller asks the meter first.
    match read {
        ControlFlow::Continue(()) => Ok(rows),
        ControlFlow::Break(too_large) => Err(too_large),
    }
}

/// The least one row counts for in a [`Budget`], whatever its length:
/// about what the server holds for each row of a result while it gathers
/// and sends it (its place in the list, its copy, its length prefix). With
/// rows counted by their bytes alone, a join of rows of a few bytes each
/// (a table joined with itself on a column its rows share) made the
/// server hold some fifty times the limit.
pub const MIN_ROW_BYTES: usize = 32;

/// What one row of `len` bytes counts for in a [`Budget`]: its bytes and
/// one more (the least a length prefix takes on the wire), and at least
/// [`MIN_ROW_BYTES`].
pub fn row_cost(len: usize) -> usize {
    (len + 1).max(MIN_ROW_BYTES)
}

/// How many bytes of rows a reader still takes, each row counting its
/// [`row_cost`]: so rows refused by the budget would not fit a message of
/// that many bytes, and the rows taken are bounded in memory.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    taken: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, taken: 0 }
    }

    /// Takes `copies` copies of `row` from the budget, or says it ran out
    /// (as a `ControlFlow`, for the readers' `?`).
    pub(crate) fn take(&mut self, row: &[u8], copies: usize) -> ControlFlow<RowsTooLarge> {
        let bytes = row_cost(row.len()).saturating_mul(copies);
        self.taken = self.taken.saturating_add(bytes);
        if self.taken > self.limit {
            return ControlFlow::Break(RowsTooLarge { limit: self.limit });
        }
        ControlFlow::Continue(())
    }
}

/// The rows a query matches, or a transaction's change to them, take more
/// than the bytes the caller allowed
/// ([`SubscriptionEngine::initial_rows_within`](crate::SubscriptionEngine::initial_rows_within),
/// [`SubscriptionEngine::evaluate_within`](crate::SubscriptionEngine::evaluate_within)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rows take more than {limit} bytes")]
pub struct RowsTooLarge {
    /// The bytes allowed (each row counting its [`row_cost`]).
    pub limit: usize,
}

/// Why a query's initial rows were not read
/// ([`SubscriptionEngine::initial_rows_within`](crate::SubscriptionEngine::initial_rows_within)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RowsRefused {
    /// They take more bytes than allowed.
    #[error(transparent)]
    TooLarge(#[from] RowsTooLarge),
    /// Reading them examines more rows than its [`WorkMeter`] allowed.
    #[error("reading the rows takes more work than allowed")]
    TooMuchWork,
}

/// How many rows of the joined table in the committed state match a row
/// of the query's table whose join column holds `value`.
fn partners_in_store(join: &Join, value: &Value, datastore: &Datastore) -> usize {
    let mut count = 0;
    let _ = each_lookup(
        datastore,
        join.other,
        join.other_index,
        value,
        |_, values| -> ControlFlow<()> {
            count += usize::from(holds(&join.other_predicate, &values));
            ControlFlow::Continue(())
        },
    );
    count
}

/// Rows a transaction inserted into and deleted from one table (those that
/// may matter to a query; rows left out must not satisfy its condition).
#[derive(Debug, Default)]
pub(crate) struct Changes<'a> {
    pub(crate) inserts: Vec<&'a Decoded>,
    pub(crate) deletes: Vec<&'a Decoded>,
}

/// The change of a join's result, as each changed row with how many copies
/// of it the result gained (positive) or lost (negative), from the changes
/// to its table (`main`) and to the joined table (`joined`). With L, R the
/// tables before, L', R' after, and + / - the inserted and deleted rows:
/// `out(L', R') - out(L, R) = out(L+ - L-, R') + out(L', R+ - R-) - out(L+ - L-, R+ - R-)`,
/// every term computable from the committed state and the delta.
///
/// The result of a join can change by the product of the changes' sizes
/// and the tables' (rows inserted under a key many rows share): `budget`
/// bounds the copies returned, and the rows gathered on the way, so the
/// change costs no more than the limit to compute whatever its size.
pub(crate) fn join_change(
    query: &CompiledQuery,
    join: &Join,
    main: &Changes,
    joined: &Changes,
    datastore: &Datastore,
    budget: &mut Budget,
) -> Result<Vec<(Row, i64)>, RowsTooLarge> {
    // R+ - R-: the joined rows gained under each join key, less those lost.
    let mut joined_net: BTreeMap<&Value, i64> = BTreeMap::new();
    for (sign, rows) in [(1, &joined.inserts), (-1, &joined.deletes)] {
        for row in rows
            .iter()
            .filter(|r| holds(&join.other_predicate, &r.values))
        {
            if let Some(value) = row.values.get(join.other_column) {
                *joined_net.entry(value).or_default() += sign;
            }
        }
    }
    let mut counts: BTreeMap<Row, i64> = BTreeMap::new();
    // out(L+ - L-, R') - out(L+ - L-, R+ - R-): each changed row of the
    // query's table once per partner it had before the transaction.
    let mut partners_before: BTreeMap<&Value, i64> = BTreeMap::new();
    for (sign, rows) in [(1, &main.inserts), (-1, &main.deletes)] {
        for row in rows.iter().filter(|r| holds(&query.predicate, &r.values)) {
            let Some(value) = row.values.get(join.column) else {
                continue;
            };
            let before = *partners_before.entry(value).or_insert_with(|| {
                let stored = i64::try_from(partners_in_store(join, value, datastore));
                let gained = joined_net.get(value).copied().unwrap_or(0);
                stored.unwrap_or(i64::MAX).saturating_sub(gained)
            });
            let count = counts.entry(row.row.clone()).or_default();
            *count = count.saturating_add(sign * before);
        }
    }
    // out(L', R+ - R-): the query's rows under each key whose partners
    // changed, once per partner gained or lost. Each row gathered here is
    // (but for a change of its own cancelling it) a row of the result.
    let mut gathered = Budget::new(budget.limit);
    for (value, &net) in joined_net.iter().filter(|(_, net)| **net != 0) {
        let read = each_lookup(
            datastore,
            query.table,
            join.index,
            value,
            |bytes, values| {
                if holds(&query.predicate, &values) {
                    gathered.take(bytes, 1)?;
                    let count = counts.entry(Row::from(bytes)).or_default();
                    *count = count.saturating_add(net);
                }
                ControlFlow::Continue(())
            },
        );
        if let ControlFlow::Break(too_large) = read {
            return Err(too_large);
        }
    }
    let mut changed = Vec::new();
    for (row, count) in counts {
        if count != 0 {
            let copies = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
            if let ControlFlow::Break(too_large) = budget.take(&row, copies) {
                return Err(too_large);
            }
            changed.push((row, count));
        }
    }
    Ok(changed)
}
