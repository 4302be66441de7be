//! The C++ SDK against the Rust one: the C++ examples (`guest-cpp/examples`)
//! are built here with their Makefiles (clang-19, `wit-bindgen c`,
//! `wasm-tools`, the toolchain `.ci/run` installs) and must describe the
//! same module as their Rust twins and behave the same way, call for call:
//! the same results, the same errors and traps, the same rollbacks and the
//! same rows. `ticker` (a schedule) and `prices` (a procedure with HTTP and
//! an explicit transaction) are checked the same way, through a real
//! server for the procedure. The C++ postcard codec is also checked
//! natively against the shared vectors (`tests/vectors/postcard.json`).

use std::process::Command;

use worldline_host::{
    CallContext, CallError, ConnectionId, Database, Timestamp, describe_component,
    describe_component_definition,
};
use worldline_tests::parity::{
    comparable_outcome as outcome, cpp_component, first_difference, target_dir, text_server,
    workspace,
};
use worldline_tests::{ALICE, BOB, OWNER, args, guest_wasm, test_engine};

/// Builds `guest-cpp/examples/NAME` with its Makefile and returns the component.
fn cpp_wasm(name: &str) -> Vec<u8> {
    cpp_component("examples", name)
}

/// The Rust and the C++ build of one example, each with a database.
struct Twins {
    rust: Database,
    cpp: Database,
}

impl Twins {
    fn new(name: &str) -> Self {
        let engine = test_engine();
        let create = |wasm: &[u8], which: &str| {
            Database::create(&engine, wasm, OWNER)
                .unwrap_or_else(|e| panic!("creating a database from the {which} `{name}`: {e}"))
        };
        Self {
            rust: create(&guest_wasm(name), "Rust"),
            cpp: create(&cpp_wasm(name), "C++"),
        }
    }

    /// Calls `reducer` on both; asserts the same outcome and returns it.
    fn call(
        &mut self,
        reducer: &str,
        arguments: &[u8],
        ctx: CallContext,
    ) -> Result<String, CallError> {
        let rust = outcome(self.rust.call_reducer(reducer, arguments, ctx));
        let cpp = outcome(self.cpp.call_reducer(reducer, arguments, ctx));
        assert_eq!(
            cpp, rust,
            "`{reducer}` behaved differently in C++ (left) and Rust (right)"
        );
        rust
    }

    /// Runs a lifecycle reducer on both; asserts the same outcome.
    fn lifecycle(&mut self, connected: bool, ctx: CallContext) {
        let run = |db: &mut Database| {
            let result = if connected {
                db.client_connected(ctx)
            } else {
                db.client_disconnected(ctx)
            };
            result.map(|o| o.map(|o| format!("{:?}", o.delta)))
        };
        let rust = run(&mut self.rust);
        let cpp = run(&mut self.cpp);
        assert_eq!(cpp, rust, "a lifecycle reducer behaved differently");
    }

    /// Asserts both hold the same rows in `table`, and returns how many.
    fn same_rows(&self, table: &str) -> usize {
        let rust = self.rust.rows(table).expect("Rust rows");
        let cpp = self.cpp.rows(table).expect("C++ rows");
        let (mut rust, mut cpp): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (
            rust.iter().map(|r| r.to_vec()).collect(),
            cpp.iter().map(|r| r.to_vec()).collect(),
        );
        rust.sort();
        cpp.sort();
        assert_eq!(
            cpp, rust,
            "table `{table}` differs between C++ (left) and Rust (right)"
        );
        rust.len()
    }
}

