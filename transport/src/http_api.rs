//! The JSON bodies of the HTTP API (`HTTP_API.md` beside this crate), one
//! definition shared by the server and the `worldline` command line.
//!
//! Identities are 64 hex digits; rows are JSON values of the module's
//! types (see the JSON mapping in `HTTP_API.md`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest component `POST /v1/database/NAME` accepts, in bytes
/// (64 MiB). The server answers a larger upload `413`; `worldline publish`
/// refuses a larger file before it uploads anything.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// `POST /v1/identity`: a new identity and the token that proves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIdentity {
    /// 64 hex digits.
    pub identity: String,
    /// Sent as `Authorization: Bearer TOKEN` and in `Hello`.
    pub token: String,
}

/// `GET /v1/server`: how to reach the server's other endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's version.
    pub version: String,
    /// The wire protocol version (see `PROTOCOL.md`).
    pub protocol_version: u16,
    /// The UDP address of the QUIC endpoint, as bound (may be unspecified, `0.0.0.0`).
    pub quic_addr: String,
    /// The SHA-256 of the QUIC certificate, 64 hex digits.
    pub quic_fingerprint: String,
    /// The largest frame the server accepts and sends on its QUIC and
    /// WebSocket connections, in bytes (as in `Welcome`).
    pub max_frame_bytes: u32,
}

/// One database in `GET /v1/database`, and the answer of `GET /v1/database/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    /// The database's name.
    pub name: String,
    /// Its owner's identity (empty if an unavailable database's owner
    /// file could not be read).
    pub owner: String,
    /// Its tables' names (none for an unavailable database).
    pub tables: Vec<String>,
    /// Its reducers' names (none for an unavailable database).
    pub reducers: Vec<String>,
    /// Its procedures' names (none for an unavailable database).
    #[serde(default)]
    pub procedures: Vec<String>,
    /// The hosts (and ports) its procedures may send HTTP requests to, as
    /// given at publish (`api.example.com,*.example.org:443`), or `none`.
    #[serde(default)]
    pub http_allow: String,
    /// Set when the database could not be recovered at startup: why. It
    /// then answers every other request with 503 until its owner deletes
    /// or replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// `POST /v1/database/NAME`: what publishing did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The database's name.
    pub name: String,
    /// Its owner's identity.
    pub owner: String,
    /// `created` (a new database), `updated` (hot-swapped in place) or
    /// `replaced` (its data deleted and created anew).
    pub outcome: PublishOutcome,
    /// For an update, one line per schema change applied (`+ table x`).
    pub changes: Vec<String>,
}

/// What publishing did to a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishOutcome {
    /// The database did not exist and was created.
    Created,
    /// The module was swapped in place; data and connections were kept.
    Updated,
    /// The old database and its data were deleted and a new one created.
    Replaced,
}

/// `POST /v1/database/NAME/call/NAME`: a committed reducer call, or a
/// procedure's return value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallResult {
    /// How long the reducer or procedure ran, in microseconds.
    pub duration_micros: u64,
    /// A procedure's return value, as JSON of its declared return type
    /// (`[]` for the unit type); absent for a reducer. A procedure's `null`
    /// (an option that is none) is `Some(Value::Null)`, not `None`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub value: Option<serde_json::Value>,
}

/// Reads a key that is present as `Some`, even when its value is `null`
/// (serde's default reads a present `null` as `None`, which would make a
/// procedure's `null` look like a reducer's answer).
fn present_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// `POST /v1/database/NAME/sql`: the matching rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlResult {
    /// One entry per table the query returns rows of.
    pub tables: Vec<SqlTable>,
}

/// The rows a query returned from one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlTable {
    /// The table's name.
    pub table: String,
    /// The column names, in order.
    pub columns: Vec<String>,
    /// Each row's column values, in column order.
    pub rows: Vec<Vec<Value>>,
}

/// One line of `GET /v1/database/NAME/logs` (newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Position of the line in the module's log since the server started.
    pub seq: u64,
    /// When it was written, in microseconds since the Unix epoch.
    pub timestamp: i64,
    /// `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `PANIC`.
    pub level: String,
    /// What the module wrote.
    pub message: String,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// What to do about it, when the server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For a refused migration: one line per incompatible change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_procedure_value_of_null_is_kept_apart_from_a_reducer_answer() {
        let procedure: CallResult =
            serde_json::from_str(r#"{"duration_micros": 5, "value": null}"#).unwrap();
        assert_eq!(procedure.value, Some(Value::Null));
        assert_eq!(
            serde_json::to_string(&procedure).unwrap(),
            r#"{"duration_micros":5,"value":null}"#
        );
        let reducer: CallResult = serde_json::from_str(r#"{"duration_micros": 5}"#).unwrap();
        assert_eq!(reducer.value, None);
        assert_eq!(
            serde_json::to_string(&reducer).unwrap(),
            r#"{"duration_micros":5}"#
        );
    }
}
