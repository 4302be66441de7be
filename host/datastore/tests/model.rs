//! Property test: random sequences of transactions, writes, reads and
//! batched scans agree at every step with a simple model of the same table.

mod common;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use worldline_datastore::{Cursor, Datastore, DbErrorKind, KeyBound, Value};

/// A bound of the `(owner, rank)` index: a one-column prefix or a full key.
#[derive(Clone, Copy, Debug)]
enum KeySpec {
    Owner(u32),
    Full(u32, i32),
}

#[derive(Clone, Copy, Debug)]
enum BoundSpec {
    Unbounded,
    Included(KeySpec),
    Excluded(KeySpec),
}

#[derive(Clone, Debug)]
enum Op {
    Begin,
    Commit,
    Rollback,
    Insert(Item),
    Update(Item),
    UpdateBySku(Item),
    Delete {
        id: u32,
    },
    /// Deletes a row and inserts the same bytes again.
    Reinsert {
        id: u32,
    },
    DeleteBySku {
        sku: u8,
    },
    FindId {
        id: u32,
    },
    FindSku {
        sku: u8,
    },
    Range {
        lower: BoundSpec,
        upper: BoundSpec,
    },
    OpenScan,
    OpenRange {
        lower: BoundSpec,
        upper: BoundSpec,
    },
    NextBatch {
        rows: usize,
    },
}

fn sku(n: u8) -> String {
    format!("sku{n}")
}

// Small domains, so that keys collide often.
fn item(ids: impl Strategy<Value = u32>) -> impl Strategy<Value = Item> {
    (ids, 0u8..6, 0u32..3, -3i32..3).prop_map(|(id, s, owner, rank)| Item {
        id,
        sku: sku(s),
        owner,
        rank,
    })
}

fn bound() -> impl Strategy<Value = BoundSpec> {
    let spec = prop_oneof![
        (0u32..3).prop_map(KeySpec::Owner),
        (0u32..3, -3i32..3).prop_map(|(o, r)| KeySpec::Full(o, r)),
    ];
    prop_oneof![
        1 => Just(BoundSpec::Unbounded),
        2 => spec.clone().prop_map(BoundSpec::Included),
        2 => spec.prop_map(BoundSpec::Excluded),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Begin),
        1 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        6 => item(prop_oneof![Just(0u32), 1u32..8]).prop_map(Op::Insert),
        3 => item(1u32..8).prop_map(Op::Update),
        1 => item(0u32..8).prop_map(Op::UpdateBySku),
        2 => (1u32..8).prop_map(|id| Op::Delete { id }),
        1 => (1u32..8).prop_map(|id| Op::Reinsert { id }),
        1 => (0u8..6).prop_map(|sku| Op::DeleteBySku { sku }),
        1 => (0u32..8).prop_map(|id| Op::FindId { id }),
        1 => (0u8..6).prop_map(|sku| Op::FindSku { sku }),
        2 => (bound(), bound()).prop_map(|(lower, upper)| Op::Range { lower, upper }),
        1 => Just(Op::OpenScan),
        1 => (bound(), bound()).prop_map(|(lower, upper)| Op::OpenRange { lower, upper }),
        4 => (1usize..4).prop_map(|rows| Op::NextBatch { rows }),
    ]
}

/// The model: rows by id, each with a number that orders rows by first insertion.
#[derive(Clone, Debug)]
struct State {
    rows: BTreeMap<u32, (Item, u64)>,
    next_id: u32,
}

impl State {
    fn new() -> Self {
        Self {
            rows: BTreeMap::new(),
            next_id: 1,
        }
    }

    fn by_sku(&self, sku: &str) -> Option<&(Item, u64)> {
        self.rows.values().find(|(i, _)| i.sku == sku)
    }

    fn sku_taken(&self, sku: &str, except: Option<u32>) -> bool {
        self.by_sku(sku).is_some_and(|(i, _)| Some(i.id) != except)
    }

    fn rows_sorted(&self) -> Vec<Item> {
        let mut rows: Vec<_> = self.rows.values().cloned().collect();
        rows.sort_by_key(|(_, order)| *order);
        rows.into_iter().map(|(i, _)| i).collect()
    }

