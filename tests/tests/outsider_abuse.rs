//! What an outsider who knows only `PROTOCOL.md` and `HTTP_API.md` can
//! throw at a real server on loopback: WebSocket frames that break the
//! WebSocket protocol, messages split around control frames, a client that
//! writes without ever reading, a Close frame sent while an answer is
//! owed, and HTTP requests the HTTP library itself refuses. Each is
//! answered as the documents say, and the server goes on serving everyone
//! else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use worldline_tests::gate::Gate;
use worldline_tests::live::LiveServer;
use worldline_tests::raw::{
    RawClient, RawQuic, RawWebSocket, call, fatal, hello, quic_client_config, raw_http,
};
use worldline_tests::{args, resident_bytes};
use worldline_transport::{
    ClientMessage, QUIC_ALPN, ReducerStatus, ServerMessage, decode_message, encode_frame,
    encode_message,
};

/// One WebSocket frame as a client writes it: `opcode`, the FIN bit, the
/// RSV1 bit and, if `masked`, a mask (clients must mask every frame).
fn frame(opcode: u8, fin: bool, rsv1: bool, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode];
    let mask_bit = u8::from(masked) << 7;
    match payload.len() {
        len @ 0..=125 => bytes.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            bytes.push(mask_bit | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            bytes.push(mask_bit | 127);
            bytes.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        bytes.extend_from_slice(&mask);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        bytes.extend_from_slice(payload);
    }
    bytes
}

/// A binary frame holding all of `message`, as a well-behaved client sends it.
fn binary(message: &ClientMessage) -> Vec<u8> {
    frame(0x2, true, false, true, &encode_message(message))
}

async fn connected(live: &LiveServer) -> RawWebSocket {
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello("bank", None)).await;
    match ws.recv().await {
        Some(ServerMessage::Welcome { .. }) => ws,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

fn query(request_id: u32, query: &str) -> ClientMessage {
    ClientMessage::Query {
        request_id,
        query: query.into(),
    }
}

fn is_query_result(message: Option<ServerMessage>, expected_id: u32) -> bool {
    matches!(
        message,
        Some(ServerMessage::QueryResult { request_id, result: Ok(_) }) if request_id == expected_id
    )
}

/// A fresh connection's call is answered `Committed`: the server still serves.
async fn still_serves(live: &LiveServer) {
    let mut ws = connected(live).await;
    ws.send(&call(1, "noop", Vec::new())).await;
    match ws.recv().await {
        Some(ServerMessage::ReducerResult {
            request_id: 1,
            status: ReducerStatus::Committed,
            ..
        }) => {}
        other => panic!("expected a committed call, got {other:?}"),
    }
}

// PROTOCOL.md "WebSocket": a frame that breaks the WebSocket protocol ends
// the connection with a fatal `Error` that says what was broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_violations_are_fatal_and_say_what_was_broken() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    // A binary frame whose 64-bit length has its top bit set (RFC 6455
    // forbids it), masked, with no payload following.
    let mut top_bit_length = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1];
    top_bit_length.extend_from_slice(&[1, 2, 3, 4]);
    let cases: [(&str, Vec<u8>, &str); 10] = [
        (
            "a 64-bit length with its top bit set",
            top_bit_length,
            "most significant bit clear",
        ),
        (
            "a text message that is not UTF-8",
            frame(0x1, true, false, true, &[0xFF, 0xFE]),
            "not valid UTF-8",
        ),
        (
            "an unmasked frame",
            frame(0x2, true, false, false, &encode_message(&query(1, "x"))),
            "unmasked",
        ),
        (
            "a reserved opcode",
            frame(0x3, true, false, true, b"x"),
            "invalid opcode",
        ),
        (
            "a reserved bit",
            frame(0x2, true, true, true, &encode_message(&query(1, "x"))),
            "Reserved bits",
        ),
        (
            "a ping over 125 bytes",
            frame(0x9, true, false, true, &[b'p'; 200]),
            "Control frame too big",
        ),
        (
            "a split ping",
            frame(0x9, false, false, true, b"p"),
            "Fragmented control frame",
        ),
        (
            "a continuation frame with no message to continue",
            frame(0x0, true, false, true, b"x"),
            "nothing to continue",
        ),
        (
            "a new data frame in the middle of a split message",
            [
                frame(0x2, false, false, true, &[0x04]),
                frame(0x2, true, false, true, b"x"),
            ]
            .concat(),
            "a new binary frame arrived while a message split into frames was incomplete",
        ),
        (
            "a Close frame whose payload is one byte",
            frame(0x8, true, false, true, &[0x03]),
            "this one has 1 byte",
        ),
    ];
    for (what, bytes, expected) in cases {
        let mut ws = connected(&live).await;
        ws.write_raw(&bytes).await;
        let message = fatal(ws.recv().await);
        assert!(
            message.starts_with("WebSocket protocol error: ") && message.contains(expected),
            "{what}: {message}"
        );
        assert!(
            ws.recv().await.is_none(),
            "{what}: the connection is closed"
        );
    }
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md "WebSocket": a message may be split into continuation frames;
// pings between the pieces (which RFC 6455 allows) and empty pieces do not
// disturb it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_message_may_have_pings_and_empty_pieces_between_its_parts() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut ws = connected(&live).await;
    let bytes = encode_message(&query(7, "SELECT * FROM account WHERE id = 3"));
    let mut split = frame(0x2, false, false, true, &bytes[..3]);
    split.extend(frame(0x9, true, false, true, b"ping"));
    for _ in 0..1000 {
        split.extend(frame(0x0, false, false, true, &[]));
    }
    split.extend(frame(0x0, false, false, true, &bytes[3..10]));
    split.extend(frame(0xA, true, false, true, b"unsolicited pong"));
    split.extend(frame(0x0, true, false, true, &bytes[10..]));
    ws.write_raw(&split).await;
    assert!(is_query_result(ws.recv().await, 7));
    live.shutdown().await;
}

