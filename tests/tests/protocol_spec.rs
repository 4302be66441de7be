//! Every statement of `transport/PROTOCOL.md` that an independent client
//! author relies on, checked against a real server on loopback with raw
//! frames (#9 item 14): row encodings, datagrams, the certificate
//! fingerprint, the frame limit, QUIC idle and stream rules, the token in
//! `Welcome`, query-set ids, reducer events, lifecycle updates, filters
//! and the SQL subset. Each test names the section it checks.

use std::time::Duration;

use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use worldline_client::{Client, ConnectOptions, Endpoint, Trust};
use worldline_host::datastore::{Value, encode_value};
use worldline_tests::live::LiveServer;
use worldline_tests::raw::{RawQuic, RawWebSocket, call, fatal, hello, quic_connection};
use worldline_tests::{Account, args};
use worldline_transport::{
    ClientMessage, PROTOCOL_VERSION, ProcedureStatus, ReducerStatus, ServerMessage, TableUpdate,
    encode_message,
};

fn bytes(hex: &str) -> Vec<u8> {
    hex.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

/// `Welcome`'s identity, token and connection id.
fn welcome(message: Option<ServerMessage>) -> ([u8; 32], String, [u8; 16]) {
    match message {
        Some(ServerMessage::Welcome {
            identity,
            token,
            connection_id,
            ..
        }) => (identity, token, connection_id),
        other => panic!("expected Welcome, got {other:?}"),
    }
}

fn subscribe(query_set_id: u32, query: &str) -> ClientMessage {
    ClientMessage::Subscribe {
        query_set_id,
        queries: vec![query.into()],
    }
}

fn update(message: Option<ServerMessage>) -> (Vec<TableUpdate>, worldline_transport::ReducerEvent) {
    match message {
        Some(ServerMessage::TransactionUpdate { tables, event }) => (tables, event),
        other => panic!("expected a TransactionUpdate, got {other:?}"),
    }
}

fn result_of(message: Option<ServerMessage>) -> (u32, ReducerStatus) {
    match message {
        Some(ServerMessage::ReducerResult {
            request_id, status, ..
        }) => (request_id, status),
        other => panic!("expected a ReducerResult, got {other:?}"),
    }
}

async fn connected(live: &LiveServer, database: &str) -> RawWebSocket {
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello(database, None)).await;
    welcome(ws.recv().await);
    ws
}

// PROTOCOL.md "Row encoding": the documented example bytes of every type.
#[test]
fn row_values_encode_as_documented() {
    let (identity, connection_id) = ("07 ".repeat(32), "09 ".repeat(16));
    let cases: Vec<(Value, &str)> = vec![
        (Value::Bool(true), "01"),
        (Value::U8(200), "c8"),
        (Value::I8(-2), "fe"),
        (Value::U16(300), "ac 02"),
        (Value::I16(-3), "05"),
        (Value::I32(-1), "01"),
        (Value::I32(1), "02"),
        (Value::U64(1 << 32), "80 80 80 80 10"),
        (Value::I64(-2), "03"),
        (Value::U128(1 << 64), "80 80 80 80 80 80 80 80 80 02"),
        (Value::I128(64), "80 01"),
        (Value::F32(1.0), "00 00 80 3f"),
        (Value::F64(-2.0), "00 00 00 00 00 00 00 c0"),
        (Value::String("hi".into()), "02 68 69"),
        (Value::Array(vec![Value::U8(1), Value::U8(2)]), "02 01 02"),
        (Value::Identity([7; 32]), &identity),
        (Value::ConnectionId([9; 16]), &connection_id),
        (
            Value::Timestamp(1_700_000_000_000_000),
            "80 80 f2 81 83 89 85 06",
        ),
        (Value::Timestamp(-1), "01"),
        (Value::Option(None), "00"),
        (Value::Option(Some(Box::new(Value::U8(5)))), "01 05"),
        (
            Value::Array(vec![Value::U16(1), Value::U16(300)]),
            "02 01 ac 02",
        ),
        (
            Value::Product(vec![Value::U8(1), Value::String("a".into())]),
            "01 01 61",
        ),
        (Value::Sum(1, Box::new(Value::U32(7))), "01 07"),
        (Value::Sum(0, Box::new(Value::Product(vec![]))), "00"),
    ];
    for (value, hex) in cases {
        assert_eq!(encoded(&value), bytes(hex), "{value:?}");
    }
    // The same bytes as serde types through postcard, which client SDKs use.
    #[derive(serde::Serialize)]
    enum Shape {
        _Empty,
        Circle(u32),
    }
    assert_eq!(postcard::to_allocvec(&Shape::Circle(7)).unwrap(), [1, 7]);
    assert_eq!(postcard::to_allocvec(&(1u8, "a")).unwrap(), [1, 1, 0x61]);
    assert_eq!(postcard::to_allocvec(&64i128).unwrap(), [0x80, 1]);
}

