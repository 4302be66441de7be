//! What an outsider who knows only `PROTOCOL.md` can throw at the QUIC
//! transport of a real server on loopback: streams besides the one the
//! protocol uses, a stream reset or finished in the middle of a frame, a
//! stream finished while answers are owed (waiting for an fsync, or never
//! read), length prefixes over the frame limit, frames dribbled a byte at
//! a time, datagrams that are malformed or come before `Hello`,
//! connections closed with odd codes in the middle of a call, a client
//! that calls and never reads, many connections from one address and
//! connections that never send `Hello`. Each is answered as `PROTOCOL.md`
//! says (or closed in bounded time), and the server goes on serving
//! everyone else.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use worldline_tests::args;
use worldline_tests::gate::Gate;
use worldline_tests::live::LiveServer;
use worldline_tests::raw::{RawQuic, call, fatal, hello, quic_client_config, quic_connection};
use worldline_transport::{
    ClientMessage, ProcedureStatus, QUIC_ALPN, ReducerStatus, ServerMessage, TableRows,
    encode_frame, encode_message,
};

/// A raw QUIC client ([`RawQuic`]: full control of its connection and its
/// one stream) with the few things these attacks add.
struct Peer(RawQuic);

impl Deref for Peer {
    type Target = RawQuic;

    fn deref(&self) -> &RawQuic {
        &self.0
    }
}

impl DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut RawQuic {
        &mut self.0
    }
}

impl Peer {
    /// A connection with its protocol stream opened (the server sees the
    /// stream once the first byte is written on it).
    async fn open(live: &LiveServer) -> Self {
        Self(RawQuic::connect(live.quic_addr(), live.certificate()).await)
    }

    /// A connection to the bank database, past `Welcome`.
    async fn joined(live: &LiveServer) -> Self {
        Self::joined_to(live, "bank").await
    }

    /// A connection to `database`, past `Welcome`.
    async fn joined_to(live: &LiveServer, database: &str) -> Self {
        let mut peer = Self::open(live).await;
        peer.send(&hello(database, None)).await;
        match peer.recv().await {
            Some(ServerMessage::Welcome { .. }) => peer,
            other => panic!("expected Welcome from {database}, got {other:?}"),
        }
    }

    /// Every message the server sends until it ends the stream, skipping
    /// `TransactionUpdate`s (a finished client is not owed them).
    async fn rest(&mut self) -> Vec<ServerMessage> {
        let mut rest = Vec::new();
        while let Some(message) = self.recv().await {
            if !matches!(message, ServerMessage::TransactionUpdate { .. }) {
                rest.push(message);
            }
        }
        rest
    }

    /// Sends `bytes` as a datagram, whatever they hold.
    fn send_raw_datagram(&self, bytes: Vec<u8>) {
        self.connection()
            .send_datagram(bytes.into())
            .expect("sending a datagram");
    }

    /// The status of the answer to call `expected_id`, skipping updates.
    async fn status(&mut self, expected_id: u32) -> ReducerStatus {
        loop {
            match self.recv().await {
                Some(ServerMessage::TransactionUpdate { .. }) => {}
                Some(ServerMessage::ReducerResult {
                    request_id, status, ..
                }) if request_id == expected_id => return status,
                other => panic!("expected the answer to call {expected_id}, got {other:?}"),
            }
        }
    }

    /// The rows of `table` a one-off query returns.
    async fn rows(&mut self, request_id: u32, table: &str) -> usize {
        self.send(&ClientMessage::Query {
            request_id,
            query: format!("SELECT * FROM {table}"),
        })
        .await;
        match self.recv().await {
            Some(ServerMessage::QueryResult {
                request_id: id,
                result: Ok(tables),
            }) if id == request_id => tables.iter().map(|t: &TableRows| t.rows.len()).sum(),
            other => panic!("expected the query's rows, got {other:?}"),
        }
    }
}

/// Waits at most `limit` for the server to close `connection`; its reason.
async fn closed_within(connection: &quinn::Connection, limit: Duration) -> quinn::ConnectionError {
    tokio::time::timeout(limit, connection.closed())
        .await
        .unwrap_or_else(|_| panic!("the connection is still open after {limit:?}"))
}

