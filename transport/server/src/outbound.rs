//! The path from the server to one client: a queue of encoded messages,
//! bounded in messages and in bytes, and the task that writes them to the
//! transport, splitting messages larger than a frame into fragments.
//!
//! Nothing here ever waits for a client: a message that does not fit the
//! queue drops the connection, which is then told why with a fatal `Error`
//! (if it reads it within the idle timeout) before it is closed.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use worldline_transport::{ServerMessage, encode_message, split_message};

/// An encoded server message, shared by every connection it goes to.
pub(crate) type Payload = Arc<[u8]>;

/// How many bytes the writer feeds before it flushes, when messages are
/// queued faster than they are written.
const BURST_BYTES: usize = 256 << 10;

/// What one connection may cost and how long its writes may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The most messages queued at once.
    pub(crate) messages: usize,
    /// The most bytes queued at once, which is also the largest message.
    pub(crate) bytes: u32,
    /// The largest frame written; larger messages go as fragments.
    pub(crate) max_frame: u32,
    /// The longest one frame may take to write, and the interval (a third
    /// of it) at which an otherwise idle connection is pinged.
    pub(crate) idle_timeout: Duration,
}

/// What the writer task is asked to do next.
enum Outgoing {
    /// Send this message.
    Message(Payload),
    /// Send nothing more and close the connection.
    Close,
}

/// The sending side of a connection's queue.
#[derive(Clone)]
pub(crate) struct Outbound {
    messages: mpsc::Sender<Outgoing>,
    queued: Arc<AtomicUsize>,
    kick: Arc<watch::Sender<Option<String>>>,
    limits: Limits,
}

impl Outbound {
    /// The connection's limits.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Queues a message without waiting. A message that does not fit (the
    /// queue is full, in messages or bytes, or the message alone is larger
    /// than the byte limit) drops the connection with a reason saying so;
    /// then, or if the connection is gone, `false`.
    pub(crate) fn try_send(&self, payload: Payload) -> bool {
        let len = payload.len();
        let max = self.limits.bytes as usize;
        if len > max {
            self.kick(&format!(
                "a message of {len} bytes exceeds this connection's limit of {max} bytes"
            ));
            return false;
        }
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > max {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.kick(&format!(
                "the connection fell too far behind: {before} bytes of messages wait unread \
                 (the limit is {max} bytes)"
            ));
            return false;
        }
        match self.messages.try_send(Outgoing::Message(payload)) {
            Ok(()) => true,
            Err(error) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                if let mpsc::error::TrySendError::Full(_) = error {
                    self.kick(&format!(
                        "the connection fell too far behind: {} messages wait unread",
                        self.limits.messages
                    ));
                }
                false
            }
        }
    }

    /// Sends `message` and then closes the connection, never waiting: if
    /// the queue has no room, the connection is dropped with `message` as
    /// the reason, which is sent as a fatal `Error` in place of the queue.
    pub(crate) fn close_with(&self, message: &ServerMessage) {
        let payload = Payload::from(encode_message(message));
        if !self.try_send(payload) || self.messages.try_send(Outgoing::Close).is_err() {
            let reason = match message {
                ServerMessage::Error { message, .. } => message.as_str(),
                _ => "the connection is closed",
            };
            self.kick(reason);
        }
    }

    /// Closes the connection at once, dropping what is still queued; the
    /// client is sent a fatal `Error` with the first reason given.
    pub(crate) fn kick(&self, reason: &str) {
        self.kick.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason.to_owned());
            true
        });
    }
}

/// The receiving side of a connection's queue, for its writer task.
pub(crate) struct Outbox {
    messages: mpsc::Receiver<Outgoing>,
    queued: Arc<AtomicUsize>,
    kick: watch::Receiver<Option<String>>,
    limits: Limits,
}

/// A queue within `limits`.
pub(crate) fn channel(limits: Limits) -> (Outbound, Outbox) {
    let (messages, receiver) = mpsc::channel(limits.messages.max(1));
    let (kick, kick_receiver) = watch::channel(None);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbound {
            messages,
            queued: queued.clone(),
            kick: Arc::new(kick),
            limits,
        },
        Outbox {
            messages: receiver,
            queued,
            kick: kick_receiver,
            limits,
        },
    )
}

