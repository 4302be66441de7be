//! Slow, stuck and greedy peers against a real server on loopback (#9 item
//! 14): what one connection may cost is bounded in bytes, a lagging client
//! is told why it is dropped, large results travel in frames under the
//! limit, silent connections meet deadlines, one address may hold only so
//! many connections, and shutdown does not wait for clients that never read.

use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use worldline_client::{Client, ConnectOptions, Trust};
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::raw::{
    RawClient, RawQuic, RawWebSocket, call, fatal, hello, quic_client_config, raw_http,
};
use worldline_tests::{Message, args, resident_bytes};
use worldline_transport::{
    ClientMessage, DEFAULT_MAX_FRAME, ReducerStatus, ServerMessage, TableRows, encode_message,
};

fn welcome(message: Option<ServerMessage>) -> (u32, u32) {
    match message {
        Some(ServerMessage::Welcome {
            max_frame_bytes,
            max_message_bytes,
            ..
        }) => (max_frame_bytes, max_message_bytes),
        other => panic!("expected Welcome, got {other:?}"),
    }
}

fn subscribe(query_set_id: u32, queries: &[&str]) -> ClientMessage {
    ClientMessage::Subscribe {
        query_set_id,
        queries: queries.iter().map(|q| q.to_string()).collect(),
    }
}

/// The rows of a `SubscribeApplied` or `UnsubscribeApplied`.
fn applied_rows(message: Option<ServerMessage>) -> Vec<TableRows> {
    match message {
        Some(
            ServerMessage::SubscribeApplied { tables, .. }
            | ServerMessage::UnsubscribeApplied { tables, .. },
        ) => tables,
        other => panic!("expected an applied subscription change, got {other:?}"),
    }
}

fn row_count(tables: &[TableRows]) -> usize {
    tables.iter().map(|t| t.rows.len()).sum()
}

/// Receives `ServerMessage`s, reassembling fragments, and returns the next
/// whole message with the sizes of the frames it came in.
async fn recv_whole(ws: &mut RawWebSocket) -> (ServerMessage, Vec<usize>) {
    let mut reassembler = worldline_transport::Reassembler::new(u32::MAX);
    let mut sizes = Vec::new();
    loop {
        let message = ws.recv().await.expect("the connection stays open");
        sizes.push(encode_message(&message).len());
        if let Some(whole) = reassembler.accept(message).expect("fragments in order") {
            return (whole, sizes);
        }
    }
}

// #9 item 14: a connection holds each distinct query once, within a set and
// across sets; only the last set holding a query takes its rows away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_queries_are_held_once_per_connection() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("bank", None)).await;
    welcome(ws.recv().await);
    ws.send(&call(1, "seed", args(&(3u32, 10i64)))).await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::ReducerResult { .. })
    ));
    let query = "SELECT * FROM account";
    ws.send(&subscribe(1, &[query; 16])).await;
    assert_eq!(
        row_count(&applied_rows(ws.recv().await)),
        3,
        "once, not 16 times"
    );
    ws.send(&subscribe(2, &[query, "select * from account"]))
        .await;
    assert_eq!(
        row_count(&applied_rows(ws.recv().await)),
        0,
        "already held: no rows again"
    );
    ws.send(&call(2, "transfer", args(&(0u32, 1u32, 4i64))))
        .await;
    match ws.recv().await {
        Some(ServerMessage::TransactionUpdate { tables, .. }) => {
            assert_eq!(
                tables[0].updates.len(),
                2,
                "two rows changed, each sent once"
            );
        }
        other => panic!("expected the update, got {other:?}"),
    }
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::ReducerResult { .. })
    ));
    ws.send(&ClientMessage::Unsubscribe { query_set_id: 1 })
        .await;
    assert_eq!(
        row_count(&applied_rows(ws.recv().await)),
        0,
        "set 2 still holds the query"
    );
    ws.send(&ClientMessage::Unsubscribe { query_set_id: 2 })
        .await;
    assert_eq!(row_count(&applied_rows(ws.recv().await)), 3);
    live.shutdown().await;
}

