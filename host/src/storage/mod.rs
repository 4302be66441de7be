//! Durability: the commit log, snapshots and recovery of one database,
//! kept in the database's own directory capability.

mod commitlog;
mod database_id;
mod durability;
mod frame;
mod fs;
#[cfg(test)]
mod memory;
mod module_log_file;
mod published_schema;
mod record;
mod recovery;
mod repair;
mod snapshot;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use worldline_datastore::{Datastore, ModuleSchema, TxDelta};

use crate::module_log::ModuleLog;

pub use durability::{DurabilityPolicy, SyncHook};
pub(crate) use module_log_file::ModuleLogFile;
pub use recovery::RecoveryReport;
pub use repair::{LogCut, RepairPlan};
pub(crate) use repair::{
    apply as apply_repair, lost_database_id, plan as plan_repair, restore_database_id,
    set_aside_dir,
};

use commitlog::LogWriter;
use database_id::Ownership;
use durability::{Durability, Waker};
use fs::Directory;
use record::{LogRecord, LoggedSequence};
use snapshot::{Snapshot, prune_snapshots, snapshot_names, write_snapshot};

/// How a database persists its transactions.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// When a transaction counts as durable.
    pub durability: DurabilityPolicy,
    /// A log segment is closed and a new one started past this size.
    pub max_segment_bytes: u64,
    /// Write a snapshot after this many transactions (`None`: only on demand).
    pub snapshot_every: Option<u64>,
    /// With `snapshot_every` set, also write one once the log written since
    /// the last holds more bytes than the database's rows and at least
    /// this many: a database rewriting the same rows cannot grow its log on
    /// disk without bound (the log behind a snapshot is dropped), and a
    /// snapshot never costs more writing than the log it replaces.
    pub snapshot_log_bytes: u64,
    /// How many snapshots to keep; log segments older than the oldest kept one are deleted.
    pub keep_snapshots: usize,
    /// Called on the durability thread before each fsync of the commit log
    /// (`None` in production): tests use it to hold an fsync back.
    pub before_sync: Option<SyncHook>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            durability: DurabilityPolicy::Every,
            max_segment_bytes: 64 << 20,
            snapshot_every: Some(100_000),
            snapshot_log_bytes: 64 << 20,
            keep_snapshots: 2,
            before_sync: None,
        }
    }
}

