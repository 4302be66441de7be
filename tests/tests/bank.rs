//! The bank module through the host API: transfers, and every way a
//! reducer can fail leaving the database unchanged and still serving.

use worldline_host::{CallContext, CallError, Database};
use worldline_tests::{
    ALICE, Account, args, create_database, rows, test_engine, test_engine_config,
};

fn seeded_bank(accounts: u32, balance: i64) -> Database {
    let mut db = create_database(&test_engine(), "bank");
    db.call_reducer("seed", &args(&(accounts, balance)), CallContext::new(ALICE))
        .expect("seed");
    db
}

fn balances(db: &Database) -> Vec<(u32, i64)> {
    let mut accounts: Vec<_> = rows::<Account>(db, "account")
        .into_iter()
        .map(|a| (a.id, a.balance))
        .collect();
    accounts.sort();
    accounts
}

fn call(db: &mut Database, reducer: &str, arguments: Vec<u8>) -> Result<(), CallError> {
    db.call_reducer(reducer, &arguments, CallContext::new(ALICE))
        .map(drop)
}

/// A failed call leaves every balance as it was and the next transfer still commits.
fn assert_unchanged_and_serving(db: &mut Database, before: &[(u32, i64)]) {
    assert_eq!(balances(db), before, "a failed call changed the tables");
    call(db, "transfer", args(&(0u32, 1u32, 1i64))).expect("the database serves the next call");
    assert_eq!(balances(db)[0].1, before[0].1 - 1);
    assert_eq!(balances(db)[1].1, before[1].1 + 1);
}

#[test]
fn seed_creates_accounts() {
    let db = seeded_bank(5, 100);
    assert_eq!(
        balances(&db),
        (0..5).map(|id| (id, 100)).collect::<Vec<_>>()
    );
}

#[test]
fn transfer_moves_money_and_reports_two_updates() {
    let mut db = seeded_bank(3, 100);
    let outcome = db
        .call_reducer(
            "transfer",
            &args(&(0u32, 2u32, 40i64)),
            CallContext::new(ALICE),
        )
        .expect("transfer");
    assert_eq!(balances(&db), vec![(0, 60), (1, 100), (2, 140)]);
    let [table] = outcome.delta.tables.as_slice() else {
        panic!("expected one changed table, got {:?}", outcome.delta);
    };
    let decode = |rows: &[worldline_host::datastore::Row]| {
        let mut v: Vec<Account> = rows
            .iter()
            .map(|r| postcard::from_bytes(r).unwrap())
            .collect();
        v.sort_by_key(|a| a.id);
        v
    };
    assert_eq!(
        decode(&table.deletes),
        vec![
            Account {
                id: 0,
                balance: 100
            },
            Account {
                id: 2,
                balance: 100
            }
        ]
    );
    assert_eq!(
        decode(&table.inserts),
        vec![
            Account { id: 0, balance: 60 },
            Account {
                id: 2,
                balance: 140
            }
        ]
    );
}

#[test]
fn transfer_errors_name_the_problem_and_change_nothing() {
    let mut db = seeded_bank(3, 100);
    let before = balances(&db);
    for (arguments, expected) in [
        (args(&(0u32, 7u32, 10i64)), "7"),
        (args(&(9u32, 1u32, 10i64)), "9"),
        (args(&(0u32, 1u32, 1000i64)), "insufficient"),
        (args(&(0u32, 1u32, 0i64)), "positive"),
        (args(&(1u32, 1u32, 5i64)), "same"),
    ] {
        match call(&mut db, "transfer", arguments) {
            Err(CallError::Failed(message)) => assert!(
                message.to_lowercase().contains(expected),
                "error `{message}` should mention `{expected}`"
            ),
            other => panic!("expected a reducer error mentioning `{expected}`, got {other:?}"),
        }
    }
    assert_unchanged_and_serving(&mut db, &before);
}

