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

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, ready};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

use crate::shared::client_group;

/// How many bytes of a partly received message one connection may hold
/// without taking room: calls and queries of this size, the usual case,
/// never wait.
pub(crate) const FREE_PARTIAL_BYTES: usize = 128 << 10;

/// The share of the budget one client address (an IPv6 one as its /64)
/// may hold, as a fraction of it: a client holding its connections'
/// messages (sending large ones to a database it keeps busy) leaves the
/// rest to others.
const ADDRESS_SHARE_DIVISOR: usize = 4;

/// The server-wide budget, shared by every connection.
#[derive(Clone)]
pub(crate) struct IncomingBudget {
    permits: Arc<Semaphore>,
    /// The most one address holds: a quarter of the budget, but at least
    /// the largest message (within the budget).
    per_address: usize,
    /// Each address's own count, while it has connections.
    addresses: Arc<Mutex<HashMap<IpAddr, Weak<Semaphore>>>>,
}

impl IncomingBudget {
    /// A budget of `total` bytes (at most [`Semaphore::MAX_PERMITS`]), of
    /// which one address holds at most a quarter, or `largest` (the most
    /// one message takes) if that is more.
    pub(crate) fn new(total: usize, largest: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(total)),
            per_address: (total / ADDRESS_SHARE_DIVISOR).max(largest).min(total),
            addresses: Arc::default(),
        }
    }

    /// The room of a new connection from `peer`, none of the budget held yet.
    pub(crate) fn room(&self, peer: IpAddr) -> PartialRoom {
        let group = client_group(peer);
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let share = match addresses.get(&group).and_then(Weak::upgrade) {
            Some(share) => share,
            None => {
                // Addresses with no connection left go when one is added.
                addresses.retain(|_, share| share.strong_count() > 0);
                let share = Arc::new(Semaphore::new(self.per_address));
                addresses.insert(group, Arc::downgrade(&share));
                share
            }
        };
        PartialRoom {
            budget: PollSemaphore::new(Arc::clone(&self.permits)),
            share: PollSemaphore::new(share),
            per_address: self.per_address,
            held: None,
            held_share: None,
        }
    }
}

/// The room one connection holds for the message it is receiving.
pub(crate) struct PartialRoom {
    budget: PollSemaphore,
    /// Its address's share of the budget.
    share: PollSemaphore,
    /// The most one address holds: no message takes more.
    per_address: usize,
    held: Option<OwnedSemaphorePermit>,
    held_share: Option<OwnedSemaphorePermit>,
}

impl PartialRoom {
    /// Ready once the room held covers a partly received message of
    /// `partial` bytes that may grow to `whole` bytes: past
    /// [`FREE_PARTIAL_BYTES`], room for all of `whole` beyond them is taken
    /// at once (or for `partial`, should it be the larger), from the
    /// address's share first, then from the server's budget; pending while
    /// either has none.
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
            .min(self.per_address);
        ready!(take(&mut self.share, &mut self.held_share, cx, needed));
        take(&mut self.budget, &mut self.held, cx, needed)
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
        self.held_share = None;
    }
}

/// Ready once `held` holds `needed` permits of `semaphore`, taking the rest.
fn take(
    semaphore: &mut PollSemaphore,
    held: &mut Option<OwnedSemaphorePermit>,
    cx: &mut Context<'_>,
    needed: usize,
) -> Poll<()> {
    let holding = held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
    if needed <= holding {
        return Poll::Ready(());
    }
    let more = u32::try_from(needed - holding).unwrap_or(u32::MAX);
    // The semaphores are never closed; were one, reading would go on unheld.
    if let Some(permit) = ready!(semaphore.poll_acquire_many(cx, more)) {
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
    }
    Poll::Ready(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(room: &mut PartialRoom, bytes: usize) -> Poll<()> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        room.poll_cover(&mut cx, bytes, bytes)
    }

    // One address (an IPv6 one as its /64) holds at most a quarter of the
    // budget, or one largest message: its connections' messages waiting
    // leave the rest to other clients.
    #[test]
    fn one_address_holds_at_most_its_share() {
        const MIB: usize = 1 << 20;
        let budget = IncomingBudget::new(16 * MIB, MIB);
        let peer: IpAddr = "2001:db8::1".parse().expect("v6");
        let neighbour: IpAddr = "2001:db8::2".parse().expect("v6");
        let other: IpAddr = "192.0.2.1".parse().expect("v4");
        let mut first = budget.room(peer);
        let mut second = budget.room(neighbour);
        assert!(poll(&mut first, 3 * MIB).is_ready());
        assert!(
            poll(&mut second, 3 * MIB).is_pending(),
            "past its /64's 4 MiB"
        );
        let mut elsewhere = budget.room(other);
        assert!(poll(&mut elsewhere, 3 * MIB).is_ready(), "another address");
        first.release();
        assert!(
            poll(&mut second, 3 * MIB).is_ready(),
            "once the first let go"
        );
        // A share is at least the largest message.
        let small = IncomingBudget::new(4 * MIB, 3 * MIB);
        assert!(poll(&mut small.room(other), 3 * MIB).is_ready());
    }
}