/// A storage failure. Nothing was acknowledged that is not durable.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file holds bytes that are not what Worldline wrote.
    #[error("{file} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The file, relative to the database's directory.
        file: String,
        /// Where the bad bytes start.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The commit log could not be written; the database stops taking writes.
    #[error("the commit log failed: {0}")]
    LogFailed(String),
    /// A record or snapshot is too large to store.
    #[error("{0}")]
    TooLarge(String),
    /// A log segment or snapshot names another database than this one (the
    /// one in the database's `database-id` file), or is in format 2, which
    /// names none, where this database has only format-3 files: it was
    /// copied or restored into the wrong directory. The database does not
    /// start, and the file is left as it is.
    #[error(
        "{file} belongs to another database: {reason}. It was copied or restored into this \
         database's directory by mistake: move it out of the directory (Worldline has not \
         changed it), then start the server again"
    )]
    Foreign {
        /// The file, relative to the database's directory.
        file: String,
        /// Which database it names, and which this one is.
        reason: String,
    },
    /// A log segment or snapshot names a database, and this database's
    /// `database-id` is missing: it was lost (the file is the database's
    /// own), or the file was copied into a new database's directory.
    #[error(
        "{file} names database {id}, but this database's database-id file is missing. If the \
         log and snapshots are this database's own (its database-id was deleted or lost), a \
         repair (`worldline repair` with `--apply`, with no server running) writes it back from \
         their headers; if they were copied here from another database, move them out of the \
         directory. Worldline has not changed anything"
    )]
    IdMissing {
        /// The file, relative to the database's directory.
        file: String,
        /// The database it names, in hex.
        id: String,
    },
    /// Stored data does not belong to this module.
    #[error("{0}")]
    Mismatch(String),
    /// A file was written in an older on-disk format that this version does not read.
    #[error("{file} cannot be read: {reason}")]
    Unsupported {
        /// The file, relative to the database's directory.
        file: String,
        /// Which format it is in and which this version reads.
        reason: String,
    },
    /// Files the database needs are missing (a log segment deleted, the log
    /// emptied while snapshots remain): starting would lose committed
    /// transactions, so recovery refuses.
    #[error("committed transactions are missing: {0}")]
    Missing(String),
    /// The module describes another schema than it did when it became the
    /// database's module (see `published_schema`): its stored rows were
    /// written for that one, so the database does not start.
    #[error("{0}")]
    DescribeChanged(String),
    /// The log segment being written (named here) was removed, or its
    /// directory was, while the server ran: what it holds is gone once it
    /// closes, so the log confirms nothing more.
    #[error(
        "{0} was removed (or its directory was) while the server ran: the transactions in it \
         are lost when the server stops, and the commit log takes no more"
    )]
    SegmentRemoved(String),
    /// The log segment being written was cut short while the server ran
    /// (someone truncated it): the transactions in the part cut off are
    /// gone from it, and records written after the hole would not be read
    /// back, so the log confirms nothing more.
    #[error(
        "{file} was cut to {len} bytes while the server ran, where its records reached byte \
         {records_end}: the transactions in the part cut off are lost, and the commit log takes \
         no more"
    )]
    SegmentCut {
        /// The segment, relative to the database's directory.
        file: String,
        /// Its size when the cut was noticed.
        len: u64,
        /// Where its records ended.
        records_end: u64,
    },
    /// A file in `log/` or `snapshots/` ends as a segment or a snapshot does
    /// (`.seg`, `.snap`) but is not named the way Worldline names them (the
    /// 20-digit offset of its first transaction): it was put there by hand.
    /// Reading it could replay transactions twice or out of order, and
    /// passing over it could lose them, so the database does not start, and
    /// the file is left as it is.
    #[error(
        "{file} is not named as Worldline names its files there ({expected}): it was put there \
         by hand. Rename it or move it out of the directory (Worldline has not changed it), \
         then start the server again"
    )]
    Misnamed {
        /// The file, relative to the database's directory.
        file: String,
        /// How such files are named, with an example.
        expected: String,
    },
}

impl StorageError {
    /// Whether a file's header names another database than this one (or
    /// one while this database's id is missing): recovery refuses such a
    /// file rather than passing over it.
    fn is_foreign(&self) -> bool {
        matches!(self, Self::Foreign { .. } | Self::IdMissing { .. })
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Makes a directory's entries (new, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Dir) -> Result<(), StorageError> {
    sync_directory(dir)
}

/// [`sync_dir`] for any [`Directory`].
fn sync_directory(dir: &dyn Directory) -> Result<(), StorageError> {
    dir.sync()
        .map_err(|e| StorageError::io("syncing a directory", e))
}

/// Writes a whole file atomically: a temporary file, fsync, rename, fsync
/// of the directory. Readers see the old file or the new one, never a mix.
pub(crate) fn write_file_durably(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    write_durably(dir, "", name, bytes)
}

/// [`write_file_durably`] for any [`Directory`]; `label` (`log/`,
/// `snapshots/`, or empty for the database's own directory) prefixes file
/// names in messages. On failure the temporary file is removed, so failed
/// writes (a full disk) leave nothing behind.
fn write_durably(
    dir: &dyn Directory,
    label: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let temporary = format!(".{name}.tmp");
    let written = write_temporary(dir, &temporary, bytes)
        .map_err(|e| StorageError::io(format!("writing {label}{temporary}"), e))
        .and_then(|()| {
            dir.rename(&temporary, name).map_err(|e| {
                StorageError::io(format!("renaming {label}{temporary} to {label}{name}"), e)
            })
        });
    if let Err(e) = written {
        if let Err(remove) = dir.remove(&temporary)
            && remove.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove the temporary file {label}{temporary}: {remove}");
        }
        return Err(e);
    }
    sync_directory(dir)
}

