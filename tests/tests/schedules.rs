//! Scheduled reducers (`schedule-def` in `wit/worldline.wit`) with the
//! `features` module: its table `features_schedule` schedules
//! `on_schedule`, which records each run in `schedule_runs`.
//!
//! Through the host, with the time given explicitly: one-shot and
//! repeating rows, missed runs not made up, failures, cancelling, the
//! owner-only rule, the batch bound, recovery. Through a real server:
//! runs happen on their own and reach subscribers, and a server killed
//! while rows were due runs them once after its restart.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use worldline_client::{Client, Event};
use worldline_host::{
    CallContext, CallError, Database, DurabilityPolicy, Host, HostConfig, LogLevel,
    MAX_SCHEDULED_RUNS, ScheduleClocks, StorageConfig, Timestamp,
};
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::process::{Http, ServerProcess};
use worldline_tests::{
    ALICE, OWNER, TempDir, args, create_database, guest_wasm, rows, test_engine,
};
use worldline_transport::ReducerStatus;

/// A row of `features_schedule`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Schedule {
    id: u64,
    at: i64,
    every: u64,
    note: String,
}

/// A row of `schedule_runs`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
struct Run {
    id: u64,
    note: String,
    ran_at: i64,
}

/// A fixed time for the host tests: 2026-01-01T00:00:00Z.
const T: i64 = 1_767_225_600_000_000;

fn at(micros: i64) -> Timestamp {
    Timestamp::from_micros_since_epoch(micros)
}

/// Calls `schedule_in(micros, every, note)` as `caller` at time `T`.
fn schedule_in(db: &mut Database, micros: u64, every: u64, note: &str) {
    let ctx = CallContext {
        caller: ALICE,
        connection_id: None,
        timestamp: Some(at(T)),
    };
    db.call_reducer("schedule_in", &args(&(micros, every, note)), ctx)
        .expect("schedule_in");
}

fn schedules(db: &Database) -> Vec<Schedule> {
    rows(db, "features_schedule")
}

fn runs(db: &Database) -> Vec<Run> {
    rows(db, "schedule_runs")
}

#[test]
fn a_one_shot_row_runs_once_as_the_owner_and_is_deleted() {
    let mut db = create_database(&test_engine(), "features");
    assert_eq!(db.next_scheduled_at(ScheduleClocks::same(at(T))), None);
    schedule_in(&mut db, 1_000, 0, "once");
    assert_eq!(
        db.next_scheduled_at(ScheduleClocks::same(at(T))),
        Some(at(T + 1_000))
    );
    assert!(db.run_due_schedules(at(T + 999)).is_empty(), "not due yet");
    assert_eq!(schedules(&db).len(), 1);

    let ran = db.run_due_schedules(at(T + 1_000));
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].reducer, "on_schedule");
    assert_eq!(ran[0].error, None);
    let outcome = ran[0].outcome.as_ref().expect("a committed transaction");
    assert_eq!(outcome.timestamp, at(T + 1_000));
    assert_eq!(
        outcome.delta.tables.len(),
        2,
        "one transaction: the run's row inserted and the schedule row deleted"
    );
    let runs = runs(&db);
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].note.as_str(), runs[0].ran_at), ("once", T + 1_000));
    assert!(schedules(&db).is_empty(), "the one-shot row is gone");
    assert_eq!(db.next_scheduled_at(ScheduleClocks::same(at(T))), None);
    assert!(db.run_due_schedules(at(T + 10_000_000)).is_empty());
}

