//! The HTTP API held to `transport/HTTP_API.md` by a client written from
//! that document alone: plain HTTP/1.1 over a TCP socket, no Worldline
//! code on the client side. Each test is a finding of an outsider's pass:
//! what the document promised and the server did otherwise.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use worldline_tests::live::LiveServer;
use worldline_tests::{guest_wasm, resident_bytes};

/// One HTTP/1.1 request on a fresh connection, with `Connection: close`
/// and the whole body sent before anything is read; returns the status,
/// the header block (lowercase) and the body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{}Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n")),
        body.len()
    );
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connecting to the server");
        stream.write_all(head.as_bytes()).expect("sending the head");
        stream
            .write_all(&body)
            .unwrap_or_else(|e| panic!("{path}: the server cut the upload short: {e}"));
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .unwrap_or_else(|e| panic!("{path}: reading the answer: {e}"));
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{path}: not an HTTP answer: {answer:?}"));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{path}: no status in {head:?}"));
        (status, head.to_ascii_lowercase(), body.to_owned())
    })
    .await
    .expect("the request thread")
}

/// A blocking connection to `addr` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("binding a loopback address");
    let stream = socket.connect(addr).await.expect("connecting");
    let stream = stream.into_std().expect("a std stream");
    stream.set_nonblocking(false).expect("a blocking stream");
    stream
}