// PROTOCOL.md "Frame limit": on WebSocket a message split into
// continuation frames is refused once the frames read so far exceed the
// limit, however small each frame; one that adds up to the limit exactly
// is read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_message_is_held_to_the_frame_limit_as_a_whole() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_frame = 4096;
    })
    .await;
    // A query padded with a comment to an encoding of `size` bytes, sent in
    // pieces of 1,000 bytes.
    let split = |size: usize| {
        let head = "SELECT * FROM account WHERE id = 3 /*";
        let padding = size - 4 - head.len() - 2;
        let bytes = encode_message(&query(7, &format!("{head}{}*/", "x".repeat(padding))));
        assert_eq!(bytes.len(), size);
        let pieces: Vec<&[u8]> = bytes.chunks(1000).collect();
        let mut frames = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { 0x2 } else { 0x0 };
            frames.extend(frame(opcode, i + 1 == pieces.len(), false, true, piece));
        }
        frames
    };
    let mut ws = connected(&live).await;
    ws.write_raw(&split(4096)).await;
    assert!(is_query_result(ws.recv().await, 7));
    ws.write_raw(&split(4097)).await;
    let message = fatal(ws.recv().await);
    assert!(
        message.starts_with("a frame of ") && message.ends_with(" exceeds the limit of 4096 bytes"),
        "{message}"
    );
    assert!(ws.recv().await.is_none(), "the connection is closed");
    still_serves(&live).await;
    live.shutdown().await;
}

/// Opens a WebSocket on `addr` by hand (the handshake, then `Hello` for
/// `bank`), for a client that only writes and never reads.
fn writer_only(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connecting");
    let request = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("writing");
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("reading the handshake");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
        .write_all(&binary(&hello("bank", None)))
        .expect("writing");
    stream
}

// PROTOCOL.md "Limits": a client that keeps writing calls and never reads
// falls behind and is dropped; its connection ends about one idle timeout
// later however fast it goes on writing, and meanwhile other clients are
// served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_writes_and_never_reads_is_dropped_in_bounded_time() {
    let idle = Duration::from_secs(2);
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.idle_timeout = idle;
    })
    .await;
    let addr = live.server().http_addr();
    let flooder = tokio::task::spawn_blocking(move || {
        let mut stream = writer_only(addr);
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .expect("a timeout");
        // 1,000 accounts, then queries whose answers (about 5 KB each) fill
        // the socket's buffers quickly.
        stream
            .write_all(&binary(&call(0, "seed", args(&(1000u32, 1i64)))))
            .expect("writing");
        let queries: Vec<u8> = (1..=100)
            .flat_map(|i| binary(&call(i, "transfer", args(&(0u32, 1u32, 0i64)))))
            .collect();
        let started = Instant::now();
        while started.elapsed() < idle * 10 {
            if stream.write_all(&queries).is_err() {
                return Some(started.elapsed());
            }
        }
        None
    });
    tokio::time::sleep(idle / 2).await;
    let answered = Instant::now();
    still_serves(&live).await;
    assert!(
        answered.elapsed() < idle,
        "another client waited {:?}",
        answered.elapsed()
    );
    let ended = flooder.await.expect("the flooding thread");
    let ended = ended.expect("the connection is still read after ten idle timeouts");
    // Filling the buffers takes a moment, then the server gives up on the
    // client after one idle timeout (it took three before: writing the
    // `Error`, then a Close frame, then waiting for the client's Close).
    assert!(
        ended <= idle * 2 + Duration::from_secs(1),
        "the connection ended after {ended:?}"
    );
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md "Limits": what waits to be sent to one connection is bounded
// in bytes, and a pong is something sent. A client that floods pings and
// reads nothing made the server keep a pong for every ping in memory once
// the socket was full: 256 MB of pings made the process hold about as much
// more (every connection of every address could do the same). RFC 6455
// lets an endpoint answer only the latest of the pings it has not answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_from_a_client_that_never_reads_is_bounded_in_bytes() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        // Long enough that the server does not give up on the client
        // (it cannot write its own ping) before the flood is over.
        config.idle_timeout = Duration::from_secs(300);
    })
    .await;
    let addr = live.server().http_addr();
    let flood: usize = 256 << 20;
    let before = resident_bytes();
    let flooder = tokio::task::spawn_blocking(move || {
        let mut stream = writer_only(addr);
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .expect("a timeout");
        let pings: Vec<u8> = (0..1000)
            .flat_map(|_| frame(0x9, true, false, true, &[b'p'; 125]))
            .collect();
        let mut written = 0;
        while written < flood {
            stream
                .write_all(&pings)
                .expect("the server reads every ping");
            written += pings.len();
        }
        stream
    });
    let stream = flooder.await.expect("the flooding thread");
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "256 MB of pings made the process grow by {} MB",
        grown >> 20
    );
    still_serves(&live).await;
    drop(stream);
    live.shutdown().await;
}

