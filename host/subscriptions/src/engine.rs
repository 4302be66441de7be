//! Subscribed queries, deduplicated, and their updates per transaction.

use std::collections::HashMap;

use worldline_datastore::{Datastore, Row, TableSchema, TxDelta, Value, decode_product};

use crate::sql::CompiledQuery;

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

    /// The rows matching a query now.
    pub fn initial_rows(&self, id: QueryId, datastore: &Datastore) -> Vec<Row> {
        let Some(Some(entry)) = self.queries.get(id.0) else {
            return Vec::new();
        };
        let query = &entry.query;
        let schema = &datastore.tables()[query.table];
        datastore
            .rows(query.table)
            .map(|rows| {
                rows.filter(|row| matches(query, schema, row))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What `delta` changed for each subscribed query, leaving out queries it did not touch.
    pub fn evaluate(&self, delta: &TxDelta, tables: &[TableSchema]) -> Vec<(QueryId, QueryUpdate)> {
        let mut updates = Vec::new();
        for change in &delta.tables {
            let schema = &tables[change.table];
            let paired = pair_by_primary_key(schema, &change.inserts, &change.deletes);
            for (position, entry) in self.queries.iter().enumerate() {
                let Some(Subscribed { query, .. }) = entry else {
                    continue;
                };
                if query.table != change.table {
                    continue;
                }
                let mut update = QueryUpdate::default();
                for (old, new) in &paired.updated {
                    match (matches(query, schema, old), matches(query, schema, new)) {
                        (true, true) => update.updates.push((old.clone(), new.clone())),
                        (true, false) => update.deletes.push(old.clone()),
                        (false, true) => update.inserts.push(new.clone()),
                        (false, false) => {}
                    }
                }
                update.inserts.extend(
                    paired
                        .inserted
                        .iter()
                        .filter(|r| matches(query, schema, r))
                        .cloned(),
                );
                update.deletes.extend(
                    paired
                        .deleted
                        .iter()
                        .filter(|r| matches(query, schema, r))
                        .cloned(),
                );
                if !update.is_empty() {
                    updates.push((QueryId(position), update));
                }
            }
        }
        updates
    }
}

fn matches(query: &CompiledQuery, schema: &TableSchema, row: &[u8]) -> bool {
    match &query.predicate {
        None => true,
        Some(predicate) => decode_product(&schema.columns, row)
            .map(|values| predicate.matches(&values))
            .unwrap_or(false),
    }
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
    let mut deleted: HashMap<Vec<Value>, Row> = HashMap::new();
    let mut unkeyed = Vec::new();
    for row in deletes {
        match key(row) {
            Some(k) => {
                deleted.insert(k, row.clone());
            }
            None => unkeyed.push(row.clone()),
        }
    }
    let mut paired = Paired {
        inserted: Vec::new(),
        deleted: unkeyed,
        updated: Vec::new(),
    };
    for row in inserts {
        match key(row).and_then(|k| deleted.remove(&k)) {
            Some(old) => paired.updated.push((old, row.clone())),
            None => paired.inserted.push(row.clone()),
        }
    }
    // Deletes keep their delta order.
    paired.deleted.extend(
        deletes
            .iter()
            .filter(|r| key(r).is_some_and(|k| deleted.contains_key(&k)))
            .cloned(),
    );
    paired
}
