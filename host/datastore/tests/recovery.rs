//! Rebuilding a datastore by replaying committed deltas.

mod common;

use common::*;
use worldline_datastore::DbErrorKind;

fn insert(store: &mut worldline_datastore::Datastore, item: &Item) -> Item {
    Item::decode(&store.insert(ITEM, &item.encode()).expect("insert"))
}

#[test]
fn replay_needs_no_open_transaction_and_a_matching_state() {
    let mut store = store();
    store.begin().unwrap();
    insert(&mut store, &Item::new(0, "a", 1, 1));
    let delta = store.commit();
    let mut replica = common::store();
    replica.begin().unwrap();
    assert_eq!(
        replica.replay(&delta).unwrap_err().kind,
        DbErrorKind::NotInTransaction
    );
    replica.rollback();
    replica.replay(&delta).unwrap();
    assert_eq!(replica.sequences(), store.sequences());
    // The same insert again is a unique violation; deleting a row the replica lacks is NotFound.
    assert_eq!(
        replica.replay(&delta).unwrap_err().kind,
        DbErrorKind::UniqueViolation
    );
    let mut missing = delta.clone();
    missing.tables[0].deletes = vec![Item::new(5, "zz", 1, 1).encode().into()];
    missing.tables[0].inserts.clear();
    assert_eq!(
        replica.replay(&missing).unwrap_err().kind,
        DbErrorKind::NotFound
    );
}

/// The items of `store`, in its row order.
fn items(store: &worldline_datastore::Datastore) -> Vec<Item> {
    store.rows(ITEM).unwrap().map(Item::decode).collect()
}

fn sorted(store: &worldline_datastore::Datastore) -> Vec<Item> {
    let mut all = items(store);
    all.sort();
    all
}

/// Runs `write` in a transaction of `store` and replays its delta on
/// `replica`, which must then hold the same rows, in the same order if `in_order`.
fn replicate(
    store: &mut worldline_datastore::Datastore,
    replica: &mut worldline_datastore::Datastore,
    in_order: bool,
    write: impl FnOnce(&mut worldline_datastore::Datastore),
) {
    store.begin().unwrap();
    write(store);
    let delta = store.commit();
    replica.replay(&delta).expect("a committed delta replays");
    assert_eq!(sorted(replica), sorted(store));
    if in_order {
        assert_eq!(items(replica), items(store), "the rows in the same order");
    }
    assert_eq!(replica.sequences(), store.sequences());
}

fn update(store: &mut worldline_datastore::Datastore, item: &Item) {
    store.update(ITEM, BY_ID, &item.encode()).expect("update");
}

// #10 item 6: an update replays as a replacement in place, so a recovered
// table keeps the row order its updates kept (before, updated rows moved
// to the end); and the many-row case pairs rows through sorted keys.
#[test]
fn replayed_updates_keep_rows_in_place_as_the_updates_did() {
    let (mut store, mut replica) = (store(), store());
    replicate(&mut store, &mut replica, true, |store| {
        for n in 1..=30 {
            insert(store, &Item::new(0, &format!("sku{n}"), n % 3, n as i32));
        }
    });
    // One row, then many in one transaction (past the linear pairing).
    replicate(&mut store, &mut replica, true, |store| {
        update(store, &Item::new(1, "sku1", 7, -1));
    });
    replicate(&mut store, &mut replica, true, |store| {
        for n in (2..=30).step_by(2) {
            update(store, &Item::new(n, &format!("sku{n}"), 9, 100 + n as i32));
        }
    });
    assert_eq!(items(&replica)[0], Item::new(1, "sku1", 7, -1));
    assert_eq!(items(&replica)[1], Item::new(2, "sku2", 9, 102));
}