// HTTP_API.md "Errors": a request that is not acceptable HTTP at all is
// refused by the HTTP layer before routing, with an empty body, and the
// connection is closed; the server goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_http_layer_cannot_parse_get_a_status_and_no_body() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.server().http_addr();
    let mut many_headers = b"GET /v1/server HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..500 {
        many_headers.extend_from_slice(format!("X-{i}: a\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    let mut long_uri = b"GET /v1/database/".to_vec();
    long_uri.extend(std::iter::repeat_n(b'a', 100_000));
    long_uri.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let cases: [(&[u8], &str); 3] = [
        (&many_headers, "431"),
        (&long_uri, "414"),
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
            "400",
        ),
    ];
    for (request, status) in cases {
        let answer = tokio::task::block_in_place(|| raw_http(addr, request));
        let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert_eq!(body, "", "{head}");
    }
    let answer = tokio::task::block_in_place(|| {
        raw_http(
            addr,
            b"GET /v1/server HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    });
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    live.shutdown().await;
}

// PROTOCOL.md "WebSocket": WebSocket has no half-close. A client that
// sends a Close frame gets no answer the server had not written when it
// read the Close, not even one owed for a call that then commits (its
// fsync is held back here): the server echoes the Close and ends the
// connection. The call itself takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_frame_drops_the_answers_not_yet_written() {
    let gate = Arc::new(Gate::default());
    let live = LiveServer::start_with_held_fsyncs(&[("bank", "bank")], &gate, |_| {}).await;
    let mut ws = connected(&live).await;
    gate.set(true);
    ws.send(&call(1, "seed", args(&(3u32, 10i64)))).await;
    gate.wait_held(
        Duration::from_secs(30),
        "the call's fsync never reached the gate",
    )
    .await;
    ws.send_close().await;
    assert!(
        ws.recv().await.is_none(),
        "the server echoes the Close, not the answer"
    );
    gate.set(false);
    assert!(ws.recv().await.is_none(), "nothing follows the Close");

    let mut other = connected(&live).await;
    other.send(&query(2, "SELECT * FROM account")).await;
    match other.recv().await {
        Some(ServerMessage::QueryResult {
            request_id: 2,
            result: Ok(tables),
        }) => assert_eq!(tables.iter().map(|t| t.rows.len()).sum::<usize>(), 3),
        other => panic!("expected the query's rows, got {other:?}"),
    }
    live.shutdown().await;
}

// PROTOCOL.md "WebSocket", server shutdown: the answer already queued, then
// the fatal `Error`, then a Close frame giving the same reason (it said
// `closed`, where QUIC's close said why).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_says_why_in_the_error_and_the_close_frame() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut socket = connected(&live).await;
    socket.send(&call(1, "noop", Vec::new())).await;
    assert!(matches!(
        socket.recv().await,
        Some(ServerMessage::ReducerResult { request_id: 1, .. })
    ));
    let shutdown = tokio::spawn(live.shutdown());
    assert_eq!(fatal(socket.recv().await), "the server is shutting down");
    assert_eq!(
        socket.close_reason().await.as_deref(),
        Some("the server is shutting down")
    );
    tokio::time::timeout(Duration::from_secs(20), shutdown)
        .await
        .expect("shutdown finishes")
        .expect("the shutdown task");
}

// PROTOCOL.md "WebSocket": a Close frame with a code RFC 6455 does not
// allow on the wire is answered with a Close frame (code 1002, reason
// `Protocol violation`), with no `Error` before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_close_code_is_answered_with_a_protocol_violation() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    for code in [999u16, 1005, 1006] {
        let mut ws = connected(&live).await;
        ws.write_raw(&frame(0x8, true, false, true, &code.to_be_bytes()))
            .await;
        assert_eq!(
            ws.close_reason().await.as_deref(),
            Some("Protocol violation"),
            "close code {code}"
        );
    }
    still_serves(&live).await;
    live.shutdown().await;
}