/// What the server writes on `stream` until it closes it (or `within`
/// passes without a byte), as text. Blocking.
fn answer_within(stream: &mut TcpStream, within: Duration) -> String {
    stream
        .set_read_timeout(Some(within))
        .expect("a read timeout");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Held by the tests that measure the process's memory, so that one does
/// not count what another makes the server hold.
static MEASURING_MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `error` of a JSON error body.
fn error_text(body: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    json["error"].as_str().expect("an error text").to_owned()
}

/// The rows of `SELECT * FROM account` on database `bank`.
async fn accounts(live: &LiveServer) -> Value {
    let (status, _, body) = request(
        live.http_addr(),
        "POST",
        "/v1/database/bank/sql",
        None,
        b"SELECT * FROM account".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).expect("JSON")["tables"][0]["rows"].clone()
}

/// The names `GET /v1/database` lists.
async fn database_names(live: &LiveServer) -> Vec<String> {
    let (status, _, body) = request(live.http_addr(), "GET", "/v1/database", None, vec![]).await;
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).expect("JSON");
    list.iter()
        .map(|db| db["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_database_name_is_refused_for_the_name_before_the_component_is_read() {
    let live = LiveServer::start(&[]).await;
    let addr = live.http_addr();
    let token = Some(live.owner_token.as_str());
    // Not a component at all: the name is what is wrong first, and says so.
    for (path, shown) in [
        ("/v1/database/a.b", "a.b"),
        ("/v1/database/My-Db", "My-Db"),
        ("/v1/database/%2E%2E", ".."),
    ] {
        let (status, _, body) = request(addr, "POST", path, token, b"garbage".to_vec()).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            error_text(&body),
            format!(
                "`{shown}` is not a valid database name: use 1 to 64 lowercase letters, \
                 digits, `-` or `_`"
            ),
            "{path}"
        );
    }
    // A very long name is quoted cut short, not echoed whole.
    let long = "a".repeat(10_000);
    let (status, _, body) = request(
        addr,
        "POST",
        &format!("/v1/database/{long}"),
        token,
        guest_wasm("bank"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let error = error_text(&body);
    assert!(error.contains("is not a valid database name"), "{error}");
    assert!(
        error.len() < 300,
        "the whole name came back: {} bytes",
        error.len()
    );
    assert!(database_names(&live).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelled_query_parameter_is_refused_and_changes_nothing() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    let token = Some(live.owner_token.as_str());
    let (status, _, body) = request(
        addr,
        "POST",
        "/v1/database/bank/call/seed",
        token,
        b"[2, 50]".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seeded = accounts(&live).await;
    assert_eq!(seeded.as_array().map(Vec::len), Some(2), "{seeded}");

    // `delete-data` is not `delete_data`: read as nothing, it would have
    // hot-swapped and kept the data the caller meant to delete.
    let (status, _, body) = request(
        addr,
        "POST",
        "/v1/database/bank?delete-data=true",
        token,
        guest_wasm("bank"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_text(&body),
        "POST /v1/database/bank: invalid query string: delete-data: unknown field \
         `delete-data`, expected `delete_data` or `allow_http`"
    );
    assert_eq!(accounts(&live).await, seeded);

    let (status, _, body) =
        request(addr, "GET", "/v1/database/bank/logs?tails=1", token, vec![]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_text(&body),
        "GET /v1/database/bank/logs: invalid query string: tails: unknown field `tails`, \
         expected `follow` or `tail`"
    );
    let (status, _, body) =
        request(addr, "GET", "/v1/database/bank/logs?tail=-1", token, vec![]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_text(&body),
        "GET /v1/database/bank/logs: invalid query string: tail: invalid digit found in string"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_publish_query_is_answered_after_the_upload_is_read() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    // A large upload with a query the route refuses: the answer must not
    // come (and the connection close) while the client is still sending.
    let upload = vec![0; 16 << 20];
    let (status, _, body) = request(
        live.http_addr(),
        "POST",
        "/v1/database/bank?delete_data=1",
        Some(&live.owner_token),
        upload,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_text(&body),
        "POST /v1/database/bank: invalid query string: delete_data: provided string was not \
         `true` or `false`"
    );
    assert_eq!(database_names(&live).await, ["bank"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_that_stall_hold_bounded_memory_and_are_dropped() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let live = LiveServer::start(&[]).await;
    let addr = live.http_addr();
    let before = resident_bytes();
    // Eight anonymous uploads, from eight addresses, each declare a 64 MiB
    // component, send 56 MiB of it and stall. The server holds at most four
    // components' worth of uploads at once; the others are not read while
    // they wait.
    let mut streams = Vec::new();
    for i in 0..8 {
        streams.push(connect_from(Ipv4Addr::new(127, 0, 0, 10 + i), addr).await);
    }
    let stalled = tokio::task::spawn_blocking(move || {
        let chunk = vec![0; 1 << 20];
        streams
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                stream
                    .set_write_timeout(Some(Duration::from_secs(2)))
                    .expect("a write timeout");
                let head = format!(
                    "POST /v1/database/stall{i} HTTP/1.1\r\nHost: {addr}\r\n\
                     Content-Length: {}\r\n\r\n",
                    64 << 20
                );
                stream.write_all(head.as_bytes()).expect("sending the head");
                for _ in 0..56 {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                stream
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("the uploading thread");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = resident_bytes().saturating_sub(before);
    assert!(
        held < 320 << 20,
        "eight stalled uploads made the server hold {} MiB",
        held >> 20
    );
    // The uploads still waiting go away; the four being read stall until
    // the server drops them, and then a publish goes through.
    let mut reading = stalled;
    drop(reading.split_off(4));
    let started = Instant::now();
    let (status, _, body) = request(
        addr,
        "POST",
        "/v1/database/late",
        Some(&live.owner_token),
        guest_wasm("bank"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "{:?}",
        started.elapsed()
    );
    let mut first = reading[0].try_clone().expect("a stream");
    let answer =
        tokio::task::spawn_blocking(move || answer_within(&mut first, Duration::from_secs(10)))
            .await
            .expect("the reading thread");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("the component's upload stalled: no bytes arrived for 30 s"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_name_or_path_is_quoted_cut_short_in_errors() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    let long = "a".repeat(20_000);
    let token = Some(live.owner_token.as_str());
    for (method, path, status) in [
        ("GET", format!("/v1/database/{long}"), 404),
        ("POST", format!("/v1/database/{long}/sql"), 404),
        ("GET", format!("/{long}"), 404),
        ("PUT", format!("/v1/database/{long}"), 405),
        ("GET", format!("/v1/database/bank/logs?{long}=1"), 400),
        ("POST", format!("/v1/database/bank/call/{long}"), 400),
    ] {
        let (got, _, body) = request(addr, method, &path, token, vec![]).await;
        assert_eq!(got, status, "{method} {}: {body}", &path[..40]);
        let error = error_text(&body);
        assert!(
            error.len() < 600 && error.contains("aaaa…"),
            "{method} {}: {} bytes: {}",
            &path[..40],
            error.len(),
            &error[..100]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_procedure_value_over_the_message_limit_is_refused_as_on_the_wire() {
    let live = LiveServer::start_with(&[("features", "features")], |config| {
        config.max_queued_bytes = 1 << 20;
    })
    .await;
    let call = |text: String| {
        request(
            live.http_addr(),
            "POST",
            "/v1/database/features/call/echo_proc",
            Some(&live.owner_token),
            serde_json::to_vec(&[text]).expect("JSON"),
        )
    };
    let (status, _, body) = call("a".repeat(100_000)).await;
    assert_eq!(status, 200, "{}", &body[..100]);
    // Half of max_queued_bytes is what a `ProcedureResult` may carry; the
    // HTTP answer is held to the same before it becomes JSON.
    let (status, _, body) = call("a".repeat(600_000)).await;
    assert_eq!(status, 422, "{}", &body[..body.len().min(100)]);
    assert_eq!(
        error_text(&body),
        "the procedure failed: procedure `echo_proc` returned 600003 bytes, more than the \
         524288 bytes one answer may hold"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_of_what_is_not_a_component_says_so_on_one_line() {
    let live = LiveServer::start(&[]).await;
    let hint = "publish a complete WebAssembly component built for wasm32-wasip2 \
                (`worldline publish` in a project directory builds one)";
    for (upload, error) in [
        (
            &b""[..],
            "not a valid WebAssembly component: it is empty (0 bytes)",
        ),
        (
            &b"garbage"[..],
            "not a valid WebAssembly component: it does not start with the WebAssembly magic \
             bytes 00 61 73 6d (its first bytes are 67 61 72 62 61 67 65)",
        ),
        (
            &b"\0asm\x0d"[..],
            "the component is truncated (its bytes end early): it ends after 5 bytes, within \
             the 8-byte WebAssembly header",
        ),
        (
            &b"\0asm\x01\0\0\0"[..],
            "not a valid WebAssembly component: it is a core WebAssembly module, not a component",
        ),
    ] {
        let (status, _, body) = request(
            live.http_addr(),
            "POST",
            "/v1/database/db",
            Some(&live.owner_token),
            upload.to_vec(),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let json: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(json["error"], error);
        assert_eq!(json["hint"], hint);
    }
    // A component cut short past its header: the parser's reason, on one line.
    let bank = guest_wasm("bank");
    let (status, _, body) = request(
        live.http_addr(),
        "POST",
        "/v1/database/db",
        Some(&live.owner_token),
        bank[..bank.len() / 2].to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let error = error_text(&body);
    assert!(
        error.starts_with("the component is truncated (its bytes end early): "),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
    assert!(database_names(&live).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_stalled_halfway_does_not_hold_the_shutdown_up() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    // Headers and 6 of the 100 body bytes they announce, then nothing.
    let stalled = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connecting");
        stream
            .write_all(
                b"POST /v1/database/bank/sql HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nSELECT",
            )
            .expect("sending");
        stream
    })
    .await
    .expect("the connecting thread");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), live.shutdown())
        .await
        .expect("the shutdown waited on the stalled request");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_take_every_upload_slot() {
    let live = LiveServer::start(&[]).await;
    let addr = live.http_addr();
    let greedy = Ipv4Addr::new(127, 0, 0, 20);
    // One address starts a 64 MiB upload and stalls.
    let mut first = connect_from(greedy, addr).await;
    first
        .write_all(
            format!(
                "POST /v1/database/greedy0 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
                64 << 20
            )
            .as_bytes(),
        )
        .expect("sending the head");
    first.write_all(&[0; 1 << 16]).expect("sending a part");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its next ones are refused at once, before they are read.
    for i in 1..4 {
        let mut next = connect_from(greedy, addr).await;
        let answer = tokio::task::spawn_blocking(move || {
            next.write_all(
                format!(
                    "POST /v1/database/greedy{i} HTTP/1.1\r\nHost: {addr}\r\n\
                     Content-Length: {}\r\n\r\n",
                    64 << 20
                )
                .as_bytes(),
            )
            .expect("sending the head");
            next.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("a read timeout");
            let mut answer = vec![0; 4096];
            let read = next.read(&mut answer).unwrap_or(0);
            String::from_utf8_lossy(&answer[..read]).into_owned()
        })
        .await
        .expect("the request thread");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        assert_eq!(
            error_text(body),
            "127.0.0.20 is already uploading 67108864 bytes of components, and this one would \
             take 67108864 more: at most 67108864 at once per address"
        );
    }
    // Another address publishes at once.
    let started = Instant::now();
    let (status, _, body) = request(
        addr,
        "POST",
        "/v1/database/other",
        Some(&live.owner_token),
        guest_wasm("bank"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(first);
}

/// Sends, from the loopback address `from`, the head of a `POST` of a
/// `len`-byte SQL body to `bank` and `sent` bytes of it, giving up on
/// writing after 3 s (the server does not read a body it has no room
/// for); returns the connection.
async fn stalled_sql(from: Ipv4Addr, addr: SocketAddr, len: usize, sent: usize) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let stream = connect_from(from, addr).await;
    stream.set_nonblocking(true).expect("a non-blocking stream");
    let mut stream = tokio::net::TcpStream::from_std(stream).expect("a tokio stream");
    let mut bytes = format!(
        "POST /v1/database/bank/sql HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {len}\r\n\r\n"
    )
    .into_bytes();
    bytes.resize(bytes.len() + sent, b' ');
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.write_all(&bytes)).await;
    let stream = stream.into_std().expect("a std stream");
    stream.set_nonblocking(false).expect("a blocking stream");
    stream
}

// HTTP_API.md "Limits": the bodies of calls and queries beyond their first
// 64 KiB are held to 64 MiB server-wide and 8 MiB per address, and a body
// that sends nothing for 30 s is dropped with `408`. 192 connections from
// 24 addresses that each sent all but one byte of a 1 MiB query and
// stalled made the server hold about 192 MiB (from as many addresses as a
// client has, without bound); a small query went on being answered.
#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_that_stall_hold_bounded_memory_and_are_dropped() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    let before = resident_bytes();
    let mega = 1 << 20;
    let stalls = (0..24u8).flat_map(|a| {
        (0..8).map(move |_| stalled_sql(Ipv4Addr::new(127, 0, 1, 10 + a), addr, mega, mega - 1))
    });
    let stalled = futures_util::future::join_all(stalls).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = resident_bytes().saturating_sub(before);
    assert!(
        held < 128 << 20,
        "192 stalled query bodies made the server hold {} MiB",
        held >> 20
    );

    // A small query is answered at once all the same.
    let started = Instant::now();
    let (status, _, body) = request(
        addr,
        "POST",
        "/v1/database/bank/sql",
        None,
        b"SELECT * FROM account".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // An address already sending 8 MiB is refused another large body at once.
    let mut more = stalled_sql(Ipv4Addr::new(127, 0, 1, 10), addr, mega, 0).await;
    let answer =
        tokio::task::spawn_blocking(move || answer_within(&mut more, Duration::from_secs(5)))
            .await
            .expect("the reading thread");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("127.0.1.10 is already sending"), "{answer}");

    // The bodies being read are dropped once they have sent nothing for 30 s.
    let answers = tokio::task::spawn_blocking(move || {
        stalled
            .into_iter()
            .map(|mut stream| answer_within(&mut stream, Duration::from_secs(45)))
            .collect::<Vec<_>>()
    })
    .await
    .expect("the reading thread");
    let timed_out = answers
        .iter()
        .filter(|answer| answer.starts_with("HTTP/1.1 408"))
        .inspect(|answer| {
            assert!(
                answer.contains("the request body stalled: no bytes arrived for 30 s"),
                "{answer}"
            )
        })
        .count();
    assert!(timed_out > 0, "{answers:?}");
    live.shutdown().await;
}

/// Reads `stream` to its end; `true` if the server closed it (an end of
/// stream or a reset) within `within`, `false` if it was still open.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream
        .set_read_timeout(Some(within))
        .expect("a read timeout");
    let mut scratch = [0; 4096];
    loop {
        match stream.read(&mut scratch) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

// HTTP_API.md "Limits": a connection must send each request's head within
// 10 s. A connection that sent nothing, half a head, or nothing after its
// last answer stayed open for ever: from 40 loopback addresses, 5,160 of
// them were held, and enough of them used up the server's file
// descriptors, so that no new HTTP or WebSocket client got in.
#[tokio::test(flavor = "multi_thread")]
async fn connections_that_send_no_request_head_are_closed() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    let closed = tokio::task::spawn_blocking(move || {
        let silent = TcpStream::connect(addr).expect("connecting");
        let mut half = TcpStream::connect(addr).expect("connecting");
        half.write_all(b"GET /v1/server HTTP/1.1\r\nHost: x\r\n")
            .expect("writing");
        let mut idle = TcpStream::connect(addr).expect("connecting");
        idle.write_all(b"GET /v1/server HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("writing");
        let started = Instant::now();
        [silent, half, idle]
            .into_iter()
            .map(|mut stream| closed_within(&mut stream, Duration::from_secs(30)))
            .collect::<Vec<_>>()
            .into_iter()
            .chain([started.elapsed() < Duration::from_secs(30)])
            .collect::<Vec<_>>()
    })
    .await
    .expect("the reading thread");
    assert_eq!(
        closed,
        [true, true, true, true],
        "silent, half a head, idle after an answer"
    );
    // The server goes on answering.
    let (status, _, body) = request(addr, "GET", "/v1/server", None, Vec::new()).await;
    assert_eq!(status, 200, "{body}");
    live.shutdown().await;
}

// HTTP_API.md "Request bodies", "Uploads": a body must bring 16 KiB (or
// its end) in every 30 s. A client sending one byte a second was never
// dropped, as each byte reset the idle deadline, and held the room its
// body declared (a whole component's worth, for an upload) for as long
// as it liked.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_trickle_are_dropped_as_too_slow() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    let trickles = [
        ("/v1/database/trickled", 1 << 20, "the component's upload"),
        ("/v1/database/bank/sql", 512 << 10, "the request body"),
    ]
    .map(|(path, len, subject)| {
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).expect("connecting");
            let head =
                format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {len}\r\n\r\n");
            stream.write_all(head.as_bytes()).expect("sending the head");
            stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .expect("a read timeout");
            let started = Instant::now();
            let mut answer = Vec::new();
            // A byte a second, reading between them, until the server answers.
            while started.elapsed() < Duration::from_secs(50) {
                if stream.write_all(b" ").is_err() {
                    break;
                }
                let mut scratch = [0; 4096];
                match stream.read(&mut scratch) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&scratch[..n]),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    answer.extend(answer_within(&mut stream, Duration::from_secs(2)).bytes());
                    break;
                }
            }
            (subject, String::from_utf8_lossy(&answer).into_owned())
        })
    });
    for trickle in trickles {
        let (subject, answer) = trickle.await.expect("the trickling thread");
        assert!(answer.starts_with("HTTP/1.1 408"), "{subject}: {answer:?}");
        let expected = format!("{subject} is too slow: ");
        assert!(answer.contains(&expected), "{answer}");
        assert!(
            answer.contains("bytes arrived in 30 s, fewer than the 16384 a body must bring"),
            "{answer}"
        );
    }
    assert_eq!(database_names(&live).await, ["bank"]);
    live.shutdown().await;
}

// HTTP_API.md, "Errors" and "Database names": a name whose percent-encoding
// does not decode to UTF-8 is refused with `400` before any route is
// reached (the document said every route but publishing answers `404` for
// an invalid name), and `HEAD /v1/ws` is answered `405`, the WebSocket
// endpoint being the one `GET` route that does not also take `HEAD` (the
// document said every one does).
#[tokio::test(flavor = "multi_thread")]
async fn a_path_that_is_not_utf8_and_head_on_the_websocket_endpoint_are_answered_as_documented() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    let token = Some(live.owner_token.as_str());
    for (method, path, name) in [
        ("GET", "/v1/database/a%ff", "name"),
        ("GET", "/v1/database/a%ff/schema", "name"),
        ("POST", "/v1/database/a%ff", "name"),
        ("POST", "/v1/database/bank/call/a%ff", "reducer"),
    ] {
        let (status, _, body) = request(addr, method, path, token, vec![]).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(
            error_text(&body),
            format!("{method} {path}: Invalid URL: Invalid UTF-8 in `{name}`")
        );
    }
    let (status, head, body) = request(addr, "HEAD", "/v1/ws", None, vec![]).await;
    assert_eq!((status, body.as_str()), (405, ""), "{head}");
    live.shutdown().await;
}

// HTTP_API.md, "Request bodies": 1 MiB for any route but a publish, those
// that read no body too. `POST /v1/identity` with a 2 MiB body made an
// identity, and GET and DELETE took one as well.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_is_refused_on_routes_that_read_none() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let addr = live.http_addr();
    for (method, path) in [
        ("POST", "/v1/identity"),
        ("GET", "/v1/server"),
        ("DELETE", "/v1/database/bank"),
    ] {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\n\r\n",
            live.owner_token,
            2 << 20
        );
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).expect("connecting");
            stream.write_all(head.as_bytes()).expect("sending the head");
            answer_within(&mut stream, Duration::from_secs(10))
        })
        .await
        .expect("the request thread");
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{method} {path}: {answer}"
        );
        assert!(
            answer.contains("larger than the 1048576 bytes"),
            "{method} {path}: {answer}"
        );
    }
    // Nothing ran: the database is still there.
    assert_eq!(database_names(&live).await, ["bank"]);
    live.shutdown().await;
}

// HTTP_API.md, "Logs": what each line's fields hold, which the document
// did not say: `seq` from 0, `timestamp` in microseconds since the Unix
// epoch, `level` in upper case (`INFO` for the SDK's `log::info`).
#[tokio::test(flavor = "multi_thread")]
async fn module_log_lines_carry_the_documented_fields() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let addr = live.http_addr();
    let token = Some(live.owner_token.as_str());
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros();
    let (status, _, body) = request(
        addr,
        "POST",
        "/v1/database/chat/call/send_message",
        token,
        br#"["hi"]"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, head, body) = request(addr, "GET", "/v1/database/chat/logs", token, vec![]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("content-type: application/x-ndjson"),
        "{head}"
    );
    let lines: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let line = lines
        .iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("message ") && m.contains(" from "))
        })
        .unwrap_or_else(|| panic!("the reducer's line is kept: {body}"));
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(lines[0]["seq"], 0, "{body}");
    let timestamp = line["timestamp"].as_u64().expect("a number") as u128;
    assert!(
        timestamp >= before && timestamp < before + 60_000_000,
        "{timestamp} is not microseconds since the epoch (the call began at {before})"
    );
    live.shutdown().await;
}
