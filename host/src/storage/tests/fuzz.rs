//! Commit-log recovery fuzzing (#9, "fuzzing"), driven by proptest so it
//! runs in CI with a bounded number of cases. Recovery must never panic:
//! it returns a typed refusal, or starts with exactly the transactions the
//! files hold. Run longer with e.g.
//! `PROPTEST_CASES=100000 cargo test -p worldline-host --lib storage::tests::fuzz`.

use proptest::prelude::*;
use worldline_datastore::{TableDelta, TxDelta};

use super::super::frame::put_frame;
use super::super::record::LogRecord;
use super::*;

/// A valid database of 7 transactions in segments of two or three records,
/// with snapshots every 3 transactions when `snapshots` is set.
fn valid(snapshots: bool) -> MemoryDisk {
    database_with(7, config(snapshots.then_some(3), 150))
}

fn recover(disk: &MemoryDisk) -> Result<Vec<u64>, StorageError> {
    match open(disk, config(None, 150)) {
        Ok((db, _)) => Ok(values(&db.datastore)),
        Err(e) => {
            assert!(is_refusal(&e), "not a typed refusal: {e}");
            Err(e)
        }
    }
}

/// One change to a byte of a file, chosen by fractions of the file list and length.
#[derive(Debug, Clone)]
struct Mutation {
    file: f64,
    position: f64,
    xor: u8,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (0.0..1.0f64, 0.0..1.0f64, 1..=255u8).prop_map(|(file, position, xor)| Mutation {
        file,
        position,
        xor,
    })
}

/// One frame of a fuzzed segment.
#[derive(Debug, Clone)]
enum Frame {
    /// A well-formed record of transaction `offset`, inserting the value `offset`.
    Record(u64),
    /// A well-framed payload of arbitrary bytes.
    Payload(Vec<u8>),
    /// A seal.
    Seal,
    /// Raw bytes, not framed.
    Raw(Vec<u8>),
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        4 => (0..8u64).prop_map(Frame::Record),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Frame::Payload),
        1 => Just(Frame::Seal),
        1 => proptest::collection::vec(any::<u8>(), 0..32).prop_map(Frame::Raw),
    ]
}

fn record(offset: u64) -> Vec<u8> {
    let delta = TxDelta {
        tables: vec![TableDelta {
            table: 0,
            inserts: vec![postcard::to_allocvec(&offset).unwrap().as_slice().into()],
            deletes: Vec::new(),
        }],
        sequences: Vec::new(),
    };
    LogRecord::new(offset, "insert", [7; 32], 0, &delta).encode()
}

fn segment(frames: &[Frame]) -> Vec<u8> {
    let mut bytes = super::super::commitlog::UNIDENTIFIED_SEGMENT_MAGIC.to_vec();
    for frame in frames {
        match frame {
            Frame::Record(offset) => put_frame(&record(*offset), &mut bytes).unwrap(),
            Frame::Payload(payload) => put_frame(payload, &mut bytes).unwrap(),
            Frame::Seal => put_frame(&[], &mut bytes).unwrap(),
            Frame::Raw(raw) => bytes.extend_from_slice(raw),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // Changed bytes anywhere in a valid log (and its snapshots): every
    // acknowledged transaction, or a refusal.
    #[test]
    fn mutated_logs_recover_everything_or_refuse(
        snapshots in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        let disk = valid(snapshots);
        let mut all_files = Vec::new();
        for name in files(&disk, "log", ".seg") {
            all_files.push(("log", name));
        }
        for name in files(&disk, "snapshots", ".snap") {
            all_files.push(("snapshots", name));
        }
        for m in &mutations {
            let (dir, name) = &all_files[(m.file * all_files.len() as f64) as usize];
            let mut bytes = get(&disk, dir, name);
            let at = (m.position * bytes.len() as f64) as usize;
            bytes[at] ^= m.xor;
            put(&disk, dir, name, &bytes);
        }
        if let Ok(values) = recover(&disk) {
            prop_assert_eq!(values, (0..7).collect::<Vec<_>>());
        }
    }

    // Segments made of arbitrary frames and bytes: recovery refuses, or
    // starts with exactly transactions 0, 1, 2, ... and nothing else.
    #[test]
    fn arbitrary_segments_never_panic(
        segments in proptest::collection::vec(
            (0..10u64, proptest::collection::vec(frame(), 0..6)),
            0..4,
        ),
        tail in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let disk = MemoryDisk::new();
        publish(&disk, b"module one");
        let log = disk.root().subdir("log").unwrap();
        let count = segments.len();
        for (i, (first, frames)) in segments.iter().enumerate() {
            let mut bytes = segment(frames);
            if i + 1 == count {
                bytes.extend_from_slice(&tail);
            }
            put(&disk, "log", &super::super::numbered_name(*first, "seg"), &bytes);
        }
        drop(log);
        if let Ok(values) = recover(&disk) {
            let count = values.len() as u64;
            prop_assert_eq!(values, (0..count).collect::<Vec<_>>());
        }
    }

    // Arbitrary bytes as the whole of a segment or a snapshot.
    #[test]
    fn arbitrary_files_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        snapshot in any::<bool>(),
    ) {
        let disk = MemoryDisk::new();
        publish(&disk, b"module one");
        if snapshot {
            put(&disk, "snapshots", "00000000000000000003.snap", &bytes);
        } else {
            put(&disk, "log", "00000000000000000000.seg", &bytes);
        }
        let _ = recover(&disk);
    }
}

// #10 item 6: replay trusts a record's checksum only as far as it is safe:
// a well-formed record that deletes a row the tables do not have is
// refused as corrupt, naming the file, not applied or a panic.
#[test]
fn a_well_formed_record_that_does_not_apply_is_refused() {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let missing = TxDelta {
        tables: vec![TableDelta {
            table: 0,
            inserts: Vec::new(),
            deletes: vec![postcard::to_allocvec(&99u64).unwrap().as_slice().into()],
        }],
        sequences: Vec::new(),
    };
    let mut bytes = segment(&[Frame::Record(0)]);
    put_frame(
        &LogRecord::new(1, "delete", [7; 32], 0, &missing).encode(),
        &mut bytes,
    )
    .unwrap();
    put(&disk, "log", &super::super::numbered_name(0, "seg"), &bytes);
    match recover(&disk) {
        Err(StorageError::Corrupt { file, reason, .. }) => {
            assert_eq!(file, "log/00000000000000000000.seg");
            assert!(reason.starts_with("record does not apply"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