/// Waits until the server has completed `connection`'s QUIC handshake
/// (a lost packet can delay that well past the client's side of it).
async fn handshake_confirmed(connection: &quinn::Connection) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while connection.stats().frame_rx.handshake_done == 0 {
        assert!(
            Instant::now() < deadline,
            "the server never completed the handshake"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The reason text of a connection the server closed.
fn close_reason(error: quinn::ConnectionError) -> String {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            String::from_utf8_lossy(&close.reason).into_owned()
        }
        other => panic!("expected the server to close the connection, got {other}"),
    }
}

/// A connection past `Welcome`, retrying while this address has no place
/// free (the server frees a closed connection's place moments after the
/// close arrives).
async fn admitted_within(live: &LiveServer, limit: Duration) -> Peer {
    let deadline = Instant::now() + limit;
    loop {
        let mut peer = Peer::open(live).await;
        peer.send(&hello("bank", None)).await;
        match peer.recv().await {
            Some(ServerMessage::Welcome { .. }) => return peer,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("no place came free within {limit:?}: {other:?}"),
        }
    }
}

/// A fresh QUIC connection's call is answered `Committed`: the server still serves.
async fn still_serves(live: &LiveServer) {
    let mut peer = Peer::joined(live).await;
    peer.send(&call(1, "noop", Vec::new())).await;
    assert_eq!(peer.status(1).await, ReducerStatus::Committed);
}

// PROTOCOL.md "One stream": the server grants no second bidirectional
// stream and no unidirectional stream, so a client asking for more waits
// for ever (its QUIC stack holds the request), while its one stream, and
// everyone else, go on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_besides_the_first_are_never_granted() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut peer = Peer::joined(&live).await;
    let wait = Duration::from_millis(500);
    let many = async {
        let mut opened = 0;
        for _ in 0..100 {
            match tokio::time::timeout(wait, peer.connection().open_bi()).await {
                Ok(Ok(_)) => opened += 1,
                Ok(Err(e)) => panic!("the connection failed: {e}"),
                Err(_) => break,
            }
        }
        opened
    };
    assert_eq!(many.await, 0, "a second bidirectional stream was granted");
    assert!(
        tokio::time::timeout(wait, peer.connection().open_uni())
            .await
            .is_err(),
        "a unidirectional stream was granted"
    );
    peer.send(&call(1, "noop", Vec::new())).await;
    assert_eq!(peer.status(1).await, ReducerStatus::Committed);
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md "One stream": a connection that completes the QUIC handshake
// but opens no stream, or opens it and never sends Hello, holds a place
// under the per-address cap only until the handshake deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_send_hello_are_closed_at_the_handshake_deadline() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.handshake_timeout = Duration::from_secs(2);
        config.max_connections_per_ip = 3;
    })
    .await;
    let started = Instant::now();
    // No stream at all; a stream asked for but never written (the server
    // cannot see it); a stream holding one byte of a length prefix.
    let (_silent_endpoint, silent) = quic_connection(live.quic_addr(), live.certificate()).await;
    let mut unwritten = Peer::open(&live).await;
    let mut dribbler = Peer::open(&live).await;
    dribbler.send_bytes(&[1]).await;
    // The three hold every place this address has once the server has
    // completed their QUIC handshakes (its HANDSHAKE_DONE says so).
    for connection in [&silent, unwritten.connection(), dribbler.connection()] {
        handshake_confirmed(connection).await;
    }
    let mut refused = Peer::open(&live).await;
    refused.send(&hello("bank", None)).await;
    let message = fatal(refused.recv().await);
    assert!(
        message.contains("too many connections from 127.0.0.1: at most 3"),
        "{message}"
    );

    let limit = Duration::from_secs(8);
    assert_eq!(
        close_reason(closed_within(&silent, limit).await),
        "no stream opened within the handshake deadline"
    );
    assert_eq!(
        close_reason(closed_within(unwritten.connection(), limit).await),
        "no stream opened within the handshake deadline"
    );
    assert!(unwritten.recv().await.is_none());
    let message = fatal(dribbler.recv().await);
    assert!(message.contains("no Hello within 2 s"), "{message}");
    assert!(dribbler.recv().await.is_none());
    closed_within(dribbler.connection(), limit).await;
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    // Their places are free again.
    let mut held = Vec::new();
    for id in 1..=3 {
        let mut peer = admitted_within(&live, Duration::from_secs(5)).await;
        peer.send(&call(id, "noop", Vec::new())).await;
        assert_eq!(peer.status(id).await, ReducerStatus::Committed);
        held.push(peer);
    }
    live.shutdown().await;
}

