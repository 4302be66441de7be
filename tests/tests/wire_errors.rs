//! How a real server on loopback treats bad input, sent as raw protocol
//! bytes over QUIC and WebSocket: each is refused with a clear error, and
//! neither the server nor other clients notice.

use serde_bytes::ByteBuf;
use worldline_host::Authority;
use worldline_tests::live::LiveServer;
use worldline_tests::raw::{RawQuic, RawWebSocket, call, fatal, hello};
use worldline_tests::{Account, args};
use worldline_transport::{ClientMessage, ReducerStatus, ServerMessage, encode_frame};

fn non_fatal(message: Option<ServerMessage>) -> String {
    match message {
        Some(ServerMessage::Error {
            message,
            fatal: false,
        }) => message,
        other => panic!("expected a non-fatal error, got {other:?}"),
    }
}

/// Checks that the next message is the fatal `Error` for a frame over the
/// 64 KiB limit, and that the connection then closes.
async fn refused_as_oversized(quic: &mut RawQuic) {
    let message = fatal(quic.recv().await);
    assert!(
        message.contains("exceeds the limit of 65536 bytes"),
        "{message}"
    );
    assert!(quic.recv().await.is_none(), "the connection is closed");
}

fn is_welcome(message: &Option<ServerMessage>) -> bool {
    matches!(message, Some(ServerMessage::Welcome { .. }))
}

fn reducer_status(message: Option<ServerMessage>, expected_id: u32) -> ReducerStatus {
    match message {
        Some(ServerMessage::ReducerResult {
            request_id, status, ..
        }) if request_id == expected_id => status,
        other => panic!("expected the result of request {expected_id}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_errors_are_fatal_and_say_what_is_wrong() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let url = live.ws_url();

    let mut client = RawWebSocket::connect(&url).await;
    client.send(&hello("nosuch", None)).await;
    assert!(fatal(client.recv().await).contains("no database named `nosuch`"));
    assert!(client.recv().await.is_none(), "the connection is closed");

    let mut client = RawWebSocket::connect(&url).await;
    client
        .send(&ClientMessage::Hello {
            version: 99,
            database: "chat".into(),
            token: None,
        })
        .await;
    assert!(fatal(client.recv().await).contains("protocol version 99 is not supported"));

    // PROTOCOL.md: a version-2 client is still served, and told version 2;
    // version 1 is refused.
    let mut client = RawWebSocket::connect(&url).await;
    client
        .send(&ClientMessage::Hello {
            version: 2,
            database: "chat".into(),
            token: None,
        })
        .await;
    match client.recv().await {
        Some(ServerMessage::Welcome { version, .. }) => assert_eq!(version, 2),
        other => panic!("a version-2 Hello is welcomed, got {other:?}"),
    }
    // It is never sent a message of version 3: its `CallProcedure` (type 6)
    // is refused as an unknown type, not answered with a `ProcedureResult`.
    client
        .send(&ClientMessage::CallProcedure {
            request_id: 5,
            procedure: "anything".into(),
            args: args(&()).into(),
        })
        .await;
    match client.recv().await {
        Some(ServerMessage::Error { message, fatal }) => {
            assert!(!fatal, "{message}");
            assert!(
                message.contains("unknown ClientMessage type 6 in protocol version 2"),
                "{message}"
            );
        }
        other => panic!("a version-2 CallProcedure is refused, got {other:?}"),
    }
    client.send(&call(6, "send_message", args(&("v2",)))).await;
    assert!(matches!(
        client.recv().await,
        Some(ServerMessage::ReducerResult { request_id: 6, .. })
    ));
    let mut client = RawWebSocket::connect(&url).await;
    client
        .send(&ClientMessage::Hello {
            version: 1,
            database: "chat".into(),
            token: None,
        })
        .await;
    assert!(fatal(client.recv().await).contains("this server speaks 2 to 3"));

    let mut tampered = live.owner_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let mut client = RawWebSocket::connect(&url).await;
    client.send(&hello("chat", Some(tampered))).await;
    assert!(fatal(client.recv().await).contains("token refused"));

    let foreign = Authority::generate("worldline").new_identity().1;
    let mut client = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    client.send(&hello("chat", Some(foreign))).await;
    assert!(fatal(client.recv().await).contains("token refused"));
    assert!(client.recv().await.is_none(), "the connection is closed");

    let mut client = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    client.send(&call(1, "send_message", args(&("hi",)))).await;
    assert!(fatal(client.recv().await).contains("the first message must be Hello"));

    let mut client = RawWebSocket::connect(&url).await;
    client.send_bytes(vec![0xff, 0xff, 0xff]).await;
    assert!(fatal(client.recv().await).contains("expected a Hello message"));

    // After all that, a well-behaved client is served.
    let mut client = RawWebSocket::connect(&url).await;
    client.send(&hello("chat", None)).await;
    assert!(is_welcome(&client.recv().await));
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_after_the_handshake_are_refused_without_closing() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("chat", None)).await;
    assert!(is_welcome(&ws.recv().await));
    ws.send_bytes(vec![42, 1, 2, 3]).await;
    assert!(non_fatal(ws.recv().await).contains("malformed message"));
    ws.send_text("SELECT * FROM user").await;
    assert!(non_fatal(ws.recv().await).contains("send binary messages"));
    ws.send(&hello("chat", None)).await;
    assert!(non_fatal(ws.recv().await).contains("already connected"));
    ws.send(&call(7, "send_message", args(&("still here",))))
        .await;
    assert_eq!(reducer_status(ws.recv().await, 7), ReducerStatus::Committed);

    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("chat", None)).await;
    assert!(is_welcome(&quic.recv().await));
    // A well-framed frame whose contents are not a message.
    quic.send_bytes(&[3, 0, 0, 0, 200, 200, 200]).await;
    assert!(non_fatal(quic.recv().await).contains("malformed message"));
    quic.send(&call(8, "send_message", args(&("me too",))))
        .await;
    assert_eq!(
        reducer_status(quic.recv().await, 8),
        ReducerStatus::Committed
    );
    live.shutdown().await;
}

