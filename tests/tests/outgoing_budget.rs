//! The server-wide bound on what waits to be sent to clients, against a
//! real server on loopback: many connections that ask for large answers
//! and never read hold the server to its budget (not to their own limits,
//! summed), those that are behind are dropped with an `Error` saying why
//! or have their large answers refused, and a client that keeps reading
//! goes on being served.

use std::time::Duration;

use serde_bytes::ByteBuf;
use worldline_server::{Server, ServerConfig};
use worldline_tests::live::LiveServer;
use worldline_tests::raw::{RawClient, RawQuic, RawWebSocket, call, hello};
use worldline_tests::{TempDir, args, resident_bytes};
use worldline_transport::{ClientMessage, ProcedureStatus, ReducerStatus, ServerMessage};

/// What the server may hold for all clients, and for each one.
const BUDGET: u32 = 32 << 20;
/// Connections that ask for much and never read.
const SLOW: usize = 16;
/// The `Query`s each of them sends, each answered by the whole table.
const QUERIES: u32 = 14;
/// Messages of 48 KiB the table holds at first (a little over 1 MiB).
const ROWS: u32 = 22;
/// Messages written while the slow connections lag.
const UPDATES: u32 = 60;

const SHORT: &str = "the server is short of memory for outgoing messages: ";

fn query(request_id: u32, sql: &str) -> ClientMessage {
    ClientMessage::Query {
        request_id,
        query: sql.into(),
    }
}

fn subscribe_to_messages() -> ClientMessage {
    ClientMessage::Subscribe {
        query_set_id: 1,
        queries: vec!["SELECT * FROM message".into()],
    }
}

/// Sends `count` messages of 48 KiB as `writer`, checking each commits.
async fn write_messages(writer: &mut RawQuic, first_id: u32, count: u32) {
    let text = "x".repeat(48 * 1024);
    for id in first_id..first_id + count {
        writer
            .send(&call(id, "send_message", args(&(&text,))))
            .await;
    }
    for _ in 0..count {
        match writer.recv().await {
            Some(ServerMessage::ReducerResult { status, .. }) => {
                assert_eq!(status, ReducerStatus::Committed)
            }
            other => panic!("the writer's calls are answered, got {other:?}"),
        }
    }
}

