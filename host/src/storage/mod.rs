//! Durability: the commit log, snapshots and recovery of one database,
//! kept in the database's own directory capability.

mod commitlog;
mod durability;
mod frame;
mod record;
mod recovery;
mod snapshot;

use cap_std::fs::Dir;
use worldline_datastore::{Datastore, TableSchema, TxDelta};

pub use durability::DurabilityPolicy;
pub use recovery::RecoveryReport;

use commitlog::LogWriter;
use durability::Durability;
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
    /// How many snapshots to keep; log segments older than the oldest kept one are deleted.
    pub keep_snapshots: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            durability: DurabilityPolicy::Every,
            max_segment_bytes: 64 << 20,
            snapshot_every: Some(100_000),
            keep_snapshots: 2,
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
    /// Stored data does not belong to this module.
    #[error("{0}")]
    Mismatch(String),
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Makes a directory's entries (new, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Dir) -> Result<(), StorageError> {
    dir.open(".")
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("syncing a directory", e))
}

/// A file name for the offset `offset`: zero-padded so that names sort by offset.
pub(crate) fn numbered_name(offset: u64, extension: &str) -> String {
    format!("{offset:020}.{extension}")
}

/// The files in `dir` named by [`numbered_name`] with `extension`, as
/// (offset, name), lowest offset first.
pub(crate) fn numbered_files(
    dir: &Dir,
    extension: &str,
) -> Result<Vec<(u64, String)>, StorageError> {
    let listing = |e| StorageError::io(format!("listing the .{extension} files"), e);
    let mut files = Vec::new();
    for entry in dir.entries().map_err(listing)? {
        let name = entry
            .map_err(listing)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        let offset = name
            .strip_suffix(extension)
            .and_then(|stem| stem.strip_suffix('.'))
            .and_then(|digits| digits.parse().ok());
        if let Some(offset) = offset {
            files.push((offset, name));
        }
    }
    files.sort();
    Ok(files)
}

fn open_or_create_dir(parent: &Dir, name: &str) -> Result<Dir, StorageError> {
    parent
        .create_dir_all(name)
        .and_then(|()| parent.open_dir(name))
        .map_err(|e| StorageError::io(format!("opening {name}/"), e))
}

/// The commit log and snapshots of one open database.
pub(crate) struct DatabaseStorage {
    log: Dir,
    snapshots: Dir,
    durability: Durability,
    config: StorageConfig,
    module_hash: [u8; 32],
    next_offset: u64,
    since_snapshot: u64,
}

impl DatabaseStorage {
    /// Recovers the tables stored in `dir` (newest valid snapshot, then the
    /// log after it) and opens the log for appending.
    pub(crate) fn open(
        dir: &Dir,
        tables: &[TableSchema],
        module_hash: [u8; 32],
        config: StorageConfig,
    ) -> Result<(Self, Datastore, RecoveryReport), StorageError> {
        let log = open_or_create_dir(dir, "log")?;
        let snapshots = open_or_create_dir(dir, "snapshots")?;
        let (datastore, report) = recovery::recover(&log, &snapshots, tables, module_hash)?;
        let log_for_writer = log
            .try_clone()
            .map_err(|e| StorageError::io("opening the log directory", e))?;
        let writer = LogWriter::open(log_for_writer, report.next_offset, config.max_segment_bytes)?;
        let durability = Durability::start(writer, config.durability, report.next_offset)?;
        let storage = Self {
            log,
            snapshots,
            durability,
            config,
            module_hash,
            next_offset: report.next_offset,
            since_snapshot: report.replayed,
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
        let record = LogRecord::new(offset, reducer, caller, timestamp, delta);
        self.durability.append(offset, record.encode())?;
        self.next_offset += 1;
        self.since_snapshot += 1;
        Ok(offset)
    }

    /// Blocks until the transaction at `offset` is as durable as the policy promises.
    pub(crate) fn wait(&self, offset: u64) -> Result<(), StorageError> {
        self.durability.wait(offset)
    }

    /// Writes a snapshot if enough transactions have passed since the last one.
    pub(crate) fn snapshot_if_due(&mut self, datastore: &Datastore) -> Result<(), StorageError> {
        match self.config.snapshot_every {
            Some(every) if self.since_snapshot >= every => self.snapshot(datastore),
            _ => Ok(()),
        }
    }

    /// Writes a snapshot of `datastore` (which holds every transaction
    /// before the next offset), then drops snapshots and log segments that
    /// are no longer needed.
    pub(crate) fn snapshot(&mut self, datastore: &Datastore) -> Result<(), StorageError> {
        let snapshot = Snapshot {
            next_offset: self.next_offset,
            module_hash: self.module_hash,
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
        };
        write_snapshot(&self.snapshots, &snapshot)?;
        self.since_snapshot = 0;
        prune_snapshots(&self.snapshots, self.config.keep_snapshots)?;
        let oldest_kept = snapshot_names(&self.snapshots)?
            .last()
            .map_or(0, |(offset, _)| *offset);
        commitlog::remove_segments_before(&self.log, oldest_kept)
    }
}
