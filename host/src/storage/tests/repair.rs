//! Repairs of damaged logs (`worldline repair`): for every flipped bit of
//! every file, a database recovery refuses is brought back by a cut with
//! exactly the transactions before the damage, what is cut off is kept
//! byte for byte, and the database then commits and recovers as usual.

use super::super::repair::{self, LogCut, RepairPlan};
use super::*;

const TRANSACTIONS: u64 = 7;

/// The bytes of a segment's header (format 3: magic, database id, checksum).
const HEADER: usize = super::super::database_id::HEADER_BYTES;

/// Recovers `disk` with the tests' configuration: the values, or why not.
fn recover(disk: &MemoryDisk) -> Result<Vec<u64>, StorageError> {
    open(disk, config(None, 150)).map(|(db, _)| values(&db.datastore))
}

/// The transactions whose records lie wholly before byte `byte` of segment
/// `name`, whose first transaction its name gives: the most a cut at a
/// damaged byte there can keep, and the least it must.
fn kept_before(bytes: &[u8], name: &str, byte: usize) -> u64 {
    let first: u64 = name.trim_end_matches(".seg").parse().expect("segment name");
    let (frames, _) = super::super::frame::read_frames(&bytes[HEADER..byte.max(HEADER)]);
    first
        + frames
            .iter()
            .filter(|(_, payload)| !payload.is_empty())
            .count() as u64
}

/// Checks what a repair of `damaged` (`disk` with a flipped bit in file
/// `dir/name`, at `byte`) plans and does; returns whether it cut the log.
fn check_repair(damaged: &MemoryDisk, dir: &str, name: &str, byte: usize, what: &str) -> bool {
    let before = recover(damaged);
    let plan = match repair::plan(&*damaged.root()) {
        Ok(plan) => plan,
        Err(e) => {
            assert!(
                before.is_err(),
                "{what}: recovery started, repair failed: {e}"
            );
            return false;
        }
    };
    let cut = match plan {
        RepairPlan::Readable { next_offset } => {
            assert_eq!(before.ok(), Some(all()), "{what}: readable, but recovery");
            assert_eq!(next_offset, TRANSACTIONS, "{what}");
            return false;
        }
        RepairPlan::Unrepairable(reason) => panic!("{what}: no cut: {reason}"),
        RepairPlan::Cut(cut) => cut,
    };
    assert!(before.is_err(), "{what}: recovery started, repair cut");
    assert_eq!(
        dir, "log",
        "{what}: a damaged snapshot is passed over, not cut"
    );
    let damaged_bytes = get(damaged, dir, name);
    // Damage in records the snapshot holds keeps what the snapshot holds.
    let start = cut.snapshot.unwrap_or(0);
    assert_eq!(
        cut.keep_below,
        kept_before(&damaged_bytes, name, byte).max(start),
        "{what}: {cut:?}"
    );
    apply_and_reopen(damaged, &cut, what);
    // The damaged segment went aside whole, as it was, whether it was cut
    // or went whole (and the one before it was cut before its seal).
    let file = format!("log/{name}");
    assert!(
        cut.segment.as_ref() == Some(&file) || cut.set_aside.contains(&file),
        "{what}: {cut:?}"
    );
    assert_eq!(set_aside(damaged, name), damaged_bytes, "{what}");
    true
}

/// The copy of segment `name` that the repair stamped `stamp` set aside.
fn set_aside(disk: &MemoryDisk, name: &str) -> Vec<u8> {
    disk.root()
        .subdir("set-aside")
        .and_then(|d| d.subdir("stamp"))
        .and_then(|d| d.subdir("log"))
        .and_then(|d| d.read(name))
        .expect("the segment set aside")
}

/// Cuts `disk` as `cut` says and checks that it recovers with exactly the
/// transactions kept, commits the next one, and recovers again with it.
fn apply_and_reopen(disk: &MemoryDisk, cut: &LogCut, what: &str) {
    repair::apply(&*disk.root(), cut, "stamp").expect("the cut");
    let kept: Vec<u64> = (0..cut.keep_below).collect();
    assert_eq!(recover(disk).as_ref().ok(), Some(&kept), "{what}: {cut:?}");
    assert_eq!(
        repair::plan(&*disk.root()).expect("a second look"),
        RepairPlan::Readable {
            next_offset: cut.keep_below
        },
        "{what}"
    );
    let (mut db, _) = open(disk, config(None, 150)).expect("reopened");
    assert_eq!(
        db.commit().expect("a commit after the repair"),
        cut.keep_below
    );
    drop(db);
    let mut after = kept;
    after.push(cut.keep_below);
    assert_eq!(recover(disk).ok(), Some(after), "{what}: after a commit");
}

