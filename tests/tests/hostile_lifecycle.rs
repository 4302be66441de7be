//! Lifecycle hooks and scheduled reducers that run out of time, memory or
//! stack on purpose (`guest-rust/test-modules/hostile-init` and
//! `hostile-schedule`), and hot swaps to modules that cannot start or
//! describe themselves: whoever triggered the call gets an error naming
//! what ran out, nothing the call wrote is committed, nothing is left
//! half-applied on disk, and the database keeps serving on a fresh instance.

use std::path::Path;
use std::time::{Duration, Instant};

use worldline_client::{Client, ClientError};
use worldline_host::{
    CallContext, CallError, Database, DurabilityPolicy, Host, HostConfig, HostError, Identity,
    ScheduleClocks, StorageConfig, Timestamp,
};
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::process::{Http, ServerProcess};
use worldline_tests::{OWNER, TempDir, guest_wasm, test_engine_config};
use worldline_transport::ReducerStatus;

/// The tests' memory limit (`test_engine_config`).
const MEMORY_LIMIT: &str = "memory limit of 67108864 bytes";

fn config() -> HostConfig {
    HostConfig {
        engine: test_engine_config(),
        storage: StorageConfig {
            durability: DurabilityPolicy::Every,
            max_segment_bytes: 1 << 20,
            snapshot_every: None,
            keep_snapshots: 1,
            ..StorageConfig::default()
        },
    }
}

