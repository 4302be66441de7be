//! The commit log on disk: segment files of framed [`LogRecord`]s under a
//! database's `log/` directory, named after the offset of their first record.

use std::io::{Read, Write};

use cap_std::fs::{Dir, File, OpenOptions};

use super::StorageError;
use super::frame::put_frame;

/// Every segment file starts with these bytes.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"WLSEG001";

/// The segments in `log`, oldest first, as (first offset, file name).
pub(crate) fn segment_names(log: &Dir) -> Result<Vec<(u64, String)>, StorageError> {
    super::numbered_files(log, "seg")
}

/// Reads one segment, checking its magic; returns the framed records after it.
pub(crate) fn read_segment(log: &Dir, name: &str) -> Result<Vec<u8>, StorageError> {
    let mut bytes = Vec::new();
    log.open(name)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| StorageError::io(format!("reading log segment {name}"), e))?;
    if bytes.len() < SEGMENT_MAGIC.len() || &bytes[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return Err(StorageError::Corrupt {
            file: format!("log/{name}"),
            offset: 0,
            reason: "not a Worldline log segment (bad magic)".into(),
        });
    }
    bytes.drain(..SEGMENT_MAGIC.len());
    Ok(bytes)
}

/// Appends framed records to the newest segment, starting a new one when
/// the current one is full. Records are buffered and written with one
/// system call per [`flush`](Self::flush). Used only by the durability thread.
pub(crate) struct LogWriter {
    log: Dir,
    file: File,
    /// Bytes in the segment file, all of them whole records.
    size: u64,
    /// Framed records not yet written.
    pending: Vec<u8>,
    max_segment_bytes: u64,
}

impl LogWriter {
    /// Continues the newest segment, or starts one at `next_offset` if there is none.
    pub(crate) fn open(
        log: Dir,
        next_offset: u64,
        max_segment_bytes: u64,
    ) -> Result<Self, StorageError> {
        let newest = segment_names(&log)?.pop();
        let (file, size) = match newest {
            Some((_, name)) => {
                let file = log
                    .open_with(&name, OpenOptions::new().append(true))
                    .map_err(|e| StorageError::io(format!("opening log segment {name}"), e))?;
                let size = file
                    .metadata()
                    .map_err(|e| StorageError::io(format!("reading the size of {name}"), e))?
                    .len();
                (file, size)
            }
            None => create_segment(&log, next_offset)?,
        };
        Ok(Self {
            log,
            file,
            size,
            pending: Vec::new(),
            max_segment_bytes,
        })
    }

    /// Starts a new segment for the record with offset `first_offset`, or
    /// continues the newest segment if it already starts there (it then holds
    /// no records, as `first_offset` is the next offset). Returns whether it
    /// created the segment.
    pub(crate) fn start_segment(
        log: Dir,
        first_offset: u64,
        max_segment_bytes: u64,
    ) -> Result<(Self, bool), StorageError> {
        let newest = segment_names(&log)?.pop();
        if newest.is_some_and(|(first, _)| first == first_offset) {
            return Ok((Self::open(log, first_offset, max_segment_bytes)?, false));
        }
        let (file, size) = create_segment(&log, first_offset)?;
        let writer = Self {
            log,
            file,
            size,
            pending: Vec::new(),
            max_segment_bytes,
        };
        Ok((writer, true))
    }

    /// Buffers the record with `offset`, first closing the segment if it is full.
    pub(crate) fn append(&mut self, offset: u64, payload: &[u8]) -> Result<(), StorageError> {
        if self.size + self.pending.len() as u64 >= self.max_segment_bytes {
            self.sync()?;
            let (file, size) = create_segment(&self.log, offset)?;
            self.file = file;
            self.size = size;
        }
        put_frame(payload, &mut self.pending)
    }

    /// Writes the buffered records to the operating system. On failure the
    /// segment is cut back to its last whole record.
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            // Best effort: leave no partial record behind for recovery to trip on.
            let _ = self.file.set_len(self.size);
            return Err(StorageError::io("appending to the commit log", e));
        }
        self.size += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes and fsyncs everything appended so far.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("syncing the commit log", e))
    }
}

/// Creates a segment holding just its header. The header is written to a
/// temporary file that is renamed into place, so that a crash cannot leave
/// a segment without one (recovery would refuse it).
fn create_segment(log: &Dir, first_offset: u64) -> Result<(File, u64), StorageError> {
    let name = super::numbered_name(first_offset, "seg");
    super::write_file_durably(log, &name, SEGMENT_MAGIC)?;
    let file = log
        .open_with(&name, OpenOptions::new().append(true))
        .map_err(|e| StorageError::io(format!("opening log segment {name}"), e))?;
    Ok((file, SEGMENT_MAGIC.len() as u64))
}

/// Deletes segments whose every record is before `offset`, keeping the newest segment.
pub(crate) fn remove_segments_before(log: &Dir, offset: u64) -> Result<(), StorageError> {
    let segments = segment_names(log)?;
    for pair in segments.windows(2) {
        let ((_, name), (next_first, _)) = (&pair[0], &pair[1]);
        if *next_first <= offset {
            log.remove_file(name)
                .map_err(|e| StorageError::io(format!("removing old log segment {name}"), e))?;
        }
    }
    super::sync_dir(log)
}
