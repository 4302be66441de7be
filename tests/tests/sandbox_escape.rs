//! Issue #12 item 8: a hostile `worldline:module@0.2.0` component
//! (`guest-rust/test-modules/escape`, bound to the WIT without the SDK)
//! tries every way out of the sandbox against a real server. Each attempt
//! must be contained: the WASI calls fail, the limits stop it with a named
//! error, `http.send` goes only where the owner and the address guard allow;
//! and afterwards the database keeps serving and its neighbour never noticed.
//!
//! The outbound HTTP attempts go to a real HTTP server on loopback, which the
//! server's development override (`EngineConfig::http_private_override`)
//! lets through at its exact address and port, and nothing else.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use worldline_client::{CallOutcome, Client, ProcedureOutcome, ProcedureStatus, ReducerStatus};
use worldline_host::outbound::{AllowList, PrivateOverride};
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::process::Http;
use worldline_tests::{args, guest_wasm};

/// The hostile database, and its well-behaved neighbour on the same server.
const ESCAPE: &str = "escape";
const NEIGHBOUR: &str = "neighbour";

/// How long a procedure may run in these tests.
const PROCEDURE_DEADLINE: Duration = Duration::from_secs(3);
/// The whole-exchange limit of outbound HTTP in these tests.
const HTTP_TOTAL: Duration = Duration::from_secs(2);

/// A loopback HTTP server: `/hello` answers `200 hello`, `/to-off-list`
/// redirects to a host off the allow-list, `/to-metadata` to the cloud
/// metadata address, and `/drip` sends a body that never ends. It records
/// every request line it reads.
struct Origin {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("its address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, Arc::clone(&seen)));
            }
        });
        Self { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("not poisoned").clone()
    }
}

async fn answer(mut stream: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let line = head.lines().next().unwrap_or_default().to_owned();
    seen.lock().expect("not poisoned").push(line.clone());
    let path = line.split(' ').nth(1).unwrap_or_default();
    let redirect = |to: &str| {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    };
    let reply = match path {
        "/hello" => {
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_owned()
        }
        "/to-off-list" => redirect("http://example.com/"),
        "/to-metadata" => redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-mapped" => redirect("http://[::ffff:169.254.169.254]/latest/meta-data/"),
        "/drip" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            // One byte every 100 ms, forever (until the host hangs up).
            while stream.write_all(b"1\r\nx\r\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return;
        }
        _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
    };
    let _ = stream.write_all(reply.as_bytes()).await;
}

/// A server with the escape database (allowed to reach the origin, plus
/// `localhost` and the metadata address, which the guard must still refuse)
/// and its neighbour, and a client of each.
struct Suite {
    live: LiveServer,
    origin: Origin,
    /// The token of the databases' owner.
    owner_token: String,
    escape: Client,
    neighbour: Client,
}

impl Suite {
    async fn start() -> Self {
        Self::start_with(128 << 20).await
    }

    async fn start_with(memory_limit_bytes: usize) -> Self {
        let origin = Origin::start().await;
        let live = LiveServer::start_with(&[], |config| {
            let engine = &mut config.host.engine;
            engine.procedure_deadline = PROCEDURE_DEADLINE;
            engine.memory_limit_bytes = memory_limit_bytes;
            engine.http_private_override = PrivateOverride::new([origin.addr]);
            engine.http_limits.total_timeout = HTTP_TOTAL;
        })
        .await;
        // Names and addresses the owner allows but the guard must refuse
        // (only the origin's exact address is overridden).
        let port = origin.addr.port();
        let allow = AllowList::parse(&format!(
            "{},localhost,169.254.169.254,0.0.0.0:{port},127.0.0.2:{port},[::1]:{port},\
             [::ffff:a9fe:a9fe],[fd00:ec2::254]",
            origin.addr
        ))
        .expect("an allow-list");
        let (owner, owner_token) = live.server().new_identity();
        let wasm = guest_wasm("escape");
        tokio::task::block_in_place(|| {
            let server = live.server();
            server
                .publish_with_http(ESCAPE, &wasm, owner, &allow)
                .expect("publishing the escape module");
            server
                .publish_with_http(NEIGHBOUR, &wasm, owner, &allow)
                .expect("publishing its neighbour");
        });
        let escape = live.connect(Transport::WebSocket, ESCAPE).await;
        let neighbour = live.connect(Transport::WebSocket, NEIGHBOUR).await;
        Self {
            live,
            origin,
            owner_token,
            escape,
            neighbour,
        }
    }

