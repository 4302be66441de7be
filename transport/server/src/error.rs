//! What can stop the server.

use worldline_host::HostError;

/// Why the server could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory or a database in it.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A file the server keeps beside the databases.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The QUIC private key could not be written, or others can read it.
    #[error(transparent)]
    Secret(#[from] worldline_host::SecretFileError),
    /// A listening address could not be bound.
    #[error(
        "cannot listen on {address} ({protocol}): {source}{}",
        bind_advice(source)
    )]
    Bind {
        /// `http` or `quic`.
        protocol: &'static str,
        /// The address.
        address: std::net::SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The TLS configuration for QUIC.
    #[error("TLS: {0}")]
    Tls(String),
    /// The QUIC certificate or its key, kept in the data directory, is
    /// damaged.
    #[error("{file} in the data directory is damaged: {reason}")]
    Certificate {
        /// `quic-cert.der` or `quic-key.der`.
        file: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An origin in `ServerConfig::allowed_origins` is not one.
    #[error("allowed origins: {0}")]
    Origin(String),
    /// `ServerConfig::max_outgoing_bytes` is smaller than
    /// `ServerConfig::max_queued_bytes`: one connection could then hold
    /// more than the whole server.
    #[error(
        "the server-wide limit on outgoing messages ({total} bytes) is smaller than the \
         per-connection limit ({per_connection} bytes)"
    )]
    OutgoingBudget {
        /// `max_outgoing_bytes`.
        total: u64,
        /// `max_queued_bytes`.
        per_connection: u32,
    },
    /// `ServerConfig::max_incoming_bytes` is smaller than
    /// `ServerConfig::max_frame`: a message of the largest size could then
    /// never be received.
    #[error(
        "the server-wide limit on messages partly received ({total} bytes) is smaller than \
         the frame limit ({max_frame} bytes)"
    )]
    IncomingBudget {
        /// `max_incoming_bytes`.
        total: u64,
        /// `max_frame`.
        max_frame: u32,
    },
    /// `ServerConfig::max_frame` is below the smallest frame limit the
    /// protocol allows: the server could not split its messages into
    /// fragments that fit it.
    #[error(
        "the frame limit ({max_frame} bytes) is below the smallest the protocol allows ({min} \
         bytes)"
    )]
    FrameLimitTooSmall {
        /// `max_frame`.
        max_frame: u32,
        /// The smallest frame limit allowed.
        min: u32,
    },
    /// `ServerConfig::max_connections` is 0: the server could take no client.
    #[error("the server-wide connection limit must be at least 1")]
    NoConnections,
    /// A database's thread stopped.
    #[error("database `{0}` is not running")]
    DatabaseStopped(String),
}

/// What most likely made binding a listening address fail, after the
/// system's own words: another process on the port, or an address that is
/// not this machine's.
fn bind_advice(source: &std::io::Error) -> &'static str {
    match source.kind() {
        std::io::ErrorKind::AddrInUse => "; is another server running there?",
        std::io::ErrorKind::AddrNotAvailable => {
            "; that IP address is not one of this machine's (127.0.0.1 is this machine only, \
             0.0.0.0 every interface)"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: pick a higher one"
        }
        _ => "",
    }
}
