//! The log on disk stays within a bound for a database that commits many
//! transactions over few rows: a snapshot is due once the log since the
//! last one outgrows the rows, and the log behind it is dropped. (An
//! outsider's module rewriting 60 MB of rows every microsecond grew its
//! log by 16 GB in 16 s, far below `snapshot_every`, and filled the disk
//! its neighbours' logs were on.)

use super::{MemoryDisk, config, files, open, publish, values};
use crate::storage::StorageConfig;

/// The log segments left after 2,000 commits with automatic snapshots
/// every million transactions or `snapshot_log_bytes` of log.
fn segments_after_many_commits(snapshot_log_bytes: u64) -> usize {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let config = StorageConfig {
        snapshot_log_bytes,
        ..config(Some(1_000_000), 512)
    };
    let (mut db, _) = open(&disk, config.clone()).expect("open");
    for _ in 0..2_000 {
        db.commit().expect("commit");
    }
    drop(db);
    let (db, _) = open(&disk, config).expect("reopen");
    assert_eq!(values(&db.datastore), (0..2_000).collect::<Vec<_>>());
    files(&disk, "log", ".seg").len()
}

#[test]
fn a_log_that_outgrows_the_rows_is_snapshotted_and_dropped() {
    let unbounded = segments_after_many_commits(u64::MAX);
    let bounded = segments_after_many_commits(2_000);
    assert!(unbounded > 100, "{unbounded} segments without the bound");
    assert!(
        bounded <= 20,
        "{bounded} segments with snapshots every 2,000 bytes of log (against {unbounded})"
    );
}

// A database restarted before its log since the last snapshot reaches
// `snapshot_log_bytes` counts the log it replayed: each start counted
// from zero, so a database restarted often enough was snapshotted only
// every `snapshot_every` transactions (an operator's audit, from the code).
#[test]
fn the_log_replayed_at_a_restart_counts_towards_the_next_snapshot() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let config = StorageConfig {
        snapshot_log_bytes: 2_000,
        ..config(Some(1_000_000), 512)
    };
    for _ in 0..200 {
        let (mut db, _) = open(&disk, config.clone()).expect("open");
        for _ in 0..10 {
            db.commit().expect("commit");
        }
    }
    let (db, _) = open(&disk, config).expect("reopen");
    assert_eq!(values(&db.datastore), (0..2_000).collect::<Vec<_>>());
    let segments = files(&disk, "log", ".seg").len();
    assert!(segments <= 20, "{segments} segments after 200 restarts");
}