// #9 item 14: a subscriber that never reads is dropped once its queue
// holds more bytes than allowed, and reads a fatal Error saying why; the
// server's memory stays bounded and other clients are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greedy_websocket_subscriber_is_dropped_with_a_readable_error() {
    greedy_subscriber_is_dropped_with_a_readable_error(false).await;
}

// #9 item 14: the same over QUIC, where the server used to end the stream
// without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greedy_quic_subscriber_is_dropped_with_a_readable_error() {
    greedy_subscriber_is_dropped_with_a_readable_error(true).await;
}

/// Held by the tests that measure the process's memory, so that one does
/// not count what another makes the server hold.
static MEASURING_MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn greedy_subscriber_is_dropped_with_a_readable_error(quic: bool) {
    let _measuring = MEASURING_MEMORY.lock().await;
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.max_queued_bytes = 256 * 1024;
        config.idle_timeout = Duration::from_secs(20);
    })
    .await;
    let mut greedy = if quic {
        RawClient::Quic(RawQuic::connect(live.quic_addr(), live.certificate()).await)
    } else {
        RawClient::WebSocket(RawWebSocket::connect(&live.ws_url()).await)
    };
    greedy.send(&hello("chat", None)).await;
    welcome(greedy.recv().await);
    let query = "SELECT * FROM message";
    for set in 1..=8 {
        greedy.send(&subscribe(set, &[query; 64])).await;
        applied_rows(greedy.recv().await);
    }
    let before = resident_bytes();
    // Another client writes 24 MB of 48 KB messages, which the greedy one
    // would be sent 8 × 64 times over without deduplication.
    let mut writer = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    writer.send(&hello("chat", None)).await;
    welcome(writer.recv().await);
    let text = "x".repeat(48 * 1024);
    for id in 0..500 {
        writer
            .send(&call(id, "send_message", args(&(&text,))))
            .await;
    }
    for _ in 0..500 {
        match writer.recv().await {
            Some(ServerMessage::ReducerResult { status, .. }) => {
                assert_eq!(status, ReducerStatus::Committed)
            }
            other => panic!("the writer's calls are answered, got {other:?}"),
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 200 << 20, "the process grew by {} MB", grown >> 20);
    // The greedy client, reading at last, finds the reason it was dropped.
    let reason = loop {
        match greedy.recv().await {
            Some(ServerMessage::TransactionUpdate { .. }) => {}
            other => break fatal(other),
        }
    };
    assert!(reason.contains("fell too far behind"), "{reason}");
    assert!(greedy.recv().await.is_none(), "then the connection closes");
    // The writer is still served.
    writer
        .send(&call(900, "send_message", args(&("still here",))))
        .await;
    assert!(matches!(
        writer.recv().await,
        Some(ServerMessage::ReducerResult {
            request_id: 900,
            ..
        })
    ));
    live.shutdown().await;
}

// #9 item 14: a subscription whose initial rows exceed what the server
// sends in one message is refused with a clear error, not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_larger_than_a_message_is_refused_clearly() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_queued_bytes = 16 * 1024;
    })
    .await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("bank", None)).await;
    assert_eq!(welcome(ws.recv().await).1, 16 * 1024);
    ws.send(&call(1, "seed", args(&(5000u32, 1i64)))).await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::ReducerResult { .. })
    ));
    ws.send(&subscribe(1, &["SELECT * FROM account"])).await;
    match ws.recv().await {
        Some(ServerMessage::SubscriptionError { message, .. }) => {
            assert!(message.contains("more than the 16384 bytes"), "{message}");
        }
        other => panic!("expected the subscription to be refused, got {other:?}"),
    }
    // A one-off query that large is refused the same way.
    ws.send(&ClientMessage::Query {
        request_id: 2,
        query: "SELECT * FROM account".into(),
    })
    .await;
    match ws.recv().await {
        Some(ServerMessage::QueryResult {
            result: Err(message),
            ..
        }) => assert!(message.contains("more than the 16384 bytes"), "{message}"),
        other => panic!("expected the query to be refused, got {other:?}"),
    }
    // Nothing was subscribed: the connection goes on.
    ws.send(&subscribe(2, &["SELECT * FROM account WHERE id = 3"]))
        .await;
    assert_eq!(row_count(&applied_rows(ws.recv().await)), 1);
    live.shutdown().await;
}

