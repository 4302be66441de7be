//! The WebSocket endpoint: one binary WebSocket message per protocol message.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
use tokio_tungstenite::tungstenite::{
    self,
    error::{CapacityError, ProtocolError},
};
use worldline_transport::FrameError;

use crate::http_listener::Peer;
use crate::outbound::{Ended, MessageSink, Payload, pump};
use crate::quic::sleep_until;
use crate::session::{Flow, Session};
use crate::shared::{SHUTTING_DOWN, Shared};

/// How much one read from the socket takes at most. The WebSocket library
/// zeroes this much before every read, so the default (128 KiB) cost more
/// than the rest of receiving a small message; a message larger than this
/// is still read whole, in several reads.
pub(crate) const READ_BUFFER_BYTES: usize = 16 << 10;

/// How much the WebSocket library gathers before writing to the socket
/// (its default).
const WRITE_BUFFER_BYTES: usize = 128 << 10;

/// The most the WebSocket library may hold unwritten for one connection:
/// what it gathers before writing, one whole frame of `max_frame` bytes
/// (and its header), and as much again for pongs. Unbounded (its default),
/// it kept a pong for every ping a client sent while its socket was full,
/// so a client that floods pings and reads nothing made the server hold
/// about as many bytes as it sent. Past this bound the library keeps only
/// the pong of the latest ping, as RFC 6455 allows.
fn max_write_buffer_bytes(max_frame: usize) -> usize {
    2 * WRITE_BUFFER_BYTES + max_frame + 16
}

/// The bytes of a client's control frame besides its payload: two of
/// header (a control payload has at most 125 bytes, so no extended length)
/// and four of masking key (every client frame is masked).
const CONTROL_FRAME_OVERHEAD: usize = 2 + 4;

/// Upgrades an HTTP request to a protocol connection.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = shared.config.max_frame as usize;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(max_write_buffer_bytes(max))
        .on_upgrade(move |socket| serve(socket, shared, peer))
}

async fn serve(socket: WebSocket, shared: Arc<Shared>, peer: Peer) {
    let Peer {
        addr: peer,
        meter,
        send_queue,
    } = peer;
    meter.start();
    let mut shutdown = shared.shutdown_signal();
    let idle_timeout = shared.config.idle_timeout;
    let (sink, mut stream) = socket.split();
    let (mut session, outbox) = Session::new(shared, peer.ip());
    let mut writer = tokio::spawn(pump(
        outbox,
        WebSocketSink {
            sink,
            shutdown: shutdown.clone(),
        },
    ));
    // The writer's outcome, if it ended while the client was being read
    // (its handle must not be awaited again then).
    let mut ended = None;
    let mut flow = session.admit();
    // Any message, a pong included, proves the client alive; the writer
    // pings at a third of the idle timeout (once the queue is empty).
    let mut alive_until = Instant::now() + idle_timeout;
    while flow == Flow::Continue {
        let deadline = session.handshake_deadline();
        // A message begun must be whole within the idle timeout, however
        // it is split into frames: the pings between them do not extend it.
        let message_deadline = meter.partial_since().map(|since| since + idle_timeout);
        let next = tokio::select! {
            next = stream.next() => next,
            _ = sleep_until(deadline) => {
                flow = session.handshake_timed_out();
                continue;
            }
            _ = sleep_until(message_deadline) => {
                let seconds = idle_timeout.as_secs_f64();
                let message = format!("a message stayed incomplete for {seconds} s; closing");
                flow = session.fail(message).await;
                continue;
            }
            _ = tokio::time::sleep_until(alive_until) => {
                // A client reading slowly through a backlog answers the
                // ping only once it reaches it, behind what was queued
                // before: while messages wait for it, or bytes wait for
                // its acknowledgement, it is not silent. (One that
                // acknowledges nothing is cut by the kernel after the idle
                // timeout: see `SendQueue::of`.)
                if session.owes_messages() || send_queue.holds_unacknowledged_bytes() {
                    alive_until = Instant::now() + idle_timeout;
                    continue;
                }
                let seconds = idle_timeout.as_secs_f64();
                let message = format!("no message or pong for {seconds} s; closing");
                flow = session.refuse(message, true);
                continue;
            }
            result = &mut writer => {
                ended = Some(result);
                break;
            }
            _ = shutdown.changed() => {
                flow = session.refuse(SHUTTING_DOWN.into(), true);
                continue;
            }
        };
        alive_until = Instant::now() + idle_timeout;
        flow = match next {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Binary(bytes))) => session.on_message(&bytes).await,
            Some(Ok(Message::Text(_))) => session.on_text().await,
            Some(Ok(Message::Ping(payload) | Message::Pong(payload))) => {
                meter.control_received(CONTROL_FRAME_OVERHEAD + payload.len());
                continue;
            }
            Some(Err(e)) => session.fail(read_error(e)).await,
        };
        // The room the message took stays taken until the session has
        // handed it on (to its database's queue, bounded in bytes itself):
        // a message waiting for a busy database still counts, so that
        // connections each holding one cannot make the server hold more
        // than the budget.
        meter.message_received();
    }
    // A message the client left unfinished (it closed, or the connection
    // ended) holds no room from now on.
    meter.message_received();
    session.end().await;
    drop(session);
    let ended = match ended {
        Some(result) => result.ok(),
        None => writer.await.ok(),
    };
    // A client that read nothing for the idle timeout cannot read the
    // last messages either: waiting for its Close would only let it keep
    // the connection (and this task reading what it sends) longer.
    if matches!(ended, Some(Ended::Stalled(_))) {
        return;
    }
    // Keep reading (and discarding) until the client answers the close or
    // the idle timeout passes: closing the socket under unread bytes (a
    // late pong) would reset it and lose the last messages, the `Error`
    // saying why included, before the client reads them.
    let drain = async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(idle_timeout, drain).await;
}

