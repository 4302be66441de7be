//! Power loss, not only process crashes (#9): a seeded workload of
//! commits, snapshots, segment rotation and module swaps runs on a
//! [`MemoryDisk`], which simulates a power cut before a random file-system
//! operation: whatever was not fsynced (file data, new files, renames and
//! removals whose directory was not fsynced) is lost or torn at an
//! arbitrary byte, possibly followed by zeros. Recovery must start (a power
//! cut never justifies a refusal) with a prefix of the transactions that
//! holds every one acknowledged under policy `Every`, and under every
//! policy every one committed before a snapshot or swap that completed;
//! the recovered database must log on and recover again.
//!
//! Policy `Nms` syncs on wall-clock time, so its window is checked
//! separately, with a cut far outside it (the random cuts would need
//! scheduling slack far larger than the window to be reliable).
//!
//! `WORLDLINE_POWER_CUTS=N` runs N cuts instead of the default.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// Cuts run by default (a few seconds on two cores).
const DEFAULT_CUTS: u64 = 300;

/// Snapshots every 5 transactions, (by seed) segments of 4 or 5 records
/// or of about 30 (so that the zeros the writer writes ahead of its
/// records outlast several syncs), and (by seed) policy `Every`, `1ms` or `none`.
fn workload_config(seed: u64) -> StorageConfig {
    StorageConfig {
        durability: match seed % 4 {
            0 => DurabilityPolicy::Interval(Duration::from_millis(1)),
            1 => DurabilityPolicy::None,
            _ => DurabilityPolicy::Every,
        },
        ..config(Some(5), if seed % 3 == 2 { 2_000 } else { 300 })
    }
}

/// Publishes a database on `disk` and runs the workload of `seed` on it,
/// with a power cut before the `cut`-th file-system operation after the
/// publication. Returns how many transactions must survive the cut: those
/// acknowledged before it under policy `Every`, and under any policy those
/// before a snapshot or swap that completed before it.
fn run_workload(disk: &MemoryDisk, seed: u64, cut: Option<u64>) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    publish(disk, b"module 0");
    if let Some(op) = cut {
        disk.arm_power_cut(op, seed);
    }
    let config = workload_config(seed);
    let every = config.durability == DurabilityPolicy::Every;
    let (mut db, _) = open(disk, config).expect("open a fresh database");
    let mut acknowledged = 0;
    let mut modules = 0;
    for _ in 0..rng.random_range(10..60) {
        match rng.random_range(0..100) {
            0..4 => {
                modules += 1;
                db.swap(format!("module {modules}").as_bytes())
                    .expect("swap");
                if disk.image().is_none() {
                    acknowledged = db.next_value;
                }
            }
            4..7 => {
                db.storage.snapshot(&db.datastore).expect("snapshot");
                if disk.image().is_none() {
                    acknowledged = db.next_value;
                }
            }
            _ => {
                let value = db.commit().expect("commit");
                if every && disk.image().is_none() {
                    acknowledged = value + 1;
                }
            }
        }
    }
    acknowledged
}

/// Counts the file-system operations of the workload of `seed` after publication.
fn operations(seed: u64) -> u64 {
    let disk = MemoryDisk::new();
    publish(&disk, b"module 0");
    let publication = disk.operations();
    let disk = MemoryDisk::new();
    run_workload(&disk, seed, None);
    disk.operations() - publication
}

#[test]
fn power_cuts_keep_every_acknowledged_transaction() {
    let cuts = std::env::var("WORLDLINE_POWER_CUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CUTS);
    let mut torn = 0;
    for seed in 0..cuts {
        let total = operations(seed);
        let at = StdRng::seed_from_u64(!seed).random_range(1..=total);
        let disk = MemoryDisk::new();
        let acknowledged = run_workload(&disk, seed, Some(at));
        // Thread timing can change the operation count a little; a cut
        // that did not happen becomes one at the end.
        let image = disk.image().unwrap_or_else(|| disk.power_cut(seed));
        let what = format!("seed {seed}, cut before operation {at} of {total}");
        let (mut db, report) =
            open(&image, workload_config(seed)).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        let recovered = values(&db.datastore);
        let count = recovered.len() as u64;
        assert_eq!(recovered, (0..count).collect::<Vec<_>>(), "{what}");
        assert!(
            count >= acknowledged,
            "{what}: {count} recovered, {acknowledged} acknowledged"
        );
        torn += u64::from(report.truncated_bytes > 0);
        for _ in 0..3 {
            db.commit()
                .unwrap_or_else(|e| panic!("{what}: commit after recovery: {e}"));
        }
        drop(db);
        let (again, _) = open(&image, workload_config(seed))
            .unwrap_or_else(|e| panic!("{what}: second recovery refused: {e}"));
        assert_eq!(
            values(&again.datastore),
            (0..count + 3).collect::<Vec<_>>(),
            "{what}: second recovery"
        );
    }
    eprintln!("{cuts} power cuts, {torn} left a torn tail, none lost an acknowledged transaction");
}

// Policy `Nms` promises that power loss loses at most the last N ms. Wall
// clock makes this a timing test, so the cut comes far outside the window
// (5 ms, cut 300 ms later): every transaction acknowledged before must
// survive; those just before a cut may be lost.
#[test]
fn an_interval_policy_loses_nothing_older_than_its_window() {
    let config = StorageConfig {
        durability: DurabilityPolicy::Interval(Duration::from_millis(5)),
        ..config(Some(5), 300)
    };
    let disk = MemoryDisk::new();
    publish(&disk, b"module 0");
    let (mut db, _) = open(&disk, config.clone()).unwrap();
    for round in 0..4 {
        for _ in 0..7 {
            db.commit().unwrap();
        }
        let acknowledged = db.next_value;
        std::thread::sleep(Duration::from_millis(300));
        let image = disk.power_cut(round);
        let (recovered, _) = open(&image, config.clone()).unwrap();
        let count = values(&recovered.datastore).len() as u64;
        assert_eq!(count, acknowledged, "round {round}");
    }
}