fn all() -> Vec<u64> {
    (0..TRANSACTIONS).collect()
}

/// Flips every bit of every file of `disk` in turn and repairs each copy
/// (none may be left without a cut); returns how many a cut brought back.
fn repair_every_flipped_bit(disk: &MemoryDisk) -> usize {
    let mut cuts = 0;
    for_each_flipped_bit(disk, |flipped| {
        let Flipped {
            disk,
            dir,
            name,
            byte,
            what,
        } = flipped;
        if check_repair(&disk, dir, &name, byte, &what) {
            cuts += 1;
        }
    });
    cuts
}

// Without snapshots, every flipped bit in the log refuses recovery, and a
// cut keeps exactly the records before the damaged one.
#[test]
fn every_flipped_bit_in_a_log_is_cut_keeping_the_records_before_it() {
    let disk = database_with(TRANSACTIONS, config(None, 150));
    assert!(files(&disk, "log", ".seg").len() >= 3, "several segments");
    let cuts = repair_every_flipped_bit(&disk);
    assert!(cuts > 2000, "{cuts} cuts");
}

// With snapshots, damage the recovery does not read is left alone, damage
// after the snapshot it starts from is cut there, and damage before it, in
// the segment holding it, sets that segment aside for an empty one.
#[test]
fn every_flipped_bit_with_snapshots_is_left_cut_or_refused() {
    let disk = database_with(TRANSACTIONS, config(Some(2), 150));
    assert_eq!(files(&disk, "snapshots", ".snap").len(), 2);
    let cuts = repair_every_flipped_bit(&disk);
    assert!(cuts > 0, "{cuts} cuts");
}

// A deleted middle segment: the segments after the gap are set aside, and
// the snapshots past it too (new transactions will take their offsets).
#[test]
fn a_gap_in_the_log_sets_the_segments_after_it_aside() {
    let disk = database_with(TRANSACTIONS, config(None, 150));
    let segments = files(&disk, "log", ".seg");
    disk.root()
        .subdir("log")
        .unwrap()
        .remove(&segments[1])
        .unwrap();
    let RepairPlan::Cut(cut) = repair::plan(&*disk.root()).unwrap() else {
        panic!("a gap was not cut");
    };
    let second: u64 = segments[1].trim_end_matches(".seg").parse().unwrap();
    assert_eq!(cut.keep_below, second);
    // The segment before the gap is cut before its seal: it becomes the newest.
    let first = get(&disk, "log", &segments[0]);
    assert_eq!(cut.segment, Some(format!("log/{}", segments[0])));
    assert!(cut.keep_bytes > 0 && cut.keep_bytes < first.len() as u64);
    assert_eq!(
        cut.set_aside,
        segments[2..]
            .iter()
            .map(|s| format!("log/{s}"))
            .collect::<Vec<_>>()
    );
    apply_and_reopen(&disk, &cut, "gap");
    for name in &segments[2..] {
        assert!(set_aside(&disk, name).len() > HEADER, "{name} set aside");
    }
    assert_eq!(set_aside(&disk, &segments[0]), first);
}

// A healthy log, and one whose final record is torn (which recovery cuts
// off itself), need no repair; a dry run changes nothing.
#[test]
fn a_readable_log_is_left_as_it_is() {
    let disk = database_with(TRANSACTIONS, config(None, 150));
    let newest = files(&disk, "log", ".seg").pop().unwrap();
    let mut bytes = get(&disk, "log", &newest);
    bytes.truncate(bytes.len() - 3);
    put(&disk, "log", &newest, &bytes);
    let plan = repair::plan(&*disk.root()).unwrap();
    assert_eq!(
        plan,
        RepairPlan::Readable {
            next_offset: TRANSACTIONS - 1
        }
    );
    assert_eq!(get(&disk, "log", &newest), bytes, "a plan changes nothing");
    assert!(
        !disk
            .root()
            .list()
            .unwrap()
            .contains(&"set-aside".to_owned())
    );
}

