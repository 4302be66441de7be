//! The commit log on disk: segment files of framed [`LogRecord`]s under a
//! database's `log/` directory, named after the offset of their first record.
//!
//! A segment that another follows ends with a *seal*, a frame with an empty
//! payload (no record encodes to nothing). A new segment is created
//! (durably) before its predecessor is sealed, and the seal is fsynced
//! before any record goes into the new segment, so a sealed newest segment
//! means that the segment after it, with its records, was deleted.
//!
//! [`LogRecord`]: super::record::LogRecord

use std::sync::Arc;

use super::StorageError;
use super::database_id::{self, DatabaseId, Header, Magics, Ownership};
use super::frame::{FrameEnd, put_frame, read_frames};
use super::fs::{Directory, FileHandle, FileStatus};

/// Every new segment file starts with these bytes (format 3: frames whose
/// header has its own checksum, after a header naming the database; see
/// [`database_id`]).
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"WLSEG003";

/// The magic of format-2 segments: the same frames, after just the magic
/// (no database named). Still read; the next segment is format 3.
pub(crate) const UNIDENTIFIED_SEGMENT_MAGIC: &[u8; 8] = b"WLSEG002";

/// The magics a segment may start with.
pub(crate) const SEGMENT_MAGICS: Magics = Magics {
    identified: SEGMENT_MAGIC,
    unidentified: UNIDENTIFIED_SEGMENT_MAGIC,
};

/// The magic of format-1 segments, which this version refuses to read.
const OLD_SEGMENT_MAGIC: &[u8; 8] = b"WLSEG001";

/// A segment's framed records, read back.
pub(crate) struct Segment {
    /// The bytes of the header before them (where the offsets of their
    /// frames count from).
    pub(crate) header: usize,
    /// The frames after the header.
    pub(crate) records: Vec<u8>,
}

/// The segments in `log`, oldest first, as (first offset, file name).
pub(crate) fn segment_names(log: &dyn Directory) -> Result<Vec<(u64, String)>, StorageError> {
    super::numbered_files(log, "log/", "seg")
}

/// Reads segment `name`, whose first record is transaction `first`,
/// checking its header: a segment of another database (see
/// [`Ownership::check`]) is refused. Returns the framed records after it.
pub(crate) fn read_segment(
    log: &dyn Directory,
    first: u64,
    name: &str,
    ownership: &Ownership,
) -> Result<Segment, StorageError> {
    let mut bytes = log
        .read(name)
        .map_err(|e| StorageError::io(format!("reading log segment {name}"), e))?;
    let file = format!("log/{name}");
    let header = check_header(&file, first, &bytes, ownership)?;
    bytes.drain(..header);
    Ok(Segment {
        header,
        records: bytes,
    })
}

/// Checks the header at the start of `bytes`, the content of segment
/// `file` (or its first bytes), whose first record is transaction `first`;
/// returns its length.
pub(crate) fn check_header(
    file: &str,
    first: u64,
    bytes: &[u8],
    ownership: &Ownership,
) -> Result<usize, StorageError> {
    if bytes.starts_with(OLD_SEGMENT_MAGIC) {
        return Err(StorageError::Unsupported {
            file: file.to_owned(),
            reason: "it is a format-1 log segment (WLSEG001), written before record headers \
                     had their own checksum; this version reads only formats 2 and 3 \
                     (WLSEG002, WLSEG003)"
                .into(),
        });
    }
    match database_id::read_header(bytes, &SEGMENT_MAGICS) {
        Header::Valid(owner, len) => {
            ownership.check(file, first, owner)?;
            Ok(len)
        }
        Header::Unknown => Err(StorageError::Corrupt {
            file: file.to_owned(),
            offset: 0,
            reason: "not a Worldline log segment (bad magic)".into(),
        }),
        Header::Damaged(reason) => Err(StorageError::Corrupt {
            file: file.to_owned(),
            offset: SEGMENT_MAGIC.len() as u64,
            reason: reason.into(),
        }),
    }
}

