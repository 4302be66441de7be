//! What a baseline run of `bench transfer` (the same transfer on another
//! system) measured, whichever system it ran on.

use serde::Serialize;

use super::stats::Summary;

/// One baseline run under one setting.
#[derive(Debug, Serialize)]
pub struct BaselineResult {
    /// The system and its durability setting, e.g. `sqlite WAL synchronous=FULL`.
    pub system: String,
    /// Throughput and latency in the window.
    pub summary: Summary,
    /// Transfers refused for lack of funds.
    pub refused: u64,
    /// Whether the balance sum was the same at the end.
    pub balance_unchanged: bool,
}
