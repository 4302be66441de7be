//! Persistence through the host: restart brings every database back,
//! snapshots and log compaction, torn and corrupt logs, the directory lock.

use std::path::{Path, PathBuf};

use worldline_host::{
    CallContext, CallError, DurabilityPolicy, Host, HostConfig, HostError, StorageConfig,
};
use worldline_tests::{ALICE, Account, Message, OWNER, TempDir, args, guest_wasm, rows};

fn config(snapshot_every: Option<u64>, max_segment_bytes: u64) -> HostConfig {
    HostConfig {
        storage: StorageConfig {
            durability: DurabilityPolicy::Every,
            max_segment_bytes,
            snapshot_every,
            keep_snapshots: 2,
        },
        ..HostConfig::default()
    }
}

fn balances(host: &Host) -> Vec<(u32, i64)> {
    let mut accounts: Vec<_> = rows::<Account>(host.database("bank").unwrap(), "account")
        .into_iter()
        .map(|a| (a.id, a.balance))
        .collect();
    accounts.sort();
    accounts
}

fn transfer(host: &mut Host, from: u32, to: u32, amount: i64) {
    host.database_mut("bank")
        .unwrap()
        .call_reducer(
            "transfer",
            &args(&(from, to, amount)),
            CallContext::new(ALICE),
        )
        .expect("transfer");
}

/// A bank with 3 accounts of 100 after `transfers` transfers of 1 from 0 to 1.
fn bank_with_transfers(dir: &Path, config: HostConfig, transfers: u32) -> Host {
    let mut host = Host::open(dir, config).expect("open");
    host.publish("bank", &guest_wasm("bank"), OWNER)
        .expect("publish")
        .call_reducer("seed", &args(&(3u32, 100i64)), CallContext::new(OWNER))
        .expect("seed");
    for _ in 0..transfers {
        transfer(&mut host, 0, 1, 1);
    }
    host
}

fn files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("databases/bank").join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

#[test]
fn restart_brings_back_every_database_with_its_data() {
    let dir = TempDir::new("worldline-restart");
    {
        let mut host = bank_with_transfers(dir.path(), config(None, 1 << 20), 7);
        let chat = host
            .publish("chat", &guest_wasm("chat"), OWNER)
            .expect("publish chat");
        chat.call_reducer("send_message", &args(&("hello",)), CallContext::new(ALICE))
            .unwrap();
        chat.call_reducer("send_message", &args(&("again",)), CallContext::new(ALICE))
            .unwrap();
    }
    let mut host = Host::open(dir.path(), config(None, 1 << 20)).expect("reopen");
    assert_eq!(
        host.database_names().collect::<Vec<_>>(),
        vec!["bank", "chat"]
    );
    assert_eq!(balances(&host), vec![(0, 93), (1, 107), (2, 100)]);
    let chat = host.database_mut("chat").unwrap();
    // The sequence continues where it was: the next message gets id 3.
    chat.call_reducer("send_message", &args(&("third",)), CallContext::new(ALICE))
        .unwrap();
    let ids: Vec<u64> = rows::<Message>(chat, "message")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let reports = host.recovery_reports();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        reports[0].1.replayed, 8,
        "bank replays its seed and 7 transfers: {reports:?}"
    );
}

#[test]
fn publishing_twice_or_with_a_bad_name_is_refused() {
    let dir = TempDir::new("worldline-publish");
    let mut host = Host::open(dir.path(), config(None, 1 << 20)).unwrap();
    host.publish("bank", &guest_wasm("bank"), OWNER).unwrap();
    assert!(matches!(
        host.publish("bank", &guest_wasm("bank"), OWNER),
        Err(HostError::DatabaseExists(_))
    ));
    assert!(matches!(
        host.publish("Bad/Name", &guest_wasm("bank"), OWNER),
        Err(HostError::InvalidName(_))
    ));
    assert!(matches!(
        host.publish("junk", b"not wasm", OWNER),
        Err(HostError::InvalidComponent(_))
    ));
    assert!(
        !dir.path().join("databases/junk").exists(),
        "a failed publish left files behind"
    );
}

