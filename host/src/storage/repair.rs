//! Repairing a commit log that recovery refuses because it is damaged.
//!
//! Recovery never skips data: a damaged record, a missing segment in the
//! middle of the log or a sealed newest segment keeps the database from
//! starting. A repair, which its owner runs on purpose with the server
//! stopped, keeps every transaction before the first damage and sets the
//! rest aside: the part of the damaged segment from the damage on (the
//! segment is copied whole first), every later segment, and every snapshot
//! of transactions past the cut (they would otherwise be taken for the
//! database's own once it commits new transactions with those offsets).
//! Nothing is deleted: what is set aside goes to
//! `set-aside/<stamp>/log/` and `set-aside/<stamp>/snapshots/` in the
//! database's directory, where it can be examined or restored by hand.
//!
//! The damage is found as recovery finds it ([`read_log`]), from the
//! snapshot recovery would start from: the newest one that reads back and
//! was taken with the database's module. Damage before that snapshot's
//! offset, in the segment holding it, leaves the records after the
//! snapshot unreachable: that segment goes whole, and the log continues
//! from the snapshot in an empty segment.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::commitlog::{SEGMENT_MAGICS, create_segment, read_segment, segment_names};
use super::database_id::{
    DatabaseId, HEADER_BYTES, Header, Magics, Ownership, read_header, sole_owner,
};
use super::frame::read_frames;
use super::fs::Directory;
use super::published_schema::recorded_module;
use super::recovery::{
    CutPoint, Unreadable, check_module, check_owners, newest_usable_snapshot, read_log,
};
use super::snapshot::{SNAPSHOT_MAGICS, copy_name, snapshot_names};
use super::{StorageError, write_durably};
use crate::identity::hex;

/// What a repair of a database's commit log would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairPlan {
    /// The log reads back to its end (a torn final record, which recovery
    /// cuts off itself, aside): nothing to repair.
    Readable {
        /// The offset the next transaction gets.
        next_offset: u64,
    },
    /// The log does not read back, and cutting it would not help.
    Unrepairable(String),
    /// The log is damaged; cutting it where the damage starts keeps every
    /// transaction before it.
    Cut(LogCut),
}

/// Where a damaged log is cut, and what is set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCut {
    /// The damage, as recovery reports it.
    pub damage: String,
    /// The snapshot the kept transactions start from (the offset after its
    /// last transaction), if any.
    pub snapshot: Option<u64>,
    /// The transactions kept are those before this one.
    pub keep_below: u64,
    /// The segment cut, relative to the database's directory (`log/…`);
    /// `None` when the log has no segment from the cut on (they were
    /// deleted), and an empty segment starts at the cut.
    pub segment: Option<String>,
    /// The bytes of it kept (its header and whole records); 0 when it goes
    /// whole (none of it reads back, or the damage is in records the
    /// snapshot holds), and an empty segment starts at the cut.
    pub keep_bytes: u64,
    /// Its size now.
    pub segment_bytes: u64,
    /// The files set aside whole, relative to the database's directory:
    /// the later segments and the snapshots past the cut.
    pub set_aside: Vec<String>,
}

/// The directory, within the database's, that a repair stamped `stamp`
/// sets its files aside in.
pub(crate) fn set_aside_dir(stamp: &str) -> String {
    format!("set-aside/{stamp}")
}

/// The id a database's `database-id` held, when the file is missing and
/// its segments and snapshots all name that one database (see
/// [`sole_owner`]): a repair writes it back.
pub(crate) fn lost_database_id(dir: &dyn Directory) -> Result<Option<DatabaseId>, StorageError> {
    if !Ownership::load(dir)?.is_unrecorded() {
        return Ok(None);
    }
    let Some((log, snapshots)) = log_dirs(dir)? else {
        return Ok(None);
    };
    let segments = segment_names(&*log)?.into_iter().map(|(_, name)| name);
    let mut found = headers(&*log, "log/", segments, &SEGMENT_MAGICS)?;
    let snapshot_files = snapshot_names(&*snapshots)?
        .into_iter()
        .map(|(_, name)| name);
    found.extend(headers(
        &*snapshots,
        "snapshots/",
        snapshot_files,
        &SNAPSHOT_MAGICS,
    )?);
    Ok(sole_owner(found))
}