// #9 item 14: initial results and transaction updates larger than a frame
// arrive as fragments under the advertised limit, and reassemble.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_and_updates_arrive_in_fragments_under_the_frame_limit() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_frame = 4096;
    })
    .await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("bank", None)).await;
    assert_eq!(welcome(ws.recv().await).0, 4096);
    ws.send(&subscribe(1, &["SELECT * FROM account"])).await;
    assert_eq!(row_count(&applied_rows(ws.recv().await)), 0);
    ws.send(&call(1, "seed", args(&(2000u32, 1i64)))).await;
    let (update, sizes) = recv_whole(&mut ws).await;
    assert!(sizes.len() > 1, "split into {} frames", sizes.len());
    assert!(sizes.iter().all(|&size| size <= 4096), "{sizes:?}");
    match update {
        ServerMessage::TransactionUpdate { tables, event } => {
            assert_eq!(event.reducer, "seed");
            assert_eq!(tables[0].inserts.len(), 2000);
        }
        other => panic!("expected the update, got {other:?}"),
    }
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::ReducerResult { .. })
    ));
    ws.send(&subscribe(2, &["SELECT * FROM account WHERE balance = 1"]))
        .await;
    let (applied, sizes) = recv_whole(&mut ws).await;
    assert!(sizes.len() > 1 && sizes.iter().all(|&size| size <= 4096));
    assert_eq!(row_count(&applied_rows(Some(applied))), 2000);
    live.shutdown().await;
}

// #9 item 14: two 3 MiB rows make a 6 MB initial result, more than the 4 MiB
// frame limit; the Rust client (which `worldline subscribe` uses) reads it
// over both transports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_reads_results_larger_than_a_frame_on_both_transports() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut writer = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    writer.send(&hello("chat", None)).await;
    assert_eq!(welcome(writer.recv().await).0, DEFAULT_MAX_FRAME);
    let text = "y".repeat(3 << 20);
    for id in 0..2 {
        writer
            .send(&call(id, "send_message", args(&(&text,))))
            .await;
        assert!(matches!(
            writer.recv().await,
            Some(ServerMessage::ReducerResult {
                status: ReducerStatus::Committed,
                ..
            })
        ));
    }
    for options in [
        ConnectOptions::quic(
            live.quic_addr(),
            Trust::Fingerprint(live.server().fingerprint()),
            "chat",
        ),
        ConnectOptions::websocket(live.ws_url(), "chat"),
    ] {
        let client = Client::connect(options).await.expect("connecting");
        client
            .subscribe(&["SELECT * FROM message"])
            .await
            .expect("the 6 MB result arrives");
        let rows: Vec<Message> = client.rows("message").expect("decoding");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|m| m.text.len() == 3 << 20));
    }
    live.shutdown().await;
}

// #9 item 14: a WebSocket that never sends Hello and a QUIC stream holding
// half a length prefix are closed at the handshake deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_at_the_handshake_deadline() {
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.handshake_timeout = Duration::from_millis(500);
    })
    .await;
    let started = Instant::now();
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    assert!(fatal(ws.recv().await).contains("no Hello within 0.5 s"));
    assert!(ws.recv().await.is_none());

    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send_bytes(&[9, 0]).await;
    assert!(fatal(quic.recv().await).contains("no Hello within 0.5 s"));
    assert!(quic.recv().await.is_none());
    assert!(started.elapsed() < Duration::from_secs(5));
    live.shutdown().await;
}