/// The names under `databases/` of the data directory `dir`.
fn database_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("databases"))
        .map(|entries| {
            entries
                .map(|e| {
                    e.expect("an entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The last module-log line after calling `count_seeded`.
fn seeded(db: &mut Database) -> String {
    db.call_reducer(
        "count_seeded",
        &[],
        CallContext::new(Identity::from_bytes([9; 32])),
    )
    .expect("count_seeded commits");
    let log = db.log();
    log.records().last().expect("a log line").message.clone()
}

#[test]
fn an_init_that_fails_or_runs_out_of_time_memory_or_stack_creates_no_database() {
    let dir = TempDir::new("worldline-hostile-init");
    let wasm = guest_wasm("hostile-init");
    {
        let mut host = Host::open(dir.path(), config()).expect("opening the host");
        // The owner's first byte picks what `init` does after writing a row.
        for (byte, what) in [
            (1u8, "trap"),
            (2, "err"),
            (3, "loop"),
            (4, "out of memory"),
            (5, "out of stack"),
        ] {
            let error = host
                .publish("db", &wasm, Identity::from_bytes([byte; 32]))
                .map(drop)
                .expect_err("init fails");
            let HostError::InitFailed(cause) = &error else {
                panic!("{what}: not an init failure: {error:?}");
            };
            let message = error.to_string();
            assert!(
                message.starts_with("the module's init reducer failed: "),
                "{what}: {message}"
            );
            match byte {
                1 => assert!(matches!(cause, CallError::Trapped(_)), "{what}: {cause:?}"),
                // A Rust module's stack is in linear memory: its overflow is
                // an out-of-bounds access, named for what it most likely is.
                5 => assert!(
                    matches!(cause, CallError::Trapped(_))
                        && message.contains("most likely the module's stack overflowed"),
                    "{what}: {message}"
                ),
                2 => assert!(
                    message.ends_with("init failed on purpose"),
                    "{what}: {message}"
                ),
                3 => assert!(
                    matches!(cause, CallError::DeadlineExceeded(_)) && message.contains("500ms"),
                    "{what}: {message}"
                ),
                _ => assert!(
                    matches!(cause, CallError::OutOfMemory { .. })
                        && message.contains(MEMORY_LIMIT),
                    "{what}: {message}"
                ),
            }
            assert!(host.database("db").is_none(), "{what}: a database");
            assert_eq!(database_dirs(dir.path()), Vec::<String>::new(), "{what}");
        }
        // The name is free, and an `init` that succeeds commits its row once.
        let db = host
            .publish("db", &wasm, Identity::from_bytes([9; 32]))
            .expect("an init that returns ok");
        assert_eq!(seeded(db), "1 seeded");
    }
    let mut host = Host::open(dir.path(), config()).expect("reopening the host");
    assert_eq!(host.database_names().collect::<Vec<_>>(), ["db"]);
    assert_eq!(host.unavailable_databases().count(), 0);
    assert_eq!(seeded(host.database_mut("db").expect("db")), "1 seeded");
}

#[test]
fn a_swap_to_a_module_that_cannot_start_or_describe_changes_nothing_on_disk() {
    let dir = TempDir::new("worldline-hostile-swap");
    let wasm = guest_wasm("hostile-init");
    {
        let mut host = Host::open(dir.path(), config()).expect("opening the host");
        let db = host
            .publish("db", &wasm, Identity::from_bytes([9; 32]))
            .expect("publishing");
        for (guest, expected) in [
            ("hostile-start", "500ms deadline"),
            (
                "hostile-describe",
                "describe did not return within the 500ms deadline",
            ),
            (
                "describe-panics",
                "panicked: this type refuses to describe itself",
            ),
        ] {
            let error = db
                .hot_swap(&guest_wasm(guest), worldline_host::SwapPolicy::Additive)
                .map(drop)
                .expect_err("the swap is refused");
            assert!(error.to_string().contains(expected), "{guest}: {error}");
            assert_eq!(seeded(db), "1 seeded", "{guest}: the old module serves");
        }
    }
    assert_eq!(
        std::fs::read(dir.path().join("databases/db/module.wasm")).expect("module.wasm"),
        wasm,
        "the old module stays on disk"
    );
    let mut host = Host::open(dir.path(), config()).expect("reopening the host");
    assert_eq!(host.unavailable_databases().count(), 0);
    assert_eq!(seeded(host.database_mut("db").expect("db")), "1 seeded");
}

async fn commit(client: &Client, reducer: &str, args: &impl serde::Serialize) {
    let outcome = tokio::time::timeout(Duration::from_secs(10), client.call(reducer, args))
        .await
        .unwrap_or_else(|_| panic!("`{reducer}` got no answer"))
        .expect("an answer");
    assert_eq!(outcome.status, ReducerStatus::Committed, "{reducer}");
}

/// Waits for a module-log line that starts with `prefix` and is not one of
/// the first `seen` lines, and returns it.
async fn log_line(http: &Http, seen: usize, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = http.module_log("hs", None);
        if let Some(line) = log.iter().skip(seen).find(|l| l.starts_with(prefix)) {
            return line.clone();
        }
        assert!(Instant::now() < deadline, "no `{prefix}` line in {log:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (How a hook or job misbehaves, what the error says.)
const EXHAUSTIONS: [(&str, &str); 3] = [
    ("oom", MEMORY_LIMIT),
    ("spin", "ran longer than its 500ms deadline"),
    (
        "stack",
        "the module trapped: wasm trap: out of bounds memory access",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_hook_that_runs_out_of_memory_time_or_stack_refuses_the_client_and_commits_nothing()
 {
    let live = LiveServer::start(&[("hs", "hostile-schedule")]).await;
    let http = live.owner_http();
    let owner = live.connect_owner(Transport::WebSocket, "hs").await;
    for (mode, expected) in EXHAUSTIONS {
        commit(&owner, "set_hooks", &(mode, "ok")).await;
        for transport in [Transport::WebSocket, Transport::Quic] {
            match Client::connect(live.connect_options(transport, "hs"))
                .await
                .map(drop)
            {
                Err(ClientError::Rejected(reason)) => assert!(
                    reason.starts_with("the module refused the connection: ")
                        && reason.contains(expected),
                    "{mode} over {transport:?}: {reason}"
                ),
                other => panic!("{mode} over {transport:?}: {other:?}"),
            }
        }
    }
    // Only the owner's connection committed its `client_connected` run.
    let visits = tokio::task::block_in_place(|| http.rows("hs", "visits"));
    assert_eq!(visits, [[0, 1, 0]]);
    // A fresh instance lets the next client in.
    commit(&owner, "set_hooks", &("ok", "ok")).await;
    let visitor = live.connect(Transport::Quic, "hs").await;
    let visits = tokio::task::block_in_place(|| http.rows("hs", "visits"));
    assert_eq!(visits, [[0, 2, 0]]);
    visitor.close().await;
    owner.close().await;
    live.shutdown().await;
}

// A hot swap that adds the lifecycle hooks: a client connected before it
// was never seen by `client_connected`, so `client_disconnected` does not
// run when it leaves (an outsider's presence table got a departure with
// no arrival); a client connected after the swap gets both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_added_by_a_swap_do_not_see_earlier_clients_leave() {
    let live = LiveServer::start(&[("hs", "hostile-schedule-unscheduled")]).await;
    let http = live.owner_http();
    let before = live.connect(Transport::WebSocket, "hs").await;
    let wasm = guest_wasm("hostile-schedule");
    let (status, body) = tokio::task::block_in_place(|| {
        http.post("/v1/database/hs", "application/wasm", &wasm)
            .expect("the swap is answered")
    });
    assert_eq!(status, 200, "{body}");
    let after = live.connect(Transport::Quic, "hs").await;
    let visits = || tokio::task::block_in_place(|| http.rows("hs", "visits"));
    assert_eq!(visits(), [[0, 1, 0]]);

    before.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    after.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while visits() == [[0, 1, 0]] {
        assert!(
            Instant::now() < deadline,
            "the later client's hook never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        visits(),
        [[0, 1, 1]],
        "only the greeted client's departure counts"
    );
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_hooks_and_jobs_that_run_out_of_memory_time_or_stack_are_logged_and_rolled_back()
{
    let live = LiveServer::start(&[("hs", "hostile-schedule")]).await;
    let http = live.owner_http();
    let owner = live.connect_owner(Transport::WebSocket, "hs").await;
    for (mode, expected) in EXHAUSTIONS {
        commit(&owner, "set_hooks", &("ok", mode)).await;
        let seen = tokio::task::block_in_place(|| http.module_log("hs", None).len());
        let visitor = live.connect(Transport::WebSocket, "hs").await;
        visitor.close().await;
        let line = log_line(&http, seen, "client_disconnected failed").await;
        assert!(line.contains(expected), "{mode}: {line}");

        let seen = tokio::task::block_in_place(|| http.module_log("hs", None).len());
        commit(&owner, "schedule_in", &(0u64, 0u64, mode)).await;
        let line = log_line(&http, seen, "scheduled reducer `run_job` failed").await;
        assert!(line.contains(expected), "{mode}: {line}");
    }
    let (ran, visits) =
        tokio::task::block_in_place(|| (http.rows("hs", "ran"), http.rows("hs", "visits")));
    assert_eq!(
        ran,
        Vec::<Vec<serde_json::Value>>::new(),
        "no failed run committed"
    );
    // The owner and three visitors connected; no disconnection committed.
    assert_eq!(visits, [[0, 4, 0]]);
    // The database serves on: a job that returns ok commits.
    commit(&owner, "schedule_in", &(0u64, 0u64, "ok")).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::task::block_in_place(|| http.rows("hs", "ran")).is_empty() {
        assert!(Instant::now() < deadline, "the ok job ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    owner.close().await;
    live.shutdown().await;
}

/// A module whose constructor traps on every other instantiation or so
/// (`hostile-restart`): after each trap the database's instance is rebuilt,
/// which fails as often as not, and each call while it is down tries
/// again. That used to write a server-log line per attempt; now a burst,
/// then at most one a second with the count of the rest.
#[test]
fn a_module_that_often_fails_to_restart_does_not_write_a_server_log_line_per_attempt() {
    const CALLS: usize = 300;
    let dir = TempDir::new("worldline-hostile-restart");
    let (server, log) = ServerProcess::start_logged(dir.path());
    let owner = Http::new_identity(&server.http);
    let wasm = guest_wasm("hostile-restart");
    // Its first instantiation must succeed too: try until it does.
    let published = (0..60).any(|_| {
        let (status, _) = owner
            .post("/v1/database/rs", "application/wasm", &wasm)
            .expect("an answer");
        status == 201
    });
    assert!(published, "60 coin tosses all came up trap");
    let started = Instant::now();
    let mut down = 0;
    for _ in 0..CALLS {
        let (status, body) = owner
            .post("/v1/database/rs/call/trap", "application/json", b"[]")
            .expect("an answer");
        assert!(status >= 400, "{status} {body}");
        if body.contains("could not be restarted after a trap") {
            down += 1;
            if down == 1 {
                // The listing says so, until a call restarts it.
                let (_, listed) = owner.get("/v1/database/rs").expect("an answer");
                assert!(
                    listed.contains("it refuses calls for now: the module could not be restarted"),
                    "{listed}"
                );
            }
        }
    }
    let seconds = started.elapsed().as_secs() as usize;
    // About half of the calls find the database down; each of those, and
    // about half of the others (after their trap), failed a restart.
    assert!(down > CALLS / 10, "{down} of {CALLS} calls found it down");
    server.kill();

    log.assert_throttled(
        "could not rebuild the module instance",
        &format!("{down}+ failed restarts"),
        seconds,
    );
}

/// A `hostile-restart` database, created on a coin toss that let its
/// first instance start.
fn restart_database(engine: &worldline_host::Engine) -> Database {
    let wasm = guest_wasm("hostile-restart");
    (0..60)
        .find_map(|_| Database::create(engine, &wasm, OWNER).ok())
        .expect("60 coin tosses all came up trap")
}

/// A module whose restart after a trap failed used to stay down for its
/// schedules until a client's call restarted it: its due rows did not run,
/// and a server's database thread was never woken for them. Now the
/// scheduler tries a restart for a due row (at most once a second).
#[test]
fn a_module_that_failed_to_restart_is_restarted_for_its_due_rows() {
    let engine = worldline_tests::test_engine();
    let mut db = restart_database(&engine);
    let owner = CallContext::new(OWNER);
    db.call_reducer("schedule", &worldline_tests::args(&(0u64,)), owner)
        .expect("scheduling a run due now");
    // Trap until the restart after a trap fails (a coin toss each time).
    let down = (0..60).any(|_| {
        let _ = db.call_reducer("trap", &[], owner);
        db.unavailable().is_some()
    });
    assert!(down, "60 restarts in a row succeeded");
    assert!(
        db.next_scheduled_at(ScheduleClocks::now()).is_some(),
        "the due row does not wake the database while its module is down"
    );
    // Each batch (a second apart, past the retry time) tries a restart.
    let ran = (1..=60).any(|i| {
        let later = Timestamp::now().to_micros_since_epoch() + i * 2_000_000;
        db.run_due_schedules(Timestamp::from_micros_since_epoch(later));
        db.rows("ticked").expect("rows").len() == 1
    });
    assert!(ran, "the due row never ran");
    assert_eq!(db.unavailable(), None);
}

/// After a failed restart, calls used to try again at once, each of them:
/// a module whose start runs long before it fails (`hostile-restart`
/// spins 50 ms) cost every call that long on the database's thread. Now
/// calls are refused at once until four times the failed attempt has
/// passed, then one tries again.
#[test]
fn calls_do_not_retry_a_slow_failed_restart_at_once() {
    let engine = worldline_tests::test_engine();
    let mut db = restart_database(&engine);
    let owner = CallContext::new(OWNER);
    let later = worldline_tests::args(&(3_600_000_000u64,));
    let down = (0..60).any(|_| {
        let _ = db.call_reducer("trap", &[], owner);
        db.unavailable().is_some()
    });
    assert!(down, "60 restarts in a row succeeded");
    let failed_at = Instant::now();
    // Each restart is a coin toss: twenty calls that all find the module
    // down tried none (or lost twenty tosses, one chance in a million).
    for _ in 0..20 {
        let error = db
            .call_reducer("schedule", &later, owner)
            .expect_err("refused while the module is down");
        assert!(
            error
                .to_string()
                .contains("could not be restarted after a trap"),
            "{error}"
        );
    }
    // They were refused without trying (each try takes 50 ms or more).
    assert!(
        failed_at.elapsed() < Duration::from_millis(150),
        "the refusals took {:?}",
        failed_at.elapsed()
    );
    // Later, calls try again until a coin toss lets one through.
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.call_reducer("schedule", &later, owner).is_err() {
        assert!(Instant::now() < deadline, "the module never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(db.unavailable(), None);
}

/// A module whose `describe` reads the clock (`hostile-describe-clock`)
/// describes another schema on every instance. It used to be published
/// and swapped in, and then its database did not open at the next server
/// start; now both are refused, naming the difference, and nothing of it
/// stays on disk.
#[test]
fn a_module_whose_describe_is_not_deterministic_is_refused_at_publish_and_swap() {
    let dir = TempDir::new("worldline-describe-clock");
    let clock = guest_wasm("hostile-describe-clock");
    let assert_refused = |error: HostError, what: &str| {
        let message = error.to_string();
        assert!(
            matches!(error, HostError::DescribeNondeterministic(_))
                && message.contains("`describe` must be deterministic")
                && message.contains("take_stamped"),
            "{what}: {message}"
        );
        // Each line of what changed is cut like a quoted name.
        assert!(
            message.lines().all(|line| line.chars().count() <= 201),
            "{what}: {message}"
        );
    };
    {
        let mut host = Host::open(dir.path(), config()).expect("opening the host");
        let error = host
            .publish("clock", &clock, OWNER)
            .map(drop)
            .expect_err("publishing is refused");
        assert_refused(error, "publish");
        assert_eq!(database_dirs(dir.path()), Vec::<String>::new());
        let db = host
            .publish(
                "db",
                &guest_wasm("hostile-init"),
                Identity::from_bytes([9; 32]),
            )
            .expect("publishing");
        let error = db
            .hot_swap(&clock, worldline_host::SwapPolicy::Additive)
            .map(drop)
            .expect_err("the swap is refused");
        assert_refused(error, "swap");
        assert_eq!(seeded(db), "1 seeded", "the old module serves");
    }
    let mut host = Host::open(dir.path(), config()).expect("reopening the host");
    assert_eq!(host.unavailable_databases().count(), 0);
    assert_eq!(host.database_names().collect::<Vec<_>>(), ["db"]);
    assert_eq!(seeded(host.database_mut("db").expect("db")), "1 seeded");
}