#[test]
fn a_repeating_row_moves_on_and_missed_runs_are_not_made_up() {
    let mut db = create_database(&test_engine(), "features");
    schedule_in(&mut db, 1_000, 500, "tick");
    assert_eq!(db.run_due_schedules(at(T + 1_000)).len(), 1);
    assert_eq!(schedules(&db)[0].at, T + 1_500, "the next interval");
    assert_eq!(
        db.next_scheduled_at(ScheduleClocks::same(at(T))),
        Some(at(T + 1_500))
    );

    // Due at T + 1_500, looked at only at T + 2_700: one run, not three,
    // and the rhythm goes on from the original time.
    assert_eq!(db.run_due_schedules(at(T + 2_700)).len(), 1);
    assert_eq!(schedules(&db)[0].at, T + 3_000);
    assert!(db.run_due_schedules(at(T + 2_999)).is_empty());
    assert_eq!(db.run_due_schedules(at(T + 3_000)).len(), 1);
    assert_eq!(schedules(&db)[0].at, T + 3_500);
    let ran_at: Vec<i64> = runs(&db).iter().map(|r| r.ran_at).collect();
    assert_eq!(ran_at, vec![T + 1_000, T + 2_700, T + 3_000]);
}

/// The wall clock set a day ahead, then back; then an hour back: the
/// repeating row keeps its interval on the steady clock each time, and its
/// time is written from the wall clock again (a server restarted later
/// finds it due on time, not a day or an hour late).
#[test]
fn a_repeating_row_keeps_its_interval_when_the_wall_clock_steps() {
    const DAY: i64 = 86_400_000_000;
    const HOUR: i64 = 3_600_000_000;
    let mut db = create_database(&test_engine(), "features");
    schedule_in(&mut db, 1_000, 500, "tick");
    let run_at = |db: &mut Database, wall: i64, steady: i64| {
        let clocks = ScheduleClocks {
            wall: at(wall),
            steady,
        };
        db.run_next_schedule(at(wall), clocks).map(|run| run.error)
    };
    assert_eq!(run_at(&mut db, T + 1_000, 0), Some(None));
    assert_eq!(schedules(&db)[0].at, T + 1_500);
    // A day ahead: due at once by the wall clock, moved on from there.
    assert_eq!(run_at(&mut db, T + DAY, 500), Some(None));
    assert_eq!(schedules(&db)[0].at, T + DAY + 500);
    // Back to the right time: due 500 µs after the last run all the same.
    assert_eq!(run_at(&mut db, T + 1_900, 999), None, "not due yet");
    assert_eq!(
        db.next_scheduled_at(ScheduleClocks {
            wall: at(T + 1_900),
            steady: 999
        }),
        Some(at(T + 1_901))
    );
    assert_eq!(run_at(&mut db, T + 1_901, 1_000), Some(None));
    assert_eq!(
        schedules(&db)[0].at,
        T + 2_401,
        "written from the wall clock"
    );
    // An hour back: the same.
    assert_eq!(run_at(&mut db, T + 2_401 - HOUR, 1_500), Some(None));
    assert_eq!(schedules(&db)[0].at, T + 2_901 - HOUR);
    assert_eq!(run_at(&mut db, T + 2_901 - HOUR, 2_000), Some(None));
    assert_eq!(runs(&db).len(), 5);
}

#[test]
fn deleting_a_row_cancels_it() {
    let mut db = create_database(&test_engine(), "features");
    schedule_in(&mut db, 1_000, 0, "cancelled");
    schedule_in(&mut db, 2_000, 0, "kept");
    let id = schedules(&db)[0].id;
    db.call_reducer("unschedule", &args(&(id,)), CallContext::new(ALICE))
        .expect("unschedule");
    assert_eq!(
        db.next_scheduled_at(ScheduleClocks::same(at(T))),
        Some(at(T + 2_000))
    );
    assert_eq!(db.run_due_schedules(at(T + 5_000)).len(), 1);
    let notes: Vec<String> = runs(&db).into_iter().map(|r| r.note).collect();
    assert_eq!(notes, vec!["kept"]);
}

