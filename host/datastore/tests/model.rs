//! Property test: random sequences of transactions, writes and reads agree
//! at every step with a simple model of the same table.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use worldline_datastore::{Datastore, DbErrorKind, KeyBound, Value};

#[derive(Clone, Debug)]
enum Op {
    Begin,
    Commit,
    Rollback,
    Insert {
        id: u32,
        sku: u8,
        owner: u32,
        rank: i32,
    },
    Update {
        id: u32,
        sku: u8,
        owner: u32,
        rank: i32,
    },
    Delete {
        id: u32,
    },
    FindSku {
        sku: u8,
    },
    ScanOwner {
        owner: u32,
        low: i32,
        high: i32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    // Small domains so that keys collide often.
    let id = prop_oneof![Just(0u32), 1u32..8];
    prop_oneof![
        2 => Just(Op::Begin),
        1 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        6 => (id.clone(), 0u8..6, 0u32..3, -3i32..3).prop_map(|(id, sku, owner, rank)| Op::Insert { id, sku, owner, rank }),
        3 => (1u32..8, 0u8..6, 0u32..3, -3i32..3).prop_map(|(id, sku, owner, rank)| Op::Update { id, sku, owner, rank }),
        2 => (1u32..8).prop_map(|id| Op::Delete { id }),
        2 => (0u8..6).prop_map(|sku| Op::FindSku { sku }),
        2 => (0u32..3, -3i32..3, -3i32..4).prop_map(|(owner, low, high)| Op::ScanOwner { owner, low, high }),
    ]
}

/// The model: rows by id, each with the order it was first inserted in.
#[derive(Clone, Default, Debug)]
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

    fn sku_taken(&self, sku: &str, except: Option<u32>) -> bool {
        self.rows
            .values()
            .any(|(i, _)| i.sku == sku && Some(i.id) != except)
    }

    fn rows_sorted(&self) -> Vec<Item> {
        let mut rows: Vec<_> = self.rows.values().cloned().collect();
        rows.sort_by_key(|(_, order)| *order);
        rows.into_iter().map(|(i, _)| i).collect()
    }
}

fn sku(n: u8) -> String {
    format!("sku{n}")
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut store = Datastore::new(vec![item_schema()]);
    // Fed only the committed deltas, as recovery from a commit log would be.
    let mut replica = Datastore::new(vec![item_schema()]);
    let mut committed = State::new();
    let mut working: Option<State> = None;
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
                    continue;
                };
                let delta = store.commit();
                let before: Vec<Item> = committed.rows_sorted();
                let now: Vec<Item> = after.rows_sorted();
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
                let mut replicated: Vec<Item> = replica
                    .rows(ITEM)
                    .unwrap()
                    .map(|r| Item::decode(r))
                    .collect();
                replicated.sort();
                let mut expected = after.rows_sorted();
                expected.sort();
                prop_assert_eq!(replicated, expected);
                prop_assert_eq!(replica.sequences(), store.sequences());
                committed = after;
            }
            Op::Rollback => {
                if working.take().is_some() {
                    store.rollback();
                }
            }
            Op::Insert {
                id,
                sku: s,
                owner,
                rank,
            } => {
                let result = store.insert(ITEM, &Item::new(id, &sku(s), owner, rank).encode());
                let Some(state) = working.as_mut() else {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotInTransaction);
                    continue;
                };
                let assigned = if id == 0 { state.next_id } else { id };
                if state.rows.contains_key(&assigned) || state.sku_taken(&sku(s), None) {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::UniqueViolation);
                } else {
                    let stored = Item::decode(&result.unwrap());
                    prop_assert_eq!(&stored, &Item::new(assigned, &sku(s), owner, rank));
                    if assigned >= state.next_id {
                        state.next_id = assigned + 1;
                    }
                    order += 1;
                    state.rows.insert(assigned, (stored, order));
                }
            }
            Op::Update {
                id,
                sku: s,
                owner,
                rank,
            } => {
                let row = Item::new(id, &sku(s), owner, rank);
                let result = store.update(ITEM, BY_ID, &row.encode());
                let Some(state) = working.as_mut() else {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotInTransaction);
                    continue;
                };
                if !state.rows.contains_key(&id) {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::NotFound);
                } else if state.sku_taken(&sku(s), Some(id)) {
                    prop_assert_eq!(result.unwrap_err().kind, DbErrorKind::UniqueViolation);
                } else {
                    prop_assert!(result.is_ok());
                    state.rows.get_mut(&id).unwrap().0 = row;
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
            Op::FindSku { sku: s } => {
                let state = working.as_ref().unwrap_or(&committed);
                let found = store
                    .find(ITEM, BY_SKU, &key(&[Value::String(sku(s).into())]))
                    .unwrap()
                    .map(|r| Item::decode(&r));
                let expected = state
                    .rows
                    .values()
                    .map(|(i, _)| i)
                    .find(|i| i.sku == sku(s))
                    .cloned();
                prop_assert_eq!(found, expected);
            }
            Op::ScanOwner { owner, low, high } => {
                let state = working.as_ref().unwrap_or(&committed);
                let cursor = store
                    .scan_index(
                        ITEM,
                        BY_OWNER_RANK,
                        &KeyBound::Included(key(&[Value::U32(owner), Value::I32(low)])),
                        &KeyBound::Excluded(key(&[Value::U32(owner), Value::I32(high)])),
                    )
                    .unwrap();
                let found = drain(&store, cursor, 2);
                let mut expected: Vec<(Item, u64)> = state
                    .rows
                    .values()
                    .filter(|(i, _)| i.owner == owner && i.rank >= low && i.rank < high)
                    .cloned()
                    .collect();
                expected.sort_by_key(|(i, order)| (i.rank, *order));
                let expected: Vec<Item> = expected.into_iter().map(|(i, _)| i).collect();
                prop_assert_eq!(found, expected);
            }
        }
        // Every step: the table scan matches the model, in insertion order.
        let state = working.as_ref().unwrap_or(&committed);
        let rows: Vec<Item> = store.rows(ITEM).unwrap().map(|r| Item::decode(r)).collect();
        prop_assert_eq!(rows, state.rows_sorted());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn datastore_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

proptest! {
    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut store = Datastore::new(vec![item_schema()]);
        store.begin().unwrap();
        let _ = store.insert(ITEM, &bytes);
        let _ = store.find(ITEM, BY_SKU, &bytes);
        let _ = store.scan_index(ITEM, BY_OWNER_RANK, &KeyBound::Included(bytes.clone()), &KeyBound::Excluded(bytes));
    }
}
