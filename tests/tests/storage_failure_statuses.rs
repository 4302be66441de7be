//! What a client sees when the disk fills up under a real server (#9
//! items 5, 6 and 7): a call whose transaction reached the commit log
//! just before it failed is answered "outcome unknown" (`500`), every
//! later call is refused with `503` (never `422`, as if the module had
//! trapped), SQL is refused with `503` because memory may hold what the
//! log lost, and after a restart exactly the acknowledged transfers (and
//! at most the one with the unknown outcome) are there.
//!
//! The full disk is `RLIMIT_FSIZE`, set on this test process once the
//! database is published and seeded, with `SIGXFSZ` ignored so that writes
//! past it fail with `EFBIG`. The limit is the whole process's, and it also
//! stops the test harness from printing to a log file that has grown past
//! it, so this binary has a single test that runs both scenarios in turn
//! and lifts the limit before it returns (or panics).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use worldline_host::{DurabilityPolicy, StorageConfig};
use worldline_server::{Server, ServerConfig};
use worldline_tests::crash::{ACCOUNTS, INITIAL_BALANCE, apply, balances_in_sql_answer, transfers};
use worldline_tests::raw::{RawWebSocket, call, fatal, hello};
use worldline_tests::{TempDir, args, guest_wasm, test_engine_config};
use worldline_transport::{ReducerStatus, ServerMessage};

/// One HTTP/1.1 request; returns the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    http_bytes(addr, method, path, token, body.as_bytes())
}

/// [`http`] with a body of any bytes.
fn http_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connecting to the server");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("sending");
    stream.write_all(body).expect("sending");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reading");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn config(dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(dir);
    config.http_listen = "127.0.0.1:0".parse().expect("an address");
    config.quic_listen = "127.0.0.1:0".parse().expect("an address");
    config.host.engine = test_engine_config();
    config.host.storage = StorageConfig {
        durability: DurabilityPolicy::Every,
        // One segment and no snapshots: the only file that grows is the log.
        max_segment_bytes: 1 << 30,
        snapshot_every: None,
        ..StorageConfig::default()
    };
    config
}

/// Sets the largest file this process may write (`u64::MAX`: no limit).
fn limit_file_size(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: if bytes == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            bytes
        },
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system calls with valid arguments; ignoring SIGXFSZ
    // turns a write past the limit into an EFBIG error instead of a kill.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0, "setrlimit");
    }
}

/// How far the records of the largest file in `dir` (the log segment
/// being written) reach: its size without the zeros the commit log writes
/// ahead of its records. A write that starts past the file-size limit
/// fails even inside the file, so the limit counts from here.
fn log_end(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("listing the log")
        .map(|entry| {
            let bytes = std::fs::read(entry.expect("an entry").path()).expect("reading the log");
            bytes
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |i| i as u64 + 1)
        })
        .max()
        .unwrap_or(0)
}

/// The balances the server answers to SQL, by account id.
fn balances(addr: SocketAddr, token: &str) -> Vec<i64> {
    let (status, body) = http(
        addr,
        "POST",
        "/v1/database/bank/sql",
        token,
        "SELECT * FROM account",
    );
    assert_eq!(status, 200, "{body}");
    balances_in_sql_answer(&body)
}

/// Starts a server on `dir`, publishes the bank module and seeds its
/// accounts; returns the server and the owner's token.
async fn start_seeded(dir: &Path) -> (Server, String) {
    let server = Server::start(config(dir)).await.expect("starting");
    let (owner, token) = server.new_identity();
    tokio::task::block_in_place(|| {
        server
            .publish("bank", &guest_wasm("bank"), owner)
            .expect("publishing");
        let seed_args = format!("[{ACCOUNTS}, {INITIAL_BALANCE}]");
        let (status, body) = http(
            server.http_addr(),
            "POST",
            "/v1/database/bank/call/seed",
            &token,
            &seed_args,
        );
        assert_eq!(status, 200, "{body}");
    });
    (server, token)
}

/// Leaves the commit log room for a few dozen more transfer records, until
/// the returned guard is dropped.
fn fill_disk_soon(dir: &Path) -> DiskLimit {
    let log_dir = dir.join("databases/bank/log");
    limit_file_size(log_end(&log_dir) + 4096);
    DiskLimit
}

/// Lifts the file-size limit when dropped, on a panic too.
struct DiskLimit;

impl Drop for DiskLimit {
    fn drop(&mut self) {
        limit_file_size(u64::MAX);
    }
}

// #9 items 5, 6 and 7: one test, so that nothing else in this process
// (another test, the harness's output) writes while the disk is "full".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_outcome_unknown_over_http_and_the_wire() {
    a_full_disk_answers_outcome_unknown_then_refuses_calls_and_reads().await;
    a_full_disk_answers_outcome_unknown_over_the_wire().await;
}

