//! Worldline's wire protocol: the messages clients and servers exchange
//! (one serde definition for both sides, postcard-encoded) and how they are
//! framed on a byte stream. `PROTOCOL.md` beside this crate specifies the
//! bytes, so that clients can be written in any language.
//!
//! Sans-IO: [`FrameDecoder`] takes bytes as they arrive and yields whole
//! messages; the QUIC and WebSocket servers feed it.
#![deny(missing_docs)]

mod frame;
pub mod http_api;
mod messages;

pub use frame::{
    DEFAULT_MAX_FRAME, DEFAULT_MAX_MESSAGE, FrameDecoder, FrameError, MIN_MAX_FRAME, Reassembler,
    decode_message, encode_frame, encode_message, leading_varint, split_message,
};
pub use messages::{
    ClientMessage, MAX_DATAGRAM_MESSAGE, MIN_PROTOCOL_VERSION, Message, PROCEDURES_VERSION,
    PROTOCOL_VERSION, ProcedureStatus, QUIC_ACK_ELICITING_THRESHOLD, QUIC_ALPN, ReducerEvent,
    ReducerStatus, RowUpdate, ServerMessage, TableRows, TableUpdate, WEBSOCKET_PATH,
};