/// The fewest and the most zeros written ahead of the records at a time
/// (see [`LogWriter`]): as many as the segment already holds, within these
/// bounds, so that a quiet database keeps little unused space on disk and a
/// busy one rarely stops to write zeros.
const PREALLOCATE_BYTES: std::ops::RangeInclusive<u64> = (64 << 10)..=(1 << 20);

/// Appends framed records to the newest segment, starting a new one when
/// the current one is full. Records are buffered and written with one
/// system call per [`flush`](Self::flush). Used only by the durability thread.
///
/// The writer keeps the segment file longer than its records, filled with
/// zeros written ahead in steps (see [`PREALLOCATE_BYTES`]), and writes each
/// batch of records over those zeros. So a sync that makes records durable
/// changes no file size, and the file system has no metadata to commit for
/// it: on ext4 that makes an fsync of a few records about a third faster.
/// Recovery already reads zeros after the last record as an unfinished
/// write (see [`super::frame`]); [`close`](Self::close) cuts them off.
pub(crate) struct LogWriter {
    log: Arc<dyn Directory>,
    /// The database the segments belong to: new ones name it.
    ownership: Ownership,
    file: Box<dyn FileHandle>,
    /// The segment's file name, for errors.
    name: String,
    /// Bytes of the segment's header and whole records: where the next record goes.
    size: u64,
    /// Bytes in the file; those past `size` are zeros.
    allocated: u64,
    /// Framed records not yet written.
    pending: Vec<u8>,
    max_segment_bytes: u64,
}

impl LogWriter {
    /// Continues the newest segment at its end, or starts one at
    /// `next_offset` if there is none. Recovery, which runs first, has cut
    /// the newest segment after its last whole record.
    pub(crate) fn open_after_recovery(
        log: Arc<dyn Directory>,
        ownership: Ownership,
        next_offset: u64,
        max_segment_bytes: u64,
    ) -> Result<Self, StorageError> {
        let (file, size, name) = match segment_names(&*log)?.pop() {
            Some((_, name)) => {
                let io = |e| StorageError::io(format!("opening log segment {name}"), e);
                let file = log.open_existing(&name).map_err(io)?;
                let size = file.len().map_err(io)?;
                (file, size, name)
            }
            None => create_segment(&*log, next_offset, ownership.id())?,
        };
        Ok(Self::new(
            log,
            ownership,
            file,
            name,
            size,
            max_segment_bytes,
        ))
    }

    /// Starts a new segment for the record with offset `first_offset`, or
    /// continues the newest segment if it already starts there (it then holds
    /// no records, as `first_offset` is the next offset, but may hold the
    /// zeros a writer wrote ahead). Returns whether it created the segment.
    pub(crate) fn start_segment(
        log: Arc<dyn Directory>,
        ownership: Ownership,
        first_offset: u64,
        max_segment_bytes: u64,
    ) -> Result<(Self, bool), StorageError> {
        let (file, size, name, created) = match segment_names(&*log)?.pop() {
            Some((first, name)) if first == first_offset => {
                let (file, size) = open_after_last_record(&*log, first, &name, &ownership)?;
                (file, size, name, false)
            }
            _ => {
                let (file, size, name) = create_segment(&*log, first_offset, ownership.id())?;
                (file, size, name, true)
            }
        };
        let writer = Self::new(log, ownership, file, name, size, max_segment_bytes);
        Ok((writer, created))
    }

    /// A writer appending to `file` at byte `size`, its end.
    fn new(
        log: Arc<dyn Directory>,
        ownership: Ownership,
        file: Box<dyn FileHandle>,
        name: String,
        size: u64,
        max_segment_bytes: u64,
    ) -> Self {
        Self {
            log,
            ownership,
            file,
            name,
            size,
            allocated: size,
            pending: Vec::new(),
            max_segment_bytes,
        }
    }