#[test]
fn the_cpp_codec_passes_the_shared_postcard_vectors() {
    let exe = target_dir().join("cpp").join("postcard_test");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let sdk = workspace().join("guest-cpp");
    let status = Command::new("clang++-19")
        .args(["-std=c++20", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(sdk.join("include"))
        .arg(sdk.join("tests/postcard_test.cpp"))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("running clang++-19 (.ci/run installs it)");
    assert!(status.success(), "compiling the C++ codec test failed");
    let output = Command::new(&exe)
        .arg(workspace().join("tests/vectors/postcard.json"))
        .output()
        .expect("running the C++ codec test");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains(" 0 failures"), "{report}");
}

#[test]
fn the_cpp_examples_describe_the_same_modules_as_the_rust_ones() {
    let engine = test_engine();
    for name in ["bank", "chat", "ticker", "prices"] {
        let (rust_wasm, cpp_wasm) = (guest_wasm(name), cpp_wasm(name));
        // The definition exactly as each `describe` export returned it ...
        let rust = describe_component_definition(&engine, &rust_wasm).expect("the Rust definition");
        let cpp = describe_component_definition(&engine, &cpp_wasm).expect("the C++ definition");
        assert!(
            cpp == rust,
            "`{name}`: the C++ module describes a different definition than the Rust one\n{}",
            first_difference(&cpp, &rust)
        );
        // ... and the schema the host resolves from it.
        let rust = describe_component(&engine, &rust_wasm).expect("the Rust schema");
        let cpp = describe_component(&engine, &cpp_wasm).expect("the C++ schema");
        assert_eq!(
            serde_json::to_string_pretty(&cpp).unwrap(),
            serde_json::to_string_pretty(&rust).unwrap(),
            "`{name}`: the C++ module (left) describes a different schema than the Rust one (right)"
        );
        assert_eq!(cpp, rust);
    }
}

#[test]
fn bank_transfers_and_failures_match() {
    let mut bank = Twins::new("bank");
    let ctx = CallContext::new(ALICE);
    bank.call("seed", &args(&(3u32, 100i64)), ctx)
        .expect("seed");
    assert_eq!(bank.same_rows("account"), 3);
    bank.call("transfer", &args(&(0u32, 2u32, 40i64)), ctx)
        .expect("transfer");
    bank.same_rows("account");
    for (arguments, expected) in [
        (args(&(0u32, 7u32, 10i64)), "no account 7"),
        (args(&(9u32, 1u32, 10i64)), "no account 9"),
        (
            args(&(0u32, 1u32, 1000i64)),
            "insufficient funds: account 0 has 60, needs 1000",
        ),
        (
            args(&(0u32, 1u32, 0i64)),
            "the amount must be positive, got 0",
        ),
        (
            args(&(1u32, 1u32, 5i64)),
            "cannot transfer from account 1 to the same account",
        ),
    ] {
        assert_eq!(
            bank.call("transfer", &arguments, ctx),
            Err(CallError::Failed(expected.into()))
        );
        bank.same_rows("account");
    }
    assert_eq!(
        bank.call("fail_after_write", &args(&(1u32,)), ctx),
        Err(CallError::Failed("failed on purpose after writing".into()))
    );
    assert_eq!(
        bank.call("panic_after_write", &args(&(1u32,)), ctx),
        Err(CallError::Panicked("boom".into()))
    );
    // A duplicate key traps with the datastore's message, rolling back the bump.
    match bank.call("insert_duplicate", &args(&(2u32,)), ctx) {
        Err(CallError::Panicked(message)) => {
            assert!(
                message.contains("unique") || message.contains("duplicate"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    bank.call("noop", &args(&()), ctx).expect("noop");
    bank.call("hog_memory", &args(&(4u32,)), ctx)
        .expect("4 MiB is within the cap");
    assert!(matches!(
        bank.call("hog_memory", &args(&(200u32,)), ctx),
        Err(CallError::OutOfMemory { .. })
    ));
    assert!(matches!(
        bank.call("spin", &args(&()), ctx),
        Err(CallError::DeadlineExceeded(_))
    ));
    // Bad arguments are refused before the module runs, the same way.
    for bad in [vec![1u8], args(&(0u32, 1u32, 5i64, 9u8))] {
        assert!(matches!(
            bank.call("transfer", &bad, ctx),
            Err(CallError::InvalidArguments { .. })
        ));
    }
    // Every failure above rolled back: 0 gave 40 to 2, nothing else moved.
    bank.call("transfer", &args(&(0u32, 1u32, 1i64)), ctx)
        .expect("the databases serve after every failure");
    assert_eq!(bank.same_rows("account"), 3);
    let balances: Vec<worldline_tests::Account> = worldline_tests::rows(&bank.cpp, "account");
    let mut balances: Vec<(u32, i64)> = balances.iter().map(|a| (a.id, a.balance)).collect();
    balances.sort();
    assert_eq!(balances, vec![(0, 59), (1, 101), (2, 140)]);
}

#[test]
fn chat_lifecycle_names_and_messages_match() {
    let mut chat = Twins::new("chat");
    let connection = CallContext::new(ALICE).with_connection(ConnectionId::from_bytes([7; 16]));
    chat.lifecycle(true, connection);
    assert_eq!(chat.same_rows("user"), 1);
    chat.lifecycle(false, connection);
    chat.same_rows("user");
    assert_eq!(
        chat.call("client_connected", &[], CallContext::new(BOB)),
        Err(CallError::LifecycleReducer("client_connected".into()))
    );
    for empty in ["", "   "] {
        assert_eq!(
            chat.call("set_name", &args(&(empty,)), CallContext::new(BOB)),
            Err(CallError::Failed("names must not be empty".into()))
        );
    }
    for (who, name) in [(ALICE, "  alice "), (ALICE, "Alice"), (BOB, "bob")] {
        chat.call("set_name", &args(&(name,)), CallContext::new(who))
            .expect("set_name");
    }
    assert_eq!(chat.same_rows("user"), 2);
    let at = Timestamp::from_micros_since_epoch(1_700_000_000_000_000);
    for (who, text) in [(ALICE, "hello"), (BOB, "hi alice"), (ALICE, "how are you?")] {
        let ctx = CallContext {
            timestamp: Some(at),
            ..CallContext::new(who)
        };
        chat.call("send_message", &args(&(text,)), ctx)
            .expect("send_message");
    }
    assert_eq!(
        chat.call("send_message", &args(&(" ",)), CallContext::new(BOB)),
        Err(CallError::Failed("messages must not be empty".into()))
    );
    assert_eq!(chat.same_rows("message"), 3);
    let ids: Vec<u64> = worldline_tests::rows::<worldline_tests::Message>(&chat.cpp, "message")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

#[test]
fn the_cpp_ticker_ticks_on_its_schedule_like_the_rust_one() {
    let mut ticker = Twins::new("ticker");
    let later =
        Timestamp::from_micros_since_epoch(Timestamp::now().to_micros_since_epoch() + 1_500_000);
    for db in [&mut ticker.rust, &mut ticker.cpp] {
        let run = db.run_next_schedule(later).expect("the first tick is due");
        assert_eq!(run.reducer, "tick");
        assert_eq!(run.error, None);
        #[derive(serde::Deserialize)]
        struct Counter {
            id: u32,
            ticks: u64,
            last_tick: i64,
        }
        let counters: Vec<Counter> = worldline_tests::rows(db, "counter");
        assert_eq!(counters.len(), 1);
        assert_eq!(
            (counters[0].id, counters[0].ticks, counters[0].last_tick),
            (0, 1, later.to_micros_since_epoch())
        );
        assert!(db.run_next_schedule(later).is_none(), "one run per due row");
    }
    // The repeating row stays (moved on from each database's own start time).
    assert_eq!(ticker.rust.rows("tick_schedule").unwrap().len(), 1);
    assert_eq!(ticker.cpp.rows("tick_schedule").unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpp_prices_procedure_fetches_and_stores_like_the_rust_one() {
    use worldline_client::ClientError;
    use worldline_host::outbound::{AllowList, PrivateOverride};
    use worldline_tests::live::{LiveServer, Transport};

    #[derive(serde::Deserialize, Debug)]
    struct Price {
        symbol: String,
        cents: u64,
        fetched_at: i64,
    }

    let origin = text_server("97123.45\n").await;
    let live = LiveServer::start_with(&[], |config| {
        config.host.engine.http_private_override = PrivateOverride::new([origin]);
    })
    .await;
    let (owner, _) = live.server().new_identity();
    let allow = AllowList::parse(&origin.to_string()).expect("an allow-list");
    let wasm = tokio::task::block_in_place(|| cpp_wasm("prices"));
    tokio::task::block_in_place(|| {
        live.server()
            .publish_with_http("prices", &wasm, owner, &allow)
    })
    .expect("publishing the C++ prices");

    let client = live.connect(Transport::WebSocket, "prices").await;
    client
        .subscribe(&["SELECT * FROM price"])
        .await
        .expect("subscribing");
    let url = format!("http://{origin}/btc");
    for _ in 0..2 {
        // The second call updates the row the first inserted.
        let cents: u64 = client
            .call_procedure("refresh", &("BTC", url.as_str()))
            .await
            .expect("refresh");
        assert_eq!(cents, 9_712_345);
    }
    let prices: Vec<Price> = client.rows("price").expect("rows");
    assert_eq!(prices.len(), 1, "{prices:?}");
    assert_eq!(
        (prices[0].symbol.as_str(), prices[0].cents),
        ("BTC", 9_712_345)
    );
    assert!(prices[0].fetched_at > 0);

    match client
        .call_procedure::<_, u64>("refresh", &("ETH", "http://example.com/eth"))
        .await
    {
        Err(ClientError::ProcedureFailed(message)) => {
            assert!(
                message.starts_with("fetching http://example.com/eth: ")
                    && message.contains("not on this database's HTTP allow-list"),
                "{message}"
            )
        }
        other => panic!("example.com is not on the list: {other:?}"),
    }
    assert_eq!(client.rows::<Price>("price").expect("rows").len(), 1);
    live.shutdown().await;
}

#[test]
fn the_cpp_table_handles_read_back_what_they_wrote() {
    let wasm = cpp_component("tests", "handles");
    let mut db = Database::create(&test_engine(), &wasm, OWNER).expect("the handles module loads");
    // More rows than one batch of a cursor (256).
    let n = 600u32;
    db.call_reducer("fill", &args(&(n,)), CallContext::new(ALICE))
        .expect("fill");
    db.call_reducer("check", &args(&(n,)), CallContext::new(ALICE))
        .expect("every read path agrees with what fill wrote");
    // `check` erased item 3 and changed item 2, then committed.
    assert_eq!(db.rows("item").unwrap().len(), n as usize - 1);

    // abort() and libc++'s fatal errors trap with their message, and roll back.
    assert_eq!(
        db.call_reducer("call_abort", &args(&()), CallContext::new(ALICE))
            .map(drop),
        Err(CallError::Panicked("abort() was called".into()))
    );
    // With exceptions off, libc++ turns `at` past the end into abort().
    assert_eq!(
        db.call_reducer("out_of_range", &args(&(1u32,)), CallContext::new(ALICE))
            .map(drop),
        Err(CallError::Panicked("abort() was called".into()))
    );
    assert_eq!(db.rows("item").unwrap().len(), n as usize - 1);
}

#[test]
fn the_cpp_codec_passes_the_shared_postcard_vectors_inside_a_component() {
    let wasm = cpp_component("tests", "handles");
    let mut db = Database::create(&test_engine(), &wasm, OWNER).expect("the handles module loads");
    let file = workspace().join("tests/vectors/postcard.json");
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("the vector file"))
            .expect("the vector file is JSON");
    assert!(vectors.len() > 100, "{} vectors", vectors.len());
    let field = |v: &serde_json::Value, key: &str| v[key].as_str().expect(key).to_owned();
    for vector in &vectors {
        let hex = field(vector, "bytes");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let arguments = args(&(
            field(vector, "type"),
            field(vector, "value"),
            serde_bytes::ByteBuf::from(bytes),
        ));
        db.call_reducer("postcard_vector", &arguments, CallContext::new(ALICE))
            .unwrap_or_else(|e| panic!("{vector}: {e}"));
    }
    // The check can fail: a wrong value is reported.
    assert_eq!(
        db.call_reducer(
            "postcard_vector",
            &args(&("u32", "7", serde_bytes::ByteBuf::from(vec![8u8]))),
            CallContext::new(ALICE)
        )
        .map(drop),
        Err(CallError::Failed("u32 7: decoded as 8".into()))
    );
}