#[test]
fn a_failed_run_rolls_back_but_the_row_leaves_the_schedule_and_is_logged() {
    let mut db = create_database(&test_engine(), "features");
    schedule_in(&mut db, 1_000, 0, "fail");
    schedule_in(&mut db, 1_000, 700, "fail");
    let ran = db.run_due_schedules(at(T + 1_000));
    assert_eq!(ran.len(), 2);
    for run in &ran {
        let Some(CallError::Failed(message)) = &run.error else {
            panic!("the reducer's own error: {run:?}");
        };
        assert!(message.contains("failed on purpose"), "{message}");
        assert!(
            run.outcome.is_some(),
            "the row was taken off in its own transaction"
        );
    }
    assert!(runs(&db).is_empty(), "the runs' writes rolled back");
    let left = schedules(&db);
    assert_eq!(left.len(), 1, "the one-shot row is deleted: {left:?}");
    assert_eq!(
        (left[0].id, left[0].at),
        (2, T + 1_700),
        "the repeating one moved"
    );
    assert!(
        db.run_due_schedules(at(T + 1_000)).is_empty(),
        "a failing row does not run again at once"
    );
    let log = db.log();
    let lines: Vec<&str> = log
        .records()
        .filter(|r| r.level == LogLevel::Error)
        .map(|r| r.message.as_str())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, id) in lines.iter().zip(["1", "2"]) {
        assert!(
            line.contains("on_schedule")
                && line.contains(&format!("row {id} of `features_schedule`"))
                && line.contains("failed on purpose"),
            "{line}"
        );
    }
}

#[test]
fn only_the_owner_may_call_a_scheduled_reducer() {
    let mut db = create_database(&test_engine(), "features");
    let row = Schedule {
        id: 99,
        at: T,
        every: 0,
        note: "direct".into(),
    };
    let refused = db.call_reducer("on_schedule", &args(&row), CallContext::new(ALICE));
    let Err(error @ CallError::ScheduledReducer { .. }) = refused else {
        panic!("refused: {refused:?}");
    };
    assert!(error.to_string().contains("`features_schedule`"), "{error}");
    assert!(runs(&db).is_empty());
    db.call_reducer("on_schedule", &args(&row), CallContext::new(OWNER))
        .expect("the owner may");
    assert_eq!(runs(&db)[0].note, "direct");
}

#[test]
fn one_wake_up_runs_a_bounded_batch() {
    let mut db = create_database(&test_engine(), "features");
    // A row repeating every microsecond runs once per wake-up, not forever.
    schedule_in(&mut db, 0, 1, "busy");
    for _ in 0..MAX_SCHEDULED_RUNS + 10 {
        schedule_in(&mut db, 5, 0, "batch");
    }
    let first = db.run_due_schedules(at(T + 10));
    assert_eq!(first.len(), MAX_SCHEDULED_RUNS);
    let second = db.run_due_schedules(at(T + 10));
    assert_eq!(
        second.len(),
        11,
        "the rest, and `busy` once more is not due"
    );
    assert!(db.run_due_schedules(at(T + 10)).is_empty());
    assert_eq!(db.run_due_schedules(at(T + 11)).len(), 1, "`busy` again");
}

#[test]
fn schedules_survive_a_restart_and_a_module_swap() {
    let dir = TempDir::new("worldline-schedules");
    let config = || HostConfig {
        storage: StorageConfig {
            durability: DurabilityPolicy::Every,
            ..StorageConfig::default()
        },
        ..HostConfig::default()
    };
    {
        let mut host = Host::open(dir.path(), config()).expect("open");
        let db = host
            .publish("features", &guest_wasm("features"), OWNER)
            .expect("publish");
        schedule_in(db, 1_000, 0, "once");
        schedule_in(db, 2_000, 100, "every");
        db.run_due_schedules(at(T + 1_000));
    }
    let mut host = Host::open(dir.path(), config()).expect("reopen");
    let db = host.database_mut("features").expect("recovered");
    assert_eq!(
        db.next_scheduled_at(ScheduleClocks::same(at(T))),
        Some(at(T + 2_000)),
        "rebuilt at open"
    );
    db.hot_swap(&guest_wasm("features"), Default::default())
        .expect("swap to the same module");
    assert_eq!(
        db.next_scheduled_at(ScheduleClocks::same(at(T))),
        Some(at(T + 2_000)),
        "rebuilt at swap"
    );
    assert_eq!(db.run_due_schedules(at(T + 10_050)).len(), 1);
    assert_eq!(schedules(db)[0].at, T + 10_100);
    let notes: Vec<String> = runs(db).into_iter().map(|r| r.note).collect();
    assert_eq!(notes, vec!["once", "every"]);
}

