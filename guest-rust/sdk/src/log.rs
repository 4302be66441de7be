//! Writing to the module log, which the database owner can read.
//!
//! Standard output and standard error go nowhere; use these instead.

use crate::bindings::worldline::module::log::{Level, write};

/// Logs a trace line.
pub fn trace(message: impl AsRef<str>) {
    write(Level::Trace, message.as_ref());
}

/// Logs a debug line.
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message.as_ref());
}

/// Logs an informational line.
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message.as_ref());
}

/// Logs a warning.
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message.as_ref());
}

/// Logs an error.
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message.as_ref());
}

/// Reports a panic's message to the host just before the module traps.
pub(crate) fn panic(message: &str) {
    write(Level::Panic, message);
}
