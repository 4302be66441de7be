//! Scheduled and lifecycle reducers that misbehave on purpose
//! (`guest-rust/test-modules/hostile-schedule`), against a real server on
//! loopback: a job that runs until its deadline and is due again at once
//! must not lock its database's clients (its owner included) out, nor keep
//! the server from stopping; a job that fails on every run, back to back,
//! must not write a module-log line per run, and one trapping on every run
//! not a server-log line per run either. A client_disconnected that never
//! returns must not hold a stop for a deadline per connection, one that
//! fails must tell the owner in the module log, and a hot swap that stops
//! or starts a schedule must say so.

use std::time::{Duration, Instant};

use serde::Deserialize;
use worldline_client::{Client, ConnectOptions, Event};
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::process::{Http, ServerProcess};
use worldline_tests::{TempDir, guest_wasm};
use worldline_transport::ReducerStatus;

/// A row of the module's `job` table.
#[derive(Debug, Deserialize)]
struct Job {
    id: u64,
    at: i64,
    every: u64,
    mode: String,
}

/// Calls `reducer`, which must commit within `within`.
async fn commits_within(
    client: &Client,
    reducer: &str,
    args: &impl serde::Serialize,
    within: Duration,
) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(within, client.call(reducer, args))
        .await
        .unwrap_or_else(|_| panic!("`{reducer}` got no answer in {within:?}"))
        .expect("an answer");
    assert_eq!(outcome.status, ReducerStatus::Committed, "{reducer}");
    eprintln!("`{reducer}` answered in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_runs_to_its_deadline_again_and_again_leaves_room_for_calls() {
    // The tests' reducer deadline is 500 ms: each run of the job takes that long.
    let live = LiveServer::start(&[("hs", "hostile-schedule")]).await;
    let owner = live.connect_owner(Transport::WebSocket, "hs").await;
    commits_within(
        &owner,
        "schedule_in",
        &(0u64, 1u64, "spin"),
        Duration::from_secs(5),
    )
    .await;
    // Let the job start its back-to-back runs (each one stopped at the deadline).
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Each call waits for the run under way and at most the next one, not for ever.
    for _ in 0..3 {
        commits_within(&owner, "set_hooks", &("ok", "ok"), Duration::from_secs(5)).await;
    }
    let jobs = tokio::time::timeout(Duration::from_secs(5), owner.query("SELECT * FROM job"))
        .await
        .expect("a query answered while the job runs")
        .expect("the rows");
    let jobs: Vec<Job> = jobs[0]
        .rows
        .iter()
        .map(|row| postcard::from_bytes(row).expect("a job row"))
        .collect();
    assert!(
        matches!(jobs.as_slice(), [job] if job.mode == "spin" && job.every == 1 && job.id == 1 && job.at > 0),
        "{jobs:?}"
    );
    // The owner can stop it.
    commits_within(&owner, "clear_jobs", &(), Duration::from_secs(5)).await;
    owner.close().await;
    tokio::time::timeout(Duration::from_secs(15), live.shutdown())
        .await
        .expect("the server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_on_every_run_does_not_write_a_log_line_per_run() {
    let live = LiveServer::start(&[("hs", "hostile-schedule")]).await;
    let owner = live.connect_owner(Transport::WebSocket, "hs").await;
    let mut events = owner.take_events().expect("the event stream");
    owner
        .subscribe(&["SELECT * FROM job"])
        .await
        .expect("subscribing");
    let started = Instant::now();
    commits_within(
        &owner,
        "schedule_in",
        &(0u64, 1u64, "err"),
        Duration::from_secs(5),
    )
    .await;
    // Every failed run moves the row on: each is a transaction the subscriber sees.
    let mut runs = 0;
    tokio::time::timeout(Duration::from_secs(15), async {
        while runs < 300 || started.elapsed() < Duration::from_millis(1_500) {
            if let Event::TransactionUpdate { event, .. } = events.recv().await.expect("open") {
                runs += usize::from(event.reducer == "run_job");
            }
        }
    })
    .await
    .expect("hundreds of runs");
    commits_within(&owner, "clear_jobs", &(), Duration::from_secs(5)).await;
    let seconds = started.elapsed().as_secs() as usize;

    let log = live.owner_http().module_log("hs", None);
    let failures: Vec<&String> = log
        .iter()
        .filter(|line| line.starts_with("scheduled reducer `run_job` failed for row 1 of `job`"))
        .collect();
    // A burst of 10 lines, then one a second, however many runs failed.
    assert!(
        !failures.is_empty() && failures.len() <= 10 + seconds + 1,
        "{} failure lines for {runs} runs in {seconds} s: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        failures
            .iter()
            .all(|line| line.contains("failed on purpose (err)")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|line| line.contains("more failed scheduled runs since the last such line")),
        "the lines say how many runs they stand for: {failures:?}"
    );
    owner.close().await;
    live.shutdown().await;
}

#[test]
fn a_job_trapping_on_every_run_does_not_write_a_server_log_line_per_run() {
    let dir = TempDir::new("worldline-schedule-traps");
    let (server, log) = ServerProcess::start_logged(dir.path());
    let owner = Http::new_identity(&server.http);
    owner.publish("hs", &guest_wasm("hostile-schedule"));
    let token = owner.token().expect("a token").to_owned();
    let started = Instant::now();
    owner.call_ok("hs", "schedule_in", &serde_json::json!([0, 1, "trap"]));
    // Wait until the module log has counted hundreds of failed runs.
    // The count is in the last parentheses before the note: the trap's
    // own text may hold some.
    let counted = |line: &String| {
        let (before, _) = line.split_once(" more failed scheduled runs")?;
        before.rsplit_once(" (")?.1.parse::<u64>().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Http::new(&server.http, Some(&token))
        .module_log("hs", None)
        .iter()
        .filter_map(counted)
        .sum::<u64>()
        < 300
    {
        assert!(Instant::now() < deadline, "hundreds of traps in 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    owner.call_ok("hs", "clear_jobs", &serde_json::json!([]));
    let seconds = started.elapsed().as_secs() as usize;
    server.kill();

    let traps = log.assert_throttled("reducer `run_job` trapped", "traps", seconds);
    assert!(
        traps.iter().all(|line| line.contains("database{name=hs}")),
        "each line names the database: {:?}",
        &traps[..traps.len().min(3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_hook_that_never_returns_does_not_hold_the_stop_for_a_deadline_per_client() {
    // 30 clients whose `client_disconnected` each runs to the tests' 500 ms
    // deadline: 15 s if every hook ran at the stop.
    let live = LiveServer::start(&[("hs", "hostile-schedule")]).await;
    let owner = live.connect_owner(Transport::WebSocket, "hs").await;
    commits_within(&owner, "set_hooks", &("ok", "spin"), Duration::from_secs(5)).await;
    let mut clients = vec![owner];
    for _ in 0..29 {
        clients.push(live.connect_owner(Transport::WebSocket, "hs").await);
    }
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), live.shutdown())
        .await
        .expect("the server stops within the hooks' budget and one deadline");
    eprintln!("stopped in {:?}", started.elapsed());
    drop(clients);
}

#[test]
fn a_swap_that_stops_or_starts_a_schedule_lists_it_among_the_changes() {
    let dir = TempDir::new("worldline-schedule-swap");
    let server = ServerProcess::start(dir.path());
    let owner = Http::new_identity(&server.http);
    owner.publish("hs", &guest_wasm("hostile-schedule"));
    // Due in 3 s: both swaps below come first.
    owner.call_ok(
        "hs",
        "schedule_in",
        &serde_json::json!([3_000_000, 0, "ok"]),
    );
    let swap = |guest: &str| -> Vec<String> {
        let published = owner.post_ok("/v1/database/hs", "application/wasm", &guest_wasm(guest));
        assert_eq!(published["outcome"], "updated", "{published}");
        serde_json::from_value(published["changes"].clone()).expect("the changes, as lines")
    };
    let schedule = "reducer `run_job` (time `at`, interval `every`)";

    let stopped = swap("hostile-schedule-unscheduled");
    assert!(
        stopped.contains(&format!(
            "- table `job` no longer schedules {schedule} (its rows stay and do not run)"
        )),
        "{stopped:?}"
    );
    assert_eq!(owner.rows("hs", "job").len(), 1, "the row stays");

    let started = swap("hostile-schedule");
    assert!(
        started.contains(&format!("+ table `job` schedules {schedule}")),
        "{started:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !owner.rows("hs", "job").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the row runs once scheduled again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        owner.rows("hs", "ran"),
        vec![vec![serde_json::json!("ok"), serde_json::json!(1)]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_disconnect_hook_is_in_the_module_log() {
    let live = LiveServer::start(&[("hs", "hostile-schedule")]).await;
    let owner = live.connect_owner(Transport::WebSocket, "hs").await;
    commits_within(&owner, "set_hooks", &("ok", "err"), Duration::from_secs(5)).await;
    let visitor = live.connect_owner(Transport::WebSocket, "hs").await;
    visitor.close().await;
    let http = live.owner_http();
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = http.module_log("hs", None);
        if let Some(line) = log
            .into_iter()
            .find(|l| l.starts_with("client_disconnected failed"))
        {
            break line;
        }
        assert!(Instant::now() < deadline, "no line about the failed hook");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        line.contains("connection ") && line.ends_with(": failed on purpose (err)"),
        "{line}"
    );
    owner.close().await;
    live.shutdown().await;
}

/// Clients may connect and disconnect as fast as they like: a
/// `client_disconnected` failing every time writes a burst of lines to the
/// server's log, then at most one a second (it wrote one per disconnect).
#[test]
fn a_disconnect_hook_failing_every_time_does_not_write_a_server_log_line_per_client() {
    const CLIENTS: usize = 60;
    let dir = TempDir::new("worldline-disconnect-failures");
    let (server, log) = ServerProcess::start_logged(dir.path());
    let owner = Http::new_identity(&server.http);
    owner.publish("hs", &guest_wasm("hostile-schedule"));
    owner.call_ok("hs", "set_hooks", &serde_json::json!(["ok", "err"]));
    let token = owner.token().expect("a token").to_owned();
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let come_and_go = |clients: usize| {
        runtime.block_on(async {
            for _ in 0..clients {
                let options = ConnectOptions::websocket(server.ws_url(), "hs");
                let client = Client::connect(options).await.expect("a client connects");
                client.close().await;
            }
        });
    };
    // Failures the module log accounts for: its lines, and the ones each
    // line says were held back before it.
    let accounted = || -> usize {
        Http::new(&server.http, Some(&token))
            .module_log("hs", None)
            .iter()
            .filter(|line| line.starts_with("client_disconnected failed"))
            .map(|line| {
                let held_back = line
                    .rsplit_once(" (")
                    .and_then(|(_, rest)| rest.split_once(" more failed client_disconnected"))
                    .and_then(|(n, _)| n.parse::<usize>().ok());
                1 + held_back.unwrap_or(0)
            })
            .sum()
    };
    come_and_go(CLIENTS);
    // A failure after the quiet second is written with the count of the
    // ones held back before it; until the last client's is written (it may
    // be held back itself), keep coming.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut clients = CLIENTS;
    while accounted() < clients {
        assert!(Instant::now() < deadline, "the hooks ran and failed");
        std::thread::sleep(Duration::from_millis(500));
        come_and_go(1);
        clients += 1;
    }
    let seconds = started.elapsed().as_secs() as usize;
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(accounted(), clients, "every failure is accounted for");
    server.kill();

    log.assert_throttled(
        "client_disconnected failed",
        &format!("{clients} failed hooks"),
        seconds,
    );
}
