//! #10 item 3: the database thread never waits for the disk. While the
//! commit log's fsync is held back (a hook on the durability thread blocks
//! it, so nothing here depends on timing), the database goes on answering
//! commands, and the replies and subscription updates of the transactions
//! behind the held fsync go out only once it completes, in commit order;
//! an automatic snapshot is written on a thread of its own, one at a time,
//! while the database goes on committing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use worldline_client::Event;
use worldline_host::{CallContext, DurabilityPolicy, Host, HostConfig, StorageConfig, SyncHook};
use worldline_tests::gate::Gate;
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::{ALICE, OWNER, TempDir, args, guest_wasm, test_engine_config};
use worldline_transport::ReducerStatus;

// #10 item 3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_runs_commands_while_an_fsync_is_held_and_releases_replies_once_durable() {
    let gate = Arc::new(Gate::default());
    let live = LiveServer::start_with_held_fsyncs(&[("bank", "bank")], &gate, |_| {}).await;
    let caller = live.connect(Transport::WebSocket, "bank").await;
    let seeded = caller.call("seed", &(10u32, 1_000i64)).await.unwrap();
    assert_eq!(seeded.status, ReducerStatus::Committed);
    let watcher = live.connect(Transport::Quic, "bank").await;
    let mut events = watcher.take_events().expect("events");
    watcher
        .subscribe(&["SELECT * FROM account"])
        .await
        .expect("subscribing");

    gate.set(true);
    let first = tokio::spawn({
        let caller = caller.clone();
        async move { caller.call("transfer", &(0u32, 1u32, 1i64)).await }
    });
    gate.wait_held(
        Duration::from_secs(30),
        "the first transfer never reached the fsync",
    )
    .await;
    // The durability thread is inside the first transfer's fsync; the
    // database thread takes more calls and answers a describe meanwhile
    // (before #10 it waited for the fsync and answered nothing).
    let second = tokio::spawn({
        let caller = caller.clone();
        async move { caller.call("transfer", &(2u32, 3u32, 1i64)).await }
    });
    let url = format!(
        "http://{}/v1/database/bank/schema",
        live.server().http_addr()
    );
    let described = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || ureq::get(&url).call().map(|r| r.status().as_u16())),
    )
    .await
    .expect("the database answers while an fsync is held")
    .unwrap();
    assert_eq!(described.unwrap(), 200);
    // Nothing of the held transactions is acknowledged or published.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!first.is_finished() && !second.is_finished());
    assert!(
        !matches!(events.try_recv(), Ok(Event::TransactionUpdate { .. })),
        "an update went out before its transaction was durable"
    );

    gate.set(false);
    for call in [first, second] {
        let outcome = call.await.unwrap().expect("an answer");
        assert_eq!(outcome.status, ReducerStatus::Committed);
    }
    // The updates arrive in commit order: accounts 0 and 1, then 2 and 3
    // (an account row starts with its id, one byte below 128).
    let mut touched = Vec::new();
    while touched.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("an update")
            .expect("connected");
        if let Event::TransactionUpdate { tables, .. } = event {
            let mut ids: Vec<u8> = tables
                .iter()
                .flat_map(|table| {
                    let inserts = table.inserts.iter().map(|row| row[0]);
                    inserts.chain(table.updates.iter().map(|update| update.new[0]))
                })
                .collect();
            ids.sort_unstable();
            touched.push(ids);
        }
    }
    assert_eq!(touched, [vec![0, 1], vec![2, 3]]);
    caller.close().await;
    watcher.close().await;
    live.shutdown().await;
}

// #10 item 3: snapshots are written off the database's thread.
#[test]
fn a_snapshot_is_written_in_the_background_while_the_database_commits() {
    let gate = Arc::new(Gate::default());
    let hook = Arc::clone(&gate);
    let dir = TempDir::new("worldline-background-snapshot");
    let config = HostConfig {
        engine: test_engine_config(),
        storage: StorageConfig {
            // Under `none` the log is fsynced only when a snapshot drains
            // it, so the gate holds exactly the snapshots.
            durability: DurabilityPolicy::None,
            snapshot_every: Some(10),
            before_sync: Some(SyncHook(Arc::new(move || hook.pass()))),
            ..StorageConfig::default()
        },
    };
    let path = dir.path().to_owned();
    let (done, finished) = std::sync::mpsc::channel();
    let worker = std::thread::spawn({
        let gate = Arc::clone(&gate);
        let config = config.clone();
        move || {
            let mut host = Host::open(&path, config).expect("open");
            let db = host
                .publish("bank", &guest_wasm("bank"), OWNER)
                .expect("publish");
            let seed = args(&(10u32, 1_000i64));
            db.call_reducer("seed", &seed, CallContext::new(OWNER))
                .expect("seed");
            gate.set(true);
            let transfer = |db: &mut worldline_host::Database, i: u32| {
                let transfer = args(&(i % 10, (i + 1) % 10, 1i64));
                db.call_reducer("transfer", &transfer, CallContext::new(ALICE))
                    .expect("transfer");
            };
            // The seed (and init) and ten transfers make a snapshot due
            // at one of the last three of them ...
            for i in 0..10 {
                transfer(db, i);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while gate.held() == 0 {
                assert!(Instant::now() < deadline, "no snapshot started");
                std::thread::sleep(Duration::from_millis(5));
            }
            // ... and while it is held, the database goes on committing
            // (less than another interval, so no second snapshot is due).
            for i in 10..17 {
                transfer(db, i);
            }
            done.send(()).expect("the test waits");
            host
        }
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the database commits while a snapshot is being written");
    assert_eq!(gate.held(), 1, "one snapshot at a time");
    gate.set(false);
    drop(worker.join().expect("the worker"));
    let host = Host::open(dir.path(), config).expect("recover");
    let report = &host.recovery_reports()[0].1;
    assert!(report.snapshot.is_some(), "the snapshot was written");
    let db = host.database("bank").expect("bank");
    let total: i64 = db
        .rows("account")
        .expect("rows")
        .iter()
        .map(|row| {
            postcard::from_bytes::<(u32, i64)>(row)
                .expect("an account")
                .1
        })
        .sum();
    assert_eq!(total, 10_000);
}
