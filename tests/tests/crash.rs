//! Crash tests with real processes: a harness process transfers money
//! through the bank module on a persistent host and reports each durable
//! transfer; the test kills it with SIGKILL at random moments, many times,
//! and checks after each restart that no money appeared or vanished and
//! that every acknowledged transfer is there.
//!
//! `WORLDLINE_CRASH_ROUNDS` sets the number of kills (default 20).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use worldline_host::{Host, HostConfig};
use worldline_tests::crash::{ACCOUNTS, DATABASE, INITIAL_BALANCE, apply, transfers};
use worldline_tests::{Account, TempDir, rows};

const HARNESS: &str = env!("CARGO_BIN_EXE_crash-harness");

/// Balances by account id after recovering the data directory.
fn recovered_balances(dir: &Path) -> Vec<i64> {
    let host = Host::open(dir, HostConfig::default()).expect("recovering the data directory");
    let db = host.database(DATABASE).expect("the bank database survives");
    let mut accounts = rows::<Account>(db, "account");
    accounts.sort_by_key(|a| a.id);
    accounts.into_iter().map(|a| a.balance).collect()
}

/// The balances after the first `count` transfers of `seed`, from `before`.
fn after_transfers(before: &[i64], seed: u64, count: usize) -> Vec<i64> {
    let mut state = before.to_vec();
    transfers(seed)
        .take(count)
        .for_each(|t| apply(&mut state, t));
    state
}

/// Runs the harness with `seed`, kills it `delay` after it is ready, and
/// returns how many transfers it acknowledged.
fn run_and_kill(dir: &Path, seed: u64, delay: Duration) -> usize {
    let mut child = Command::new(HARNESS)
        .arg(dir)
        .arg(seed.to_string())
        .arg("every")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the crash harness");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = received
        .recv_timeout(Duration::from_secs(120))
        .expect("the harness did not get ready");
    assert_eq!(first, "ready");
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaping the harness");
    reader.join().expect("reader thread");
    let acked: Vec<String> = received.try_iter().collect();
    acked.iter().filter(|l| l.starts_with("ack ")).count()
}

#[test]
fn acknowledged_transfers_survive_kill_9() {
    let rounds: u64 = std::env::var("WORLDLINE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = TempDir::new("worldline-crash");
    let mut rng = StdRng::seed_from_u64(0xC0FFEE);
    let mut before = vec![INITIAL_BALANCE; ACCOUNTS as usize];
    let mut total_acked = 0;
    for round in 0..rounds {
        let seed = 1000 + round;
        let delay = Duration::from_millis(rng.random_range(0..150));
        let acked = run_and_kill(dir.path(), seed, delay);
        total_acked += acked;
        let recovered = recovered_balances(dir.path());
        assert_eq!(
            recovered.iter().sum::<i64>(),
            i64::from(ACCOUNTS) * INITIAL_BALANCE,
            "round {round}: money appeared or vanished"
        );
        // The recovered state is the state after the first k transfers,
        // where k is at least the acknowledged count (one more transfer may
        // have become durable before its acknowledgement was printed).
        let matches = recovered == after_transfers(&before, seed, acked)
            || recovered == after_transfers(&before, seed, acked + 1);
        assert!(
            matches,
            "round {round} (killed after {delay:?}, {acked} acknowledged): the recovered balances \
             {recovered:?} are not the state after the acknowledged transfers"
        );
        before = recovered;
    }
    assert!(
        total_acked > 0,
        "no transfer was acknowledged in {rounds} rounds"
    );
    eprintln!("{rounds} kills, {total_acked} acknowledged transfers, all recovered");
}

#[test]
fn a_full_disk_stops_writes_without_losing_acknowledged_transfers() {
    let dir = TempDir::new("worldline-full-disk");
    let seed = 77;
    // Files may not grow past 6 KiB once transfers start: the first log
    // segment (16 KiB before it would rotate) fills up after a few dozen.
    let output = Command::new(HARNESS)
        .arg(dir.path())
        .arg(seed.to_string())
        .arg("every")
        .arg("6144")
        .output()
        .expect("running the crash harness");
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let acked = stdout.lines().filter(|l| l.starts_with("ack ")).count();
    let failure = stdout.lines().last().unwrap_or_default();
    assert!(
        failure.starts_with("failed: ") && failure.contains("commit log"),
        "expected a commit log failure, got {failure:?}"
    );
    assert!(acked > 0, "the limit left no room for any transfer");
    let recovered = recovered_balances(dir.path());
    let initial = vec![INITIAL_BALANCE; ACCOUNTS as usize];
    assert_eq!(
        recovered,
        after_transfers(&initial, seed, acked),
        "after the failed write, exactly the {acked} acknowledged transfers are durable"
    );
}
