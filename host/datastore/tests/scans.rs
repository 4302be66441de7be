//! Scans: key ranges over prefixes and full keys, and cursors that resume
//! after their position while the table is written between batches.

mod common;

use common::*;
use worldline_datastore::{DbErrorKind, KeyBound, Value};

fn insert(store: &mut worldline_datastore::Datastore, item: &Item) -> Item {
    Item::decode(&store.insert(ITEM, &item.encode()).expect("insert"))
}

/// The first letters of the items' skus, to compare orders at a glance.
fn skus(items: &[Item]) -> String {
    items.iter().map(|i| &i.sku[..1]).collect()
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

// WIT `batch`: fewer rows than asked does not end a scan. A batch that
// reached the end of the table looked once more, found nothing and ended
// the scan, so a row inserted after it was never returned.
#[test]
fn a_batch_that_reaches_the_end_leaves_the_scan_open_for_rows_written_later() {
    let mut store = store();
    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "one", 1, 1));
    let mut cursor = store.scan(ITEM).unwrap();
    let mut out = Vec::new();
    let batch = |store: &worldline_datastore::Datastore, cursor: &mut _, out: &mut Vec<u8>| {
        store.next_batch_within(cursor, 5, 1 << 20, 16, out)
    };
    assert_eq!(batch(&store, &mut cursor, &mut out), 1);
    insert(&mut store, &Item::new(0, "two", 1, 2));
    assert_eq!(batch(&store, &mut cursor, &mut out), 1);
    assert_eq!(batch(&store, &mut cursor, &mut out), 0);
    // Over, and over for good: a row written now is not returned.
    insert(&mut store, &Item::new(0, "three", 1, 3));
    assert_eq!(batch(&store, &mut cursor, &mut out), 0);
    // Chunks of 2 over 5 rows asked: the short chunk ends the batch.
    let mut cursor = store.scan(ITEM).unwrap();
    assert_eq!(
        store.next_batch_within(&mut cursor, 5, 1 << 20, 2, &mut out),
        3
    );
    insert(&mut store, &Item::new(0, "four", 1, 4));
    assert_eq!(
        store.next_batch_within(&mut cursor, 5, 1 << 20, 2, &mut out),
        1
    );
}

#[test]
fn index_cursors_resume_after_their_position() {
    let mut store = store();
    store.begin().unwrap();
    for (sku, owner, rank) in [("a", 1, 1), ("b", 1, 2), ("c", 1, 3), ("d", 1, 4)] {
        insert(&mut store, &Item::new(0, sku, owner, rank));
    }
    let owner_one = KeyBound::Included(key(&[Value::U32(1)]));
    let mut cursor = store
        .scan_index(ITEM, BY_OWNER_RANK, &owner_one, &owner_one)
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(store.next_batch(&mut cursor, 2, &mut out), 2);
    assert_eq!(skus(&split_rows(&out)), "ab");
    // Asking for no rows returns none and keeps the cursor where it was.
    assert_eq!(store.next_batch(&mut cursor, 0, &mut out), 0);
    // Behind the position (not seen), ahead of it (seen), one deleted ahead,
    // one moved from behind to ahead (seen again), one moved out of range.
    insert(&mut store, &Item::new(0, "early", 1, 0));
    insert(&mut store, &Item::new(0, "late", 1, 9));
    store
        .delete(ITEM, BY_SKU, &key(&[Value::String("c".into())]))
        .unwrap();
    store
        .update(ITEM, BY_SKU, &Item::new(1, "a", 1, 5).encode())
        .unwrap();
    store
        .update(ITEM, BY_SKU, &Item::new(4, "d", 2, 4).encode())
        .unwrap();
    assert_eq!(skus(&drain(&store, cursor.clone(), 1)), "al");
    // An exhausted cursor stays exhausted.
    while store.next_batch(&mut cursor, 5, &mut Vec::new()) > 0 {}
    insert(&mut store, &Item::new(0, "after", 1, 99));
    assert_eq!(store.next_batch(&mut cursor, 5, &mut Vec::new()), 0);
}