// #9 item 14: the server pings WebSocket clients; one that never answers
// (it never reads) is dropped after the idle timeout, one that reads stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_answers_no_ping_is_dropped() {
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.idle_timeout = Duration::from_millis(1500);
    })
    .await;
    let listening = Client::connect(ConnectOptions::websocket(live.ws_url(), "chat"))
        .await
        .expect("connecting");
    let mut deaf = RawWebSocket::connect(&live.ws_url()).await;
    deaf.send(&hello("chat", None)).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    welcome(deaf.recv().await);
    let reason = loop {
        match deaf.recv().await {
            Some(ServerMessage::TransactionUpdate { .. }) => {}
            other => break fatal(other),
        }
    };
    assert!(reason.contains("no message or pong for 1.5 s"), "{reason}");
    // The client that reads (and so answers pings) is still connected.
    let outcome = listening
        .call("send_message", &("hello",))
        .await
        .expect("still connected");
    assert_eq!(outcome.status, ReducerStatus::Committed);
    live.shutdown().await;
}

// #9 item 14: one address may hold only so many connections; the next is
// refused with an error saying so, and a freed slot can be used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.max_connections_per_ip = 2;
    })
    .await;
    let mut first = RawWebSocket::connect(&live.ws_url()).await;
    first.send(&hello("chat", None)).await;
    welcome(first.recv().await);
    let mut second = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    second.send(&hello("chat", None)).await;
    welcome(second.recv().await);

    let mut third = RawWebSocket::connect(&live.ws_url()).await;
    let message = fatal(third.recv().await);
    assert!(
        message.contains("too many connections from 127.0.0.1: at most 2"),
        "{message}"
    );
    let mut fourth = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    fourth.send(&hello("chat", None)).await;
    assert!(fatal(fourth.recv().await).contains("too many connections"));

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = RawWebSocket::connect(&live.ws_url()).await;
        again.send(&hello("chat", None)).await;
        match again.recv().await {
            Some(ServerMessage::Welcome { .. }) => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("the freed slot is never reused: {other:?}"),
        }
    }
    live.shutdown().await;
}

// The server holds at most `max_connections` from all addresses together
// (each TCP connection holds a file descriptor): past it a TCP connection
// is answered 503 saying so and a QUIC connection is refused before its
// handshake; a connection that ends frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_caps_its_connections_from_all_addresses() {
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.max_connections = 2;
    })
    .await;
    let mut websocket = RawWebSocket::connect(&live.ws_url()).await;
    websocket.send(&hello("chat", None)).await;
    welcome(websocket.recv().await);
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("chat", None)).await;
    welcome(quic.recv().await);

    let addr = live.http_addr();
    let answer = tokio::task::spawn_blocking(move || {
        raw_http(addr, b"GET /v1/database HTTP/1.1\r\nhost: x\r\n\r\n")
    })
    .await
    .expect("the request ran");
    assert!(
        answer.starts_with("HTTP/1.1 503")
            && answer
                .contains("the server holds 2 connections, the most it takes at once; retry later"),
        "{answer}"
    );
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address")).expect("a socket");
    endpoint.set_default_client_config(quic_client_config(
        live.certificate(),
        vec![worldline_transport::QUIC_ALPN.to_vec()],
    ));
    let refused = endpoint
        .connect(live.quic_addr(), "localhost")
        .expect("a connection attempt")
        .await;
    assert!(
        matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(ref close))
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED),
        "{refused:?}"
    );

    drop(quic);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let connected = endpoint
            .connect(live.quic_addr(), "localhost")
            .expect("a connection attempt")
            .await;
        match connected {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the freed place is never reused: {e}"),
        }
    }
    live.shutdown().await;
}

