//! Recovery: the newest valid snapshot, then every log record after it.
//! A torn final record is cut off with a warning; anything else that does
//! not read back is an error naming the file and byte offset.

use std::time::{Duration, Instant};

use cap_std::fs::{Dir, OpenOptions};
use worldline_datastore::{Datastore, Row, SequenceState, TableDelta, TableSchema, TxDelta};

use super::StorageError;
use super::commitlog::{SEGMENT_MAGIC, read_segment, segment_names};
use super::frame::{FrameEnd, read_frames};
use super::record::LogRecord;
use super::snapshot::{Snapshot, read_snapshot, snapshot_names};

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot recovery started from, as the offset after its last transaction.
    pub snapshot: Option<u64>,
    /// Log records replayed after the snapshot.
    pub replayed: u64,
    /// Bytes of a torn final record that were cut off.
    pub truncated_bytes: u64,
    /// The offset the next transaction gets.
    pub next_offset: u64,
    /// How long recovery took.
    pub duration: Duration,
}

pub(crate) fn recover(
    log: &Dir,
    snapshots: &Dir,
    tables: &[TableSchema],
    module_hash: [u8; 32],
) -> Result<(Datastore, RecoveryReport), StorageError> {
    let started = Instant::now();
    let (mut datastore, snapshot) = load_newest_snapshot(snapshots, tables, module_hash)?;
    let mut expected = snapshot.unwrap_or(0);
    let mut replayed = 0;
    let mut truncated_bytes = 0;
    let segments = segment_names(log)?;
    for (position, (_, name)) in segments.iter().enumerate() {
        let is_last = position + 1 == segments.len();
        let file = format!("log/{name}");
        let records = read_segment(log, name)?;
        let (frames, end) = read_frames(&records);
        for (at, payload) in frames {
            let corrupt = |reason: String| StorageError::Corrupt {
                file: file.clone(),
                offset: (SEGMENT_MAGIC.len() + at) as u64,
                reason,
            };
            let record = LogRecord::decode(payload)
                .map_err(|e| corrupt(format!("undecodable record: {e}")))?;
            if record.offset < expected {
                continue; // already in the snapshot
            }
            if record.offset != expected {
                return Err(corrupt(format!(
                    "expected the record of transaction {expected}, found {}",
                    record.offset
                )));
            }
            datastore
                .replay(&record.delta())
                .map_err(|e| corrupt(format!("record does not apply: {e}")))?;
            expected += 1;
            replayed += 1;
        }
        match end {
            FrameEnd::Clean => {}
            FrameEnd::Torn { at } if is_last => {
                let keep = (SEGMENT_MAGIC.len() + at) as u64;
                truncated_bytes = (SEGMENT_MAGIC.len() + records.len()) as u64 - keep;
                tracing::warn!(
                    "{file}: cutting off a torn final record ({truncated_bytes} bytes at byte {keep}), \
                     left by an interrupted write"
                );
                log.open_with(name, OpenOptions::new().write(true))
                    .and_then(|f| {
                        f.set_len(keep)?;
                        f.sync_all()
                    })
                    .map_err(|e| StorageError::io(format!("truncating {file}"), e))?;
            }
            FrameEnd::Torn { at } => {
                return Err(StorageError::Corrupt {
                    file,
                    offset: (SEGMENT_MAGIC.len() + at) as u64,
                    reason: "incomplete record in a segment that is not the newest".into(),
                });
            }
            FrameEnd::Corrupt { at, reason } => {
                return Err(StorageError::Corrupt {
                    file,
                    offset: (SEGMENT_MAGIC.len() + at) as u64,
                    reason,
                });
            }
        }
    }
    let report = RecoveryReport {
        snapshot,
        replayed,
        truncated_bytes,
        next_offset: expected,
        duration: started.elapsed(),
    };
    Ok((datastore, report))
}

/// The state of the newest snapshot that reads back and fits the schema
/// (falling back to older ones), or empty tables if there is none.
fn load_newest_snapshot(
    snapshots: &Dir,
    tables: &[TableSchema],
    module_hash: [u8; 32],
) -> Result<(Datastore, Option<u64>), StorageError> {
    for (offset, name) in snapshot_names(snapshots)? {
        match read_snapshot(snapshots, &name).and_then(|s| restore(s, tables, module_hash)) {
            Ok(datastore) => return Ok((datastore, Some(offset))),
            Err(e) => tracing::warn!("skipping snapshot {name}: {e}"),
        }
    }
    Ok((Datastore::new(tables.to_vec()), None))
}

fn restore(
    snapshot: Snapshot,
    tables: &[TableSchema],
    module_hash: [u8; 32],
) -> Result<Datastore, StorageError> {
    if snapshot.module_hash != module_hash {
        return Err(StorageError::Mismatch(
            "the snapshot was taken with a different module".into(),
        ));
    }
    let names: Vec<&str> = snapshot
        .tables
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    let expected: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    if names != expected {
        return Err(StorageError::Mismatch(format!(
            "the snapshot has tables {names:?}, the module {expected:?}"
        )));
    }
    let delta = TxDelta {
        tables: snapshot
            .tables
            .iter()
            .enumerate()
            .map(|(table, (_, rows))| TableDelta {
                table,
                inserts: rows.iter().map(|r| Row::from(r.as_slice())).collect(),
                deletes: Vec::new(),
            })
            .collect(),
        sequences: snapshot.sequences.iter().map(SequenceState::from).collect(),
    };
    let mut datastore = Datastore::new(tables.to_vec());
    datastore
        .replay(&delta)
        .map_err(|e| StorageError::Mismatch(format!("the snapshot does not load: {e}")))?;
    Ok(datastore)
}
