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
//!
//! Room is taken for the whole message at once, as much as it can grow to
//! (its declared size over QUIC, the frame limit over WebSocket, where a
//! message split into frames declares no total): were it taken read by
//! read, connections each holding part of what they need could wait for
//! one another until all of them were closed.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// How many bytes of a partly received message one connection may hold
/// without taking room: calls and queries of this size, the usual case,
/// never wait.
pub(crate) const FREE_PARTIAL_BYTES: usize = 128 << 10;

/// The server-wide budget, shared by every connection.
#[derive(Clone)]
pub(crate) struct IncomingBudget {
    permits: Arc<Semaphore>,
    total: usize,
}

impl IncomingBudget {
    /// A budget of `total` bytes (at most [`Semaphore::MAX_PERMITS`]).
    pub(crate) fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The room of a new connection, none of the budget held yet.
    pub(crate) fn room(&self) -> PartialRoom {
        PartialRoom {
            budget: PollSemaphore::new(Arc::clone(&self.permits)),
            total: self.total,
            held: None,
        }
    }
}

/// The room one connection holds for the message it is receiving.
pub(crate) struct PartialRoom {
    budget: PollSemaphore,
    /// The budget's size: no message takes more.
    total: usize,
    held: Option<OwnedSemaphorePermit>,
}

impl PartialRoom {
    /// Ready once the room held covers a partly received message of
    /// `partial` bytes that may grow to `whole` bytes: past
    /// [`FREE_PARTIAL_BYTES`], room for all of `whole` beyond them is taken
    /// at once (or for `partial`, should it be the larger); pending while
    /// the server has no room for it.
    pub(crate) fn poll_cover(
        &mut self,
        cx: &mut Context<'_>,
        partial: usize,
        whole: usize,
    ) -> Poll<()> {
        if partial <= FREE_PARTIAL_BYTES {
            return Poll::Ready(());
        }
        let needed = partial
            .max(whole)
            .saturating_sub(FREE_PARTIAL_BYTES)
            .min(self.total);
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
    /// `partial` bytes that may grow to `whole` (see
    /// [`poll_cover`](Self::poll_cover)).
    pub(crate) async fn cover(&mut self, partial: usize, whole: usize) {
        poll_fn(|cx| self.poll_cover(cx, partial, whole)).await;
    }

    /// The message is whole, or what is left of it fits the free bytes:
    /// gives the room back.
    pub(crate) fn release(&mut self) {
        self.held = None;
    }
}
