//! Snapshots: every table's rows and every sequence's position as of one
//! point in the log, written atomically under a database's `snapshots/`.
//! A snapshot file is its header (format 3: the magic, the database's id
//! and their checksum, see [`database_id`]; format 2, still read: the
//! magic alone) followed by exactly one frame (see [`frame`](super::frame))
//! holding the postcard-encoded [`Snapshot`].

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::StorageError;
use super::database_id::{self, DatabaseId, Header, Magics, Ownership};
use super::frame::{FrameEnd, put_frame, read_frames};
use super::fs::Directory;
use super::record::LoggedSequence;

/// Every new snapshot file starts with these bytes (format 3, like the
/// log's: the header names the database).
const SNAPSHOT_MAGIC: &[u8; 8] = b"WLSNP003";

/// The magics a snapshot may start with: format 3, or format 2 (the same
/// frame after just the magic, naming no database), still read.
pub(crate) const SNAPSHOT_MAGICS: Magics = Magics {
    identified: SNAPSHOT_MAGIC,
    unidentified: b"WLSNP002",
};

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
    let mut names = super::numbered_files(dir, "snapshots/", "snap")?;
    names.reverse();
    Ok(names)
}

/// Writes `snapshot` of database `id` atomically: a temporary file, fsync,
/// rename, fsync of the directory. On failure the temporary file is removed.
/// With `copy`, a second file with the same bytes follows (see
/// [`copy_name`]); without, any such file of the same name goes.
pub(crate) fn write_snapshot(
    dir: &dyn Directory,
    snapshot: &Snapshot,
    id: DatabaseId,
    copy: bool,
) -> Result<(), StorageError> {
    let name = super::numbered_name(snapshot.next_offset, "snap");
    let mut bytes = database_id::header(SNAPSHOT_MAGIC, id).to_vec();
    put_frame(
        &postcard::to_allocvec(snapshot).expect("encoding to a Vec cannot fail"),
        &mut bytes,
    )?;
    super::write_durably(dir, "snapshots/", &name, &bytes)?;
    if copy {
        super::write_durably(dir, "snapshots/", &copy_name(&name), &bytes)
    } else {
        // A copy left by a swap that did not complete is not this one's.
        remove_copy(dir, &name)
    }
}

/// The name of the second copy of snapshot `name`, which a module swap
/// writes: its snapshot is the only copy of the database's data until the
/// next ones are taken (the log before it was written for the old module),
/// so a damaged one must not lose the database. Not ending in `.snap`, it
/// is never listed as a snapshot of its own; it goes when its snapshot does.
pub(crate) fn copy_name(name: &str) -> String {
    format!("{name}.copy")
}

/// The suffix a snapshot that recovery could not use gets (see
/// [`set_aside`]); such a file is never listed as a snapshot again.
const SET_ASIDE_SUFFIX: &str = ".skipped";

/// Renames snapshot `name` (and its copy, if it has one) so that it is no
/// longer listed as a snapshot: `N.snap` becomes `N.snap.skipped`. Returns
/// the new name.
pub(crate) fn set_aside(dir: &dyn Directory, name: &str) -> Result<String, StorageError> {
    let renamed = format!("{name}{SET_ASIDE_SUFFIX}");
    let copy = copy_name(name);
    let listed = dir
        .list()
        .map_err(|e| StorageError::io("listing snapshots/", e))?;
    if listed.contains(&copy) {
        dir.rename(&copy, &format!("{copy}{SET_ASIDE_SUFFIX}"))
            .map_err(|e| StorageError::io(format!("renaming snapshots/{copy}"), e))?;
    }
    dir.rename(name, &renamed)
        .map_err(|e| StorageError::io(format!("renaming snapshots/{name}"), e))?;
    super::sync_directory(dir)?;
    Ok(renamed)
}

/// Removes the second copy of snapshot `name`, if it has one.
pub(crate) fn remove_copy(dir: &dyn Directory, name: &str) -> Result<(), StorageError> {
    let copy = copy_name(name);
    match dir.remove(&copy) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(format!("removing snapshots/{copy}"), e)),
    }
}

