//! Subscribed queries, deduplicated and filed by the constants they
//! compare, and what each transaction changes for them: a changed row is
//! checked only against the queries it can match.

use std::collections::HashMap;
use std::ops::ControlFlow;

use worldline_datastore::{Datastore, Row, TableId, TableSchema, TxDelta, Value};

use crate::access::{Decoded, WorkMeter, decode_leading, each_lookup, holds, matching_row_bytes};
use crate::join::{Budget, Changes, RowsRefused, RowsTooLarge, join_change, join_rows};
use crate::query_index::{Filing, QueryIndex, Side};
use crate::sql::CompiledQuery;

/// A distinct subscribed query; every client subscribed to the same query shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub(crate) usize);

/// What one transaction changed in one query's result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryUpdate {
    /// Rows that now match.
    pub inserts: Vec<Row>,
    /// Rows that matched and no longer do.
    pub deletes: Vec<Row>,
    /// Rows that match before and after with the same primary key, as (old, new).
    pub updates: Vec<(Row, Row)>,
}

impl QueryUpdate {
    fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.deletes.is_empty() && self.updates.is_empty()
    }
}

struct Subscribed {
    query: CompiledQuery,
    subscribers: usize,
    /// Where its sides are filed in the engine's index.
    filings: Vec<Filing>,
}

/// The distinct queries clients subscribe to, filed by the constants they
/// compare. Subscribing, unsubscribing and evaluating a transaction cost
/// about the same however many other queries are subscribed, except for
/// queries that pin no column (they try every change to their tables).
#[derive(Default)]
pub struct SubscriptionEngine {
    queries: Vec<Option<Subscribed>>,
    ids: HashMap<CompiledQuery, QueryId>,
    index: QueryIndex,
}

/// A changed row that is a candidate of a query side.
struct Hit<'a> {
    id: QueryId,
    side: Side,
    inserted: bool,
    row: &'a Decoded,
}

/// A transaction's changes to the query's table and to a join's other table.
#[derive(Default)]
struct Hits<'a> {
    main: Changes<'a>,
    joined: Changes<'a>,
}

impl<'a> Hits<'a> {
    fn side(&mut self, side: Side) -> &mut Changes<'a> {
        match side {
            Side::Main => &mut self.main,
            Side::Joined => &mut self.joined,
        }
    }
}

/// A table's changed rows, decoded.
struct Changed {
    table: TableId,
    inserts: Vec<Decoded>,
    deletes: Vec<Decoded>,
}

impl SubscriptionEngine {
    /// Adds a subscriber to `query`; identical queries get the same id.
    pub fn subscribe(&mut self, query: CompiledQuery) -> QueryId {
        if let Some(&id) = self.ids.get(&query) {
            if let Some(entry) = &mut self.queries[id.0] {
                entry.subscribers += 1;
            }
            return id;
        }
        let id = QueryId(self.queries.len());
        let filings = Filing::of(&query);
        for filing in &filings {
            self.index.insert(id, filing);
        }
        self.ids.insert(query.clone(), id);
        self.queries.push(Some(Subscribed {
            query,
            subscribers: 1,
            filings,
        }));
        id
    }

    /// Removes one subscriber; the query is dropped with its last one.
    pub fn unsubscribe(&mut self, id: QueryId) {
        let Some(Some(entry)) = self.queries.get_mut(id.0) else {
            return;
        };
        entry.subscribers -= 1;
        if entry.subscribers == 0 {
            for filing in &entry.filings {
                self.index.remove(id, filing);
            }
            self.ids.remove(&entry.query);
            self.queries[id.0] = None;
        }
    }

    /// How many distinct queries are subscribed.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no query is subscribed.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The rows matching a query now (a join's row once per matching joined
    /// row), read through an index when the query pins an indexed column.
    pub fn initial_rows(&self, id: QueryId, datastore: &Datastore) -> Vec<Row> {
        self.initial_rows_within(id, datastore, usize::MAX, &WorkMeter::new(u64::MAX))
            .unwrap_or_default()
    }