    /// Buffers the record with `offset`, first closing the segment if it is full.
    pub(crate) fn append(&mut self, offset: u64, payload: &[u8]) -> Result<(), StorageError> {
        if self.size + self.pending.len() as u64 >= self.max_segment_bytes {
            self.sync()?;
            let (file, size, name) = create_segment(&*self.log, offset, self.ownership.id())?;
            seal(&mut *self.file, &self.name, self.size)?;
            self.file = file;
            self.name = name;
            self.size = size;
            self.allocated = size;
        }
        put_frame(payload, &mut self.pending)
    }

    /// Writes the buffered records to the operating system, and zeros
    /// ahead of them once they reach the end of those written before. On
    /// failure the segment is cut back to its last whole record.
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Someone cut the segment short while the server ran: records
        // confirmed durable are gone from it, and these would be written
        // after a hole that recovery stops at, so none may be confirmed.
        let before = self.status()?;
        if before.len < self.size {
            return Err(StorageError::SegmentCut {
                file: format!("log/{}", self.name),
                len: before.len,
                records_end: self.size,
            });
        }
        if let Err(e) = self.file.write_all_at(self.size, &self.pending) {
            // Best effort: leave no partial record behind for recovery to trip on.
            let _ = self.file.set_len(self.size);
            self.allocated = self.size;
            return Err(StorageError::io(
                format!("appending to log/{}", self.name),
                e,
            ));
        }
        self.size += self.pending.len() as u64;
        self.allocated = self.allocated.max(self.size);
        self.pending.clear();
        // Someone removed the segment (or `log/`) while the server ran: its
        // records, these and those before, are gone with the file once it
        // closes, so none of them may be confirmed durable from now on.
        if self.status()?.removed {
            return Err(StorageError::SegmentRemoved(format!("log/{}", self.name)));
        }
        if self.allocated == self.size {
            self.preallocate();
        }
        Ok(())
    }

    /// Whether the segment is still there, and its size.
    fn status(&self) -> Result<FileStatus, StorageError> {
        self.file
            .status()
            .map_err(|e| StorageError::io(format!("checking log/{} is still there", self.name), e))
    }

    /// Writes zeros past the records (as many as the segment holds, within
    /// [`PREALLOCATE_BYTES`]) but not past the segment's size limit. Best
    /// effort: on a full disk the records are written without them.
    fn preallocate(&mut self) {
        let ahead = self
            .size
            .clamp(*PREALLOCATE_BYTES.start(), *PREALLOCATE_BYTES.end());
        let target = (self.size + ahead).min(self.max_segment_bytes);
        let Some(zeros) = target.checked_sub(self.size).filter(|&n| n > 0) else {
            return;
        };
        let zeros = vec![0; usize::try_from(zeros).unwrap_or(0)];
        match self.file.write_all_at(self.size, &zeros) {
            Ok(()) => self.allocated = target,
            Err(e) => {
                tracing::debug!("could not write zeros ahead in the commit log: {e}");
                let _ = self.file.set_len(self.size);
            }
        }
    }

    /// Writes and fsyncs everything appended so far.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.file
            .sync()
            .map_err(|e| StorageError::io(format!("syncing log/{}", self.name), e))
    }

    /// Writes what is buffered and cuts the zeros written ahead off the
    /// segment, so that it ends with its last record. Syncs if `sync`.
    pub(crate) fn close(mut self, sync: bool) -> Result<(), StorageError> {
        self.flush()?;
        if self.allocated > self.size {
            self.file
                .set_len(self.size)
                .map_err(|e| StorageError::io(format!("closing log/{}", self.name), e))?;
        }
        if sync {
            self.file
                .sync()
                .map_err(|e| StorageError::io(format!("syncing log/{}", self.name), e))?;
        }
        Ok(())
    }
}