    /// Rows whose index key lies in the range, by key and then insertion.
    fn range(&self, lower: BoundSpec, upper: BoundSpec) -> Vec<((u32, i32), u64, Item)> {
        let mut rows: Vec<_> = self
            .rows
            .values()
            .filter(|(i, _)| in_range((i.owner, i.rank), lower, upper))
            .map(|(i, order)| ((i.owner, i.rank), *order, i.clone()))
            .collect();
        rows.sort_by_key(|(key, order, _)| (*key, *order));
        rows
    }
}

/// Compares a key with a bound's columns, on as many columns as the bound has.
fn compare(key: (u32, i32), spec: KeySpec) -> Ordering {
    match spec {
        KeySpec::Owner(owner) => key.0.cmp(&owner),
        KeySpec::Full(owner, rank) => key.cmp(&(owner, rank)),
    }
}

fn in_range(key: (u32, i32), lower: BoundSpec, upper: BoundSpec) -> bool {
    let above = match lower {
        BoundSpec::Unbounded => true,
        BoundSpec::Included(s) => compare(key, s).is_ge(),
        BoundSpec::Excluded(s) => compare(key, s).is_gt(),
    };
    let below = match upper {
        BoundSpec::Unbounded => true,
        BoundSpec::Included(s) => compare(key, s).is_le(),
        BoundSpec::Excluded(s) => compare(key, s).is_lt(),
    };
    above && below
}

fn key_bound(bound: BoundSpec) -> KeyBound {
    let bytes = |spec| match spec {
        KeySpec::Owner(owner) => key(&[Value::U32(owner)]),
        KeySpec::Full(owner, rank) => key(&[Value::U32(owner), Value::I32(rank)]),
    };
    match bound {
        BoundSpec::Unbounded => KeyBound::Unbounded,
        BoundSpec::Included(spec) => KeyBound::Included(bytes(spec)),
        BoundSpec::Excluded(spec) => KeyBound::Excluded(bytes(spec)),
    }
}

/// Where the model's copy of an open cursor stands.
enum ModelScan {
    Table {
        after: Option<u64>,
    },
    Index {
        lower: BoundSpec,
        upper: BoundSpec,
        after: Option<((u32, i32), u64)>,
    },
    Done,
}

impl ModelScan {
    /// The next `rows` rows, moving the position past them.
    fn next(&mut self, state: &State, rows: usize) -> Vec<Item> {
        let batch: Vec<Item> = match self {
            ModelScan::Done => vec![],
            ModelScan::Table { after } => {
                let mut next: Vec<(Item, u64)> = state
                    .rows
                    .values()
                    .filter(|(_, order)| after.is_none_or(|a| *order > a))
                    .cloned()
                    .collect();
                next.sort_by_key(|(_, order)| *order);
                next.truncate(rows);
                if let Some((_, order)) = next.last() {
                    *after = Some(*order);
                }
                next.into_iter().map(|(i, _)| i).collect()
            }
            ModelScan::Index {
                lower,
                upper,
                after,
            } => {
                let mut next = state.range(*lower, *upper);
                next.retain(|(key, order, _)| after.is_none_or(|a| (*key, *order) > a));
                next.truncate(rows);
                if let Some((key, order, _)) = next.last() {
                    *after = Some((*key, *order));
                }
                next.into_iter().map(|(_, _, i)| i).collect()
            }
        };
        if batch.is_empty() {
            *self = ModelScan::Done;
        }
        batch
    }
}

