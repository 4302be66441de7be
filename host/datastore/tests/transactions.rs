//! Transactions: writes, unique constraints, auto-increment sequences,
//! rollback and the net delta of each commit.

mod common;

use common::*;
use worldline_datastore::{DbErrorKind, KeyBound, Value};

fn insert(store: &mut worldline_datastore::Datastore, item: &Item) -> Item {
    Item::decode(&store.insert(ITEM, &item.encode()).expect("insert"))
}

#[test]
fn writes_need_a_transaction() {
    let mut store = store();
    let err = store
        .insert(ITEM, &Item::new(0, "a", 1, 1).encode())
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::NotInTransaction);
    store.begin().unwrap();
    assert_eq!(
        store.begin().unwrap_err().kind,
        DbErrorKind::NotInTransaction
    );
}

#[test]
fn auto_increment_fills_zero_and_skips_past_explicit_ids() {
    let mut store = store();
    store.begin().unwrap();
    assert_eq!(insert(&mut store, &Item::new(0, "a", 1, 1)).id, 1);
    assert_eq!(insert(&mut store, &Item::new(10, "b", 1, 1)).id, 10);
    assert_eq!(insert(&mut store, &Item::new(0, "c", 1, 1)).id, 11);
    assert_eq!(insert(&mut store, &Item::new(5, "d", 1, 1)).id, 5);
    assert_eq!(insert(&mut store, &Item::new(0, "e", 1, 1)).id, 12);
}

#[test]
fn unique_violations_change_nothing() {
    let mut store = store();
    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "a", 1, 1));
    let err = store
        .insert(ITEM, &Item::new(0, "a", 2, 2).encode())
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::UniqueViolation);
    assert!(
        err.message.contains("item_sku") && err.message.contains("\"a\""),
        "{err}"
    );
    let err = store
        .insert(ITEM, &Item::new(1, "z", 2, 2).encode())
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::UniqueViolation);
    assert_eq!(store.count(ITEM).unwrap(), 1);
    // The failed inserts did not consume sequence values.
    assert_eq!(insert(&mut store, &Item::new(0, "b", 1, 1)).id, 2);
}

#[test]
fn update_by_key_checks_other_unique_indexes() {
    let mut store = store();
    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "a", 1, 1));
    insert(&mut store, &Item::new(0, "b", 1, 2));
    let err = store
        .update(ITEM, BY_ID, &Item::new(2, "a", 1, 2).encode())
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::UniqueViolation);
    let err = store
        .update(ITEM, BY_ID, &Item::new(9, "q", 1, 2).encode())
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::NotFound);
    let err = store
        .update(ITEM, BY_OWNER_RANK, &Item::new(2, "q", 1, 2).encode())
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::IndexNotUnique);
    store
        .update(ITEM, BY_SKU, &Item::new(2, "b", 7, 7).encode())
        .unwrap();
    let found = store
        .find(ITEM, BY_ID, &key(&[Value::U32(2)]))
        .unwrap()
        .unwrap();
    assert_eq!(Item::decode(&found), Item::new(2, "b", 7, 7));
}

#[test]
fn updating_to_identical_bytes_changes_nothing() {
    let mut store = store();
    store.begin().unwrap();
    let stored = store
        .insert(ITEM, &Item::new(0, "a", 1, 1).encode())
        .unwrap();
    store.commit();
    store.begin().unwrap();
    let again = store.update(ITEM, BY_SKU, &stored).unwrap();
    // Rows live in the table's pages, so the answer is a copy of the same bytes.
    assert_eq!(stored, again, "the stored row is returned as is");
    assert!(store.commit().is_empty());
}

#[test]
fn rollback_restores_rows_indexes_and_sequences() {
    let mut store = store();
    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "a", 1, 1));
    insert(&mut store, &Item::new(0, "b", 1, 2));
    store.commit();

    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "c", 1, 3));
    store
        .update(ITEM, BY_ID, &Item::new(1, "a2", 5, 5).encode())
        .unwrap();
    assert!(
        store
            .delete(ITEM, BY_SKU, &key(&[Value::String("b".into())]))
            .unwrap()
    );
    // Read-your-writes inside the transaction.
    assert_eq!(store.count(ITEM).unwrap(), 2);
    assert!(
        store
            .find(ITEM, BY_SKU, &key(&[Value::String("a2".into())]))
            .unwrap()
            .is_some()
    );
    store.rollback();

    let rows: Vec<Item> = store.rows(ITEM).unwrap().map(Item::decode).collect();
    assert_eq!(rows, vec![Item::new(1, "a", 1, 1), Item::new(2, "b", 1, 2)]);
    assert!(
        store
            .find(ITEM, BY_SKU, &key(&[Value::String("a2".into())]))
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find(ITEM, BY_SKU, &key(&[Value::String("a".into())]))
            .unwrap()
            .is_some()
    );
    let owner_one = store
        .scan_index(
            ITEM,
            BY_OWNER_RANK,
            &KeyBound::Included(key(&[Value::U32(1)])),
            &KeyBound::Included(key(&[Value::U32(1)])),
        )
        .unwrap();
    assert_eq!(drain(&store, owner_one, 10).len(), 2);
    store.begin().unwrap();
    assert_eq!(
        insert(&mut store, &Item::new(0, "d", 1, 1)).id,
        3,
        "the sequence was rolled back"
    );
}