#[test]
fn a_second_host_cannot_open_the_same_directory() {
    let dir = TempDir::new("worldline-lock");
    let _first = Host::open(dir.path(), HostConfig::default()).unwrap();
    match Host::open(dir.path(), HostConfig::default()) {
        Err(HostError::DataDirLocked(path)) => assert!(path.contains("worldline-lock")),
        Err(other) => panic!("expected the lock error, got {other}"),
        Ok(_) => panic!("two hosts opened one data directory"),
    }
}

#[test]
fn snapshots_compact_the_log_and_recovery_uses_them() {
    let dir = TempDir::new("worldline-snapshot");
    {
        let _host = bank_with_transfers(dir.path(), config(Some(10), 512), 45);
    }
    let snapshots = files(dir.path(), "snapshots");
    assert_eq!(snapshots.len(), 2, "two snapshots kept: {snapshots:?}");
    let segments = files(dir.path(), "log");
    let first_segment: u64 = segments[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        first_segment > 0,
        "segments before the oldest snapshot were removed: {segments:?}"
    );
    let host = Host::open(dir.path(), config(Some(10), 512)).unwrap();
    let report = &host.recovery_reports()[0].1;
    assert!(report.snapshot.is_some(), "{report:?}");
    assert!(
        report.replayed < 10,
        "only the log after the snapshot is replayed: {report:?}"
    );
    assert_eq!(balances(&host), vec![(0, 55), (1, 145), (2, 100)]);
}

#[test]
fn a_torn_final_record_is_cut_off_and_the_rest_recovered() {
    let dir = TempDir::new("worldline-torn");
    drop(bank_with_transfers(dir.path(), config(None, 1 << 20), 5));
    let segment = files(dir.path(), "log").pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let mut host = Host::open(dir.path(), config(None, 1 << 20)).expect("a torn tail is not fatal");
    assert!(host.recovery_reports()[0].1.truncated_bytes > 0);
    assert_eq!(
        balances(&host),
        vec![(0, 96), (1, 104), (2, 100)],
        "all but the torn transfer"
    );
    transfer(&mut host, 0, 2, 10);
    drop(host);
    let host = Host::open(dir.path(), config(None, 1 << 20)).unwrap();
    assert_eq!(balances(&host), vec![(0, 86), (1, 104), (2, 110)]);
}

#[test]
fn a_flipped_byte_mid_log_is_an_error_naming_file_and_offset() {
    let dir = TempDir::new("worldline-corrupt");
    drop(bank_with_transfers(dir.path(), config(None, 1 << 20), 5));
    let segment = files(dir.path(), "log").pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&segment, &bytes).unwrap();
    let err = match Host::open(dir.path(), config(None, 1 << 20)) {
        Err(err) => err.to_string(),
        Ok(_) => panic!("a corrupt log was accepted"),
    };
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        err.contains(name) && err.contains("corrupt at byte"),
        "{err}"
    );
}

#[test]
fn init_does_not_run_again_on_restart() {
    let dir = TempDir::new("worldline-init");
    {
        let mut host = Host::open(dir.path(), HostConfig::default()).unwrap();
        host.publish("features", &guest_wasm("features"), OWNER)
            .unwrap();
    }
    let mut host = Host::open(dir.path(), HostConfig::default()).unwrap();
    let db = host.database_mut("features").unwrap();
    // `init` inserted the observation `init_sender`; running it again would
    // fail on the duplicate key, and the table has exactly that one row.
    assert_eq!(db.rows("observation").unwrap().len(), 1);
    let result = db.call_reducer("survey", &args(&()), CallContext::new(ALICE));
    assert!(
        !matches!(result, Err(CallError::Unavailable(_))),
        "{result:?}"
    );
}

#[test]
fn identity_tokens_outlive_a_restart_and_no_other_server_accepts_them() {
    let dir = TempDir::new("worldline-identity");
    let (identity, token) = Host::open(dir.path(), HostConfig::default())
        .unwrap()
        .authority()
        .new_identity();
    let host = Host::open(dir.path(), HostConfig::default()).unwrap();
    assert_eq!(host.authority().verify(&token), Ok(identity));
    let elsewhere = TempDir::new("worldline-identity-other");
    let other = Host::open(elsewhere.path(), HostConfig::default()).unwrap();
    assert_eq!(
        other.authority().verify(&token),
        Err(worldline_host::AuthError::BadSignature)
    );
}