#[test]
fn error_after_a_write_rolls_it_back() {
    let mut db = seeded_bank(3, 100);
    let before = balances(&db);
    let result = call(&mut db, "fail_after_write", args(&(1u32,)));
    assert!(
        matches!(result, Err(CallError::Failed(_))),
        "got {result:?}"
    );
    assert_unchanged_and_serving(&mut db, &before);
}

#[test]
fn panic_after_a_write_rolls_it_back_and_reports_the_message() {
    let mut db = seeded_bank(3, 100);
    let before = balances(&db);
    match call(&mut db, "panic_after_write", args(&(1u32,))) {
        Err(CallError::Panicked(message)) => {
            assert!(message.contains("boom"), "message: {message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_unchanged_and_serving(&mut db, &before);
    // The instance was rebuilt: panicking again works the same way.
    assert!(matches!(
        call(&mut db, "panic_after_write", args(&(2u32,))),
        Err(CallError::Panicked(_))
    ));
    let after_first = balances(&db);
    assert_unchanged_and_serving(&mut db, &after_first);
}

#[test]
fn infinite_loop_is_stopped_at_the_deadline() {
    let mut db = seeded_bank(3, 100);
    let before = balances(&db);
    let started = std::time::Instant::now();
    let result = call(&mut db, "spin", args(&()));
    assert_eq!(
        result,
        Err(CallError::DeadlineExceeded(
            test_engine_config().reducer_deadline
        ))
    );
    // Generous bound: the point is that the loop was stopped at all.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_unchanged_and_serving(&mut db, &before);
}

#[test]
fn memory_cap_stops_a_hog_and_allows_modest_use() {
    let mut db = seeded_bank(3, 100);
    let before = balances(&db);
    call(&mut db, "hog_memory", args(&(4u32,))).expect("4 MiB is within the cap");
    let result = call(&mut db, "hog_memory", args(&(200u32,)));
    assert_eq!(
        result,
        Err(CallError::OutOfMemory {
            limit_bytes: test_engine_config().memory_limit_bytes
        })
    );
    assert_unchanged_and_serving(&mut db, &before);
}

#[test]
fn duplicate_primary_key_is_rejected_and_rolled_back() {
    let mut db = seeded_bank(3, 100);
    let before = balances(&db);
    match call(&mut db, "insert_duplicate", args(&(2u32,))) {
        Err(CallError::Panicked(message)) => {
            assert!(
                message.contains("duplicate") || message.contains("unique"),
                "message: {message}"
            )
        }
        other => panic!("expected the unique violation to abort the reducer, got {other:?}"),
    }
    assert_unchanged_and_serving(&mut db, &before);
}

#[test]
fn bad_calls_are_rejected_before_running() {
    let mut db = seeded_bank(3, 100);
    let before = balances(&db);
    assert_eq!(
        call(&mut db, "no_such_reducer", args(&())),
        Err(CallError::NoSuchReducer("no_such_reducer".into()))
    );
    // Too few bytes, trailing bytes, and a string where integers belong.
    for bad in [
        vec![1u8],
        args(&(0u32, 1u32, 5i64, 9u8)),
        args(&("zero", "one", 5i64)),
    ] {
        match call(&mut db, "transfer", bad.clone()) {
            Err(CallError::InvalidArguments { reducer, .. }) => assert_eq!(reducer, "transfer"),
            other => panic!("arguments {bad:?} should be rejected, got {other:?}"),
        }
    }
    assert_unchanged_and_serving(&mut db, &before);
}

#[test]
fn invalid_component_bytes_are_a_clear_error() {
    let engine = test_engine();
    let err = match Database::create(&engine, b"definitely not wasm", worldline_tests::OWNER) {
        Err(err) => err,
        Ok(_) => panic!("garbage bytes were accepted as a module"),
    };
    assert!(
        err.to_string()
            .contains("not a valid WebAssembly component"),
        "{err}"
    );
}
