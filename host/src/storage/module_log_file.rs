//! The module log on disk: `module.log` in the database's directory, one
//! JSON object per line, so that what a module wrote outlives a restart or
//! a crash of the server (each line is written when the module logs it;
//! not fsynced: power loss can lose the newest lines).
//!
//! The file is bounded as the log in memory is: once it holds the log's
//! byte limit of messages or its line limit, it becomes `module.log.1`
//! (replacing the previous one) and a new one starts, so the two files
//! always hold at least what the log keeps. At open both are read back
//! (lines that do not parse are skipped: a line a crash cut short, or
//! damage) and writing goes on at the end of `module.log`.

use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StorageError;
use super::fs::{Directory, FileHandle};
use crate::identity::Timestamp;
use crate::module_log::{LogLevel, LogLimits, LogRecord};

/// The file the module log is written to.
const CURRENT: &str = "module.log";
/// The file it was written to before it last reached its limits.
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
    /// Lines in the file, and bytes of their messages: counted as the log
    /// in memory counts them, against the same limits.
    lines: usize,
    message_bytes: usize,
    limits: LogLimits,
    /// Set once a write failed: the log is then kept in memory only, until
    /// the next start (a full disk must not cost a failed write per line).
    failed: bool,
}

impl std::fmt::Debug for ModuleLogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleLogFile")
            .field("len", &self.len)
            .field("lines", &self.lines)
            .field("failed", &self.failed)
            .finish()
    }
}

impl ModuleLogFile {
    /// Opens `module.log` in `dir` for appending (creating it if missing),
    /// and returns the lines kept in both files, oldest first. A file far
    /// larger than `limits` allow (not written by this server) is not read,
    /// and `module.log` is then started afresh.
    pub(crate) fn open(
        dir: Arc<dyn Directory>,
        limits: LogLimits,
    ) -> Result<(Self, Vec<LogRecord>), StorageError> {
        let cap = read_cap(limits);
        let (mut records, _) = read_lines(&*dir, PREVIOUS, cap);
        let (current, current_bytes) = read_lines(&*dir, CURRENT, cap);
        let (file, len, unfinished) = match current_bytes {
            Some((len, unfinished)) => (
                dir.open_existing(CURRENT)
                    .map_err(|e| StorageError::io(format!("opening {CURRENT}"), e))?,
                len,
                unfinished,
            ),
            None => (
                dir.create(CURRENT)
                    .map_err(|e| StorageError::io(format!("creating {CURRENT}"), e))?,
                0,
                false,
            ),
        };
        let mut opened = Self {
            dir,
            file,
            len,
            lines: current.len(),
            message_bytes: current.iter().map(|r| r.message.len()).sum(),
            limits,
            failed: false,
        };
        // A line a crash cut short is ended, so that the next one starts
        // on a line of its own.
        if unfinished {
            opened
                .file
                .write_all_at(opened.len, b"\n")
                .map_err(|e| StorageError::io(format!("writing {CURRENT}"), e))?;
            opened.len += 1;
        }
        records.extend(current);
        Ok((opened, records))
    }

    /// Appends `record`; a failure is logged once and ends the writing.
    pub(crate) fn append(&mut self, record: &LogRecord) {
        if self.failed {
            return;
        }
        let mut line = Vec::new();
        encode(record, &mut line);
        if let Err(e) = self.write(&line, record.message.len()) {
            self.failed = true;
            tracing::warn!(
                "the module log could not be written to {CURRENT} (it is kept in memory \
                 until the server restarts): {e}"
            );
        }
    }