// Without a server-wide bound, each of these connections could make the
// server hold up to its own 32 MiB: 16 of them about 250 MB, and a few
// thousand of them more than any machine has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_together_are_held_to_the_servers_budget() {
    let live = LiveServer::start_with(&[("chat", "chat"), ("features", "features")], |config| {
        config.max_queued_bytes = BUDGET;
        config.max_outgoing_bytes = u64::from(BUDGET);
    })
    .await;
    let mut writer = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    writer.send(&hello("chat", None)).await;
    assert!(matches!(
        writer.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    write_messages(&mut writer, 0, ROWS).await;
    // A client that keeps reading: subscribed to the table, and asking.
    let mut reader = RawWebSocket::connect(&live.ws_url()).await;
    reader.send(&hello("chat", None)).await;
    assert!(matches!(
        reader.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    reader.send(&subscribe_to_messages()).await;
    assert!(matches!(
        reader.recv().await,
        Some(ServerMessage::SubscribeApplied { .. })
    ));
    let before = resident_bytes();

    let mut slow = Vec::new();
    for n in 0..SLOW {
        // One in four over QUIC, the others over WebSocket.
        let mut client = if n % 4 == 0 {
            RawClient::Quic(RawQuic::connect(live.quic_addr(), live.certificate()).await)
        } else {
            RawClient::WebSocket(RawWebSocket::connect(&live.ws_url()).await)
        };
        client.send(&hello("chat", None)).await;
        assert!(matches!(
            client.recv().await,
            Some(ServerMessage::Welcome { .. })
        ));
        client.send(&subscribe_to_messages()).await;
        slow.push(client);
    }
    for client in &mut slow {
        for request_id in 0..QUERIES {
            client
                .send(&query(request_id, "SELECT * FROM message"))
                .await;
        }
    }
    // Once the slow connections' answers fill the budget, the reader's own
    // request for the whole table would take the server past it, and is
    // refused (the reader keeps up: it is told so and stays connected).
    let mut refused = None;
    for request_id in 100..200 {
        reader
            .send(&query(request_id, "SELECT * FROM message"))
            .await;
        match reader.recv().await {
            Some(ServerMessage::QueryResult {
                result: Err(message),
                ..
            }) => {
                refused = Some(message);
                break;
            }
            Some(ServerMessage::QueryResult { result: Ok(_), .. }) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("the reader's query is answered, got {other:?}"),
        }
    }
    let refused = refused.expect("the whole table is refused once the budget is full");
    assert!(refused.starts_with(SHORT), "{refused}");
    assert!(refused.ends_with("; retry later"), "{refused}");
    // So are the initial rows of a new subscription to them; nothing is
    // subscribed, and the reader stays connected.
    reader
        .send(&ClientMessage::Subscribe {
            query_set_id: 2,
            queries: vec!["SELECT * FROM message WHERE id > 0".into()],
        })
        .await;
    match reader.recv().await {
        Some(ServerMessage::SubscriptionError {
            query_set_id: 2,
            message,
        }) => assert!(message.starts_with(SHORT), "{message}"),
        other => panic!("the subscription is refused for the shortage, got {other:?}"),
    }
    // And a procedure's result, made on another database of the server:
    // the procedure runs, and its caller is told why its result is not sent.
    // The result is three times the table's answer: the budget, once full,
    // sits short of its limit by less than one such answer, which a smaller
    // result could still fit into.
    let mut caller = RawWebSocket::connect(&live.ws_url()).await;
    caller.send(&hello("features", None)).await;
    assert!(matches!(
        caller.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    caller
        .send(&ClientMessage::CallProcedure {
            request_id: 7,
            procedure: "echo_proc".into(),
            args: ByteBuf::from(args(&("x".repeat(3 << 20),))),
        })
        .await;
    match caller.recv().await {
        Some(ServerMessage::ProcedureResult {
            request_id: 7,
            status: ProcedureStatus::Failed(message),
            ..
        }) => assert!(message.starts_with(SHORT), "{message}"),
        Some(ServerMessage::ProcedureResult {
            status: ProcedureStatus::Returned(value),
            ..
        }) => panic!("the procedure's result of {} bytes was sent", value.len()),
        other => panic!("the procedure's result is refused for the shortage, got {other:?}"),
    }
    // Messages have now waited for the slow connections for over a second
    // without a pause: they are behind.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Updates for every subscriber; the reader, reading as they come,
    // gets each of them.
    let reading = tokio::spawn(async move {
        for _ in 0..UPDATES {
            match reader.recv().await {
                Some(ServerMessage::TransactionUpdate { .. }) => {}
                other => panic!("the reader is sent every update, got {other:?}"),
            }
        }
        reader
    });
    write_messages(&mut writer, 1000, UPDATES).await;
    let mut reader = reading.await.expect("the reader read every update");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 96 << 20,
        "the server grew by {} MB for clients that read nothing",
        grown >> 20
    );

    // Reading at last, each slow client finds it was dropped for the
    // server's shortage, or gets an answer (rows, or the shortage) to each
    // of its queries.
    let mut dropped = 0;
    for mut client in slow {
        let mut answers = 0;
        loop {
            match client.recv().await {
                Some(ServerMessage::Error {
                    message,
                    fatal: true,
                }) => {
                    assert!(message.starts_with(SHORT), "{message}");
                    assert!(message.contains("this connection had"), "{message}");
                    assert!(client.recv().await.is_none(), "then the connection closes");
                    dropped += 1;
                    break;
                }
                Some(ServerMessage::QueryResult { result, .. }) => {
                    answers += 1;
                    if let Err(message) = result {
                        assert!(message.starts_with(SHORT), "{message}");
                    }
                    if answers == QUERIES {
                        break;
                    }
                }
                Some(ServerMessage::SubscriptionError { message, .. }) => {
                    assert!(message.starts_with(SHORT), "{message}");
                }
                Some(
                    ServerMessage::SubscribeApplied { .. }
                    | ServerMessage::TransactionUpdate { .. },
                ) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(dropped > 0, "no slow client was dropped");
    // With the slow clients' backlog gone, the reader's query fits again.
    reader
        .send(&query(101, "SELECT * FROM message WHERE id = 2"))
        .await;
    match reader.recv().await {
        Some(ServerMessage::QueryResult {
            request_id: 101,
            result: Ok(tables),
        }) => assert_eq!(tables.iter().map(|t| t.rows.len()).sum::<usize>(), 1),
        other => panic!("the reader's query is answered, got {other:?}"),
    }

    live.shutdown().await;
}

// A server-wide budget smaller than what one connection may hold would make
// one client able to exhaust it alone: refused at startup.
#[tokio::test]
async fn a_budget_smaller_than_one_connections_limit_is_refused() {
    let dir = TempDir::new("worldline-outgoing-budget");
    let mut config = ServerConfig::new(dir.path());
    config.http_listen = "127.0.0.1:0".parse().expect("an address");
    config.quic_listen = "127.0.0.1:0".parse().expect("an address");
    config.max_outgoing_bytes = u64::from(config.max_queued_bytes) - 1;
    let Err(error) = Server::start(config).await else {
        panic!("the server started");
    };
    assert_eq!(
        error.to_string(),
        "the server-wide limit on outgoing messages (67108863 bytes) is smaller than the \
         per-connection limit (67108864 bytes)"
    );
}
