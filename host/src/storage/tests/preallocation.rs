//! The commit log writes zeros ahead of its records and fills them, so
//! that syncing a record changes no file size. A crash leaves those zeros
//! behind; recovery must drop them without taking them for a torn record,
//! and a clean close must leave each segment ending with its last record.

use super::*;

/// The bytes of a segment's header.
const HEADER: usize = super::super::database_id::HEADER_BYTES;

/// Segments of 64 KiB: the writer's zeros reach the segment's limit.
const SEGMENT: u64 = 64 << 10;

fn segment_len(disk: &MemoryDisk) -> usize {
    let newest = files(disk, "log", ".seg").pop().expect("a segment");
    get(disk, "log", &newest).len()
}

#[test]
fn records_fill_the_zeros_written_ahead_without_growing_the_segment() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(None, SEGMENT)).expect("open");
    db.commit().expect("commit");
    assert_eq!(segment_len(&disk), SEGMENT as usize, "zeros written ahead");
    for _ in 0..20 {
        db.commit().expect("commit");
    }
    assert_eq!(
        segment_len(&disk),
        SEGMENT as usize,
        "records went over the zeros"
    );
    drop(db);
    let newest = files(&disk, "log", ".seg").pop().expect("a segment");
    let bytes = get(&disk, "log", &newest);
    let (frames, end) = super::super::frame::read_frames(&bytes[HEADER..]);
    assert_eq!(
        (frames.len(), end),
        (21, super::super::frame::FrameEnd::Clean),
        "a clean close cuts the zeros off after the last record"
    );
}

/// What a power cut leaves of a database that committed `count`
/// transactions, with its zeros written ahead: everything was synced, so
/// the records and the zeros are all there.
fn crashed_after(count: u64) -> MemoryDisk {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config(None, SEGMENT)).expect("open");
    for _ in 0..count {
        db.commit().expect("commit");
    }
    disk.power_cut(count)
}

#[test]
fn after_a_crash_the_zeros_are_dropped_and_nothing_is_called_torn() {
    let crashed = crashed_after(5);
    let (mut db, report) = open(&crashed, config(None, SEGMENT)).expect("recovers");
    assert_eq!(values(&db.datastore), vec![0, 1, 2, 3, 4]);
    assert!(report.truncated_bytes > 0, "the zeros were cut off");
    assert!(!report.torn, "zeros are not a torn record: {report:?}");
    for _ in 0..3 {
        db.commit().expect("commit after recovery");
    }
    drop(db);
    let (again, report) = open(&crashed, config(None, SEGMENT)).expect("recovers again");
    assert_eq!(values(&again.datastore), (0..8).collect::<Vec<_>>());
    assert_eq!(report.truncated_bytes, 0, "closed cleanly: {report:?}");
}

#[test]
fn a_torn_record_before_the_zeros_is_reported_torn() {
    let crashed = crashed_after(3);
    let newest = files(&crashed, "log", ".seg").pop().expect("a segment");
    let mut bytes = get(&crashed, "log", &newest);
    let (frames, _) = super::super::frame::read_frames(&bytes[HEADER..]);
    // Keep the first 5 bytes of the last record, zeros after them.
    let (last, _) = *frames.last().expect("records");
    bytes[HEADER + last + 5..].fill(0);
    put(&crashed, "log", &newest, &bytes);
    let (db, report) = open(&crashed, config(None, SEGMENT)).expect("a torn tail is cut off");
    assert_eq!(values(&db.datastore), vec![0, 1]);
    assert!(report.torn, "{report:?}");
}

// A segment is sealed where its records end and then cut to the seal; a
// crash between the two leaves the zeros after the seal.
#[test]
fn zeros_after_a_seal_are_unused_space_but_anything_else_is_refused() {
    let disk = database_with(7, config(None, 150));
    let segments = files(&disk, "log", ".seg");
    assert!(segments.len() > 2, "several segments: {segments:?}");
    let sealed = &segments[0];
    let clean = get(&disk, "log", sealed);

    let zeros = copy(&disk);
    let mut bytes = clean.clone();
    bytes.resize(clean.len() + 100, 0);
    put(&zeros, "log", sealed, &bytes);
    let (db, _) = open(&zeros, config(None, 150)).expect("zeros after a seal are accepted");
    assert_eq!(values(&db.datastore), (0..7).collect::<Vec<_>>());

    let garbage = copy(&disk);
    let mut bytes = clean.clone();
    bytes.extend_from_slice(&[0x17, 0, 0, 0]);
    bytes.resize(clean.len() + 100, 0);
    put(&garbage, "log", sealed, &bytes);
    let error = open(&garbage, config(None, 150))
        .err()
        .expect("bytes after a seal are refused");
    assert!(
        matches!(&error, StorageError::Corrupt { reason, .. } if reason.contains("seal")),
        "{error}"
    );
}