// PROTOCOL.md "Connections per address": a connection refused for its
// address's cap waits for its stream only to be told why, and only while
// 64 such connections wait; past that, one is closed at once with the
// refusal as its close reason, instead of every one of them staying open
// until the handshake deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_that_open_no_stream_are_bounded() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.handshake_timeout = Duration::from_secs(60);
        config.max_connections_per_ip = 1;
    })
    .await;
    let held = Peer::joined(&live).await;
    let mut waiting = Vec::new();
    for _ in 0..64 {
        let (endpoint, connection) = quic_connection(live.quic_addr(), live.certificate()).await;
        handshake_confirmed(&connection).await;
        waiting.push((endpoint, connection));
    }
    // The server takes each one's place in the queue just after its handshake.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_endpoint, extra) = quic_connection(live.quic_addr(), live.certificate()).await;
    let reason = close_reason(closed_within(&extra, Duration::from_secs(10)).await);
    assert_eq!(
        reason,
        "too many connections from 127.0.0.1: at most 1 at once per address; close one and retry"
    );
    // The 64 still wait for their stream, well inside the handshake deadline.
    for (_, connection) in &waiting {
        assert!(connection.close_reason().is_none());
    }
    // One of them that opens its stream is told why on it.
    let (endpoint, connection) = waiting.remove(0);
    let (mut send, mut recv) = connection.open_bi().await.expect("a stream");
    send.write_all(&encode_frame(&hello("bank", None)))
        .await
        .expect("Hello sent");
    let answer = recv.read_to_end(1 << 20).await.expect("the refusal");
    let message = worldline_transport::decode_message::<ServerMessage>(&answer[4..]);
    assert!(
        matches!(&message, Ok(ServerMessage::Error { message, fatal: true })
            if message.starts_with("too many connections from 127.0.0.1")),
        "{message:?}"
    );
    drop((endpoint, connection, waiting, held));
    live.shutdown().await;
}

// Many connections from one address at once: those past the cap are each
// refused with the documented fatal `Error`, the others are served, and
// once they go every place is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_from_one_address_is_capped_and_then_let_in() {
    let cap = 4;
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_connections_per_ip = cap;
    })
    .await;
    let mut admitted = Vec::new();
    let mut refusals = 0;
    for _ in 0..24 {
        let mut peer = Peer::open(&live).await;
        peer.send(&hello("bank", None)).await;
        match peer.recv().await {
            Some(ServerMessage::Welcome { .. }) => admitted.push(peer),
            other => {
                let message = fatal(other);
                assert!(
                    message.contains("too many connections from 127.0.0.1: at most 4"),
                    "{message}"
                );
                assert!(peer.recv().await.is_none());
                refusals += 1;
            }
        }
    }
    assert_eq!((admitted.len(), refusals), (cap, 24 - cap));
    for (id, peer) in (1..).zip(admitted.iter_mut()) {
        peer.send(&call(id, "noop", Vec::new())).await;
        assert_eq!(peer.status(id).await, ReducerStatus::Committed);
    }
    for peer in &admitted {
        peer.connection().close(0u32.into(), b"bye");
    }
    drop(admitted);
    // The server frees every place moments after the closes arrive.
    let mut back = Vec::new();
    while back.len() < cap {
        back.push(admitted_within(&live, Duration::from_secs(5)).await);
    }
    live.shutdown().await;
}