    /// Checks that both databases serve: an honest reducer commits in each
    /// and the escape database holds exactly `notes` notes afterwards.
    async fn assert_serving(&self, notes: usize) {
        for (name, client) in [(ESCAPE, &self.escape), (NEIGHBOUR, &self.neighbour)] {
            let outcome = client.call("add", &("still here",)).await.expect("a call");
            assert_eq!(
                outcome.status,
                ReducerStatus::Committed,
                "{name} serves an honest reducer"
            );
        }
        assert_eq!(self.notes().await, notes + 1, "notes in {ESCAPE}");
    }

    /// The newest `tail` lines of the escape database's module log.
    async fn log_tail(&self, tail: usize) -> Vec<String> {
        let base = format!("http://{}", self.live.server().http_addr());
        let token = self.owner_token.clone();
        tokio::task::spawn_blocking(move || {
            Http::new(&base, Some(&token)).module_log(ESCAPE, Some(tail))
        })
        .await
        .expect("the request ran")
    }

    /// Publishes `wasm` over the escape database, as its owner, through the
    /// HTTP API: the status and the answer's text.
    async fn swap_escape(&self, wasm: Vec<u8>) -> (u16, String) {
        self.publish_over_http(ESCAPE, &self.owner_token, wasm)
            .await
    }

    /// Publishes `wasm` as database `name` through the HTTP API, presenting
    /// `token`: the status and the answer's text (status 0 when the server
    /// gave no answer within the client's 20 s).
    async fn publish_over_http(&self, name: &str, token: &str, wasm: Vec<u8>) -> (u16, String) {
        let url = format!(
            "http://{}/v1/database/{name}",
            self.live.server().http_addr()
        );
        let token = token.to_owned();
        tokio::task::spawn_blocking(move || {
            let answer = agent()
                .post(&url)
                .header("Authorization", format!("Bearer {token}"))
                .content_type("application/wasm")
                .send(&wasm[..]);
            match answer {
                Ok(mut response) => {
                    let text = response.body_mut().read_to_string().expect("its body");
                    (response.status().as_u16(), text)
                }
                Err(error) => (0, format!("no answer: {error}")),
            }
        })
        .await
        .expect("the request ran")
    }

    async fn notes(&self) -> usize {
        let tables = self
            .escape
            .query("SELECT * FROM note")
            .await
            .expect("a query");
        tables.iter().map(|table| table.rows.len()).sum()
    }
}

/// The reducer's failure message (every escape reducer reports by failing).
async fn reducer_report(client: &Client, reducer: &str, arguments: Vec<u8>) -> String {
    let outcome: CallOutcome = client
        .call_raw(reducer, arguments)
        .await
        .unwrap_or_else(|e| panic!("calling {reducer}: {e}"));
    match outcome.status {
        ReducerStatus::Failed(message) => message,
        other => panic!("{reducer}: expected a report, got {other:?}"),
    }
}

/// What a procedure returned (a string), or the message of its failure.
async fn procedure_report(
    client: &Client,
    procedure: &str,
    arguments: Vec<u8>,
) -> Result<String, String> {
    let outcome: ProcedureOutcome = client
        .call_procedure_raw(procedure, arguments)
        .await
        .unwrap_or_else(|e| panic!("calling {procedure}: {e}"));
    match outcome.status {
        ProcedureStatus::Returned(bytes) => {
            Ok(postcard::from_bytes(&bytes).expect("a string return value"))
        }
        ProcedureStatus::Failed(message) => Err(message),
    }
}

