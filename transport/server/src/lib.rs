//! The Worldline server: every database of a data directory behind a QUIC
//! endpoint and a WebSocket endpoint speaking the protocol of
//! `worldline-transport`, with live SQL subscriptions.
//!
//! Each database runs on its own thread, which owns the module instance and
//! the subscriptions, runs commands in arrival order, and releases replies
//! and transaction updates once the transactions behind them are durable.
//!
//! ```no_run
//! use worldline_server::{Server, ServerConfig};
//! # async fn run() -> Result<(), worldline_server::ServerError> {
//! let server = Server::start(ServerConfig::new("/var/lib/worldline")).await?;
//! println!("QUIC on {}, HTTP on {}", server.quic_addr(), server.http_addr());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod api;
mod config;
mod database_actor;
mod error;
mod http_listener;
mod http_serve;
mod incoming;
mod outbound;
mod procedures;
mod quic;
mod send_queue;
mod server;
mod session;
mod shared;
mod tls;
mod websocket;

pub use api::check_allowed_origin;
pub use config::{
    DEFAULT_HTTP_LISTEN, DEFAULT_MAX_INCOMING_BYTES, DEFAULT_MAX_OUTGOING_BYTES,
    DEFAULT_QUIC_LISTEN, ServerConfig,
};
pub use error::ServerError;
pub use server::Server;
pub use tls::fingerprint_hex;
