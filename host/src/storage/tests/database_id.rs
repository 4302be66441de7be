//! A log segment or snapshot copied from one database's directory into
//! another's (an operator's mistake, a backup restored into the wrong
//! place) is refused, naming the file, and left as it is; files of the
//! previous format, which name no database, still load, and the log moves
//! on to the new format as it rolls over.

use super::*;

use super::super::database_id::HEADER_BYTES;

/// Small segments and a snapshot every 2 transactions (two kept).
fn with_snapshots(count: u64) -> MemoryDisk {
    database_with(count, config(Some(2), 150))
}

/// Every file of the database on `disk` (its own directory, `log/` and
/// `snapshots/`), as (path, bytes).
fn everything(disk: &MemoryDisk) -> Vec<(String, Vec<u8>)> {
    let root = disk.root();
    let mut found = Vec::new();
    for dir in ["", "log", "snapshots"] {
        let folder = if dir.is_empty() {
            Arc::clone(&root)
        } else {
            root.subdir(dir).expect("subdir")
        };
        let mut names = folder.list().expect("listing");
        names.sort();
        for name in names {
            if let Ok(bytes) = folder.read(&name) {
                found.push((format!("{dir}/{name}"), bytes));
            }
        }
    }
    found
}

/// The database id stored on `disk`, as 32 hex digits.
fn stored_id(disk: &MemoryDisk) -> String {
    let bytes = disk.root().read("database-id").expect("database-id");
    let stored: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    stored["database_id"]
        .as_str()
        .expect("a database_id")
        .to_owned()
}

/// The id named by the header of `dir/name`, as 32 hex digits.
fn named_id(disk: &MemoryDisk, dir: &str, name: &str) -> String {
    crate::identity::hex(&get(disk, dir, name)[8..24])
}

/// Opens `disk`, which must refuse to start because `file` belongs to
/// another database; checks the message and that nothing changed.
fn assert_refused(disk: &MemoryDisk, file: &str) -> String {
    let before = everything(disk);
    let error = match open(disk, config(Some(2), 150)) {
        Ok(_) => panic!("{file}, another database's file, was accepted"),
        Err(e) => e,
    };
    assert!(
        matches!(error, StorageError::Foreign { .. }),
        "{file}: {error}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{file} belongs to another database: ")),
        "{message}"
    );
    assert!(
        message.contains("move it out of the directory"),
        "{message}"
    );
    assert_eq!(everything(disk), before, "{file}: recovery changed files");
    message
}

#[test]
fn a_segment_of_another_database_is_refused() {
    let ours = with_snapshots(7);
    let theirs = with_snapshots(12);
    let their_segments = files(&theirs, "log", ".seg");
    let our_segments = files(&ours, "log", ".seg");
    // Replacing one of our segments, and as a newer one.
    let replaced = our_segments.last().expect("a segment").clone();
    let newer = their_segments.last().expect("a segment").clone();
    assert!(newer > replaced, "{newer} follows {replaced}");
    for name in [&replaced, &newer] {
        let disk = copy(&ours);
        put(&disk, "log", name, &get(&theirs, "log", &newer));
        let message = assert_refused(&disk, &format!("log/{name}"));
        assert!(
            message.contains(&format!(
                "it names database {}, and this database is {}",
                named_id(&theirs, "log", &newer),
                stored_id(&ours)
            )),
            "{message}"
        );
    }
    // One recovery would not even read (older than the oldest snapshot),
    // which pruning would later have removed.
    let early = database_with(7, config(None, 150));
    let older = files(&early, "log", ".seg").remove(0);
    assert!(&older < our_segments.first().expect("a segment"));
    let disk = copy(&ours);
    put(&disk, "log", &older, &get(&early, "log", &older));
    assert_refused(&disk, &format!("log/{older}"));
}

// A foreign segment that ends in what looks like a torn record is not
// cut: recovery cuts torn tails of its own newest segment only.
#[test]
fn a_foreign_segment_with_a_torn_tail_is_not_cut() {
    let ours = database_with(3, config(None, 1 << 20));
    let theirs = database_with(9, config(None, 150));
    let name = files(&theirs, "log", ".seg").pop().expect("a segment");
    let mut torn = get(&theirs, "log", &name);
    let whole = torn.clone();
    torn.truncate(whole.len() - 3);
    torn.extend_from_slice(&[0; 40]);
    put(&ours, "log", &name, &torn);
    assert_refused(&ours, &format!("log/{name}"));
    assert_eq!(get(&ours, "log", &name), torn, "the foreign file is intact");
}

