//! Snapshots: every table's rows and every sequence's position as of one
//! point in the log, written atomically under a database's `snapshots/`.

use std::io::{Read, Write};

use cap_std::fs::{Dir, OpenOptions};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::StorageError;
use super::frame::{FrameEnd, put_frame, read_frames};
use super::record::LoggedSequence;

/// Every snapshot file starts with these bytes.
const SNAPSHOT_MAGIC: &[u8; 8] = b"WLSNP001";

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
pub(crate) fn snapshot_names(dir: &Dir) -> Result<Vec<(u64, String)>, StorageError> {
    let mut names = super::numbered_files(dir, "snap")?;
    names.reverse();
    Ok(names)
}

/// Writes `snapshot` atomically: a temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_snapshot(dir: &Dir, snapshot: &Snapshot) -> Result<(), StorageError> {
    let name = super::numbered_name(snapshot.next_offset, "snap");
    let temporary = format!(".{name}.tmp");
    let mut bytes = SNAPSHOT_MAGIC.to_vec();
    put_frame(
        &postcard::to_allocvec(snapshot).expect("encoding to a Vec cannot fail"),
        &mut bytes,
    )?;
    let mut file = dir
        .open_with(
            &temporary,
            OpenOptions::new().create(true).truncate(true).write(true),
        )
        .map_err(|e| StorageError::io(format!("creating snapshot {temporary}"), e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io(format!("writing snapshot {temporary}"), e))?;
    drop(file);
    dir.rename(&temporary, dir, &name)
        .map_err(|e| StorageError::io(format!("renaming snapshot {temporary} to {name}"), e))?;
    super::sync_dir(dir)
}

/// Reads and verifies one snapshot file.
pub(crate) fn read_snapshot(dir: &Dir, name: &str) -> Result<Snapshot, StorageError> {
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        file: format!("snapshots/{name}"),
        offset: offset as u64,
        reason,
    };
    let mut bytes = Vec::new();
    dir.open(name)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| StorageError::io(format!("reading snapshot {name}"), e))?;
    let Some(body) = bytes.strip_prefix(SNAPSHOT_MAGIC.as_slice()) else {
        return Err(corrupt(0, "not a Worldline snapshot (bad magic)".into()));
    };
    let (frames, end) = read_frames(body);
    match (frames.as_slice(), end) {
        ([(_, payload)], FrameEnd::Clean) => postcard::from_bytes(payload)
            .map_err(|e| corrupt(SNAPSHOT_MAGIC.len(), format!("undecodable snapshot: {e}"))),
        (_, FrameEnd::Torn { at } | FrameEnd::Corrupt { at, .. }) => Err(corrupt(
            SNAPSHOT_MAGIC.len() + at,
            "checksum or length mismatch".into(),
        )),
        _ => Err(corrupt(
            SNAPSHOT_MAGIC.len(),
            "expected exactly one record".into(),
        )),
    }
}

/// Deletes all but the `keep` newest snapshots (and leftover temporary files).
pub(crate) fn prune_snapshots(dir: &Dir, keep: usize) -> Result<(), StorageError> {
    for (_, name) in snapshot_names(dir)?.into_iter().skip(keep.max(1)) {
        dir.remove_file(&name)
            .map_err(|e| StorageError::io(format!("removing old snapshot {name}"), e))?;
    }
    Ok(())
}
