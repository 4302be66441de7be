//! A module that misbehaves on purpose (`guest-rust/test-modules/hostile*`)
//! against a real host: each abuse hits a limit that is named in the
//! error, the host's memory stays bounded, and the database keeps serving.

use std::time::Duration;

use worldline_host::{CallContext, CallError, Database, Engine, EngineConfig, HostError, Identity};
use worldline_tests::{OWNER, args, create_database, guest_wasm, test_engine, test_engine_config};

fn call(db: &mut Database, reducer: &str, arguments: &[u8]) -> Result<(), CallError> {
    db.call_reducer(reducer, arguments, CallContext::new(OWNER))
        .map(drop)
}

/// An engine with a pool of `instances`, or `None` (said on stderr) where
/// the pooling allocator is unavailable.
fn pooled_engine(instances: u32) -> Option<Engine> {
    let engine = engine_with(|c| {
        c.pooling = true;
        c.max_instances = instances;
    });
    if !engine.uses_pooling() {
        eprintln!("the pooling allocator is unavailable here; nothing to test");
        return None;
    }
    Some(engine)
}

fn engine_with(adjust: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = test_engine_config();
    adjust(&mut config);
    Engine::new(config).expect("creating the wasm engine")
}

// #9 item 10: 20 lines of 8 MiB used to be kept whole (160 MiB of log);
// now each line is cut to the line limit and the log to its byte budget.
#[test]
fn huge_log_lines_are_cut_and_the_log_stays_within_its_byte_budget() {
    let engine = engine_with(|c| {
        c.memory_limit_bytes = 64 << 20;
        c.max_log_bytes = 256 << 10;
    });
    let mut db = create_database(&engine, "hostile");
    call(&mut db, "log_lines", &args(&(20u32, 8u32 << 20))).expect("logging");
    let log = db.log();
    let max_line = EngineConfig::default().max_log_line_bytes;
    assert!(
        log.bytes() <= 256 << 10,
        "{} bytes of log kept",
        log.bytes()
    );
    assert_eq!(log.records().count(), 16, "16 KiB lines fit 16 to 256 KiB");
    for record in log.records() {
        assert!(record.message.len() <= max_line, "{}", record.message.len());
        // What the host holds, not only what it shows.
        assert!(
            record.message.capacity() <= max_line,
            "{}",
            record.message.capacity()
        );
        assert!(record.message.ends_with(" bytes]"), "no cut marker");
    }
    drop(log);
    call(&mut db, "log_lines", &args(&(100u32, 10_000u32))).expect("logging");
    assert!(db.log().bytes() <= 256 << 10);
    assert!(db.log().dropped() > 0, "old lines make room for new ones");
}