/// Writes back `id`, which [`lost_database_id`] found, as the `database-id`
/// of the database in `dir`.
pub(crate) fn restore_database_id(dir: &dyn Directory, id: DatabaseId) -> Result<(), StorageError> {
    Ownership::adopting(id).record(dir, 0, false)
}

/// The headers of files `names` in `dir` (`folder` in errors).
fn headers(
    dir: &dyn Directory,
    folder: &str,
    names: impl Iterator<Item = String>,
    magics: &Magics,
) -> Result<Vec<Header>, StorageError> {
    names
        .map(|name| {
            let head = dir
                .read_head(&name, HEADER_BYTES)
                .map_err(|e| StorageError::io(format!("reading {folder}{name}"), e))?;
            Ok(read_header(&head, magics))
        })
        .collect()
}

/// A database's `log/` and `snapshots/` directories.
type LogDirs = (Arc<dyn Directory>, Arc<dyn Directory>);

/// The database's `log/` and `snapshots/` directories, if it has a log.
fn log_dirs(dir: &dyn Directory) -> Result<Option<LogDirs>, StorageError> {
    let entries = dir
        .list()
        .map_err(|e| StorageError::io("listing the database's directory", e))?;
    if !entries.iter().any(|entry| entry == "log") {
        return Ok(None);
    }
    let subdir = |name: &str| {
        dir.subdir(name)
            .map_err(|e| StorageError::io(format!("opening {name}/"), e))
    };
    Ok(Some((subdir("log")?, subdir("snapshots")?)))
}

/// Finds where the log of the database in `dir` stops reading back, as
/// recovery would, without changing anything. A file of another database
/// refuses, as it does at recovery. A database whose `database-id` is
/// missing is read as the one its files name, if they all name one
/// ([`lost_database_id`]).
pub(crate) fn plan(dir: &dyn Directory) -> Result<RepairPlan, StorageError> {
    let Some((log, snapshots)) = log_dirs(dir)? else {
        return Ok(RepairPlan::Readable { next_offset: 0 });
    };
    let ownership = match lost_database_id(dir)? {
        Some(id) => Ownership::adopting(id),
        None => Ownership::load(dir)?,
    };
    check_owners(&*log, &*snapshots, &ownership)?;
    let module = dir
        .read("module.wasm")
        .map_err(|e| StorageError::io("reading module.wasm", e))?;
    let module_hash: [u8; 32] = Sha256::digest(&module).into();
    // The snapshot recovery starts from: recovery also checks that its
    // tables are the module's, which only the module can tell.
    let newest = newest_usable_snapshot(&*snapshots, &ownership, |snapshot| {
        check_module(&snapshot, module_hash)
    })?;
    let (snapshot, skipped) = (newest.used.map(|(offset, ())| offset), newest.skipped);
    if snapshot.is_none()
        && skipped.iter().any(|s| s.other_module())
        && let Some(recorded) = recorded_module(dir)?
        && recorded != hex(&module_hash)
    {
        // Not the snapshots' fault: module.wasm is not the database's module.
        return Ok(RepairPlan::Unrepairable(format!(
            "module.wasm is not the module this database runs: its SHA-256 is {}, while \
             schema.json, written when the module was published, names {recorded}, and the \
             snapshots were taken with that one. module.wasm was damaged or replaced: restore \
             it from the component that was published (the server's startup output says what \
             is wrong with it); a cut of the log cannot mend this",
            hex(&module_hash)
        )));
    }
    let cut = match read_log(&*log, snapshot, &skipped, &ownership, |_, _| Ok(())) {
        Ok(end) => {
            return Ok(RepairPlan::Readable {
                next_offset: end.next_offset,
            });
        }
        Err(Unreadable {
            error: error @ StorageError::Missing(_),
            cut: None,
        }) if snapshot.is_some() => {
            // The log does not reach the snapshot, or starts after it (its
            // segments were deleted): it continues from the snapshot.
            return restart_at_snapshot(&*log, &*snapshots, error, snapshot);
        }
        Err(Unreadable { error, cut: None }) => {
            return Ok(RepairPlan::Unrepairable(format!(
                "{error} (a cut of the log cannot mend this)"
            )));
        }
        Err(Unreadable {
            error,
            cut: Some(cut),
        }) => (error, cut),
    };
    let (
        error,
        CutPoint {
            segment,
            keep,
            next,
        },
    ) = cut;
    let start = snapshot.unwrap_or(0);
    let (segment, keep, next) = if next < start {
        // The damage is in records the snapshot holds, and the ones after
        // it cannot be found past it: the segment goes whole, and an
        // empty one starts at the snapshot.
        (segment, 0, start)
    } else if keep == 0 {
        let (segment, keep) = unseal_predecessor(&*log, segment, &ownership)?;
        (segment, keep, next)
    } else {
        (segment, keep, next)
    };
    let segment_bytes = segment_size(&*log, &segment.1)?;
    let mut set_aside: Vec<String> = segment_names(&*log)?
        .into_iter()
        .filter(|(first, _)| *first > segment.0)
        .map(|(_, name)| format!("log/{name}"))
        .collect();
    set_aside.extend(snapshots_past(&*snapshots, next)?);
    Ok(RepairPlan::Cut(LogCut {
        damage: error.to_string(),
        snapshot,
        keep_below: next,
        segment: Some(format!("log/{}", segment.1)),
        keep_bytes: keep,
        segment_bytes,
        set_aside,
    }))
}