// A client that resets its sending side in the middle of a frame ends its
// connection: the server closes it without waiting for the rest. One that
// finishes it there gets the answers to its whole messages (the half
// frame is dropped) and then a clean close. Everyone else is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reset_or_finished_mid_frame_closes_only_that_connection() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut bystander = Peer::joined(&live).await;
    let half_call = &encode_frame(&call(1, "seed", args(&(3u32, 10i64))))[..7];
    let limit = Duration::from_secs(3);

    let mut reset = Peer::joined(&live).await;
    reset.send_bytes(half_call).await;
    reset.send_stream().reset(7u32.into()).expect("resetting");
    assert!(
        reset.recv().await.is_none(),
        "nothing answers the half frame"
    );
    closed_within(reset.connection(), limit).await;

    let mut finished = Peer::joined(&live).await;
    finished.send(&call(2, "noop", Vec::new())).await;
    finished.send_bytes(half_call).await;
    finished.send_stream().finish().expect("finishing");
    assert_eq!(finished.status(2).await, ReducerStatus::Committed);
    assert!(
        finished.recv().await.is_none(),
        "nothing answers the half frame"
    );
    assert_eq!(
        close_reason(closed_within(finished.connection(), limit).await),
        "closed"
    );

    // Finishing right after Hello and a call: both are answered.
    let mut finished_early = Peer::open(&live).await;
    finished_early.send(&hello("bank", None)).await;
    finished_early
        .send(&call(1, "seed", args(&(2u32, 10i64))))
        .await;
    finished_early.send_stream().finish().expect("finishing");
    assert!(matches!(
        finished_early.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    assert_eq!(finished_early.status(1).await, ReducerStatus::Committed);
    assert!(finished_early.recv().await.is_none());
    assert_eq!(
        close_reason(closed_within(finished_early.connection(), limit).await),
        "closed"
    );

    // Before Hello, too.
    let mut early = Peer::open(&live).await;
    early.send_bytes(&[200, 0]).await;
    early.send_stream().reset(0u32.into()).expect("resetting");
    closed_within(early.connection(), limit).await;

    // Neither half call ran.
    assert_eq!(bystander.rows(2, "account").await, 2);
    bystander.send(&call(3, "noop", Vec::new())).await;
    assert_eq!(bystander.status(3).await, ReducerStatus::Committed);
    live.shutdown().await;
}

// PROTOCOL.md "Ending the stream": a client that finishes its side of the
// stream after its messages (a half-close) still gets every answer it is
// owed, in order: reducer results, which wait for their transaction's
// fsync (held back here, so the server has every chance to close early),
// subscription and query answers, a procedure's result. Then the server
// ends the stream and closes the connection cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_the_stream_still_delivers_every_answer_owed() {
    let gate = Arc::new(Gate::default());
    let live = LiveServer::start_with_held_fsyncs(
        &[("bank", "bank"), ("features", "features")],
        &gate,
        |_| {},
    )
    .await;
    let mut bank = Peer::joined(&live).await;
    let mut features = Peer::joined_to(&live, "features").await;

    gate.set(true);
    let account = "SELECT * FROM account";
    let messages = [
        call(1, "seed", args(&(3u32, 10i64))),
        call(2, "transfer", args(&(0u32, 1u32, 4i64))),
        call(3, "transfer", args(&(0u32, 1u32, 400i64))),
        ClientMessage::Subscribe {
            query_set_id: 7,
            queries: vec![account.into()],
        },
        ClientMessage::Query {
            request_id: 4,
            query: account.into(),
        },
        ClientMessage::Unsubscribe { query_set_id: 7 },
        call(5, "noop", Vec::new()),
    ];
    for message in &messages {
        bank.send(message).await;
    }
    bank.send_stream().finish().expect("finishing");
    features
        .send(&ClientMessage::CallProcedure {
            request_id: 1,
            procedure: "proc_insert".into(),
            args: ByteBuf::from(args(&(0u32, "after the end"))),
        })
        .await;
    features.send_stream().finish().expect("finishing");
    gate.wait_held(Duration::from_secs(30), "no fsync reached the gate")
        .await;
    // Nothing is answered (or closed) while the fsync is held.
    for peer in [&mut bank, &mut features] {
        let early = tokio::time::timeout(Duration::from_millis(300), peer.recv()).await;
        assert!(early.is_err(), "before the fsync: {early:?}");
        assert!(peer.connection().close_reason().is_none());
    }

    gate.set(false);
    let answers = bank.rest().await;
    let summary: Vec<String> = answers
        .iter()
        .map(|message| match message {
            ServerMessage::ReducerResult {
                request_id, status, ..
            } => format!("{request_id}: {status:?}"),
            ServerMessage::SubscribeApplied { query_set_id, .. } => {
                format!("subscribed {query_set_id}")
            }
            ServerMessage::QueryResult {
                request_id,
                result: Ok(tables),
            } => {
                let rows: usize = tables.iter().map(|t| t.rows.len()).sum();
                format!("query {request_id}: {rows} rows")
            }
            ServerMessage::UnsubscribeApplied { query_set_id, .. } => {
                format!("unsubscribed {query_set_id}")
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "1: Committed".to_owned(),
            "2: Committed".to_owned(),
            "3: Failed(\"insufficient funds: account 0 has 6, needs 400\")".to_owned(),
            "subscribed 7".to_owned(),
            "query 4: 3 rows".to_owned(),
            "unsubscribed 7".to_owned(),
            "5: Committed".to_owned(),
        ]
    );
    let limit = Duration::from_secs(5);
    assert_eq!(
        close_reason(closed_within(bank.connection(), limit).await),
        "closed"
    );
    match features.rest().await.as_slice() {
        [
            ServerMessage::ProcedureResult {
                request_id: 1,
                status: ProcedureStatus::Returned(_),
                ..
            },
        ] => {}
        other => panic!("expected the procedure's result, got {other:?}"),
    }
    assert_eq!(
        close_reason(closed_within(features.connection(), limit).await),
        "closed"
    );
    // The calls took effect.
    let mut bystander = Peer::joined(&live).await;
    assert_eq!(bystander.rows(1, "account").await, 3);
    live.shutdown().await;
}

// PROTOCOL.md "Ending the stream": the server keeps a finished connection
// for its answers at most the procedure deadline plus the idle timeout;
// answers not ready by then (their fsync never completes) are dropped and
// the connection is closed, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_stream_waits_for_its_answers_only_so_long() {
    let gate = Arc::new(Gate::default());
    let live = LiveServer::start_with_held_fsyncs(&[("bank", "bank")], &gate, |config| {
        config.idle_timeout = Duration::from_millis(1500);
        config.host.engine.procedure_deadline = Duration::from_secs(1);
    })
    .await;
    let mut peer = Peer::joined(&live).await;
    gate.set(true);
    peer.send(&call(1, "seed", args(&(3u32, 10i64)))).await;
    peer.send_stream().finish().expect("finishing");
    let started = Instant::now();
    let reason = close_reason(closed_within(peer.connection(), Duration::from_secs(10)).await);
    assert_eq!(
        reason,
        "the answers owed after the end of the stream were not all sent within 2.5 s"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(peer.recv().await.is_none(), "an answer went out undurable");
    gate.set(false);
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md "Ending the stream": a client that finishes its stream and
// never reads the answers it is owed is dropped as any client that reads
// nothing is (here a write stalls for the idle timeout: the answers fit
// the server's queue but not the stream's flow control), not kept until
// the end of the wait for its answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_finishes_and_never_reads_is_closed_in_bounded_time() {
    let idle = Duration::from_millis(1500);
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.idle_timeout = idle;
    })
    .await;
    let mut deaf = Peer::joined(&live).await;
    deaf.send(&call(0, "seed", args(&(1000u32, 1i64)))).await;
    // Each query answers about 5 KB: 2 MB in all, more than the stream's
    // flow control lets the server write to a client that reads nothing.
    let query = encode_frame(&ClientMessage::Query {
        request_id: 1,
        query: "SELECT * FROM account".into(),
    });
    deaf.send_bytes(&query.repeat(400)).await;
    deaf.send_stream().finish().expect("finishing");
    let started = Instant::now();
    let reason = close_reason(closed_within(deaf.connection(), idle * 4).await);
    assert_eq!(reason, "the client read nothing for 1.5 s");
    assert!(
        started.elapsed() <= idle * 3,
        "closed after {:?}",
        started.elapsed()
    );
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md "Frame limit": a length prefix over the limit is refused as
// soon as it is read, before Hello as after it, and a frame of exactly the
// limit is a frame like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_prefixes_over_the_frame_limit_are_fatal() {
    let limit = 64 * 1024;
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_frame = limit;
    })
    .await;
    let mut early = Peer::open(&live).await;
    early.send_bytes(&u32::MAX.to_le_bytes()).await;
    let message = fatal(early.recv().await);
    assert_eq!(
        message,
        "a frame of 4294967295 bytes exceeds the limit of 65536 bytes"
    );
    assert!(early.recv().await.is_none());

    // `noop` with arguments is answered Failed (it takes none), not refused.
    let header = encode_message(&call(1, "noop", Vec::new())).len() + 2;
    let exactly = call(1, "noop", vec![0; limit as usize - header]);
    assert_eq!(encode_message(&exactly).len(), limit as usize);
    let mut peer = Peer::joined(&live).await;
    peer.send(&exactly).await;
    assert!(matches!(peer.status(1).await, ReducerStatus::Failed(_)));
    let over = call(2, "noop", vec![0; limit as usize - header + 1]);
    peer.send_bytes(&(limit + 1).to_le_bytes()).await;
    let message = fatal(peer.recv().await);
    assert_eq!(
        message,
        "a frame of 65537 bytes exceeds the limit of 65536 bytes"
    );
    assert_eq!(encode_message(&over).len(), limit as usize + 1);
    assert!(peer.recv().await.is_none());
    still_serves(&live).await;
    live.shutdown().await;
}