/// Writes and fsyncs `bytes` as file `temporary`, replacing any file of that name.
fn write_temporary(dir: &dyn Directory, temporary: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = dir.create(temporary)?;
    file.write_all_at(0, bytes).and_then(|()| file.sync())
}

/// Removes the temporary files (`.NAME.tmp`) that writes interrupted by a
/// crash left in `dir`; `label` (`log/`, or empty for the database's own
/// directory) prefixes file names in messages.
fn remove_stale_temporaries(dir: &dyn Directory, label: &str) -> Result<(), StorageError> {
    let listing = if label.is_empty() {
        "listing the database directory".to_owned()
    } else {
        format!("listing {label}")
    };
    let names = dir.list().map_err(|e| StorageError::io(listing, e))?;
    for name in names {
        if name.starts_with('.') && name.ends_with(".tmp") {
            tracing::info!("removing {label}{name}, left by an interrupted write");
            dir.remove(&name)
                .map_err(|e| StorageError::io(format!("removing {label}{name}"), e))?;
        }
    }
    Ok(())
}

/// A file name for the offset `offset`: zero-padded so that names sort by offset.
pub(crate) fn numbered_name(offset: u64, extension: &str) -> String {
    format!("{offset:020}.{extension}")
}

/// The files in `dir` named by [`numbered_name`] with `extension`, as
/// (offset, name), lowest offset first. Files of other extensions are
/// passed over; a file of this extension named otherwise (`0.seg`,
/// `+1.seg`, twenty digits past `u64::MAX`) is [`StorageError::Misnamed`]:
/// it would be read as another file's offset, or not at all. `label`
/// (`log/`, `snapshots/`) prefixes file names in messages.
pub(crate) fn numbered_files(
    dir: &dyn Directory,
    label: &str,
    extension: &str,
) -> Result<Vec<(u64, String)>, StorageError> {
    let names = dir
        .list()
        .map_err(|e| StorageError::io(format!("listing the .{extension} files in {label}"), e))?;
    let mut files = Vec::new();
    for name in names {
        let Some(stem) = name
            .strip_suffix(extension)
            .and_then(|stem| stem.strip_suffix('.'))
        else {
            continue;
        };
        match stem.parse::<u64>() {
            Ok(offset) if numbered_name(offset, extension) == name => files.push((offset, name)),
            _ => {
                return Err(StorageError::Misnamed {
                    file: format!("{label}{name}"),
                    expected: format!(
                        "20 digits, then .{extension}, as {}",
                        numbered_name(0, extension)
                    ),
                });
            }
        }
    }
    files.sort();
    Ok(files)
}

fn open_or_create_dir(
    parent: &dyn Directory,
    name: &str,
) -> Result<Arc<dyn Directory>, StorageError> {
    parent
        .subdir(name)
        .map_err(|e| StorageError::io(format!("opening {name}/"), e))
}

/// The most an automatic snapshot's interval grows, as a multiple of
/// `snapshot_every`, after snapshots keep failing.
const MAX_SNAPSHOT_BACKOFF: u64 = 64;

/// The name of the reducer in the (empty) commit-log record that marks a
/// module swap; the new module's transactions follow it.
pub(crate) const SWAP_RECORD: &str = "<module swap>";

/// Why [`DatabaseStorage::swap_module`] failed.
#[derive(Debug)]
pub(crate) enum SwapFailed {
    /// The old module stays in place and may keep running.
    Unchanged(StorageError),
    /// `module.wasm` was replaced but the directory could not be synced: a
    /// crash may bring back either module. Neither may log another
    /// transaction (the other would misread it) until a swap succeeds.
    Undecided(StorageError),
}

