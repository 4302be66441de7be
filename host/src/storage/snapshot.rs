//! Snapshots: every table's rows and every sequence's position as of one
//! point in the log, written atomically under a database's `snapshots/`.
//! A snapshot file is its magic followed by exactly one frame (see
//! [`frame`](super::frame)) holding the postcard-encoded [`Snapshot`].

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::StorageError;
use super::frame::{FrameEnd, put_frame, read_frames};
use super::fs::Directory;
use super::record::LoggedSequence;

/// Every snapshot file starts with these bytes (format 2, like the log's).
const SNAPSHOT_MAGIC: &[u8; 8] = b"WLSNP002";

/// The state of a database after every transaction before `next_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// The offset of the first transaction the snapshot does not contain.
    pub(crate) next_offset: u64,
    /// SHA-256 of the module the data belongs to.
    pub(crate) module_hash: [u8; 32],
    /// Each table's name and rows, in table-id order.
    pub(crate) tables: Vec<(String, Vec<ByteBuf>)>,
    /// Every sequence's position.
    pub(crate) sequences: Vec<LoggedSequence>,
}

/// The snapshots in `dir`, newest first, as (next offset, file name).
pub(crate) fn snapshot_names(dir: &dyn Directory) -> Result<Vec<(u64, String)>, StorageError> {
    let mut names = super::numbered_files(dir, "snap")?;
    names.reverse();
    Ok(names)
}

/// Writes `snapshot` atomically: a temporary file, fsync, rename, fsync of
/// the directory. On failure the temporary file is removed.
pub(crate) fn write_snapshot(dir: &dyn Directory, snapshot: &Snapshot) -> Result<(), StorageError> {
    let name = super::numbered_name(snapshot.next_offset, "snap");
    let mut bytes = SNAPSHOT_MAGIC.to_vec();
    put_frame(
        &postcard::to_allocvec(snapshot).expect("encoding to a Vec cannot fail"),
        &mut bytes,
    )?;
    super::write_durably(dir, "snapshots/", &name, &bytes)
}

/// Reads and verifies one snapshot file.
pub(crate) fn read_snapshot(dir: &dyn Directory, name: &str) -> Result<Snapshot, StorageError> {
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        file: format!("snapshots/{name}"),
        offset: offset as u64,
        reason,
    };
    let bytes = dir
        .read(name)
        .map_err(|e| StorageError::io(format!("reading snapshot {name}"), e))?;
    let Some(body) = bytes.strip_prefix(SNAPSHOT_MAGIC.as_slice()) else {
        return Err(corrupt(
            0,
            "not a Worldline snapshot of format 2 (bad magic)".into(),
        ));
    };
    let (frames, end) = read_frames(body);
    match (frames.as_slice(), end) {
        ([(_, payload)], FrameEnd::Clean) => postcard::from_bytes(payload)
            .map_err(|e| corrupt(SNAPSHOT_MAGIC.len(), format!("undecodable snapshot: {e}"))),
        (_, FrameEnd::Torn { at, .. }) => Err(corrupt(
            SNAPSHOT_MAGIC.len() + at,
            "the snapshot is incomplete".into(),
        )),
        (_, FrameEnd::Corrupt { at, reason }) => Err(corrupt(SNAPSHOT_MAGIC.len() + at, reason)),
        _ => Err(corrupt(
            SNAPSHOT_MAGIC.len(),
            "expected exactly one record".into(),
        )),
    }
}

/// Deletes all but the `keep` newest snapshots.
pub(crate) fn prune_snapshots(dir: &dyn Directory, keep: usize) -> Result<(), StorageError> {
    for (_, name) in snapshot_names(dir)?.into_iter().skip(keep.max(1)) {
        dir.remove(&name)
            .map_err(|e| StorageError::io(format!("removing old snapshot {name}"), e))?;
    }
    super::sync_directory(dir)
}