/// Reads snapshot `name` as [`read_snapshot`] does, or, if it does not read
/// back (but is not another database's), its second copy (see
/// [`copy_name`]) if it has one; the snapshot's own error if neither reads.
pub(crate) fn read_snapshot_or_copy(
    dir: &dyn Directory,
    next_offset: u64,
    name: &str,
    ownership: &Ownership,
) -> Result<Snapshot, StorageError> {
    match read_snapshot(dir, next_offset, name, ownership) {
        Err(error) if !error.is_foreign() => {
            let copy = copy_name(name);
            let listed = dir
                .list()
                .map_err(|e| StorageError::io("listing snapshots/", e))?;
            if !listed.contains(&copy) {
                return Err(error);
            }
            match read_snapshot(dir, next_offset, &copy, ownership) {
                Ok(snapshot) => {
                    tracing::warn!(
                        "snapshots/{name} does not read back ({error}); using its copy, {copy}"
                    );
                    Ok(snapshot)
                }
                Err(foreign) if foreign.is_foreign() => Err(foreign),
                Err(_) => Err(error),
            }
        }
        read => read,
    }
}

/// Reads and verifies snapshot `name`, which holds the transactions
/// before `next_offset`; refuses a snapshot of another database (see
/// [`Ownership::check`]).
pub(crate) fn read_snapshot(
    dir: &dyn Directory,
    next_offset: u64,
    name: &str,
    ownership: &Ownership,
) -> Result<Snapshot, StorageError> {
    let file = format!("snapshots/{name}");
    let bytes = dir
        .read(name)
        .map_err(|e| StorageError::io(format!("reading snapshot {name}"), e))?;
    let header = check_header(&file, next_offset, &bytes, ownership)?;
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        file: file.clone(),
        offset: (header + offset) as u64,
        reason,
    };
    let (frames, end) = read_frames(&bytes[header..]);
    match (frames.as_slice(), end) {
        ([(_, payload)], FrameEnd::Clean) => postcard::from_bytes(payload)
            .map_err(|e| corrupt(0, format!("undecodable snapshot: {e}"))),
        (_, FrameEnd::Torn { at, .. }) => Err(corrupt(at, "the snapshot is incomplete".into())),
        (_, FrameEnd::Corrupt { at, reason }) => Err(corrupt(at, reason)),
        _ => Err(corrupt(0, "expected exactly one record".into())),
    }
}

/// Checks the header at the start of `bytes`, the content of snapshot
/// `file` (or its first bytes) holding the transactions before
/// `next_offset`; returns its length.
fn check_header(
    file: &str,
    next_offset: u64,
    bytes: &[u8],
    ownership: &Ownership,
) -> Result<usize, StorageError> {
    let corrupt = |offset: usize, reason: &str| StorageError::Corrupt {
        file: file.to_owned(),
        offset: offset as u64,
        reason: reason.to_owned(),
    };
    match database_id::read_header(bytes, &SNAPSHOT_MAGICS) {
        Header::Valid(owner, len) => {
            ownership.check(file, next_offset, owner)?;
            Ok(len)
        }
        Header::Unknown => Err(corrupt(
            0,
            "not a Worldline snapshot of format 2 or 3 (bad magic)",
        )),
        Header::Damaged(reason) => Err(corrupt(SNAPSHOT_MAGIC.len(), reason)),
    }
}

/// Refuses snapshot `name` (holding the transactions before
/// `next_offset`) if its header names another database
/// ([`Ownership::check_file`]).
pub(crate) fn check_snapshot_owner(
    dir: &dyn Directory,
    next_offset: u64,
    name: &str,
    ownership: &Ownership,
) -> Result<(), StorageError> {
    ownership.check_file(
        dir,
        name,
        &format!("snapshots/{name}"),
        next_offset,
        &SNAPSHOT_MAGICS,
    )
}

/// Deletes all but the `keep` newest snapshots. A snapshot of another
/// database (put there while the server ran) is not removed: that is an error.
pub(crate) fn prune_snapshots(
    dir: &dyn Directory,
    keep: usize,
    ownership: &Ownership,
) -> Result<(), StorageError> {
    for (next_offset, name) in snapshot_names(dir)?.into_iter().skip(keep.max(1)) {
        check_snapshot_owner(dir, next_offset, &name, ownership)?;
        dir.remove(&name)
            .map_err(|e| StorageError::io(format!("removing old snapshot {name}"), e))?;
        remove_copy(dir, &name)?;
    }
    super::sync_directory(dir)
}