// #10 item 6: rows whose other unique keys change are not paired, so keys
// swapped between rows within a transaction replay without a spurious
// unique violation; a deleted-and-inserted row replays too.
#[test]
fn replay_handles_swapped_unique_keys_and_delete_then_insert() {
    let (mut store, mut replica) = (store(), store());
    replicate(&mut store, &mut replica, true, |store| {
        insert(store, &Item::new(0, "x", 1, 1));
        insert(store, &Item::new(0, "y", 1, 2));
        insert(store, &Item::new(0, "z", 1, 3));
    });
    // Not paired (their `sku` changes), so these rows move to the end.
    replicate(&mut store, &mut replica, false, |store| {
        update(store, &Item::new(1, "tmp", 1, 1));
        update(store, &Item::new(2, "x", 1, 2));
        update(store, &Item::new(1, "y", 1, 1));
    });
    // Replayed as a replacement in place, unlike the new row it was.
    replicate(&mut store, &mut replica, false, |store| {
        let three = key(&[worldline_datastore::Value::U32(3)]);
        assert!(store.delete(ITEM, BY_ID, &three).unwrap());
        insert(store, &Item::new(3, "z", 2, 3));
    });
}

// #10 item 6: a delta that does not belong to the state is a typed error,
// never a panic, when its rows pair up as updates too.
#[test]
fn replayed_updates_that_do_not_apply_are_errors() {
    let (mut store, mut replica) = (store(), store());
    replicate(&mut store, &mut replica, true, |store| {
        insert(store, &Item::new(0, "a", 1, 1));
        insert(store, &Item::new(0, "b", 1, 2));
    });
    store.begin().unwrap();
    update(&mut store, &Item::new(1, "a", 5, 5));
    let delta = store.commit();
    let table = |deletes: Vec<Item>, inserts: Vec<Item>| {
        let rows = |items: Vec<Item>| items.iter().map(|i| i.encode()).collect::<Vec<_>>();
        (rows(deletes), rows(inserts))
    };
    let cases = [
        // The deleted row's bytes differ from the stored row's.
        (
            table(vec![Item::new(1, "a", 1, 9)], vec![Item::new(1, "a", 5, 5)]),
            DbErrorKind::NotFound,
        ),
        // The same row deleted twice.
        (
            table(
                vec![Item::new(1, "a", 1, 1), Item::new(1, "a", 1, 1)],
                vec![Item::new(1, "a", 5, 5)],
            ),
            DbErrorKind::NotFound,
        ),
        // Two inserted rows with the deleted row's key.
        (
            table(
                vec![Item::new(1, "a", 1, 1)],
                vec![Item::new(1, "a", 5, 5), Item::new(1, "a", 6, 6)],
            ),
            DbErrorKind::UniqueViolation,
        ),
        // An inserted row taking another row's unique key.
        (
            table(vec![Item::new(1, "a", 1, 1)], vec![Item::new(1, "b", 5, 5)]),
            DbErrorKind::UniqueViolation,
        ),
    ];
    for ((deletes, inserts), kind) in cases {
        let mut copy = common::store();
        copy.replay_rows(
            ITEM,
            &[] as &[Vec<u8>],
            &items(&replica)
                .iter()
                .map(|i| i.encode())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(
            copy.replay_rows(ITEM, &deletes, &inserts).unwrap_err().kind,
            kind
        );
    }
    // Bytes that are not a row are an invalid row.
    let mut copy = common::store();
    let garbage = vec![vec![0xffu8; 3]];
    assert_eq!(
        copy.replay_rows(ITEM, &garbage, &garbage).unwrap_err().kind,
        DbErrorKind::InvalidRow
    );
    replica.replay(&delta).unwrap();
}

/// A row for the replay fuzz target: an item with a small id and sku (so
/// rows collide with stored ones), or arbitrary bytes.
fn fuzz_row() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0u32..6, 0u8..4, 0u32..3, -2i32..3)
            .prop_map(|(id, sku, owner, rank)| Item::new(id, &format!("s{sku}"), owner, rank).encode()),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

