//! The client's copy of its subscribed rows, kept in sync by the server's
//! messages. Sans-IO: it only applies messages and reports what changed.
//!
//! Each table is a multiset: a row matched by several queries arrives once
//! per match, and stays visible until as many removals arrive.

use std::collections::{BTreeMap, HashMap};

use worldline_transport::{TableRows, TableUpdate};

/// A change to the visible rows of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    /// A row became visible.
    Insert {
        /// The table.
        table: String,
        /// The row's postcard bytes.
        row: Vec<u8>,
    },
    /// A row is no longer visible.
    Delete {
        /// The table.
        table: String,
        /// The row's postcard bytes.
        row: Vec<u8>,
    },
    /// A row was replaced by another under the same primary key.
    Update {
        /// The table.
        table: String,
        /// The row before.
        old: Vec<u8>,
        /// The row after.
        new: Vec<u8>,
    },
}

/// What applying a message did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Visible changes, in the order they happened.
    pub changes: Vec<RowChange>,
    /// Rows the message removed that the cache did not hold (a protocol
    /// violation; they were ignored).
    pub missing: usize,
}

/// Subscribed rows per table, with how many times each is matched.
#[derive(Debug, Default)]
pub struct ClientCache {
    tables: HashMap<String, BTreeMap<Vec<u8>, usize>>,
}