/// Asserts that each of `attempts` is reported as `name: err(..)` (each
/// appears once in a report, so none of them got through).
fn assert_all_refused(report: &str, attempts: &[&str]) {
    for attempt in attempts {
        assert!(
            report.contains(&format!("{attempt}: err(")),
            "{attempt} was not refused: {report}"
        );
    }
}

const SOCKET_ATTEMPTS: &[&str] = &[
    "std tcp",
    "std lookup",
    "wasi tcp",
    "wasi udp",
    "wasi lookup localhost",
    "wasi lookup example.com",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_environment_and_stdin_grant_nothing() {
    let suite = Suite::start().await;
    let files = reducer_report(&suite.escape, "read_files", args(&())).await;
    assert_all_refused(&files, &["passwd", "dot", "root", "create"]);
    assert!(files.ends_with("preopens: []"), "{files}");
    let env = reducer_report(&suite.escape, "env_args", args(&())).await;
    assert_eq!(
        env,
        "env: []; args: []; wasi env: []; wasi args: []; cwd: None"
    );
    let stdin = reducer_report(&suite.escape, "read_stdin", args(&())).await;
    assert_eq!(stdin, "stdin: ok(0)", "stdin is at end of file");
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_is_discarded_and_stderr_tail_comes_with_a_trap() {
    let suite = Suite::start().await;
    let stdout = reducer_report(&suite.escape, "write_stdout", args(&())).await;
    assert_eq!(stdout, "stdout: wrote 1114112 bytes; flush: ok(())");
    assert!(
        !suite
            .log_tail(10)
            .await
            .iter()
            .any(|line| line.contains("escape to stdout")),
        "stdout reached the module log"
    );
    let trap = reducer_report(
        &suite.escape,
        "stderr_then_trap",
        args(&("fatal: the escape failed",)),
    )
    .await;
    assert!(trap.contains("fatal: the escape failed"), "{trap}");
    // 8 KiB of filler went first; only the newest 1 KiB is kept.
    let filler = trap.matches("filler").count();
    assert!(
        filler > 0 && filler <= 1024 / 7 + 1,
        "{filler} fillers: {trap}"
    );
    let trapped = procedure_report(
        &suite.escape,
        "proc_stderr_then_trap",
        args(&("fatal: the procedure's escape failed",)),
    )
    .await
    .expect_err("the procedure traps");
    assert!(
        trapped.contains("proc_stderr_then_trap")
            && trapped.contains("fatal: the procedure's escape failed"),
        "{trapped}"
    );
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_and_name_lookup_are_denied_in_reducers_and_procedures() {
    let suite = Suite::start().await;
    let target = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    target.set_nonblocking(true).expect("non-blocking");
    let addr = target.local_addr().expect("its address").to_string();
    let report = reducer_report(&suite.escape, "sockets", args(&(&addr,))).await;
    assert_all_refused(&report, SOCKET_ATTEMPTS);
    let report = procedure_report(&suite.escape, "proc_sandbox", args(&(&addr,)))
        .await
        .expect("the procedure returns its report");
    assert_all_refused(
        &report,
        &[
            &["passwd", "dot", "root", "create", "std tcp"],
            SOCKET_ATTEMPTS,
        ]
        .concat(),
    );
    assert!(report.contains("env: []; args: []"), "{report}");
    assert!(report.contains("stdin: ok(0)"), "{report}");
    assert!(
        target.accept().is_err(),
        "a connection reached the loopback listener"
    );
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_are_stopped_at_their_deadlines_and_the_neighbour_never_waits() {
    let suite = Suite::start().await;
    let spin = reducer_report(&suite.escape, "spin", args(&())).await;
    assert!(spin.contains("deadline"), "{spin}");
    suite.assert_serving(0).await;

    // A procedure loops on an instance of its own: the database's reducers,
    // and the neighbour's, go on meanwhile.
    let started = Instant::now();
    let escape = &suite.escape;
    let looping = procedure_report(escape, "proc_spin", args(&()));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        suite.assert_serving(1).await;
        started.elapsed()
    };
    let (looped, served_after) = tokio::join!(looping, meanwhile);
    let message = looped.expect_err("the procedure never returns");
    assert!(
        message.contains("deadline") && message.contains("proc_spin"),
        "{message}"
    );
    let stopped_after = started.elapsed();
    assert!(
        served_after < PROCEDURE_DEADLINE,
        "both databases served while the procedure looped ({served_after:?})"
    );
    assert!(
        stopped_after >= PROCEDURE_DEADLINE && stopped_after < PROCEDURE_DEADLINE * 3,
        "stopped after {stopped_after:?}"
    );
    suite.assert_serving(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_describe_that_loops_fails_its_publish_naming_the_deadline() {
    let suite = Suite::start().await;
    let (owner, _) = suite.live.server().new_identity();
    let wasm = guest_wasm("escape-describe-loop");
    // The neighbour is called while the publish waits on `describe`.
    let neighbour = suite.live.connect(Transport::WebSocket, NEIGHBOUR).await;
    let started = Instant::now();
    let meanwhile = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let outcome = neighbour
            .call("add", &("meanwhile",))
            .await
            .expect("a call");
        (outcome.status, started.elapsed())
    });
    let error =
        tokio::task::block_in_place(|| suite.live.server().publish("looping", &wasm, owner))
            .expect_err("describe never returns");
    let published_after = started.elapsed();
    let message = error.to_string();
    assert!(
        message.contains("describe") && message.contains("500ms deadline"),
        "{message}"
    );
    let (status, served_after) = meanwhile.await.expect("the neighbour's call ran");
    assert_eq!(status, ReducerStatus::Committed);
    assert!(
        served_after < published_after,
        "the neighbour waited for the looping describe ({served_after:?} vs {published_after:?})"
    );
    // As a hot swap of the escape database, it is refused the same way and
    // the old module goes on serving.
    let (status, body) = suite.swap_escape(wasm).await;
    assert!(
        status >= 400 && body.contains("describe") && body.contains("500ms deadline"),
        "{status} {body}"
    );
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_memory_stops_at_the_cap() {
    let suite = Suite::start_with(64 << 20).await;
    let grow = reducer_report(&suite.escape, "grow", args(&())).await;
    assert!(grow.contains("memory limit of 67108864 bytes"), "{grow}");
    suite.assert_serving(0).await;
    let grow = procedure_report(&suite.escape, "proc_grow", args(&()))
        .await
        .expect_err("the procedure traps");
    assert!(
        grow.contains("proc_grow") && grow.contains("memory"),
        "{grow}"
    );
    suite.assert_serving(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_host_calls_are_refused_or_cut() {
    let suite = Suite::start().await;
    let insert = reducer_report(&suite.escape, "huge_insert", args(&(100u32,))).await;
    assert!(insert.contains("max_tx_write_bytes"), "{insert}");
    suite.assert_serving(0).await;

    let log = reducer_report(&suite.escape, "huge_log", args(&(100u32,))).await;
    assert_eq!(log, "log: returned");
    let line = suite.log_tail(1).await.pop().expect("a log line");
    assert!(line.len() <= 16 << 10, "a {} byte log line", line.len());
    assert!(
        line.starts_with("yyyy") && line.ends_with(" bytes]"),
        "not cut"
    );
    suite.assert_serving(1).await;
}

/// An HTTP client for the server's API that returns error statuses as answers.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_and_streams_are_capped() {
    let suite = Suite::start().await;
    let cursors = reducer_report(&suite.escape, "many_cursors", args(&())).await;
    assert!(
        cursors.contains("1024 open cursors") && cursors.contains("max_cursors_per_call"),
        "{cursors}"
    );
    let streams = reducer_report(&suite.escape, "many_streams", args(&())).await;
    assert!(streams.contains("4096 resources"), "{streams}");
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_transactions_from_a_reducer_are_refused_with_error_values() {
    let suite = Suite::start().await;
    let http = reducer_report(
        &suite.escape,
        "reducer_http",
        args(&(suite.origin.url("/hello"),)),
    )
    .await;
    assert!(
        http.starts_with("err(HttpErrorKind::NotAllowedHere: "),
        "{http}"
    );
    let begin = reducer_report(&suite.escape, "reducer_begin", args(&())).await;
    assert_eq!(
        begin,
        "begin: Err(TxErrorKind::NotAProcedure); commit: Err(TxErrorKind::NotAProcedure); \
         rollback: Err(TxErrorKind::NotAProcedure)"
    );
    assert!(suite.origin.requests().is_empty(), "nothing went out");
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_goes_only_where_the_owner_and_the_address_guard_allow() {
    let suite = Suite::start().await;
    let fetch = |url: String| procedure_report(&suite.escape, "fetch", args(&(url, 0u32)));
    let port = suite.origin.addr.port();
    assert_eq!(
        fetch(suite.origin.url("/hello")).await.as_deref(),
        Ok("200 hello"),
        "the override lets the origin through"
    );
    for (url, why) in [
        ("http://example.com/".to_owned(), "off the allow-list"),
        (
            format!("http://example.com:{}/", suite.origin.addr.port()),
            "off the allow-list at the origin's port",
        ),
        ("http://localhost/".to_owned(), "allowed, but loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "allowed, but the metadata address",
        ),
        (suite.origin.url("/to-off-list"), "a redirect off the list"),
        (
            suite.origin.url("/to-metadata"),
            "a redirect to the metadata address",
        ),
        (
            suite.origin.url("/to-mapped"),
            "a redirect to the metadata address, IPv4-mapped",
        ),
        (
            format!("http://0.0.0.0:{port}/hello"),
            "allowed, but unspecified (which reaches loopback)",
        ),
        (
            format!("http://127.0.0.2:{port}/hello"),
            "allowed, but loopback not overridden",
        ),
        (
            format!("http://[::1]:{port}/hello"),
            "allowed, but IPv6 loopback",
        ),
        (
            "http://[::ffff:169.254.169.254]/".to_owned(),
            "allowed, but the metadata address, IPv4-mapped",
        ),
        (
            "http://[fd00:ec2::254]/".to_owned(),
            "allowed, but the IPv6 metadata address",
        ),
        (
            "http://2852039166/".to_owned(),
            "the metadata address written as one number",
        ),
    ] {
        let report = fetch(url.clone()).await.expect("fetch returns its report");
        // Off the list is the allow-list's refusal; the rest, the guard's.
        let reason = if why.contains("off the") {
            "allow-list"
        } else {
            "may not be reached by outbound requests"
        };
        assert!(
            report.starts_with("err(HttpErrorKind::Denied: ") && report.contains(reason),
            "{why} ({url}): {report}"
        );
    }
    assert_eq!(
        suite.origin.requests(),
        [
            "GET /hello HTTP/1.1",
            "GET /to-off-list HTTP/1.1",
            "GET /to-metadata HTTP/1.1",
            "GET /to-mapped HTTP/1.1",
        ],
        "only the origin was reached"
    );
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_never_ends_times_out_within_the_limit() {
    let suite = Suite::start().await;
    let started = Instant::now();
    let report = procedure_report(
        &suite.escape,
        "fetch",
        args(&(suite.origin.url("/drip"), 0u32)),
    )
    .await
    .expect("fetch returns its report");
    let took = started.elapsed();
    assert!(
        report.starts_with("err(HttpErrorKind::Timeout: "),
        "{report}"
    );
    assert!(
        took >= HTTP_TOTAL && took < HTTP_TOTAL + Duration::from_secs(3),
        "timed out after {took:?}"
    );
    let report = procedure_report(
        &suite.escape,
        "fetch",
        args(&(suite.origin.url("/drip"), 300u32)),
    )
    .await
    .expect("fetch returns its report");
    assert!(
        report.starts_with("err(HttpErrorKind::Timeout: "),
        "{report}"
    );
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_outside_a_transaction_answer_no_transaction() {
    let suite = Suite::start().await;
    let report = procedure_report(&suite.escape, "touch_outside_tx", args(&()))
        .await
        .expect("the procedure returns its report");
    assert_eq!(
        report,
        "count: Err(ErrorKind::NoTransaction); insert: Err(ErrorKind::NoTransaction); \
         scan: Err(ErrorKind::NoTransaction)"
    );
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_held_past_the_deadline_is_rolled_back_and_the_database_serves_again() {
    let suite = Suite::start().await;
    let started = Instant::now();
    let held = async {
        let report = procedure_report(&suite.escape, "hold_tx", args(&())).await;
        (report, started.elapsed())
    };
    let neighbour = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let outcome = suite
            .neighbour
            .call("add", &("while held",))
            .await
            .expect("a call");
        (outcome.status, started.elapsed())
    };
    // The escape database's own reducer waits for the transaction to end.
    let queued = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let outcome = suite
            .escape
            .call("add", &("queued",))
            .await
            .expect("a call");
        outcome.status
    };
    let ((held, held_after), (status, neighbour_after), queued) =
        tokio::join!(held, neighbour, queued);
    assert_eq!(
        queued,
        ReducerStatus::Committed,
        "the queued reducer ran after the rollback"
    );
    let message = held.expect_err("the procedure never ends its transaction");
    assert!(
        message.contains("kept a transaction open") && message.contains("rolled back"),
        "{message}"
    );
    assert_eq!(status, ReducerStatus::Committed, "the neighbour served");
    assert!(
        neighbour_after < held_after,
        "the neighbour did not wait for the held transaction"
    );
    assert_eq!(
        suite.notes().await,
        1,
        "the held transaction's note is gone, the queued one is there"
    );
    assert_eq!(
        procedure_report(&suite.escape, "proc_add", args(&("after",)))
            .await
            .as_deref(),
        Ok("added 1"),
        "a fresh transaction after the rollback"
    );
    suite.assert_serving(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_kept_past_their_transaction_cannot_be_read() {
    let suite = Suite::start().await;
    suite.assert_serving(0).await;
    let stashed = reducer_report(&suite.escape, "stash_cursor", args(&())).await;
    assert_eq!(stashed, "stashed");
    let used = reducer_report(&suite.escape, "use_stashed_cursor", args(&())).await;
    assert!(
        used.starts_with("the module trapped: ") && used.contains("closed cursor"),
        "read through a cursor kept from an earlier call: {used}"
    );
    let past = procedure_report(&suite.escape, "cursor_past_commit", args(&()))
        .await
        .expect_err("the cursor closed with its transaction");
    assert!(
        past.starts_with("procedure `cursor_past_commit` trapped: "),
        "{past}"
    );
    suite.assert_serving(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_misuse_gets_error_values_and_bad_returns_are_refused() {
    let suite = Suite::start().await;
    let report = procedure_report(
        &suite.escape,
        "tx_misuse",
        args(&(suite.origin.url("/hello"),)),
    )
    .await
    .expect("the procedure returns its report");
    assert!(
        report.starts_with(
            "commit: Err(TxErrorKind::NotOpen); rollback: Err(TxErrorKind::NotOpen); \
             begin: Ok(()); begin again: Err(TxErrorKind::AlreadyOpen); \
             http: err(HttpErrorKind::NotAllowedHere: "
        ) && report.ends_with("; rollback: Ok(())"),
        "{report}"
    );
    let bad = procedure_report(&suite.escape, "bad_return", args(&()))
        .await
        .expect_err("the host refuses the return value");
    assert!(
        bad.contains(
            "`bad_return` returned a value that does not decode as its declared return type"
        ),
        "{bad}"
    );
    assert!(suite.origin.requests().is_empty(), "nothing went out");
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exiting_or_overflowing_the_stack_is_a_trap_that_changes_nothing() {
    let suite = Suite::start().await;
    for code in [0u32, 3] {
        let exit = reducer_report(&suite.escape, "exit", args(&(code,))).await;
        // WASI 0.2's `exit` carries only success or failure: 0 or 1.
        let status = code.min(1);
        assert!(
            exit.starts_with("the module trapped: ")
                && exit.contains(&format!("the module called exit({status})")),
            "exit({code}): {exit}"
        );
    }
    let exit = procedure_report(&suite.escape, "proc_exit", args(&(0u32,)))
        .await
        .expect_err("exit(0) is no success");
    assert!(
        exit.starts_with("procedure `proc_exit` trapped: "),
        "{exit}"
    );
    assert_eq!(
        suite.notes().await,
        0,
        "the notes written before exit rolled back"
    );
    let overflow = reducer_report(&suite.escape, "recurse", args(&())).await;
    assert!(overflow.starts_with("the module trapped: "), "{overflow}");
    suite.assert_serving(0).await;
}

// Deadlines are enforced by epoch interruption, which fires only while wasm
// code runs: a module blocked inside one host call (a `wasi:clocks`
// pollable's `block`, which is what `std::thread::sleep` does) would hold
// its thread as long as it asked. The host refuses a clock wait that would
// end past the call's deadline, stopping the call at once with its
// deadline error: a reducer asking for 5 s, a procedure for 20 s and a
// `describe` for a minute end at once, and nobody else waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_blocked_in_a_wasi_pollable_is_stopped_at_its_deadline() {
    let suite = Suite::start().await;
    let started = Instant::now();
    let slept = reducer_report(&suite.escape, "sleep", args(&(5_000u32,))).await;
    let took = started.elapsed();
    assert!(slept.contains("500ms deadline"), "{slept}");
    assert!(took < Duration::from_secs(2), "the reducer ran {took:?}");
    let started = Instant::now();
    let slept = procedure_report(&suite.escape, "proc_sleep", args(&(20_000u32,)))
        .await
        .expect_err("past the procedure deadline");
    let took = started.elapsed();
    assert!(slept.contains("deadline"), "{slept}");
    assert!(took < PROCEDURE_DEADLINE * 2, "the procedure ran {took:?}");
    suite.assert_serving(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_describe_blocked_in_a_wasi_pollable_fails_its_publish_at_the_deadline() {
    let suite = Suite::start().await;
    let (_, sleeper) = suite.live.server().new_identity();
    let (_, other) = suite.live.server().new_identity();
    let started = Instant::now();
    let sleepy = suite.publish_over_http("sleepy", &sleeper, guest_wasm("escape-describe-sleep"));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let answer = suite
            .publish_over_http("other", &other, guest_wasm("escape"))
            .await;
        (answer, started.elapsed())
    };
    let ((status, body), ((other_status, other_body), other_after)) =
        tokio::join!(sleepy, meanwhile);
    assert_eq!(other_status, 201, "{other_body}");
    assert!(
        other_after < Duration::from_secs(5),
        "another owner's publish waited {other_after:?}"
    );
    let took = started.elapsed();
    assert!(
        status >= 400 && body.contains("500ms deadline"),
        "{status} {body}"
    );
    assert!(took < Duration::from_secs(5), "the publish took {took:?}");
    suite.assert_serving(0).await;
}