/// Keeps the `keep` newest snapshots in `snapshots` and the segments of
/// `log` they need; removes no file of another database than `ownership`'s.
/// Until there are `keep` snapshots, every segment is kept: a damaged
/// snapshot is then passed over for an older one or the log's start,
/// instead of being the only copy of the transactions before it.
fn prune(
    log: &dyn Directory,
    snapshots: &dyn Directory,
    keep: usize,
    ownership: &Ownership,
) -> Result<(), StorageError> {
    prune_snapshots(snapshots, keep, ownership)?;
    let kept = snapshot_names(snapshots)?;
    match kept.last() {
        Some((oldest_kept, _)) if kept.len() >= keep => {
            commitlog::remove_segments_before(log, *oldest_kept, ownership)
        }
        _ => Ok(()),
    }
}

impl Drop for DatabaseStorage {
    /// Waits for a background snapshot, so that nothing writes in the
    /// database's directory once it is closed.
    fn drop(&mut self) {
        self.settle_background();
    }
}

/// The commit log and snapshots of one open database.
pub(crate) struct DatabaseStorage {
    /// The database's directory, which holds `module.wasm`.
    dir: Arc<dyn Directory>,
    log: Arc<dyn Directory>,
    snapshots: Arc<dyn Directory>,
    durability: Durability,
    config: StorageConfig,
    /// The database's id (which every new segment and snapshot names) and
    /// the files it accepts.
    ownership: Ownership,
    module_hash: [u8; 32],
    next_offset: u64,
    since_snapshot: u64,
    /// Bytes of log records written since the last snapshot (or since the
    /// database was opened).
    log_bytes_since_snapshot: u64,
    /// Transactions between automatic snapshots: `snapshot_every`, doubled
    /// after each failed snapshot (up to [`MAX_SNAPSHOT_BACKOFF`] times it)
    /// so that a full disk is not retried on every commit.
    snapshot_interval: Option<u64>,
    /// Called whenever transactions become durable or the log fails.
    waker: Option<Waker>,
    /// An automatic snapshot being written on its own thread (at most one).
    background: Option<JoinHandle<Result<(), StorageError>>>,
    /// Dropped after `durability` (fields drop in order), so once no
    /// [`Weak`] of it upgrades, the durability thread has been joined.
    alive: Arc<()>,
}

impl DatabaseStorage {
    /// Keeps `log` in the database's directory from now on (see
    /// [`module_log_file`]), after the lines kept there before, which it
    /// reads back first.
    pub(crate) fn keep_module_log(&self, log: &mut ModuleLog) -> Result<(), StorageError> {
        let (mut file, before) =
            module_log_file::ModuleLogFile::open(Arc::clone(&self.dir), log.limits())?;
        let since_start = log.take_records();
        for record in &since_start {
            file.append(record);
        }
        for record in before.into_iter().chain(since_start) {
            log.restore(record);
        }
        log.write_to(file);
        Ok(())
    }

    /// Replaces file `name` of the database's directory with `bytes`,
    /// atomically and durably (for settings stored beside the module, such
    /// as its HTTP allow-list).
    pub(crate) fn write_setting(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        write_durably(&*self.dir, "", name, bytes)
    }

    /// Recovers the tables stored in `dir` (newest valid snapshot, then the
    /// log after it) and opens the log for appending. `schema` is what the
    /// module hashed `module_hash` describes now: it must be what it
    /// described when it became the database's module (it is recorded if
    /// nothing was for this module).
    pub(crate) fn open(
        dir: &Dir,
        schema: &ModuleSchema,
        module_hash: [u8; 32],
        config: StorageConfig,
    ) -> Result<(Self, Datastore, RecoveryReport), StorageError> {
        let dir = dir
            .try_clone()
            .map_err(|e| StorageError::io("opening the database directory", e))?;
        Self::open_in(Arc::new(dir), schema, module_hash, config)
    }