proptest::proptest! {
    #![proptest_config(common::arbitrary::cases(256))]

    // #10 item 6: whatever a delta holds (rows that pair up, rows that do
    // not, duplicates, garbage), replaying it is Ok or a typed error, never
    // a panic, and leaves the tables consistent: every stored row can still
    // be found through its indexes, updated and deleted.
    // Run longer with PROPTEST_CASES=100000.
    #[test]
    fn replaying_any_delta_never_panics_and_keeps_the_tables_consistent(
        deletes in proptest::collection::vec(fuzz_row(), 0..12),
        inserts in proptest::collection::vec(fuzz_row(), 0..12),
    ) {
        let mut replica = store();
        let seed: Vec<Vec<u8>> = (1..=4)
            .map(|n| Item::new(n, &format!("s{n}"), n % 2, n as i32).encode())
            .collect();
        replica.replay_rows(ITEM, &[] as &[Vec<u8>], &seed).unwrap();
        let _ = replica.replay_rows(ITEM, &deletes, &inserts);
        let stored = items(&replica);
        replica.begin().unwrap();
        for item in &stored {
            let id = key(&[worldline_datastore::Value::U32(item.id)]);
            let found = replica.find(ITEM, BY_ID, &id).unwrap().expect("indexed by id");
            proptest::prop_assert_eq!(Item::decode(&found), item.clone());
            let moved = Item::new(item.id, &item.sku, item.owner + 10, item.rank);
            replica.update(ITEM, BY_ID, &moved.encode()).unwrap();
            proptest::prop_assert!(replica.delete(ITEM, BY_ID, &id).unwrap());
        }
        proptest::prop_assert_eq!(replica.count(ITEM).unwrap(), 0);
        replica.rollback();
        proptest::prop_assert_eq!(items(&replica), stored);
    }
}

// #10 item 6: rows read back from a checksummed log record or snapshot are
// not validated again. Validated replay gives the state a validating replay
// gives, skips the row checks (a row with trailing bytes goes in, and can
// still be found, updated and deleted without a panic) and keeps the state
// checks (a delete of a missing row is an error).
#[test]
fn validated_replay_skips_row_checks_but_not_state_checks() {
    let mut store = store();
    let (mut checked, mut validated) = (common::store(), common::store());
    let writes: [&dyn Fn(&mut worldline_datastore::Datastore); 2] = [
        &|store| {
            for n in 1..=20 {
                insert(store, &Item::new(0, &format!("sku{n}"), n % 3, n as i32));
            }
        },
        &|store| {
            update(store, &Item::new(4, "sku4", 8, 40));
            update(store, &Item::new(5, "renamed", 1, 5));
            let six = key(&[worldline_datastore::Value::U32(6)]);
            assert!(store.delete(ITEM, BY_ID, &six).unwrap());
        },
    ];
    for write in writes {
        store.begin().unwrap();
        write(&mut store);
        let delta = store.commit();
        checked.replay(&delta).unwrap();
        for table in &delta.tables {
            validated
                .replay_validated_rows(table.table, &table.deletes, &table.inserts)
                .unwrap();
        }
        for sequence in &delta.sequences {
            validated.replay_sequence(sequence).unwrap();
        }
        assert_eq!(items(&validated), items(&checked));
        assert_eq!(validated.sequences(), checked.sequences());
    }
    let mut trailing = Item::new(50, "fifty", 1, 1).encode();
    trailing.push(7);
    let rows = [trailing];
    let none: &[Vec<u8>] = &[];
    assert_eq!(
        checked.replay_rows(ITEM, none, &rows).unwrap_err().kind,
        DbErrorKind::InvalidRow
    );
    validated.replay_validated_rows(ITEM, none, &rows).unwrap();
    let fifty = key(&[worldline_datastore::Value::U32(50)]);
    validated.begin().unwrap();
    let found = validated
        .find(ITEM, BY_ID, &fifty)
        .unwrap()
        .expect("stored");
    assert_eq!(found[..], rows[0][..]);
    update(&mut validated, &Item::new(50, "fifty", 2, 2));
    assert!(validated.delete(ITEM, BY_ID, &fifty).unwrap());
    validated.commit();
    let missing = [Item::new(99, "gone", 1, 1).encode()];
    assert_eq!(
        validated
            .replay_validated_rows(ITEM, &missing, none)
            .unwrap_err()
            .kind,
        DbErrorKind::NotFound
    );
}
