//! Every datastore capability, exercised by a real module through the host:
//! unique and primary-key lookups, updates and deletes, multi-column btree
//! prefixes and ranges, auto-increment, iteration, counting, cursors that
//! survive writes, unique violations; and the sandbox's refusals.

use serde::Deserialize;
use worldline_host::{CallContext, CallError, Database};
use worldline_tests::{ALICE, FEATURE_ITEMS, args, create_database, patient_engine, rows};

#[derive(Deserialize)]
struct Observation {
    key: String,
    value: String,
}

fn call(db: &mut Database, reducer: &str, arguments: Vec<u8>) -> Result<(), CallError> {
    db.call_reducer(reducer, &arguments, CallContext::new(ALICE))
        .map(drop)
}

fn observed(db: &Database, key: &str) -> String {
    rows::<Observation>(db, "observation")
        .into_iter()
        .find(|o| o.key == key)
        .unwrap_or_else(|| panic!("nothing observed under `{key}`"))
        .value
}

fn stocked() -> Database {
    let mut db = create_database(&patient_engine(), "features");
    for (i, item) in FEATURE_ITEMS.iter().enumerate() {
        call(&mut db, "add_item", args(item)).expect("add_item");
        assert_eq!(
            observed(&db, "last_id"),
            (i + 1).to_string(),
            "auto-increment ids"
        );
    }
    db
}

#[test]
fn multi_column_index_prefix_and_range() {
    let mut db = stocked();
    call(&mut db, "items_of_owner", args(&(1u32,))).unwrap();
    // owner 1's items by rank: c(-2), a(3), f(5), d(7)
    assert_eq!(observed(&db, "items_of_owner"), "3,1,6,4");
    call(&mut db, "items_of_owner_ranked", args(&(1u32, 0i32, 6i32))).unwrap();
    assert_eq!(observed(&db, "items_of_owner_ranked"), "1,6");
    call(&mut db, "items_of_owner", args(&(42u32,))).unwrap();
    assert_eq!(observed(&db, "items_of_owner"), "");
}

#[test]
fn btree_range_returns_equal_keys_in_insertion_order() {
    let mut db = stocked();
    call(&mut db, "items_priced", args(&(100u64, 500u64))).unwrap();
    assert_eq!(observed(&db, "items_priced"), "2,3,4,1");
}

#[test]
fn unique_find_update_delete() {
    let mut db = stocked();
    call(&mut db, "find_sku", args(&("d",))).unwrap();
    assert_eq!(observed(&db, "find_sku"), "4");
    call(&mut db, "reprice", args(&("d", 1000u64))).unwrap();
    call(&mut db, "items_priced", args(&(901u64, 2000u64))).unwrap();
    assert_eq!(
        observed(&db, "items_priced"),
        "4",
        "the price index follows the update"
    );
    call(&mut db, "delete_sku", args(&("d",))).unwrap();
    assert_eq!(observed(&db, "delete_sku"), "true");
    call(&mut db, "delete_sku", args(&("d",))).unwrap();
    assert_eq!(observed(&db, "delete_sku"), "false");
    call(&mut db, "find_sku", args(&("d",))).unwrap();
    assert_eq!(observed(&db, "find_sku"), "none");
    call(&mut db, "survey", args(&())).unwrap();
    assert_eq!(observed(&db, "count"), "5");
    assert_eq!(observed(&db, "all_ids"), "1,2,3,5,6");
}

#[test]
fn unique_violation_is_an_error_and_changes_nothing() {
    let mut db = stocked();
    match call(&mut db, "add_item", args(&("b", 9u32, 9i32, 9u64))) {
        Err(CallError::Failed(message)) => {
            assert!(
                message.contains("sku") || message.contains("unique"),
                "{message}"
            )
        }
        other => panic!("a duplicate sku was accepted: {other:?}"),
    }
    call(&mut db, "survey", args(&())).unwrap();
    assert_eq!(observed(&db, "count"), FEATURE_ITEMS.len().to_string());
    // A failed insert does not consume an auto-increment value.
    call(&mut db, "add_item", args(&("g", 9u32, 9i32, 9u64))).unwrap();
    assert_eq!(
        observed(&db, "last_id"),
        (FEATURE_ITEMS.len() + 1).to_string()
    );
}

