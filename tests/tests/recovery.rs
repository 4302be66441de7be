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
            ..StorageConfig::default()
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
    resize_newest_segment(dir.path(), |len| len - 3);
    let mut host = Host::open(dir.path(), config(None, 1 << 20)).expect("a torn tail is not fatal");
    assert!(host.recovery_reports()[0].1.truncated_bytes > 0);
    assert!(
        host.recovery_reports()[0].1.torn,
        "bytes of a record were cut off"
    );
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
    // #9 item 3: Host::open names the database too.
    assert!(err.contains("database `bank`"), "{err}");
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

/// The error `Host::open` refuses `dir` with.
fn refusal(dir: &Path, config: HostConfig) -> String {
    match Host::open(dir, config) {
        Err(err) => err.to_string(),
        Ok(_) => panic!("a damaged data directory was accepted"),
    }
}

// #9 item 2: one flipped bit in a record's length field, with whole records
// after it, is refused (naming file and offset), not cut off as a torn tail.
#[test]
fn a_flipped_length_bit_is_refused_not_truncated() {
    let dir = TempDir::new("worldline-length-bit");
    drop(bank_with_transfers(dir.path(), config(None, 1 << 20), 5));
    let segment = files(dir.path(), "log").pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    // The first record's length field starts after the 28-byte segment
    // header (magic, database id, checksum); bit 20 makes the record run
    // past the end of the file.
    bytes[28 + 2] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let err = refusal(dir.path(), config(None, 1 << 20));
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        err.contains(name) && err.contains("corrupt at byte 28") && err.contains("header"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "the log was left as it was"
    );
}

// #9 item 2: a zero-filled tail (the file grew but its data never reached
// the disk) is an interrupted write: cut off, and everything before it kept.
#[test]
fn a_zero_filled_tail_is_cut_off_as_torn() {
    let dir = TempDir::new("worldline-zero-tail");
    drop(bank_with_transfers(dir.path(), config(None, 1 << 20), 5));
    let (segment, len) = resize_newest_segment(dir.path(), |len| len + 4096);
    let host = Host::open(dir.path(), config(None, 1 << 20)).expect("a zero tail is not fatal");
    assert_eq!(host.recovery_reports()[0].1.truncated_bytes, 4096);
    assert!(
        !host.recovery_reports()[0].1.torn,
        "only zeros were cut off"
    );
    assert_eq!(balances(&host), vec![(0, 95), (1, 105), (2, 100)]);
    drop(host);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), len);
}

// #9 item 9: emptying log/ while snapshots remain is refused, naming what
// is missing, instead of starting without the transactions after the snapshot.
#[test]
fn an_emptied_log_with_snapshots_is_refused() {
    let dir = TempDir::new("worldline-emptied-log");
    drop(bank_with_transfers(dir.path(), config(Some(10), 512), 25));
    for segment in files(dir.path(), "log") {
        std::fs::remove_file(segment).unwrap();
    }
    let err = refusal(dir.path(), config(Some(10), 512));
    assert!(
        err.contains("missing") && err.contains("log/ holds no segment"),
        "{err}"
    );
}

// #9 item 9: a deleted segment (here the newest, whose predecessor is sealed)
// is refused, naming the transactions that are gone.
#[test]
fn a_deleted_segment_is_refused() {
    let dir = TempDir::new("worldline-deleted-segment");
    drop(bank_with_transfers(dir.path(), config(None, 512), 25));
    let segments = files(dir.path(), "log");
    assert!(segments.len() >= 3, "{segments:?}");
    std::fs::remove_file(segments.last().unwrap()).unwrap();
    let err = refusal(dir.path(), config(None, 512));
    assert!(err.contains("missing") && err.contains("sealed"), "{err}");
    std::fs::remove_file(&segments[1]).unwrap();
    let err = refusal(dir.path(), config(None, 512));
    assert!(err.contains("missing") && err.contains(" gone"), "{err}");
}

// #9 item 8: temporary files left by interrupted writes are removed on start.
#[test]
fn stale_temporary_files_are_removed_on_start() {
    let dir = TempDir::new("worldline-stale-tmp");
    drop(bank_with_transfers(dir.path(), config(Some(10), 512), 3));
    let database = dir.path().join("databases/bank");
    let stale = [
        database.join("snapshots/.00000000000000000099.snap.tmp"),
        database.join("log/.00000000000000000099.seg.tmp"),
        database.join(".module.wasm.tmp"),
    ];
    for file in &stale {
        std::fs::write(file, b"interrupted").unwrap();
    }
    let host = Host::open(dir.path(), config(Some(10), 512)).unwrap();
    assert_eq!(balances(&host), vec![(0, 97), (1, 103), (2, 100)]);
    for file in &stale {
        assert!(!file.exists(), "{} is still there", file.display());
    }
}

/// Sets the length of the newest log segment of the database in `dir` to
/// `new_len(its length)`, as a cut-short or grown-but-unwritten file;
/// returns its path and its length before.
fn resize_newest_segment(dir: &Path, new_len: impl FnOnce(u64) -> u64) -> (PathBuf, u64) {
    let segment = files(dir, "log").pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(new_len(len))
        .unwrap();
    (segment, len)
}

// A module whose `describe` returns another schema at a start than when it
// was published (here: the record edited to say that the `account` table
// had another index) does not start: its stored rows were written for the
// published schema. The other databases serve, nothing on disk changes,
// and the database comes back once the description matches again.
#[test]
fn a_module_describing_another_schema_at_start_stays_unavailable() {
    let dir = TempDir::new("worldline-describe-changed");
    {
        let mut host = bank_with_transfers(dir.path(), config(None, 1 << 20), 3);
        host.publish("chat", &guest_wasm("chat"), OWNER)
            .expect("publish chat");
    }
    let record = dir.path().join("databases/bank/schema.json");
    let published = std::fs::read(&record).expect("publishing recorded the schema");
    let mut edited: serde_json::Value = serde_json::from_slice(&published).expect("JSON");
    let account = edited["schema"]["tables"]
        .as_array_mut()
        .expect("tables")
        .iter_mut()
        .find(|table| table["name"] == "account")
        .expect("the account table");
    account["indexes"]
        .as_array_mut()
        .expect("indexes")
        .push(serde_json::json!({"name": "by_balance", "columns": [1], "unique": false}));
    std::fs::write(&record, serde_json::to_vec(&edited).unwrap()).unwrap();
    let log_before = files(dir.path(), "log");
    let bytes_before: Vec<Vec<u8>> = log_before
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();

    let host = Host::open_available(dir.path(), config(None, 1 << 20)).expect("open");
    assert_eq!(host.database_names().collect::<Vec<_>>(), vec!["chat"]);
    let unavailable: Vec<_> = host.unavailable_databases().collect();
    assert_eq!(unavailable.len(), 1);
    assert_eq!(unavailable[0].name, "bank");
    let reason = &unavailable[0].reason;
    assert!(
        reason.contains("`describe` must be deterministic")
            && reason.contains("schema.json")
            && reason.contains("by_balance"),
        "{reason}"
    );
    drop(host);
    let bytes_after: Vec<Vec<u8>> = log_before
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(bytes_after, bytes_before, "the log was left as it was");

    std::fs::write(&record, &published).unwrap();
    let host = Host::open(dir.path(), config(None, 1 << 20)).expect("the published schema opens");
    assert_eq!(balances(&host), vec![(0, 97), (1, 103), (2, 100)]);
}