/// Held by the tests that measure the process's memory, so that one does
/// not count what another makes the server hold.
static MEASURING_MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A WebSocket connection to `addr` by hand, upgraded.
async fn websocket_upgraded(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting");
    websocket_upgrade(stream, addr).await
}

/// `stream`, connected to the server at `addr`, upgraded to WebSocket by hand.
async fn websocket_upgrade(
    mut stream: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("writing");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("reading the handshake"));
    }
    stream
}

/// A WebSocket connection to `addr` by hand that sends `Hello` for `bank`,
/// then the header of a binary message of `len` bytes and about `sent`
/// bytes of it (giving up on writing after 3 s: the server may not read
/// them).
async fn websocket_partial_message(
    addr: std::net::SocketAddr,
    len: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = websocket_upgraded(addr).await;
    let mut head = binary(&hello("bank", None));
    head.extend([0x82, 0xFF]);
    head.extend((len as u64).to_be_bytes());
    head.extend([0; 4]); // a mask of zeros leaves the payload as it is
    stream.write_all(&head).await.expect("writing");
    let payload = async {
        for _ in 0..sent / ZEROS.len() {
            stream.write_all(&ZEROS).await.expect("writing");
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), payload).await;
    stream
}

/// A payload written piece by piece: a whole message's worth at once
/// would make this process hold it (and its allocator keep it), which the
/// memory measured would count.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// A QUIC client endpoint whose connections hold at most 64 KiB
/// unacknowledged, so that what the server does not read is not held in
/// this process either.
fn frugal_quic_client(live: &LiveServer) -> quinn::Endpoint {
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address")).expect("a socket");
    let mut config = quic_client_config(live.certificate(), vec![QUIC_ALPN.to_vec()]);
    let mut transport = quinn::TransportConfig::default();
    transport.send_window(64 << 10);
    config.transport_config(Arc::new(transport));
    endpoint.set_default_client_config(config);
    endpoint
}

/// A QUIC connection from `endpoint` that sends `Hello` for `bank`, then
/// the prefix of a frame of `len` bytes and about `sent` bytes of it
/// (giving up on writing after 3 s).
async fn quic_partial_frame(
    endpoint: &quinn::Endpoint,
    live: &LiveServer,
    len: usize,
    sent: usize,
) -> (quinn::SendStream, quinn::RecvStream) {
    let connection = endpoint
        .connect(live.quic_addr(), "localhost")
        .expect("a connection attempt")
        .await
        .expect("connecting over QUIC");
    let (mut send, recv) = connection.open_bi().await.expect("opening the stream");
    let mut head = encode_frame(&hello("bank", None));
    head.extend((len as u32).to_le_bytes());
    send.write_all(&head).await.expect("writing");
    let payload = async {
        for _ in 0..sent / ZEROS.len() {
            send.write_all(&ZEROS).await.expect("writing");
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), payload).await;
    (send, recv)
}

// PROTOCOL.md "Limits": what the server holds of messages partly received
// is bounded server-wide. 40 WebSocket and 40 QUIC connections that each
// sent all but a little of a 4 MiB message and stalled made the server
// hold about 320 MB (from as many addresses as a client has, without
// bound); with a budget of 16 MiB it holds that and the first 128 KiB of
// each (about 40 MB in all here), and other clients' calls go on being
// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_partly_received_are_bounded_server_wide() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_incoming_bytes = 16 << 20;
        config.max_connections_per_ip = 100;
    })
    .await;
    let addr = live.http_addr();
    let len = (4 << 20) - 64;
    let sent = 4_000_000;
    let before = resident_bytes();
    let websockets =
        futures_util::future::join_all((0..40).map(|_| websocket_partial_message(addr, len, sent)))
            .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = frugal_quic_client(&live);
    let quics = futures_util::future::join_all(
        (0..40).map(|_| quic_partial_frame(&client, &live, len, sent)),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 100 << 20,
        "80 messages of 4 MB left unfinished made the process grow by {} MB",
        grown >> 20
    );
    still_serves(&live).await;
    drop((websockets, quics, client));
    live.shutdown().await;
}