#[test]
fn a_snapshot_of_another_database_is_refused() {
    let ours = with_snapshots(7);
    let our_snapshots = files(&ours, "snapshots", ".snap");
    // Newer than ours (recovery would load it), and older (it would be
    // skipped, then pruned).
    let late = with_snapshots(12);
    let early = with_snapshots(3);
    let newer = files(&late, "snapshots", ".snap")
        .pop()
        .expect("a snapshot");
    let older = files(&early, "snapshots", ".snap").remove(0);
    assert!(&newer > our_snapshots.last().expect("a snapshot"));
    assert!(older < our_snapshots[0]);
    for (theirs, name) in [(&late, newer), (&early, older)] {
        let disk = copy(&ours);
        put(&disk, "snapshots", &name, &get(theirs, "snapshots", &name));
        let message = assert_refused(&disk, &format!("snapshots/{name}"));
        assert!(
            message.contains(&named_id(theirs, "snapshots", &name)),
            "{message}"
        );
    }
    // Our own files recover as ever.
    let (db, _) = open(&ours, config(Some(2), 150)).expect("our own files");
    assert_eq!(values(&db.datastore), (0..7).collect::<Vec<_>>());
}

// A snapshot of another database put into the directory while the server
// runs is not removed by pruning (it was never this database's to remove).
#[test]
fn pruning_leaves_a_foreign_snapshot_alone() {
    let ours = MemoryDisk::new();
    publish(&ours, b"module one");
    let (mut db, _) = open(&ours, config(Some(2), 150)).expect("open");
    let theirs = with_snapshots(3);
    let theirs_name = files(&theirs, "snapshots", ".snap").remove(0);
    let foreign = get(&theirs, "snapshots", &theirs_name);
    put(&ours, "snapshots", "00000000000000000001.snap", &foreign);
    for _ in 0..10 {
        db.commit().expect("commit");
    }
    assert_eq!(
        get(&ours, "snapshots", "00000000000000000001.snap"),
        foreign,
        "the foreign snapshot was removed"
    );
    drop(db);
    assert_refused(&ours, "snapshots/00000000000000000001.snap");
}

#[test]
fn every_file_names_the_database_and_a_module_swap_keeps_its_id() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(Some(3), 150)).expect("open");
    for _ in 0..5 {
        db.commit().expect("commit");
    }
    let id = stored_id(&disk);
    db.swap(b"module two").expect("swap");
    for _ in 0..5 {
        db.commit().expect("commit");
    }
    drop(db);
    assert_eq!(stored_id(&disk), id, "the swap kept the id");
    for (dir, extension, magic) in [
        ("log", ".seg", b"WLSEG003"),
        ("snapshots", ".snap", b"WLSNP003"),
    ] {
        for name in files(&disk, dir, extension) {
            assert_eq!(&get(&disk, dir, &name)[..8], magic, "{dir}/{name}");
            assert_eq!(named_id(&disk, dir, &name), id, "{dir}/{name}");
        }
    }
    let (db, _) = open(&disk, config(Some(3), 150)).expect("reopen");
    assert_eq!(values(&db.datastore), (0..10).collect::<Vec<_>>());
    // Another database (one created anew under the same name) has another id.
    assert_ne!(stored_id(&with_snapshots(1)), id);
}

/// Rewrites every segment and snapshot on `disk` in format 2 (the magic
/// alone, naming no database) and removes `database-id`: a data directory
/// of the previous version.
pub(super) fn to_format_two(disk: &MemoryDisk) {
    for (dir, extension, magic) in [
        ("log", ".seg", b"WLSEG002"),
        ("snapshots", ".snap", b"WLSNP002"),
    ] {
        for name in files(disk, dir, extension) {
            let bytes = get(disk, dir, &name);
            let mut old = magic.to_vec();
            old.extend_from_slice(&bytes[HEADER_BYTES..]);
            put(disk, dir, &name, &old);
        }
    }
    disk.root()
        .remove("database-id")
        .expect("removing database-id");
}