    /// [`open`](Self::open) on any [`Directory`]. Temporary files left by
    /// writes a crash interrupted are removed first. A database without a
    /// `database-id` (a new one, or one an earlier version created) gets
    /// one once its files are recovered.
    fn open_in(
        dir: Arc<dyn Directory>,
        schema: &ModuleSchema,
        module_hash: [u8; 32],
        config: StorageConfig,
    ) -> Result<(Self, Datastore, RecoveryReport), StorageError> {
        let log = open_or_create_dir(&*dir, "log")?;
        let snapshots = open_or_create_dir(&*dir, "snapshots")?;
        remove_stale_temporaries(&*dir, "")?;
        remove_stale_temporaries(&*log, "log/")?;
        remove_stale_temporaries(&*snapshots, "snapshots/")?;
        let mut ownership = Ownership::load(&*dir)?;
        // A file of another database refuses before anything is changed.
        recovery::check_owners(&*log, &*snapshots, &ownership)?;
        let checked = published_schema::check(&*dir, module_hash, schema)?;
        let (datastore, report) = recovery::recover(
            &*log,
            &*snapshots,
            &schema.tables,
            module_hash,
            checked.trust,
            &ownership,
        )?;
        published_schema::record_checked(&*dir, &checked);
        // Format-2 files (an earlier version's) stay readable up to here.
        let had_files = !commitlog::segment_names(&*log)?.is_empty()
            || !snapshot_names(&*snapshots)?.is_empty();
        ownership.record(&*dir, report.next_offset, had_files)?;
        let writer = LogWriter::open_after_recovery(
            Arc::clone(&log),
            ownership,
            report.next_offset,
            config.max_segment_bytes,
        )?;
        let durability = Durability::start(
            writer,
            config.durability,
            report.next_offset,
            config.before_sync.clone(),
        )?;
        let storage = Self {
            dir,
            log,
            snapshots,
            durability,
            snapshot_interval: config.snapshot_every,
            config,
            ownership,
            module_hash,
            next_offset: report.next_offset,
            since_snapshot: report.replayed,
            log_bytes_since_snapshot: report.replayed_bytes,
            waker: None,
            background: None,
            alive: Arc::new(()),
        };
        Ok((storage, datastore, report))
    }

    /// Hands a committed transaction to the log; returns its offset.
    pub(crate) fn log(
        &mut self,
        reducer: &str,
        caller: [u8; 32],
        timestamp: i64,
        delta: &TxDelta,
    ) -> Result<u64, StorageError> {
        let offset = self.next_offset;
        let record = LogRecord::new(offset, reducer, caller, timestamp, delta).encode();
        let bytes = record.len() as u64;
        self.durability.append(offset, record)?;
        self.next_offset += 1;
        self.since_snapshot += 1;
        self.log_bytes_since_snapshot = self.log_bytes_since_snapshot.saturating_add(bytes);
        Ok(offset)
    }

    /// Blocks until the transaction at `offset` is as durable as the policy promises.
    pub(crate) fn wait(&self, offset: u64) -> Result<(), StorageError> {
        self.durability.wait(offset)
    }

    /// Whether the transaction at `offset` is as durable as the policy
    /// promises, without waiting; an error if the log failed before
    /// confirming it.
    pub(crate) fn is_durable(&self, offset: u64) -> Result<bool, StorageError> {
        self.durability.is_durable(offset)
    }

    /// Has `waker` called (on another thread) whenever transactions become
    /// durable or the log fails; see [`is_durable`](Self::is_durable).
    pub(crate) fn set_waker(&mut self, waker: Waker) {
        self.durability.set_waker(Arc::clone(&waker));
        self.waker = Some(waker);
    }

    /// Writes a snapshot if enough transactions have passed since the last
    /// one. After a failure the next attempt waits twice as long (at most
    /// [`MAX_SNAPSHOT_BACKOFF`] times `snapshot_every`); a success resets it.
    /// The storage tests' deterministic twin of
    /// [`snapshot_in_background_if_due`](Self::snapshot_in_background_if_due).
    #[cfg(test)]
    pub(crate) fn snapshot_if_due(
        &mut self,
        datastore: &Datastore,
        database_bytes: usize,
    ) -> Result<(), StorageError> {
        if !self.snapshot_due(database_bytes) {
            return Ok(());
        }
        let result = self.snapshot(datastore);
        self.snapshot_done(&result);
        result
    }