// PROTOCOL.md "Limits": a message received whole counts against the
// server's budget until its database takes it into its queue. 60
// WebSocket connections each sending a 4 MB call to a database busy with
// a long reducer made the server hold 8 MB or more apiece (about 550 MB
// here, without bound from as many addresses as a client has); with a
// budget of 16 MiB it holds that and the database's queue (64 MiB), and
// every call is answered once the database is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_messages_waiting_for_a_busy_database_are_bounded_server_wide() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_incoming_bytes = 16 << 20;
        config.max_connections_per_ip = 100;
        config.host.engine.reducer_deadline = Duration::from_secs(8);
    })
    .await;
    let addr = live.http_addr();
    // Connected first: a connection's `Welcome` waits for the database too.
    let clients =
        futures_util::future::join_all((0..60).map(|_| websocket_welcomed(addr, "bank"))).await;
    // `noop` takes no arguments: refused, but only once it runs. One copy,
    // which every client writes from.
    let message = Arc::new(encode_message(&call(7, "noop", vec![0; 4_000_000])));
    let mut busy = connected(&live).await;
    busy.send(&call(1, "spin", args(&()))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = resident_bytes();
    let started = Instant::now();
    let senders: Vec<_> = clients
        .into_iter()
        .map(|mut stream| {
            let message = Arc::clone(&message);
            tokio::spawn(async move {
                websocket_send_in_pieces(&mut stream, &message).await;
                websocket_read_message(&mut stream).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "measured while the database was still busy"
    );
    assert!(
        grown < 200 << 20,
        "60 calls of 4 MB waiting for a busy database made the process grow by {} MB",
        grown >> 20
    );
    for sender in senders {
        let answer = sender.await.expect("a sender");
        assert!(
            matches!(
                answer,
                ServerMessage::ReducerResult {
                    request_id: 7,
                    status: ReducerStatus::Failed(_),
                    ..
                }
            ),
            "{answer:?}"
        );
    }
    still_serves(&live).await;
    live.shutdown().await;
}

/// A WebSocket connection to `addr` by hand, welcomed to `database`.
async fn websocket_welcomed(addr: std::net::SocketAddr, database: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = websocket_upgraded(addr).await;
    stream
        .write_all(&binary(&hello(database, None)))
        .await
        .expect("writing");
    let welcome = websocket_read_message(&mut stream).await;
    assert!(
        matches!(welcome, ServerMessage::Welcome { .. }),
        "{welcome:?}"
    );
    stream
}

/// Sends `message` as one binary message, its payload in pieces of
/// [`ZEROS`]' size from the one copy.
async fn websocket_send_in_pieces(stream: &mut tokio::net::TcpStream, message: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut head = vec![0x82, 0xFF];
    head.extend((message.len() as u64).to_be_bytes());
    head.extend([0; 4]); // a mask of zeros leaves the payload as it is
    stream.write_all(&head).await.expect("writing");
    for piece in message.chunks(ZEROS.len()) {
        stream.write_all(piece).await.expect("writing");
    }
}

/// Reads the server's next message (unmasked, in one binary frame).
async fn websocket_read_message(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> ServerMessage {
    use tokio::io::AsyncReadExt;
    let mut head = [0; 2];
    stream.read_exact(&mut head).await.expect("a frame");
    assert_eq!(head[0], 0x82, "a whole binary frame");
    let len = match head[1] {
        126 => u64::from(stream.read_u16().await.expect("a length")),
        127 => stream.read_u64().await.expect("a length"),
        len => u64::from(len),
    };
    let mut payload = vec![0; usize::try_from(len).expect("a length")];
    stream.read_exact(&mut payload).await.expect("a payload");
    decode_message(&payload).expect("a server message")
}

// PROTOCOL.md "Limits": a query of a client other than the owner examines
// at most 4,000,000 units of work (each row read counts 8 and the
// condition's comparisons). An anonymous client's `Query` of 600
// comparisons over 100,000 accounts held the database's thread for half a
// second, and a few of them at once stalled the owner's calls for seconds
// (outside audit). It is refused, as is a subscription to it, saying why;
// the owner's same query runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_query_examining_too_many_rows_is_refused_and_the_owners_runs() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut owner = RawWebSocket::connect(&live.ws_url()).await;
    owner
        .send(&hello("bank", Some(live.owner_token.clone())))
        .await;
    assert!(matches!(
        owner.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    owner
        .send(&call(1, "seed", args(&(20_000u32, 1_000i64))))
        .await;
    match owner.recv().await {
        Some(ServerMessage::ReducerResult { status, .. }) => {
            assert_eq!(status, ReducerStatus::Committed)
        }
        other => panic!("expected the seed's result, got {other:?}"),
    }
    // 20,000 rows read, each counting 8 + 600: 12,160,000 units.
    let costly = format!(
        "SELECT * FROM account WHERE {}",
        (0..600)
            .map(|i| format!("balance < -{}", i + 1))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    let mut stranger = connected(&live).await;
    stranger
        .send(&ClientMessage::Query {
            request_id: 2,
            query: costly.clone(),
        })
        .await;
    match stranger.recv().await {
        Some(ServerMessage::QueryResult {
            request_id: 2,
            result: Err(message),
        }) => assert!(
            message.starts_with(
                "the query examines more rows than a client other than the database's owner \
                 may (4000000 units of work"
            ),
            "{message}"
        ),
        other => panic!("expected the query refused, got {other:?}"),
    }
    stranger
        .send(&ClientMessage::Subscribe {
            query_set_id: 3,
            queries: vec![costly.clone()],
        })
        .await;
    match stranger.recv().await {
        Some(ServerMessage::SubscriptionError {
            query_set_id: 3,
            message,
        }) => assert!(
            message.starts_with("query set 3: the query examines more rows"),
            "{message}"
        ),
        other => panic!("expected the subscription refused, got {other:?}"),
    }
    // A narrower query is served to the stranger, and the costly one to the owner.
    stranger
        .send(&ClientMessage::Query {
            request_id: 4,
            query: "SELECT * FROM account WHERE id = 7".into(),
        })
        .await;
    assert!(matches!(
        stranger.recv().await,
        Some(ServerMessage::QueryResult {
            request_id: 4,
            result: Ok(tables),
        }) if tables.iter().map(|t| t.rows.len()).sum::<usize>() == 1
    ));
    owner
        .send(&ClientMessage::Query {
            request_id: 5,
            query: costly,
        })
        .await;
    assert!(matches!(
        owner.recv().await,
        Some(ServerMessage::QueryResult {
            request_id: 5,
            result: Ok(tables),
        }) if tables.iter().all(|t| t.rows.is_empty())
    ));
    live.shutdown().await;
}

// PROTOCOL.md "Order": one connection's backlog holds up another's message
// by at most one turn. A backlog longer than the database's queue (4,096
// messages) held every other client's message behind what the queue held
// of it: an anonymous connection sending `Subscribe`s of expensive queries
// without a pause stalled the owner's calls for seconds (outside audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_longer_than_the_queue_holds_up_another_connection_by_one_turn() {
    use tokio::io::AsyncWriteExt;
    const BACKLOG: u32 = 12_000;
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.outbound_queue = 2 * BACKLOG as usize;
    })
    .await;
    let addr = live.server().http_addr();
    let mut flooder = websocket_welcomed(addr, "chat").await;
    let subscribe = ClientMessage::Subscribe {
        query_set_id: 1,
        queries: vec!["SELECT * FROM message".into()],
    };
    flooder
        .write_all(&binary(&subscribe))
        .await
        .expect("writing");
    assert!(matches!(
        websocket_read_message(&mut flooder).await,
        ServerMessage::SubscribeApplied { .. }
    ));
    let (mut answers, mut requests) = flooder.into_split();
    let backlog: Vec<u8> = (0..BACKLOG)
        .flat_map(|request_id| {
            binary(&ClientMessage::Query {
                request_id,
                query: "SELECT * FROM message WHERE id = 1".into(),
            })
        })
        .collect();
    let flooding = tokio::spawn(async move {
        requests.write_all(&backlog).await.expect("writing");
        requests
    });
    // Counts the flooder's answers until the update of another's call.
    let (answered, mut answered_rx) = tokio::sync::watch::channel(0u32);
    let counting = tokio::spawn(async move {
        let mut queries = 0;
        loop {
            match websocket_read_message(&mut answers).await {
                ServerMessage::QueryResult { .. } => {
                    queries += 1;
                    let _ = answered.send(queries);
                }
                ServerMessage::TransactionUpdate { .. } => return queries,
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    // Once the backlog is being answered, another client calls.
    answered_rx
        .wait_for(|count| *count >= 100)
        .await
        .expect("answers");
    let mut caller = websocket_welcomed(addr, "chat").await;
    caller
        .write_all(&binary(&call(1, "send_message", args(&("hello",)))))
        .await
        .expect("writing");
    match websocket_read_message(&mut caller).await {
        ServerMessage::ReducerResult { status, .. } => {
            assert_eq!(status, ReducerStatus::Committed)
        }
        other => panic!("expected the call's result, got {other:?}"),
    }
    let before = counting.await.expect("the flooder's answers");
    assert!(
        before < BACKLOG / 4,
        "the call ran after {before} of the backlog's {BACKLOG} messages"
    );
    drop(flooding.await.expect("the backlog written"));
    live.shutdown().await;
}

// PROTOCOL.md "Limits": large messages arriving at once, together over the
// server's budget for messages partly received, are received one after
// another. Each connection took room read by read, so two 3 MB frames
// against a 4 MiB budget each held part of it and waited for the other's
// until both were closed as incomplete 30 s later, and neither ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_arriving_together_over_the_budget_are_all_received() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_incoming_bytes = u64::from(config.max_frame);
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(if i % 2 == 0 {
            RawClient::Quic(RawQuic::connect(live.quic_addr(), live.certificate()).await)
        } else {
            RawClient::WebSocket(RawWebSocket::connect(&live.ws_url()).await)
        });
    }
    let sends = clients.into_iter().map(|mut client| async move {
        client.send(&hello("bank", None)).await;
        assert!(matches!(
            client.recv().await,
            Some(ServerMessage::Welcome { .. })
        ));
        // `noop` takes no arguments: refused, but only once received whole.
        client.send(&call(7, "noop", vec![0; 3_000_000])).await;
        client.recv().await
    });
    for answer in futures_util::future::join_all(sends).await {
        assert!(
            matches!(
                answer,
                Some(ServerMessage::ReducerResult {
                    request_id: 7,
                    status: ReducerStatus::Failed(_),
                    ..
                })
            ),
            "{answer:?}"
        );
    }
    still_serves(&live).await;
    live.shutdown().await;
}

// PROTOCOL.md, "WebSocket": the Close frame of a client the server drops
// carries the `Error`'s text cut to the 123 bytes a Close reason may hold
// (RFC 6455: 125 bytes of payload, 2 of them the code). It was cut to 120.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_clients_close_reason_is_its_error_cut_to_123_bytes() {
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.max_queued_bytes = 16 * 1024;
    })
    .await;
    let mut subscriber = RawWebSocket::connect(&live.ws_url()).await;
    subscriber.send(&hello("chat", None)).await;
    assert!(matches!(
        subscriber.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    subscriber
        .send(&ClientMessage::Subscribe {
            query_set_id: 1,
            queries: vec!["SELECT * FROM message".into()],
        })
        .await;
    assert!(matches!(
        subscriber.recv().await,
        Some(ServerMessage::SubscribeApplied { .. })
    ));
    // A message larger than the 16 KiB one message may take drops the
    // subscriber with a long `Error`.
    let mut writer = RawWebSocket::connect(&live.ws_url()).await;
    writer.send(&hello("chat", None)).await;
    assert!(matches!(
        writer.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    writer
        .send(&call(1, "send_message", args(&("x".repeat(20_000),))))
        .await;
    assert!(matches!(
        writer.recv().await,
        Some(ServerMessage::ReducerResult {
            status: ReducerStatus::Committed,
            ..
        })
    ));
    let error = loop {
        match subscriber.recv().await {
            Some(ServerMessage::TransactionUpdate { .. }) => {}
            other => break fatal(other),
        }
    };
    assert!(error.len() > 123, "{error}");
    let reason = subscriber.close_reason().await.expect("a Close frame");
    assert_eq!(reason, error[..123], "the Close reason");
    live.shutdown().await;
}

// PROTOCOL.md "Handshake and identity": the WebSocket upgrade must come
// within 10 s of when the server is ready to read a request, as every
// HTTP request's head (HTTP_API.md): on a kept-alive connection that is
// the end of the previous answer, not the TCP connection's start, which
// the document said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_on_a_kept_alive_connection_has_10_s_from_the_last_answer() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.server().http_addr();
    let welcomed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connecting");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        let read_head = |stream: &mut TcpStream| {
            let mut head = Vec::new();
            let mut byte = [0];
            while !head.ends_with(b"\r\n\r\n") {
                stream
                    .read_exact(&mut byte)
                    .expect("reading an answer's head");
                head.push(byte[0]);
            }
            String::from_utf8_lossy(&head).into_owned()
        };
        for _ in 0..2 {
            std::thread::sleep(Duration::from_secs(7));
            let request = format!("GET /v1/server HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            stream.write_all(request.as_bytes()).expect("writing");
            let head = read_head(&mut stream);
            assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse().ok())
                .expect("a content-length");
            let mut body = vec![0; length];
            stream.read_exact(&mut body).expect("reading the body");
        }
        // 14 s after the TCP connection's start, 7 s after the last answer.
        std::thread::sleep(Duration::from_secs(7));
        let request = format!(
            "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("writing");
        let head = read_head(&mut stream);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        stream
            .write_all(&binary(&hello("bank", None)))
            .expect("writing");
        // The server's first frame: a binary message whose payload starts
        // with `Welcome`'s type, 0.
        let mut start = [0; 5];
        stream.read_exact(&mut start).expect("reading Welcome");
        start
    })
    .await
    .expect("the client thread");
    assert_eq!(welcomed[0], 0x82, "a binary frame: {welcomed:?}");
    let payload_at = match welcomed[1] & 0x7F {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    if payload_at < welcomed.len() {
        assert_eq!(welcomed[payload_at], 0, "Welcome: {welcomed:?}");
    }
    live.shutdown().await;
}

// PROTOCOL.md "WebSocket": a message split into frames must be whole
// within the idle timeout of its first byte; the pings between its frames
// (which keep an idle connection open) do not extend it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_message_held_open_with_pings_is_closed_at_the_idle_timeout() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.idle_timeout = Duration::from_millis(1500);
    })
    .await;
    let mut ws = connected(&live).await;
    // The first frame of a message, not final; then a ping every 300 ms.
    ws.write_raw(&frame(0x2, false, false, true, &[0x04, 0x01]))
        .await;
    let started = Instant::now();
    let message = loop {
        ws.write_raw(&frame(0x9, true, false, true, b"p")).await;
        match tokio::time::timeout(Duration::from_millis(300), ws.recv()).await {
            Ok(Some(message)) => break fatal(Some(message)),
            Ok(None) => panic!("closed without an Error"),
            Err(_) => assert!(started.elapsed() < Duration::from_secs(10), "never closed"),
        }
    };
    assert!(
        message.contains("a message stayed incomplete for 1.5 s"),
        "{message}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    live.shutdown().await;
}

/// The next whole frame at the start of `bytes` (an unmasked server
/// frame): its opcode, its payload and how many bytes it took.
fn next_server_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&first, &second) = (bytes.first()?, bytes.get(1)?);
    let (len, head) = match second & 0x7F {
        126 => (
            usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            4,
        ),
        127 => (
            usize::try_from(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        len => (usize::from(len), 2),
    };
    let payload = bytes.get(head..head + len)?;
    Some((first & 0x0F, payload.to_vec(), head + len))
}

// PROTOCOL.md "WebSocket": a client that reads steadily but slowly through
// a backlog answers the server's ping only once it reaches it, behind the
// messages queued before it (the server pings only once its queue for the
// client is empty). It was dropped as silent (`no message or pong for
// 30 s`) while it read (an outside client reading 40 KB/s behind a 2 MB
// burst); while messages wait for it, in the server's queue or
// unacknowledged in its socket, it is not silent, and it gets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reading_slowly_through_a_backlog_is_not_dropped_as_silent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MESSAGES: u32 = 400;
    let idle = Duration::from_secs(3);
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.idle_timeout = idle;
    })
    .await;
    let addr = live.server().http_addr();

    // The slow reader: a small receive buffer, so that what it has not
    // read waits at the server.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a receive buffer");
    let stream = socket.connect(addr).await.expect("connecting");
    let mut reader = websocket_upgrade(stream, addr).await;
    for message in [
        hello("chat", None),
        ClientMessage::Subscribe {
            query_set_id: 1,
            queries: vec!["SELECT * FROM message".into()],
        },
    ] {
        reader.write_all(&binary(&message)).await.expect("writing");
    }

    // The backlog: 400 messages of 2,000 bytes, each an update for the
    // reader, sent faster than it reads; the sender's answers are dropped.
    let sender = websocket_welcomed(addr, "chat").await;
    let (mut answers, mut calls) = sender.into_split();
    let dropping = tokio::spawn(async move {
        let mut scratch = vec![0; 64 << 10];
        while answers.read(&mut scratch).await.is_ok_and(|read| read > 0) {}
    });
    let text = "x".repeat(2_000);
    let burst: Vec<u8> = (1..=MESSAGES)
        .flat_map(|i| binary(&call(i, "send_message", args(&(text.as_str(),)))))
        .collect();
    calls.write_all(&burst).await.expect("writing the calls");

    // Read 2 KiB every 20 ms (about 100 KB/s), answering each ping.
    let started = Instant::now();
    let mut updates = 0;
    let mut received = Vec::new();
    let mut chunk = [0u8; 2048];
    while updates < MESSAGES {
        let read = tokio::time::timeout(idle * 3, reader.read(&mut chunk))
            .await
            .expect("the server goes on sending")
            .expect("reading");
        assert!(read > 0, "the connection ended after {updates} updates");
        received.extend_from_slice(&chunk[..read]);
        while let Some((opcode, payload, used)) = next_server_frame(&received) {
            received.drain(..used);
            match opcode {
                0x9 => reader
                    .write_all(&frame(0xA, true, false, true, &payload))
                    .await
                    .expect("answering a ping"),
                0x8 => panic!("closed after {updates} updates: {payload:?}"),
                0x2 => match decode_message(&payload).expect("a server message") {
                    ServerMessage::TransactionUpdate { .. } => updates += 1,
                    ServerMessage::Error { message, .. } => {
                        panic!("dropped after {updates} updates: {message}")
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    assert!(
        took > idle * 2,
        "the backlog drained in {took:?}: too fast to show anything"
    );
    dropping.abort();
    live.shutdown().await;
}
