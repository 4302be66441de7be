//! A server shutting down sends each QUIC client what it already queued,
//! then the `Error` saying why, then closes with the same reason; bounded
//! in time like WebSocket.

use std::time::{Duration, Instant};

use worldline_client::{ClientError, ReducerStatus};
use worldline_server::ServerConfig;
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::raw::{RawQuic, hello};
use worldline_transport::{ClientMessage, ServerMessage};

/// How long anything bounded here may take, with room for a busy machine.
const BOUND: Duration = Duration::from_secs(20);

/// Gives the reducer that opens 100,000 accounts the time it takes in a
/// debug build.
fn seed_in_time(config: &mut ServerConfig) {
    config.host.engine.reducer_deadline = Duration::from_secs(30);
}

/// What the server says, as `Error` and as the QUIC close reason, when it
/// shuts down.
const SHUTTING_DOWN: &str = "the server is shutting down";

// On shutdown every QUIC connection was closed at once, dropping the
// answers queued for it (WebSocket connections got theirs). A client that
// had asked for more than its receive window holds now reads every answer,
// then the `Error` saying why, then the end of the stream, and the
// connection closes with the same reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_shutdown_delivers_the_answers_already_queued_then_says_why() {
    // About half a megabyte of rows per answer: together, several times
    // the stream window of the client's QUIC stack.
    const ACCOUNTS: u32 = 100_000;
    const QUERIES: u32 = 8;
    let live = LiveServer::start_with(&[("bank", "bank")], seed_in_time).await;
    let seeder = live.connect(Transport::Quic, "bank").await;
    let seeded = seeder
        .call("seed", &(ACCOUNTS, 1i64))
        .await
        .expect("seeding");
    assert_eq!(seeded.status, ReducerStatus::Committed);
    seeder.close().await;
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("bank", None)).await;
    assert!(matches!(
        quic.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    for request_id in 0..QUERIES {
        quic.send(&ClientMessage::Query {
            request_id,
            query: "SELECT * FROM account".into(),
        })
        .await;
    }
    // The server answers them all meanwhile (well within this, even in a
    // debug build on a machine busy with other tests); the client reads
    // nothing yet.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let shutdown = tokio::spawn(live.shutdown());
    for expected in 0..QUERIES {
        match quic.recv().await {
            Some(ServerMessage::QueryResult {
                request_id,
                result: Ok(tables),
            }) => {
                assert_eq!(request_id, expected);
                assert_eq!(tables[0].rows.len(), ACCOUNTS as usize);
            }
            other => panic!("expected QueryResult {expected}, got {other:?}"),
        }
    }
    match quic.recv().await {
        Some(ServerMessage::Error { message, fatal }) => {
            assert!(fatal);
            assert_eq!(message, SHUTTING_DOWN);
        }
        other => panic!("expected the shutdown's Error, got {other:?}"),
    }
    assert!(quic.recv().await.is_none(), "the stream ends");
    match quic.connection().closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(String::from_utf8_lossy(&close.reason), SHUTTING_DOWN);
        }
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
    tokio::time::timeout(BOUND, shutdown)
        .await
        .expect("shutdown finishes")
        .expect("the shutdown task");
}

// What a user of the client sees: every call made around a QUIC shutdown
// gets its answer or fails saying the server is shutting down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_around_a_quic_shutdown_get_their_answer_or_the_reason() {
    const CALLS: usize = 400;
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let client = live.connect(Transport::Quic, "bank").await;
    client
        .call("seed", &(2u32, 1_000_000i64))
        .await
        .expect("seeding");
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.call("transfer", &(0u32, 1u32, 1i64)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    tokio::time::timeout(BOUND, live.shutdown())
        .await
        .expect("shutdown finishes");
    let mut answered = 0;
    for call in calls {
        match call.await.expect("the call's task") {
            Ok(outcome) => {
                assert_eq!(outcome.status, ReducerStatus::Committed);
                answered += 1;
            }
            Err(ClientError::Closed(reason)) => assert_eq!(reason, SHUTTING_DOWN),
            Err(other) => panic!("a call failed without the reason: {other:?}"),
        }
    }
    eprintln!("{answered} of {CALLS} calls answered before the shutdown");
    assert!(!client.is_connected());
}

// Shutting down does not wait long for a QUIC client that reads nothing:
// the answers queued for it are given up at the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_shutdown_is_bounded_with_a_client_that_never_reads() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        seed_in_time(config);
        config.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let seeder = live.connect(Transport::Quic, "bank").await;
    let seeded = seeder
        .call("seed", &(100_000u32, 1i64))
        .await
        .expect("seeding");
    assert_eq!(seeded.status, ReducerStatus::Committed);
    seeder.close().await;
    let mut stuck = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    stuck.send(&hello("bank", None)).await;
    for request_id in 0..16 {
        stuck
            .send(&ClientMessage::Query {
                request_id,
                query: "SELECT * FROM account".into(),
            })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    tokio::time::timeout(BOUND, live.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
}

// A server shut down right after it started could wait forever: its QUIC
// task, not yet run when the shutdown began, then waited for a shutdown
// signal that had already gone by. (It did about one time in four; twenty
// rounds make a pass without the fix very unlikely.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shut_down_right_after_it_started_stops() {
    for round in 0..20 {
        let live = LiveServer::start(&[]).await;
        tokio::time::timeout(BOUND, live.shutdown())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the shutdown never ended"));
    }
}
