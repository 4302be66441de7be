//! What can go wrong talking to a server.

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake failed: usually a certificate that does not match
    /// the pinned fingerprint or the trusted CAs.
    #[error("TLS: {0}; check the server's certificate fingerprint")]
    Tls(String),
    /// The server refused the connection (unknown database, bad token,
    /// refused by the module's `client_connected` reducer).
    #[error("the server refused the connection: {0}")]
    Rejected(String),
    /// The connection is closed; nothing more can be sent.
    #[error("the connection is closed: {0}")]
    Closed(String),
    /// The server sent something the protocol does not allow.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A subscription was refused; nothing was subscribed.
    #[error("subscription refused: {0}")]
    Subscription(String),
    /// A one-off query failed.
    #[error("query failed: {0}")]
    Query(String),
    /// A row did not decode as the requested type.
    #[error(
        "cannot decode a row of `{table}`: {message}; does the type mirror the table's columns?"
    )]
    Decode {
        /// The table.
        table: String,
        /// What postcard said.
        message: String,
    },
    /// A request is larger than the server accepts in one message; it was
    /// not sent, and the connection carries on.
    #[error(
        "the request is {len} bytes, more than the {max} bytes the server accepts in one message; \
         nothing was sent"
    )]
    TooLarge {
        /// The request's encoded size.
        len: usize,
        /// The server's limit (`Welcome.max_frame_bytes`).
        max: u32,
    },
    /// Reducer arguments could not be encoded.
    #[error("cannot encode the arguments: {0}")]
    Encode(String),
    /// The procedure failed; the server's message says why.
    #[error("the procedure failed: {0}")]
    ProcedureFailed(String),
    /// A procedure's return value did not decode as the requested type.
    #[error(
        "cannot decode the return value of procedure `{procedure}`: {message}; does the type \
         mirror its declared return type?"
    )]
    ReturnDecode {
        /// The procedure.
        procedure: String,
        /// What postcard said.
        message: String,
    },
}