/// Waits until `check` returns something, for up to 30 seconds.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn committed(client: &Client, reducer: &str, args: &impl Serialize) {
    let outcome = client.call(reducer, args).await.expect("an answer");
    assert_eq!(outcome.status, ReducerStatus::Committed, "{reducer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_schedules_on_time_and_subscribers_see_them() {
    let live = LiveServer::start(&[("features", "features")]).await;
    for transport in Transport::BOTH {
        let client = live.connect_owner(transport, "features").await;
        let mut events = client.take_events().expect("the event stream");
        client
            .subscribe(&[
                "SELECT * FROM schedule_runs",
                "SELECT * FROM features_schedule",
            ])
            .await
            .expect("subscribing");
        let note = |kind: &str| format!("{kind} {transport:?}");
        let runs_of = |note: &str| {
            let runs = client.rows::<Run>("schedule_runs").expect("cached rows");
            runs.into_iter().filter(|r| r.note == note).count()
        };
        let row_of = |note: &str| {
            let rows = client
                .rows::<Schedule>("features_schedule")
                .expect("cached");
            rows.into_iter().find(|r| r.note == note)
        };

        // One-shot: one run, pushed to the subscriber, and the row is gone.
        committed(&client, "schedule_in", &(100_000u64, 0u64, note("once"))).await;
        let pushed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match events.recv().await.expect("the stream is open") {
                    Event::TransactionUpdate { event, .. } if event.reducer == "on_schedule" => {
                        return event;
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("the run reaches the subscriber");
        assert_eq!(pushed.caller, client.identity(), "run as the owner");
        assert_eq!(pushed.connection_id, None, "over no connection");
        assert_eq!(runs_of(&note("once")), 1);
        eventually("the one-shot row to go", || {
            row_of(&note("once")).is_none().then_some(())
        })
        .await;

        // Repeating: runs again and again, its time moving forward.
        committed(
            &client,
            "schedule_in",
            &(50_000u64, 50_000u64, note("every")),
        )
        .await;
        let first = eventually("a repeating row", || row_of(&note("every"))).await;
        eventually("three runs", || {
            (runs_of(&note("every")) >= 3).then_some(())
        })
        .await;
        let later = row_of(&note("every")).expect("still scheduled");
        assert!(later.at > first.at && (later.at - first.at) % 50_000 == 0);

        // Deleting the row cancels it: a one-shot due after the next
        // interval runs, and the cancelled row did not run meanwhile.
        committed(&client, "unschedule", &(later.id,)).await;
        let cancelled_at = runs_of(&note("every"));
        committed(&client, "schedule_in", &(200_000u64, 0u64, note("barrier"))).await;
        eventually("the barrier", || {
            (runs_of(&note("barrier")) == 1).then_some(())
        })
        .await;
        assert_eq!(
            runs_of(&note("every")),
            cancelled_at,
            "no run after the delete"
        );
        assert!(row_of(&note("every")).is_none());
        client.close().await;
    }
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_repeating_every_microsecond_does_not_starve_calls() {
    let live = LiveServer::start(&[("features", "features")]).await;
    let client = live.connect_owner(Transport::WebSocket, "features").await;
    client
        .subscribe(&["SELECT * FROM schedule_runs"])
        .await
        .expect("subscribing");
    committed(&client, "schedule_in", &(0u64, 1u64, "busy")).await;
    let runs = || client.rows::<Run>("schedule_runs").expect("cached").len();
    eventually("the busy row to run", || (runs() > 0).then_some(())).await;
    // Calls are answered while the row keeps running.
    let started = Instant::now();
    for i in 0..20u64 {
        committed(
            &client,
            "schedule_in",
            &(3_600_000_000u64, 0u64, format!("later {i}")),
        )
        .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "20 calls took {:?}",
        started.elapsed()
    );
    let before = runs();
    eventually("more busy runs", || (runs() > before).then_some(())).await;
    committed(&client, "unschedule", &(1u64,)).await;
    client.close().await;
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_may_call_a_scheduled_reducer_over_the_wire() {
    let live = LiveServer::start(&[("features", "features")]).await;
    let row = Schedule {
        id: 7,
        at: 0,
        every: 0,
        note: "direct".into(),
    };
    let stranger = live.connect(Transport::WebSocket, "features").await;
    let refused = stranger.call("on_schedule", &row).await.expect("an answer");
    let ReducerStatus::Failed(message) = refused.status else {
        panic!("refused: {refused:?}");
    };
    assert!(message.contains("features_schedule"), "{message}");
    let owner = live.connect_owner(Transport::Quic, "features").await;
    committed(&owner, "on_schedule", &row).await;
    owner.close().await;
    stranger.close().await;
    live.shutdown().await;
}

/// The `ran_at` of every run with `note`, in run order.
fn ran_at(http: &Http, note: &str) -> Vec<i64> {
    http.rows("features", "schedule_runs")
        .into_iter()
        .filter(|row| row[1] == note)
        .map(|row| row[2].as_i64().expect("a timestamp"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_due_while_the_server_was_down_run_once_after_the_restart() {
    let dir = TempDir::new("worldline-schedules-restart");
    let server = ServerProcess::start(dir.path());
    let owner = Http::new_identity(&server.http);
    owner.publish("features", &guest_wasm("features"));
    const INTERVAL: i64 = 1_000_000;
    // Due in 2 s: the server is killed well before.
    owner.call_ok("features", "schedule_in", &json!([2_000_000, 0, "once"]));
    owner.call_ok(
        "features",
        "schedule_in",
        &json!([2_000_000, INTERVAL, "every"]),
    );
    let every_at = owner
        .rows("features", "features_schedule")
        .into_iter()
        .find(|row| row[3] == "every")
        .and_then(|row| row[1].as_i64())
        .expect("the repeating row");
    server.kill();
    // Down past both rows' time and several of the repeating row's intervals.
    let down_until = every_at + 4 * INTERVAL;
    let wait = down_until - Timestamp::now().to_micros_since_epoch();
    tokio::time::sleep(Duration::from_micros(u64::try_from(wait).unwrap_or(0))).await;

    let restarting = Timestamp::now().to_micros_since_epoch();
    let server = ServerProcess::start(dir.path());
    let http = Http::new(&server.http, owner.token());
    let once = eventually("the one-shot run", || {
        let runs = ran_at(&http, "once");
        (!runs.is_empty()).then_some(runs)
    })
    .await;
    assert_eq!(once.len(), 1, "the one-shot row ran once: {once:?}");
    assert!(
        once[0] >= restarting,
        "run after the restart, not before the kill"
    );
    let every = eventually("two runs of the repeating row", || {
        let runs = ran_at(&http, "every");
        (runs.len() >= 2).then_some(runs)
    })
    .await;
    // The missed intervals were not made up: the second run waited for the
    // rhythm of the original time, not a burst of catch-up runs.
    assert!(
        every[1] - every[0] >= INTERVAL / 2,
        "one run after the restart, then the rhythm: {every:?}"
    );
    let row = http
        .rows("features", "features_schedule")
        .into_iter()
        .find(|row| row[3] == "every")
        .expect("still scheduled");
    let next = row[1].as_i64().expect("a timestamp");
    assert!(next > every[1], "moved past the last run");
    assert_eq!((next - every_at) % INTERVAL, 0, "on the original rhythm");
    assert!(
        http.rows("features", "features_schedule")
            .iter()
            .all(|row| row[3] != "once")
    );
}
