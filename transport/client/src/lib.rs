//! The Rust client SDK for Worldline.
//!
//! A [`Client`] connects to one database over QUIC or WebSocket, calls
//! reducers, subscribes to SQL queries and keeps a live cache of the
//! subscribed rows, with callbacks on inserts, deletes and in-place updates.
//!
//! Callbacks run with no lock held, may use the client, and are contained:
//! one that panics is logged and the client carries on (see
//! [`Client::on_insert`]). No request waits forever on a server that stops
//! answering (see [`ConnectOptions::idle_timeout`]).
//!
//! ```no_run
//! use worldline_client::{Client, ConnectOptions, Trust, parse_fingerprint};
//!
//! #[derive(serde::Deserialize)]
//! struct Message { id: u64, sender: [u8; 32], sent: i64, text: String }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // QUIC, pinning the certificate fingerprint `worldline start` printed:
//! let trust = Trust::Fingerprint(parse_fingerprint(&"ab".repeat(32))?);
//! let quic = Client::connect(ConnectOptions::quic("127.0.0.1:3001".parse()?, trust, "chat")).await?;
//! // WebSocket:
//! let client = Client::connect(ConnectOptions::websocket("ws://127.0.0.1:3000/v1/ws", "chat")).await?;
//!
//! let printer = client.on_insert("message", |m: &Message| println!("{}", m.text));
//! client.subscribe(&["SELECT * FROM message"]).await?;
//! client.call("send_message", &("hello",)).await?;
//! let messages: Vec<Message> = client.rows("message")?;
//! client.remove_callback(printer);
//! # drop((quic, messages)); Ok(()) }
//! ```
#![deny(missing_docs)]

mod cache;
mod callbacks;
mod client;
mod error;
mod link;
mod tls;

pub use cache::{Applied, ClientCache, RowChange};
pub use callbacks::CallbackId;
pub use client::{
    CallOutcome, Client, ConnectOptions, Endpoint, Event, ProcedureOutcome, QuerySetId,
};
pub use error::ClientError;
pub use link::QuicSocket;
pub use tls::{Trust, parse_fingerprint};
pub use worldline_transport::{
    ProcedureStatus, ReducerEvent, ReducerStatus, TableRows, TableUpdate,
};