// PROTOCOL.md "Row encoding": a row on the wire is its columns in order,
// each encoded as documented (chat's `message`: u64, Identity, Timestamp, String).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_on_the_wire_is_its_columns_in_order() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("chat", None)).await;
    let (identity, _, _) = welcome(ws.recv().await);
    ws.send(&subscribe(1, "SELECT * FROM message")).await;
    ws.recv().await;
    ws.send(&call(1, "send_message", args(&("hi",)))).await;
    let (tables, event) = update(ws.recv().await);
    let row = &tables[0].inserts[0];
    let id: u64 = postcard::take_from_bytes(row).expect("the id").0;
    let expected = encoded(&Value::Product(vec![
        Value::U64(id),
        Value::Identity(identity),
        Value::Timestamp(event.timestamp),
        Value::String("hi".into()),
    ]));
    assert_eq!(row.as_ref(), expected.as_slice());
    live.shutdown().await;
}

// PROTOCOL.md "Datagrams": the payload is the whole message, its variant
// index (5) included, with no length prefix; without the index it is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_is_a_whole_message_with_its_variant_index() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("bank", None)).await;
    welcome(quic.recv().await);
    quic.send(&subscribe(1, "SELECT * FROM account")).await;
    quic.recv().await;
    // seed(2, 9): reducer "seed", arguments (u32 2, i64 9) = 02 12.
    let with_index = bytes("05 04 73 65 65 64 02 02 12");
    let without_index = with_index[1..].to_vec();
    quic.connection()
        .send_datagram(without_index.into())
        .expect("sending");
    quic.connection()
        .send_datagram(with_index.into())
        .expect("sending");
    let (tables, event) = update(quic.recv().await);
    assert_eq!(event.reducer, "seed");
    assert_eq!(
        tables[0].inserts.len(),
        2,
        "only the datagram with its index ran"
    );
    live.shutdown().await;
}

// PROTOCOL.md "Framing": the fingerprint is the SHA-256 of the certificate's
// DER bytes, shown as 64 lowercase hex digits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fingerprint_is_the_sha256_of_the_certificate_der() {
    let live = LiveServer::start(&[]).await;
    let digest: [u8; 32] = Sha256::digest(live.certificate()).into();
    assert_eq!(digest, live.server().fingerprint());
    let hex = worldline_server::fingerprint_hex(&digest);
    assert_eq!(hex.len(), 64);
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    live.shutdown().await;
}

// PROTOCOL.md "Framing": the limit counts the payload, not the 4-byte prefix,
// on QUIC and WebSocket alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_limit_counts_the_payload_not_the_prefix() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_frame = 1024;
    })
    .await;
    // A call whose encoding is exactly `len` bytes (arguments that do not
    // decode: the reducer fails, which is enough to show it was read).
    let sized = |len: usize| {
        let message = call(1, "noop", vec![0; len - 9]);
        assert_eq!(encode_message(&message).len(), len);
        message
    };
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("bank", None)).await;
    welcome(quic.recv().await);
    quic.send(&sized(1024)).await;
    assert_eq!(result_of(quic.recv().await).0, 1);
    quic.send(&sized(1025)).await;
    assert!(fatal(quic.recv().await).contains("a frame of 1025 bytes exceeds the limit of 1024"));

    let mut ws = connected(&live, "bank").await;
    ws.send(&sized(1024)).await;
    assert_eq!(result_of(ws.recv().await).0, 1);
    ws.send(&sized(1025)).await;
    assert!(
        ws.recv()
            .await
            .is_none_or(|m| matches!(m, ServerMessage::Error { fatal: true, .. }))
    );

    // Only the header of a frame announcing 1025 bytes: the server refuses
    // it on the length alone, in the same words as over QUIC.
    let mut ws = connected(&live, "bank").await;
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&1025u64.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]); // the client's mask
    ws.write_raw(&header).await;
    let message = fatal(ws.recv().await);
    assert_eq!(
        message,
        "a frame of 1025 bytes exceeds the limit of 1024 bytes"
    );
    live.shutdown().await;
}