/// Opens segment `name` (first record `first`) for writing after its last
/// whole record; cuts off what follows that record (zeros written ahead,
/// or an unfinished record), but refuses a segment with a damaged record
/// or of another database. Returns the file and the size it keeps.
fn open_after_last_record(
    log: &dyn Directory,
    first: u64,
    name: &str,
    ownership: &Ownership,
) -> Result<(Box<dyn FileHandle>, u64), StorageError> {
    let io = |e| StorageError::io(format!("opening log segment {name}"), e);
    let segment = read_segment(log, first, name, ownership)?;
    // Where the whole records end: the file's end, or where what follows them starts.
    let end = match read_frames(&segment.records).1 {
        FrameEnd::Clean => segment.records.len(),
        FrameEnd::Torn { at, .. } => at,
        FrameEnd::Corrupt { at, reason } => {
            return Err(StorageError::Corrupt {
                file: format!("log/{name}"),
                offset: (segment.header + at) as u64,
                reason,
            });
        }
    };
    let size = (segment.header + end) as u64;
    let mut file = log.open_existing(name).map_err(io)?;
    if file.len().map_err(io)? != size {
        file.set_len(size).and_then(|()| file.sync()).map_err(io)?;
    }
    Ok((file, size))
}

/// Creates a segment of database `id` holding just its header. The header
/// is written to a temporary file that is renamed into place, so that a
/// crash cannot leave a segment without one (recovery would refuse it).
pub(crate) fn create_segment(
    log: &dyn Directory,
    first_offset: u64,
    id: DatabaseId,
) -> Result<(Box<dyn FileHandle>, u64, String), StorageError> {
    let name = super::numbered_name(first_offset, "seg");
    let header = database_id::header(SEGMENT_MAGIC, id);
    super::write_durably(log, "log/", &name, &header)?;
    let file = log
        .open_existing(&name)
        .map_err(|e| StorageError::io(format!("opening log segment {name}"), e))?;
    Ok((file, header.len() as u64, name))
}

/// Seals the segment `name` (first record `first`) after its last whole
/// record, and fsyncs it; refuses a segment of another database.
pub(crate) fn seal_segment(
    log: &dyn Directory,
    first: u64,
    name: &str,
    ownership: &Ownership,
) -> Result<(), StorageError> {
    let (mut file, size) = open_after_last_record(log, first, name, ownership)?;
    seal(&mut *file, name, size)
}

/// Writes a seal at byte `size` of `file` (segment `name`), after its last whole record,
/// cuts off what follows (zeros written ahead), and fsyncs it. On failure
/// the file is cut back to `size` (best effort).
fn seal(file: &mut dyn FileHandle, name: &str, size: u64) -> Result<(), StorageError> {
    let mut frame = Vec::new();
    put_frame(&[], &mut frame)?;
    file.write_all_at(size, &frame)
        .and_then(|()| file.set_len(size + frame.len() as u64))
        .and_then(|()| file.sync())
        .map_err(|e| {
            let _ = file.set_len(size);
            StorageError::io(format!("sealing log/{name}"), e)
        })
}

/// Refuses segment `name` (first record `first`) if its header names
/// another database ([`Ownership::check_file`]).
pub(crate) fn check_segment_owner(
    log: &dyn Directory,
    first: u64,
    name: &str,
    ownership: &Ownership,
) -> Result<(), StorageError> {
    ownership.check_file(log, name, &format!("log/{name}"), first, &SEGMENT_MAGICS)
}

/// Deletes segments whose every record is before `offset`, keeping the
/// newest segment. A segment of another database (put there while the
/// server ran) is not removed: that is an error.
pub(crate) fn remove_segments_before(
    log: &dyn Directory,
    offset: u64,
    ownership: &Ownership,
) -> Result<(), StorageError> {
    let segments = segment_names(log)?;
    for pair in segments.windows(2) {
        let ((first, name), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first <= offset {
            check_segment_owner(log, *first, name, ownership)?;
            log.remove(name)
                .map_err(|e| StorageError::io(format!("removing old log segment {name}"), e))?;
        }
    }
    super::sync_directory(log)
}
