//! The path from the server to one client: a bounded queue of encoded
//! messages, and the task that writes them to the transport.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

/// An encoded server message, shared by every connection it goes to.
pub(crate) type Payload = Arc<[u8]>;

/// What the writer task is asked to do next.
pub(crate) enum Outgoing {
    /// Send this message.
    Message(Payload),
    /// Send nothing more and close the connection.
    Close,
}

/// The sending side of a connection's queue.
#[derive(Clone)]
pub(crate) struct Outbound {
    messages: mpsc::Sender<Outgoing>,
    kick: Arc<watch::Sender<Option<String>>>,
}

impl Outbound {
    /// Queues a message without waiting; `false` if the queue is full or closed.
    pub(crate) fn try_send(&self, payload: Payload) -> bool {
        self.messages.try_send(Outgoing::Message(payload)).is_ok()
    }

    /// Queues a message, waiting for room.
    pub(crate) async fn send(&self, payload: Payload) {
        let _ = self.messages.send(Outgoing::Message(payload)).await;
    }

    /// Closes the connection once the queued messages are written.
    pub(crate) async fn close(&self) {
        let _ = self.messages.send(Outgoing::Close).await;
    }

    /// Closes the connection at once, dropping what is still queued.
    pub(crate) fn kick(&self, reason: &str) {
        self.kick.send_replace(Some(reason.to_owned()));
    }
}

/// The receiving side of a connection's queue, for its writer task.
pub(crate) struct Outbox {
    messages: mpsc::Receiver<Outgoing>,
    kick: watch::Receiver<Option<String>>,
}

/// A queue of at most `capacity` messages.
pub(crate) fn channel(capacity: usize) -> (Outbound, Outbox) {
    let (messages, receiver) = mpsc::channel(capacity);
    let (kick, kick_receiver) = watch::channel(None);
    (
        Outbound {
            messages,
            kick: Arc::new(kick),
        },
        Outbox {
            messages: receiver,
            kick: kick_receiver,
        },
    )
}

/// Writes whole messages to one transport.
pub(crate) trait MessageSink: Send {
    /// Writes one message.
    fn send(&mut self, payload: &[u8]) -> impl Future<Output = Result<(), String>> + Send;
    /// Closes the connection, telling the peer `reason`.
    fn close(self, reason: &str) -> impl Future<Output = ()> + Send;
}

/// Writes queued messages to `sink` until the queue closes, the server
/// kicks the connection, or a write fails; then closes the sink.
pub(crate) async fn pump(mut outbox: Outbox, mut sink: impl MessageSink) {
    let mut kick_open = true;
    let reason = loop {
        tokio::select! {
            biased;
            next = outbox.messages.recv() => match next {
                Some(Outgoing::Message(payload)) => {
                    if let Err(e) = sink.send(&payload).await {
                        tracing::debug!("writing to a client failed: {e}");
                        break String::from("write failed");
                    }
                }
                Some(Outgoing::Close) | None => break String::from("closed"),
            },
            changed = outbox.kick.changed(), if kick_open => {
                if changed.is_err() {
                    kick_open = false;
                } else if let Some(reason) = outbox.kick.borrow().clone() {
                    break reason;
                }
            }
        }
    };
    sink.close(&reason).await;
}
