//! Recovery: the newest valid snapshot, then every log record after it.
//!
//! Before anything is read or changed, [`check_owners`] checks that every
//! segment and snapshot in the directories belongs to this database (see
//! [`database_id`](super::database_id)): one that names another database
//! refuses to start, so a file copied in by mistake is never cut or removed.
//!
//! Only an interrupted final write is repaired: a torn tail (a prefix of a
//! record, then nothing or zeros) is cut off with a warning if no record
//! follows it in a later segment. (A segment is created before its
//! predecessor is sealed, so a power cut can tear that seal while the new,
//! empty segment exists.) Everything else that does not read back refuses to start, naming
//! the file and byte offset, or naming what is missing:
//!
//! - a damaged record anywhere, including the final one;
//! - segments from the one holding the starting point on that do not follow
//!   each other (each segment's first offset, its name, must be the offset
//!   after the previous segment's last record): a deleted middle segment;
//! - a sealed newest segment (the segment after it was deleted);
//! - a log that does not reach back to the snapshot recovery starts from
//!   (or to transaction 0 without one), or that ends before that
//!   snapshot's offset: a deleted first segment or an emptied `log/`.
//!
//! Pruning keeps every segment from the oldest kept snapshot on, and the
//! log is fsynced before each snapshot, so a healthy database, and what a
//! power cut leaves of one, always passes these checks.

use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use worldline_datastore::{Datastore, DbError, SequenceState, TableSchema};

use super::StorageError;
use super::commitlog::{self, read_segment, segment_names};
use super::database_id::Ownership;
use super::frame::{FrameEnd, read_frames};
use super::fs::Directory;
use super::record::ReplayRecord;
use super::snapshot::{self, Snapshot, read_snapshot_or_copy, snapshot_names};

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The snapshot recovery started from, as the offset after its last transaction.
    pub snapshot: Option<u64>,
    /// Log records replayed after the snapshot.
    pub replayed: u64,
    /// The bytes of those records' payloads (what the next snapshot makes
    /// unneeded, counted towards the log size that makes one due).
    pub replayed_bytes: u64,
    /// Bytes cut off after the last whole record: a torn final record,
    /// zeros, or both.
    pub truncated_bytes: u64,
    /// Whether any of those bytes were written: a final record whose write
    /// was interrupted. Otherwise they were all zeros, as the commit log
    /// writes ahead of its records (or as a write whose data never reached
    /// the disk leaves), and nothing was torn.
    pub torn: bool,
    /// The offset the next transaction gets.
    pub next_offset: u64,
    /// How long recovery took.
    pub duration: Duration,
}

/// A torn tail to cut off once every check has passed.
struct Cut {
    name: String,
    keep: u64,
    /// Whether the tail holds written bytes, not only zeros.
    torn: bool,
}

/// How far recovery may trust stored rows to fit the schema it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemaTrust {
    /// The module describes the schema it recorded when it became the
    /// database's module: the rows, which their checksums prove unchanged,
    /// were validated against it when committed.
    Recorded,
    /// Nothing proves it (a database from a version that recorded no
    /// schema, or a swap a crash interrupted): every row is validated whole.
    Unproven,
}

impl SchemaTrust {
    /// Replays one table's part of a committed delta (see
    /// [`Datastore::replay_rows`]), reading rows only as far as the
    /// indexes need when the schema is [`Recorded`](Self::Recorded), and
    /// validating them whole otherwise.
    fn replay_rows<R: AsRef<[u8]>>(
        self,
        datastore: &mut Datastore,
        table: usize,
        deletes: &[R],
        inserts: &[R],
    ) -> Result<(), DbError> {
        match self {
            SchemaTrust::Recorded => datastore.replay_validated_rows(table, deletes, inserts),
            SchemaTrust::Unproven => datastore.replay_rows(table, deletes, inserts),
        }
    }
}