    /// Like [`snapshot_if_due`](Self::snapshot_if_due), but only the copy
    /// of the rows happens on this thread: the snapshot is written and
    /// synced (after the log is) on a thread of its own, so that the caller
    /// goes on running transactions meanwhile. Never two at once: a
    /// snapshot due while the previous one is still being written waits for
    /// it. Returns the error of the previous background snapshot, once
    /// known. `database_bytes` is what the database's rows take (see
    /// [`StorageConfig::snapshot_log_bytes`]).
    pub(crate) fn snapshot_in_background_if_due(
        &mut self,
        datastore: &Datastore,
        database_bytes: usize,
    ) -> Result<(), StorageError> {
        let finished = self.background.as_ref().map(JoinHandle::is_finished);
        if !self.snapshot_due(database_bytes) && finished != Some(true) {
            return Ok(());
        }
        // A snapshot due while the previous one is still being written
        // waits for it: never two at once, and never more than an interval
        // of the log to replay.
        if self.background.is_some() {
            let result = self.join_background();
            self.snapshot_done(&result);
            result?;
        }
        if !self.snapshot_due(database_bytes) {
            return Ok(());
        }
        let snapshot = self.snapshot_of(datastore, self.module_hash);
        let below = self.next_offset;
        let drainer = self.durability.drainer();
        let (log, snapshots) = (Arc::clone(&self.log), Arc::clone(&self.snapshots));
        let keep = self.config.keep_snapshots;
        let ownership = self.ownership;
        let spawned = std::thread::Builder::new()
            .name("worldline-snapshot".into())
            .spawn(move || {
                drainer.drain(below)?;
                write_snapshot(&*snapshots, &snapshot, ownership.id(), false)?;
                prune(&*log, &*snapshots, keep, &ownership)
            });
        match spawned {
            Ok(handle) => {
                self.restart_snapshot_counts();
                self.background = Some(handle);
                Ok(())
            }
            Err(e) => {
                let result = Err(StorageError::io("starting the snapshot thread", e));
                self.snapshot_done(&result);
                result
            }
        }
    }

    /// Counts the transactions and log bytes before the next automatic
    /// snapshot from now (one was just written, or failed).
    fn restart_snapshot_counts(&mut self) {
        self.since_snapshot = 0;
        self.log_bytes_since_snapshot = 0;
    }

    /// Whether an automatic snapshot is due, for a database whose rows take
    /// `database_bytes`: after the interval's transactions, or once the log
    /// since the last one outgrows the rows (see
    /// [`StorageConfig::snapshot_log_bytes`]; backed off after failures as
    /// the interval is).
    fn snapshot_due(&self, database_bytes: usize) -> bool {
        let (Some(every), Some(interval)) = (self.config.snapshot_every, self.snapshot_interval)
        else {
            return false;
        };
        let backoff = interval / every.max(1);
        let log_limit = (database_bytes as u64)
            .max(self.config.snapshot_log_bytes)
            .saturating_mul(backoff.max(1));
        self.since_snapshot >= interval || self.log_bytes_since_snapshot >= log_limit
    }

    /// Resets the automatic snapshots' interval after a success, doubles
    /// it after a failure.
    fn snapshot_done(&mut self, result: &Result<(), StorageError>) {
        let (Some(every), Some(interval)) = (self.config.snapshot_every, self.snapshot_interval)
        else {
            return;
        };
        self.snapshot_interval = Some(match result {
            Ok(()) => every,
            Err(_) => {
                self.restart_snapshot_counts();
                interval
                    .saturating_mul(2)
                    .min(every.saturating_mul(MAX_SNAPSHOT_BACKOFF))
            }
        });
    }