#[test]
fn commit_returns_the_net_delta() {
    let mut store = store();
    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "a", 1, 1));
    insert(&mut store, &Item::new(0, "b", 1, 1));
    insert(&mut store, &Item::new(0, "c", 1, 1));
    store.commit();

    store.begin().unwrap();
    // Inserted then deleted: nowhere.
    insert(&mut store, &Item::new(0, "tmp", 1, 1));
    store
        .delete(ITEM, BY_SKU, &key(&[Value::String("tmp".into())]))
        .unwrap();
    // Deleted and re-inserted identically: nowhere.
    store.delete(ITEM, BY_ID, &key(&[Value::U32(1)])).unwrap();
    insert(&mut store, &Item::new(1, "a", 1, 1));
    // Updated twice: old row deleted, final row inserted.
    store
        .update(ITEM, BY_ID, &Item::new(2, "b", 2, 2).encode())
        .unwrap();
    store
        .update(ITEM, BY_ID, &Item::new(2, "b", 3, 3).encode())
        .unwrap();
    // Updated to identical bytes: nothing.
    store
        .update(ITEM, BY_ID, &Item::new(3, "c", 1, 1).encode())
        .unwrap();
    let delta = store.commit();

    assert_eq!(delta.tables.len(), 1);
    let table = &delta.tables[0];
    assert_eq!(table.table, ITEM);
    let inserts: Vec<Item> = table.inserts.iter().map(|r| Item::decode(r)).collect();
    let deletes: Vec<Item> = table.deletes.iter().map(|r| Item::decode(r)).collect();
    assert_eq!(inserts, vec![Item::new(2, "b", 3, 3)]);
    assert_eq!(deletes, vec![Item::new(2, "b", 1, 1)]);

    store.begin().unwrap();
    assert!(store.commit().is_empty());
}

#[test]
fn commits_report_moved_sequences_and_rollbacks_do_not() {
    let mut store = store();
    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "a", 1, 1));
    store.rollback();
    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "a", 1, 1));
    insert(&mut store, &Item::new(0, "b", 1, 1));
    let delta = store.commit();
    assert_eq!(
        delta.sequences,
        [worldline_datastore::SequenceState {
            table: ITEM,
            sequence: 0,
            next: 3
        }]
    );
    assert_eq!(store.sequences(), delta.sequences);
    // A refused update moves nothing; an update to an explicit value past
    // the sequence moves it past that value, as an insert would.
    store.begin().unwrap();
    store
        .update(ITEM, BY_ID, &Item::new(9, "a", 1, 1).encode())
        .unwrap_err();
    assert!(store.sequences().iter().all(|s| s.next == 3));
    store
        .update(ITEM, BY_SKU, &Item::new(9, "a", 1, 1).encode())
        .unwrap();
    let delta = store.commit();
    assert_eq!(
        delta.sequences,
        [worldline_datastore::SequenceState {
            table: ITEM,
            sequence: 0,
            next: 10
        }]
    );
    assert_eq!(delta.tables[0].inserts.len(), 1);
    // So inserting 0 takes a free value.
    store.begin().unwrap();
    assert_eq!(insert(&mut store, &Item::new(0, "c", 1, 1)).id, 10);
    store.rollback();
}

/// `counter(n: u8 auto-inc, big: u128 auto-inc)` with a unique index on `n`.
fn counter_store() -> worldline_datastore::Datastore {
    use worldline_datastore::{AlgebraicType, Field, IndexSchema, ProductType, TableSchema};
    let column = |name: &str, ty| Field {
        name: Some(name.into()),
        ty,
    };
    worldline_datastore::Datastore::new(vec![TableSchema {
        name: "counter".into(),
        columns: ProductType {
            fields: vec![
                column("n", AlgebraicType::U8),
                column("big", AlgebraicType::U128),
            ],
        },
        primary_key: Some(0),
        indexes: vec![IndexSchema {
            name: "counter_n".into(),
            columns: vec![0],
            unique: true,
        }],
        auto_inc: vec![0, 1],
        public: false,
    }])
}

