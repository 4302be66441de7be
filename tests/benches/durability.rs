//! Durability benchmarks: `bank.transfer` throughput under each durability
//! policy (on real files), in process and through a real server over
//! WebSocket with pipelined clients, commit-log replay rate, and snapshot
//! write and load time. Run with
//! `cargo bench -p worldline-tests --bench durability`.
//!
//! Environment: `WORLDLINE_BENCH_TRANSFERS` (default 20000) transfers per
//! policy; `WORLDLINE_BENCH_WIRE` (default 100000) transfers per policy over
//! the wire; `WORLDLINE_BENCH_REPLAY` (default 1000000) transfers in the
//! replayed log.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rand::{Rng, SeedableRng, rngs::StdRng};
use worldline_client::{Client, ConnectOptions};
use worldline_host::{CallContext, DurabilityPolicy, Host, HostConfig, StorageConfig};
use worldline_tests::live::LiveServer;
use worldline_tests::{ALICE, OWNER, TempDir, args, guest_wasm};
use worldline_transport::ReducerStatus;

const ACCOUNTS: u32 = 100_000;
/// Connections, and calls in flight on each, for the transfers over the wire.
const CONNECTIONS: usize = 4;
const IN_FLIGHT: usize = 16;

fn env_count(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(durability: DurabilityPolicy, snapshot_every: Option<u64>) -> HostConfig {
    HostConfig {
        storage: StorageConfig {
            durability,
            snapshot_every,
            ..StorageConfig::default()
        },
        ..HostConfig::default()
    }
}

fn transfers(count: u32, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let from = rng.random_range(0..ACCOUNTS);
            let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
            args(&(from, to, 1i64))
        })
        .collect()
}

/// A host in `dir` with a seeded bank.
fn seeded(dir: &TempDir, config: HostConfig) -> Host {
    let mut host = Host::open(dir.path(), config).expect("open");
    host.publish("bank", &guest_wasm("bank"), OWNER)
        .expect("publish")
        .call_reducer(
            "seed",
            &args(&(ACCOUNTS, 1_000_000i64)),
            CallContext::new(OWNER),
        )
        .expect("seed");
    host
}

fn per_second(count: u32, elapsed: Duration) -> f64 {
    f64::from(count) / elapsed.as_secs_f64()
}