    /// Waits for the background snapshot, if any, and returns its result.
    fn join_background(&mut self) -> Result<(), StorageError> {
        match self.background.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(StorageError::LogFailed(
                "the snapshot thread panicked".into(),
            )),
        }
    }

    /// Waits for a background snapshot, logging its failure: before
    /// anything else touches the snapshots or replaces the log's thread.
    fn settle_background(&mut self) {
        if self.background.is_some() {
            let result = self.join_background();
            if let Err(e) = &result {
                tracing::warn!(
                    "could not write a snapshot (nothing is lost: the log is kept until one is \
                     written): {e}"
                );
            }
            self.snapshot_done(&result);
        }
    }

    /// Writes a snapshot of `datastore` (which holds every transaction
    /// before the next offset), then drops snapshots and log segments that
    /// are no longer needed. The log is fsynced first, whatever the policy,
    /// so that it always reaches the newest snapshot's offset: recovery
    /// refuses a log that does not (its end was lost).
    pub(crate) fn snapshot(&mut self, datastore: &Datastore) -> Result<(), StorageError> {
        self.settle_background();
        self.durability.drain(self.next_offset)?;
        write_snapshot(
            &*self.snapshots,
            &self.snapshot_of(datastore, self.module_hash),
            self.ownership.id(),
            false,
        )?;
        self.restart_snapshot_counts();
        self.prune(self.config.keep_snapshots)
    }

    /// Keeps the `keep` newest snapshots and the log segments they need.
    fn prune(&self, keep: usize) -> Result<(), StorageError> {
        prune(&*self.log, &*self.snapshots, keep, &self.ownership)
    }

    /// A handle that stops upgrading once this storage is dropped and its
    /// durability thread joined.
    pub(crate) fn liveness(&self) -> Weak<()> {
        Arc::downgrade(&self.alive)
    }

    /// Makes `wasm`, whose tables `datastore` holds (migrated from the old
    /// module's), the database's module, durably and crash-safely:
    ///
    /// 1. wait until every logged transaction is written (synced, for
    ///    policy `Every`);
    /// 2. start a new log segment and log an empty [`SWAP_RECORD`] there,
    ///    so that the new module's records never share a segment with the
    ///    old one's, and the snapshot below gets an offset no earlier
    ///    snapshot has (it must not replace one the old module may need);
    /// 3. write a snapshot of `datastore` tagged with the new module's hash,
    ///    keeping every older snapshot and segment;
    /// 4. replace `module.wasm` atomically: this is the commit point;
    /// 5. record `schema`, the new module's description, in `schema.json`
    ///    (see [`published_schema`]), and drop the old module's snapshots
    ///    and log segments, which the new module cannot read.
    ///
    /// A crash before step 4 recovers the old module: recovery skips the
    /// new snapshot (another module's hash) and replays the log from an
    /// older snapshot or from the start, the swap record doing nothing. A
    /// crash after it recovers the new module from the new snapshot (and
    /// records its schema then, if step 5 did not). Offsets continue across
    /// the swap: the swap record takes the next one.
    pub(crate) fn swap_module(
        &mut self,
        datastore: &Datastore,
        wasm: &[u8],
        schema: &ModuleSchema,
        caller: [u8; 32],
        timestamp: i64,
    ) -> Result<(), SwapFailed> {
        let module_hash: [u8; 32] = Sha256::digest(wasm).into();
        let snapshot_offset = self
            .prepare_swap(datastore, module_hash, caller, timestamp)
            .map_err(SwapFailed::Unchanged)?;
        let snapshot_name = numbered_name(snapshot_offset, "snap");
        let unchanged = |storage: &Self, error: StorageError| {
            storage.remove_unused_swap_snapshot(&snapshot_name);
            SwapFailed::Unchanged(error)
        };
        let temporary = ".module.wasm.tmp";
        if let Err(e) = write_temporary(&*self.dir, temporary, wasm) {
            let _ = self.dir.remove(temporary);
            return Err(unchanged(
                self,
                StorageError::io(format!("writing {temporary}"), e),
            ));
        }
        if let Err(e) = self.dir.rename(temporary, "module.wasm") {
            let _ = self.dir.remove(temporary);
            let error = StorageError::io("replacing module.wasm", e);
            return Err(unchanged(self, error));
        }
        sync_directory(&*self.dir).map_err(SwapFailed::Undecided)?;
        self.module_hash = module_hash;
        if let Err(e) = published_schema::record(&*self.dir, module_hash, schema) {
            tracing::warn!(
                "the module swap is complete, but its schema could not be recorded (the next \
                 start records it): {e}"
            );
        }
        self.restart_snapshot_counts();
        self.snapshot_interval = self.config.snapshot_every;
        if let Err(e) = self.prune(1) {
            tracing::warn!(
                "the module swap is complete, but the old module's files could not be removed: {e}"
            );
        }
        Ok(())
    }

    /// Steps 1 to 3 of [`swap_module`](Self::swap_module); returns the new
    /// snapshot's offset. The old module can keep running if this fails.
    fn prepare_swap(
        &mut self,
        datastore: &Datastore,
        module_hash: [u8; 32],
        caller: [u8; 32],
        timestamp: i64,
    ) -> Result<u64, StorageError> {
        self.settle_background();
        self.durability.drain(self.next_offset)?;
        self.start_segment()?;
        self.log(SWAP_RECORD, caller, timestamp, &TxDelta::default())?;
        self.durability.drain(self.next_offset)?;
        // Two copies: once the swap is complete, this snapshot is the only
        // place the data is until the next ones are taken.
        let written = write_snapshot(
            &*self.snapshots,
            &self.snapshot_of(datastore, module_hash),
            self.ownership.id(),
            true,
        );
        if let Err(e) = written {
            // The snapshot may be whole and only its copy missing (a full disk).
            self.remove_unused_swap_snapshot(&numbered_name(self.next_offset, "snap"));
            return Err(e);
        }
        Ok(self.next_offset)
    }

    /// Removes snapshot `name` and its copy, written for a module swap that
    /// did not take place. The old module stays and logs on; its recovery
    /// would pass over this snapshot, but left in place it would count as
    /// one of the snapshots pruning keeps.
    fn remove_unused_swap_snapshot(&self, name: &str) {
        match self.snapshots.remove(name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("could not remove the unused snapshot {name}: {e}"),
        }
        if let Err(e) = snapshot::remove_copy(&*self.snapshots, name) {
            tracing::warn!("could not remove the copy of the unused snapshot {name}: {e}");
        }
    }

    /// Replaces the durability thread with one that writes to a new
    /// segment starting at the next offset. Every record must have been
    /// written (see [`Durability::drain`]); the old thread is joined. Then
    /// seals the previous segment.
    fn start_segment(&mut self) -> Result<(), StorageError> {
        let previous = commitlog::segment_names(&*self.log)?.pop();
        let log = Arc::clone(&self.log);
        let (writer, created) = LogWriter::start_segment(
            log,
            self.ownership,
            self.next_offset,
            self.config.max_segment_bytes,
        )?;
        let before_sync = self.config.before_sync.clone();
        match Durability::start(
            writer,
            self.config.durability,
            self.next_offset,
            before_sync,
        ) {
            Ok(durability) => {
                if let Some(waker) = &self.waker {
                    durability.set_waker(Arc::clone(waker));
                }
                self.durability = durability;
                match previous {
                    Some((first, name)) if created => {
                        commitlog::seal_segment(&*self.log, first, &name, &self.ownership)
                    }
                    _ => Ok(()),
                }
            }
            Err(e) => {
                // The old thread goes on writing to its segment; an empty
                // segment named after the next offset would follow records
                // with that offset and misplace them.
                let name = numbered_name(self.next_offset, "seg");
                if created && let Err(remove) = self.log.remove(&name) {
                    tracing::error!("could not remove the unused log segment {name}: {remove}");
                }
                Err(e)
            }
        }
    }

    /// A snapshot of `datastore` at the next offset, tagged with `module_hash`.
    fn snapshot_of(&self, datastore: &Datastore, module_hash: [u8; 32]) -> Snapshot {
        Snapshot {
            next_offset: self.next_offset,
            module_hash,
            tables: datastore
                .tables()
                .iter()
                .enumerate()
                .map(|(id, schema)| {
                    let rows = datastore
                        .rows(id)
                        .map(|rows| {
                            rows.map(|r| serde_bytes::ByteBuf::from(r.to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    (schema.name.clone(), rows)
                })
                .collect(),
            sequences: datastore
                .sequences()
                .iter()
                .map(LoggedSequence::from)
                .collect(),
        }
    }
}
