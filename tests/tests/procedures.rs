//! Procedures of the `features` module through the host: each runs on a
//! thread of its own while a "database thread" (as the server's) owns the
//! database, serves their transactions in turn and runs reducers; outbound
//! HTTP goes to a real loopback server.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use worldline_host::outbound::{AllowList, PrivateOverride};
use worldline_host::{
    CallContext, CallError, Database, EngineConfig, Host, HostConfig, ProcedureOutput,
};
use worldline_tests::db_thread::DbThread;
use worldline_tests::gate::Gate;
use worldline_tests::http_stub::{self, HttpStub};
use worldline_tests::{ALICE, OWNER, TempDir, args, guest_wasm, rows, test_engine_config};

#[derive(Debug, Deserialize, PartialEq)]
struct Item {
    id: u32,
    sku: String,
    owner: u32,
    rank: i32,
    price: u64,
}

/// This suite's calls on the database's thread.
trait Calls {
    /// Calls a procedure as Alice.
    fn call(&self, name: &str, arguments: Vec<u8>) -> Result<ProcedureOutput, CallError>;
    /// Calls a procedure returning a string and decodes it.
    fn call_string(&self, name: &str, arguments: Vec<u8>) -> Result<String, CallError>;
    /// The `item` table's rows.
    fn items(&self) -> Vec<Item>;
}

impl Calls for DbThread {
    fn call(&self, name: &str, arguments: Vec<u8>) -> Result<ProcedureOutput, CallError> {
        self.call_as(ALICE, name, arguments)
    }

    fn call_string(&self, name: &str, arguments: Vec<u8>) -> Result<String, CallError> {
        let output = self.call(name, arguments)?;
        Ok(postcard::from_bytes(&output.value).expect("a string"))
    }

    fn items(&self) -> Vec<Item> {
        self.with(|db| rows::<Item>(db, "item"))
    }
}

fn features(config: EngineConfig) -> Database {
    let engine = worldline_host::Engine::new(config).expect("an engine");
    Database::create(&engine, &guest_wasm("features"), OWNER).expect("the features module")
}

/// A loopback HTTP server answering `200 hello` to every request, after
/// reporting the request line and passing `gate`.
fn loopback(gate: Arc<Gate>) -> HttpStub {
    http_stub::start(
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_vec(),
        move || gate.pass(),
    )
}

/// An engine configuration that lets requests reach `addr` on loopback.
fn with_override(addr: SocketAddr) -> EngineConfig {
    EngineConfig {
        http_private_override: PrivateOverride::new([addr]),
        ..test_engine_config()
    }
}

fn allow(db: &mut Database, addr: SocketAddr) {
    db.set_http_allow(AllowList::parse(&addr.to_string()).expect("an allow-list"))
        .expect("setting the allow-list");
}

#[test]
fn a_procedure_returns_its_value_and_logs_one_line() {
    let db = DbThread::spawn(features(test_engine_config()));
    let output = db.call("echo_proc", args(&("hi there",))).expect("echo");
    assert_eq!(
        postcard::from_bytes::<String>(&output.value).unwrap(),
        "hi there"
    );
    assert_eq!(
        output.returns,
        worldline_host::datastore::AlgebraicType::String
    );
    let line = db.with(|db| db.log().records().last().map(|r| r.message.clone()));
    let line = line.expect("a log line");
    assert!(line.starts_with("procedure echo_proc: ok in "), "{line}");
    assert!(
        matches!(db.call("no_such", Vec::new()), Err(CallError::NoSuchProcedure(name)) if name == "no_such")
    );
    assert!(matches!(
        db.call("echo_proc", vec![0xff]),
        Err(CallError::InvalidProcedureArguments { procedure, .. }) if procedure == "echo_proc"
    ));
    db.stop();
}