    fn write(&mut self, line: &[u8], message_bytes: usize) -> io::Result<()> {
        if self.lines > 0
            && (self.lines >= self.limits.max_lines
                || self.message_bytes + message_bytes > self.limits.max_bytes)
        {
            self.dir.rename(CURRENT, PREVIOUS)?;
            self.file = self.dir.create(CURRENT)?;
            (self.len, self.lines, self.message_bytes) = (0, 0, 0);
        }
        if let Err(e) = self.file.write_all_at(self.len, line) {
            // No half line for the next one to be appended to.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += line.len() as u64;
        self.lines += 1;
        self.message_bytes += message_bytes;
        Ok(())
    }
}

/// The largest file this server writes under `limits`, with room to
/// spare: every message escaped to six times its bytes (a control
/// character in JSON), the fields of each line, and one line more.
fn read_cap(limits: LogLimits) -> u64 {
    let bytes = limits
        .max_bytes
        .saturating_add(limits.max_line_bytes)
        .saturating_mul(6)
        .saturating_add(limits.max_lines.saturating_add(1).saturating_mul(64));
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Appends `record` as a line to `out`.
fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    let line = Line {
        t: record.timestamp.to_micros_since_epoch(),
        l: record.level.name(),
        m: std::borrow::Cow::Borrowed(&record.message),
    };
    // Serializing a struct of a number and strings cannot fail.
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

/// The lines of file `name` that parse, oldest first, and the file's
/// size with whether its last line is unfinished (`None`: missing or not
/// read). A file larger than `cap`, or unreadable, is not read; a special
/// file (a named pipe) is refused when opened.
fn read_lines(dir: &dyn Directory, name: &str, cap: u64) -> (Vec<LogRecord>, Option<(u64, bool)>) {
    let bytes = match dir.read_head(
        name,
        usize::try_from(cap.saturating_add(1)).unwrap_or(usize::MAX),
    ) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (Vec::new(), None),
        Err(e) => {
            tracing::warn!("the module log in {name} was not read: {e}");
            return (Vec::new(), None);
        }
    };
    if bytes.len() as u64 > cap {
        tracing::warn!(
            "the module log in {name} was not read: more than the {cap} bytes this server writes"
        );
        return (Vec::new(), None);
    }
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
    let unfinished = bytes.last().is_some_and(|&b| b != b'\n');
    (records, Some((bytes.len() as u64, unfinished)))
}

/// A line back as a record, if it is one.
fn decode(line: &[u8]) -> Option<LogRecord> {
    let line: Line<'_> = serde_json::from_slice(line).ok()?;
    let level = LogLevel::from_name(line.l)?;
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

    fn limits(max_bytes: usize, max_lines: usize) -> LogLimits {
        LogLimits {
            max_lines,
            max_line_bytes: 1024,
            max_bytes,
        }
    }

    fn reopen(dir: &Arc<dyn Directory>, limits: LogLimits) -> (ModuleLogFile, Vec<LogRecord>) {
        ModuleLogFile::open(Arc::clone(dir), limits).expect("open")
    }

    fn messages(records: &[LogRecord]) -> Vec<&str> {
        records.iter().map(|r| r.message.as_str()).collect()
    }

    #[test]
    fn lines_written_are_read_back_in_order_with_their_level_and_time() {
        let dir = MemoryDisk::new().root();
        let (mut file, read) = reopen(&dir, limits(1 << 20, 100));
        assert!(read.is_empty());
        let lines = [record("first"), record("a \"quoted\"\nsecond line\u{0}")];
        for line in &lines {
            file.append(line);
        }
        drop(file);
        let (mut file, read) = reopen(&dir, limits(1 << 20, 100));
        assert_eq!(read, lines);
        file.append(&record("third"));
        drop(file);
        let (_, read) = reopen(&dir, limits(1 << 20, 100));
        assert_eq!(
            messages(&read),
            ["first", lines[1].message.as_str(), "third"]
        );
    }

    #[test]
    fn damaged_lines_are_skipped_and_a_cut_line_is_ended_before_the_next() {
        let dir = MemoryDisk::new().root();
        let (mut file, _) = reopen(&dir, limits(1 << 20, 100));
        file.append(&record("kept"));
        drop(file);
        let mut bytes = dir.read(CURRENT).expect("read");
        bytes.extend_from_slice(b"{\"t\":1,\"l\":\"LOUD\",\"m\":\"x\"}\n\xff\xfe garbage\n");
        encode(&record("also kept"), &mut bytes);
        bytes.extend_from_slice(b"{\"t\":2,\"l\":\"INFO\",\"m\":\"cut sh");
        dir.create(CURRENT)
            .and_then(|mut f| f.write_all_at(0, &bytes))
            .expect("write");
        let (mut file, read) = reopen(&dir, limits(1 << 20, 100));
        assert_eq!(messages(&read), ["kept", "also kept"]);
        file.append(&record("after the cut"));
        drop(file);
        let (_, read) = reopen(&dir, limits(1 << 20, 100));
        assert_eq!(messages(&read), ["kept", "also kept", "after the cut"]);
    }

    // The two files hold at least what the log keeps in memory: the file
    // is set aside once it holds the log's limit of message bytes or of
    // lines, counted as the log counts them (not the JSON around them).
    #[test]
    fn the_two_files_hold_at_least_the_logs_limits() {
        for (limits, each) in [(limits(1000, 10_000), 50), (limits(1 << 20, 10), 5)] {
            let dir = MemoryDisk::new().root();
            let (mut file, _) = reopen(&dir, limits);
            for i in 0..500 {
                // Escapes make the JSON far longer than the message.
                file.append(&record(&format!("{i:04}{}", "\u{1}".repeat(each - 4))));
            }
            drop(file);
            let (_, read) = reopen(&dir, limits);
            let bytes: usize = read.iter().map(|r| r.message.len()).sum();
            assert!(
                bytes >= limits.max_bytes.min(500 * each) || read.len() >= limits.max_lines,
                "{} lines, {bytes} bytes read back under {limits:?}",
                read.len()
            );
            assert!(read.last().expect("a line").message.starts_with("0499"));
            assert!(read.windows(2).all(|w| w[0].message < w[1].message));
            let on_disk =
                dir.size(CURRENT).expect("current") + dir.size(PREVIOUS).expect("previous");
            assert!(on_disk <= 2 * read_cap(limits), "{on_disk}");
        }
    }

    #[test]
    fn a_file_far_larger_than_the_limits_is_not_read_and_started_afresh() {
        let dir = MemoryDisk::new().root();
        let mut bytes = Vec::new();
        for _ in 0..1000 {
            encode(&record("from elsewhere"), &mut bytes);
        }
        dir.create(CURRENT)
            .and_then(|mut f| f.write_all_at(0, &bytes))
            .expect("write");
        let small = LogLimits {
            max_lines: 2,
            max_line_bytes: 10,
            max_bytes: 10,
        };
        let (_, read) = reopen(&dir, small);
        assert!(read.is_empty());
        assert_eq!(dir.size(CURRENT).expect("size"), 0, "started afresh");
    }

    #[test]
    fn a_failed_write_ends_the_writing_but_keeps_what_was_written() {
        let disk = MemoryDisk::new();
        let dir = disk.root();
        let (mut file, _) = reopen(&dir, limits(40, 100));
        // The file started after the limit is reached is on a full disk.
        disk.fail_writes_to(Some(CURRENT));
        for i in 0..20 {
            file.append(&record(&format!("line {i:02}")));
        }
        assert!(file.failed);
        disk.fail_writes_to(None);
        file.append(&record("not written: the writing ended"));
        drop(file);
        let (_, read) = reopen(&dir, limits(40, 100));
        let messages = messages(&read);
        assert!(!messages.is_empty() && messages.len() < 20, "{messages:?}");
        assert!(
            messages.iter().all(|m| m.starts_with("line ")),
            "{messages:?}"
        );
    }
}