// PROTOCOL.md "QUIC": the server sends keep-alives, so a client that only
// listens, with no keep-alive of its own, outlives the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_quic_client_needs_no_keep_alive() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.idle_timeout = Duration::from_millis(1500);
    })
    .await;
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("bank", None)).await;
    welcome(quic.recv().await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    quic.send(&call(3, "noop", Vec::new())).await;
    assert_eq!(result_of(quic.recv().await), (3, ReducerStatus::Committed));
    live.shutdown().await;
}

// PROTOCOL.md "QUIC": one bidirectional stream, opened within the handshake
// deadline; no second stream is granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_opened_within_the_handshake_deadline() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.handshake_timeout = Duration::from_millis(500);
    })
    .await;
    let (_endpoint, idle) = quic_connection(live.quic_addr(), live.certificate()).await;
    let reason = tokio::time::timeout(Duration::from_secs(5), idle.closed())
        .await
        .expect("closed at the deadline");
    assert!(reason.to_string().contains("no stream opened"), "{reason}");

    let quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    let second =
        tokio::time::timeout(Duration::from_millis(300), quic.connection().open_bi()).await;
    assert!(second.is_err(), "a second stream is never granted");
    live.shutdown().await;
}

// PROTOCOL.md "QUIC": with a pinned fingerprint any SNI name works; the
// certificate names `localhost` and `127.0.0.1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_sni_name_works_with_a_pinned_fingerprint() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut options = ConnectOptions::quic(
        live.quic_addr(),
        Trust::Fingerprint(live.server().fingerprint()),
        "bank",
    );
    options.endpoint = Endpoint::Quic {
        addr: live.quic_addr(),
        server_name: "anything.example".into(),
        trust: Trust::Fingerprint(live.server().fingerprint()),
    };
    let client = Client::connect(options).await.expect("connecting");
    let outcome = client.call("noop", &()).await.expect("answered");
    assert_eq!(outcome.status, ReducerStatus::Committed);
    live.shutdown().await;
}

// PROTOCOL.md "Handshake": Welcome echoes the token a client presented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_echoes_the_presented_token() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("bank", Some(live.owner_token.clone())))
        .await;
    assert_eq!(welcome(ws.recv().await).1, live.owner_token);
    live.shutdown().await;
}

// PROTOCOL.md "Datagrams": an unreliable call is also accepted on the
// stream; it runs and is never answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreliable_call_on_the_stream_runs_unanswered() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut ws = connected(&live, "bank").await;
    ws.send(&subscribe(1, "SELECT * FROM account")).await;
    ws.recv().await;
    ws.send(&ClientMessage::CallReducerUnreliable {
        reducer: "seed".into(),
        args: ByteBuf::from(args(&(1u32, 5i64))),
    })
    .await;
    ws.send(&call(2, "noop", Vec::new())).await;
    let (tables, _) = update(ws.recv().await);
    assert_eq!(tables[0].inserts.len(), 1);
    assert_eq!(
        result_of(ws.recv().await).0,
        2,
        "no answer to the unreliable call"
    );
    live.shutdown().await;
}