/// Writes whole frames to one transport.
pub(crate) trait MessageSink: Send {
    /// Writes one frame (a message, or a fragment of one); it may wait in
    /// a buffer until [`flush`](Self::flush).
    fn feed(&mut self, payload: &Payload) -> impl Future<Output = Result<(), String>> + Send;
    /// Sends everything fed so far.
    fn flush(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Checks that the peer is alive, if the transport does not do so itself.
    fn ping(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Closes the connection, telling the peer `reason`.
    fn close(self, reason: &str) -> impl Future<Output = ()> + Send;
}

/// How the writer task ended.
enum End {
    /// The queue closed: everything queued was written.
    Closed,
    /// The connection was dropped for this reason, to be told to the client.
    Kicked(String),
    /// Writing failed or stalled; nothing more can be written.
    Broken(String),
}

/// Writes queued messages to `sink` until the queue closes, the server
/// drops the connection, or a write fails or stalls; then closes the sink.
/// Every write is bounded by the idle timeout, so this always ends.
pub(crate) async fn pump(mut outbox: Outbox, mut sink: impl MessageSink) {
    let limits = outbox.limits;
    let mut pings = tokio::time::interval((limits.idle_timeout / 3).max(Duration::from_millis(1)));
    pings.tick().await;
    let end = loop {
        let next = tokio::select! {
            biased;
            reason = kicked(&mut outbox.kick) => break End::Kicked(reason),
            next = outbox.messages.recv() => next,
            _ = pings.tick() => {
                match tokio::time::timeout(limits.idle_timeout, sink.ping()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => break End::Broken(e),
                    Err(_) => break End::Broken("a ping could not be written in time".into()),
                }
            }
        };
        let Some(Outgoing::Message(payload)) = next else {
            break End::Closed;
        };
        // Everything queued meanwhile goes out with it, flushed once (one
        // system call for a burst of replies instead of one each).
        let (written, close) = write_burst(&mut outbox, &mut sink, payload).await;
        if let Err(reason) = written {
            break End::Broken(reason);
        }
        if close {
            break End::Closed;
        }
    };
    let reason = match end {
        End::Closed => String::from("closed"),
        End::Kicked(reason) => {
            tracing::debug!("dropping a client: {reason}");
            let error = encode_message(&ServerMessage::Error {
                message: reason.clone(),
                fatal: true,
            });
            let error = Payload::from(error);
            if write(&mut sink, &error, limits).await.is_ok() {
                let _ = bounded(limits, sink.flush()).await;
            }
            reason
        }
        End::Broken(reason) => {
            tracing::debug!("writing to a client failed: {reason}");
            reason
        }
    };
    // Dropping a sink that did not close in time drops the connection too.
    let _ = tokio::time::timeout(limits.idle_timeout, sink.close(&reason)).await;
}

/// Feeds `first` and every message queued behind it, up to
/// [`BURST_BYTES`], then flushes once. Returns how the writes went and
/// whether the queue asked to close the connection after them.
async fn write_burst(
    outbox: &mut Outbox,
    sink: &mut impl MessageSink,
    first: Payload,
) -> (Result<(), String>, bool) {
    let limits = outbox.limits;
    let mut fed = 0;
    let mut next = Some(first);
    let mut close = false;
    while let Some(payload) = next.take() {
        let written = write(sink, &payload, limits).await;
        outbox.queued.fetch_sub(payload.len(), Ordering::AcqRel);
        if written.is_err() {
            return (written, false);
        }
        fed += payload.len();
        if fed >= BURST_BYTES {
            break;
        }
        match outbox.messages.try_recv() {
            Ok(Outgoing::Message(payload)) => next = Some(payload),
            Ok(Outgoing::Close) => close = true,
            Err(_) => {}
        }
    }
    (bounded(limits, sink.flush()).await, close)
}

/// Writes one message, as fragments if it is larger than a frame, each
/// within the idle timeout (the last may wait in the sink's buffer).
async fn write(
    sink: &mut impl MessageSink,
    payload: &Payload,
    limits: Limits,
) -> Result<(), String> {
    for piece in split_message(payload, limits.max_frame) {
        let piece = match piece {
            // The whole message: its shared bytes, not a copy.
            Cow::Borrowed(_) => payload.clone(),
            Cow::Owned(fragment) => Payload::from(fragment),
        };
        bounded(limits, sink.feed(&piece)).await?;
    }
    Ok(())
}

/// `write` within the idle timeout: a client that reads nothing that long
/// is taken as gone.
async fn bounded(
    limits: Limits,
    write: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match tokio::time::timeout(limits.idle_timeout, write).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the client read nothing for {} s",
            limits.idle_timeout.as_secs_f64()
        )),
    }
}

/// The reason the connection is dropped, once there is one.
async fn kicked(kick: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(reason) = kick.borrow_and_update().clone() {
            return reason;
        }
        if kick.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