// A frame may arrive in any pieces: one byte per write, prefix and
// message split anywhere, several frames in one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_written_a_byte_at_a_time_are_reassembled() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut peer = Peer::open(&live).await;
    let mut bytes = encode_frame(&hello("bank", None));
    bytes.extend(encode_frame(&call(1, "seed", args(&(3u32, 10i64)))));
    bytes.extend(encode_frame(&call(2, "noop", Vec::new())));
    for byte in &bytes {
        peer.send_bytes(&[*byte]).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(matches!(
        peer.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    assert_eq!(peer.status(1).await, ReducerStatus::Committed);
    assert_eq!(peer.status(2).await, ReducerStatus::Committed);
    assert_eq!(peer.rows(3, "account").await, 3);
    live.shutdown().await;
}

// PROTOCOL.md "Datagrams": a datagram sent before Hello runs nothing;
// after it, anything but an unreliable call of at most 1,100 bytes is
// ignored without an answer, and the connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_early_datagrams_run_nothing() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let seed = |n: u32| {
        encode_message(&ClientMessage::CallReducerUnreliable {
            reducer: "seed".into(),
            args: ByteBuf::from(args(&(n, 7i64))),
        })
    };
    let mut peer = Peer::open(&live).await;
    peer.send_raw_datagram(seed(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    peer.send(&hello("bank", None)).await;
    assert!(matches!(
        peer.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    assert_eq!(peer.rows(1, "account").await, 0, "the early datagram ran");

    let mut trailing = seed(6);
    trailing.push(0);
    let junk: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0xff; 40],
        vec![5],
        encode_message(&hello("bank", None)),
        encode_message(&call(9, "seed", args(&(6u32, 7i64)))),
        trailing,
        encode_frame(&ClientMessage::CallReducerUnreliable {
            reducer: "seed".into(),
            args: ByteBuf::from(args(&(6u32, 7i64))),
        }),
    ];
    for datagram in junk {
        peer.send_raw_datagram(datagram);
    }
    // The 1,100 bytes PROTOCOL.md allows fit in one datagram.
    let max = peer
        .connection()
        .max_datagram_size()
        .expect("datagrams allowed");
    assert!(max >= 1100, "the path allows only {max} bytes");
    // Give the datagrams time to arrive before the stream's next message.
    tokio::time::sleep(Duration::from_millis(300)).await;
    peer.send(&call(2, "noop", Vec::new())).await;
    // Nothing answered the datagrams: the next message is this call's.
    assert_eq!(peer.status(2).await, ReducerStatus::Committed);
    assert_eq!(peer.rows(3, "account").await, 0, "a junk datagram ran");
    // The datagram path itself still works.
    peer.send_raw_datagram(seed(2));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut id = 4;
    while peer.rows(id, "account").await != 2 {
        assert!(Instant::now() < deadline, "the unreliable call never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
        id += 1;
    }
    live.shutdown().await;
}

// A client that closes its connection in the middle of a call, with any
// error code and reason (not UTF-8, the largest code QUIC allows), is just
// gone: the server stays up, frees its place and serves everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_mid_call_with_odd_codes_frees_the_place() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_connections_per_ip = 2;
    })
    .await;
    let mut bystander = Peer::joined(&live).await;
    let codes = [
        (quinn::VarInt::MAX, &b"\xff\xfe not UTF-8"[..]),
        (0u32.into(), &b""[..]),
        (quinn::VarInt::from_u32(0x0100), &[b'x'; 1000][..]),
        (quinn::VarInt::from_u32(1), &b"stream error"[..]),
    ];
    for (round, (code, reason)) in (1..).zip(codes) {
        // Only one place is left: a place not freed refuses the next round.
        let mut peer = admitted_within(&live, Duration::from_secs(5)).await;
        peer.send(&call(round, "seed", args(&(round, 1i64)))).await;
        peer.send(&call(100 + round, "noop", Vec::new())).await;
        peer.connection().close(code, reason);
    }
    bystander.send(&call(1, "noop", Vec::new())).await;
    assert_eq!(bystander.status(1).await, ReducerStatus::Committed);
    let mut last = admitted_within(&live, Duration::from_secs(5)).await;
    last.send(&call(1, "noop", Vec::new())).await;
    assert_eq!(last.status(1).await, ReducerStatus::Committed);
    live.shutdown().await;
}

