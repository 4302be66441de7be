//! The host keeps loading components built against the frozen
//! `worldline:module@0.1.0` world (`guest-rust/test-modules/legacy-v1`,
//! bound with raw `wit-bindgen`): it publishes, its reducers commit and
//! fail as before, it survives a restart, and it is described with no
//! procedures; a 0.2.0 component (the features module) runs beside it on
//! the same server.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use worldline_client::{Client, ConnectOptions, ReducerStatus};
use worldline_server::{Server, ServerConfig};
use worldline_tests::{TempDir, guest_wasm, test_engine_config};

/// The 0.1.0 database and the 0.2.0 one beside it.
const LEGACY: &str = "legacy";
const FEATURES: &str = "features";

/// A row of the legacy module's `entry` table.
#[derive(Debug, Deserialize, PartialEq)]
struct Entry {
    id: u32,
    text: String,
}

/// The part of `GET /v1/database/NAME` this test reads.
#[derive(Debug, Deserialize)]
struct Info {
    tables: Vec<String>,
    reducers: Vec<String>,
    procedures: Vec<String>,
}

async fn start(dir: &Path) -> Server {
    let mut config = ServerConfig::new(dir);
    config.http_listen = "127.0.0.1:0".parse().expect("an address");
    config.quic_listen = "127.0.0.1:0".parse().expect("an address");
    config.host.engine = test_engine_config();
    Server::start(config).await.expect("starting the server")
}

async fn connect(server: &Server, database: &str) -> Client {
    let url = format!("ws://{}/v1/ws", server.http_addr());
    Client::connect(ConnectOptions::websocket(url, database))
        .await
        .unwrap_or_else(|e| panic!("connecting to {database}: {e}"))
}

async fn entries(client: &Client) -> Vec<Entry> {
    let tables = client.query("SELECT * FROM entry").await.expect("a query");
    let mut entries: Vec<Entry> = tables
        .iter()
        .flat_map(|table| &table.rows)
        .map(|row| postcard::from_bytes(row).expect("an entry row"))
        .collect();
    entries.sort_by_key(|entry| entry.id);
    entries
}

/// `GET /v1/database/NAME`.
async fn info(server: &Server, database: &str) -> Info {
    let url = format!("http://{}/v1/database/{database}", server.http_addr());
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let body = agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .body_mut()
            .read_to_string()
            .expect("its body");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
    })
    .await
    .expect("the request ran")
}

/// The features module serves beside the legacy one: a reducer commits and
/// a procedure (which 0.1.0 cannot have) returns.
async fn assert_features_serve(server: &Server, items: usize) {
    let features = connect(server, FEATURES).await;
    let outcome = features
        .call("add_item", &(format!("beside {items}"), 1u32, 0i32, 5u64))
        .await
        .expect("a call");
    assert_eq!(outcome.status, ReducerStatus::Committed);
    let echoed: String = features
        .call_procedure("echo_proc", &("from 0.2.0",))
        .await
        .expect("a procedure call");
    assert_eq!(echoed, "from 0.2.0");
    let rows = features
        .query("SELECT * FROM item")
        .await
        .expect("a query")
        .iter()
        .map(|table| table.rows.len())
        .sum::<usize>();
    assert_eq!(rows, items, "items in {FEATURES}");
    features.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_0_component_publishes_runs_and_survives_a_restart_beside_a_0_2_0_one() {
    let dir = TempDir::new("legacy-world");
    let server = start(dir.path()).await;
    let (owner, _) = server.new_identity();
    tokio::task::block_in_place(|| {
        server
            .publish(LEGACY, &guest_wasm("legacy-v1"), owner)
            .expect("publishing the 0.1.0 component");
        server
            .publish(FEATURES, &guest_wasm("features"), owner)
            .expect("publishing the 0.2.0 component");
    });

    let legacy = connect(&server, LEGACY).await;
    let put = legacy.call("put", &(1u32, "one")).await.expect("a call");
    assert_eq!(put.status, ReducerStatus::Committed);
    let failed = legacy.call("fail", &("no",)).await.expect("a call");
    assert_eq!(
        failed.status,
        ReducerStatus::Failed("failed on purpose: no".into())
    );
    let duplicate = legacy.call("put", &(1u32, "again")).await.expect("a call");
    assert!(
        matches!(&duplicate.status, ReducerStatus::Failed(m) if m.contains("UniqueViolation")),
        "{duplicate:?}"
    );
    assert_eq!(
        entries(&legacy).await,
        [Entry {
            id: 1,
            text: "one".into()
        }],
        "the failed reducers left nothing"
    );
    let described = info(&server, LEGACY).await;
    assert_eq!(described.tables, ["entry"]);
    assert_eq!(described.reducers, ["put", "fail"]);
    assert!(described.procedures.is_empty(), "{described:?}");
    assert_features_serve(&server, 1).await;
    legacy.close().await;
    server.shutdown().await;

    let server = start(dir.path()).await;
    assert!(
        server.unavailable_databases().is_empty(),
        "both recovered: {:?}",
        server.unavailable_databases()
    );
    let legacy = connect(&server, LEGACY).await;
    let put = legacy.call("put", &(2u32, "two")).await.expect("a call");
    assert_eq!(put.status, ReducerStatus::Committed);
    assert_eq!(
        entries(&legacy).await,
        [
            Entry {
                id: 1,
                text: "one".into()
            },
            Entry {
                id: 2,
                text: "two".into()
            }
        ],
        "the committed row survived the restart"
    );
    assert!(info(&server, LEGACY).await.procedures.is_empty());
    assert_features_serve(&server, 2).await;
    legacy.close().await;
    server.shutdown().await;
}