// Compiled queries take a few times their text and each may be 16 KiB, so
// the SQL one connection's query sets hold is bounded in bytes too: past
// 256 KiB a Subscribe is refused, the connection stays open, and
// unsubscribing makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_one_connection_subscribes_is_bounded_in_bytes() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("chat", None)).await;
    welcome(ws.recv().await);
    let query = |n: usize| {
        let head = format!("SELECT * FROM message WHERE text = '{n}");
        format!("{head}{}'", "x".repeat(16_000 - head.len() - 1))
    };
    let first: Vec<String> = (0..15).map(query).collect();
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    ws.send(&subscribe(1, &first)).await;
    applied_rows(ws.recv().await);
    let second: Vec<String> = (15..17).map(query).collect();
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    ws.send(&subscribe(2, &second)).await;
    match ws.recv().await {
        Some(ServerMessage::SubscriptionError { message, .. }) => assert_eq!(
            message,
            "a connection may hold at most 262144 bytes of subscribed SQL: it holds 240000 and \
             this query set adds 32000; unsubscribe some first"
        ),
        other => panic!("expected the query set to be refused, got {other:?}"),
    }
    ws.send(&ClientMessage::Unsubscribe { query_set_id: 1 })
        .await;
    applied_rows(ws.recv().await);
    ws.send(&subscribe(2, &second)).await;
    applied_rows(ws.recv().await);
    live.shutdown().await;
}

// An HTTP connection that sends nothing is held open by the HTTP layer, so
// one address may hold only twice as many TCP connections to the HTTP port
// as sessions; the next is answered 503 and closed, and a freed one can be
// used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http_connections_per_address_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.max_connections_per_ip = 2;
    })
    .await;
    let addr = live.http_addr();
    let mut session = RawWebSocket::connect(&live.ws_url()).await;
    session.send(&hello("chat", None)).await;
    welcome(session.recv().await);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    let answer = |mut stream: tokio::net::TcpStream| async move {
        let mut answer = String::new();
        let read = stream.read_to_string(&mut answer);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("answered and closed in time")
            .expect("read");
        answer
    };
    // A refused client that already sent its request still reads the
    // answer: the server drains what was sent before closing, rather than
    // closing over unread input (which resets the connection).
    let mut over = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = "GET /v1/server HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    over.write_all(request.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = answer(over).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("too many connections from 127.0.0.1: at most 4 at once per address"),
        "{refused}"
    );
    // The session still works, and a freed connection is usable again.
    session
        .send(&call(1, "send_message", args(&("still here",))))
        .await;
    assert!(session.recv().await.is_some());
    drop(idle.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let reply = answer(stream).await;
        if reply.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot is never reused: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live.shutdown().await;
}

// #9 item 14: anything but Hello first is fatal, a text message included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_before_hello_is_fatal() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send_text("hello?").await;
    assert!(fatal(ws.recv().await).contains("text messages are not part of the protocol"));
    assert!(ws.recv().await.is_none());
    live.shutdown().await;
}

// #9 item 14: datagrams are capped at 1,100 bytes; a larger one is refused
// with a non-fatal error and does not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_datagram_is_refused_and_not_run() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("chat", None)).await;
    welcome(quic.recv().await);
    quic.send(&subscribe(1, &["SELECT * FROM message"])).await;
    applied_rows(quic.recv().await);
    let oversized = ClientMessage::CallReducerUnreliable {
        reducer: "send_message".into(),
        args: ByteBuf::from(args(&("z".repeat(1150),))),
    };
    assert_eq!(encode_message(&oversized).len(), 1168);
    quic.send_datagram(&oversized);
    match quic.recv().await {
        Some(ServerMessage::Error {
            message,
            fatal: false,
        }) => assert!(
            message.contains("a datagram of 1168 bytes exceeds the limit of 1100 bytes"),
            "{message}"
        ),
        other => panic!("expected the datagram to be refused, got {other:?}"),
    }
    // Nothing ran: the next message is the answer to a reliable call.
    quic.send(&call(5, "send_message", args(&("small",)))).await;
    match quic.recv().await {
        Some(ServerMessage::TransactionUpdate { tables, .. }) => {
            let row: Message = postcard::from_bytes(&tables[0].inserts[0]).expect("a message row");
            assert_eq!(row.text, "small");
        }
        other => panic!("expected the reliable call's update, got {other:?}"),
    }
    live.shutdown().await;
}