#[test]
fn unique_multi_column_keys_need_every_column_except_in_ranges() {
    use worldline_datastore::{AlgebraicType, Field, IndexSchema, ProductType, TableSchema};
    let column = |name: &str, ty| Field {
        name: Some(name.into()),
        ty,
    };
    let mut store = worldline_datastore::Datastore::new(vec![TableSchema {
        name: "cell".into(),
        columns: ProductType {
            fields: vec![
                column("x", AlgebraicType::I32),
                column("label", AlgebraicType::String),
                column("y", AlgebraicType::I32),
            ],
        },
        primary_key: Some(0),
        indexes: vec![IndexSchema {
            name: "cell_xy".into(),
            columns: vec![0, 2],
            unique: true,
        }],
        auto_inc: vec![],
        public: true,
    }]);
    let cell = |x: i32, label: &str, y: i32| {
        key(&[Value::I32(x), Value::String(label.into()), Value::I32(y)])
    };
    let xy = |x: i32, y: i32| key(&[Value::I32(x), Value::I32(y)]);
    store.begin().unwrap();
    for (x, label, y) in [
        (0, "p", 1),
        (-1, "q", 5),
        (0, "r", -2),
        (1, "s", 0),
        (0, "t", 7),
    ] {
        store.insert(0, &cell(x, label, y)).unwrap();
    }
    assert_eq!(
        store.insert(0, &cell(0, "dup", 7)).unwrap_err().message,
        "duplicate key (0, 7) in unique index `cell_xy` of table `cell`"
    );
    let found = store.find(0, 0, &xy(0, -2)).unwrap().unwrap();
    assert_eq!(&found[..], &cell(0, "r", -2)[..]);
    let err = store.find(0, 0, &key(&[Value::I32(0)])).unwrap_err();
    assert_eq!(err.kind, DbErrorKind::InvalidKey);
    assert_eq!(
        err.message,
        "invalid key for index `cell_xy` of table `cell`: a full key has 2 columns, got 1"
    );
    assert_eq!(
        store.delete(0, 0, &key(&[Value::I32(0)])).unwrap_err().kind,
        DbErrorKind::InvalidKey
    );
    let labels = |lower: KeyBound, upper: KeyBound| -> Vec<String> {
        let mut cursor = store.scan_index(0, 0, &lower, &upper).unwrap();
        let mut out = Vec::new();
        let row_type = AlgebraicType::Product(store.tables()[0].columns.clone());
        while store.next_batch(&mut cursor, 2, &mut out) > 0 {}
        let mut input = &out[..];
        let mut labels = Vec::new();
        while !input.is_empty() {
            match worldline_datastore::decode_value(&row_type, &mut input).unwrap() {
                Value::Product(fields) => labels.push(fields[1].to_string()),
                other => panic!("not a row: {other}"),
            }
        }
        labels
    };
    let x0 = || key(&[Value::I32(0)]);
    assert_eq!(
        labels(KeyBound::Included(x0()), KeyBound::Included(x0())),
        ["\"r\"", "\"p\"", "\"t\""]
    );
    assert_eq!(
        labels(KeyBound::Excluded(x0()), KeyBound::Unbounded),
        ["\"s\""]
    );
    assert_eq!(
        labels(KeyBound::Unbounded, KeyBound::Excluded(x0())),
        ["\"q\""]
    );
    assert_eq!(
        labels(KeyBound::Excluded(xy(0, -2)), KeyBound::Included(xy(0, 1))),
        ["\"p\""]
    );
    // A range whose lower end is above its upper end is empty.
    assert!(labels(KeyBound::Included(xy(1, 0)), KeyBound::Excluded(x0())).is_empty());
}

#[test]
fn handles_can_be_kept_across_threads_and_writes() {
    fn owned_and_sendable<T: Send + Sync + 'static>() {}
    owned_and_sendable::<worldline_datastore::Datastore>();
    owned_and_sendable::<worldline_datastore::Cursor>();
    owned_and_sendable::<worldline_datastore::TxDelta>();
}