/// The cut of a log that does not reach `snapshot` (the transactions after
/// it are gone with its segments) or starts after it: every segment after
/// the snapshot goes (the first is the one "cut"), and the log continues
/// from the snapshot in an empty segment. (Without a usable snapshot, such a
/// log is not cut: that would keep nothing.)
fn restart_at_snapshot(
    log: &dyn Directory,
    snapshots: &dyn Directory,
    error: StorageError,
    snapshot: Option<u64>,
) -> Result<RepairPlan, StorageError> {
    let start = snapshot.unwrap_or(0);
    let mut later = segment_names(log)?
        .into_iter()
        .filter(|(first, _)| *first > start)
        .map(|(_, name)| name);
    let segment = later.next();
    let segment_bytes = match &segment {
        Some(name) => segment_size(log, name)?,
        None => 0,
    };
    let mut set_aside: Vec<String> = later.map(|name| format!("log/{name}")).collect();
    set_aside.extend(snapshots_past(snapshots, start)?);
    Ok(RepairPlan::Cut(LogCut {
        damage: error.to_string(),
        snapshot,
        keep_below: start,
        segment: segment.map(|name| format!("log/{name}")),
        keep_bytes: 0,
        segment_bytes,
        set_aside,
    }))
}

/// The size of segment `name`.
fn segment_size(log: &dyn Directory, name: &str) -> Result<u64, StorageError> {
    let io = |e| StorageError::io(format!("reading log/{name}"), e);
    log.size(name).map_err(io)
}

/// The snapshots (and their copies) of transactions past `next`, as
/// `snapshots/…`: a repair that keeps the transactions before `next` sets
/// them aside (a new snapshot at their offset must not find them).
fn snapshots_past(snapshots: &dyn Directory, next: u64) -> Result<Vec<String>, StorageError> {
    let listed = snapshots
        .list()
        .map_err(|e| StorageError::io("listing snapshots/", e))?;
    let mut past = Vec::new();
    for (offset, name) in snapshot_names(snapshots)? {
        if offset > next {
            let copy = copy_name(&name);
            past.push(format!("snapshots/{name}"));
            if listed.contains(&copy) {
                past.push(format!("snapshots/{copy}"));
            }
        }
    }
    Ok(past)
}

