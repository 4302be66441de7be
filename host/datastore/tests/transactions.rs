//! Datastore behaviour: constraints, sequences, rollback, deltas, cursors
//! and ranges, each observed through the public API.

mod common;

use common::*;
use worldline_datastore::{DbErrorKind, KeyBound, ModuleSchema, SchemaError, Value};

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
fn bad_ids_and_bytes_are_typed_errors() {
    let mut store = store();
    store.begin().unwrap();
    assert_eq!(store.count(3).unwrap_err().kind, DbErrorKind::NoSuchTable);
    assert_eq!(
        store.find(ITEM, 9, &[1]).unwrap_err().kind,
        DbErrorKind::NoSuchIndex
    );
    assert_eq!(
        store.insert(ITEM, &[1, 2]).unwrap_err().kind,
        DbErrorKind::InvalidRow
    );
    let mut long = Item::new(0, "a", 1, 1).encode();
    long.push(0);
    assert_eq!(
        store.insert(ITEM, &long).unwrap_err().kind,
        DbErrorKind::InvalidRow
    );
    assert_eq!(
        store.find(ITEM, BY_ID, &[]).unwrap_err().kind,
        DbErrorKind::InvalidKey
    );
    assert_eq!(
        store.find(ITEM, BY_ID, &[1, 1]).unwrap_err().kind,
        DbErrorKind::InvalidKey
    );
    assert_eq!(
        store.delete(ITEM, BY_OWNER_RANK, &[1, 1]).unwrap_err().kind,
        DbErrorKind::IndexNotUnique
    );
    let prefix_where_full_needed = store.scan_index(
        ITEM,
        BY_OWNER_RANK,
        &KeyBound::Included(vec![0xff]),
        &KeyBound::Unbounded,
    );
    assert_eq!(
        prefix_where_full_needed.unwrap_err().kind,
        DbErrorKind::InvalidKey
    );
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

    let rows: Vec<Item> = store.rows(ITEM).unwrap().map(|r| Item::decode(r)).collect();
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
fn prefix_and_full_key_ranges_on_a_two_column_index() {
    let mut store = store();
    store.begin().unwrap();
    for (sku, owner, rank) in [
        ("a", 1, 5),
        ("b", 2, 0),
        ("c", 1, -1),
        ("d", 1, 5),
        ("e", 3, 9),
        ("f", 1, 8),
    ] {
        insert(&mut store, &Item::new(0, sku, owner, rank));
    }
    let skus = |lower: KeyBound, upper: KeyBound| -> String {
        let cursor = store
            .scan_index(ITEM, BY_OWNER_RANK, &lower, &upper)
            .unwrap();
        drain(&store, cursor, 2)
            .into_iter()
            .map(|i| i.sku)
            .collect()
    };
    let one = || key(&[Value::U32(1)]);
    let k = |owner, rank| key(&[Value::U32(owner), Value::I32(rank)]);
    assert_eq!(
        skus(KeyBound::Included(one()), KeyBound::Included(one())),
        "cadf"
    );
    assert_eq!(skus(KeyBound::Excluded(one()), KeyBound::Unbounded), "be");
    assert_eq!(skus(KeyBound::Unbounded, KeyBound::Excluded(one())), "");
    assert_eq!(skus(KeyBound::Unbounded, KeyBound::Included(one())), "cadf");
    assert_eq!(
        skus(KeyBound::Included(k(1, 0)), KeyBound::Excluded(k(1, 8))),
        "ad"
    );
    assert_eq!(
        skus(KeyBound::Excluded(k(1, 5)), KeyBound::Included(k(2, 0))),
        "fb"
    );
    assert_eq!(skus(KeyBound::Unbounded, KeyBound::Unbounded), "cadfbe");
}

#[test]
fn cursors_resume_after_writes_between_batches() {
    let mut store = store();
    store.begin().unwrap();
    for i in 0..10 {
        insert(&mut store, &Item::new(0, &format!("s{i}"), 1, i));
    }
    let mut cursor = store.scan(ITEM).unwrap();
    let mut out = Vec::new();
    assert_eq!(store.next_batch(&mut cursor, 4, &mut out), 4);
    // Delete a row already returned and one not yet returned; add one at the end.
    store.delete(ITEM, BY_ID, &key(&[Value::U32(2)])).unwrap();
    store.delete(ITEM, BY_ID, &key(&[Value::U32(7)])).unwrap();
    insert(&mut store, &Item::new(0, "late", 1, 99));
    let rest = drain(&store, cursor, 3);
    let ids: Vec<u32> = rest.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![5, 6, 8, 9, 10, 11]);
}

#[test]
fn schema_validation_names_the_problem() {
    let valid = ModuleSchema {
        tables: vec![item_schema()],
        reducers: vec![],
    };
    assert_eq!(valid.validate(), Ok(()));
    let broken = |edit: fn(&mut ModuleSchema)| {
        let mut schema = valid.clone();
        edit(&mut schema);
        schema.validate().unwrap_err()
    };
    let err = broken(|s| s.tables.push(s.tables[0].clone()));
    assert!(
        matches!(err, SchemaError::Table { ref table, .. } if table == "item"),
        "{err}"
    );
    assert!(
        broken(|s| s.tables[0].indexes[2].columns = vec![2, 9])
            .to_string()
            .contains("column 9")
    );
    assert!(
        broken(|s| s.tables[0].primary_key = Some(BY_OWNER_RANK))
            .to_string()
            .contains("not unique")
    );
    assert!(
        broken(|s| s.tables[0].auto_inc = vec![1])
            .to_string()
            .contains("not an integer")
    );
    assert!(
        broken(|s| s.tables[0].columns.fields[1].name = Some("id".into()))
            .to_string()
            .contains("two columns")
    );
    assert!(
        broken(|s| s.tables[0].indexes[1].name = "item_id".into())
            .to_string()
            .contains("same name")
    );
}
