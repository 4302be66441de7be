//! The Python SDK against the Rust one: the Python examples
//! (`guest-python/examples`) are built here with componentize-py (from the
//! venv `tests/setup.sh` makes in `target/python-venv`, or the one
//! `WORLDLINE_PYTHON_VENV` names) and must describe the same module as
//! their Rust twins and behave the same way, call for call: the same
//! results, the same errors and traps, the same rollbacks and the same
//! rows. `ticker` (a schedule) and `prices` (a procedure with HTTP and an
//! explicit transaction) are checked the same way, through a real server
//! for the procedure, and so is `guest-python/tests/sums` (sum types and a
//! nested option) against `guest-rust/test-modules/sums`. The Python postcard codec is also checked natively against the
//! shared vectors (`tests/vectors/postcard.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use worldline_host::Engine;
use worldline_host::{
    CallContext, CallError, ConnectionId, Database, Timestamp, TxSubmitter, describe_component,
    describe_component_definition,
};
use worldline_tests::parity::{
    comparable_outcome as outcome, first_difference, target_dir, text_server, workspace,
};
use worldline_tests::{ALICE, BOB, OWNER, args, guest_wasm, test_engine};

/// The Python of the venv holding componentize-py.
fn venv_python() -> PathBuf {
    std::env::var_os("WORLDLINE_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("python-venv"))
        .join("bin")
        .join("python")
}

/// The components built so far in this run, by project directory: each is
/// built once (one at a time: a build takes a core for seconds). Across
/// runs, `build.py` keeps a component whose sources did not change, so the
/// compiled-component cache serves it (componentize-py's output differs
/// from build to build).
static BUILT: Mutex<BTreeMap<PathBuf, Vec<u8>>> = Mutex::new(BTreeMap::new());

/// Builds `guest-python/examples/NAME` and returns the component.
fn python_wasm(name: &str) -> Vec<u8> {
    python_build(&workspace().join("guest-python/examples").join(name))
}

/// Builds the Python project in `dir` (once per run) and returns the component.
fn python_build(dir: &Path) -> Vec<u8> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(wasm) = built.get(dir) {
        return wasm.clone();
    }
    let name = dir
        .file_name()
        .expect("a project directory")
        .to_string_lossy();
    let out = target_dir().join("python").join(format!("{name}.wasm"));
    let output = Command::new(venv_python())
        .arg(workspace().join("guest-python/build.py"))
        .arg(dir)
        .arg(&out)
        .output()
        .expect("running the venv's python (tests/setup.sh makes target/python-venv)");
    assert!(
        output.status.success(),
        "building the Python project `{name}` failed ({}); tests/setup.sh installs componentize-py\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = std::fs::read(&out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()));
    built.insert(dir.to_path_buf(), wasm.clone());
    wasm
}

/// The test engine with a compiled-component cache under the target
/// directory, so the 18 MB Python components compile once, not in every
/// test and every run (the cache keys entries by content, so a rebuilt
/// example is compiled afresh).
fn engine() -> Engine {
    test_engine()
        .with_component_cache(&target_dir().join("python").join("component-cache"))
        .expect("opening the component cache")
}

/// The Rust and the Python build of one example, each with a database.
struct Twins {
    rust: Database,
    python: Database,
}

impl Twins {
    /// The example `name` in both languages.
    fn new(name: &str) -> Self {
        Self::of(name, &guest_wasm(name), &python_wasm(name))
    }

    /// The module `name` from its Rust and its Python component.
    fn of(name: &str, rust: &[u8], python: &[u8]) -> Self {
        let engine = engine();
        let create = |wasm: &[u8], which: &str| {
            Database::create(&engine, wasm, OWNER)
                .unwrap_or_else(|e| panic!("creating a database from the {which} `{name}`: {e}"))
        };
        Self {
            rust: create(rust, "Rust"),
            python: create(python, "Python"),
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
        let python = outcome(self.python.call_reducer(reducer, arguments, ctx));
        assert_eq!(
            python, rust,
            "`{reducer}` behaved differently in Python (left) and Rust (right)"
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
        let python = run(&mut self.python);
        assert_eq!(python, rust, "a lifecycle reducer behaved differently");
    }

    /// Asserts both hold the same rows in `table`, and returns how many.
    fn same_rows(&self, table: &str) -> usize {
        let sorted = |db: &Database, which: &str| {
            let mut rows: Vec<Vec<u8>> = db
                .rows(table)
                .unwrap_or_else(|e| panic!("{which} rows: {e}"))
                .iter()
                .map(|r| r.to_vec())
                .collect();
            rows.sort();
            rows
        };
        let rust = sorted(&self.rust, "Rust");
        let python = sorted(&self.python, "Python");
        assert_eq!(
            python, rust,
            "table `{table}` differs between Python (left) and Rust (right)"
        );
        rust.len()
    }
}

#[test]
fn the_python_codec_passes_the_shared_postcard_vectors() {
    let output = Command::new(venv_python())
        .current_dir(workspace().join("guest-python"))
        .args(["-m", "unittest", "discover", "-s", "tests", "-v"])
        .env(
            "WORLDLINE_POSTCARD_VECTORS",
            workspace().join("tests/vectors/postcard.json"),
        )
        .output()
        .expect("running python -m unittest");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("\nOK"), "{report}");
}

#[test]
fn the_python_examples_describe_the_same_modules_as_the_rust_ones_byte_for_byte() {
    let engine = engine();
    for name in ["bank", "chat", "ticker", "prices"] {
        let rust =
            describe_component_definition(&engine, &guest_wasm(name)).expect("the Rust definition");
        let python = describe_component_definition(&engine, &python_wasm(name))
            .expect("the Python definition");
        assert!(
            python == rust,
            "`{name}`: the Python module's definition (left) differs from the Rust one's (right):\n{}",
            first_difference(&python, &rust)
        );
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
    let traceback = bank
        .python
        .log()
        .records()
        .any(|r| r.message.contains("Traceback") && r.message.contains("failed on purpose"));
    assert!(
        traceback,
        "the Python traceback of the failure went to the module log"
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
    let balances: Vec<worldline_tests::Account> = worldline_tests::rows(&bank.python, "account");
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
    let ids: Vec<u64> = worldline_tests::rows::<worldline_tests::Message>(&chat.python, "message")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

#[test]
fn the_python_ticker_ticks_on_its_schedule_like_the_rust_one() {
    let mut ticker = Twins::new("ticker");
    let later =
        Timestamp::from_micros_since_epoch(Timestamp::now().to_micros_since_epoch() + 1_500_000);
    for db in [&mut ticker.rust, &mut ticker.python] {
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
    assert_eq!(ticker.python.rows("tick_schedule").unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_prices_procedure_fetches_and_stores_like_the_rust_one() {
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
    let wasm = tokio::task::block_in_place(|| python_wasm("prices"));
    tokio::task::block_in_place(|| {
        live.server()
            .publish_with_http("prices", &wasm, owner, &allow)
    })
    .expect("publishing the Python prices");

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
fn the_python_table_handles_read_back_what_they_wrote() {
    let wasm = python_build(&workspace().join("guest-python/tests/handles"));
    let mut db = Database::create(&engine(), &wasm, OWNER).expect("the handles module loads");
    let result = db.call_reducer("check", &args(&(2500u64,)), CallContext::new(ALICE));
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(db.rows("item").unwrap().len(), 2500);
}

/// The row and argument types of the `sums` test modules, as the host side
/// decodes and encodes them.
mod sums {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
    pub enum Color {
        Red,
        Green,
        Blue,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum Shape {
        Circle(f32),
        Rect { w: f32, h: f32 },
        Segment(i32, i32),
        Empty,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Label {
        pub text: String,
        pub color: Color,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Drawing {
        pub id: u32,
        pub shape: Shape,
        pub color: Color,
        pub labels: Vec<Label>,
        pub layer: Option<Option<u8>>,
    }
}

#[test]
fn python_sum_types_and_nested_options_describe_and_behave_like_rust_enums() {
    use sums::{Color, Drawing, Label, Shape};

    let rust_wasm = guest_wasm("sums");
    let python_wasm = python_build(&workspace().join("guest-python/tests/sums"));
    let engine = engine();
    let rust = describe_component_definition(&engine, &rust_wasm).expect("the Rust definition");
    let python =
        describe_component_definition(&engine, &python_wasm).expect("the Python definition");
    assert!(
        python == rust,
        "`sums`: the Python module describes a different definition than the Rust one\n{}",
        first_difference(&python, &rust)
    );
    assert!(rust.contains("Sum(") && rust.contains("Option(") && rust.contains("\"Segment\""));

    let mut sums = Twins::of("sums", &rust_wasm, &python_wasm);
    let ctx = CallContext::new(ALICE);
    let label = |text: &str, color| Label {
        text: text.into(),
        color,
    };
    let drawings = [
        Drawing {
            id: 1,
            shape: Shape::Circle(1.5),
            color: Color::Red,
            labels: vec![label("sun", Color::Blue), label("disc", Color::Green)],
            layer: None,
        },
        Drawing {
            id: 2,
            shape: Shape::Rect { w: 2.0, h: 0.25 },
            color: Color::Green,
            labels: vec![],
            layer: Some(None),
        },
        Drawing {
            id: 3,
            shape: Shape::Segment(-7, 300),
            color: Color::Blue,
            labels: vec![label("road", Color::Red)],
            layer: Some(Some(254)),
        },
        Drawing {
            id: 4,
            shape: Shape::Empty,
            color: Color::Red,
            labels: vec![],
            layer: Some(Some(0)),
        },
    ];
    for d in &drawings {
        let arguments = args(&(d.id, &d.shape, d.color, &d.labels, d.layer));
        sums.call("draw", &arguments, ctx).expect("draw");
    }
    let stored = |db: &Database| {
        let mut rows: Vec<Drawing> = worldline_tests::rows(db, "drawing");
        rows.sort_by_key(|d| d.id);
        rows
    };
    assert_eq!(
        stored(&sums.python),
        drawings,
        "the Python module stored what it was given"
    );
    assert_eq!(sums.same_rows("drawing"), 4);
    assert_eq!(
        sums.call(
            "draw",
            &args(&(
                5u32,
                Shape::Rect { w: 0.0, h: 1.0 },
                Color::Red,
                Vec::<Label>::new(),
                None::<Option<u8>>
            )),
            ctx
        ),
        Err(CallError::Failed(
            "a rectangle needs a positive size".into()
        ))
    );
    // A case index past the last case is refused before the module runs.
    let mut bad = args(&(6u32,));
    bad.extend([4u8, 0, 0, 0]);
    assert!(matches!(
        sums.call("draw", &bad, ctx),
        Err(CallError::InvalidArguments { .. })
    ));
    for _ in 0..2 {
        for id in 1..=4u32 {
            sums.call("grow", &args(&(id, 2.0f32)), ctx).expect("grow");
        }
    }
    assert_eq!(
        sums.call("grow", &args(&(9u32, 2.0f32)), ctx),
        Err(CallError::Failed("no drawing 9".into()))
    );
    sums.same_rows("drawing");
    let grown: Vec<(Shape, Color, Option<Option<u8>>)> = stored(&sums.python)
        .into_iter()
        .map(|d| (d.shape, d.color, d.layer))
        .collect();
    assert_eq!(
        grown,
        vec![
            (Shape::Circle(6.0), Color::Blue, Some(Some(0))),
            (Shape::Rect { w: 8.0, h: 1.0 }, Color::Red, Some(Some(1))),
            (Shape::Segment(-7, 300), Color::Green, Some(Some(255))),
            (Shape::Circle(2.0), Color::Blue, Some(Some(2))),
        ]
    );
    // The colour is an index key: erasing blue deletes drawings 1 and 4.
    sums.call("erase", &args(&(Color::Blue,)), ctx)
        .expect("erase");
    assert_eq!(sums.same_rows("drawing"), 2);
    let left: Vec<u32> = stored(&sums.python).iter().map(|d| d.id).collect();
    assert_eq!(left, vec![2, 3]);

    // A procedure taking a list of sums and returning an optional one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let no_transactions: TxSubmitter = std::sync::Arc::new(|_| Err("no transactions here".into()));
    for (shapes, expected) in [
        (
            vec![Shape::Empty, Shape::Segment(1, 2), Shape::Circle(1.0)],
            Some(Shape::Segment(1, 2)),
        ),
        (vec![Shape::Empty], None),
    ] {
        let mut outputs = Vec::new();
        for db in [&mut sums.rust, &mut sums.python] {
            let run = db
                .start_procedure(
                    "first_drawn",
                    args(&(&shapes,)),
                    ctx,
                    no_transactions.clone(),
                )
                .expect("first_drawn starts");
            outputs.push(run.run(runtime.handle()).expect("first_drawn").value);
        }
        assert_eq!(
            outputs[1], outputs[0],
            "first_drawn returned different bytes"
        );
        let found: Option<Shape> = postcard::from_bytes(&outputs[1]).expect("an optional shape");
        assert_eq!(found, expected);
    }
}

/// Runs `build.py` on the project in `dir` into `out`; returns its output.
fn run_build(dir: &Path, out: &Path) -> String {
    let output = Command::new(venv_python())
        .arg(workspace().join("guest-python/build.py"))
        .arg(dir)
        .arg(out)
        .output()
        .expect("running the venv's python");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "build.py failed: {report}");
    report
}

#[test]
fn rebuilding_an_unchanged_python_project_keeps_its_component_and_a_change_rebuilds_it() {
    let work = target_dir().join("python").join("rebuild");
    let project = work.join("project");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&project).unwrap();
    let bank = workspace().join("guest-python/examples/bank");
    for file in ["worldline.toml", "app.py"] {
        std::fs::copy(bank.join(file), project.join(file)).unwrap();
    }
    let out = work.join("out").join("module.wasm");
    let first_report = run_build(&project, &out);
    assert!(!first_report.contains("up to date"), "{first_report}");
    let first = std::fs::read(&out).unwrap();
    let again = run_build(&project, &out);
    assert!(again.contains("up to date"), "{again}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        first,
        "the same sources, the same component"
    );

    // A changed source is built afresh (and componentize-py's bytes differ).
    let mut app = std::fs::read_to_string(project.join("app.py")).unwrap();
    app.push_str(
        "\n\n@reducer\ndef added(ctx):\n    \"\"\"A reducer added after the first build.\"\"\"\n",
    );
    std::fs::write(project.join("app.py"), app).unwrap();
    let changed = run_build(&project, &out);
    assert!(!changed.contains("up to date"), "{changed}");
    let rebuilt = std::fs::read(&out).unwrap();
    assert_ne!(rebuilt, first);
    let schema = describe_component(&engine(), &rebuilt).expect("the rebuilt module loads");
    assert!(
        schema.reducers.iter().any(|r| r.name == "added"),
        "{schema:?}"
    );

    // A damaged component is rebuilt too, not trusted.
    std::fs::write(&out, b"not a component").unwrap();
    let repaired = run_build(&project, &out);
    assert!(!repaired.contains("up to date"), "{repaired}");
    assert!(std::fs::read(&out).unwrap().len() > 1 << 20);
    let _ = std::fs::remove_dir_all(&work);
}