// PROTOCOL.md "Subscriptions": a query_set_id in use is refused; once
// unsubscribed it may be used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_set_id_is_reusable_after_unsubscribe() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut ws = connected(&live, "bank").await;
    ws.send(&subscribe(7, "SELECT * FROM account")).await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::SubscribeApplied { .. })
    ));
    ws.send(&subscribe(7, "SELECT * FROM account")).await;
    match ws.recv().await {
        Some(ServerMessage::SubscriptionError { message, .. }) => {
            assert!(message.contains("already subscribed"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    ws.send(&ClientMessage::Unsubscribe { query_set_id: 7 })
        .await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::UnsubscribeApplied { .. })
    ));
    ws.send(&subscribe(7, "SELECT * FROM account WHERE id = 1"))
        .await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::SubscribeApplied { .. })
    ));
    live.shutdown().await;
}

// PROTOCOL.md "A database that stops": deleting a database closes each of
// its connections with a fatal `Error` saying so; a database published
// again under the name is reached by a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_database_closes_its_connections_with_the_reason() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut ws = connected(&live, "bank").await;
    ws.send(&subscribe(1, "SELECT * FROM account")).await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::SubscribeApplied { .. })
    ));
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("bank", None)).await;
    welcome(quic.recv().await);

    let deleted = raw_http(
        &live,
        &format!(
            "DELETE /v1/database/bank HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
            live.owner_token
        ),
    )
    .await;
    assert!(deleted.starts_with("HTTP/1.1 204"), "{deleted}");
    let reason = "database `bank` stopped: database `bank` was deleted";
    assert_eq!(fatal(ws.recv().await), reason);
    assert!(ws.recv().await.is_none(), "the connection is closed");
    assert_eq!(fatal(quic.recv().await), reason);
    assert!(quic.recv().await.is_none(), "the connection is closed");

    let (owner, _) = live.server().new_identity();
    let wasm = worldline_tests::guest_wasm("bank");
    tokio::task::block_in_place(|| live.server().publish("bank", &wasm, owner))
        .expect("publishing again");
    let mut ws = connected(&live, "bank").await;
    ws.send(&call(2, "seed", args(&(1u32, 5i64)))).await;
    assert_eq!(result_of(ws.recv().await), (2, ReducerStatus::Committed));
    live.shutdown().await;
}

/// Calls `reducer` through the HTTP API with a JSON body, as `token`.
async fn http_call(live: &LiveServer, database: &str, reducer: &str, body: &str, token: &str) {
    let mut stream = tokio::net::TcpStream::connect(live.server().http_addr())
        .await
        .expect("connecting over HTTP");
    let request = format!(
        "POST /v1/database/{database}/call/{reducer} HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("writing");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reading");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

// PROTOCOL.md "Reducer events": connection_id is the caller's connection for
// calls over a connection, and empty for calls through the HTTP API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reducer_event_names_the_connection_unless_called_over_http() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("bank", None)).await;
    let (_, _, connection_id) = welcome(ws.recv().await);
    ws.send(&subscribe(1, "SELECT * FROM account")).await;
    ws.recv().await;
    ws.send(&call(1, "seed", args(&(2u32, 5i64)))).await;
    assert_eq!(update(ws.recv().await).1.connection_id, Some(connection_id));
    ws.recv().await;
    http_call(&live, "bank", "transfer", "[0, 1, 1]", &live.owner_token).await;
    let (_, event) = update(ws.recv().await);
    assert_eq!(event.reducer, "transfer");
    assert_eq!(event.connection_id, None);
    live.shutdown().await;
}

// PROTOCOL.md "Subscriptions": client_connected and client_disconnected are
// transactions like any other; their changes reach subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_reducers_send_updates() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut watcher = connected(&live, "chat").await;
    watcher.send(&subscribe(1, "SELECT * FROM user")).await;
    watcher.recv().await;
    let mut visitor = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    visitor.send(&hello("chat", None)).await;
    let (_, _, visitor_connection) = welcome(visitor.recv().await);
    let (tables, event) = update(watcher.recv().await);
    assert_eq!(event.reducer, "client_connected");
    assert_eq!(event.connection_id, Some(visitor_connection));
    assert_eq!(tables[0].inserts.len(), 1, "the new user row");
    drop(visitor);
    let (tables, event) = update(watcher.recv().await);
    assert_eq!(event.reducer, "client_disconnected");
    assert_eq!(tables[0].updates.len(), 1, "the user goes offline in place");
    live.shutdown().await;
}

