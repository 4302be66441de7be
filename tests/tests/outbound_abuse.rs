//! What an outsider can do with outbound HTTP from a procedure against a
//! real server on loopback, with hostile HTTP servers of its own (let
//! through the address guard with the development override, as
//! `worldline start --http-allow-private-address` does): the documented
//! limits hold whatever the database's owner does meanwhile.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use worldline_host::outbound::PrivateOverride;
use worldline_tests::gate::Gate;
use worldline_tests::guest_wasm;
use worldline_tests::http_stub;
use worldline_tests::live::LiveServer;
use worldline_tests::process::Http;

/// A loopback HTTP server that reads each request's head, then holds the
/// connection at `gate` before answering `200 held`.
fn holding_server(gate: Arc<Gate>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("a clone"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                gate.pass();
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nheld",
                );
            });
        }
    });
    addr
}

/// A server whose procedures may reach `web` through the override.
async fn server_reaching(web: SocketAddr) -> LiveServer {
    LiveServer::start_with(&[], |config| {
        config.host.engine.http_private_override = PrivateOverride::new([web]);
    })
    .await
}

/// Publishes the `outbound-abuse` module as `name`, allowing `allow`.
fn publish(owner: &Http, name: &str, allow: &str) -> Value {
    let path = format!("/v1/database/{name}?allow_http={allow}");
    owner.post_ok(&path, "application/wasm", &guest_wasm("outbound-abuse"))
}

/// Calls the module's `fetch` procedure: its value, or the server's error.
fn fetch(client: &Http, database: &str, url: &str, timeout_ms: u32) -> Result<String, String> {
    let path = format!("/v1/database/{database}/call/fetch");
    let body = json!([url, timeout_ms]).to_string();
    let (status, text) = client
        .post(&path, "application/json", body.as_bytes())
        .map_err(|e| format!("no answer: {e}"))?;
    let answer: Value = serde_json::from_str(&text).map_err(|_| text.clone())?;
    match (status, &answer["value"], &answer["error"]) {
        (200, Value::String(value), _) => Ok(value.clone()),
        (_, _, Value::String(error)) => Err(error.clone()),
        _ => Err(format!("{status} {text}")),
    }
}

/// Calls `database`'s `nap` procedure over HTTP: its status and body.
fn nap(client: &Http, database: &str, millis: u64) -> Result<(u16, String), ureq::Error> {
    let path = format!("/v1/database/{database}/call/nap");
    let body = json!([millis]).to_string();
    client.post(&path, "application/json", body.as_bytes())
}

/// Starts `nap(millis)` on a thread of its own and returns once the
/// procedure is asleep (its module log says `napping`).
fn nap_in_background(
    client: &Http,
    database: &str,
    millis: u64,
) -> std::thread::JoinHandle<Result<(u16, String), ureq::Error>> {
    let (napper, name) = (client.clone(), database.to_owned());
    let call = std::thread::spawn(move || nap(&napper, &name, millis));
    wait_until("the procedure asleep", || {
        client
            .module_log(database, None)
            .iter()
            .any(|line| line.contains("napping"))
    });
    call
}

/// Stops `live` while the caller thread `call` waits on it, asserting that
/// the shutdown takes less than 5 s; returns what the caller got.
async fn shut_down_under<T: Send + 'static>(
    live: LiveServer,
    call: std::thread::JoinHandle<T>,
) -> T {
    let started = Instant::now();
    live.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "the shutdown took {took:?}");
    tokio::task::spawn_blocking(move || call.join().expect("the caller's thread"))
        .await
        .expect("the test's thread")
}

/// Polls until `done` holds, panicking with `what` after 10 s.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// "At most 8 requests of one database in flight": the owner publishing a
/// new allow-list while eight wait does not let a ninth out.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_allow_list_does_not_reset_the_in_flight_cap() {
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let web = holding_server(Arc::clone(&gate));
    let live = server_reaching(web).await;
    let base = format!("http://{}", live.http_addr());
    let url = format!("http://{web}/");
    let (owner_url, hold_url) = (base.clone(), url.clone());
    tokio::task::spawn_blocking(move || {
        let owner = Http::new_identity(&owner_url);
        publish(&owner, "abuse", &web.to_string());
        let waiting: Vec<_> = (0..8)
            .map(|_| {
                let (base, url) = (owner_url.clone(), hold_url.clone());
                std::thread::spawn(move || fetch(&Http::new_identity(&base), "abuse", &url, 0))
            })
            .collect();
        wait_until("eight requests held by the server", || gate.held() == 8);

        let updated = publish(&owner, "abuse", &format!("{web},localhost:{}", web.port()));
        assert_eq!(updated["outcome"], "updated", "{updated}");
        let ninth = fetch(&owner, "abuse", &url, 300).expect_err("the ninth waits for a slot");
        assert!(
            ninth.contains("Timeout") && ninth.contains("in-flight slot"),
            "{ninth}"
        );
        assert_eq!(gate.held(), 8, "a ninth request reached the server");

        gate.set(false);
        for call in waiting {
            let answer = call.join().expect("the caller's thread");
            assert_eq!(answer.as_deref(), Ok("200 held"));
        }
        drop(owner);
    })
    .await
    .expect("the test's thread");
    live.shutdown().await;
}

