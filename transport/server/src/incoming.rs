//! The server-wide budget for messages partly received: the bytes a
//! WebSocket or QUIC connection has read of a message it has not yet
//! received whole. A message is held in memory until it is whole (up to
//! the frame limit, 4 MiB by default), so connections that each send most
//! of a large message and stall would otherwise make the server hold that
//! much apiece, from as many addresses as a client has. Each connection
//! may hold [`FREE_PARTIAL_BYTES`] without taking room; beyond that, it
//! takes room under [`ServerConfig::max_incoming_bytes`](crate::ServerConfig::max_incoming_bytes)
//! before it reads more, and waits while there is none (its client's
//! further bytes wait in the network stack, under its flow control). The
//! room is given back once the message is whole. A connection that waits
//! too long is closed as any other whose message stays incomplete.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// How many bytes of a partly received message one connection may hold
/// without taking room: calls and queries of this size, the usual case,
/// never wait.
pub(crate) const FREE_PARTIAL_BYTES: usize = 128 << 10;

/// The room one connection holds for the message it is receiving.
pub(crate) struct PartialRoom {
    budget: PollSemaphore,
    held: Option<OwnedSemaphorePermit>,
}

impl PartialRoom {
    /// Room taken from `budget` (one permit a byte), none held yet.
    pub(crate) fn new(budget: Arc<Semaphore>) -> Self {
        Self {
            budget: PollSemaphore::new(budget),
            held: None,
        }
    }

    /// Ready once the room held covers a partly received message of
    /// `partial` bytes (beyond [`FREE_PARTIAL_BYTES`]); pending while the
    /// server has no room for it.
    pub(crate) fn poll_cover(&mut self, cx: &mut Context<'_>, partial: usize) -> Poll<()> {
        let needed = partial.saturating_sub(FREE_PARTIAL_BYTES);
        let held = self
            .held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        if needed <= held {
            return Poll::Ready(());
        }
        let more = u32::try_from(needed - held).unwrap_or(u32::MAX);
        // The budget is never closed; were it, reading would go on unheld.
        if let Some(permit) = ready!(self.budget.poll_acquire_many(cx, more)) {
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
        }
        Poll::Ready(())
    }

    /// Waits until the room held covers a partly received message of
    /// `partial` bytes (see [`poll_cover`](Self::poll_cover)).
    pub(crate) async fn cover(&mut self, partial: usize) {
        poll_fn(|cx| self.poll_cover(cx, partial)).await;
    }

    /// The message is whole, or what is left of it fits the free bytes:
    /// gives the room back.
    pub(crate) fn release(&mut self) {
        self.held = None;
    }
}
