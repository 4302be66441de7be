//! The C++ build of the `features` test module
//! (`guest-cpp/test-modules/features`, built here with its Makefile)
//! against the Rust one (`guest-rust/test-modules/features`): the same
//! definition, byte for byte as `describe` returns it, and the same
//! behaviour in what `tests/features.rs` and `tests/schedules.rs` check
//! without a network: every kind of table access, unique violations,
//! cursors across deletes, lifecycle reducers, a user-defined enum, the
//! sandbox's refusals, HTTP refused in a reducer, schedules, and the
//! procedures that need no network (values, transactions committed,
//! rolled back and trapped, tables outside a transaction, HTTP refused
//! inside a transaction or to a host not allowed), and HTTP to a web server
//! on loopback that the engine lets through. Each
//! scenario runs on both builds; what the C++ module observed must equal
//! what the Rust module observed (and what `features.rs` expects).

use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use worldline_host::outbound::{AllowList, PrivateOverride};
use worldline_host::{
    CallContext, CallError, Database, Engine, EngineConfig, ProcedureOutput, Timestamp,
    describe_component, describe_component_definition,
};
use worldline_tests::db_thread::DbThread;
use worldline_tests::parity::{comparable_outcome, cpp_component, first_difference};
use worldline_tests::{
    ALICE, BOB, FEATURE_ITEMS, OWNER, args, guest_wasm, patient_engine, rows, test_engine_config,
};