#[test]
fn sequences_run_out_at_the_column_type_limit() {
    let mut store = counter_store();
    let row = |n: u8, big: u128| key(&[Value::U8(n), Value::U128(big)]);
    store.begin().unwrap();
    assert_eq!(&store.insert(0, &row(0, 7)).unwrap()[..], &row(1, 7)[..]);
    assert_eq!(
        &store.insert(0, &row(255, 9)).unwrap()[..],
        &row(255, 9)[..]
    );
    let err = store.insert(0, &row(0, 10)).unwrap_err();
    assert_eq!(err.kind, DbErrorKind::SequenceExhausted);
    assert_eq!(
        err.message,
        "the sequence of column `n` of table `counter` has no values left (next would be 256)"
    );
    store.delete(0, 0, &key(&[Value::U8(1)])).unwrap();
    // u128 runs out after handing out u128::MAX.
    assert_eq!(
        &store.insert(0, &row(1, u128::MAX)).unwrap()[..],
        &row(1, u128::MAX)[..]
    );
    assert_eq!(store.sequences()[1].next, 0, "0 stands for exhausted");
    store.delete(0, 0, &key(&[Value::U8(1)])).unwrap();
    let err = store.insert(0, &row(1, 0)).unwrap_err();
    assert_eq!(err.kind, DbErrorKind::SequenceExhausted);
    assert!(err.message.contains("column `big`"), "{err}");
    let delta = store.commit();
    let nexts: Vec<u128> = delta.sequences.iter().map(|s| s.next).collect();
    assert_eq!(nexts, [256, 0]);
}

// Lookups by key are remembered between a find and the update that
// follows it; whatever changes the index must make them look again.
#[test]
fn finds_see_every_change_to_the_index() {
    let mut store = store();
    let find = |store: &worldline_datastore::Datastore, id: u32| {
        store
            .find(ITEM, BY_ID, &key(&[Value::U32(id)]))
            .unwrap()
            .map(|row| Item::decode(&row))
    };
    store.begin().unwrap();
    insert(&mut store, &Item::new(1, "a", 1, 1));
    insert(&mut store, &Item::new(2, "b", 1, 1));
    store.commit();
    assert_eq!(find(&store, 1).unwrap().sku, "a");
    assert_eq!(find(&store, 2).unwrap().sku, "b");

    store.begin().unwrap();
    assert!(store.delete(ITEM, BY_ID, &key(&[Value::U32(1)])).unwrap());
    assert_eq!(find(&store, 1), None, "deleted");
    insert(&mut store, &Item::new(1, "c", 1, 1));
    assert_eq!(find(&store, 1).unwrap().sku, "c", "inserted again");
    store.rollback();
    assert_eq!(find(&store, 1).unwrap().sku, "a", "rolled back");

    store.begin().unwrap();
    store
        .update(ITEM, BY_SKU, &Item::new(7, "b", 2, 2).encode())
        .unwrap();
    assert_eq!(
        find(&store, 2),
        None,
        "the update by sku moved the row to id 7"
    );
    assert_eq!(find(&store, 7).unwrap().owner, 2);
    store.rollback();
    assert_eq!(find(&store, 2).unwrap().sku, "b");
    assert_eq!(find(&store, 7), None);
}

#[test]
fn index_bytes_follow_the_rows_through_writes_and_rollbacks() {
    let mut store = store();
    assert_eq!(store.index_bytes(ITEM), 0);
    store.begin().unwrap();
    insert(&mut store, &Item::new(1, "abc", 1, 1));
    let one = store.index_bytes(ITEM);
    assert!(one > 0);
    // A longer string key takes more.
    insert(&mut store, &Item::new(2, "abcdefgh", 1, 2));
    assert_eq!(store.index_bytes(ITEM), 2 * one + 5);
    // An update moves the keys, and their bytes, that change.
    store
        .update(ITEM, BY_ID, &Item::new(2, "xyz", 3, 4).encode())
        .unwrap();
    assert_eq!(store.index_bytes(ITEM), 2 * one);
    store.rollback();
    assert_eq!(store.index_bytes(ITEM), 0);

    store.begin().unwrap();
    insert(&mut store, &Item::new(1, "abc", 1, 1));
    store.commit();
    assert_eq!(store.all_index_bytes(), one);
    store.begin().unwrap();
    assert!(store.delete(ITEM, BY_ID, &key(&[Value::U32(1)])).unwrap());
    assert_eq!(store.index_bytes(ITEM), 0);
    store.rollback();
    assert_eq!(
        store.index_bytes(ITEM),
        one,
        "the rollback put the row back"
    );
    assert_eq!(store.index_bytes(99), 0);
}