    /// Like [`initial_rows`](Self::initial_rows), but gives up as soon as
    /// the rows take more than `max_bytes` (each row counting its
    /// [`row_cost`](crate::row_cost): its length and one byte more, the
    /// least its length prefix takes on the wire, and at least
    /// [`MIN_ROW_BYTES`](crate::MIN_ROW_BYTES)).
    /// A join's rows can be the product of its tables' sizes (every row
    /// of a table joined with itself on a column they all share): this
    /// stops before holding them all. It also gives up once `meter` runs
    /// out (each row read, matching or not, takes
    /// [`ROW_WORK`](crate::ROW_WORK) and the comparisons of its condition
    /// from it): a condition of hundreds of comparisons over a table
    /// scanned whole takes the database's thread for as long as hundreds
    /// of scans. One meter can serve several reads.
    pub fn initial_rows_within(
        &self,
        id: QueryId,
        datastore: &Datastore,
        max_bytes: usize,
        meter: &WorkMeter,
    ) -> Result<Vec<Row>, RowsRefused> {
        let Some(Some(entry)) = self.queries.get(id.0) else {
            return Ok(Vec::new());
        };
        let query = &entry.query;
        let mut budget = Budget::new(max_bytes);
        let rows = match &query.join {
            None => {
                matching_row_bytes(datastore, query.table, &query.predicate, meter, &mut budget)
            }
            Some(join) => join_rows(query, join, datastore, meter, &mut budget),
        };
        if meter.spent() {
            return Err(RowsRefused::TooMuchWork);
        }
        Ok(rows?)
    }

    /// What `delta`, just committed to `datastore`, changed for each
    /// subscribed query, leaving out queries it did not touch.
    pub fn evaluate(&self, delta: &TxDelta, datastore: &Datastore) -> Vec<(QueryId, QueryUpdate)> {
        self.evaluate_within(delta, datastore, usize::MAX)
            .into_iter()
            .filter_map(|(id, update)| Some((id, update.ok()?)))
            .collect()
    }