/// A request with more headers than the limit (1,024, and 64 KiB of names
/// and values) is refused as `request-too-large` before anything is sent,
/// even with more than the host's header map can hold, which used to panic
/// the procedure's thread ("its thread failed"); the database goes on.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_request_headers_are_refused_before_anything_is_sent() {
    let web = http_stub::start(
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".to_vec(),
        || {},
    );
    let live = server_reaching(web.addr).await;
    let base = format!("http://{}", live.http_addr());
    let url = format!("http://{}/", web.addr);
    tokio::task::spawn_blocking(move || {
        let owner = Http::new_identity(&base);
        publish(&owner, "abuse", &web.addr.to_string());
        let call = |count: u32, value_bytes: u32| {
            let path = "/v1/database/abuse/call/fetch_with_headers";
            let body = json!([url, count, value_bytes]).to_string();
            owner
                .post(path, "application/json", body.as_bytes())
                .expect("an answer")
        };
        for (count, value_bytes, why) in [
            (40_000, 1, "40000 headers, over the limit of 1024"),
            (1_025, 1, "1025 headers, over the limit of 1024"),
            (1, 70_000, "over the limit of 64 KiB"),
        ] {
            let (status, text) = call(count, value_bytes);
            assert!(
                status != 200 && text.contains("RequestTooLarge") && text.contains(why),
                "{count} headers of {value_bytes} bytes: {status} {text}"
            );
        }
        assert!(web.requests.try_recv().is_err(), "nothing was sent");
        let (status, text) = call(1_024, 1);
        assert_eq!(
            (status, text.contains(r#""value":"200 5""#)),
            (200, true),
            "{text}"
        );
        assert_eq!(web.requests.recv().expect("a request"), "GET / HTTP/1.1");
    })
    .await
    .expect("the test's thread");
    live.shutdown().await;
}

/// Procedures waiting on a slow server each hold an instance of the
/// server's pool. Together they may hold at most a quarter of it (here 2 of
/// 8): the calls past that are refused at once, and the pool keeps room for
/// the databases, so a neighbour can still publish. (Before, eight such
/// calls filled the pool and the neighbour was refused with "the server's
/// instance pool is full".)
#[tokio::test(flavor = "multi_thread")]
async fn procedures_stuck_on_a_slow_server_leave_the_pool_to_the_databases() {
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let web = holding_server(Arc::clone(&gate));
    let live = LiveServer::start_with(&[], |config| {
        config.host.engine.http_private_override = PrivateOverride::new([web]);
        config.host.engine.max_instances = 8;
    })
    .await;
    let base = format!("http://{}", live.http_addr());
    let url = format!("http://{web}/");
    tokio::task::spawn_blocking(move || {
        let attacker = Http::new_identity(&base);
        publish(&attacker, "abuse", &web.to_string());
        let neighbour = Http::new_identity(&base);
        publish(&neighbour, "neighbour", &web.to_string());
        let (done, results) = std::sync::mpsc::channel();
        for _ in 0..8 {
            let (base, url, done) = (base.clone(), url.clone(), done.clone());
            std::thread::spawn(move || {
                let _ = done.send(fetch(&Http::new_identity(&base), "abuse", &url, 0));
            });
        }
        for _ in 0..6 {
            let refused = results
                .recv_timeout(Duration::from_secs(10))
                .expect("a refusal")
                .expect_err("refused");
            assert!(
                refused.contains("the server already runs 2 procedures at once"),
                "{refused}"
            );
        }
        wait_until("two requests held by the server", || gate.held() == 2);

        let third = publish(&neighbour, "third", "");
        assert_eq!(third["outcome"], "created", "{third}");

        gate.set(false);
        for _ in 0..2 {
            let answer = results.recv_timeout(Duration::from_secs(10));
            assert_eq!(answer.expect("an answer").as_deref(), Ok("200 held"));
        }
        assert_eq!(
            fetch(&neighbour, "neighbour", &url, 0).as_deref(),
            Ok("200 held")
        );
    })
    .await
    .expect("the test's thread");
    live.shutdown().await;
}

/// Stopping the server while a procedure waits on a server that never
/// answers stops the procedure at once: the server does not wait out the
/// request (10 s to the first byte, up to 30 s with a trickling body), and
/// the caller is told the server is shutting down.
#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_server_does_not_wait_for_a_silent_http_server() {
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let web = holding_server(Arc::clone(&gate));
    let live = server_reaching(web).await;
    let base = format!("http://{}", live.http_addr());
    let url = format!("http://{web}/");
    let held = Arc::clone(&gate);
    let call = tokio::task::spawn_blocking(move || {
        let owner = Http::new_identity(&base);
        publish(&owner, "abuse", &web.to_string());
        let call = std::thread::spawn(move || fetch(&owner, "abuse", &url, 0));
        wait_until("the request held by the server", || held.held() == 1);
        call
    })
    .await
    .expect("the test's thread");
    let answer = shut_down_under(live, call).await;
    let error = answer.expect_err("stopped");
    assert!(error.contains("the server is shutting down"), "{error}");
    gate.set(false);
}