/// What a client is told when its next message could not be read: a
/// message over the size limit in the words the protocol gives for it (as
/// over QUIC), anything else as the WebSocket library puts it.
fn read_error(error: axum::Error) -> String {
    let error = error.into_inner();
    match error.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Utf8(detail)) => format!(
            "WebSocket protocol error: a text message or a Close frame's reason that is not \
             valid UTF-8 ({detail}); a Close reason must be UTF-8 text, and the protocol's \
             messages are binary"
        ),
        Some(tungstenite::Error::Protocol(ProtocolError::InvalidCloseSequence)) => {
            "WebSocket protocol error: a Close frame's payload is empty or a 2-byte code \
             followed by a UTF-8 reason, and this one has 1 byte (RFC 6455, section 5.5.1)"
                .to_owned()
        }
        Some(tungstenite::Error::Protocol(ProtocolError::ExpectedFragment(kind))) => format!(
            "WebSocket protocol error: a new {} frame arrived while a message split into frames \
             was incomplete; its continuation frames must come first (RFC 6455, section 5.4)",
            match kind {
                Data::Binary => "binary",
                Data::Text => "text",
                _ => "data",
            }
        ),
        // RFC 6455 5.2: a 64-bit payload length has its most significant
        // bit clear; the library reports such a length as merely too long.
        Some(tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, .. }))
            if *size as u64 > i64::MAX as u64 =>
        {
            "WebSocket protocol error: a 64-bit payload length must have its most significant \
             bit clear (RFC 6455, section 5.2)"
                .to_owned()
        }
        Some(tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
            FrameError::TooLarge {
                len: *size as u64,
                max: u32::try_from(*max_size).unwrap_or(u32::MAX),
            }
            .to_string()
        }
        _ => error.to_string(),
    }
}

/// Writes binary messages on the socket.
struct WebSocketSink {
    sink: SplitSink<WebSocket, Message>,
    /// Whether the server is shutting down, which is then the Close reason.
    shutdown: watch::Receiver<bool>,
}

impl MessageSink for WebSocketSink {
    async fn feed(&mut self, payload: &Payload) -> Result<(), String> {
        let bytes = Bytes::from_owner(payload.clone());
        let fed = self.sink.feed(Message::Binary(bytes)).await;
        fed.map_err(|e| e.to_string())
    }

    async fn flush(&mut self) -> Result<(), String> {
        self.sink.flush().await.map_err(|e| e.to_string())
    }

    async fn ping(&mut self) -> Result<(), String> {
        let sent = self.sink.send(Message::Ping(Default::default())).await;
        sent.map_err(|e| e.to_string())
    }

    async fn close(mut self, ended: &Ended) {
        if let Ended::Stalled(_) = ended {
            return;
        }
        let reason = ended.close_reason(*self.shutdown.borrow());
        let frame = CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: truncate(reason, MAX_CLOSE_REASON_BYTES).into(),
        };
        let _ = self.sink.send(Message::Close(Some(frame))).await;
        let _ = self.sink.close().await;
    }
}

/// The longest reason a Close frame holds: 125 bytes of payload, less the
/// 2 of the code (RFC 6455, section 5.5).
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