// PROTOCOL.md "Subscriptions": a row that starts matching a filter arrives
// as an insert, one that stops as a delete, one that keeps matching under
// the same key as an update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_entering_and_leaving_a_filter_are_inserts_and_deletes() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut ws = connected(&live, "bank").await;
    ws.send(&call(1, "seed", args(&(3u32, 50i64)))).await;
    ws.recv().await;
    ws.send(&subscribe(1, "SELECT * FROM account WHERE balance > 50"))
        .await;
    ws.recv().await;
    let decode = |rows: &[ByteBuf]| -> Vec<Account> {
        rows.iter()
            .map(|r| postcard::from_bytes(r).expect("an account"))
            .collect()
    };
    ws.send(&call(2, "transfer", args(&(0u32, 1u32, 10i64))))
        .await;
    let (tables, _) = update(ws.recv().await);
    assert_eq!(decode(&tables[0].inserts), [Account { id: 1, balance: 60 }]);
    assert!(tables[0].deletes.is_empty() && tables[0].updates.is_empty());
    ws.recv().await;
    ws.send(&call(3, "transfer", args(&(1u32, 2u32, 20i64))))
        .await;
    let (tables, _) = update(ws.recv().await);
    assert_eq!(decode(&tables[0].inserts), [Account { id: 2, balance: 70 }]);
    assert_eq!(decode(&tables[0].deletes), [Account { id: 1, balance: 60 }]);
    ws.recv().await;
    ws.send(&call(4, "transfer", args(&(2u32, 0u32, 5i64))))
        .await;
    let (tables, _) = update(ws.recv().await);
    assert_eq!(tables[0].updates.len(), 1);
    assert!(tables[0].inserts.is_empty() && tables[0].deletes.is_empty());
    live.shutdown().await;
}

// PROTOCOL.md "Supported SQL": what the grammar accepts and refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_subset_is_as_documented() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut ws = connected(&live, "chat").await;
    ws.send(&call(1, "send_message", args(&("it's",)))).await;
    ws.recv().await;
    let mut id = 0;
    let mut outcome = |query: String| {
        id += 1;
        (id, query)
    };
    let accepted = [
        "select * from message where text = 'it''s'".to_owned(),
        "SELECT * FROM \"user\" WHERE online = true".to_owned(),
        "SELECT * FROM message WHERE (id >= 0 AND id <> 7) OR text = 'x'".to_owned(),
        "SELECT * FROM message WHERE id != 7 AND 7 < id OR sent > -1".to_owned(),
        "SELECT message.* FROM message WHERE message.id <= 100".to_owned(),
    ];
    for query in accepted {
        let (set, query) = outcome(query);
        ws.send(&subscribe(set, &query)).await;
        match ws.recv().await {
            Some(ServerMessage::SubscribeApplied { tables, .. }) => {
                if query.contains("it''s") {
                    assert_eq!(tables[0].rows.len(), 1, "'' is a quote inside a string");
                }
            }
            other => panic!("{query} is accepted, got {other:?}"),
        }
    }
    let refused = [
        ("SELECT * FROM message WHERE NOT id = 1", "unsupported"),
        ("SELECT * FROM message LIMIT 1", "LIMIT"),
        ("SELECT text FROM message", "unsupported"),
        ("SELECT * FROM message WHERE text LIKE 'a%'", "unsupported"),
        ("SELECT * FROM message ORDER BY id", "ORDER BY"),
        ("SELECT * FROM message WHERE id IN (1, 2)", "unsupported"),
        (
            "SELECT * FROM message WHERE id BETWEEN 1 AND 2",
            "unsupported",
        ),
        ("SELECT DISTINCT * FROM message", "DISTINCT"),
        ("SELECT * FROM message WHERE id = id", "unsupported"),
    ];
    for (query, expected) in refused {
        let (set, query) = outcome(query.to_owned());
        ws.send(&subscribe(set, &query)).await;
        match ws.recv().await {
            Some(ServerMessage::SubscriptionError { message, .. }) => {
                assert!(message.contains(expected), "{query}: {message}")
            }
            other => panic!("{query} is refused, got {other:?}"),
        }
    }
    let (set, long) = outcome(format!(
        "SELECT * FROM message WHERE text = '{}'",
        "a".repeat(16 * 1024)
    ));
    ws.send(&subscribe(set, &long)).await;
    match ws.recv().await {
        Some(ServerMessage::SubscriptionError { message, .. }) => {
            assert!(message.contains("too large"), "{message}");
            assert!(message.len() < 1024, "the query is not echoed whole");
        }
        other => panic!("a long query is refused, got {other:?}"),
    }
    live.shutdown().await;
}