/// Where to cut when none of `segment` reads back: the segment before it,
/// if it ends with a seal, is cut before its seal (it becomes the newest
/// segment, which recovery refuses sealed), and `segment` goes with the
/// later ones; otherwise `segment` goes whole (0 bytes kept).
fn unseal_predecessor(
    log: &dyn Directory,
    segment: (u64, String),
    ownership: &Ownership,
) -> Result<((u64, String), u64), StorageError> {
    let previous = segment_names(log)?
        .into_iter()
        .take_while(|(first, _)| *first < segment.0)
        .last();
    if let Some((first, name)) = previous {
        let read = read_segment(log, first, &name, ownership)?;
        let (frames, _) = read_frames(&read.records);
        if let Some((at, payload)) = frames.last()
            && payload.is_empty()
        {
            let keep = (read.header + at) as u64;
            return Ok(((first, name), keep));
        }
    }
    Ok((segment, 0))
}

/// Carries out `cut` on the database in `dir`: copies what it sets aside
/// into [`set_aside_dir`]`(stamp)` (each file made durable), and only then
/// removes the files copied whole and cuts the damaged segment (or
/// replaces it with an empty one). A repair
/// interrupted part way leaves every byte either in place or set aside,
/// and can be run again.
pub(crate) fn apply(dir: &dyn Directory, cut: &LogCut, stamp: &str) -> Result<(), StorageError> {
    let target = set_aside_dir(stamp);
    let io = |what: String| move |e| StorageError::io(what, e);
    let into = dir
        .subdir("set-aside")
        .and_then(|set_aside| set_aside.subdir(stamp))
        .map_err(io(format!("creating {target}/")))?;
    let mut copied = Vec::new();
    for file in cut.segment.iter().chain(&cut.set_aside) {
        let (folder, name) = file.split_once('/').expect("a file in log/ or snapshots/");
        let from = dir
            .subdir(folder)
            .map_err(io(format!("opening {folder}/")))?;
        let to = into
            .subdir(folder)
            .map_err(io(format!("creating {target}/{folder}/")))?;
        let bytes = from.read(name).map_err(io(format!("reading {file}")))?;
        write_durably(&*to, &format!("{target}/{folder}/"), name, &bytes)?;
        copied.push((from, name));
    }
    let whole = usize::from(cut.segment.is_some());
    for (folder, name) in &copied[whole..] {
        folder
            .remove(name)
            .map_err(io(format!("removing a file set aside ({name})")))?;
    }
    let log = dir.subdir("log").map_err(io("opening log/".to_owned()))?;
    let segment = cut.segment.as_ref().map(|_| copied[0].1);
    if cut.keep_bytes == 0 {
        // The log continues from the cut in an empty segment (its header
        // alone), made before the damaged one goes (it replaces it
        // atomically if it has the same name), so that the log reaches the
        // cut at every moment. A database an earlier version wrote (format
        // 2, no `database-id` yet) gets its id first, as its next start
        // would give it, so that the new segment names it.
        let mut ownership = Ownership::load(dir)?;
        ownership.record(dir, cut.keep_below, true)?;
        let (_, _, empty) = create_segment(&*log, cut.keep_below, ownership.id())?;
        if let Some(segment) = segment
            && empty != segment
        {
            log.remove(segment)
                .map_err(io(format!("removing log/{segment}")))?;
        }
    } else if let Some(segment) = segment {
        let mut handle = log
            .open_existing(segment)
            .map_err(io(format!("opening log/{segment}")))?;
        handle
            .set_len(cut.keep_bytes)
            .and_then(|()| handle.sync())
            .map_err(io(format!("cutting log/{segment}")))?;
    }
    for folder in copied.iter().map(|(folder, _)| folder).chain([&log]) {
        folder
            .sync()
            .map_err(io("syncing the database's directories".to_owned()))?;
    }
    Ok(())
}