fn main() {
    let count = env_count("WORLDLINE_BENCH_TRANSFERS", 20_000);
    let calls = transfers(count, 7);
    let ctx = CallContext::new(ALICE);
    for policy in [
        DurabilityPolicy::None,
        DurabilityPolicy::Interval(Duration::from_millis(10)),
        DurabilityPolicy::Every,
    ] {
        let dir = TempDir::new("worldline-bench-durability");
        let mut host = seeded(&dir, config(policy, None));
        let db = host.database_mut("bank").unwrap();
        let started = Instant::now();
        for call in &calls {
            db.call_reducer("transfer", call, ctx).expect("transfer");
        }
        let one_by_one = started.elapsed();
        // Pipelined: commit 64 transfers, then wait once; they share fsyncs.
        let started = Instant::now();
        for batch in calls.chunks(64) {
            let mut last = None;
            for call in batch {
                last = db
                    .call_reducer_nowait("transfer", call, ctx)
                    .expect("transfer")
                    .offset;
            }
            db.wait_durable(last).expect("durable");
        }
        let pipelined = started.elapsed();
        println!(
            "durability {policy:>5}: {:>9.0} transfers/s waiting for each, {:>9.0} transfers/s pipelined 64 deep ({count} transfers each)",
            per_second(count, one_by_one),
            per_second(count, pipelined),
        );
    }

    let wire_count = env_count("WORLDLINE_BENCH_WIRE", 100_000) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for policy in [DurabilityPolicy::None, DurabilityPolicy::Every] {
        let (rate, seconds) = runtime.block_on(over_the_wire(policy, wire_count));
        println!(
            "over WebSocket, durability {policy:>5}: {rate:>9.0} transfers/s, {CONNECTIONS} connections x {IN_FLIGHT} in flight ({wire_count} transfers in {seconds:.2} s)"
        );
    }
    drop(runtime);

    let replay_count = env_count("WORLDLINE_BENCH_REPLAY", 1_000_000);
    let dir = TempDir::new("worldline-bench-replay");
    {
        let mut host = seeded(&dir, config(DurabilityPolicy::None, None));
        let db = host.database_mut("bank").unwrap();
        for call in transfers(replay_count, 11) {
            db.call_reducer("transfer", &call, ctx).expect("transfer");
        }
    }
    let log_bytes: u64 = std::fs::read_dir(dir.path().join("databases/bank/log"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let started = Instant::now();
    let host = Host::open(dir.path(), config(DurabilityPolicy::None, None)).expect("recover");
    let total = started.elapsed();
    let report = &host.recovery_reports()[0].1;
    println!(
        "replay: {} transactions ({:.1} MB of log) in {:.2} s: {:.0} tx/s, {:.1} MB/s (recovery alone {:.2} s; open incl. module compile {:.2} s)",
        report.replayed,
        log_bytes as f64 / 1e6,
        report.duration.as_secs_f64(),
        report.replayed as f64 / report.duration.as_secs_f64(),
        log_bytes as f64 / 1e6 / report.duration.as_secs_f64(),
        report.duration.as_secs_f64(),
        total.as_secs_f64(),
    );
    drop(host);

    let dir = TempDir::new("worldline-bench-snapshot");
    let mut host = seeded(&dir, config(DurabilityPolicy::Every, None));
    let started = Instant::now();
    host.database_mut("bank")
        .unwrap()
        .snapshot()
        .expect("snapshot");
    let written = started.elapsed();
    drop(host);
    let started = Instant::now();
    let host = Host::open(dir.path(), config(DurabilityPolicy::Every, None)).expect("recover");
    let loaded = started.elapsed();
    let report = &host.recovery_reports()[0].1;
    assert!(report.snapshot.is_some() && report.replayed == 0);
    println!(
        "snapshot of {ACCOUNTS} accounts: written in {:.1} ms, recovery from it {:.1} ms (open incl. module compile {:.1} ms)",
        written.as_secs_f64() * 1e3,
        report.duration.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3,
    );
}

/// Transfers through a real server (on real files) from [`CONNECTIONS`]
/// WebSocket clients keeping [`IN_FLIGHT`] calls in flight each; returns
/// transfers per second and the seconds taken.
async fn over_the_wire(policy: DurabilityPolicy, count: usize) -> (f64, f64) {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.host.storage.durability = policy;
        config.host.storage.snapshot_every = None;
    })
    .await;
    let connect = || Client::connect(ConnectOptions::websocket(live.ws_url(), "bank"));
    let seeder = connect().await.expect("connecting");
    let seeded = seeder.call("seed", &(ACCOUNTS, 1_000_000i64)).await;
    assert_eq!(seeded.expect("seeding").status, ReducerStatus::Committed);
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        clients.push(connect().await.expect("connecting"));
    }
    let per_lane = count / (CONNECTIONS * IN_FLIGHT);
    let started = Instant::now();
    let lanes = clients.iter().enumerate().flat_map(|(c, client)| {
        (0..IN_FLIGHT).map(move |lane| async move {
            let mut rng = StdRng::seed_from_u64((c * IN_FLIGHT + lane) as u64);
            for _ in 0..per_lane {
                let from = rng.random_range(0..ACCOUNTS);
                let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                let outcome = client.call("transfer", &(from, to, 1i64)).await;
                assert_eq!(outcome.expect("transfer").status, ReducerStatus::Committed);
            }
        })
    });
    join_all(lanes).await;
    let elapsed = started.elapsed();
    for client in clients {
        client.close().await;
    }
    seeder.close().await;
    live.shutdown().await;
    let done = per_lane * CONNECTIONS * IN_FLIGHT;
    (done as f64 / elapsed.as_secs_f64(), elapsed.as_secs_f64())
}
