//! #11 item 2: a table whose rows were mostly taken out gives its rows new
//! ids and moves them into fresh pages between transactions. Rows, their
//! order, every index, scans, later writes and rollback behave as before.

mod common;

use common::*;
use worldline_datastore::{Datastore, KeyBound, Value};

fn items(store: &Datastore) -> Vec<Item> {
    store.rows(ITEM).unwrap().map(Item::decode).collect()
}

fn id_key(id: u32) -> Vec<u8> {
    key(&[Value::U32(id)])
}

// #11 item 2
#[test]
fn a_table_left_sparse_keeps_its_rows_order_and_indexes() {
    let mut store = store();
    store.begin().unwrap();
    for n in 0..20_000u32 {
        let sku = format!("sku{n:05}");
        // Long and short rows, so that pages hold rows of many lengths.
        let sku = if n % 7 == 0 { sku.repeat(40) } else { sku };
        store
            .insert(ITEM, &Item::new(0, &sku, n % 50, n as i32).encode())
            .unwrap();
    }
    store.commit();
    // Keep every tenth row: taken-out rows outnumber the rest.
    store.begin().unwrap();
    for id in (1..=20_000u32).filter(|id| id % 10 != 0) {
        assert!(store.delete(ITEM, BY_ID, &id_key(id)).unwrap());
    }
    let expected: Vec<Item> = items(&store);
    store.commit();
    assert_eq!(items(&store), expected, "same rows, same order");
    assert_eq!(store.count(ITEM).unwrap(), 2_000);

    // Every index still finds every row, and nothing else.
    for item in &expected {
        let by_id = store.find(ITEM, BY_ID, &id_key(item.id)).unwrap();
        assert_eq!(by_id.map(|r| Item::decode(&r)).as_ref(), Some(item));
        let sku = key(&[Value::String(item.sku.as_str().into())]);
        let by_sku = store.find(ITEM, BY_SKU, &sku).unwrap();
        assert_eq!(by_sku.map(|r| Item::decode(&r)).as_ref(), Some(item));
    }
    assert!(store.find(ITEM, BY_ID, &id_key(11)).unwrap().is_none());
    let owner = KeyBound::Included(key(&[Value::U32(30)]));
    let cursor = store
        .scan_index(ITEM, BY_OWNER_RANK, &owner, &owner)
        .unwrap();
    let mut by_owner: Vec<Item> = expected.iter().filter(|i| i.owner == 30).cloned().collect();
    by_owner.sort_by_key(|i| i.rank);
    assert_eq!(drain(&store, cursor, 7), by_owner);
    assert_eq!(drain(&store, store.scan(ITEM).unwrap(), 333), expected);

    // Writes after it: an update keeps its place, an insert goes last, and
    // a rolled-back transaction leaves everything as it was.
    store.begin().unwrap();
    let first = &expected[0];
    let moved = Item::new(first.id, &first.sku, 99, -1);
    store.update(ITEM, BY_ID, &moved.encode()).unwrap();
    let added = Item::decode(
        &store
            .insert(ITEM, &Item::new(0, "new", 1, 1).encode())
            .unwrap(),
    );
    assert_eq!(added.id, 20_001, "the sequence went on");
    store.commit();
    let mut now = expected.clone();
    now[0] = moved;
    now.push(added);
    assert_eq!(items(&store), now);
    store.begin().unwrap();
    for item in &now[..500] {
        assert!(store.delete(ITEM, BY_ID, &id_key(item.id)).unwrap());
    }
    store.rollback();
    assert_eq!(items(&store), now);
    assert_eq!(drain(&store, store.scan(ITEM).unwrap(), 64), now);
}
