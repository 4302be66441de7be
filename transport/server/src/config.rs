//! How a server is set up.

use std::net::SocketAddr;
use std::path::PathBuf;

use worldline_host::HostConfig;
use worldline_transport::DEFAULT_MAX_FRAME;

/// The default address of the HTTP API and WebSocket endpoint.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:3000";
/// The default UDP address of the QUIC endpoint.
pub const DEFAULT_QUIC_LISTEN: &str = "127.0.0.1:3001";

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The data directory: databases, commit logs, the signing key and the
    /// QUIC certificate.
    pub data_dir: PathBuf,
    /// Module limits and durability.
    pub host: HostConfig,
    /// Where the HTTP API and WebSocket endpoint listen (port 0 picks one).
    pub http_listen: SocketAddr,
    /// Where the QUIC endpoint listens (port 0 picks one).
    pub quic_listen: SocketAddr,
    /// The largest message accepted from a client, in bytes.
    pub max_frame: u32,
    /// How many messages may wait for one slow client before it is dropped.
    pub outbound_queue: usize,
}

impl ServerConfig {
    /// Defaults for a server keeping its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            host: HostConfig::default(),
            http_listen: DEFAULT_HTTP_LISTEN.parse().expect("a valid address"),
            quic_listen: DEFAULT_QUIC_LISTEN.parse().expect("a valid address"),
            max_frame: DEFAULT_MAX_FRAME,
            outbound_queue: 16_384,
        }
    }
}