/// The Rust build's component, then the C++ build's.
fn builds() -> [(&'static str, Vec<u8>); 2] {
    [
        ("Rust", guest_wasm("features")),
        ("C++", cpp_component("test-modules", "features")),
    ]
}

#[derive(Deserialize)]
struct Observation {
    key: String,
    value: String,
}

/// One database per build, each driven the same way.
struct Both {
    dbs: Vec<(&'static str, Database)>,
}

impl Both {
    fn new() -> Self {
        let engine = patient_engine();
        Self {
            dbs: builds()
                .into_iter()
                .map(|(which, wasm)| {
                    let db = Database::create(&engine, &wasm, OWNER).unwrap_or_else(|e| {
                        panic!("creating a database from the {which} `features`: {e}")
                    });
                    (which, db)
                })
                .collect(),
        }
    }

    /// Calls `reducer` as Alice on both; asserts the same outcome and returns it.
    fn call(&mut self, reducer: &str, arguments: &[u8]) -> Result<String, CallError> {
        let mut outcomes = self.dbs.iter_mut().map(|(_, db)| {
            comparable_outcome(db.call_reducer(reducer, arguments, CallContext::new(ALICE)))
        });
        agreed(&mut outcomes, || {
            format!("`{reducer}` behaved differently in C++ (left) and Rust (right)")
        })
    }

    /// What both observed under `key`; asserts they agree.
    fn observed(&self, key: &str) -> String {
        let mut seen = self.dbs.iter().map(|(which, db)| {
            rows::<Observation>(db, "observation")
                .into_iter()
                .find(|o| o.key == key)
                .unwrap_or_else(|| panic!("the {which} module observed nothing under `{key}`"))
                .value
        });
        agreed(&mut seen, || {
            format!("`{key}`: C++ (left) and Rust (right) observed differently")
        })
    }

    /// Asserts both hold the same rows in `table`.
    fn same_rows(&self, table: &str) {
        let mut tables = self.dbs.iter().map(|(_, db)| {
            let mut rows: Vec<Vec<u8>> = db
                .rows(table)
                .expect("the table")
                .iter()
                .map(|r| r.to_vec())
                .collect();
            rows.sort();
            rows
        });
        agreed(&mut tables, || {
            format!("table `{table}` differs between C++ (left) and Rust (right)")
        });
    }
}

/// The Rust build's value, then the C++ build's, from `both`: asserts they
/// are equal (`differ` says what differed) and returns it.
fn agreed<T: PartialEq + std::fmt::Debug>(
    both: &mut impl Iterator<Item = T>,
    differ: impl Fn() -> String,
) -> T {
    let rust = both.next().expect("the Rust build");
    let cpp = both.next().expect("the C++ build");
    assert_eq!(cpp, rust, "{}", differ());
    rust
}

fn stocked() -> Both {
    let mut both = Both::new();
    for (i, item) in FEATURE_ITEMS.iter().enumerate() {
        both.call("add_item", &args(item)).expect("add_item");
        assert_eq!(
            both.observed("last_id"),
            (i + 1).to_string(),
            "auto-increment ids"
        );
    }
    both.same_rows("item");
    both
}

#[test]
fn the_cpp_features_module_describes_the_rust_ones_definition_byte_for_byte() {
    let engine = patient_engine();
    let [(_, rust), (_, cpp)] = builds();
    let rust_definition =
        describe_component_definition(&engine, &rust).expect("the Rust definition");
    let cpp_definition = describe_component_definition(&engine, &cpp).expect("the C++ definition");
    assert!(
        cpp_definition == rust_definition,
        "the C++ `features` describes a different definition than the Rust one\n{}",
        first_difference(&cpp_definition, &rust_definition)
    );
    assert_eq!(
        describe_component(&engine, &cpp).expect("the C++ schema"),
        describe_component(&engine, &rust).expect("the Rust schema")
    );
}

#[test]
fn multi_column_index_prefix_and_range() {
    let mut both = stocked();
    both.call("items_of_owner", &args(&(1u32,))).unwrap();
    assert_eq!(both.observed("items_of_owner"), "3,1,6,4");
    both.call("items_of_owner_ranked", &args(&(1u32, 0i32, 6i32)))
        .unwrap();
    assert_eq!(both.observed("items_of_owner_ranked"), "1,6");
    both.call("items_of_owner", &args(&(42u32,))).unwrap();
    assert_eq!(both.observed("items_of_owner"), "");
}

#[test]
fn btree_range_returns_equal_keys_in_insertion_order() {
    let mut both = stocked();
    both.call("items_priced", &args(&(100u64, 500u64))).unwrap();
    assert_eq!(both.observed("items_priced"), "2,3,4,1");
}

#[test]
fn unique_find_update_delete() {
    let mut both = stocked();
    both.call("find_sku", &args(&("d",))).unwrap();
    assert_eq!(both.observed("find_sku"), "4");
    both.call("reprice", &args(&("d", 1000u64))).unwrap();
    both.call("items_priced", &args(&(901u64, 2000u64)))
        .unwrap();
    assert_eq!(both.observed("items_priced"), "4");
    assert_eq!(
        both.call("reprice", &args(&("zz", 1u64))),
        Err(CallError::Failed("no item zz".into()))
    );
    both.call("delete_sku", &args(&("d",))).unwrap();
    assert_eq!(both.observed("delete_sku"), "true");
    both.call("delete_sku", &args(&("d",))).unwrap();
    assert_eq!(both.observed("delete_sku"), "false");
    both.call("find_sku", &args(&("d",))).unwrap();
    assert_eq!(both.observed("find_sku"), "none");
    both.call("survey", &args(&())).unwrap();
    assert_eq!(both.observed("count"), "5");
    assert_eq!(both.observed("all_ids"), "1,2,3,5,6");
    both.same_rows("item");
}

#[test]
fn unique_violation_is_the_same_error_and_changes_nothing() {
    let mut both = stocked();
    match both.call("add_item", &args(&("b", 9u32, 9i32, 9u64))) {
        Err(CallError::Failed(message)) => {
            assert!(
                message.contains("sku") || message.contains("unique"),
                "{message}"
            )
        }
        other => panic!("a duplicate sku was accepted: {other:?}"),
    }
    both.call("survey", &args(&())).unwrap();
    assert_eq!(both.observed("count"), FEATURE_ITEMS.len().to_string());
    both.call("add_item", &args(&("g", 9u32, 9i32, 9u64)))
        .unwrap();
    assert_eq!(
        both.observed("last_id"),
        (FEATURE_ITEMS.len() + 1).to_string()
    );
}

#[test]
fn cursors_survive_deletes_across_batches() {
    let mut both = Both::new();
    both.call("churn", &args(&(1000u32,))).unwrap();
    assert_eq!(both.observed("churn_deleted"), "500");
    both.call("survey", &args(&())).unwrap();
    assert_eq!(both.observed("count"), "500");
    both.same_rows("item");
}

#[test]
fn the_sandbox_grants_no_files_environment_or_network() {
    let mut both = Both::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    for (which, db) in &mut both.dbs {
        db.call_reducer(
            "probe_sandbox",
            &args(&(addr.clone(),)),
            CallContext::new(ALICE),
        )
        .unwrap_or_else(|e| panic!("probing must not trap ({which}): {e}"));
        let observations = rows::<Observation>(db, "observation");
        let seen = |key: &str| {
            observations
                .iter()
                .find(|o| o.key == key)
                .unwrap_or_else(|| panic!("{which}: nothing observed under `{key}`"))
                .value
                .clone()
        };
        for key in ["file", "dir", "tcp"] {
            let outcome = seen(key);
            assert!(outcome.starts_with("denied"), "{which} {key}: {outcome}");
        }
        assert_eq!(seen("env"), "0", "{which}");
        assert_eq!(seen("args"), "0", "{which}");
    }
    assert!(
        listener.accept().is_err(),
        "a module reached a loopback socket"
    );
}

#[derive(Serialize)]
enum Status {
    Active,
    Suspended { reason: String, until: Option<u64> },
    Tagged(u8),
}

#[test]
fn init_runs_once_as_the_owner() {
    let both = Both::new();
    assert_eq!(both.observed("init_sender"), OWNER.to_string());
}

#[test]
fn user_defined_enums_cross_the_boundary() {
    let mut both = Both::new();
    for (status, seen) in [
        (Status::Active, "Active"),
        (
            Status::Suspended {
                reason: "late \"again\"".into(),
                until: Some(7),
            },
            r#"Suspended { reason: "late \"again\"", until: Some(7) }"#,
        ),
        (
            Status::Suspended {
                reason: String::new(),
                until: None,
            },
            r#"Suspended { reason: "", until: None }"#,
        ),
        (Status::Tagged(3), "Tagged(3)"),
    ] {
        both.call("record_status", &args(&(status,))).unwrap();
        assert_eq!(both.observed("status"), seen);
    }
    match both.call("record_status", &[3]) {
        Err(CallError::InvalidArguments { message, .. }) => {
            assert!(message.contains("case 3"), "{message}")
        }
        other => panic!("an unknown enum case was accepted: {other:?}"),
    }
}

#[test]
fn a_banned_identity_is_refused_by_client_connected() {
    let mut both = Both::new();
    both.call("ban", &args(&(BOB.to_bytes(),))).unwrap();
    for (which, db) in &mut both.dbs {
        assert!(
            db.client_connected(CallContext::new(ALICE)).is_ok(),
            "{which}: Alice is not banned"
        );
        match db.client_connected(CallContext::new(BOB)) {
            Err(CallError::Failed(message)) => {
                assert_eq!(message, format!("{BOB} is banned"), "{which}")
            }
            other => panic!("{which}: a banned identity connected: {other:?}"),
        }
    }
}

#[test]
fn http_from_a_reducer_is_not_allowed_here() {
    let mut both = Both::new();
    assert_eq!(
        both.call("reducer_http", &args(&("http://127.0.0.1:9/",))),
        Err(CallError::Failed("NotAllowedHere".into()))
    );
}

/// A row of `schedule_runs`.
#[derive(Debug, PartialEq, Deserialize)]
struct Run {
    id: u64,
    note: String,
    ran_at: i64,
}

#[test]
fn schedules_run_repeat_fail_and_cancel_alike() {
    const T: i64 = 1_767_225_600_000_000;
    let at = Timestamp::from_micros_since_epoch;
    let mut both = Both::new();
    for (which, db) in &mut both.dbs {
        let ctx = CallContext {
            caller: ALICE,
            connection_id: None,
            timestamp: Some(at(T)),
        };
        for (micros, every, note) in [
            (1_000u64, 0u64, "once"),
            (1_000, 500, "tick"),
            (2_000, 0, "fail"),
            (3_000, 0, "cancelled"),
        ] {
            db.call_reducer("schedule_in", &args(&(micros, every, note)), ctx)
                .unwrap_or_else(|e| panic!("{which}: schedule_in: {e}"));
        }
        db.call_reducer("unschedule", &args(&(4u64,)), ctx)
            .unwrap_or_else(|e| panic!("{which}: unschedule: {e}"));
        assert_eq!(
            comparable_outcome(db.call_reducer("unschedule", &args(&(4u64,)), ctx)),
            Err(CallError::Failed("no schedule 4".into())),
            "{which}"
        );
        assert_eq!(db.run_due_schedules(at(T + 1_000)).len(), 2, "{which}");
        let ran = db.run_due_schedules(at(T + 2_000));
        let errors: Vec<Option<CallError>> = ran.iter().map(|r| r.error.clone()).collect();
        assert_eq!(
            errors,
            [
                None,
                Some(CallError::Failed("schedule 3 failed on purpose".into()))
            ],
            "{which}: the repeating row, then the failing one"
        );
        assert!(
            db.run_due_schedules(at(T + 10_000)).len() == 1,
            "{which}: only the repeating row is left"
        );
        let runs: Vec<(String, i64)> = rows::<Run>(db, "schedule_runs")
            .into_iter()
            .map(|r| (r.note, r.ran_at))
            .collect();
        assert_eq!(
            runs,
            [
                ("once".to_owned(), T + 1_000),
                ("tick".to_owned(), T + 1_000),
                ("tick".to_owned(), T + 2_000),
                ("tick".to_owned(), T + 10_000),
            ],
            "{which}"
        );
    }
    both.same_rows("schedule_runs");
    both.same_rows("features_schedule");
}

/// A procedure call's outcome, comparable across languages: the value's
/// bytes and type, or the error (a trap's message without the Rust SDK's
/// source location).
fn procedure_outcome(result: Result<ProcedureOutput, CallError>) -> Result<String, CallError> {
    match result {
        Ok(output) => Ok(format!("{:?} {:?}", output.returns, output.value)),
        Err(CallError::ProcedureTrapped { procedure, message }) => {
            Err(CallError::ProcedureTrapped {
                procedure,
                message: match message.rfind(" (at ") {
                    Some(at) if message.ends_with(')') => message[..at].to_owned(),
                    _ => message,
                },
            })
        }
        Err(e) => Err(e),
    }
}

/// A call's outcome as [`procedure_outcome`] gives it.
type Outcome = Result<String, CallError>;

#[test]
fn procedures_without_network_return_commit_roll_back_and_trap_alike() {
    let url = "http://127.0.0.1:9/".to_owned();
    let calls: Vec<(&str, Vec<u8>)> = vec![
        ("echo_proc", args(&("hi there",))),
        ("proc_insert", args(&(0u32, "kept"))),
        ("proc_insert", args(&(1u32, "duplicate id"))),
        ("proc_rollback", args(&(7u32,))),
        ("proc_trap", Vec::new()),
        ("proc_touch_outside_tx", Vec::new()),
        ("proc_fetch_in_tx", args(&(&url,))),
        ("proc_fetch", args(&(&url,))),
        ("proc_insert", args(&(0u32, "again"))),
        ("echo_proc", vec![0xff]),
    ];
    // Per build: each call's outcome, then the item rows at the end.
    let mut seen: Vec<(Vec<Outcome>, Vec<Vec<u8>>)> = Vec::new();
    for (which, wasm) in builds() {
        let db = Database::create(&patient_engine(), &wasm, OWNER)
            .unwrap_or_else(|e| panic!("creating a database from the {which} `features`: {e}"));
        let db = DbThread::spawn(db);
        let outcomes: Vec<_> = calls
            .iter()
            .map(|(name, arguments)| procedure_outcome(db.call_as(ALICE, name, arguments.clone())))
            .collect();
        let mut items: Vec<Vec<u8>> = db.with(|db| {
            db.rows("item")
                .expect("the item table")
                .iter()
                .map(|r| r.to_vec())
                .collect()
        });
        items.sort();
        seen.push((outcomes, items));
    }
    let (cpp, rust) = (seen.pop().expect("C++"), seen.pop().expect("Rust"));
    for (((name, _), cpp), rust) in calls.iter().zip(&cpp.0).zip(&rust.0) {
        assert_eq!(
            cpp, rust,
            "`{name}` returned differently in C++ (left) and Rust (right)"
        );
    }
    assert_eq!(
        cpp.1, rust.1,
        "the items differ between C++ (left) and Rust (right)"
    );
    // What tests/procedures.rs expects of the Rust build.
    let string = |i: usize| -> String {
        let text = rust.0[i].as_ref().expect("a value");
        text.split_once(' ')
            .map(|(ty, _)| ty.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(string(0), "String");
    assert!(
        rust.0[2].is_err(),
        "a duplicate id is an error: {:?}",
        rust.0[2]
    );
    assert!(
        matches!(&rust.0[4], Err(CallError::ProcedureTrapped { .. })),
        "{:?}",
        rust.0[4]
    );
    assert!(
        matches!(&rust.0[7], Err(CallError::Failed(m)) if m.starts_with("Denied: ")),
        "{:?}",
        rust.0[7]
    );
    assert!(matches!(
        &rust.0[9],
        Err(CallError::InvalidProcedureArguments { .. })
    ));
    assert_eq!(
        rust.1.len(),
        2,
        "`kept` and `again`, nothing rolled back or trapped"
    );
}

/// What the loopback web server of
/// [`http_to_an_allowed_loopback_server_reads_the_same_body_alike`]
/// answers: a body that is not all UTF-8 (a stray byte, a sequence cut
/// short, a surrogate), so `proc_fetch` must replace what is not UTF-8 as
/// Rust's `String::from_utf8_lossy` does.
const BODY: &[u8] = b"hello w\xc3\xb6rld \xff \xe2\x82 cut \xf0\x9f\x98\x80 \xed\xa0\x80 end";

/// A web server on loopback answering every request with `418` and
/// [`BODY`], reporting each request line.
fn loopback() -> (std::net::SocketAddr, mpsc::Receiver<String>) {
    let mut response = format!(
        "HTTP/1.1 418 I'm a teapot\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        BODY.len()
    )
    .into_bytes();
    response.extend_from_slice(BODY);
    let stub = worldline_tests::http_stub::start(response, || {});
    (stub.addr, stub.requests)
}

#[test]
fn http_to_an_allowed_loopback_server_reads_the_same_body_alike() {
    let (addr, requests) = loopback();
    let url = format!("http://{addr}/hello?x=1");
    let engine = Engine::new(EngineConfig {
        http_private_override: PrivateOverride::new([addr]),
        ..test_engine_config()
    })
    .expect("an engine");
    let mut seen = Vec::new();
    for (which, wasm) in builds() {
        let mut db = Database::create(&engine, &wasm, OWNER)
            .unwrap_or_else(|e| panic!("creating a database from the {which} `features`: {e}"));
        db.set_http_allow(AllowList::parse(&addr.to_string()).expect("an allow-list"))
            .expect("setting the allow-list");
        let db = DbThread::spawn(db);
        let fetched = procedure_outcome(db.call_as(ALICE, "proc_fetch", args(&(&url,))));
        let request = requests
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the {which} module's request never arrived"));
        let in_tx = procedure_outcome(db.call_as(ALICE, "proc_fetch_in_tx", args(&(&url,))));
        assert!(
            requests.try_recv().is_err(),
            "{which}: a request went out from inside a transaction"
        );
        seen.push((fetched, request, in_tx));
    }
    let (cpp, rust) = (seen.pop().expect("C++"), seen.pop().expect("Rust"));
    assert_eq!(
        cpp, rust,
        "fetching from loopback differs between C++ (left) and Rust (right)"
    );
    // What the Rust build gives, as a user reads it.
    let expected = format!("418 {}", String::from_utf8_lossy(BODY));
    assert_eq!(
        rust.0,
        Ok(format!(
            "String {:?}",
            postcard::to_allocvec(&expected).unwrap()
        ))
    );
    assert_eq!(rust.1, "GET /hello?x=1 HTTP/1.1");
    let not_allowed = postcard::to_allocvec("NotAllowedHere").unwrap();
    assert_eq!(rust.2, Ok(format!("String {not_allowed:?}")));
}

/// Builds a one-file C++ project (`module.cpp` = `source`) with the SDK's
/// `worldline.mk` in a temporary directory; returns the component, or
/// make's output if the build failed.
fn build_cpp_source(name: &str, source: &str) -> Result<Vec<u8>, String> {
    let dir = worldline_tests::TempDir::new(&format!("wl-cpp-{name}"));
    let sdk = worldline_tests::parity::workspace().join("guest-cpp");
    std::fs::write(
        dir.path().join("Makefile"),
        format!(
            "MODULE := {name}\nSOURCES := module.cpp\ninclude {}/worldline.mk\n",
            sdk.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("module.cpp"), source).unwrap();
    // The adapter is shared with the other builds: build one of those first.
    let _ = cpp_component("test-modules", "stack_overflow");
    let output = std::process::Command::new("make")
        .arg("-C")
        .arg(dir.path())
        .output()
        .expect("running make");
    if !output.status.success() {
        return Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(std::fs::read(dir.path().join(format!("build/{name}.wasm"))).unwrap())
}

const TWO_KEYS_ROW: &str = "#include <worldline/worldline.hpp>\n\
    struct S { uint64_t id; uint64_t b; };\n\
    WORLDLINE_ROW(S, id, b);\n";

#[test]
fn a_table_with_two_primary_keys_does_not_compile() {
    let source = format!(
        "{TWO_KEYS_ROW}inline worldline::Table<S> s{{\"s\", worldline::Public, \
         worldline::primary_key(&S::id), worldline::primary_key(&S::b)}};\n"
    );
    let output = build_cpp_source("two_pks", &source).expect_err("two primary keys compiled");
    assert!(
        output.contains("a worldline::Table has at most one primary_key column"),
        "{output}"
    );
}

#[test]
fn a_second_primary_key_passed_as_a_plain_option_fails_describe() {
    // Slicing the option to a TableOption hides it from the compile-time
    // check; `describe` then traps with the table's name.
    let source = format!(
        "{TWO_KEYS_ROW}inline worldline::TableOption<S> second = worldline::primary_key(&S::b);\n\
         inline worldline::Table<S> s{{\"s\", worldline::Public, \
         worldline::primary_key(&S::id), second}};\n"
    );
    let wasm = build_cpp_source("two_pks_sliced", &source).expect("it compiles");
    let error = describe_component(&patient_engine(), &wasm)
        .expect_err("a table with two primary keys was described")
        .to_string();
    assert!(
        error.contains("table s: at most one primary_key column"),
        "{error}"
    );
}

#[test]
fn a_sum_naming_fewer_or_more_cases_than_its_variant_has_does_not_compile() {
    // With one name too few, `describe` read past the names (a case named
    // by whatever bytes followed); with one too many, the last was dropped.
    let sum = |name: &str, names: &str| {
        format!(
            "struct {name} : std::variant<worldline::Unit, uint32_t> {{\n\
                 using variant_type = std::variant<worldline::Unit, uint32_t>;\n\
                 using variant_type::variant_type;\n\
             }};\n\
             WORLDLINE_SUM({name}, {names});\n\
             WORLDLINE_REDUCER(take_{name}, ({name}, value)) {{ return {{}}; }}\n"
        )
    };
    let source = format!(
        "#include <worldline/worldline.hpp>\n{}{}",
        sum("Fewer", "empty"),
        sum("More", "empty, count, extra")
    );
    let output = build_cpp_source("sum_names", &source).expect_err("it compiled");
    let refusal = "WORLDLINE_SUM names as many cases as the variant has alternatives";
    assert_eq!(output.matches(refusal).count(), 2, "{output}");
}

#[test]
fn a_reducer_that_can_end_without_returning_does_not_compile() {
    let source = "#include <worldline/worldline.hpp>\n\
        WORLDLINE_REDUCER(forgot, (uint32_t, n)) { if (n == 0) return \"zero\"; }\n";
    let output = build_cpp_source("no_return", source).expect_err("it compiled");
    assert!(
        output.contains("error: non-void function does not return a value"),
        "{output}"
    );
}

#[test]
fn a_stack_overflow_traps_before_touching_static_data() {
    let wasm = cpp_component("test-modules", "stack_overflow");
    let mut db = Database::create(&patient_engine(), &wasm, OWNER).expect("a database");
    db.call_reducer("fill_stack", &args(&(1_000u32,)), CallContext::new(ALICE))
        .expect("a small buffer fits on the stack");
    // Larger than the 64 KiB stack: with the stack first in linear memory
    // this runs off address 0 and traps; laid out after .data and .bss it
    // overwrote them and the reducer reported it (or committed).
    let result = db.call_reducer("fill_stack", &args(&(70_000u32,)), CallContext::new(ALICE));
    match result {
        Err(CallError::Trapped(message)) => assert!(
            message.contains("out of bounds"),
            "the trap is not an out-of-bounds access: {message}"
        ),
        other => panic!("the overflow did not trap: {other:?}"),
    }
    assert_eq!(rows::<(u32,)>(&db, "filled"), vec![(1_000,)]);

    // The layout itself: the stack pointer starts at or below the first data
    // segment (in the old layout it started above .data and .bss).
    let core =
        worldline_tests::parity::target_dir().join("cpp/stack_overflow/stack_overflow.core.wasm");
    let printed = std::process::Command::new("wasm-tools")
        .arg("print")
        .arg(&core)
        .output()
        .expect("running wasm-tools");
    let text = String::from_utf8_lossy(&printed.stdout);
    let constant_after = |marker: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no `{marker}` in the core module"));
        let rest = &line[line.find("i32.const ").expect("an address") + "i32.const ".len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let stack_top = constant_after("(global $__stack_pointer");
    let first_data = constant_after("(data ");
    assert!(
        stack_top <= first_data,
        "the stack (top {stack_top}) lies above static data (from {first_data})"
    );
}