// PROTOCOL.md "Limits": a client that calls and calls and never reads
// falls behind and is dropped; its connection closes within a few idle
// timeouts however much it goes on writing, and others are served
// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_calls_and_never_reads_is_closed_in_bounded_time() {
    let idle = Duration::from_millis(1500);
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.idle_timeout = idle;
        config.outbound_queue = 64;
    })
    .await;
    let mut deaf = Peer::joined(&live).await;
    deaf.send(&call(0, "seed", args(&(1000u32, 1i64)))).await;
    let connection = deaf.connection().clone();
    let started = Instant::now();
    let flooder = tokio::spawn(async move {
        // Each query answers about 5 KB; the client reads none of it.
        for id in 1.. {
            let query = ClientMessage::Query {
                request_id: id,
                query: "SELECT * FROM account".into(),
            };
            if deaf
                .send_stream()
                .write_all(&encode_frame(&query))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tokio::time::sleep(idle / 2).await;
    let answered = Instant::now();
    still_serves(&live).await;
    assert!(answered.elapsed() < idle, "{:?}", answered.elapsed());
    let reason = close_reason(closed_within(&connection, idle * 4).await);
    // Dropped for its backlog, or (when its stream's flow control stops the
    // server's writes first) for a write that did not finish in time.
    assert!(
        reason.starts_with("the connection fell too far behind: ")
            || reason == "the client read nothing for 1.5 s",
        "{reason}"
    );
    assert!(
        started.elapsed() <= idle * 3,
        "closed after {:?} ({reason})",
        started.elapsed()
    );
    flooder.abort();
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md "Ending the stream": a client that stops the server's side
// of the stream (STOP_SENDING) can be sent nothing more. The server closes
// the connection with the documented reason as soon as it has something
// to write (the message that caused it still takes effect), and serves
// everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_servers_side_closes_the_connection_at_its_next_answer() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut peer = Peer::joined(&live).await;
    peer.send(&call(1, "seed", args(&(3u32, 10i64)))).await;
    assert_eq!(peer.status(1).await, ReducerStatus::Committed);
    peer.recv_stream().stop(9u32.into()).expect("stopping");
    // The STOP_SENDING reaches the server before the call.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connection = peer.connection().clone();
    peer.send(&call(2, "transfer", args(&(0u32, 1u32, 4i64))))
        .await;
    // Closed at the call's answer, well before the idle timeout (30 s).
    let reason = close_reason(closed_within(&connection, Duration::from_secs(10)).await);
    assert_eq!(reason, "sending stopped by peer: error 9");
    let mut other = Peer::joined(&live).await;
    assert_eq!(other.rows(1, "account").await, 3);
    other
        .send(&ClientMessage::Query {
            request_id: 2,
            query: "SELECT * FROM account WHERE id = 1".into(),
        })
        .await;
    match other.recv().await {
        Some(ServerMessage::QueryResult {
            result: Ok(tables), ..
        }) => assert_eq!(
            tables[0].rows[0].as_slice(),
            args(&(1u32, 14i64)).as_slice()
        ),
        other => panic!("expected account 1, got {other:?}"),
    }
    live.shutdown().await;
}

// PROTOCOL.md "Handshake and identity": an error quotes at most the first
// 200 characters of a name the client gave, the database name in `Hello`
// included (a megabyte of name is not echoed back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_name_is_quoted_cut() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut peer = Peer::open(&live).await;
    let name = "é".repeat(1 << 19);
    peer.send(&hello(&name, None)).await;
    let message = fatal(peer.recv().await);
    let quoted = format!("{}…", "é".repeat(200));
    assert_eq!(
        message,
        format!("no database named `{quoted}` on this server")
    );
    // After a fatal `Error`: the end of the stream, then the close.
    assert!(peer.recv().await.is_none());
    let closed = closed_within(peer.connection(), Duration::from_secs(5)).await;
    assert_eq!(close_reason(closed), "closed");
    let mut short = Peer::open(&live).await;
    short.send(&hello("nope", None)).await;
    assert_eq!(
        fatal(short.recv().await),
        "no database named `nope` on this server"
    );
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md "QUIC": a client that offers no ALPN protocol, or only
// others, is refused in the TLS handshake with the alert
// `no_application_protocol` (QUIC error 0x178); one offering
// `worldline/1` among others is let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_alpn_protocol_is_refused_in_the_handshake() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address")).expect("a socket");
    let connect = |alpn: Vec<Vec<u8>>| {
        endpoint
            .connect_with(
                quic_client_config(live.certificate(), alpn),
                live.quic_addr(),
                "localhost",
            )
            .expect("a connection attempt")
    };
    for alpn in [Vec::new(), vec![b"h3".to_vec(), b"worldline/2".to_vec()]] {
        match connect(alpn.clone()).await {
            Err(quinn::ConnectionError::ConnectionClosed(close)) => assert_eq!(
                close.error_code,
                quinn::TransportErrorCode::crypto(120),
                "{alpn:?}: {close}"
            ),
            other => panic!("{alpn:?}: expected a refusal in the handshake, got {other:?}"),
        }
    }
    let offered = vec![b"h3".to_vec(), QUIC_ALPN.to_vec()];
    let connection = connect(offered).await.expect("connecting with worldline/1");
    let negotiated = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    assert_eq!(negotiated.as_deref(), Some(QUIC_ALPN));
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md "QUIC": the server speaks QUIC version 1 only; a client
// offering another version (here draft 29, which common stacks still
// offer) is sent a Version Negotiation packet listing version 1, and its
// stack gives up. The server used to accept drafts 29 to 34 as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_only_a_draft_version_is_sent_version_negotiation() {
    const DRAFT_29: u32 = 0xff00_001d;
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address")).expect("a socket");
    let mut config = quic_client_config(live.certificate(), vec![QUIC_ALPN.to_vec()]);
    config.version(DRAFT_29);
    let attempt = endpoint
        .connect_with(config, live.quic_addr(), "localhost")
        .expect("a connection attempt");
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Err(quinn::ConnectionError::VersionMismatch)) => {}
        other => panic!("expected Version Negotiation, got {other:?}"),
    }
    // Version 1 is served as ever.
    let mut client = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    client.send(&hello("bank", None)).await;
    assert!(matches!(
        client.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    live.shutdown().await;
}

// HTTP_API.md, `GET /v1/server`: a server listening on every address
// reports that unspecified address as `quic_addr`, with the port a client
// then reaches on the host it reached the HTTP API at (the document did not
// say, and `0.0.0.0` names no host to connect to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_addr_of_a_server_on_every_address_is_unspecified_with_the_port_to_use() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.quic_listen = "0.0.0.0:0".parse().expect("an address");
    })
    .await;
    let addr = live.http_addr();
    let answer = worldline_tests::raw::raw_http(
        addr,
        format!("GET /v1/server HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let body = answer.split_once("\r\n\r\n").expect("an HTTP answer").1;
    let info: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let reported: std::net::SocketAddr = info["quic_addr"]
        .as_str()
        .expect("a string")
        .parse()
        .expect("an address");
    assert!(reported.ip().is_unspecified(), "{reported}");
    let reachable = std::net::SocketAddr::new(addr.ip(), reported.port());
    let mut client = RawQuic::connect(reachable, live.certificate()).await;
    client.send(&hello("bank", None)).await;
    assert!(matches!(
        client.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    live.shutdown().await;
}
