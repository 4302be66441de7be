//! The module log on disk: `module.log` in the database's directory, one
//! JSON object per line, so that what a module wrote outlives a restart or
//! a crash of the server (each line is written when the module logs it;
//! not fsynced: power loss can lose the newest lines).
//!
//! The file is bounded: once it would pass the log's byte limit it becomes
//! `module.log.1` (replacing the previous one) and a new one starts. At
//! open, both are read back (lines that do not parse are skipped: a line a
//! crash cut short, or damage), the lines the log keeps are written to a
//! fresh `module.log`, and `module.log.1` is removed.

use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StorageError;
use super::fs::{Directory, FileHandle};
use super::write_durably;
use crate::identity::Timestamp;
use crate::module_log::{LogLevel, LogRecord};

/// The file the module log is written to.
const CURRENT: &str = "module.log";
/// The file it was written to before it last passed its byte limit.
const PREVIOUS: &str = "module.log.1";

/// A line of the file.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    /// Microseconds since the Unix epoch.
    t: i64,
    /// The level, as [`LogLevel`] displays it.
    l: &'a str,
    /// The message.
    #[serde(borrow)]
    m: std::borrow::Cow<'a, str>,
}

/// Appends the module log's lines to `module.log`.
pub(crate) struct ModuleLogFile {
    dir: Arc<dyn Directory>,
    file: Box<dyn FileHandle>,
    /// Bytes in the file: where the next line goes.
    len: u64,
    /// The size past which the file is set aside and a new one started.
    max_bytes: u64,
    /// Set once a write failed: the log is then kept in memory only, until
    /// the next start (a full disk must not cost a failed write per line).
    failed: bool,
}

impl std::fmt::Debug for ModuleLogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleLogFile")
            .field("len", &self.len)
            .field("failed", &self.failed)
            .finish()
    }
}

impl ModuleLogFile {
    /// Reads the lines kept in `dir` (oldest first), then rewrites
    /// `module.log` with those `keep` retains and opens it for appending.
    /// `max_bytes` is the log's byte limit: a file larger than a few times
    /// that is not read (it was not written by this server).
    pub(crate) fn open(
        dir: Arc<dyn Directory>,
        max_bytes: usize,
        keep: impl FnOnce(Vec<LogRecord>) -> Vec<LogRecord>,
    ) -> Result<Self, StorageError> {
        let max_bytes = u64::try_from(max_bytes).unwrap_or(u64::MAX).max(1);
        let mut records = Vec::new();
        for name in [PREVIOUS, CURRENT] {
            records.extend(read_lines(&*dir, name, max_bytes));
        }
        let mut text = Vec::new();
        for record in keep(records) {
            encode(&record, &mut text);
        }
        // A fresh file in place of whatever was there (a rename replaces a
        // symlink or special file instead of writing through it).
        write_durably(&*dir, "", CURRENT, &text)?;
        match dir.remove(PREVIOUS) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(StorageError::io(format!("removing {PREVIOUS}"), e));
            }
            _ => {}
        }
        let file = dir
            .open_existing(CURRENT)
            .map_err(|e| StorageError::io(format!("opening {CURRENT}"), e))?;
        Ok(Self {
            dir,
            file,
            len: text.len() as u64,
            max_bytes,
            failed: false,
        })
    }

    /// Appends `record`; a failure is logged once and ends the writing.
    pub(crate) fn append(&mut self, record: &LogRecord) {
        if self.failed {
            return;
        }
        let mut line = Vec::new();
        encode(record, &mut line);
        if let Err(e) = self.write(&line) {
            self.failed = true;
            tracing::warn!(
                "the module log could not be written to {CURRENT} (it is kept in memory \
                 until the server restarts): {e}"
            );
        }
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        if self.len > 0 && self.len + line.len() as u64 > self.max_bytes {
            self.dir.rename(CURRENT, PREVIOUS)?;
            self.file = self.dir.create(CURRENT)?;
            self.len = 0;
        }
        if let Err(e) = self.file.write_all_at(self.len, line) {
            // No half line for the next one to be appended to.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += line.len() as u64;
        Ok(())
    }
}

/// Appends `record` as a line to `out`.
fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    let level = record.level.to_string();
    let line = Line {
        t: record.timestamp.to_micros_since_epoch(),
        l: &level,
        m: std::borrow::Cow::Borrowed(&record.message),
    };
    // Serializing a struct of a number and strings cannot fail.
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

/// The lines of file `name` that parse, oldest first: none if it is
/// missing, empty (a special file reads as empty too, and is never read),
/// larger than a few times `max_bytes`, or unreadable.
fn read_lines(dir: &dyn Directory, name: &str, max_bytes: u64) -> Vec<LogRecord> {
    let size = match dir.size(name) {
        Ok(0) => return Vec::new(),
        Ok(size) => size,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!("the module log in {name} was not read: {e}");
            return Vec::new();
        }
    };
    // Lines are written whole up to the limit, and JSON escapes at most
    // sextuple a message's bytes.
    if size > max_bytes.saturating_mul(8) {
        tracing::warn!(
            "the module log in {name} was not read: {size} bytes, more than this server writes"
        );
        return Vec::new();
    }
    let bytes = match dir.read(name) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!("the module log in {name} was not read: {e}");
            return Vec::new();
        }
    };
    let mut skipped = 0usize;
    let records: Vec<LogRecord> = bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| {
            let record = decode(line);
            skipped += usize::from(record.is_none());
            record
        })
        .collect();
    if skipped > 0 {
        tracing::warn!("{skipped} damaged lines of the module log in {name} were skipped");
    }
    records
}