// PROTOCOL.md "Semantics": a connection's answers come in the order it
// sent its messages. The `Error` for a message that did not decode was
// written at once by the connection's task, ahead of the answers the
// database still held for the messages before it (a call's `ReducerResult`
// waiting for its transaction, even `Welcome` waiting for
// `client_connected`'s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_for_an_undecodable_message_comes_after_the_answers_before_it() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    // All at once, without waiting for `Welcome`.
    ws.send(&hello("chat", None)).await;
    ws.send_bytes(vec![42]).await;
    ws.send(&call(1, "send_message", args(&("first",)))).await;
    ws.send_bytes(vec![]).await;
    ws.send_text("not binary").await;
    ws.send(&call(2, "send_message", args(&("second",)))).await;
    assert!(is_welcome(&ws.recv().await));
    assert!(non_fatal(ws.recv().await).contains("unknown ClientMessage type 42"));
    assert_eq!(reducer_status(ws.recv().await, 1), ReducerStatus::Committed);
    assert!(non_fatal(ws.recv().await).contains("an empty ClientMessage"));
    assert!(non_fatal(ws.recv().await).contains("send binary messages"));
    assert_eq!(reducer_status(ws.recv().await, 2), ReducerStatus::Committed);

    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("chat", None)).await;
    quic.send(&call(3, "send_message", args(&("third",)))).await;
    quic.send_bytes(&[1, 0, 0, 0, 42]).await;
    assert!(is_welcome(&quic.recv().await));
    assert_eq!(
        reducer_status(quic.recv().await, 3),
        ReducerStatus::Committed
    );
    assert!(non_fatal(quic.recv().await).contains("unknown ClientMessage type 42"));
    live.shutdown().await;
}

// PROTOCOL.md "Errors after the handshake": a message type a version-2
// client does not have is refused as its own decoder would refuse it,
// whatever bytes follow the type (a cut-short `CallProcedure` was named as
// one, and types past 6 were said to be expected up to 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_client_is_refused_the_types_of_later_versions() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&ClientMessage::Hello {
        version: 2,
        database: "chat".into(),
        token: None,
    })
    .await;
    assert!(is_welcome(&ws.recv().await));
    for (bytes, expected) in [
        (
            vec![6, 1],
            "malformed message: unknown ClientMessage type 6 in protocol version 2 (expected 0 \
             to 5; procedures need version 3) (message ignored)",
        ),
        (
            vec![42],
            "malformed message: unknown ClientMessage type 42 in protocol version 2 (expected \
             0 to 5) (message ignored)",
        ),
    ] {
        ws.send_bytes(bytes).await;
        assert_eq!(non_fatal(ws.recv().await), expected);
    }
    ws.send(&call(1, "send_message", args(&("still here",))))
        .await;
    assert_eq!(reducer_status(ws.recv().await, 1), ReducerStatus::Committed);
    live.shutdown().await;
}