// PROTOCOL.md "Worked examples".
#[test]
fn the_worked_examples_are_exact() {
    assert_eq!(PROTOCOL_VERSION, 3);
    let hello = encode_message(&hello("chat", None));
    assert_eq!(hello, bytes("00 03 04 63 68 61 74 00"));
    let call = encode_message(&ClientMessage::CallProcedure {
        request_id: 7,
        procedure: "echo".into(),
        args: ByteBuf::from(vec![1, b'a']),
    });
    assert_eq!(call, bytes("06 07 04 65 63 68 6f 02 01 61"));
    let result = encode_message(&ServerMessage::ProcedureResult {
        request_id: 7,
        status: ProcedureStatus::Returned(ByteBuf::from(vec![1, b'a'])),
        duration_micros: 300,
    });
    assert_eq!(result, bytes("09 07 00 02 01 61 ac 02"));
    let error = encode_message(&ServerMessage::Error {
        message: "no".into(),
        fatal: true,
    });
    assert_eq!(error, bytes("07 02 6e 6f 01"));
    let fragment = encode_message(&ServerMessage::Fragment {
        last: true,
        bytes: ByteBuf::from(vec![7, 0, 1]),
    });
    assert_eq!(fragment, bytes("08 01 03 07 00 01"));
    let frame = worldline_transport::encode_frame(&ServerMessage::Error {
        message: "no".into(),
        fatal: true,
    });
    assert_eq!(frame, bytes("05 00 00 00 07 02 6e 6f 01"));
}

/// One raw HTTP/1.1 request (closing the connection), answered whole.
async fn raw_http(live: &LiveServer, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(live.http_addr())
        .await
        .expect("connecting over HTTP");
    stream.write_all(request.as_bytes()).await.expect("writing");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reading");
    response
}

/// The value of header `name` in a raw answer, if it has one.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

// HTTP_API.md "Browsers (CORS)": with no allowed origins the API sends no
// CORS headers and a preflight is refused; with `--allow-origin` a listed
// origin's preflight is answered and its answers carry the header, and an
// origin not listed gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_headers_go_only_to_allowed_origins() {
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /v1/database/bank/sql HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: authorization, content-type\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let sql = |origin: &str, token: &str| {
        let body = "SELECT * FROM account";
        format!(
            "POST /v1/database/bank/sql HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let page = "https://app.example.com";

    let closed = LiveServer::start(&[("bank", "bank")]).await;
    let refused = raw_http(&closed, &preflight(page)).await;
    assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");
    let answer = raw_http(&closed, &sql(page, &closed.owner_token)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    closed.shutdown().await;

    let open = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.allowed_origins = vec![page.into(), "http://localhost:8080".into()];
    })
    .await;
    let allowed = raw_http(&open, &preflight(page)).await;
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(page));
    let methods = header(&allowed, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{allowed}");
    let headers = header(&allowed, "access-control-allow-headers").unwrap_or_default();
    assert!(headers.contains("authorization"), "{allowed}");
    let answer = raw_http(&open, &sql(page, &open.owner_token)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(header(&answer, "access-control-allow-origin"), Some(page));
    let vary = header(&answer, "vary").unwrap_or_default();
    assert!(vary.contains("origin"), "{answer}");
    assert_eq!(header(&allowed, "access-control-max-age"), Some("600"));
    // Another origin is answered (the token still decides what it may do)
    // but without the header, so its page cannot read the answer.
    let other = raw_http(&open, &sql("https://evil.example", &open.owner_token)).await;
    assert_eq!(
        header(&other, "access-control-allow-origin"),
        None,
        "{other}"
    );
    open.shutdown().await;
}
