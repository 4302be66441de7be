//! Fault injection (#9, "fault injection for storage", items 2, 8 and 9):
//! every bit of every file flipped, every file truncated at every byte,
//! zero-filled tails, dropped segments and snapshots. Recovery must either
//! restore every acknowledged transaction or refuse to start with a typed
//! error; it must never start with less.

use super::*;

const TRANSACTIONS: u64 = 7;

/// The bytes of a segment's header (format 3: magic, database id, checksum).
const HEADER: usize = super::super::database_id::HEADER_BYTES;

fn all() -> Vec<u64> {
    (0..TRANSACTIONS).collect()
}

/// Small segments (two or three records each), no snapshots.
fn log_only() -> MemoryDisk {
    database_with(TRANSACTIONS, config(None, 150))
}

/// Small segments and a snapshot every 2 transactions (two kept).
fn with_snapshots() -> MemoryDisk {
    database_with(TRANSACTIONS, config(Some(2), 150))
}

/// Recovers `disk`: `Ok(values)` or the refusal. Panics on anything else.
fn recover(disk: &MemoryDisk, what: &str) -> Result<Vec<u64>, StorageError> {
    match open(disk, config(None, 150)) {
        Ok((db, _)) => Ok(values(&db.datastore)),
        Err(e) if is_refusal(&e) => Err(e),
        Err(e) => panic!("{what}: recovery failed with an IO error: {e}"),
    }
}

/// Every file of a database, as (directory, name).
fn every_file(disk: &MemoryDisk) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for name in files(disk, "log", ".seg") {
        found.push(("log", name));
    }
    for name in files(disk, "snapshots", ".snap") {
        found.push(("snapshots", name));
    }
    found
}

/// Flips each bit of each file of `disk` in turn; returns (recovered, refused) counts.
fn flip_every_bit(disk: &MemoryDisk) -> (usize, usize) {
    let (mut recovered, mut refused) = (0, 0);
    for_each_flipped_bit(disk, |flipped| {
        match recover(&flipped.disk, &flipped.what) {
            Ok(values) => {
                assert_eq!(values, all(), "{}: started with less", flipped.what);
                recovered += 1;
            }
            Err(_) => refused += 1,
        }
    });
    (recovered, refused)
}

// #9 item 2: a flipped bit anywhere in a record, including a length field
// and the final record, is refused, never taken for a torn tail.
#[test]
fn every_flipped_bit_in_the_log_is_refused() {
    let disk = log_only();
    assert!(files(&disk, "log", ".seg").len() >= 3, "several segments");
    let (recovered, refused) = flip_every_bit(&disk);
    assert_eq!(
        recovered, 0,
        "every flip in a log without snapshots is refused"
    );
    assert!(refused > 2000, "{refused} flips");
    eprintln!("{refused} flipped bits, all refused");
}

// A damaged snapshot is skipped for an older one (or the log); damage the
// log still needs is refused.
#[test]
fn every_flipped_bit_with_snapshots_recovers_everything_or_is_refused() {
    let disk = with_snapshots();
    assert_eq!(files(&disk, "snapshots", ".snap").len(), 2);
    let (recovered, refused) = flip_every_bit(&disk);
    assert!(
        recovered > 0 && refused > 0,
        "{recovered} recovered, {refused} refused"
    );
    eprintln!("{recovered} flipped bits recovered everything, {refused} refused");
}

/// How many transactions the log holds if the newest segment, `name`, keeps
/// only its first `len` bytes, and where its last whole record ends.
fn whole_records_before(disk: &MemoryDisk, name: &str, len: usize) -> (u64, usize) {
    let bytes = get(disk, "log", name);
    let first: u64 = name.trim_end_matches(".seg").parse().expect("segment name");
    let (frames, _) = super::super::frame::read_frames(&bytes[HEADER..len.max(HEADER)]);
    let end = frames.last().map_or(HEADER, |(at, payload)| {
        HEADER + at + super::super::frame::FRAME_HEADER + payload.len() + 1
    });
    (first + frames.len() as u64, end)
}