// #9 item 14: shutting down does not wait for a client that never reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_with_a_client_that_never_reads() {
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        // A queue this short fills at once: refusing the client at shutdown
        // must not wait for room in it.
        config.outbound_queue = 8;
        config.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let mut stuck = RawWebSocket::connect(&live.ws_url()).await;
    stuck.send(&hello("chat", None)).await;
    stuck.send(&subscribe(1, &["SELECT * FROM message"])).await;
    let text = "w".repeat(64 * 1024);
    for id in 0..200 {
        stuck.send(&call(id, "send_message", args(&(&text,)))).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), live.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

// #9 item 14: after the handshake, a frame left half sent is not held
// open forever: it must be complete within the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_frame_after_hello_is_closed_at_the_idle_timeout() {
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.idle_timeout = Duration::from_millis(1500);
    })
    .await;
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("chat", None)).await;
    welcome(quic.recv().await);
    quic.send_bytes(&[100, 0, 0, 0, 1, 2]).await;
    let started = Instant::now();
    assert!(fatal(quic.recv().await).contains("a frame stayed incomplete for 1.5 s"));
    assert!(started.elapsed() >= Duration::from_millis(1400));
    live.shutdown().await;
}

/// Sends `slow_calls` calls that each run until the reducer `deadline`
/// stops them on one connection, then, after `delay`, a quick call on
/// another, and returns how many of the slow calls were answered before
/// the quick one.
async fn slow_calls_answered_before_a_quick_one(
    deadline: Duration,
    slow_calls: u32,
    delay: Duration,
) -> usize {
    let live = LiveServer::start_with(&[("hostile", "hostile")], |config| {
        config.host.engine.reducer_deadline = deadline;
    })
    .await;
    let mut busy = RawWebSocket::connect(&live.ws_url()).await;
    busy.send(&hello("hostile", None)).await;
    welcome(busy.recv().await);
    let caller = live.connect(Transport::Quic, "hostile").await;

    for request_id in 0..slow_calls {
        busy.send(&call(request_id, "spin", args(&()))).await;
    }
    // When each slow call's answer arrived.
    let answers = tokio::spawn(async move {
        let mut arrivals = Vec::new();
        for _ in 0..slow_calls {
            match busy.recv().await {
                Some(ServerMessage::ReducerResult { .. }) => arrivals.push(Instant::now()),
                other => panic!("expected ReducerResult, got {other:?}"),
            }
        }
        arrivals
    });
    tokio::time::sleep(delay).await;
    let outcome = caller.call("seed", &(0u32,)).await.expect("the call");
    assert_eq!(outcome.status, ReducerStatus::Committed);
    let answered = Instant::now();
    let arrivals = answers.await.expect("every slow call answered");
    caller.close().await;
    arrivals.iter().filter(|at| **at < answered).count()
}

// One connection's burst of commands does not hold up another's: the
// database runs queued commands in turns, one per connection, so a call
// waits for at most one command of the burst, not for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_connection_does_not_hold_up_another_connections_call() {
    // The burst is on its way; the call follows it at once.
    let ran_before =
        slow_calls_answered_before_a_quick_one(Duration::from_millis(50), 20, Duration::ZERO).await;
    assert!(
        ran_before <= 3,
        "{ran_before} of the 20 slow calls sent before the call ran first"
    );
}

// PROTOCOL.md "Order": a slow message ends its connection's turn, and a
// message another connection sent while it ran runs next and is answered
// at once. A client whose call arrived during the first of three slow
// calls of another connection waited for two of them to run, and for its
// answer until the third had run too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_sent_during_a_slow_call_runs_and_is_answered_before_the_next_one() {
    // The call is sent well within the first slow call.
    let ran_before = slow_calls_answered_before_a_quick_one(
        Duration::from_millis(400),
        3,
        Duration::from_millis(100),
    )
    .await;
    // The first slow call's answer and the call's go out together: either
    // may reach its client first.
    assert!(
        ran_before <= 1,
        "the call was answered after {ran_before} of the slow calls"
    );
}