// #9 item 11: cursors a module never drops used to pile up across calls
// until the 4,096-entry resource table was full (the fifth call of 1,000
// failed with a backtrace); now they are closed when each call ends.
#[test]
fn cursors_left_open_are_closed_when_the_call_ends() {
    let engine = test_engine();
    let mut db = create_database(&engine, "hostile");
    call(&mut db, "seed", &args(&(10u32,))).expect("seeding");
    for round in 0..10 {
        call(&mut db, "leak_cursors", &args(&(1000u32,)))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    call(&mut db, "scan_count", &[]).expect("scanning after the leaks");
    let log = db.log();
    let last = log.records().last().expect("a log line");
    assert_eq!(last.message, "scanned 10 rows");
}

// #9 item 11: too many cursors at once in one call is refused with a
// message naming the limit, and the database keeps serving.
#[test]
fn too_many_cursors_in_one_call_names_the_limit() {
    let engine = engine_with(|c| c.max_cursors_per_call = 100);
    let mut db = create_database(&engine, "hostile");
    call(&mut db, "seed", &args(&(3u32,))).expect("seeding");
    let error = call(&mut db, "leak_cursors", &args(&(101u32,))).expect_err("over the cap");
    let CallError::LimitExceeded(message) = &error else {
        panic!("expected a named limit, got {error:?}");
    };
    assert!(
        message.contains("100 open cursors") && message.contains("max_cursors_per_call"),
        "{message}"
    );
    call(&mut db, "leak_cursors", &args(&(100u32,))).expect("at the cap");
    call(&mut db, "scan_count", &[]).expect("the database still serves");
}

// #9 item 10: a transaction's row bytes are a per-database quota.
#[test]
fn a_transaction_writing_past_its_quota_is_refused_and_changes_nothing() {
    let engine = engine_with(|c| c.max_tx_write_bytes = 1 << 20);
    let mut db = create_database(&engine, "hostile");
    let error = call(&mut db, "write_rows", &args(&(0u32, 64u32, 64u32 << 10))).expect_err("4 MiB");
    assert!(
        matches!(&error, CallError::LimitExceeded(m) if m.contains("1048576 bytes") && m.contains("max_tx_write_bytes")),
        "{error:?}"
    );
    assert_eq!(
        db.rows("blob").expect("rows").len(),
        0,
        "nothing was written"
    );
    call(&mut db, "write_rows", &args(&(0u32, 8u32, 64u32 << 10))).expect("512 KiB fits");
    assert_eq!(db.rows("blob").expect("rows").len(), 8);
}

// #9 item 10: the rows a database holds are a quota too, across transactions.
#[test]
fn a_database_past_its_row_bytes_quota_refuses_more_rows() {
    let engine = engine_with(|c| c.max_database_bytes = 1 << 20);
    let mut db = create_database(&engine, "hostile");
    for round in 0..3u32 {
        call(
            &mut db,
            "write_rows",
            &args(&(round * 4, 4u32, 64u32 << 10)),
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    let error =
        call(&mut db, "write_rows", &args(&(100u32, 8u32, 64u32 << 10))).expect_err("past 1 MiB");
    assert!(
        matches!(&error, CallError::LimitExceeded(m) if m.contains("max_database_bytes")),
        "{error:?}"
    );
    assert_eq!(
        db.rows("blob").expect("rows").len(),
        12,
        "the refused rows are not there"
    );
}

// #9 item 12: a reducer that loops names its deadline (as before) and the
// database goes on serving.
#[test]
fn a_reducer_that_loops_is_stopped_at_its_deadline() {
    let engine = test_engine();
    let mut db = create_database(&engine, "hostile");
    let error = call(&mut db, "spin", &[]).expect_err("interrupted");
    assert_eq!(
        error,
        CallError::DeadlineExceeded(Duration::from_millis(500))
    );
    call(&mut db, "seed", &args(&(1u32,))).expect("the database still serves");
}

// #9 item 11 (the class: WASI resources, not only cursors): streams a
// module opens and never drops fill the resource table; the trap names the
// limit, and the call's fresh instance serves the next call.
#[test]
fn leaked_wasi_streams_hit_a_named_resource_limit() {
    let mut db = create_database(&test_engine(), "hostile");
    call(&mut db, "leak_streams", &args(&(100u32,))).expect("well under the table's limit");
    let error = call(&mut db, "leak_streams", &args(&(5000u32,))).expect_err("past 4096");
    assert!(
        matches!(&error, CallError::LimitExceeded(m) if m.contains("4096 resources")),
        "{error:?}"
    );
    call(&mut db, "seed", &args(&(1u32,))).expect("the database still serves");
    call(&mut db, "leak_streams", &args(&(4000u32,))).expect("a fresh table after the trap");
}

// #9 item 4: a `describe` that panics is reported with the panic's message.
#[test]
fn a_describe_that_panics_reports_the_panic_message() {
    let error = Database::create(&test_engine(), &guest_wasm("describe_panics"), OWNER)
        .err()
        .expect("describe panics");
    assert!(matches!(error, HostError::DescribeTrapped(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("panicked: this type refuses to describe itself"),
        "{error}"
    );
}

// #9 item 4: a trap that is not a panic carries the line the module
// logged, or printed on stderr, just before it; a later trap does not
// repeat those lines.
#[test]
fn a_trap_carries_the_last_line_the_module_logged_during_the_call() {
    let mut db = create_database(&test_engine(), "hostile");
    let error = call(&mut db, "log_then_trap", &args(&(true,))).expect_err("traps");
    assert!(
        matches!(&error, CallError::Trapped(m)
            if m.contains("the module's last log line: invariant broken")),
        "{error:?}"
    );
    let error = call(&mut db, "print_then_trap", &[]).expect_err("traps");
    assert!(
        matches!(&error, CallError::Trapped(m)
            if m.contains("its last output on stderr: fatal: the ledger does not balance")
                && !m.contains("log line")),
        "{error:?}"
    );
    let error = call(&mut db, "log_then_trap", &args(&(false,))).expect_err("traps");
    assert!(
        matches!(&error, CallError::Trapped(m) if !m.contains("log line") && !m.contains("stderr")),
        "{error:?}"
    );
    // An abort says what it most likely was, not only wasm's trap code.
    assert!(
        matches!(&error, CallError::Trapped(m)
            if m.contains("`unreachable` instruction executed: the module aborted")),
        "{error:?}"
    );
}

// #9 item 12: a `describe` that loops used to say only "trap: interrupt".
#[test]
fn a_describe_that_loops_names_the_deadline() {
    let error = Database::create(&test_engine(), &guest_wasm("hostile_describe"), OWNER)
        .err()
        .expect("describe never returns");
    assert!(matches!(error, HostError::DescribeTimedOut(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "describe did not return within the 500ms deadline"
    );
}

// #9 item 12: a constructor that loops used to be reported as a world mismatch.
#[test]
fn a_constructor_that_loops_is_a_timeout_not_a_world_mismatch() {
    let error = Database::create(&test_engine(), &guest_wasm("hostile_start"), OWNER)
        .err()
        .expect("the constructor never returns");
    assert!(matches!(error, HostError::StartTimedOut(_)), "{error:?}");
    assert!(error.to_string().contains("500ms deadline"), "{error}");
}

// #9 item 12: a truncated module.wasm says so, with the parser's reason.
#[test]
fn a_truncated_component_is_reported_as_truncated() {
    let wasm = guest_wasm("hostile");
    for cut in [wasm.len() / 2, wasm.len() - 1, 100] {
        let error = Database::create(&test_engine(), &wasm[..cut], OWNER)
            .err()
            .expect("a truncated component");
        assert!(
            matches!(error, HostError::TruncatedComponent(_)),
            "cut at {cut}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("truncated") && message.contains("failed to parse"),
            "{message}"
        );
    }
}

// #9 item 13: a full instance pool used to be reported as a world mismatch.
#[test]
fn a_full_instance_pool_is_reported_with_its_size() {
    let Some(engine) = pooled_engine(4) else {
        return;
    };
    let wasm = guest_wasm("hostile");
    let owner = Identity::from_bytes([7; 32]);
    let databases: Vec<Database> = (0..4)
        .map(|i| {
            Database::create(&engine, &wasm, owner)
                .unwrap_or_else(|e| panic!("database {i} of 4: {e}"))
        })
        .collect();
    let error = Database::create(&engine, &wasm, owner)
        .err()
        .expect("the fifth database does not fit");
    assert!(
        matches!(error, HostError::InstancePoolFull { limit: 4, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("instance pool is full (4 instances")
            && message.contains("--max-instances"),
        "{message}"
    );
    drop(databases);
    Database::create(&engine, &wasm, owner).expect("room again once the others are gone");
}

// #9 item 10: a reducer's error goes to its caller, cut like a log line.
#[test]
fn a_huge_error_message_is_cut() {
    let mut db = create_database(&test_engine(), "hostile");
    let error = call(&mut db, "fail_long", &args(&(8u32 << 20,))).expect_err("fails");
    let CallError::Failed(message) = error else {
        panic!("expected the reducer's error, got {error:?}");
    };
    assert!(message.len() <= EngineConfig::default().max_log_line_bytes);
    assert!(message.ends_with(" bytes]"), "no cut marker");
}

// #9 items 7 and 13: a module that traps while the instance pool is full
// cannot be restarted at once; its database says why (unavailable, the
// pool), and serves again once a slot frees.
#[test]
fn a_trap_with_the_pool_full_leaves_the_database_unavailable_until_a_slot_frees() {
    let Some(engine) = pooled_engine(2) else {
        return;
    };
    let mut first = create_database(&engine, "hostile");
    let second = create_database(&engine, "hostile");
    let error = call(&mut first, "spin", &[]).expect_err("interrupted");
    assert!(matches!(error, CallError::DeadlineExceeded(_)), "{error:?}");
    let error = call(&mut first, "seed", &args(&(1u32,))).expect_err("no slot to restart in");
    assert!(
        matches!(&error, CallError::Unavailable(m) if m.contains("instance pool is full")),
        "{error:?}"
    );
    drop(second);
    call(&mut first, "seed", &args(&(1u32,))).expect("restarted once a slot freed");
}