// A module swap keeps only its own snapshot and the log from its swap
// record on: when that log's only segment has a damaged header, it goes
// whole, an empty segment starts at the snapshot, and the database starts
// from the snapshot.
#[test]
fn a_damaged_header_of_the_only_segment_after_a_swap_leaves_an_empty_one_at_the_snapshot() {
    let disk = database_with(TRANSACTIONS, config(None, 1 << 20));
    let (mut db, _) = open(&disk, config(None, 1 << 20)).unwrap();
    db.swap(b"module two").unwrap();
    db.commit().unwrap();
    drop(db);
    let segments = files(&disk, "log", ".seg");
    assert_eq!(segments.len(), 1, "{segments:?}");
    let mut bytes = get(&disk, "log", &segments[0]);
    bytes[HEADER - 1] ^= 1;
    put(&disk, "log", &segments[0], &bytes);
    assert!(recover(&disk).is_err());
    let RepairPlan::Cut(cut) = repair::plan(&*disk.root()).unwrap() else {
        panic!("not cut");
    };
    assert_eq!((cut.keep_bytes, cut.snapshot), (0, Some(cut.keep_below)));
    repair::apply(&*disk.root(), &cut, "stamp").unwrap();
    assert_eq!(
        recover(&disk).ok(),
        Some(all()),
        "the snapshot's transactions"
    );
    let at_snapshot = super::super::numbered_name(cut.keep_below, "seg");
    assert_eq!(
        files(&disk, "log", ".seg"),
        [at_snapshot],
        "an empty segment at the snapshot"
    );
    assert_eq!(set_aside(&disk, &segments[0]), bytes);
    let (mut db, _) = open(&disk, config(None, 1 << 20)).unwrap();
    db.commit().unwrap();
    drop(db);
    assert_eq!(recover(&disk).unwrap().len(), all().len() + 1);
}

// A database an earlier version wrote (format 2, no `database-id`) whose
// only segment's header is damaged: the empty segment that replaces it
// names the id the repair records, so the database starts, empty.
#[test]
fn a_format_two_database_gets_its_id_before_an_empty_segment_names_it() {
    let disk = database_with(TRANSACTIONS, config(None, 1 << 20));
    super::database_id::to_format_two(&disk);
    let segments = files(&disk, "log", ".seg");
    assert_eq!(segments.len(), 1, "{segments:?}");
    let mut bytes = get(&disk, "log", &segments[0]);
    bytes[0] ^= 1;
    put(&disk, "log", &segments[0], &bytes);
    assert!(recover(&disk).is_err());
    let RepairPlan::Cut(cut) = repair::plan(&*disk.root()).unwrap() else {
        panic!("not cut");
    };
    assert_eq!((cut.keep_bytes, cut.keep_below), (0, 0));
    apply_and_reopen(&disk, &cut, "format 2");
    assert!(
        disk.root().read("database-id").is_ok(),
        "an id was recorded"
    );
}

// `database-id` deleted (the files are the database's own): recovery
// refuses, saying the id file is missing rather than that the files belong
// to another database (moving them out, as that would say, empties the
// database); the repair writes the id back from the files' headers, and
// the database recovers every transaction. Files naming two databases get
// nothing written back.
#[test]
fn a_lost_database_id_is_written_back_from_the_files() {
    let disk = database_with(TRANSACTIONS, config(Some(2), 150));
    let stored = disk.root().read("database-id").unwrap();
    disk.root().remove("database-id").unwrap();
    let refused = recover(&disk).expect_err("recovery without database-id");
    assert!(
        matches!(refused, StorageError::IdMissing { .. })
            && refused
                .to_string()
                .contains("but this database's database-id file is missing"),
        "{refused}"
    );
    let id = repair::lost_database_id(&*disk.root())
        .unwrap()
        .expect("the files name one database");
    assert!(
        String::from_utf8_lossy(&stored).contains(&id.to_hex()),
        "{id:?}"
    );
    assert_eq!(
        repair::plan(&*disk.root()).unwrap(),
        RepairPlan::Readable {
            next_offset: TRANSACTIONS
        }
    );
    assert!(recover(&disk).is_err(), "a plan changes nothing");
    repair::restore_database_id(&*disk.root(), id).unwrap();
    assert_eq!(disk.root().read("database-id").unwrap(), stored);
    assert_eq!(recover(&disk).ok(), Some(all()));
    assert_eq!(repair::lost_database_id(&*disk.root()).unwrap(), None);

    let other = database_with(TRANSACTIONS, config(Some(2), 150));
    let disk = database_with(TRANSACTIONS, config(Some(2), 150));
    disk.root().remove("database-id").unwrap();
    let newest = files(&disk, "log", ".seg").pop().unwrap();
    let mut bytes = get(&disk, "log", &newest);
    let foreign = get(&other, "log", &files(&other, "log", ".seg")[0]);
    bytes[..HEADER].copy_from_slice(&foreign[..HEADER]);
    put(&disk, "log", &newest, &bytes);
    assert_eq!(repair::lost_database_id(&*disk.root()).unwrap(), None);
    assert!(repair::plan(&*disk.root()).is_err());
}