/// Rebuilds the tables of the module hashed `module_hash`, whose tables
/// are `tables`, from the newest usable snapshot and the log after it.
/// Every segment and snapshot must belong to the database `ownership`
/// describes (the caller has run [`check_owners`] first, before it changed
/// anything); a segment or snapshot recovery reads is checked again.
pub(crate) fn recover(
    log: &dyn Directory,
    snapshots: &dyn Directory,
    tables: &[TableSchema],
    module_hash: [u8; 32],
    trust: SchemaTrust,
    ownership: &Ownership,
) -> Result<(Datastore, RecoveryReport), StorageError> {
    let started = Instant::now();
    let (mut datastore, snapshot, skipped) =
        load_newest_snapshot(snapshots, tables, module_hash, trust, ownership)?;
    let start = snapshot.unwrap_or(0);
    let (mut replayed, mut replayed_bytes) = (0, 0u64);
    let end = read_log(log, snapshot, &skipped, ownership, |record, bytes| {
        if record.offset >= start {
            replay(&mut datastore, record, trust)
                .map_err(|e| format!("record does not apply: {e}{}", doubt(trust)))?;
            replayed += 1;
            replayed_bytes += bytes as u64;
        }
        Ok(())
    })
    .map_err(|unreadable| unreadable.error)?;
    let mut truncated_bytes = 0;
    let mut torn = false;
    for cut in &end.cuts {
        truncated_bytes += truncate(log, cut)?;
        torn |= cut.torn;
    }
    for passed_over in &skipped {
        set_aside(snapshots, passed_over);
    }
    let report = RecoveryReport {
        snapshot,
        replayed,
        replayed_bytes,
        truncated_bytes,
        torn,
        next_offset: end.next_offset,
        duration: started.elapsed(),
    };
    Ok((datastore, report))
}

/// How far the log reads back.
pub(crate) struct LogEnd {
    /// The offset after its last record.
    pub(crate) next_offset: u64,
    /// Torn tails to cut off (none is cut yet).
    cuts: Vec<Cut>,
}

/// Why the log does not read back to its end.
pub(crate) struct Unreadable {
    /// What recovery reports.
    pub(crate) error: StorageError,
    /// Where what reads back before the damage ends, if it is damage that
    /// cutting the log there would leave behind (see [`super::repair`]):
    /// not a missing start, a record that does not apply, or a file that
    /// cannot be read at all.
    pub(crate) cut: Option<CutPoint>,
}

/// Where a repair may cut the log: everything before it reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CutPoint {
    /// The segment to cut, as (first offset, file name in `log/`); every
    /// later segment goes with the part cut off.
    pub(crate) segment: (u64, String),
    /// The bytes of it to keep: its header and the whole records before
    /// the damage (not a seal, which would leave it sealed with no segment
    /// after it), or 0 if none of it reads back (a damaged header).
    pub(crate) keep: u64,
    /// The first transaction that is not kept.
    pub(crate) next: u64,
}