/// A line back as a record, if it is one.
fn decode(line: &[u8]) -> Option<LogRecord> {
    let line: Line<'_> = serde_json::from_slice(line).ok()?;
    let level = match line.l {
        "TRACE" => LogLevel::Trace,
        "DEBUG" => LogLevel::Debug,
        "INFO" => LogLevel::Info,
        "WARN" => LogLevel::Warn,
        "ERROR" => LogLevel::Error,
        "PANIC" => LogLevel::Panic,
        _ => return None,
    };
    Some(LogRecord {
        timestamp: Timestamp::from_micros_since_epoch(line.t),
        level,
        message: line.m.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryDisk;

    fn record(message: &str) -> LogRecord {
        LogRecord {
            timestamp: Timestamp::from_micros_since_epoch(1_700_000_000_000_000),
            level: LogLevel::Warn,
            message: message.to_owned(),
        }
    }

    fn reopen(dir: &Arc<dyn Directory>, max_bytes: usize) -> (ModuleLogFile, Vec<LogRecord>) {
        let mut read = Vec::new();
        let file = ModuleLogFile::open(Arc::clone(dir), max_bytes, |records| {
            read = records.clone();
            records
        })
        .expect("open");
        (file, read)
    }

    #[test]
    fn lines_written_are_read_back_in_order_with_their_level_and_time() {
        let dir = MemoryDisk::new().root();
        let (mut file, read) = reopen(&dir, 1 << 20);
        assert!(read.is_empty());
        let lines = [record("first"), record("a \"quoted\"\nsecond line\u{0}")];
        for line in &lines {
            file.append(line);
        }
        drop(file);
        let (_, read) = reopen(&dir, 1 << 20);
        assert_eq!(read, lines);
    }

    #[test]
    fn damaged_lines_are_skipped_and_the_rest_kept() {
        let dir = MemoryDisk::new().root();
        let (mut file, _) = reopen(&dir, 1 << 20);
        file.append(&record("kept"));
        drop(file);
        let mut bytes = dir.read(CURRENT).expect("read");
        bytes.extend_from_slice(b"{\"t\":1,\"l\":\"LOUD\",\"m\":\"x\"}\n\xff\xfe garbage\n");
        encode(&record("also kept"), &mut bytes);
        bytes.extend_from_slice(b"{\"t\":2,\"l\":\"INFO\",\"m\":\"cut sh");
        dir.create(CURRENT)
            .and_then(|mut f| f.write_all_at(0, &bytes))
            .expect("write");
        let (_, read) = reopen(&dir, 1 << 20);
        let messages: Vec<_> = read.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["kept", "also kept"]);
        // The damage is gone from the rewritten file.
        let (_, again) = reopen(&dir, 1 << 20);
        assert_eq!(again, read);
    }

    #[test]
    fn the_files_stay_within_about_twice_the_limit() {
        let dir = MemoryDisk::new().root();
        let (mut file, _) = reopen(&dir, 1000);
        for i in 0..500 {
            file.append(&record(&format!("line {i:04}")));
        }
        let current = dir.size(CURRENT).expect("current");
        let previous = dir.size(PREVIOUS).expect("previous");
        assert!(current <= 1000 && previous <= 1000, "{current} {previous}");
        drop(file);
        let (_, read) = reopen(&dir, 1000);
        // The newest lines, in order, up to the two files' worth.
        assert_eq!(read.last().expect("a line").message, "line 0499");
        assert!(read.len() > 10, "{}", read.len());
        assert!(read.windows(2).all(|w| w[0].message < w[1].message));
        assert!(dir.size(PREVIOUS).is_err(), "merged into {CURRENT} at open");
    }

    #[test]
    fn a_file_far_larger_than_the_limit_is_not_read() {
        let dir = MemoryDisk::new().root();
        let mut bytes = Vec::new();
        for _ in 0..1000 {
            encode(&record("from elsewhere"), &mut bytes);
        }
        dir.create(CURRENT)
            .and_then(|mut f| f.write_all_at(0, &bytes))
            .expect("write");
        let (_, read) = reopen(&dir, 100);
        assert!(read.is_empty());
        assert_eq!(dir.size(CURRENT).expect("size"), 0, "started afresh");
    }

    #[test]
    fn a_failed_write_ends_the_writing_but_keeps_what_was_written() {
        let disk = MemoryDisk::new();
        let dir = disk.root();
        let (mut file, _) = reopen(&dir, 200);
        // The file started after the limit is passed is on a full disk.
        disk.fail_writes_to(Some(CURRENT));
        for i in 0..20 {
            file.append(&record(&format!("line {i:02}")));
        }
        assert!(file.failed);
        disk.fail_writes_to(None);
        file.append(&record("not written: the writing ended"));
        drop(file);
        let (_, read) = reopen(&dir, 200);
        let messages: Vec<_> = read.iter().map(|r| r.message.as_str()).collect();
        assert!(!messages.is_empty() && messages.len() < 20, "{messages:?}");
        assert!(
            messages.iter().all(|m| m.starts_with("line ")),
            "{messages:?}"
        );
    }
}
