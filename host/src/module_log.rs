//! The module log: what a module wrote through the `log` import, kept in a bounded ring.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::identity::Timestamp;
use crate::storage::ModuleLogFile;

/// Severity of a module log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Detailed tracing.
    Trace,
    /// Debugging output.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected but handled.
    Warn,
    /// An error.
    Error,
    /// A panic message written just before the module trapped.
    Panic,
}

impl LogLevel {
    /// Every level, lowest first.
    const ALL: [LogLevel; 6] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::Panic,
    ];

    /// The level's name, as the log shows it (`INFO`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
            LogLevel::Panic => "PANIC",
        }
    }

    /// The level named `name` (as [`Display`](fmt::Display) writes it), if any.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.name() == name)
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of the module log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// When the line was written.
    pub timestamp: Timestamp,
    /// Its severity.
    pub level: LogLevel,
    /// What the module wrote.
    pub message: String,
}

/// How much module log a database keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// The most lines kept.
    pub max_lines: usize,
    /// The longest line kept, in bytes; longer lines are cut and marked.
    pub max_line_bytes: usize,
    /// The most bytes of messages kept in all.
    pub max_bytes: usize,
}

/// The most recent lines a module logged; the oldest are dropped first,
/// so that the log stays within its [`LogLimits`] in lines and in bytes.
#[derive(Debug)]
pub struct ModuleLog {
    records: VecDeque<LogRecord>,
    limits: LogLimits,
    /// Bytes of the kept messages.
    bytes: usize,
    /// Lines dropped because the log was full.
    dropped: u64,
    /// Where each new line is also written, for a stored database.
    file: Option<ModuleLogFile>,
}

impl ModuleLog {
    /// An empty log kept within `limits` (each at least one line or byte).
    pub fn new(limits: LogLimits) -> Self {
        Self {
            records: VecDeque::new(),
            limits: LogLimits {
                max_lines: limits.max_lines.max(1),
                max_line_bytes: limits.max_line_bytes.max(1),
                max_bytes: limits.max_bytes.max(1),
            },
            bytes: 0,
            dropped: 0,
            file: None,
        }
    }

    /// Appends a line, cutting it to the line limit and dropping the
    /// oldest lines while the log is over its limits.
    pub fn push(&mut self, level: LogLevel, message: String) {
        self.restore(LogRecord {
            timestamp: Timestamp::now(),
            level,
            message,
        });
        if let (Some(file), Some(record)) = (&mut self.file, self.records.back()) {
            file.append(record);
        }
    }

    /// Keeps `record` (written earlier) as [`push`](Self::push) keeps a
    /// new line, without writing it to the log's file.
    pub(crate) fn restore(&mut self, mut record: LogRecord) {
        truncate_line(&mut record.message, self.limits.max_line_bytes);
        // Count what is held: no spare capacity (a no-op for an exact allocation).
        record.message.shrink_to_fit();
        self.bytes += record.message.len();
        self.records.push_back(record);
        while self.records.len() > self.limits.max_lines
            || (self.bytes > self.limits.max_bytes && self.records.len() > 1)
        {
            if let Some(old) = self.records.pop_front() {
                self.bytes -= old.message.len();
                self.dropped += 1;
            }
        }
    }

    /// Takes every kept line out of the log, oldest first.
    pub(crate) fn take_records(&mut self) -> Vec<LogRecord> {
        self.bytes = 0;
        self.records.drain(..).collect()
    }

    /// Writes every line pushed from now on to `file` too.
    pub(crate) fn write_to(&mut self, file: ModuleLogFile) {
        self.file = Some(file);
    }

    /// Writes no more lines to the log's file (its database is closed:
    /// procedures that outlive it must not write into a directory being
    /// deleted, or reopened with a writer of its own).
    pub(crate) fn stop_writing(&mut self) {
        self.file = None;
    }

    /// The limits the log keeps within.
    pub fn limits(&self) -> LogLimits {
        self.limits
    }

    /// Bytes of the messages kept now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The kept lines, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &LogRecord> {
        self.records.iter()
    }

    /// How many lines were dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// One database's module log, shared by its reducer instance and the
/// instances of the procedures running beside it. Cheap to clone: clones
/// write to the same log.
#[derive(Clone, Debug)]
pub(crate) struct SharedLog(Arc<Mutex<ModuleLog>>);

impl SharedLog {
    /// The log, locked (a thread that panicked holding it left it whole:
    /// every method keeps it consistent).
    pub(crate) fn lock(&self) -> MutexGuard<'_, ModuleLog> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a line (see [`ModuleLog::push`]).
    pub(crate) fn push(&self, level: LogLevel, message: String) {
        self.lock().push(level, message);
    }

    /// The last line kept, if any.
    pub(crate) fn last_message(&self) -> Option<String> {
        self.lock().records().last().map(|r| r.message.clone())
    }
}

impl From<ModuleLog> for SharedLog {
    fn from(log: ModuleLog) -> Self {
        Self(Arc::new(Mutex::new(log)))
    }
}

/// Cuts `message` to at most `max` bytes (at a character boundary),
/// ending it with a marker that says how many bytes were cut, the marker
/// included in the `max`.
pub(crate) fn truncate_line(message: &mut String, max: usize) {
    if message.len() <= max {
        return;
    }
    let original = message.len();
    // The marker's length depends on the number it shows; this one is
    // long enough for any cut of a line that fits in memory.
    let marker_room = "… [cut 18446744073709551615 bytes]".len();
    let mut keep = max.saturating_sub(marker_room);
    while !message.is_char_boundary(keep) {
        keep -= 1;
    }
    message.truncate(keep);
    message.push_str(&format!("… [cut {} bytes]", original - keep));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_lines: usize, max_line_bytes: usize, max_bytes: usize) -> LogLimits {
        LogLimits {
            max_lines,
            max_line_bytes,
            max_bytes,
        }
    }

    #[test]
    fn keeps_only_the_newest_lines() {
        let mut log = ModuleLog::new(limits(2, 1024, 1 << 20));
        for i in 0..5 {
            log.push(LogLevel::Info, format!("line {i}"));
        }
        let kept: Vec<_> = log.records().map(|r| r.message.as_str()).collect();
        assert_eq!(kept, ["line 3", "line 4"]);
        assert_eq!(log.dropped(), 3);
    }

    // #9 item 10: the log is bounded in bytes, per line and in all.
    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let mut log = ModuleLog::new(limits(10, 100, 1 << 20));
        log.push(LogLevel::Info, "é".repeat(1000));
        let line = &log.records().next().expect("one line").message;
        assert!(line.len() <= 100, "{} bytes kept", line.len());
        assert!(
            line.capacity() <= 100,
            "{} bytes allocated",
            line.capacity()
        );
        assert!(line.starts_with("éé"));
        assert!(
            line.contains("[cut ") && line.ends_with(" bytes]"),
            "{line}"
        );
    }

    // #9 item 10
    #[test]
    fn the_log_keeps_at_most_its_byte_budget() {
        let mut log = ModuleLog::new(limits(10_000, 1000, 4000));
        for i in 0..100 {
            log.push(LogLevel::Info, format!("{i:0>1000}"));
        }
        assert!(log.bytes() <= 4000, "{} bytes kept", log.bytes());
        assert_eq!(log.records().count(), 4);
        assert_eq!(log.dropped(), 96);
        assert!(
            log.records()
                .last()
                .expect("a line")
                .message
                .ends_with("99")
        );
    }
}