#[test]
fn cursors_survive_deletes_across_batches() {
    let mut db = create_database(&patient_engine(), "features");
    call(&mut db, "churn", args(&(1000u32,))).unwrap();
    assert_eq!(observed(&db, "churn_deleted"), "500");
    call(&mut db, "survey", args(&())).unwrap();
    assert_eq!(observed(&db, "count"), "500");
}

#[test]
fn the_sandbox_grants_no_files_environment_or_network() {
    let mut db = create_database(&patient_engine(), "features");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    call(&mut db, "probe_sandbox", args(&(addr,))).expect("probing must not trap");
    for key in ["file", "dir", "tcp"] {
        let outcome = observed(&db, key);
        assert!(outcome.starts_with("denied"), "{key}: {outcome}");
    }
    assert_eq!(observed(&db, "env"), "0");
    assert_eq!(observed(&db, "args"), "0");
    assert!(
        listener.accept().is_err(),
        "the module reached a loopback socket"
    );
}

#[derive(serde::Serialize)]
enum Status {
    Active,
    Suspended { reason: String, until: Option<u64> },
    Tagged(u8),
}

#[test]
fn init_runs_once_as_the_owner() {
    let db = create_database(&patient_engine(), "features");
    assert_eq!(
        observed(&db, "init_sender"),
        worldline_tests::OWNER.to_string()
    );
}

#[test]
fn user_defined_enums_cross_the_boundary() {
    let mut db = create_database(&patient_engine(), "features");
    for (status, seen) in [
        (Status::Active, "Active"),
        (
            Status::Suspended {
                reason: "late".into(),
                until: Some(7),
            },
            r#"Suspended { reason: "late", until: Some(7) }"#,
        ),
        (Status::Tagged(3), "Tagged(3)"),
    ] {
        call(&mut db, "record_status", args(&(status,))).unwrap();
        assert_eq!(observed(&db, "status"), seen);
    }
    // Case 3 does not exist: the host refuses the arguments before the module runs.
    match call(&mut db, "record_status", vec![3]) {
        Err(CallError::InvalidArguments { message, .. }) => {
            assert!(message.contains("case 3"), "{message}")
        }
        other => panic!("an unknown enum case was accepted: {other:?}"),
    }
    let schema = db.schema();
    let params = &schema.reducers[schema.reducer_id("record_status").unwrap()].params;
    assert_eq!(
        params.fields[0].ty.to_string(),
        "{Active | Suspended(reason: string, until: Option<u64>) | Tagged(u8)}"
    );
}

#[test]
fn private_tables_are_flagged_private_in_the_schema() {
    let db = create_database(&patient_engine(), "features");
    let schema = db.schema();
    let table = |name: &str| &schema.tables[schema.table_id(name).unwrap()];
    assert!(table("item").public);
    assert!(!table("observation").public);
    let item = table("item");
    let by_owner_rank = &item.indexes[item
        .index_id("by_owner_rank")
        .expect("named multi-column index")];
    assert_eq!(
        by_owner_rank.columns,
        vec![
            item.column_id("owner").unwrap(),
            item.column_id("rank").unwrap()
        ]
    );
}

// An SDK call that panics (`insert` on a taken unique key) names the
// module's own line, not the SDK's source on the machine that built it.
#[test]
fn an_sdk_panic_names_the_modules_line() {
    let mut db = create_database(&patient_engine(), "features");
    let identity = [9u8; 32];
    call(&mut db, "ban", args(&(identity,))).expect("the first ban");
    match call(&mut db, "ban", args(&(identity,))) {
        Err(CallError::Panicked(message)) => assert!(
            message.contains("duplicate key")
                && message.ends_with("features/src/lib.rs:249)")
                && !message.contains("handles.rs"),
            "{message}"
        ),
        other => panic!("a second ban of the same identity was accepted: {other:?}"),
    }
}