// #9 item 2: a log cut at any byte (an interrupted write) starts with
// every whole record before the cut; a cut inside an older segment or a
// snapshot's loss is refused or harmless.
#[test]
fn a_log_cut_at_any_byte_keeps_every_whole_record_or_is_refused() {
    for disk in [log_only(), with_snapshots()] {
        let segments = files(&disk, "log", ".seg");
        let newest = segments.last().expect("a segment").clone();
        for (dir, name) in every_file(&disk) {
            let clean = get(&disk, dir, &name);
            for len in 0..clean.len() {
                let cut = copy(&disk);
                put(&cut, dir, &name, &clean[..len]);
                let what = format!("{dir}/{name} cut at {len}");
                match recover(&cut, &what) {
                    Ok(values) if dir == "log" && name == newest => {
                        let (kept, _) = whole_records_before(&disk, &name, len);
                        assert_eq!(values, (0..kept).collect::<Vec<_>>(), "{what}");
                    }
                    Ok(values) => assert_eq!(values, all(), "{what}: started with less"),
                    Err(e) => assert!(
                        !(dir == "log" && name == newest && len >= HEADER),
                        "{what}: a torn tail was refused: {e}"
                    ),
                }
            }
        }
    }
}

// #9 item 2: a zero-filled tail (the file grew but the data never reached
// the disk) is a torn tail, wherever the zeros start.
#[test]
fn a_zero_filled_tail_is_a_torn_tail() {
    let disk = log_only();
    let newest = files(&disk, "log", ".seg").pop().expect("a segment");
    let clean = get(&disk, "log", &newest);
    for start in HEADER..=clean.len() {
        for extra in [0, 1, 13, 100] {
            let zeroed = copy(&disk);
            let mut bytes = clean[..start].to_vec();
            bytes.resize(clean.len() + extra, 0);
            put(&zeroed, "log", &newest, &bytes);
            let what = format!("zeros from byte {start}, {extra} more");
            let (db, report) =
                open(&zeroed, config(None, 150)).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
            let (kept, end) = whole_records_before(&disk, &newest, start);
            assert_eq!(
                values(&db.datastore),
                (0..kept).collect::<Vec<_>>(),
                "{what}"
            );
            assert_eq!(report.truncated_bytes, (bytes.len() - end) as u64, "{what}");
        }
    }
}

// #9 item 9: deleting any segment is refused (a deleted newest segment
// leaves its predecessor sealed), unless a snapshot holds everything it did.
#[test]
fn a_dropped_segment_is_refused() {
    for (disk, snapshots) in [(log_only(), false), (with_snapshots(), true)] {
        for name in files(&disk, "log", ".seg") {
            let dropped = copy(&disk);
            dropped.root().subdir("log").unwrap().remove(&name).unwrap();
            match recover(&dropped, &name) {
                Ok(values) => {
                    assert!(snapshots, "dropping {name} was not noticed");
                    assert_eq!(values, all(), "dropping {name}");
                }
                Err(e) => assert!(matches!(e, StorageError::Missing(_)), "{name}: {e}"),
            }
        }
    }
}

// #9 item 9: emptying log/ while snapshots remain is refused, naming what is missing.
#[test]
fn an_emptied_log_with_snapshots_is_refused() {
    let disk = with_snapshots();
    let emptied = copy(&disk);
    let log = emptied.root().subdir("log").unwrap();
    for name in files(&disk, "log", ".seg") {
        log.remove(&name).unwrap();
    }
    match recover(&emptied, "emptied log") {
        Err(StorageError::Missing(message)) => {
            assert!(message.contains("log/ holds no segment"), "{message}")
        }
        other => panic!("an emptied log was accepted: {other:?}"),
    }
}

/// A database of `TRANSACTIONS` inserts whose module was then swapped,
/// with one insert after the swap: its swap snapshot is the only one.
fn swapped() -> MemoryDisk {
    let disk = database_with(TRANSACTIONS, config(None, 1 << 20));
    let (mut db, _) = open(&disk, config(None, 1 << 20)).unwrap();
    db.swap(b"module two").unwrap();
    db.commit().unwrap();
    drop(db);
    disk
}

/// Flips a bit near the end of file `dir/name` of `disk`.
fn damage(disk: &MemoryDisk, dir: &str, name: &str) {
    let mut bytes = get(disk, dir, name);
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    put(disk, dir, name, &bytes);
}

