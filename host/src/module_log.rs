//! The module log: what a module wrote through the `log` import, kept in a bounded ring.

use std::collections::VecDeque;
use std::fmt;

use crate::identity::Timestamp;

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

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
            LogLevel::Panic => "PANIC",
        })
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

/// The most recent lines a module logged; the oldest are dropped first.
#[derive(Debug)]
pub struct ModuleLog {
    records: VecDeque<LogRecord>,
    capacity: usize,
    /// Lines dropped because the ring was full.
    dropped: u64,
}

impl ModuleLog {
    /// An empty log that keeps at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            records: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Appends a line, dropping the oldest if the log is full.
    pub fn push(&mut self, level: LogLevel, message: String) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
            self.dropped += 1;
        }
        self.records.push_back(LogRecord {
            timestamp: Timestamp::now(),
            level,
            message,
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_lines() {
        let mut log = ModuleLog::new(2);
        for i in 0..5 {
            log.push(LogLevel::Info, format!("line {i}"));
        }
        let kept: Vec<_> = log.records().map(|r| r.message.as_str()).collect();
        assert_eq!(kept, ["line 3", "line 4"]);
        assert_eq!(log.dropped(), 3);
    }
}
