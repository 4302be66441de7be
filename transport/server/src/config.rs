//! How a server is set up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use worldline_host::{HostConfig, Identity};
use worldline_transport::{DEFAULT_MAX_FRAME, DEFAULT_MAX_MESSAGE};

/// The default address of the HTTP API and WebSocket endpoint.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:3000";
/// The default UDP address of the QUIC endpoint.
pub const DEFAULT_QUIC_LISTEN: &str = "127.0.0.1:3001";
/// The default of [`ServerConfig::max_outgoing_bytes`]: 1 GiB, sixteen
/// times the default per-connection limit. A fixed figure rather than a
/// share of the machine's memory, so that a server behaves the same
/// wherever it runs; set it to what the machine can spare.
pub const DEFAULT_MAX_OUTGOING_BYTES: u64 = 1 << 30;
/// The default of [`ServerConfig::max_incoming_bytes`]: 256 MiB, 64 of the
/// largest messages at the default frame limit.
pub const DEFAULT_MAX_INCOMING_BYTES: u64 = 256 << 20;

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
    /// The largest frame accepted from a client and sent to one, in bytes:
    /// larger server messages are split into fragments of at most this size.
    /// At least 64 ([`MIN_MAX_FRAME`](worldline_transport::MIN_MAX_FRAME);
    /// [`Server::start`](crate::Server::start) refuses less).
    pub max_frame: u32,
    /// How many messages may wait for one slow client before it is dropped.
    pub outbound_queue: usize,
    /// How many bytes of messages may wait for one client before it is
    /// dropped (with an `Error` saying why); also the largest single message
    /// the server sends (split into frames of at most `max_frame` bytes):
    /// a subscription whose initial rows are larger is refused.
    pub max_queued_bytes: u32,
    /// How many bytes of encoded messages the server may hold for all its
    /// clients together (each message counted once, however many
    /// connections it goes to) before it sheds load: past it, a message
    /// for a connection that is behind (messages have waited for it
    /// without a pause for over a second) drops that connection (with an
    /// `Error` saying why; a connection that keeps up still gets it), and a `Query` answer, a subscription's initial
    /// rows or a procedure's result that would take the total past it is
    /// refused instead of sent. At least `max_queued_bytes`
    /// ([`Server::start`](crate::Server::start) refuses less).
    pub max_outgoing_bytes: u64,
    /// How many bytes of messages partly received the server may hold for
    /// all its WebSocket and QUIC clients together, beyond the first
    /// 128 KiB of each connection's: past it, a connection receiving a
    /// larger message reads no more of it until there is room (its client
    /// waits under TCP's or QUIC's flow control), and is closed if the
    /// message is not whole within `idle_timeout`. At least `max_frame`
    /// ([`Server::start`](crate::Server::start) refuses less).
    pub max_incoming_bytes: u64,
    /// How long a new connection has to open its stream (QUIC) and send
    /// `Hello` before it is closed.
    pub handshake_timeout: Duration,
    /// How long a connection may stay silent before it is dropped: QUIC's
    /// idle timeout (the server sends keep-alives at a third of it), the
    /// WebSocket deadline for any message or pong (the server pings at a
    /// third of it), and the longest a single frame may take to write.
    pub idle_timeout: Duration,
    /// How many connections (QUIC and WebSocket together) one IP address may
    /// hold at once; more are refused with an `Error`.
    pub max_connections_per_ip: usize,
    /// How many connections the server holds at once, from all addresses:
    /// TCP connections to the HTTP port (each WebSocket session rides on
    /// one, and each holds a file descriptor) and QUIC connections
    /// together. Past it, a new TCP connection is answered `503` and
    /// closed, and a new QUIC connection is refused before its handshake
    /// (`CONNECTION_REFUSED`). At least 1. `worldline start` lowers it to
    /// half the process's open-file limit, so that connections cannot take
    /// the descriptors the data directory needs.
    pub max_connections: usize,
    /// The identities that may create databases. Empty (the default):
    /// anyone with an identity may. Otherwise a publish that would create
    /// a database (a name that holds none) by another identity is refused
    /// with `403`; owners still update, replace and delete what they own.
    pub publishers: Vec<Identity>,
    /// The web origins (`https://app.example.com`) whose pages may call the
    /// HTTP API from a browser: answers carry CORS headers for them and
    /// preflight requests are answered. `*` allows every origin. Empty (the
    /// default): no CORS headers, so a page of another origin cannot read
    /// the API's answers. (The WebSocket endpoint takes any origin.)
    pub allowed_origins: Vec<String>,
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
            max_queued_bytes: DEFAULT_MAX_MESSAGE,
            max_outgoing_bytes: DEFAULT_MAX_OUTGOING_BYTES,
            max_incoming_bytes: DEFAULT_MAX_INCOMING_BYTES,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections_per_ip: 64,
            max_connections: 10_000,
            publishers: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}
