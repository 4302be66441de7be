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