#[test]
fn files_of_the_previous_format_load_and_the_log_rolls_over_to_the_new_one() {
    let disk = with_snapshots(7);
    to_format_two(&disk);
    let old_segments = files(&disk, "log", ".seg");
    let old_snapshots = files(&disk, "snapshots", ".snap");
    let (mut db, report) = open(&disk, config(Some(2), 150)).expect("format 2 loads");
    assert_eq!(values(&db.datastore), (0..7).collect::<Vec<_>>());
    let stored: serde_json::Value =
        serde_json::from_slice(&disk.root().read("database-id").expect("an id was given"))
            .expect("JSON");
    assert_eq!(stored["unidentified_through"], report.next_offset);
    for _ in 0..8 {
        db.commit().expect("commit");
    }
    drop(db);
    let id = stored_id(&disk);
    for (dir, extension, old, magic) in [
        ("log", ".seg", &old_segments, b"WLSEG003"),
        ("snapshots", ".snap", &old_snapshots, b"WLSNP003"),
    ] {
        let new: Vec<String> = files(&disk, dir, extension)
            .into_iter()
            .filter(|name| !old.contains(name))
            .collect();
        assert!(!new.is_empty(), "no new {dir} file");
        for name in new {
            assert_eq!(&get(&disk, dir, &name)[..8], magic, "{dir}/{name}");
            assert_eq!(named_id(&disk, dir, &name), id, "{dir}/{name}");
        }
    }
    let (db, _) = open(&disk, config(Some(2), 150)).expect("reopen");
    assert_eq!(values(&db.datastore), (0..15).collect::<Vec<_>>());
}

// A format-2 file names no database, so it cannot be told apart by its
// header; but a database that has an id writes none after it got it, so
// one at a later offset is not its own.
#[test]
fn a_format_two_file_is_refused_where_the_database_writes_only_format_three() {
    // Created with an id: no format-2 file is its own.
    let ours = database_with(3, config(None, 1 << 20));
    let old = with_snapshots(12);
    to_format_two(&old);
    let name = files(&old, "log", ".seg").pop().expect("a segment");
    put(&ours, "log", &name, &get(&old, "log", &name));
    let message = assert_refused(&ours, &format!("log/{name}"));
    assert!(message.contains("it is in format 2"), "{message}");

    // Upgraded at transaction 7: a format-2 snapshot beyond it is not its own.
    let upgraded = with_snapshots(7);
    to_format_two(&upgraded);
    drop(open(&upgraded, config(Some(2), 150)).expect("upgrade"));
    let snapshot = files(&old, "snapshots", ".snap").pop().expect("a snapshot");
    put(
        &upgraded,
        "snapshots",
        &snapshot,
        &get(&old, "snapshots", &snapshot),
    );
    let message = assert_refused(&upgraded, &format!("snapshots/{snapshot}"));
    assert!(message.contains("since transaction 7"), "{message}");
}

#[test]
fn a_missing_or_damaged_database_id_is_refused() {
    let disk = database_with(3, config(None, 1 << 20));
    // Missing: the files are not called another database's (which would
    // send the operator to move them out, emptying the database), and the
    // repair that writes the id back is named.
    let missing = copy(&disk);
    missing.root().remove("database-id").expect("remove");
    let before = everything(&missing);
    let error = open(&missing, config(None, 1 << 20))
        .err()
        .expect("a database without its database-id started");
    assert!(
        matches!(&error, StorageError::IdMissing { file, .. } if file == "log/00000000000000000000.seg"),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("database-id file is missing") && message.contains("`worldline repair`"),
        "{message}"
    );
    assert_eq!(everything(&missing), before, "recovery changed files");

    let damaged = copy(&disk);
    super::super::write_durably(
        &*damaged.root(),
        "",
        "database-id",
        b"{\"database_id\":\"x\"}",
    )
    .expect("write");
    match open(&damaged, config(None, 1 << 20)) {
        Err(StorageError::Corrupt { file, .. }) => assert_eq!(file, "database-id"),
        other => panic!("a damaged database-id was accepted: {:?}", other.err()),
    }
}