// PROTOCOL.md "Frame limit": a fatal `Error` for what the client sent
// comes after the answers to the messages before it. It was written at
// once, ahead of `Welcome` (held until `client_connected`'s transaction
// was durable) and of earlier calls' results, which were then lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_comes_after_the_answers_to_the_messages_before_it() {
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.max_frame = 64 * 1024;
    })
    .await;
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    let mut burst = encode_frame(&hello("chat", None));
    burst.extend(encode_frame(&call(1, "send_message", args(&("first",)))));
    burst.extend((1u32 << 30).to_le_bytes());
    quic.send_bytes(&burst).await;
    assert!(is_welcome(&quic.recv().await));
    assert_eq!(
        reducer_status(quic.recv().await, 1),
        ReducerStatus::Committed
    );
    refused_as_oversized(&mut quic).await;

    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("chat", None)).await;
    ws.send(&call(2, "send_message", args(&("second",)))).await;
    // Only the header of a frame announcing 100 KiB: a payload the server
    // does not read would be unread when it closes the socket, which
    // resets the connection and may cut short what it wrote.
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&(100u64 * 1024).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]); // the client's mask
    ws.write_raw(&header).await;
    assert!(is_welcome(&ws.recv().await));
    assert_eq!(reducer_status(ws.recv().await, 2), ReducerStatus::Committed);
    let message = fatal(ws.recv().await);
    assert!(
        message.contains("exceeds the limit of 65536 bytes"),
        "{message}"
    );
    assert!(ws.recv().await.is_none(), "the connection is closed");
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_close_only_the_sender() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_frame = 64 * 1024;
    })
    .await;
    let mut bystander = RawWebSocket::connect(&live.ws_url()).await;
    bystander.send(&hello("bank", None)).await;
    assert!(is_welcome(&bystander.recv().await));

    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("bank", None)).await;
    assert!(is_welcome(&quic.recv().await));
    // A frame announcing 1 GiB: refused on its length alone.
    quic.send_bytes(&(1u32 << 30).to_le_bytes()).await;
    refused_as_oversized(&mut quic).await;

    // A message sent whole, far larger than the socket buffers take: the
    // server stops reading at its header, yet the client's write completes
    // (the server reads and drops the rest as it closes) and the client
    // reads the reason instead of a reset connection.
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("bank", None)).await;
    assert!(is_welcome(&ws.recv().await));
    ws.send(&call(1, "seed", vec![0; 8 << 20])).await;
    let message = fatal(ws.recv().await);
    assert!(
        message.contains("exceeds the limit of 65536 bytes"),
        "{message}"
    );
    assert!(ws.recv().await.is_none(), "the connection is closed");

    // The client connected all along is unaffected.
    bystander.send(&call(2, "seed", args(&(3u32, 10i64)))).await;
    assert_eq!(
        reducer_status(bystander.recv().await, 2),
        ReducerStatus::Committed
    );
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_change_nothing_and_send_no_update() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut client = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    client.send(&hello("bank", None)).await;
    assert!(is_welcome(&client.recv().await));
    client
        .send(&ClientMessage::Subscribe {
            query_set_id: 1,
            queries: vec!["SELECT * FROM account".into()],
        })
        .await;
    assert!(matches!(
        client.recv().await,
        Some(ServerMessage::SubscribeApplied { query_set_id: 1, ref tables }) if tables.iter().all(|t| t.rows.is_empty())
    ));

    let failures = [
        (call(1, "nope", vec![]), "no reducer named `nope`"),
        (call(2, "transfer", vec![1, 2]), "invalid arguments"),
        (
            call(3, "transfer", args(&(0u32, 1u32, 5i64, 9u8))),
            "invalid arguments",
        ),
        (call(4, "seed", vec![0xff; 12]), "invalid arguments"),
        (call(5, "panic_after_write", args(&(1u32,))), "panicked"),
    ];
    for (request, expected) in failures {
        let ClientMessage::CallReducer { request_id, .. } = request else {
            unreachable!()
        };
        client.send(&request).await;
        // The very next message is the failure: no update came first.
        match reducer_status(client.recv().await, request_id) {
            ReducerStatus::Failed(message) => {
                assert!(message.contains(expected), "{message} lacks {expected}");
            }
            other => panic!("request {request_id} did not fail: {other:?}"),
        }
    }

    client.send(&call(9, "seed", args(&(2u32, 50i64)))).await;
    let Some(ServerMessage::TransactionUpdate { tables, event }) = client.recv().await else {
        panic!("expected the seed's update first");
    };
    assert_eq!(event.reducer, "seed");
    let inserted: Vec<Account> = tables[0]
        .inserts
        .iter()
        .map(|row| postcard::from_bytes(row).unwrap())
        .collect();
    assert_eq!(
        inserted,
        [
            Account { id: 0, balance: 50 },
            Account { id: 1, balance: 50 }
        ]
    );
    assert_eq!(
        reducer_status(client.recv().await, 9),
        ReducerStatus::Committed
    );
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_calls_travel_as_datagrams() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut client = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    client.send(&hello("bank", None)).await;
    assert!(is_welcome(&client.recv().await));
    client
        .send(&ClientMessage::Subscribe {
            query_set_id: 1,
            queries: vec!["SELECT * FROM account".into()],
        })
        .await;
    assert!(matches!(
        client.recv().await,
        Some(ServerMessage::SubscribeApplied { .. })
    ));
    // Anything but an unreliable call is ignored in a datagram.
    client.send_datagram(&call(1, "seed", args(&(1u32, 5i64))));
    client.send_datagram(&ClientMessage::CallReducerUnreliable {
        reducer: "seed".into(),
        args: ByteBuf::from(args(&(4u32, 7i64))),
    });
    match client.recv().await {
        Some(ServerMessage::TransactionUpdate { tables, event }) => {
            assert_eq!(event.reducer, "seed");
            assert_eq!(tables[0].inserts.len(), 4, "the unreliable call's rows");
        }
        other => panic!("expected the unreliable call's update, got {other:?}"),
    }
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_connect_reducer_refuses_the_connection() {
    let live = LiveServer::start(&[("features", "features")]).await;
    let mut first = RawWebSocket::connect(&live.ws_url()).await;
    first.send(&hello("features", None)).await;
    let Some(ServerMessage::Welcome {
        identity, token, ..
    }) = first.recv().await
    else {
        panic!("expected a welcome");
    };
    first.send(&call(1, "ban", args(&(identity,)))).await;
    assert_eq!(
        reducer_status(first.recv().await, 1),
        ReducerStatus::Committed
    );

    let mut again = RawWebSocket::connect(&live.ws_url()).await;
    again.send(&hello("features", Some(token))).await;
    let message = fatal(again.recv().await);
    assert!(
        message.contains("the module refused the connection") && message.contains("is banned"),
        "{message}"
    );
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_checked_before_anything_is_subscribed() {
    let live = LiveServer::start(&[("features", "features")]).await;
    let mut stranger = RawWebSocket::connect(&live.ws_url()).await;
    stranger.send(&hello("features", None)).await;
    assert!(is_welcome(&stranger.recv().await));
    let cases = [
        ("SELECT * FROM observation", "private"),
        ("SELECT * FROM nosuch", "nosuch"),
        ("SELECT sku FROM item", "unsupported"),
        ("DELETE FROM item", "unsupported"),
    ];
    for (id, (query, expected)) in (1..).zip(cases) {
        stranger
            .send(&ClientMessage::Subscribe {
                query_set_id: id,
                queries: vec!["SELECT * FROM item".into(), query.into()],
            })
            .await;
        match stranger.recv().await {
            Some(ServerMessage::SubscriptionError {
                query_set_id,
                message,
            }) => {
                assert_eq!(query_set_id, id);
                assert!(message.contains(expected), "{message} lacks {expected}");
            }
            other => panic!("expected {query} to be refused, got {other:?}"),
        }
    }
    stranger
        .send(&ClientMessage::Unsubscribe { query_set_id: 1 })
        .await;
    assert!(matches!(
        stranger.recv().await,
        Some(ServerMessage::SubscriptionError {
            query_set_id: 1,
            ..
        })
    ));

    let mut owner = RawWebSocket::connect(&live.ws_url()).await;
    owner
        .send(&hello("features", Some(live.owner_token.clone())))
        .await;
    assert!(is_welcome(&owner.recv().await));
    owner
        .send(&ClientMessage::Subscribe {
            query_set_id: 1,
            queries: vec!["SELECT * FROM observation".into()],
        })
        .await;
    match owner.recv().await {
        Some(ServerMessage::SubscribeApplied { tables, .. }) => {
            assert_eq!(tables[0].table, "observation");
            assert!(!tables[0].rows.is_empty(), "init's observation is there");
        }
        other => panic!("the owner may subscribe to private tables, got {other:?}"),
    }
    live.shutdown().await;
}
