//! Joins: their rows in the committed state, and how a transaction changes them.

use std::collections::BTreeMap;

use worldline_datastore::{Datastore, Row, Value};

use crate::access::{Decoded, holds, lookup, matching_rows, reads_through_index};
use crate::sql::{CompiledQuery, Join};

/// The rows of a join in the committed state: a row of the query's table
/// once per matching row of the joined table. Read from whichever side's
/// condition pins an indexed column (the query's table first), else by
/// scanning the query's table.
///
/// A join's result can be the product of its tables' sizes; `budget` stops
/// it early (see [`Budget`]).
pub(crate) fn join_rows(
    query: &CompiledQuery,
    join: &Join,
    datastore: &Datastore,
    budget: &mut Budget,
) -> Result<Vec<Row>, RowsTooLarge> {
    let tables = datastore.tables();
    let (Some(schema), Some(other)) = (tables.get(query.table), tables.get(join.other)) else {
        return Ok(Vec::new());
    };
    let from_joined = !reads_through_index(schema, &query.predicate)
        && reads_through_index(other, &join.other_predicate);
    let mut rows = Vec::new();
    if from_joined {
        for partner in matching_rows(datastore, join.other, &join.other_predicate) {
            let Some(value) = partner.values.get(join.other_column) else {
                continue;
            };
            for row in lookup(datastore, query.table, join.index, value) {
                if holds(&query.predicate, &row.values) {
                    budget.take(&row.row, 1)?;
                    rows.push(row.row);
                }
            }
        }
    } else {
        for row in matching_rows(datastore, query.table, &query.predicate) {
            let copies = row
                .values
                .get(join.column)
                .map_or(0, |value| partners_in_store(join, value, datastore));
            budget.take(&row.row, copies)?;
            rows.extend(std::iter::repeat_n(row.row, copies));
        }
    }
    Ok(rows)
}

/// How many bytes of rows a reader still takes: each row counts its bytes
/// and one more (the least a length prefix takes on the wire), so rows
/// refused by the budget would not fit a message of that many bytes.
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

    /// Takes `copies` copies of `row` from the budget, or says it ran out.
    pub(crate) fn take(&mut self, row: &[u8], copies: usize) -> Result<(), RowsTooLarge> {
        let bytes = (row.len() + 1).saturating_mul(copies);
        self.taken = self.taken.saturating_add(bytes);
        if self.taken > self.limit {
            return Err(RowsTooLarge { limit: self.limit });
        }
        Ok(())
    }
}

/// The rows a query matches take more than the bytes the caller allowed
/// ([`SubscriptionEngine::initial_rows_within`](crate::SubscriptionEngine::initial_rows_within)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rows take more than {limit} bytes")]
pub struct RowsTooLarge {
    /// The bytes allowed (each row counting its length and one byte more).
    pub limit: usize,
}

/// How many rows of the joined table in the committed state match a row
/// of the query's table whose join column holds `value`.
fn partners_in_store(join: &Join, value: &Value, datastore: &Datastore) -> usize {
    lookup(datastore, join.other, join.other_index, value)
        .iter()
        .filter(|r| holds(&join.other_predicate, &r.values))
        .count()
}

/// Rows a transaction inserted into and deleted from one table (those that
/// may matter to a query; rows left out must not satisfy its condition).
#[derive(Debug, Default)]
pub(crate) struct Changes<'a> {
    pub(crate) inserts: Vec<&'a Decoded>,
    pub(crate) deletes: Vec<&'a Decoded>,
}

/// The change of a join's result, as rows to insert and delete (with
/// multiplicity), from the changes to its table (`main`) and to the
/// joined table (`joined`). With L, R the tables before, L', R' after,
/// and + / - the inserted and deleted rows:
/// `out(L', R') - out(L, R) = out(L+ - L-, R') + out(L', R+ - R-) - out(L+ - L-, R+ - R-)`,
/// every term computable from the committed state and the delta.
pub(crate) fn join_change(
    query: &CompiledQuery,
    join: &Join,
    main: &Changes,
    joined: &Changes,
    datastore: &Datastore,
) -> (Vec<Row>, Vec<Row>) {
    let kept = |rows: &[&Decoded]| -> Vec<(Row, Value)> {
        rows.iter()
            .filter(|r| holds(&query.predicate, &r.values))
            .filter_map(|r| Some((r.row.clone(), r.values.get(join.column)?.clone())))
            .collect()
    };
    let other_kept = |rows: &[&Decoded]| -> Vec<Value> {
        rows.iter()
            .filter(|r| holds(&join.other_predicate, &r.values))
            .filter_map(|r| r.values.get(join.other_column).cloned())
            .collect()
    };
    let (inserted, deleted) = (kept(&main.inserts), kept(&main.deletes));
    let (other_inserted, other_deleted) =
        (other_kept(&joined.inserts), other_kept(&joined.deletes));
    let mut counts: BTreeMap<Row, i64> = BTreeMap::new();
    let mut add = |row: &Row, n: i64| *counts.entry(row.clone()).or_default() += n;
    let partners =
        |value: &Value, values: &[Value]| values.iter().filter(|v| *v == value).count() as i64;
    for (sign, rows) in [(1, &inserted), (-1, &deleted)] {
        for (row, value) in rows {
            let in_store = partners_in_store(join, value, datastore) as i64;
            let changed = partners(value, &other_inserted) - partners(value, &other_deleted);
            add(row, sign * (in_store - changed));
        }
    }
    for (sign, values) in [(1, &other_inserted), (-1, &other_deleted)] {
        for value in values {
            for row in lookup(datastore, query.table, join.index, value) {
                if holds(&query.predicate, &row.values) {
                    add(&row.row, sign);
                }
            }
        }
    }
    let (mut inserts, mut deletes) = (Vec::new(), Vec::new());
    for (row, count) in counts {
        let target = if count > 0 {
            &mut inserts
        } else {
            &mut deletes
        };
        target.extend(std::iter::repeat_n(row, count.unsigned_abs() as usize));
    }
    (inserts, deletes)
}