// A swap keeps only the new module's snapshot and segments, so the log
// before that snapshot is gone; the snapshot has a second copy, which
// recovery falls back to, so one damaged file loses nothing.
#[test]
fn a_damaged_swap_snapshot_is_read_from_its_copy() {
    let disk = swapped();
    let snapshot = files(&disk, "snapshots", ".snap").remove(0);
    let copy = format!("{snapshot}.copy");
    assert_eq!(
        get(&disk, "snapshots", &copy),
        get(&disk, "snapshots", &snapshot)
    );
    damage(&disk, "snapshots", &snapshot);
    let mut expected = all();
    expected.push(TRANSACTIONS);
    assert_eq!(recover(&disk, "damaged swap snapshot").unwrap(), expected);
    // The copy goes with its snapshot once newer ones replace it; a regular
    // snapshot has none.
    let (mut db, _) = open(&disk, config(Some(1), 1 << 20)).unwrap();
    db.commit().unwrap();
    db.commit().unwrap();
    drop(db);
    let names = disk.root().subdir("snapshots").unwrap().list().unwrap();
    assert!(
        !names.iter().any(|name| name.ends_with(".copy")),
        "{names:?}"
    );
}

// With the swap snapshot and its copy both damaged, recovery refuses to
// start, and the message names the snapshot (it used to blame a deleted
// log segment, and named only the log's first segment, which is intact).
#[test]
fn a_damaged_snapshot_the_log_was_pruned_for_is_named() {
    let disk = swapped();
    let snapshot = files(&disk, "snapshots", ".snap").remove(0);
    damage(&disk, "snapshots", &snapshot);
    damage(&disk, "snapshots", &format!("{snapshot}.copy"));
    match recover(&disk, "damaged snapshot") {
        Err(StorageError::Missing(message)) => assert!(
            message.contains(&format!(
                "only in snapshots/{snapshot}, which cannot be used"
            )) && message.contains("corrupt at byte")
                && !message.contains("deleted log segment"),
            "{message}"
        ),
        other => panic!("a damaged snapshot was not refused: {other:?}"),
    }
}

// Until two snapshots exist, the log is kept from its start, so that
// damage to the first snapshot loses nothing: recovery passes over it and
// replays the whole log (it used to have deleted the segments before it,
// and refused to start).
#[test]
fn a_damaged_first_snapshot_is_passed_over_for_the_whole_log() {
    let disk = database_with(TRANSACTIONS, config(Some(4), 150));
    let snapshots = files(&disk, "snapshots", ".snap");
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let mut bytes = get(&disk, "snapshots", &snapshots[0]);
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    put(&disk, "snapshots", &snapshots[0], &bytes);
    match recover(&disk, "damaged first snapshot") {
        Ok(values) => assert_eq!(values, all()),
        Err(e) => panic!("one damaged snapshot stopped the database: {e}"),
    }
}

// Segments of the old format are refused with a message saying so.
#[test]
fn a_format_one_segment_is_refused_as_unsupported() {
    let disk = log_only();
    let name = files(&disk, "log", ".seg").remove(0);
    let mut bytes = get(&disk, "log", &name);
    bytes[..8].copy_from_slice(b"WLSEG001");
    put(&disk, "log", &name, &bytes);
    match recover(&disk, "format 1") {
        Err(e @ StorageError::Unsupported { .. }) => {
            assert!(e.to_string().contains("WLSEG002"), "{e}")
        }
        other => panic!("a format-1 segment was accepted: {other:?}"),
    }
}

// #9 item 8: on a full disk, snapshots back off instead of being retried
// on every commit, and leave no temporary file behind.
#[test]
fn failed_snapshots_back_off_and_leave_no_temporary_files() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(Some(2), 1 << 20)).unwrap();
    disk.fail_writes_to(Some(".snap.tmp"));
    for _ in 0..100 {
        db.commit().expect("the log still takes commits");
    }
    let attempts = disk
        .created()
        .iter()
        .filter(|n| n.ends_with(".snap.tmp"))
        .count();
    assert!(
        (3..=8).contains(&attempts),
        "{attempts} snapshot attempts in 100 commits, one every 2 due"
    );
    let leftovers: Vec<String> = disk.root().subdir("snapshots").unwrap().list().unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    disk.fail_writes_to(None);
    for _ in 0..200 {
        db.commit().unwrap();
    }
    assert!(
        !files(&disk, "snapshots", ".snap").is_empty(),
        "snapshots resume"
    );
}

// #9 item 8: temporary files a crash left behind are removed on open.
#[test]
fn stale_temporary_files_are_removed_on_open() {
    let disk = database_with(3, config(Some(2), 1 << 20));
    put(
        &disk,
        "snapshots",
        ".00000000000000000009.snap.tmp",
        b"partial",
    );
    put(&disk, "log", ".00000000000000000009.seg.tmp", b"WLSEG");
    super::super::write_durably(&*disk.root(), "", ".module.wasm.tmp", b"half a module").unwrap();
    let (db, _) = open(&disk, config(Some(2), 1 << 20)).unwrap();
    assert_eq!(values(&db.datastore), vec![0, 1, 2]);
    for dir in ["snapshots", "log"] {
        let names = disk.root().subdir(dir).unwrap().list().unwrap();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "{dir}: {names:?}"
        );
    }
    let names = disk.root().list().unwrap();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