impl ClientCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the rows of a newly applied subscription.
    pub fn add_rows(&mut self, tables: &[TableRows]) -> Applied {
        let mut applied = Applied::default();
        for table in tables {
            for row in &table.rows {
                if self.increment(&table.table, row) {
                    applied.changes.push(RowChange::Insert {
                        table: table.table.clone(),
                        row: row.to_vec(),
                    });
                }
            }
        }
        applied
    }

    /// Removes the rows of an ended subscription.
    pub fn remove_rows(&mut self, tables: &[TableRows]) -> Applied {
        let mut applied = Applied::default();
        for table in tables {
            for row in &table.rows {
                self.remove(&table.table, row, &mut applied);
            }
        }
        applied
    }

    /// Applies one transaction's changes: deletes, then updates, then inserts.
    pub fn apply(&mut self, tables: &[TableUpdate]) -> Applied {
        let mut applied = Applied::default();
        for table in tables {
            let name = &table.table;
            for row in &table.deletes {
                self.remove(name, row, &mut applied);
            }
            for update in &table.updates {
                let gone = match self.decrement(name, &update.old) {
                    Some(gone) => gone,
                    None => {
                        applied.missing += 1;
                        false
                    }
                };
                let appeared = self.increment(name, &update.new);
                let change = match (gone, appeared) {
                    (true, true) => Some(RowChange::Update {
                        table: name.clone(),
                        old: update.old.to_vec(),
                        new: update.new.to_vec(),
                    }),
                    (true, false) => Some(RowChange::Delete {
                        table: name.clone(),
                        row: update.old.to_vec(),
                    }),
                    (false, true) => Some(RowChange::Insert {
                        table: name.clone(),
                        row: update.new.to_vec(),
                    }),
                    (false, false) => None,
                };
                applied.changes.extend(change);
            }
            for row in &table.inserts {
                if self.increment(name, row) {
                    applied.changes.push(RowChange::Insert {
                        table: name.clone(),
                        row: row.to_vec(),
                    });
                }
            }
        }
        applied
    }

    /// The visible rows of `table`, each once, in byte order.
    pub fn rows(&self, table: &str) -> Vec<Vec<u8>> {
        self.tables
            .get(table)
            .map(|rows| rows.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// How many subscription matches hold `row` in `table`.
    pub fn count(&self, table: &str, row: &[u8]) -> usize {
        self.tables
            .get(table)
            .and_then(|rows| rows.get(row))
            .copied()
            .unwrap_or(0)
    }

    fn remove(&mut self, table: &str, row: &[u8], applied: &mut Applied) {
        match self.decrement(table, row) {
            Some(true) => applied.changes.push(RowChange::Delete {
                table: table.to_owned(),
                row: row.to_vec(),
            }),
            Some(false) => {}
            None => applied.missing += 1,
        }
    }

    /// Counts one more match; `true` if the row just became visible.
    fn increment(&mut self, table: &str, row: &[u8]) -> bool {
        let rows = self.tables.entry(table.to_owned()).or_default();
        let count = rows.entry(row.to_vec()).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Counts one match less; `Some(true)` if the row just disappeared,
    /// `None` if it was not there.
    fn decrement(&mut self, table: &str, row: &[u8]) -> Option<bool> {
        let rows = self.tables.get_mut(table)?;
        let count = rows.get_mut(row)?;
        *count -= 1;
        if *count == 0 {
            rows.remove(row);
            return Some(true);
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_bytes::ByteBuf;
    use worldline_transport::RowUpdate;

    fn rows(table: &str, rows: &[&[u8]]) -> TableRows {
        TableRows {
            table: table.into(),
            rows: rows.iter().map(|r| ByteBuf::from(r.to_vec())).collect(),
        }
    }

    fn update(inserts: &[&[u8]], deletes: &[&[u8]], updates: &[(&[u8], &[u8])]) -> TableUpdate {
        let buf = |r: &&[u8]| ByteBuf::from(r.to_vec());
        TableUpdate {
            table: "t".into(),
            inserts: inserts.iter().map(buf).collect(),
            deletes: deletes.iter().map(buf).collect(),
            updates: updates
                .iter()
                .map(|(old, new)| RowUpdate {
                    old: buf(old),
                    new: buf(new),
                })
                .collect(),
        }
    }

    #[test]
    fn overlapping_subscriptions_keep_a_row_until_both_let_go() {
        let mut cache = ClientCache::new();
        assert_eq!(cache.add_rows(&[rows("t", &[b"a"])]).changes.len(), 1);
        assert!(cache.add_rows(&[rows("t", &[b"a"])]).changes.is_empty());
        assert_eq!(cache.count("t", b"a"), 2);
        assert!(cache.remove_rows(&[rows("t", &[b"a"])]).changes.is_empty());
        assert_eq!(cache.rows("t"), [b"a".to_vec()]);
        let applied = cache.remove_rows(&[rows("t", &[b"a"])]);
        assert_eq!(
            applied.changes,
            [RowChange::Delete {
                table: "t".into(),
                row: b"a".to_vec()
            }]
        );
        assert!(cache.rows("t").is_empty());
    }

    #[test]
    fn an_update_replaces_the_row_and_reports_one_change() {
        let mut cache = ClientCache::new();
        cache.add_rows(&[rows("t", &[b"old"])]);
        let applied = cache.apply(&[update(&[], &[], &[(b"old", b"new")])]);
        assert_eq!(
            applied.changes,
            [RowChange::Update {
                table: "t".into(),
                old: b"old".to_vec(),
                new: b"new".to_vec()
            }]
        );
        assert_eq!(cache.rows("t"), [b"new".to_vec()]);
    }

    #[test]
    fn removing_what_is_not_there_is_counted_not_a_panic() {
        let mut cache = ClientCache::new();
        let applied = cache.apply(&[update(&[], &[b"x"], &[(b"y", b"z")])]);
        assert_eq!(applied.missing, 2);
        assert_eq!(cache.rows("t"), [b"z".to_vec()]);
    }

    proptest! {
        /// A cache fed random valid messages equals a model multiset.
        #[test]
        fn matches_a_model_multiset(steps in proptest::collection::vec((0u8..4, 0u8..6, 0u8..6), 1..80)) {
            let mut cache = ClientCache::new();
            let mut model: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
            for (kind, a, b) in steps {
                let (a, b) = (vec![a], vec![b]);
                match kind {
                    0 => {
                        cache.add_rows(&[rows("t", &[&a])]);
                        *model.entry(a).or_default() += 1;
                    }
                    1 => {
                        cache.apply(&[update(&[&a], &[], &[])]);
                        *model.entry(a).or_default() += 1;
                    }
                    2 if model.contains_key(&a) => {
                        let applied = cache.apply(&[update(&[], &[&a], &[])]);
                        prop_assert_eq!(applied.missing, 0);
                        let count = model.get_mut(&a).unwrap();
                        *count -= 1;
                        if *count == 0 { model.remove(&a); }
                    }
                    3 if model.contains_key(&a) => {
                        let applied = cache.apply(&[update(&[], &[], &[(&a, &b)])]);
                        prop_assert_eq!(applied.missing, 0);
                        let count = model.get_mut(&a).unwrap();
                        *count -= 1;
                        if *count == 0 { model.remove(&a); }
                        *model.entry(b).or_default() += 1;
                    }
                    _ => {}
                }
                prop_assert_eq!(cache.rows("t"), model.keys().cloned().collect::<Vec<_>>());
                for (row, count) in &model {
                    prop_assert_eq!(cache.count("t", row), *count);
                }
            }
        }
    }
}