/// Over HTTP: committed or refused until the disk fills, then one outcome
/// unknown, then 503s; SQL 503; after a restart exactly what was acknowledged.
async fn a_full_disk_answers_outcome_unknown_then_refuses_calls_and_reads() {
    let dir = TempDir::new("worldline-full-disk-statuses");
    let (server, token) = start_seeded(dir.path()).await;
    let addr = server.http_addr();

    let (statuses, sent, after_failure_sql) = tokio::task::block_in_place(|| {
        let full = fill_disk_soon(dir.path());
        let mut statuses = Vec::new();
        let mut sent = Vec::new();
        for (from, to, amount) in transfers(9) {
            let args = format!("[{from}, {to}, {amount}]");
            let (status, body) = http(
                addr,
                "POST",
                "/v1/database/bank/call/transfer",
                &token,
                &args,
            );
            statuses.push((status, body));
            sent.push((from, to, amount));
            let refused = statuses.iter().filter(|(s, _)| *s == 503).count();
            if refused == 3 || statuses.len() == 2000 {
                break;
            }
        }
        let sql = http(
            addr,
            "POST",
            "/v1/database/bank/sql",
            &token,
            "SELECT * FROM account",
        );
        // The database is listed as unavailable, with the reason, as one
        // that could not be recovered at startup is.
        for path in ["/v1/database/bank", "/v1/database"] {
            let (status, body) = http(addr, "GET", path, &token, "");
            assert_eq!(status, 200, "{path}: {body}");
            assert!(
                body.contains("\"unavailable\":\"it stopped while the server ran: ")
                    && body.contains("until the server is restarted"),
                "{path} after the log failed: {body}"
            );
        }
        // Publishing on the full disk cannot write module.wasm: unavailable, not a bad request.
        let publish = http_bytes(
            addr,
            "POST",
            "/v1/database/bank2",
            &token,
            &guest_wasm("bank"),
        );
        drop(full);
        assert_eq!(publish.0, 503, "publishing on a full disk: {}", publish.1);
        (statuses, sent, sql)
    });

    let codes: Vec<u16> = statuses.iter().map(|(s, _)| *s).collect();
    // Before the disk fills, transfers commit (200) or find too little
    // money in the source account (422); both are definite.
    let acked = codes
        .iter()
        .take_while(|s| **s == 200 || **s == 422)
        .count();
    assert!(
        codes[..acked].contains(&200),
        "the limit left no room for a transfer: {codes:?}"
    );
    assert_eq!(
        codes[acked], 500,
        "the call whose record hit the full disk: {:?}",
        statuses[acked]
    );
    assert!(
        statuses[acked].1.contains("outcome unknown"),
        "{}",
        statuses[acked].1
    );
    for (status, body) in &statuses[acked + 1..] {
        assert_eq!(*status, 503, "after the failure calls are refused: {body}");
        assert!(
            !body.contains("trap"),
            "a storage failure is not a trap: {body}"
        );
    }
    assert_eq!(
        after_failure_sql.0, 503,
        "SQL after the failure: {}",
        after_failure_sql.1
    );
    // A read has no transaction whose outcome could be unknown.
    assert!(
        after_failure_sql
            .1
            .contains("database `bank` is unavailable: ")
            && !after_failure_sql.1.contains("outcome unknown"),
        "SQL after the failure: {}",
        after_failure_sql.1
    );
    server.shutdown().await;

    // After a restart: the acknowledged transfers (applying a refused one
    // changes nothing, as in the module), and at most the one whose
    // outcome was unknown; none of the refused ones.
    let server = Server::start(config(dir.path())).await.expect("restarting");
    let (_, token) = server.new_identity();
    let addr = server.http_addr();
    let recovered = tokio::task::block_in_place(|| balances(addr, &token));
    let mut expected = vec![INITIAL_BALANCE; ACCOUNTS as usize];
    for transfer in &sent[..acked] {
        apply(&mut expected, *transfer);
    }
    let mut with_unknown = expected.clone();
    apply(&mut with_unknown, sent[acked]);
    assert!(
        recovered == expected || recovered == with_unknown,
        "recovered {recovered:?}, expected the {acked} acknowledged transfers {expected:?} \
         (or with the unknown one {with_unknown:?})"
    );
    server.shutdown().await;
}

/// Over the wire protocol (#9 items 5 and 6): `ReducerStatus::OutcomeUnknown`,
/// then a fatal `Error`, then connections (and so subscriptions) refused.
async fn a_full_disk_answers_outcome_unknown_over_the_wire() {
    let dir = TempDir::new("worldline-full-disk-wire");
    let (server, token) = start_seeded(dir.path()).await;
    let url = format!("ws://{}/v1/ws", server.http_addr());
    let mut ws = RawWebSocket::connect(&url).await;
    ws.send(&hello("bank", Some(token.clone()))).await;
    assert!(matches!(
        ws.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    let full = fill_disk_soon(dir.path());
    let mut unknown = None;
    for (request_id, transfer) in (0..2000).zip(transfers(5)) {
        ws.send(&call(request_id, "transfer", args(&transfer)))
            .await;
        let status = loop {
            match ws.recv().await {
                Some(ServerMessage::ReducerResult {
                    request_id: id,
                    status,
                    ..
                }) if id == request_id => break status,
                Some(ServerMessage::TransactionUpdate { .. }) => {}
                other => panic!("request {request_id}: unexpected {other:?}"),
            }
        };
        match status {
            ReducerStatus::Committed => {}
            ReducerStatus::Failed(reason) if reason.contains("insufficient funds") => {}
            ReducerStatus::OutcomeUnknown(reason) => {
                unknown = Some(reason);
                break;
            }
            other => panic!("request {request_id}: {other:?} before the disk filled"),
        }
    }
    drop(full);
    let reason = unknown.expect("the disk filled within 2,000 transfers");
    assert!(reason.contains("commit log"), "{reason}");
    let stopped = fatal(ws.recv().await);
    assert!(stopped.contains("restart the server"), "{stopped}");

    let mut late = RawWebSocket::connect(&url).await;
    late.send(&hello("bank", Some(token))).await;
    let refused = fatal(late.recv().await);
    assert!(refused.contains("unavailable"), "{refused}");
    server.shutdown().await;
}