    /// Like [`evaluate`](Self::evaluate), but a query whose change takes
    /// more than `max_bytes` (each row counting its
    /// [`row_cost`](crate::row_cost)) gets
    /// [`RowsTooLarge`] instead of its rows. A join's change can be the
    /// product of the transaction's rows and the table's (rows inserted
    /// under a key that many rows share): this stops before holding it.
    pub fn evaluate_within(
        &self,
        delta: &TxDelta,
        datastore: &Datastore,
        max_bytes: usize,
    ) -> Vec<(QueryId, Result<QueryUpdate, RowsTooLarge>)> {
        let tables = datastore.tables();
        // Leading column values of one changed row, for a first look at its candidates.
        let mut leading = Vec::new();
        let mut decoded = |table: TableId, schema: &TableSchema, rows: &[Row]| -> Vec<Decoded> {
            // Most changed rows are a candidate of no query: they are left
            // out after decoding only the columns queries are filed under.
            let needed = self.index.candidates_only(table);
            rows.iter()
                .filter(|row| {
                    needed.is_none_or(|count| {
                        let mut candidate = false;
                        decode_leading(schema, row, count, &mut leading) && {
                            self.index.candidates(table, &leading, |_| candidate = true);
                            candidate
                        }
                    })
                })
                .filter_map(|row| Decoded::new(schema, row))
                .collect()
        };
        let changed: Vec<Changed> = delta
            .tables
            .iter()
            .filter(|change| self.index.watches(change.table))
            .filter_map(|change| {
                let schema = tables.get(change.table)?;
                Some(Changed {
                    table: change.table,
                    inserts: decoded(change.table, schema, &change.inserts),
                    deletes: decoded(change.table, schema, &change.deletes),
                })
            })
            .collect();
        // Every (query side, changed row) candidate pair, in the order found;
        // grouped by query below (one allocation however many queries).
        let mut found: Vec<Hit> = Vec::new();
        // The candidates of one changed row.
        let mut of_row = Vec::new();
        for change in &changed {
            for (id, side) in self.index.scanned(change.table) {
                for (rows, inserted) in [(&change.inserts, true), (&change.deletes, false)] {
                    found.extend(rows.iter().map(|row| Hit {
                        id,
                        side,
                        inserted,
                        row,
                    }));
                }
            }
            for (rows, inserted) in [(&change.inserts, true), (&change.deletes, false)] {
                for row in rows {
                    // A side filed under several constraints (an `OR`) comes once per
                    // constraint the row satisfies; it takes the row once.
                    of_row.clear();
                    self.index
                        .candidates(change.table, &row.values, |entry| of_row.push(entry));
                    of_row.sort_unstable();
                    of_row.dedup();
                    let through = self.through_candidates(change.table, row, &changed, datastore);
                    let sides = of_row
                        .iter()
                        .copied()
                        .chain(through.into_iter().map(|id| (id, Side::Main)));
                    found.extend(sides.map(|(id, side)| Hit {
                        id,
                        side,
                        inserted,
                        row,
                    }));
                }
            }
        }
        // A stable sort: each query's rows stay in the order they were found.
        found.sort_by_key(|hit| hit.id);
        let hits = found.chunk_by(|a, b| a.id == b.id).map(|group| {
            let mut hits = Hits::default();
            for hit in group {
                let rows = hits.side(hit.side);
                let rows = if hit.inserted {
                    &mut rows.inserts
                } else {
                    &mut rows.deletes
                };
                rows.push(hit.row);
            }
            (group[0].id, hits)
        });
        let mut updates = Vec::new();
        for (id, hits) in hits {
            let Some(Some(Subscribed { query, .. })) = self.queries.get(id.0) else {
                continue;
            };
            let Some(schema) = tables.get(query.table) else {
                continue;
            };
            let mut budget = Budget::new(max_bytes);
            let paired = match &query.join {
                None => {
                    let mut inserts = hits.main.inserts;
                    let mut deletes = hits.main.deletes;
                    inserts.retain(|r| holds(&query.predicate, &r.values));
                    deletes.retain(|r| holds(&query.predicate, &r.values));
                    let too_large = inserts
                        .iter()
                        .chain(&deletes)
                        .find_map(|r| budget.take(&r.row, 1).break_value());
                    if let Some(too_large) = too_large {
                        updates.push((id, Err(too_large)));
                        continue;
                    }
                    pair_by_primary_key(schema, &inserts, &deletes)
                }
                Some(join) => {
                    let changed = match join_change(
                        query,
                        join,
                        &hits.main,
                        &hits.joined,
                        datastore,
                        &mut budget,
                    ) {
                        Ok(changed) => changed,
                        Err(too_large) => {
                            updates.push((id, Err(too_large)));
                            continue;
                        }
                    };
                    // Each changed row decoded once, however many copies it has.
                    let decoded: Vec<(Decoded, i64)> = changed
                        .iter()
                        .filter_map(|(row, count)| Some((Decoded::new(schema, row)?, *count)))
                        .collect();
                    let copies = |gained: bool| -> Vec<&Decoded> {
                        decoded
                            .iter()
                            .filter(|(_, count)| (*count > 0) == gained)
                            .flat_map(|(row, count)| {
                                let copies = usize::try_from(count.unsigned_abs());
                                std::iter::repeat_n(row, copies.unwrap_or(usize::MAX))
                            })
                            .collect()
                    };
                    pair_by_primary_key(schema, &copies(true), &copies(false))
                }
            };
            let update = QueryUpdate {
                inserts: paired.inserted,
                deletes: paired.deleted,
                updates: paired.updated,
            };
            if !update.is_empty() {
                updates.push((id, Ok(update)));
            }
        }
        updates
    }