#[test]
fn committed_inserts_stay_and_rolled_back_or_trapped_ones_leave_nothing() {
    let db = DbThread::spawn(features(test_engine_config()));
    let count = db
        .call("proc_insert", args(&(0u32, "kept")))
        .expect("insert");
    assert_eq!(postcard::from_bytes::<u32>(&count.value).unwrap(), 1);
    assert_eq!(
        db.call_string("proc_rollback", args(&(7u32,))).unwrap(),
        "aborted: rolled back on purpose"
    );
    let trapped = db.call("proc_trap", Vec::new());
    match trapped {
        Err(CallError::ProcedureTrapped { procedure, message }) => {
            assert_eq!(procedure, "proc_trap");
            assert!(message.contains("on purpose"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    let skus: Vec<String> = db.items().into_iter().map(|item| item.sku).collect();
    assert_eq!(skus, ["kept"]);
    // The database goes on: reducers and further transactions work.
    db.with(|db| {
        db.call_reducer(
            "add_item",
            &args(&("after", 1u32, 0i32, 5u64)),
            CallContext::new(ALICE),
        )
    })
    .expect("a reducer after the trap");
    let count = db
        .call("proc_insert", args(&(0u32, "again")))
        .expect("insert");
    assert_eq!(postcard::from_bytes::<u32>(&count.value).unwrap(), 3);
    db.stop();
}

#[test]
fn tables_outside_a_transaction_answer_no_transaction() {
    let db = DbThread::spawn(features(test_engine_config()));
    assert_eq!(
        db.call_string("proc_touch_outside_tx", Vec::new()).unwrap(),
        "NoTransaction"
    );
    assert!(db.items().is_empty());
    db.stop();
}

#[test]
fn http_from_a_reducer_or_inside_a_transaction_is_not_allowed_here() {
    let server = loopback(Arc::new(Gate::default()));
    let mut database = features(with_override(server.addr));
    allow(&mut database, server.addr);
    let url = format!("http://{}/", server.addr);
    let refused = database.call_reducer("reducer_http", &args(&(&url,)), CallContext::new(ALICE));
    assert_eq!(
        refused.unwrap_err(),
        CallError::Failed("NotAllowedHere".into())
    );
    let db = DbThread::spawn(database);
    assert_eq!(
        db.call_string("proc_fetch_in_tx", args(&(&url,))).unwrap(),
        "NotAllowedHere"
    );
    assert!(server.requests.try_recv().is_err(), "nothing went out");
    db.stop();
}

#[test]
fn http_reaches_a_loopback_server_only_through_the_override() {
    let server = loopback(Arc::new(Gate::default()));
    let url = format!("http://{}/hello", server.addr);

    let mut database = features(with_override(server.addr));
    allow(&mut database, server.addr);
    let db = DbThread::spawn(database);
    assert_eq!(
        db.call_string("proc_fetch", args(&(&url,))).unwrap(),
        "200 hello"
    );
    assert_eq!(server.requests.recv().unwrap(), "GET /hello HTTP/1.1");
    db.stop();

    let mut database = features(test_engine_config());
    allow(&mut database, server.addr);
    let db = DbThread::spawn(database);
    match db.call("proc_fetch", args(&(&url,))) {
        Err(CallError::Failed(message)) => assert!(message.starts_with("Denied: "), "{message}"),
        other => panic!("expected a denial, got {other:?}"),
    }
    db.stop();

    let db = DbThread::spawn(features(with_override(server.addr)));
    match db.call("proc_fetch", args(&(&url,))) {
        Err(CallError::Failed(message)) => assert!(message.starts_with("Denied: "), "{message}"),
        other => panic!("expected a denial off the allow-list, got {other:?}"),
    }
    db.stop();
    assert!(
        server.requests.try_recv().is_err(),
        "no denied request went out"
    );
}

#[test]
fn a_procedure_waiting_on_http_does_not_stop_reducers() {
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let server = loopback(Arc::clone(&gate));
    let mut database = features(with_override(server.addr));
    allow(&mut database, server.addr);
    let db = Arc::new(DbThread::spawn(database));
    let url = format!("http://{}/slow", server.addr);
    let caller = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || db.call_string("proc_fetch", args(&(&url,))))
    };
    // The request is at the server, which holds its answer.
    assert_eq!(server.requests.recv().unwrap(), "GET /slow HTTP/1.1");
    db.with(|db| {
        db.call_reducer(
            "add_item",
            &args(&("meanwhile", 1u32, 0i32, 5u64)),
            CallContext::new(ALICE),
        )
    })
    .expect("a reducer while the procedure waits");
    assert_eq!(db.items().len(), 1);
    assert!(!caller.is_finished(), "the procedure still waits");
    gate.set(false);
    assert_eq!(caller.join().unwrap().unwrap(), "200 hello");
    let db = Arc::into_inner(db).expect("the caller is done");
    db.stop();
}

#[test]
fn procedures_past_the_per_database_limit_are_refused_until_one_ends() {
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let server = loopback(Arc::clone(&gate));
    let mut database = features(EngineConfig {
        max_procedures_per_database: 1,
        ..with_override(server.addr)
    });
    allow(&mut database, server.addr);
    let db = Arc::new(DbThread::spawn(database));
    let url = format!("http://{}/held", server.addr);
    let caller = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || db.call_string("proc_fetch", args(&(&url,))))
    };
    assert_eq!(server.requests.recv().unwrap(), "GET /held HTTP/1.1");
    assert_eq!(
        db.call("echo_proc", args(&("second",))).unwrap_err(),
        CallError::TooManyProcedures { limit: 1 }
    );
    gate.set(false);
    assert_eq!(caller.join().unwrap().unwrap(), "200 hello");
    assert_eq!(
        db.call_string("echo_proc", args(&("third",))).unwrap(),
        "third"
    );
    let db = Arc::into_inner(db).expect("the caller is done");
    db.stop();
}