// Every segment deleted (an emptied `log/`) while snapshots remain: the log
// continues from the newest snapshot in an empty segment, with what it holds.
#[test]
fn a_log_deleted_whole_continues_from_the_newest_snapshot() {
    let disk = database_with(TRANSACTIONS, config(Some(2), 150));
    let log = disk.root().subdir("log").unwrap();
    for name in files(&disk, "log", ".seg") {
        log.remove(&name).unwrap();
    }
    assert!(recover(&disk).is_err());
    let RepairPlan::Cut(cut) = repair::plan(&*disk.root()).unwrap() else {
        panic!("no cut");
    };
    let newest: u64 = files(&disk, "snapshots", ".snap")
        .pop()
        .unwrap()
        .trim_end_matches(".snap")
        .parse()
        .unwrap();
    assert_eq!(
        (cut.segment.as_deref(), cut.keep_below, cut.snapshot),
        (None, newest, Some(newest)),
        "{cut:?}"
    );
    assert!(cut.set_aside.is_empty(), "{cut:?}");
    apply_and_reopen(&disk, &cut, "no log");
}

// The log's last segments deleted, so that it ends before the newest
// snapshot: the snapshot holds everything, and the log continues from it.
#[test]
fn a_log_that_ends_before_the_snapshot_continues_from_it() {
    let disk = database_with(TRANSACTIONS, config(None, 150));
    let (mut db, _) = open(&disk, config(None, 150)).unwrap();
    db.storage.snapshot(&db.datastore).unwrap();
    drop(db);
    let segments = files(&disk, "log", ".seg");
    assert!(segments.len() > 1, "{segments:?}");
    let log = disk.root().subdir("log").unwrap();
    for name in &segments[1..] {
        log.remove(name).unwrap();
    }
    assert!(recover(&disk).is_err());
    let RepairPlan::Cut(cut) = repair::plan(&*disk.root()).unwrap() else {
        panic!("no cut");
    };
    // The sealed segment left goes whole: the snapshot holds its records.
    assert_eq!(
        (cut.segment.clone(), cut.keep_bytes, cut.keep_below),
        (Some(format!("log/{}", segments[0])), 0, TRANSACTIONS),
        "{cut:?}"
    );
    apply_and_reopen(&disk, &cut, "log ends early");
}

// A damaged or replaced module.wasm makes every snapshot look as if it were
// taken with another module: the repair names module.wasm (which
// schema.json contradicts) instead of calling the snapshots unusable.
#[test]
fn a_replaced_module_is_named_instead_of_the_snapshots() {
    let disk = database_with(TRANSACTIONS, config(Some(2), 150));
    publish(&disk, b"a damaged module");
    match repair::plan(&*disk.root()).unwrap() {
        RepairPlan::Unrepairable(reason) => assert!(
            reason.starts_with("module.wasm is not the module this database runs"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

// Without a usable snapshot, a log whose first segment was deleted is not
// cut: continuing it from the start would keep nothing.
#[test]
fn a_log_that_starts_late_without_a_snapshot_is_not_cut() {
    let disk = database_with(TRANSACTIONS, config(None, 150));
    let first = files(&disk, "log", ".seg").remove(0);
    disk.root().subdir("log").unwrap().remove(&first).unwrap();
    match repair::plan(&*disk.root()).unwrap() {
        RepairPlan::Unrepairable(reason) => {
            assert!(reason.contains("the log starts at transaction"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