// #9 item 5: once the log fails, a transaction it confirmed durable before
// the failure is still reported durable; only later ones are in doubt.
#[test]
fn a_transaction_confirmed_before_the_log_failed_stays_confirmed() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(None, 256)).unwrap();
    db.commit().expect("the first commit");
    // The next segment the log starts cannot be written.
    disk.fail_writes_to(Some(".seg.tmp"));
    let mut failed = false;
    for _ in 0..100 {
        if db.commit().is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the log never started a segment it could not write");
    db.storage
        .wait(0)
        .expect("transaction 0 was durable before the failure");
    assert!(db.storage.wait(db.next_value).is_err());
}

// A segment removed while the server runs (someone clearing `log/`) takes
// every record in it along when it closes: the log must stop confirming
// transactions at once, naming the file, instead of writing on into it.
#[test]
fn a_log_segment_removed_while_open_fails_the_log() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(None, 1 << 20)).unwrap();
    db.commit().expect("the first commit");
    let log = disk.root().subdir("log").expect("log/");
    for name in files(&disk, "log", ".seg") {
        log.remove(&name).expect("removing the segment");
    }
    let refused = db.commit().expect_err("a commit into a removed segment");
    assert!(
        refused
            .to_string()
            .contains("log/00000000000000000000.seg was removed"),
        "{refused}"
    );
    assert!(db.commit().is_err(), "the log takes no more");
}

// A segment cut short while the server runs (someone truncating it) has
// lost the records past the cut; records written after the hole would be
// confirmed and then never read back (recovery stops at the hole). The log
// must stop confirming at once, naming the file and the cut.
#[test]
fn a_log_segment_cut_short_while_open_fails_the_log() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(None, 1 << 20)).unwrap();
    for _ in 0..5 {
        db.commit().expect("a commit before the cut");
    }
    let log = disk.root().subdir("log").expect("log/");
    let name = files(&disk, "log", ".seg").pop().expect("a segment");
    log.open_existing(&name)
        .and_then(|mut file| file.set_len(40))
        .expect("cutting the segment");
    let refused = db.commit().expect_err("a commit after the cut");
    assert!(
        refused.to_string().contains(&format!(
            "log/{name} was cut to 40 bytes while the server ran"
        )),
        "{refused}"
    );
    assert!(db.commit().is_err(), "the log takes no more");
    // Zeros written ahead cut off (the records intact) are no loss.
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(None, 1 << 20)).unwrap();
    db.commit().expect("the first commit");
    let log = disk.root().subdir("log").expect("log/");
    let records_end = {
        let bytes = get(&disk, "log", &name);
        bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count()
    };
    log.open_existing(&name)
        .and_then(|mut file| file.set_len(records_end as u64))
        .expect("cutting the zeros");
    db.commit().expect("a commit after the zeros were cut");
}

// A snapshot that cannot be written is named with its directory, as the
// log's segments are: `writing snapshots/.….snap.tmp`, not a bare name.
#[test]
fn a_failed_snapshot_names_its_directory() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(Some(1), 1 << 20)).unwrap();
    db.commit().expect("the first commit");
    disk.fail_writes_to(Some(".snap.tmp"));
    let failed = db
        .storage
        .snapshot(&db.datastore)
        .expect_err("the snapshot cannot be written");
    assert!(
        failed.to_string().contains("writing snapshots/."),
        "{failed}"
    );
}