#[test]
fn a_committed_procedure_transaction_survives_a_restart() {
    let dir = TempDir::new("procedures-restart");
    let config = HostConfig {
        engine: test_engine_config(),
        ..HostConfig::default()
    };
    {
        let mut host = Host::open(dir.path(), config.clone()).expect("open");
        host.publish("features", &guest_wasm("features"), OWNER)
            .expect("publish");
        let database = host.take_database("features").expect("the database");
        let db = DbThread::spawn(database);
        db.call("proc_insert", args(&(40u32, "durable")))
            .expect("insert");
        let _ = db.call("proc_rollback", args(&(41u32,))).expect("rollback");
        drop(db.stop());
    }
    let mut host = Host::open(dir.path(), config).expect("reopen");
    let database = host.database_mut("features").expect("the database");
    let items = rows::<Item>(database, "item");
    assert_eq!(
        items,
        [Item {
            id: 40,
            sku: "durable".into(),
            owner: 0,
            rank: 0,
            price: 0,
        }]
    );
}

#[test]
fn a_procedure_past_its_deadline_is_stopped_and_the_database_goes_on() {
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let server = loopback(Arc::clone(&gate));
    let mut database = features(EngineConfig {
        procedure_deadline: std::time::Duration::from_millis(300),
        ..with_override(server.addr)
    });
    allow(&mut database, server.addr);
    let db = DbThread::spawn(database);
    let url = format!("http://{}/never", server.addr);
    match db.call("proc_fetch", args(&(&url,))) {
        Err(CallError::ProcedureDeadline {
            procedure,
            deadline,
        }) => {
            assert_eq!(procedure, "proc_fetch");
            assert_eq!(deadline, std::time::Duration::from_millis(300));
        }
        other => panic!("expected the deadline, got {other:?}"),
    }
    gate.set(false);
    let line = db.with(|db| db.log().records().last().map(|r| r.message.clone()));
    let line = line.expect("a log line");
    assert!(
        line.starts_with("procedure proc_fetch: trapped in "),
        "{line}"
    );
    let count = db
        .call("proc_insert", args(&(0u32, "after")))
        .expect("insert");
    assert_eq!(postcard::from_bytes::<u32>(&count.value).unwrap(), 1);
    db.stop();
}

/// Through a real server: the HTTP API calls a procedure, its committed
/// insert reaches a subscriber as a transaction named after it, a SQL
/// read sees it, and a rolled-back one reaches nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_server_a_committed_insert_reaches_subscribers_and_sql() {
    use std::time::Duration;

    use worldline_client::ReducerEvent;
    use worldline_tests::live::{LiveServer, Transport};
    use worldline_tests::process::Http;

    const PATIENCE: Duration = Duration::from_secs(10);
    let live = LiveServer::start(&[("features", "features")]).await;
    let watcher = live.connect(Transport::WebSocket, "features").await;
    let (inserted, mut inserts) = tokio::sync::mpsc::unbounded_channel();
    watcher.on_insert("item", move |item: &Item| {
        let _ = inserted.send(item.sku.clone());
    });
    let (event, mut events) = tokio::sync::mpsc::unbounded_channel();
    watcher.on_reducer_event(move |e: &ReducerEvent| {
        let _ = event.send(e.reducer.clone());
    });
    tokio::time::timeout(PATIENCE, watcher.subscribe(&["SELECT * FROM item"]))
        .await
        .expect("the subscription is answered")
        .expect("subscribing");

    let http = Http::new(
        &format!("http://{}", live.server().http_addr()),
        Some(&live.owner_token),
    );
    let (called, sql) = tokio::task::spawn_blocking(move || {
        let rolled_back = http.post_ok(
            "/v1/database/features/call/proc_rollback",
            "application/json",
            b"[9]",
        );
        assert_eq!(
            rolled_back["value"],
            serde_json::json!("aborted: rolled back on purpose")
        );
        let called = http.post_ok(
            "/v1/database/features/call/proc_insert",
            "application/json",
            br#"[0, "through the server"]"#,
        );
        let sql = http.post_ok(
            "/v1/database/features/sql",
            "text/plain",
            b"SELECT * FROM item",
        );
        (called, sql)
    })
    .await
    .expect("the HTTP calls");
    assert_eq!(called["value"], serde_json::json!(1), "{called}");
    assert!(
        sql.to_string().contains("through the server"),
        "the SQL read sees the insert: {sql}"
    );
    let sku = tokio::time::timeout(PATIENCE, inserts.recv())
        .await
        .expect("the insert reaches the subscriber")
        .expect("the callback lives");
    assert_eq!(
        sku, "through the server",
        "the first insert is the committed one"
    );
    let reducer = tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("the event reaches the subscriber")
        .expect("the callback lives");
    assert_eq!(reducer, "proc_insert");
    live.shutdown().await;
}