// HTTP_API.md "Publishing": a publish that will be refused for who asks or
// how (another owner's database, a malformed allow_http) is refused before
// the component is compiled, so bytes that are no component at all get the
// 403 or 400, not a compile error; a declared length over the limit is
// answered at once, before the upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_is_answered_before_the_compile() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let (_, stranger) = live.server().new_identity();
    let junk = "x".repeat(1000);
    let request = |path: &str, length: usize, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {stranger}\r\n\
             content-type: application/wasm\r\ncontent-length: {length}\r\n\
             connection: close\r\n\r\n{body}"
        )
    };
    for (request, status, says) in [
        (
            request("/v1/database/chat", junk.len(), &junk),
            "403",
            "publish to it",
        ),
        (
            request("/v1/database/fresh?allow_http=*", junk.len(), &junk),
            "400",
            "list hosts as",
        ),
        (
            request("/v1/database/fresh", (64 << 20) + 1, ""),
            "413",
            "larger than the 67108864 bytes",
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(live.http_addr())
            .await
            .expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = vec![0; 4096];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
            .await
            .expect("answered in time")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{request}: {answer}"
        );
        assert!(answer.contains(says), "{request}: {answer}");
        assert!(!answer.contains("WebAssembly"), "{answer}");
    }
    live.shutdown().await;
}

// HTTP_API.md "Limits": a body over its route's limit is refused with
// `413` without being read, and the client that sends it whole still
// reads the `413`: the server reads and drops the rest as it closes,
// where closing with unread input made the kernel reset the connection
// (the client's write failed with a broken pipe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_its_limit_sent_whole_is_answered_413() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    let body = "x".repeat(8 << 20);
    let request = format!(
        "POST /v1/database/bank/sql HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = tokio::task::spawn_blocking(move || raw_http(addr, request.as_bytes()))
        .await
        .expect("the request's thread");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than the 1048576 bytes"), "{answer}");
    live.shutdown().await;
}

// PROTOCOL.md "Fragments": every frame the server sends is within the
// frame limit `Welcome` advertises. A server configured with a frame limit
// under 64 bytes advertised it but sent 64-byte fragments (its smallest);
// it now refuses to start, and at 64 bytes its fragments fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_fits_the_advertised_limit_and_a_limit_under_64_bytes_is_refused() {
    let dir = worldline_tests::TempDir::new("worldline-tiny-frames");
    let mut config = worldline_server::ServerConfig::new(dir.path());
    config.http_listen = "127.0.0.1:0".parse().expect("an address");
    config.quic_listen = "127.0.0.1:0".parse().expect("an address");
    config.max_frame = 16;
    match worldline_server::Server::start(config).await {
        Err(e) => assert_eq!(
            e.to_string(),
            "the frame limit (16 bytes) is below the smallest the protocol allows (64 bytes)"
        ),
        Ok(server) => {
            server.shutdown().await;
            panic!("a server with a 16-byte frame limit started");
        }
    }
    let live = LiveServer::start_with(&[("bank", "bank")], |config| config.max_frame = 64).await;
    let mut client = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    client.send(&hello("bank", None)).await;
    // `Welcome` (over 300 bytes with its token) comes in fragments.
    let mut fragments = 0;
    loop {
        let message = client.recv().await.expect("a message");
        let len = encode_message(&message).len();
        assert!(len <= 64, "a frame of {len} bytes: {message:?}");
        match message {
            ServerMessage::Fragment { last: false, .. } => fragments += 1,
            ServerMessage::Fragment { last: true, .. } => break,
            other => panic!("expected fragments, got {other:?}"),
        }
    }
    assert!(fragments >= 3, "{fragments}");
    live.shutdown().await;
}
