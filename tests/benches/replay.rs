//! Recovery and publish benchmarks (#10 item 6): how fast a restarted host
//! replays a commit log of `bank.transfer` transactions (no snapshot), and
//! how long publishing the bank module takes with an empty compiled-component
//! cache and with a warm one. Run with
//! `cargo bench -p worldline-tests --bench replay`.
//!
//! Environment: `WORLDLINE_BENCH_REPLAY` (default 200000) transfers in the
//! replayed log; `WORLDLINE_BENCH_ROUNDS` (default 3) recoveries timed.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use worldline_host::{CallContext, DurabilityPolicy, Host, HostConfig, StorageConfig};
use worldline_tests::{ALICE, OWNER, TempDir, args, guest_wasm};

const ACCOUNTS: u32 = 100_000;

fn env_count(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux),
/// so the replay rate can be read apart from other load on the machine.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn config() -> HostConfig {
    HostConfig {
        storage: StorageConfig {
            durability: DurabilityPolicy::None,
            snapshot_every: None,
            ..StorageConfig::default()
        },
        ..HostConfig::default()
    }
}

fn main() {
    let count = env_count("WORLDLINE_BENCH_REPLAY", 200_000);
    let rounds = env_count("WORLDLINE_BENCH_ROUNDS", 3);
    let wasm = guest_wasm("bank");
    let dir = TempDir::new("worldline-bench-replay");
    {
        let mut host = Host::open(dir.path(), config()).expect("open");
        let db = host.publish("bank", &wasm, OWNER).expect("publish");
        db.call_reducer(
            "seed",
            &args(&(ACCOUNTS, 1_000_000i64)),
            CallContext::new(OWNER),
        )
        .expect("seed");
        let mut rng = StdRng::seed_from_u64(11);
        let ctx = CallContext::new(ALICE);
        for _ in 0..count {
            let from = rng.random_range(0..ACCOUNTS);
            let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
            db.call_reducer("transfer", &args(&(from, to, 1i64)), ctx)
                .expect("transfer");
        }
    }
    let log_bytes: u64 = std::fs::read_dir(dir.path().join("databases/bank/log"))
        .expect("log dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    for round in 1..=rounds {
        let (started, cpu) = (Instant::now(), thread_cpu());
        let host = Host::open(dir.path(), config()).expect("recover");
        let (open, cpu) = (started.elapsed(), thread_cpu().zip(cpu).map(|(b, a)| b - a));
        let report = &host.recovery_reports()[0].1;
        let on_cpu = cpu.map_or(String::new(), |cpu| {
            format!(
                "; whole open {:.3} s of CPU: {:.0} tx per CPU second",
                cpu.as_secs_f64(),
                report.replayed as f64 / cpu.as_secs_f64()
            )
        });
        println!(
            "replay round {round}: {} transactions ({:.1} MB of log) in {:.3} s: {:.0} tx/s \
             (host open incl. module load {:.3} s{on_cpu})",
            report.replayed,
            log_bytes as f64 / 1e6,
            report.duration.as_secs_f64(),
            report.replayed as f64 / report.duration.as_secs_f64(),
            open.as_secs_f64(),
        );
    }

    let dir = TempDir::new("worldline-bench-publish");
    let mut host = Host::open(dir.path(), config()).expect("open");
    for attempt in ["first (empty cache)", "second (same component)"] {
        let started = Instant::now();
        host.publish("bank", &wasm, OWNER).expect("publish");
        println!(
            "publish bank, {attempt}: {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        host.delete_database("bank").expect("delete");
    }
}