/// One batch from a real cursor, decoded.
fn next_batch(store: &Datastore, cursor: &mut Cursor, rows: usize) -> Vec<Item> {
    let mut out = Vec::new();
    let count = store.next_batch(cursor, rows, &mut out);
    let items = split_rows(&out);
    assert_eq!(items.len(), count, "batch count and bytes disagree");
    items
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut store = Datastore::new(vec![item_schema()]);
    // Fed only the committed deltas, as recovery from a commit log would be.
    let mut replica = Datastore::new(vec![item_schema()]);
    let mut committed = State::new();
    let mut working: Option<State> = None;
    let mut cursor: Option<(Cursor, ModelScan)> = None;
    let mut order = 0u64;
    for op in ops {
        match op {
            Op::Begin => {
                let result = store.begin();
                prop_assert_eq!(result.is_ok(), working.is_none());
                working.get_or_insert_with(|| committed.clone());
            }
            Op::Commit => {
                let Some(after) = working.take() else {
                    prop_assert!(store.commit().is_empty());
                    continue;
                };
                let delta = store.commit();
                let before = committed.rows_sorted();
                let now = after.rows_sorted();
                let mut expected_deletes: Vec<Item> = before
                    .iter()
                    .filter(|r| !now.contains(r))
                    .cloned()
                    .collect();
                let mut expected_inserts: Vec<Item> = now
                    .iter()
                    .filter(|r| !before.contains(r))
                    .cloned()
                    .collect();
                let (mut inserts, mut deletes) = (Vec::new(), Vec::new());
                for table in &delta.tables {
                    prop_assert_eq!(table.table, ITEM);
                    prop_assert!(!table.inserts.is_empty() || !table.deletes.is_empty());
                    inserts.extend(table.inserts.iter().map(|r| Item::decode(r)));
                    deletes.extend(table.deletes.iter().map(|r| Item::decode(r)));
                }
                for list in [
                    &mut expected_deletes,
                    &mut expected_inserts,
                    &mut inserts,
                    &mut deletes,
                ] {
                    list.sort();
                }
                prop_assert_eq!(inserts, expected_inserts);
                prop_assert_eq!(deletes, expected_deletes);
                replica.replay(&delta).expect("a committed delta replays");
                let mut replicated: Vec<Item> =
                    replica.rows(ITEM).unwrap().map(Item::decode).collect();
                replicated.sort();
                let mut expected = after.rows_sorted();
                expected.sort();
                prop_assert_eq!(replicated, expected);
                prop_assert_eq!(replica.sequences(), store.sequences());
                committed = after;
            }
            Op::Rollback => {
                store.rollback();
                working = None;
            }
            Op::Insert(row) => {
                let result = store.insert(ITEM, &row.encode());
                let Some(state) = working.as_mut() else {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotInTransaction);
                    continue;
                };
                let assigned = if row.id == 0 { state.next_id } else { row.id };
                if state.rows.contains_key(&assigned) || state.sku_taken(&row.sku, None) {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::UniqueViolation);
                } else {
                    let stored = Item::decode(&result.unwrap());
                    prop_assert_eq!(
                        &stored,
                        &Item {
                            id: assigned,
                            ..row
                        }
                    );
                    state.next_id = state.next_id.max(assigned + 1);
                    order += 1;
                    state.rows.insert(assigned, (stored, order));
                }
            }
            Op::Update(row) => {
                let result = store.update(ITEM, BY_ID, &row.encode());
                let Some(state) = working.as_mut() else {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotInTransaction);
                    continue;
                };
                if !state.rows.contains_key(&row.id) {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotFound);
                } else if state.sku_taken(&row.sku, Some(row.id)) {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::UniqueViolation);
                } else {
                    prop_assert_eq!(Item::decode(&result.unwrap()), row.clone());
                    if let Some((stored, _)) = state.rows.get_mut(&row.id) {
                        *stored = row;
                    }
                }
            }
            Op::UpdateBySku(row) => {
                let result = store.update(ITEM, BY_SKU, &row.encode());
                let Some(state) = working.as_mut() else {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotInTransaction);
                    continue;
                };
                match state.by_sku(&row.sku).cloned() {
                    None => prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotFound),
                    Some((old, _)) if old.id != row.id && state.rows.contains_key(&row.id) => {
                        prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::UniqueViolation);
                    }
                    Some((old, old_order)) => {
                        // Auto-increment columns are kept as given, 0 included,
                        // and an explicit id moves the sequence past it.
                        prop_assert_eq!(Item::decode(&result.unwrap()), row.clone());
                        state.next_id = state.next_id.max(row.id + 1);
                        state.rows.remove(&old.id);
                        state.rows.insert(row.id, (row, old_order));
                    }
                }
            }
            Op::Delete { id } => {
                let result = store.delete(ITEM, BY_ID, &key(&[Value::U32(id)]));
                let Some(state) = working.as_mut() else {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotInTransaction);
                    continue;
                };
                prop_assert_eq!(result.unwrap(), state.rows.remove(&id).is_some());
            }
            Op::Reinsert { id } => {
                let Some(state) = working.as_mut() else {
                    continue;
                };
                let Some((row, _)) = state.rows.remove(&id) else {
                    continue;
                };
                prop_assert!(store.delete(ITEM, BY_ID, &key(&[Value::U32(id)])).unwrap());
                let stored = store.insert(ITEM, &row.encode()).unwrap();
                prop_assert_eq!(Item::decode(&stored), row.clone());
                // An explicit id moves the sequence past it, as any insert does.
                state.next_id = state.next_id.max(id + 1);
                // A new row as far as order goes: it moves to the end.
                order += 1;
                state.rows.insert(id, (row, order));
            }
            Op::DeleteBySku { sku: s } => {
                let result = store.delete(ITEM, BY_SKU, &key(&[Value::String(sku(s).into())]));
                let Some(state) = working.as_mut() else {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotInTransaction);
                    continue;
                };
                let found = state.by_sku(&sku(s)).map(|(i, _)| i.id);
                prop_assert_eq!(result.unwrap(), found.is_some());
                if let Some(id) = found {
                    state.rows.remove(&id);
                }
            }
            Op::FindId { id } => {
                let state = working.as_ref().unwrap_or(&committed);
                let found = store.find(ITEM, BY_ID, &key(&[Value::U32(id)])).unwrap();
                let expected = state.rows.get(&id).map(|(i, _)| i.clone());
                prop_assert_eq!(found.map(|r| Item::decode(&r)), expected);
            }
            Op::FindSku { sku: s } => {
                let state = working.as_ref().unwrap_or(&committed);
                let found = store
                    .find(ITEM, BY_SKU, &key(&[Value::String(sku(s).into())]))
                    .unwrap();
                let expected = state.by_sku(&sku(s)).map(|(i, _)| i.clone());
                prop_assert_eq!(found.map(|r| Item::decode(&r)), expected);
            }
            Op::Range { lower, upper } => {
                let state = working.as_ref().unwrap_or(&committed);
                let cursor = store
                    .scan_index(ITEM, BY_OWNER_RANK, &key_bound(lower), &key_bound(upper))
                    .unwrap();
                let expected: Vec<Item> = state
                    .range(lower, upper)
                    .into_iter()
                    .map(|(_, _, i)| i)
                    .collect();
                prop_assert_eq!(drain(&store, cursor, 2), expected);
            }
            Op::OpenScan => {
                let real = store.scan(ITEM).unwrap();
                cursor = Some((real, ModelScan::Table { after: None }));
            }
            Op::OpenRange { lower, upper } => {
                let real = store
                    .scan_index(ITEM, BY_OWNER_RANK, &key_bound(lower), &key_bound(upper))
                    .unwrap();
                let model = ModelScan::Index {
                    lower,
                    upper,
                    after: None,
                };
                cursor = Some((real, model));
            }
            Op::NextBatch { rows } => {
                let Some((real, model)) = cursor.as_mut() else {
                    continue;
                };
                let state = working.as_ref().unwrap_or(&committed);
                let expected = model.next(state, rows);
                prop_assert_eq!(next_batch(&store, real, rows), expected);
            }
        }
        // Every step: the table matches the model, in insertion order.
        let state = working.as_ref().unwrap_or(&committed);
        let rows: Vec<Item> = store.rows(ITEM).unwrap().map(Item::decode).collect();
        prop_assert_eq!(rows, state.rows_sorted());
        prop_assert_eq!(store.count(ITEM).unwrap(), state.rows.len() as u64);
        prop_assert_eq!(store.in_transaction(), working.is_some());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn datastore_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut store = Datastore::new(vec![item_schema()]);
        store.begin().unwrap();
        for index in [BY_ID, BY_SKU, BY_OWNER_RANK] {
            let _ = store.update(ITEM, index, &bytes);
            let _ = store.delete(ITEM, index, &bytes);
            let _ = store.find(ITEM, index, &bytes);
            let bounds = [KeyBound::Included(bytes.clone()), KeyBound::Excluded(bytes.clone())];
            for (lower, upper) in [(&bounds[0], &bounds[1]), (&bounds[1], &bounds[0])] {
                if let Ok(mut cursor) = store.scan_index(ITEM, index, lower, upper) {
                    let _ = store.next_batch(&mut cursor, 10, &mut Vec::new());
                }
            }
        }
        if let Ok(row) = store.insert(ITEM, &bytes) {
            // Whatever was accepted is a valid row and can be found by its key.
            let item = Item::decode(&row);
            prop_assert!(store.find(ITEM, BY_ID, &key(&[Value::U32(item.id)])).unwrap().is_some());
        }
    }
}