    /// The joins filed through their joined table for which `row`, a
    /// changed row of `table`, is a candidate: those with a join partner
    /// (after the transaction, or deleted by it) that is a candidate of the
    /// joined side's filing. Each once.
    fn through_candidates(
        &self,
        table: TableId,
        row: &Decoded,
        changed: &[Changed],
        datastore: &Datastore,
    ) -> Vec<QueryId> {
        let mut found = Vec::new();
        for (through, ids) in self.index.through(table) {
            let Some(value) = row.values.get(through.column) else {
                continue;
            };
            let mut partner = |values: &[Value]| {
                self.index.candidates(through.other, values, |(id, side)| {
                    if side == Side::Joined && ids.contains(&id) {
                        found.push(id);
                    }
                });
            };
            let _ = each_lookup(
                datastore,
                through.other,
                through.other_index,
                value,
                |_, values| -> ControlFlow<()> {
                    partner(&values);
                    ControlFlow::Continue(())
                },
            );
            let deleted = changed
                .iter()
                .filter(|c| c.table == through.other)
                .flat_map(|c| &c.deletes)
                .filter(|r| r.values.get(through.other_column) == Some(value));
            for row in deleted {
                partner(&row.values);
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// A table's changes with deletes and inserts of the same primary key paired.
struct Paired {
    inserted: Vec<Row>,
    deleted: Vec<Row>,
    updated: Vec<(Row, Row)>,
}

/// Up to how many (insert, delete) pairs are compared one by one rather
/// than through a map of the deletes by key: a transaction usually changes
/// a row or two of a query.
const PAIR_BY_SCANNING: usize = 64;

fn pair_by_primary_key(schema: &TableSchema, inserts: &[&Decoded], deletes: &[&Decoded]) -> Paired {
    let rows = |rows: &[&Decoded]| rows.iter().map(|r| r.row.clone()).collect();
    let Some(pk) = schema.primary_key.map(|i| &schema.indexes[i].columns) else {
        return Paired {
            inserted: rows(inserts),
            deleted: rows(deletes),
            updated: Vec::new(),
        };
    };
    fn key<'r>(pk: &[usize], row: &'r Decoded) -> Option<Vec<&'r Value>> {
        pk.iter().map(|&c| row.values.get(c)).collect()
    }
    let key = |row| key(pk, row);
    // The delete each insert pairs with; a join can delete several copies
    // of one row, and each pairs once.
    let mut paired_delete = vec![false; deletes.len()];
    let mut partner = Vec::with_capacity(inserts.len());
    if inserts.len() * deletes.len() <= PAIR_BY_SCANNING {
        // Both rows have every key column, with equal values.
        let same_key = |a: &Decoded, b: &Decoded| {
            pk.iter().all(
                |&c| matches!((a.values.get(c), b.values.get(c)), (Some(x), Some(y)) if x == y),
            )
        };
        for insert in inserts {
            let found = (0..deletes.len())
                .rev()
                .find(|&d| !paired_delete[d] && same_key(insert, deletes[d]));
            if let Some(d) = found {
                paired_delete[d] = true;
            }
            partner.push(found);
        }
    } else {
        let mut deleted: HashMap<Vec<&Value>, Vec<usize>> = HashMap::new();
        for (position, row) in deletes.iter().enumerate() {
            if let Some(k) = key(row) {
                deleted.entry(k).or_default().push(position);
            }
        }
        for insert in inserts {
            let found = key(insert)
                .and_then(|k| deleted.get_mut(&k))
                .and_then(|positions| positions.pop());
            if let Some(d) = found {
                paired_delete[d] = true;
            }
            partner.push(found);
        }
    }
    let mut paired = Paired {
        inserted: Vec::new(),
        deleted: Vec::new(),
        updated: Vec::new(),
    };
    for (insert, found) in inserts.iter().zip(partner) {
        match found {
            Some(d) => paired
                .updated
                .push((deletes[d].row.clone(), insert.row.clone())),
            None => paired.inserted.push(insert.row.clone()),
        }
    }
    paired.deleted = deletes
        .iter()
        .zip(paired_delete)
        .filter(|(_, was_paired)| !was_paired)
        .map(|(row, _)| row.row.clone())
        .collect();
    paired
}
