//! The protocol's messages. Rows and reducer arguments are postcard bytes
//! of the module's own types, carried as opaque byte strings.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The protocol version this crate speaks; sent in [`ClientMessage::Hello`].
/// Version 3 added procedure calls ([`ClientMessage::CallProcedure`],
/// [`ServerMessage::ProcedureResult`]).
pub const PROTOCOL_VERSION: u16 = 3;

/// The protocol version that added procedure calls; a client of an
/// older version sending `CallProcedure` (type 6) is refused as sending
/// an unknown type.
pub const PROCEDURES_VERSION: u16 = 3;

/// The oldest protocol version a server still accepts in `Hello`. A
/// version-2 client is sent only version-2 messages; a message version 3
/// added, sent by it, is refused as an unknown type.
pub const MIN_PROTOCOL_VERSION: u16 = 2;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// The first message on a connection: the protocol version, the
    /// database to connect to and, to reuse an identity, its token.
    Hello {
        /// Must equal the server's [`PROTOCOL_VERSION`].
        version: u16,
        /// The database's name.
        database: String,
        /// A token from an earlier [`ServerMessage::Welcome`]; `None` asks for a new identity.
        token: Option<String>,
    },
    /// Calls a reducer; answered by [`ServerMessage::ReducerResult`] with the same `request_id`.
    CallReducer {
        /// Chosen by the client to match the answer.
        request_id: u32,
        /// The reducer's name.
        reducer: String,
        /// The postcard-encoded argument tuple.
        args: ByteBuf,
    },
    /// Subscribes to the rows matching SQL queries; answered by
    /// [`ServerMessage::SubscribeApplied`] or [`ServerMessage::SubscriptionError`].
    Subscribe {
        /// Chosen by the client to name this set of queries.
        query_set_id: u32,
        /// `SELECT` queries.
        queries: Vec<String>,
    },
    /// Ends a subscription.
    Unsubscribe {
        /// The set of queries to drop.
        query_set_id: u32,
    },
    /// Runs one query once; answered by [`ServerMessage::QueryResult`].
    Query {
        /// Chosen by the client to match the answer.
        request_id: u32,
        /// A `SELECT` query.
        query: String,
    },
    /// Calls a reducer without asking for an answer: no `ReducerResult`
    /// follows, and over a QUIC datagram the call may be lost. For frequent,
    /// superseded updates such as movement. See [`MAX_DATAGRAM_MESSAGE`].
    CallReducerUnreliable {
        /// The reducer's name.
        reducer: String,
        /// The postcard-encoded argument tuple.
        args: ByteBuf,
    },
    /// Calls a procedure (protocol version 3); answered by
    /// [`ServerMessage::ProcedureResult`] with the same `request_id`.
    /// Procedures run beside the database's reducers, so their answers may
    /// come in any order relative to other calls' answers.
    CallProcedure {
        /// Chosen by the client to match the answer.
        request_id: u32,
        /// The procedure's name.
        procedure: String,
        /// The postcard-encoded argument tuple.
        args: ByteBuf,
    },
}

/// The ALPN protocol name a QUIC connection negotiates.
pub const QUIC_ALPN: &[u8] = b"worldline/1";

/// How many ack-eliciting packets each side of a QUIC connection asks the
/// other to receive before acknowledging them (the ACK frequency extension,
/// draft-ietf-quic-ack-frequency; a peer without it keeps QUIC's default
/// of every second packet). The other bound, the peer's maximum ACK delay
/// (25 ms by default), stays as it is. Fewer acknowledgements save both
/// sides a packet each way per reply or update: a run of 4 × 16 pipelined
/// transfers gained 5–6% and the fan-out of one commit to 1,000 subscribers
/// took 15–20% less time, with a single call's round trip unchanged.
pub const QUIC_ACK_ELICITING_THRESHOLD: u32 = 8;

/// The HTTP path of the WebSocket endpoint.
pub const WEBSOCKET_PATH: &str = "/v1/ws";

/// The largest encoded message a client sends in one QUIC datagram
/// (a [`ClientMessage::CallReducerUnreliable`]); larger calls go on the stream.
pub const MAX_DATAGRAM_MESSAGE: usize = 1_100;