/// Stopping the server while a procedure sleeps (a WASI clock wait, here
/// 25 s, within its 30 s deadline) wakes and stops it at once: the
/// shutdown does not wait out the sleep, and the caller is told why.
#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_server_wakes_and_stops_a_sleeping_procedure() {
    let live = LiveServer::start(&[]).await;
    stop_a_sleeping_procedure(live).await;
}

/// The same with an epoch tick longer than the test: what the procedure
/// runs after its sleep is woken meets no epoch check, as happens with
/// the usual 5 ms tick when the wake comes just after a tick. It returns
/// `"rested"` as if it had slept; the caller must still be told that it
/// was stopped.
#[tokio::test(flavor = "multi_thread")]
async fn a_procedure_woken_by_the_stop_is_stopped_even_if_it_returns_before_a_check() {
    let live = LiveServer::start_with(&[], |config| {
        config.host.engine.epoch_tick = Duration::from_secs(3_600);
    })
    .await;
    stop_a_sleeping_procedure(live).await;
}

/// Starts `nap` for 25 s on `live`, stops the server under it and checks
/// that the caller was told the procedure was stopped.
async fn stop_a_sleeping_procedure(live: LiveServer) {
    let base = format!("http://{}", live.http_addr());
    let call = tokio::task::spawn_blocking(move || {
        let owner = Http::new_identity(&base);
        owner.post_ok(
            "/v1/database/sleepy",
            "application/wasm",
            &guest_wasm("outbound-abuse"),
        );
        nap_in_background(&owner, "sleepy", 25_000)
    })
    .await
    .expect("the test's thread");
    let answer = shut_down_under(live, call).await;
    let (status, text) = answer.expect("an answer before the connection closed");
    assert_eq!(status, 422, "{text}");
    assert!(
        text.contains("the server is shutting down; procedure `nap` was stopped"),
        "{status} {text}"
    );
}

/// A procedure that finds the server's instance pool full is refused at
/// once with 503, saying so, rather than calling its database
/// unavailable: the database keeps serving, and the next call runs once
/// an instance is free.
#[tokio::test(flavor = "multi_thread")]
async fn a_procedure_finding_the_pool_full_says_so() {
    let live = LiveServer::start_with(&[], |config| {
        config.host.engine.max_instances = 8;
    })
    .await;
    let base = format!("http://{}", live.http_addr());
    tokio::task::spawn_blocking(move || {
        let owner = Http::new_identity(&base);
        // Seven databases hold seven of the eight instances.
        for name in ["sleepy", "f1", "f2", "f3", "f4", "f5", "f6"] {
            let path = format!("/v1/database/{name}");
            owner.post_ok(&path, "application/wasm", &guest_wasm("outbound-abuse"));
        }
        let first = nap_in_background(&owner, "sleepy", 5_000);
        let (status, text) = nap(&owner, "sleepy", 0).expect("an answer");
        assert_eq!(status, 503, "{text}");
        assert!(
            text.contains("the server's instance pool is full (8 instances")
                && !text.contains("unavailable"),
            "{text}"
        );
        let (status, text) = first.join().expect("the first call").expect("an answer");
        assert_eq!((status, text.contains("rested")), (200, true), "{text}");
        let (status, text) = nap(&owner, "sleepy", 0).expect("an answer");
        assert_eq!((status, text.contains("rested")), (200, true), "{text}");
    })
    .await
    .expect("the test's thread");
    live.shutdown().await;
}