/// Reads the log from the point recovery starts at (`snapshot`, the
/// offset after the snapshot it loaded, or the log's start), checking
/// every segment and record as the module's docs above say, and hands each
/// record, in order, to `apply` (the records before `snapshot` too, which
/// it passes over), whose error refuses the record. `skipped` are the
/// newer snapshots recovery could not use, for the error if the log starts
/// too late.
pub(crate) fn read_log(
    log: &dyn Directory,
    snapshot: Option<u64>,
    skipped: &[Skipped],
    ownership: &Ownership,
    mut apply: impl FnMut(&ReplayRecord<'_>, usize) -> Result<(), String>,
) -> Result<LogEnd, Unreadable> {
    let start = snapshot.unwrap_or(0);
    let from = match snapshot {
        Some(offset) => {
            format!("the newest usable snapshot (which holds transactions before {offset})")
        }
        None => "the start (there is no usable snapshot)".to_owned(),
    };
    let fatal = |error| Unreadable { error, cut: None };
    let mut cuts = Vec::new();
    let segments = segment_names(log).map_err(fatal)?;
    // The offset after the last record read so far.
    let mut log_end: Option<(u64, &str)> = None;
    // Segments wholly before `start` (the next one starts at or before it)
    // are not needed, and pruning may have removed them in any order.
    let needed = segments
        .iter()
        .rposition(|(first, _)| *first <= start)
        .unwrap_or(0);
    for (position, (first, name)) in segments.iter().enumerate().skip(needed) {
        let is_last = position + 1 == segments.len();
        let file = format!("log/{name}");
        // Cuts this segment after `keep` bytes, keeping the transactions before `next`.
        let damaged = |error, keep: usize, next| Unreadable {
            error,
            cut: Some(CutPoint {
                segment: (*first, name.clone()),
                keep: keep as u64,
                next,
            }),
        };
        match log_end {
            None if *first > start => {
                return Err(fatal(StorageError::Missing(format!(
                    "the log starts at transaction {first} ({file}), but recovery must replay \
                     it from transaction {start}, {from}: {} gone ({})",
                    transactions(start, *first),
                    why_the_log_starts_late(skipped, *first)
                ))));
            }
            Some((end, previous)) if end != *first => {
                let error = StorageError::Missing(format!(
                    "log/{previous} ends before transaction {end}, but the next segment, \
                     {file}, starts at transaction {first}: {}",
                    if *first > end {
                        format!(
                            "{} gone (a deleted log segment?)",
                            transactions(end, *first)
                        )
                    } else {
                        "the segments overlap".to_owned()
                    }
                ));
                return Err(damaged(error, 0, end));
            }
            _ => {}
        }
        let segment = match read_segment(log, *first, name, ownership) {
            Ok(segment) => segment,
            // A damaged header (one taken for format 1's included).
            Err(error @ (StorageError::Corrupt { .. } | StorageError::Unsupported { .. })) => {
                return Err(damaged(error, 0, *first));
            }
            Err(error) => return Err(fatal(error)),
        };
        let header = segment.header;
        let (frames, end) = read_frames(&segment.records);
        let mut next = *first;
        // Where the segment's seal is, once read: a cut keeps what is before it.
        let mut seal: Option<usize> = None;
        // Refuses the segment at `at` (a position after the header),
        // keeping the whole records before it.
        let corrupt = |at: usize, reason: String, seal: Option<usize>, next: u64| {
            let error = StorageError::Corrupt {
                file: file.clone(),
                offset: (header + at) as u64,
                reason,
            };
            damaged(error, header + seal.unwrap_or(at), next)
        };
        for (at, payload) in frames {
            if seal.is_some() {
                return Err(corrupt(
                    at,
                    "a record follows the segment's seal".into(),
                    seal,
                    next,
                ));
            }
            if payload.is_empty() {
                seal = Some(at);
                continue;
            }
            let record = ReplayRecord::decode(payload)
                .map_err(|e| corrupt(at, format!("undecodable record: {e}"), seal, next))?;
            if record.offset != next {
                return Err(corrupt(
                    at,
                    format!(
                        "expected the record of transaction {next}, found {}",
                        record.offset
                    ),
                    seal,
                    next,
                ));
            }
            apply(&record, payload.len()).map_err(|reason| Unreadable {
                cut: None,
                ..corrupt(at, reason, seal, next)
            })?;
            next += 1;
        }
        log_end = Some((next, name));
        if let Some(at) = seal
            && is_last
        {
            let error = StorageError::Missing(format!(
                "{file} is sealed, so a segment starting at transaction {next} must follow it, \
                 and there is none: it was deleted with its transactions"
            ));
            return Err(damaged(error, header + at, next));
        }
        match end {
            FrameEnd::Clean => {}
            // A segment is sealed where its records end, and the zeros the
            // writer had written ahead of them are cut off after that.
            FrameEnd::Torn { zeros: true, .. } if seal.is_some() => {}
            FrameEnd::Torn { at, .. } if seal.is_some() => {
                return Err(corrupt(
                    at,
                    "bytes follow the segment's seal".into(),
                    seal,
                    next,
                ));
            }
            FrameEnd::Torn { at, zeros }
                if is_last
                    || no_records(log, &segments[position + 1..], ownership).map_err(fatal)? =>
            {
                cuts.push(Cut {
                    name: name.clone(),
                    keep: (header + at) as u64,
                    torn: !zeros,
                });
            }
            FrameEnd::Torn { at, .. } => {
                return Err(corrupt(
                    at,
                    "incomplete record followed by records in later segments".into(),
                    seal,
                    next,
                ));
            }
            FrameEnd::Corrupt { at, reason } => return Err(corrupt(at, reason, seal, next)),
        }
    }
    let next_offset = match log_end {
        None if start > 0 => {
            return Err(fatal(StorageError::Missing(format!(
                "log/ holds no segment, but {from} shows that transactions were committed; \
                 every transaction after it is gone"
            ))));
        }
        Some((end, last)) if end < start => {
            return Err(fatal(StorageError::Missing(format!(
                "the log ends before transaction {end} (log/{last}), but recovery starts from \
                 {from}: the log's end is gone, and with it any transaction after the snapshot"
            ))));
        }
        Some((end, _)) => end,
        None => 0,
    };
    Ok(LogEnd { next_offset, cuts })
}

/// Applies a log record's changes to the tables. Its checksum proved its
/// rows are the ones committed, which were validated then: they are not
/// validated again unless the schema they were validated against is
/// [`Unproven`](SchemaTrust::Unproven).
fn replay(
    datastore: &mut Datastore,
    record: &ReplayRecord<'_>,
    trust: SchemaTrust,
) -> Result<(), DbError> {
    for table in &record.tables {
        trust.replay_rows(
            datastore,
            table.table as usize,
            &table.deletes,
            &table.inserts,
        )?;
    }
    for sequence in &record.sequences {
        datastore.replay_sequence(&SequenceState::from(sequence))?;
    }
    Ok(())
}

/// What to add to the reason a record does not apply: under
/// [`SchemaTrust::Unproven`], the module may not be the one the log was
/// written by, rather than the log being damaged.
fn doubt(trust: SchemaTrust) -> &'static str {
    match trust {
        SchemaTrust::Recorded => "",
        SchemaTrust::Unproven => {
            " (nothing recorded shows that the module describes the schema the log was \
             written for: if module.wasm was replaced by hand, put back the published one)"
        }
    }
}