/// What a server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The answer to `Hello`: who the client is on this server.
    Welcome {
        /// The protocol version the server speaks.
        version: u16,
        /// The client's 32-byte identity.
        identity: [u8; 32],
        /// A token that proves the identity on later connections.
        token: String,
        /// This connection's 16-byte id.
        connection_id: [u8; 16],
        /// The largest frame (QUIC: payload after the length prefix;
        /// WebSocket: message) the server sends and accepts on this
        /// connection. Larger server messages arrive as [`ServerMessage::Fragment`]s.
        max_frame_bytes: u32,
        /// The largest whole message the server sends, in bytes, before
        /// splitting it into fragments: what a client must be able to reassemble.
        max_message_bytes: u32,
    },
    /// The rows matching a new subscription, per table.
    SubscribeApplied {
        /// The client's id for the query set.
        query_set_id: u32,
        /// Matching rows.
        tables: Vec<TableRows>,
    },
    /// A subscription was refused; nothing was subscribed.
    SubscriptionError {
        /// The client's id for the query set.
        query_set_id: u32,
        /// Why, naming what is unsupported or wrong.
        message: String,
    },
    /// A committed transaction's effect on the client's subscribed rows, in commit order.
    TransactionUpdate {
        /// Changes per table.
        tables: Vec<TableUpdate>,
        /// What caused them.
        event: ReducerEvent,
    },
    /// The outcome of the client's own `CallReducer`.
    ReducerResult {
        /// The client's request id.
        request_id: u32,
        /// Committed, or why not.
        status: ReducerStatus,
        /// How long the reducer ran, in microseconds.
        duration_micros: u64,
    },
    /// The answer to `Query`.
    QueryResult {
        /// The client's request id.
        request_id: u32,
        /// Rows per table, or why the query failed.
        result: Result<Vec<TableRows>, String>,
    },
    /// The answer to `Unsubscribe`: the rows the query set held, per table,
    /// which the client removes from its cache (rows another query set
    /// also matches stay, counted once less).
    UnsubscribeApplied {
        /// The client's id for the query set.
        query_set_id: u32,
        /// The rows the set held when it ended.
        tables: Vec<TableRows>,
    },
    /// A problem with what the client sent. `fatal` errors close the connection.
    Error {
        /// What went wrong.
        message: String,
        /// Whether the server closes the connection after this message.
        fatal: bool,
    },
    /// A piece of a server message too large for one frame. The pieces
    /// arrive consecutively, nothing in between; their bytes, concatenated,
    /// are the encoding of one whole message (never itself a fragment).
    Fragment {
        /// Whether this is the final piece.
        last: bool,
        /// The next bytes of the whole message.
        bytes: ByteBuf,
    },
    /// The outcome of the client's own `CallProcedure` (protocol version 3).
    ProcedureResult {
        /// The client's request id.
        request_id: u32,
        /// The returned value, or why there is none.
        status: ProcedureStatus,
        /// How long the procedure ran, in microseconds.
        duration_micros: u64,
    },
}

/// A protocol message type: what decoding errors name.
pub trait Message: serde::de::DeserializeOwned {
    /// The type's name.
    const KIND: &'static str;
    /// Its variants' names, by index.
    const VARIANTS: &'static [&'static str];
}

impl Message for ClientMessage {
    const KIND: &'static str = "ClientMessage";
    const VARIANTS: &'static [&'static str] = &[
        "Hello",
        "CallReducer",
        "Subscribe",
        "Unsubscribe",
        "Query",
        "CallReducerUnreliable",
        "CallProcedure",
    ];
}

impl Message for ServerMessage {
    const KIND: &'static str = "ServerMessage";
    const VARIANTS: &'static [&'static str] = &[
        "Welcome",
        "SubscribeApplied",
        "SubscriptionError",
        "TransactionUpdate",
        "ReducerResult",
        "QueryResult",
        "UnsubscribeApplied",
        "Error",
        "Fragment",
        "ProcedureResult",
    ];
}

/// Rows of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// The table's name.
    pub table: String,
    /// Postcard-encoded rows.
    pub rows: Vec<ByteBuf>,
}

/// One table's changes in a transaction. A row whose primary key stays
/// the same is an update, never a delete plus an insert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableUpdate {
    /// The table's name.
    pub table: String,
    /// Rows that now match.
    pub inserts: Vec<ByteBuf>,
    /// Rows that no longer match.
    pub deletes: Vec<ByteBuf>,
    /// Rows changed in place (same primary key).
    pub updates: Vec<RowUpdate>,
}

/// A row changed in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowUpdate {
    /// The row before the transaction.
    pub old: ByteBuf,
    /// The row after it.
    pub new: ByteBuf,
}

/// The reducer call behind a transaction update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducerEvent {
    /// Who called.
    pub caller: [u8; 32],
    /// Over which connection, if any.
    pub connection_id: Option<[u8; 16]>,
    /// The reducer's name.
    pub reducer: String,
    /// The transaction's timestamp, microseconds since the Unix epoch.
    pub timestamp: i64,
    /// How long the reducer ran, in microseconds.
    pub duration_micros: u64,
}

/// How a reducer call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReducerStatus {
    /// It committed (and is as durable as the server's policy promises).
    Committed,
    /// It changed nothing; the message says why.
    Failed(String),
    /// It committed in memory and its transaction went to the commit log,
    /// which then failed: it may or may not be durable (a restart recovers
    /// it or not). Do not retry blindly; check whether it took effect once
    /// the database is back. The message says what failed.
    OutcomeUnknown(String),
}

/// How a procedure call ended. The transactions a procedure committed
/// before it failed stay committed (each is reported to subscribers as it
/// commits); those it had open are rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcedureStatus {
    /// It returned: the postcard bytes of its declared return type.
    Returned(ByteBuf),
    /// It failed (returned an error, trapped, passed a limit or could not
    /// run); the message says why.
    Failed(String),
}
