//! Subscribed queries, deduplicated, and their updates per transaction.

use std::collections::{BTreeMap, HashMap};

use worldline_datastore::{
    AlgebraicType, Datastore, KeyBound, Row, TableId, TableSchema, TxDelta, Value, decode_product,
    decode_value, encode_value,
};

use crate::predicate::Predicate;
use crate::sql::{CompiledQuery, Join};

/// A distinct subscribed query; every client subscribed to the same query shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(usize);

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
}

/// The distinct queries clients subscribe to.
#[derive(Default)]
pub struct SubscriptionEngine {
    queries: Vec<Option<Subscribed>>,
    ids: HashMap<CompiledQuery, QueryId>,
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
        self.ids.insert(query.clone(), id);
        self.queries.push(Some(Subscribed {
            query,
            subscribers: 1,
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

    /// The rows matching a query now (a join's row once per matching joined row).
    pub fn initial_rows(&self, id: QueryId, datastore: &Datastore) -> Vec<Row> {
        let Some(Some(entry)) = self.queries.get(id.0) else {
            return Vec::new();
        };
        let query = &entry.query;
        let tables = datastore.tables();
        let rows = datastore.rows(query.table).into_iter().flatten();
        let mut result = Vec::new();
        for row in rows.filter(|row| matches(&query.predicate, &tables[query.table], row)) {
            let copies = match &query.join {
                None => 1,
                Some(join) => partners_in_store(join, &tables[query.table], row, datastore),
            };
            result.extend(std::iter::repeat_n(row.clone(), copies));
        }
        result
    }

    /// What `delta`, just committed to `datastore`, changed for each
    /// subscribed query, leaving out queries it did not touch.
    pub fn evaluate(&self, delta: &TxDelta, datastore: &Datastore) -> Vec<(QueryId, QueryUpdate)> {
        let tables = datastore.tables();
        let changes = |table: TableId| -> (&[Row], &[Row]) {
            delta
                .tables
                .iter()
                .find(|t| t.table == table)
                .map_or((&[], &[]), |t| (&t.inserts[..], &t.deletes[..]))
        };
        let mut updates = Vec::new();
        for (position, entry) in self.queries.iter().enumerate() {
            let Some(Subscribed { query, .. }) = entry else {
                continue;
            };
            let schema = &tables[query.table];
            let (inserts, deletes) = changes(query.table);
            let (inserts, deletes) = match &query.join {
                None => {
                    let kept = |rows: &[Row]| -> Vec<Row> {
                        rows.iter()
                            .filter(|r| matches(&query.predicate, schema, r))
                            .cloned()
                            .collect()
                    };
                    (kept(inserts), kept(deletes))
                }
                Some(join) => {
                    let (other_inserts, other_deletes) = changes(join.other);
                    join_change(
                        query,
                        join,
                        JoinDelta {
                            inserts,
                            deletes,
                            other_inserts,
                            other_deletes,
                        },
                        datastore,
                    )
                }
            };
            let paired = pair_by_primary_key(schema, &inserts, &deletes);
            let update = QueryUpdate {
                inserts: paired.inserted,
                deletes: paired.deleted,
                updates: paired.updated,
            };
            if !update.is_empty() {
                updates.push((QueryId(position), update));
            }
        }
        updates
    }
}

fn matches(predicate: &Option<Predicate>, schema: &TableSchema, row: &[u8]) -> bool {
    match predicate {
        None => true,
        Some(predicate) => decode_product(&schema.columns, row)
            .map(|values| predicate.matches(&values))
            .unwrap_or(false),
    }
}

/// The value of `column` in `row`.
fn column_value(schema: &TableSchema, row: &[u8], column: usize) -> Option<Value> {
    decode_product(&schema.columns, row)
        .ok()
        .map(|mut values| values.swap_remove(column))
}

/// The rows of `table` whose `index` key is `value`, from the committed state.
fn lookup(datastore: &Datastore, table: TableId, index: usize, value: &Value) -> Vec<Row> {
    let mut key = Vec::new();
    encode_value(value, &mut key);
    let bound = KeyBound::Included(key);
    let Ok(mut cursor) = datastore.scan_index(table, index, &bound, &bound) else {
        return Vec::new();
    };
    let row_type = AlgebraicType::Product(datastore.tables()[table].columns.clone());
    let mut rows = Vec::new();
    loop {
        let mut batch = Vec::new();
        if datastore.next_batch(&mut cursor, 1024, &mut batch) == 0 {
            return rows;
        }
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let before = rest;
            if decode_value(&row_type, &mut rest).is_err() {
                return rows;
            }
            rows.push(Row::from(&before[..before.len() - rest.len()]));
        }
    }
}

/// How many joined rows in the committed state match `row` of the query's table.
fn partners_in_store(
    join: &Join,
    schema: &TableSchema,
    row: &[u8],
    datastore: &Datastore,
) -> usize {
    let Some(value) = column_value(schema, row, join.column) else {
        return 0;
    };
    let other = &datastore.tables()[join.other];
    lookup(datastore, join.other, join.other_index, &value)
        .iter()
        .filter(|r| matches(&join.other_predicate, other, r))
        .count()
}

/// A transaction's changes to both joined tables.
struct JoinDelta<'a> {
    inserts: &'a [Row],
    deletes: &'a [Row],
    other_inserts: &'a [Row],
    other_deletes: &'a [Row],
}

/// The change of a join's result, as rows to insert and delete (with
/// multiplicity). With L, R the tables before, L', R' after, and + / -
/// the inserted and deleted rows:
/// `out(L', R') - out(L, R) = out(L+ - L-, R') + out(L', R+ - R-) - out(L+ - L-, R+ - R-)`,
/// every term computable from the committed state and the delta.
fn join_change(
    query: &CompiledQuery,
    join: &Join,
    delta: JoinDelta,
    datastore: &Datastore,
) -> (Vec<Row>, Vec<Row>) {
    let tables = datastore.tables();
    let (schema, other) = (&tables[query.table], &tables[join.other]);
    let kept = |rows: &[Row]| -> Vec<(Row, Value)> {
        rows.iter()
            .filter(|r| matches(&query.predicate, schema, r))
            .filter_map(|r| Some((r.clone(), column_value(schema, r, join.column)?)))
            .collect()
    };
    let other_kept = |rows: &[Row]| -> Vec<(Row, Value)> {
        rows.iter()
            .filter(|r| matches(&join.other_predicate, other, r))
            .filter_map(|r| Some((r.clone(), column_value(other, r, join.other_column)?)))
            .collect()
    };
    let (inserted, deleted) = (kept(delta.inserts), kept(delta.deletes));
    let (other_inserted, other_deleted) = (
        other_kept(delta.other_inserts),
        other_kept(delta.other_deletes),
    );
    let mut counts: BTreeMap<Row, i64> = BTreeMap::new();
    let mut add = |row: &Row, n: i64| *counts.entry(row.clone()).or_default() += n;
    let partners = |value: &Value, rows: &[(Row, Value)]| {
        rows.iter().filter(|(_, v)| v == value).count() as i64
    };
    for (sign, rows) in [(1, &inserted), (-1, &deleted)] {
        for (row, value) in rows {
            let in_store = partners_in_store(join, schema, row, datastore) as i64;
            let changed = partners(value, &other_inserted) - partners(value, &other_deleted);
            add(row, sign * (in_store - changed));
        }
    }
    for (sign, rows) in [(1, &other_inserted), (-1, &other_deleted)] {
        for (_, value) in rows {
            for row in lookup(datastore, query.table, join.index, value) {
                if matches(&query.predicate, schema, &row) {
                    add(&row, sign);
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
/// A table's changes with deletes and inserts of the same primary key paired.
struct Paired {
    inserted: Vec<Row>,
    deleted: Vec<Row>,
    updated: Vec<(Row, Row)>,
}

fn pair_by_primary_key(schema: &TableSchema, inserts: &[Row], deletes: &[Row]) -> Paired {
    let Some(pk) = schema.primary_key.map(|i| &schema.indexes[i].columns) else {
        return Paired {
            inserted: inserts.to_vec(),
            deleted: deletes.to_vec(),
            updated: Vec::new(),
        };
    };
    let key = |row: &Row| -> Option<Vec<Value>> {
        let values = decode_product(&schema.columns, row).ok()?;
        Some(pk.iter().map(|&c| values[c].clone()).collect())
    };
    // Deleted rows by key; a join can delete several copies of one row.
    let mut deleted: HashMap<Vec<Value>, Vec<usize>> = HashMap::new();
    for (position, row) in deletes.iter().enumerate() {
        if let Some(k) = key(row) {
            deleted.entry(k).or_default().push(position);
        }
    }
    let mut paired_delete = vec![false; deletes.len()];
    let mut paired = Paired {
        inserted: Vec::new(),
        deleted: Vec::new(),
        updated: Vec::new(),
    };
    for row in inserts {
        let old = key(row)
            .and_then(|k| deleted.get_mut(&k))
            .and_then(|positions| positions.pop());
        match old {
            Some(position) => {
                paired_delete[position] = true;
                paired
                    .updated
                    .push((deletes[position].clone(), row.clone()));
            }
            None => paired.inserted.push(row.clone()),
        }
    }
    paired.deleted = deletes
        .iter()
        .zip(paired_delete)
        .filter(|(_, was_paired)| !was_paired)
        .map(|(row, _)| row.clone())
        .collect();
    paired
}