/// A snapshot recovery could not use, and why.
pub(crate) struct Skipped {
    /// Its file name in `snapshots/`.
    name: String,
    /// The offset of the first transaction it does not hold.
    next_offset: u64,
    /// Why it was not used.
    error: StorageError,
}

impl Skipped {
    /// Whether it was passed over for being taken with another module.
    pub(crate) fn other_module(&self) -> bool {
        matches!(self.error, StorageError::Mismatch(_))
    }
}

/// Renames a snapshot that recovery passed over (damaged, or left by a
/// module swap that did not complete) out of the snapshots that count.
/// Under its name it would count as one of the snapshots pruning keeps, and
/// the log before the older snapshot recovery did use would be deleted
/// while that one's only fallback was a snapshot that cannot be used. The
/// file is kept, renamed, for its owner to look at; a rename that fails is
/// logged, and recovery goes on (it needed nothing from the snapshot).
fn set_aside(snapshots: &dyn Directory, passed_over: &Skipped) {
    let name = &passed_over.name;
    match snapshot::set_aside(snapshots, name) {
        Ok(renamed) => tracing::warn!(
            "snapshots/{name} is set aside as snapshots/{renamed}: recovery could not use it \
             ({}); delete it once you no longer need it",
            passed_over.error
        ),
        Err(e) => tracing::warn!(
            "could not set aside snapshots/{name}, which recovery could not use: {e}"
        ),
    }
}

/// Why the log may start at transaction `first`, after the point recovery
/// must replay it from: the newest of the `skipped` snapshots that would
/// have covered the transactions before it (the log before the oldest
/// kept snapshot is pruned, and a module swap keeps only its own, whose
/// copy did not read back either), which
/// is damaged or does not fit; without one, a deleted segment.
fn why_the_log_starts_late(skipped: &[Skipped], first: u64) -> String {
    match skipped.iter().find(|s| s.next_offset >= first) {
        Some(snapshot) => format!(
            "they were only in snapshots/{}, which cannot be used: {}; restore it from a backup",
            snapshot.name, snapshot.error
        ),
        None => "a deleted log segment?".to_owned(),
    }
}

/// "transaction A is" or "transactions A to B are", for the offsets `from..to`.
fn transactions(from: u64, to: u64) -> String {
    if to - from == 1 {
        format!("transaction {from} is")
    } else {
        format!("transactions {from} to {} are", to - 1)
    }
}

/// Refuses to go on if any segment in `log` or snapshot in `snapshots`
/// names another database than `ownership`'s; reads only their headers.
pub(crate) fn check_owners(
    log: &dyn Directory,
    snapshots: &dyn Directory,
    ownership: &Ownership,
) -> Result<(), StorageError> {
    for (first, name) in segment_names(log)? {
        commitlog::check_segment_owner(log, first, &name, ownership)?;
    }
    for (next_offset, name) in snapshot_names(snapshots)? {
        snapshot::check_snapshot_owner(snapshots, next_offset, &name, ownership)?;
    }
    Ok(())
}