// A file that ends as a segment or snapshot does but is not named the way
// the server names them (`0.seg` beside `00000000000000000000.seg`) was
// read as that offset's file, or passed over when its digits overflowed:
// either replays transactions twice or loses them. Recovery refuses and
// names it; files of other extensions are still passed over.
#[test]
fn a_misnamed_segment_or_snapshot_is_refused_and_named() {
    let disk = with_snapshots();
    let first_segment = files(&disk, "log", ".seg").remove(0);
    let newest_snapshot = files(&disk, "snapshots", ".snap").pop().unwrap();
    let cases = [
        ("log", "0.seg", &first_segment),
        ("log", "+0000000000000000000.seg", &first_segment),
        ("log", "99999999999999999999.seg", &first_segment),
        ("log", ".seg", &first_segment),
        ("snapshots", "7.snap", &newest_snapshot),
    ];
    for (dir, odd, original) in cases {
        let altered = copy(&disk);
        put(&altered, dir, odd, &get(&disk, dir, original));
        match recover(&altered, odd) {
            Err(StorageError::Misnamed { file, expected }) => {
                assert_eq!(file, format!("{dir}/{odd}"));
                assert!(expected.starts_with("20 digits"), "{expected}");
            }
            other => panic!("{dir}/{odd} was not refused: {other:?}"),
        }
        assert_eq!(
            get(&altered, dir, odd),
            get(&disk, dir, original),
            "{odd} changed"
        );
    }
    let with_notes = copy(&disk);
    put(&with_notes, "log", "README.txt", b"notes");
    put(
        &with_notes,
        "log",
        "00000000000000000000.seg.bak",
        b"a copy",
    );
    assert_eq!(recover(&with_notes, "other files").unwrap(), all());
}

// A module swap that a crash stopped before its commit point (replacing
// `module.wasm`) leaves the new module's snapshot behind. Recovery passes
// over it and sets it aside: left among the snapshots, it counted as one
// of the two kept, so the next snapshot pruned the log before it while
// that one snapshot alone held the transactions, and damage to it lost
// them.
#[test]
fn an_unfinished_swaps_snapshot_is_set_aside_and_never_counts_as_kept() {
    let disk = database_with(TRANSACTIONS, config(None, 150));
    let before_the_swap = copy(&disk);
    let (mut db, _) = open(&disk, config(None, 150)).unwrap();
    db.swap(b"module two").unwrap();
    drop(db);
    // What a crash just before the commit point leaves: the old module,
    // and the new module's snapshot and its copy.
    let leftover = files(&disk, "snapshots", ".snap").remove(0);
    let leftover_copy = format!("{leftover}.copy");
    for name in [&leftover, &leftover_copy] {
        put(
            &before_the_swap,
            "snapshots",
            name,
            &get(&disk, "snapshots", name),
        );
    }
    let disk = before_the_swap;
    let (mut db, _) = open(&disk, config(None, 150)).unwrap();
    assert_eq!(values(&db.datastore), all());
    assert!(files(&disk, "snapshots", ".snap").is_empty());
    assert_eq!(
        files(&disk, "snapshots", ".skipped"),
        [
            format!("{leftover_copy}.skipped"),
            format!("{leftover}.skipped")
        ]
    );
    for _ in 0..3 {
        db.commit().unwrap();
    }
    db.storage.snapshot(&db.datastore).unwrap();
    drop(db);
    // Its one usable snapshot damaged, the database replays its whole log.
    let snapshot = files(&disk, "snapshots", ".snap").remove(0);
    damage(&disk, "snapshots", &snapshot);
    assert_eq!(
        recover(&disk, "the only usable snapshot damaged").unwrap(),
        (0..TRANSACTIONS + 3).collect::<Vec<_>>()
    );
}

// A damaged snapshot that recovery passed over for an older one is set
// aside too: counted as kept, it made the next snapshot delete the older
// one (and the log before the damaged one), leaving a single usable copy
// of the transactions.
#[test]
fn a_snapshot_recovery_passed_over_does_not_count_as_kept() {
    let disk = database_with(TRANSACTIONS, config(None, 150));
    let (mut db, _) = open(&disk, config(None, 150)).unwrap();
    db.storage.snapshot(&db.datastore).unwrap();
    db.commit().unwrap();
    db.commit().unwrap();
    db.storage.snapshot(&db.datastore).unwrap();
    drop(db);
    let newest = files(&disk, "snapshots", ".snap").pop().unwrap();
    damage(&disk, "snapshots", &newest);
    let (mut db, report) = open(&disk, config(None, 150)).unwrap();
    assert_eq!(report.snapshot, Some(TRANSACTIONS));
    assert_eq!(
        files(&disk, "snapshots", ".skipped"),
        [format!("{newest}.skipped")]
    );
    db.commit().unwrap();
    db.storage.snapshot(&db.datastore).unwrap();
    drop(db);
    let newest = files(&disk, "snapshots", ".snap").pop().unwrap();
    damage(&disk, "snapshots", &newest);
    assert_eq!(
        recover(&disk, "the newest snapshot damaged again").unwrap(),
        (0..TRANSACTIONS + 3).collect::<Vec<_>>()
    );
}
