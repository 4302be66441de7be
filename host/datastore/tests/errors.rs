//! Every error kind, and messages that name the table, index and key.

mod common;

use common::*;
use worldline_datastore::{DbErrorKind, KeyBound, ModuleSchema, SchemaError, Value};

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
fn messages_name_the_table_index_and_key() {
    let mut store = store();
    store.begin().unwrap();
    insert(&mut store, &Item::new(7, "a", 1, 1));
    let err = store
        .insert(ITEM, &Item::new(7, "b", 1, 1).encode())
        .unwrap_err();
    assert_eq!(
        err.message,
        "duplicate key (7) in unique index `item_id` of table `item`"
    );
    let err = store
        .update(ITEM, BY_ID, &Item::new(8, "b", 1, 1).encode())
        .unwrap_err();
    assert_eq!(
        err.message,
        "no row has key (8) in unique index `item_id` of table `item`"
    );
    let mut truncated = Item::new(7, "a", 1, 1).encode();
    truncated.pop();
    let err = store.insert(ITEM, &truncated).unwrap_err();
    assert_eq!(
        err.message,
        "invalid row for table `item`: column \"rank\": expected i32, input ended inside a varint"
    );
    let err = store.find(ITEM, BY_SKU, &[3, b'a']).unwrap_err();
    assert_eq!(
        err.message,
        "invalid key for index `item_sku` of table `item`: column \"sku\": \
         expected string, length 3 but 1 bytes left"
    );
    let err = store.find(ITEM, BY_ID, &[7, 0]).unwrap_err();
    assert_eq!(
        err.message,
        "invalid key for index `item_id` of table `item`: trailing 1 bytes after the last key column"
    );
    assert_eq!(
        store.update(ITEM, BY_OWNER_RANK, &[]).unwrap_err().message,
        "index `item_owner_rank` of table `item` is not unique"
    );
    assert_eq!(
        store.count(5).unwrap_err().message,
        "no table has id 5 (1 tables)"
    );
    assert_eq!(
        store
            .scan_index(ITEM, 3, &KeyBound::Unbounded, &KeyBound::Unbounded)
            .unwrap_err()
            .message,
        "table `item` has no index 3 (3 indexes)"
    );
    store.commit();
    for err in [
        store.insert(ITEM, &[]).unwrap_err(),
        store.update(ITEM, BY_ID, &[]).unwrap_err(),
        store.delete(ITEM, BY_ID, &[]).unwrap_err(),
    ] {
        assert_eq!(err.kind, DbErrorKind::NotInTransaction);
        assert_eq!(err.message, "writes need an open transaction");
    }
    // Reads work outside transactions.
    assert_eq!(store.count(ITEM).unwrap(), 1);
    assert!(
        store
            .find(ITEM, BY_ID, &key(&[Value::U32(7)]))
            .unwrap()
            .is_some()
    );
}

#[test]
fn schema_validation_names_the_problem() {
    let valid = ModuleSchema {
        tables: vec![item_schema()],
        reducers: vec![],
        procedures: Vec::new(),
        schedules: Vec::new(),
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

fn insert(store: &mut worldline_datastore::Datastore, item: &Item) -> Item {
    Item::decode(&store.insert(ITEM, &item.encode()).expect("insert"))
}