/// Whether none of `segments` holds a whole record (or seal).
fn no_records(
    log: &dyn Directory,
    segments: &[(u64, String)],
    ownership: &Ownership,
) -> Result<bool, StorageError> {
    for (first, name) in segments {
        let segment = read_segment(log, *first, name, ownership)?;
        if !read_frames(&segment.records).0.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Cuts a torn tail off; returns how many bytes went.
fn truncate(log: &dyn Directory, cut: &Cut) -> Result<u64, StorageError> {
    let file = format!("log/{}", cut.name);
    let io = |e| StorageError::io(format!("truncating {file}"), e);
    let mut handle = log.open_existing(&cut.name).map_err(io)?;
    let len = handle.len().map_err(io)?;
    let truncated = len - cut.keep;
    if cut.torn {
        tracing::warn!(
            "{file}: cutting off a torn final record ({truncated} bytes at byte {}), \
             left by an interrupted write",
            cut.keep
        );
    } else {
        tracing::debug!(
            "{file}: cutting off {truncated} bytes of zeros after the last record (at byte {})",
            cut.keep
        );
    }
    handle
        .set_len(cut.keep)
        .and_then(|()| handle.sync())
        .map_err(io)?;
    Ok(truncated)
}

/// The state of the newest snapshot that reads back and fits the schema
/// (falling back to older ones), or empty tables if there is none, and
/// the newer snapshots skipped, newest first. A snapshot of another
/// database is refused, not skipped.
fn load_newest_snapshot(
    snapshots: &dyn Directory,
    tables: &[TableSchema],
    module_hash: [u8; 32],
    trust: SchemaTrust,
    ownership: &Ownership,
) -> Result<(Datastore, Option<u64>, Vec<Skipped>), StorageError> {
    let newest = newest_usable_snapshot(snapshots, ownership, |snapshot| {
        restore(snapshot, tables, module_hash, trust)
    })?;
    Ok(match newest.used {
        Some((offset, datastore)) => (datastore, Some(offset), newest.skipped),
        None => (Datastore::new(tables.to_vec()), None, newest.skipped),
    })
}

/// The newest snapshot (or its copy) that reads back and that `usable`
/// accepts, as its offset and what `usable` made of it, falling back to
/// older ones; and the newer snapshots skipped, newest first, each logged.
/// A snapshot of another database is refused, not skipped.
pub(crate) fn newest_usable_snapshot<T>(
    snapshots: &dyn Directory,
    ownership: &Ownership,
    mut usable: impl FnMut(Snapshot) -> Result<T, StorageError>,
) -> Result<NewestSnapshot<T>, StorageError> {
    let mut skipped = Vec::new();
    for (offset, name) in snapshot_names(snapshots)? {
        match read_snapshot_or_copy(snapshots, offset, &name, ownership).and_then(&mut usable) {
            Ok(used) => {
                return Ok(NewestSnapshot {
                    used: Some((offset, used)),
                    skipped,
                });
            }
            Err(foreign) if foreign.is_foreign() => return Err(foreign),
            Err(error) => {
                tracing::warn!("skipping snapshot {name}: {error}");
                skipped.push(Skipped {
                    name,
                    next_offset: offset,
                    error,
                });
            }
        }
    }
    Ok(NewestSnapshot {
        used: None,
        skipped,
    })
}

/// What [`newest_usable_snapshot`] found.
pub(crate) struct NewestSnapshot<T> {
    /// The snapshot used, as its offset and what was made of it, if any.
    pub(crate) used: Option<(u64, T)>,
    /// The newer snapshots skipped, newest first.
    pub(crate) skipped: Vec<Skipped>,
}

/// Refuses `snapshot` if it was not taken with the module hashed `module_hash`.
pub(crate) fn check_module(snapshot: &Snapshot, module_hash: [u8; 32]) -> Result<(), StorageError> {
    if snapshot.module_hash != module_hash {
        return Err(StorageError::Mismatch(
            "the snapshot was taken with a different module".into(),
        ));
    }
    Ok(())
}

fn restore(
    snapshot: Snapshot,
    tables: &[TableSchema],
    module_hash: [u8; 32],
    trust: SchemaTrust,
) -> Result<Datastore, StorageError> {
    check_module(&snapshot, module_hash)?;
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
    let mut datastore = Datastore::new(tables.to_vec());
    let no_rows: &[ByteBuf] = &[];
    let loaded = snapshot
        .tables
        .iter()
        .enumerate()
        .try_for_each(|(table, (_, rows))| trust.replay_rows(&mut datastore, table, no_rows, rows))
        .and_then(|()| {
            snapshot
                .sequences
                .iter()
                .try_for_each(|s| datastore.replay_sequence(&SequenceState::from(s)))
        });
    loaded.map_err(|e| StorageError::Mismatch(format!("the snapshot does not load: {e}")))?;
    Ok(datastore)
}
