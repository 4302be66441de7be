//! The path from the server to one client: a queue of encoded messages,
//! bounded in messages and in bytes, and the task that writes them to the
//! transport, splitting messages larger than a frame into fragments; and
//! the server-wide count of the bytes of messages waiting for clients.
//!
//! Nothing here ever waits for a client: a message that does not fit the
//! queue drops the connection, which is then told why with a fatal `Error`
//! (if it reads it within the idle timeout) before it is closed.

use std::borrow::Cow;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use worldline_transport::{ServerMessage, encode_message, split_message};

use crate::shared::SHUTTING_DOWN;

/// The bytes of the encoded messages the server holds for its clients,
/// each message counted once however many connections it is queued for:
/// a [`Payload`] counts from when it is made until its last clone (in
/// queues, waiting for durability, being written) is dropped.
#[derive(Debug)]
pub(crate) struct OutgoingBudget {
    /// Bytes of the counted payloads alive now.
    bytes: AtomicUsize,
    /// The most bytes that may wait before slow clients are dropped and
    /// large answers refused.
    limit: usize,
}

impl OutgoingBudget {
    /// A budget of `limit` bytes, nothing counted yet.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            bytes: AtomicUsize::new(0),
            limit,
        })
    }

    /// The bytes counted now.
    pub(crate) fn waiting(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Encodes `message` as a payload counted in this budget.
    pub(crate) fn encode(self: &Arc<Self>, message: &ServerMessage) -> Payload {
        self.payload(encode_message(message))
    }

    /// `bytes` as a payload counted in this budget until its last clone is
    /// dropped.
    pub(crate) fn payload(self: &Arc<Self>, bytes: Vec<u8>) -> Payload {
        let bytes = bytes.into_boxed_slice();
        self.bytes.fetch_add(bytes.len(), Ordering::Relaxed);
        Payload(Arc::new(Encoded {
            bytes,
            budget: Some(Arc::clone(self)),
        }))
    }

    /// Whether an answer of `adding` bytes made for one client (a `Query`'s
    /// rows, a subscription's initial rows, a procedure's result) fits:
    /// the reason to refuse it if the server would then hold more than its
    /// limit.
    pub(crate) fn room_for(&self, adding: usize) -> Result<(), Shortage> {
        let waiting = self.waiting();
        if waiting.saturating_add(adding) <= self.limit {
            return Ok(());
        }
        Err(Shortage {
            waiting,
            limit: self.limit,
            adding,
        })
    }
}

/// Why an answer made for one client was refused: the server holds too
/// many bytes of messages for its clients.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the server is short of memory for outgoing messages: {waiting} bytes wait for all clients \
     and this answer would add {adding} (the limit is {limit} bytes); retry later"
)]
pub(crate) struct Shortage {
    waiting: usize,
    limit: usize,
    adding: usize,
}

/// An encoded server message, shared by every connection it goes to.
#[derive(Clone)]
pub(crate) struct Payload(Arc<Encoded>);

/// A payload's bytes and the budget they count in, if any.
struct Encoded {
    bytes: Box<[u8]>,
    budget: Option<Arc<OutgoingBudget>>,
}

impl Drop for Encoded {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.bytes.fetch_sub(self.bytes.len(), Ordering::Relaxed);
        }
    }
}

impl Payload {
    /// Bytes counted in no budget: a fragment of a message (which itself
    /// counts while it is written) or the last `Error` of a dropped client.
    fn uncounted(bytes: Vec<u8>) -> Self {
        Payload(Arc::new(Encoded {
            bytes: bytes.into_boxed_slice(),
            budget: None,
        }))
    }
}

impl Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0.bytes
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// How many bytes the writer feeds before it flushes, when messages are
/// queued faster than they are written.
const BURST_BYTES: usize = 256 << 10;

/// How long messages may wait for a connection without a pause (its writer
/// never finding the queue empty) before it counts as behind, which drops
/// it while the server holds more than its [`OutgoingBudget`]. A client
/// that reads as fast as it is sent (with many calls in flight, or sent a
/// run of updates, some always wait a moment for its writer) catches up
/// far more often than that; one that reads nothing never does.
const KEEPING_UP: Duration = Duration::from_secs(1);

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
    /// Look at [`Tally::kicked`]: the connection is being dropped.
    Kicked,
}

/// What a connection's queue holds and whether it is being dropped, shared
/// by its senders and its writer.
struct Tally {
    /// Bytes of the messages queued and not yet written.
    bytes: AtomicUsize,
    /// Messages queued and not yet taken by the writer.
    messages: AtomicUsize,
    /// Set once the connection is dropped: the writer stops at its next
    /// message and sends the reason instead.
    kicked: AtomicBool,
    /// The first reason the connection was dropped for.
    reason: Mutex<Option<String>>,
    /// Woken when the connection is dropped, so that a writer waiting on
    /// a slow write lets go of the queue at once.
    dropped: Notify,
    /// When the queue was made: what [`caught_up`](Self::caught_up) counts from.
    born: std::time::Instant,
    /// When the writer last found the queue empty and woke for a message,
    /// in milliseconds since [`born`](Self::born).
    caught_up: AtomicU64,
    /// Whether the writer waits on an empty queue (it has not woken for
    /// the messages queued since, if any: the connection is not behind).
    idle: AtomicBool,
}

impl Tally {
    /// Milliseconds since the queue was made.
    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether messages have waited for the connection without a pause for
    /// longer than [`KEEPING_UP`].
    fn behind(&self) -> bool {
        if self.idle.load(Ordering::Acquire) {
            return false;
        }
        let since = self.caught_up.load(Ordering::Acquire);
        self.now().saturating_sub(since) > KEEPING_UP.as_millis() as u64
    }
}

/// The sending side of a connection's queue.
#[derive(Clone)]
pub(crate) struct Outbound {
    // Unbounded in itself: [`Tally`] bounds it in messages and in bytes,
    // and leaves room for the markers that close and drop the connection.
    sender: mpsc::UnboundedSender<Outgoing>,
    tally: Arc<Tally>,
    limits: Limits,
    budget: Arc<OutgoingBudget>,
}

impl Outbound {
    /// The connection's limits.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether messages wait in the queue, not yet handed to the socket.
    pub(crate) fn holds_messages(&self) -> bool {
        self.tally.bytes.load(Ordering::Acquire) > 0
    }

    /// The server-wide budget its messages count in.
    pub(crate) fn budget(&self) -> &Arc<OutgoingBudget> {
        &self.budget
    }

    /// Queues a message without waiting. A message that does not fit (the
    /// queue is full, in messages or bytes, or the message alone is larger
    /// than the byte limit) drops the connection with a reason saying so,
    /// as does one that comes while the server holds more bytes for its
    /// clients than its budget and this connection is behind (messages
    /// have waited for it without a pause for over [`KEEPING_UP`]; one
    /// that keeps up always gets it); then, or if the connection is gone
    /// or being dropped, `false`.
    pub(crate) fn try_send(&self, payload: Payload) -> bool {
        if self.tally.kicked.load(Ordering::Acquire) {
            return false;
        }
        let len = payload.len();
        let max = self.limits.bytes as usize;
        if len > max {
            self.kick(&format!(
                "a message of {len} bytes exceeds this connection's limit of {max} bytes"
            ));
            return false;
        }
        let tally = &self.tally;
        let before = tally.bytes.fetch_add(len, Ordering::AcqRel);
        if before + len > max {
            tally.bytes.fetch_sub(len, Ordering::AcqRel);
            self.kick(&format!(
                "the connection fell too far behind: {before} bytes of messages wait unread \
                 and the next one, of {len} bytes, would pass the limit of {max} bytes"
            ));
            return false;
        }
        // A connection with nothing waiting keeps up, whatever the rest.
        if before > 0 {
            let (waiting, limit) = (self.budget.waiting(), self.budget.limit);
            if waiting > limit && tally.behind() {
                tally.bytes.fetch_sub(len, Ordering::AcqRel);
                self.kick(&format!(
                    "the server is short of memory for outgoing messages: {waiting} bytes wait \
                     for all clients (the limit is {limit} bytes); this connection had {before} \
                     bytes waiting"
                ));
                return false;
            }
        }
        let limit = self.limits.messages.max(1);
        if tally.messages.fetch_add(1, Ordering::AcqRel) >= limit {
            tally.messages.fetch_sub(1, Ordering::AcqRel);
            tally.bytes.fetch_sub(len, Ordering::AcqRel);
            self.kick(&format!(
                "the connection fell too far behind: {limit} messages wait unread, the most \
                 it may have"
            ));
            return false;
        }
        if self.sender.send(Outgoing::Message(payload)).is_err() {
            tally.messages.fetch_sub(1, Ordering::AcqRel);
            tally.bytes.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Sends `message` and then closes the connection, never waiting: if
    /// the queue has no room, the connection is dropped with `message` as
    /// the reason, which is sent as a fatal `Error` in place of the queue.
    pub(crate) fn close_with(&self, message: &ServerMessage) {
        let payload = self.budget.encode(message);
        if !self.try_send(payload) || self.sender.send(Outgoing::Close).is_err() {
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
        let mut first = self
            .tally
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if first.is_some() {
            return;
        }
        *first = Some(reason.to_owned());
        self.tally.kicked.store(true, Ordering::Release);
        drop(first);
        // Wakes the writer if it waits for the queue (it looks at the flag
        // before anything else it takes from it) or on a write.
        let _ = self.sender.send(Outgoing::Kicked);
        self.tally.dropped.notify_one();
    }
}

/// The receiving side of a connection's queue, for its writer task.
pub(crate) struct Outbox {
    receiver: mpsc::UnboundedReceiver<Outgoing>,
    tally: Arc<Tally>,
    limits: Limits,
}

impl Outbox {
    /// Why the connection is being dropped, once it is.
    fn kicked(&self) -> Option<String> {
        if !self.tally.kicked.load(Ordering::Acquire) {
            return None;
        }
        let reason = self.tally.reason.lock();
        reason.unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The next message or marker without waiting, if one is queued.
    fn try_next(&mut self) -> Option<Outgoing> {
        let next = self.receiver.try_recv().ok()?;
        self.taken(&next);
        Some(next)
    }

    /// The next message or marker; `None` once every sender is gone.
    async fn next(&mut self) -> Option<Outgoing> {
        let next = self.receiver.recv().await?;
        self.taken(&next);
        Some(next)
    }

    /// Counts `next` out of the queue's messages (its bytes count until
    /// it is written).
    fn taken(&self, next: &Outgoing) {
        if let Outgoing::Message(_) = next {
            self.tally.messages.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// `payload`, taken from the queue, was written (or given up on).
    fn written(&self, payload: &Payload) {
        self.tally.bytes.fetch_sub(payload.len(), Ordering::AcqRel);
    }

    /// Once the connection is dropped: drops every message still queued,
    /// whose bytes the server may need for others, and takes no more.
    fn discard(&mut self) {
        self.receiver.close();
        while let Ok(next) = self.receiver.try_recv() {
            self.taken(&next);
            if let Outgoing::Message(payload) = next {
                self.written(&payload);
            }
        }
    }
}

/// A queue within `limits`, whose messages count in `budget`.
pub(crate) fn channel(limits: Limits, budget: Arc<OutgoingBudget>) -> (Outbound, Outbox) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let tally = Arc::new(Tally {
        bytes: AtomicUsize::new(0),
        messages: AtomicUsize::new(0),
        kicked: AtomicBool::new(false),
        reason: Mutex::new(None),
        dropped: Notify::new(),
        born: std::time::Instant::now(),
        caught_up: AtomicU64::new(0),
        idle: AtomicBool::new(true),
    });
    (
        Outbound {
            sender,
            tally: Arc::clone(&tally),
            limits,
            budget,
        },
        Outbox {
            receiver,
            tally,
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
    /// Closes the connection after the writer ended as `ended` says: with
    /// its reason for the peer, or at once if the peer stopped reading
    /// ([`Ended::Stalled`]: a Close or the rest of the stream would only
    /// wait behind the write given up on).
    fn close(self, ended: &Ended) -> impl Future<Output = ()> + Send;
}

/// How the writer task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The queue closed: everything queued was written.
    Closed,
    /// The connection was dropped for this reason, told to the client.
    Kicked(String),
    /// Writing failed; nothing more can be written.
    Broken(String),
    /// A write took longer than the idle timeout: the client reads nothing.
    Stalled(String),
}

impl Ended {
    /// The reason the connection ended, as the peer is told it when it is
    /// closed: `closed` once everything queued was written, or
    /// [`SHUTTING_DOWN`] if that was because the server is shutting down.
    pub(crate) fn close_reason(&self, shutting_down: bool) -> &str {
        match self {
            Ended::Closed if shutting_down => SHUTTING_DOWN,
            Ended::Closed => "closed",
            Ended::Kicked(reason) | Ended::Broken(reason) | Ended::Stalled(reason) => reason,
        }
    }
}

/// Why a write did not complete.
enum WriteFailed {
    /// The transport refused it.
    Error(String),
    /// It did not complete within the idle timeout.
    TimedOut(String),
}

impl From<WriteFailed> for Ended {
    fn from(failed: WriteFailed) -> Self {
        match failed {
            WriteFailed::Error(reason) => Ended::Broken(reason),
            WriteFailed::TimedOut(reason) => Ended::Stalled(reason),
        }
    }
}

/// Writes queued messages to `sink` until the queue closes, the server
/// drops the connection, or a write fails or stalls; then closes the sink
/// and returns how it ended. Every write is bounded by the idle timeout,
/// so this always ends.
pub(crate) async fn pump(mut outbox: Outbox, mut sink: impl MessageSink) -> Ended {
    let limits = outbox.limits;
    let mut deadline = Deadline::new(limits.idle_timeout);
    let mut pings = tokio::time::interval((limits.idle_timeout / 3).max(Duration::from_millis(1)));
    pings.tick().await;
    let ended = loop {
        if let Some(reason) = outbox.kicked() {
            break Ended::Kicked(reason);
        }
        let idle = outbox.tally.bytes.load(Ordering::Acquire) == 0;
        if idle {
            outbox.tally.idle.store(true, Ordering::Release);
        }
        let next = tokio::select! {
            biased;
            next = outbox.next() => next,
            _ = pings.tick() => match deadline.bound(sink.ping()).await {
                Ok(()) => continue,
                Err(failed) => break failed.into(),
            },
        };
        let payload = match next {
            Some(Outgoing::Message(payload)) => payload,
            Some(Outgoing::Kicked) => continue,
            Some(Outgoing::Close) | None => break Ended::Closed,
        };
        let tally = &outbox.tally;
        if idle || tally.idle.load(Ordering::Acquire) {
            // Caught up until now: the queue was empty (or this is the
            // writer's first message).
            tally.caught_up.store(tally.now(), Ordering::Release);
            tally.idle.store(false, Ordering::Release);
        }
        // Everything queued meanwhile goes out with it, flushed once (one
        // system call for a burst of replies instead of one each).
        match write_burst(&mut outbox, &mut sink, &mut deadline, payload).await {
            Err(failed) => break failed.into(),
            Ok(true) => break Ended::Closed,
            Ok(false) => {}
        }
    };
    let ended = match ended {
        Ended::Kicked(reason) => {
            tracing::debug!("dropping a client: {reason}");
            outbox.discard();
            let error = Payload::uncounted(encode_message(&ServerMessage::Error {
                message: reason.clone(),
                fatal: true,
            }));
            let told = match write(&mut sink, &mut deadline, &error, limits.max_frame).await {
                Ok(()) => deadline.bound(sink.flush()).await,
                Err(failed) => Err(failed),
            };
            match told {
                // The client did not take the `Error` either: it reads nothing.
                Err(WriteFailed::TimedOut(_)) => Ended::Stalled(reason),
                _ => Ended::Kicked(reason),
            }
        }
        Ended::Broken(reason) => {
            tracing::debug!("writing to a client failed: {reason}");
            Ended::Broken(reason)
        }
        Ended::Stalled(reason) => {
            // Dropped while a write stalled: why it was dropped says more
            // than that it read nothing.
            let reason = outbox.kicked().unwrap_or(reason);
            tracing::debug!("dropping a client: {reason}");
            Ended::Stalled(reason)
        }
        Ended::Closed => Ended::Closed,
    };
    // Dropping a sink that did not close in time drops the connection too.
    let _ = tokio::time::timeout(limits.idle_timeout, sink.close(&ended)).await;
    ended
}

/// Feeds `first` and every message queued behind it, up to
/// [`BURST_BYTES`], then flushes once. Returns whether the queue asked to
/// close the connection after them. A kick ends the burst early: what is
/// fed is flushed, and the writer then stops.
async fn write_burst(
    outbox: &mut Outbox,
    sink: &mut impl MessageSink,
    deadline: &mut Deadline,
    first: Payload,
) -> Result<bool, WriteFailed> {
    let max_frame = outbox.limits.max_frame;
    let mut fed = 0;
    let mut next = Some(first);
    let mut close = false;
    while let Some(payload) = next.take() {
        let written = write(sink, deadline, &payload, max_frame);
        let written = discarding_if_dropped(outbox, written).await;
        outbox.written(&payload);
        written?;
        fed += payload.len();
        if fed >= BURST_BYTES {
            break;
        }
        match outbox.try_next() {
            Some(Outgoing::Message(payload)) => next = Some(payload),
            Some(Outgoing::Close) => close = true,
            Some(Outgoing::Kicked) | None => {}
        }
    }
    discarding_if_dropped(outbox, deadline.bound(sink.flush())).await?;
    Ok(close)
}

/// Runs `write`. If the connection is dropped while it waits (the client
/// reads slowly or not at all), what is queued behind it goes at once,
/// for the server may need its bytes for others; the write itself may
/// still end within the idle timeout, and the reason follow it. A write
/// that completes when first polled (the common case) never looks at the
/// drop signal.
async fn discarding_if_dropped<T>(outbox: &mut Outbox, write: impl Future<Output = T>) -> T {
    let mut write = std::pin::pin!(write);
    tokio::select! {
        biased;
        done = &mut write => done,
        () = outbox.tally.dropped.notified() => {
            outbox.discard();
            write.await
        }
    }
}

/// Writes one message, as fragments if it is larger than a frame, each
/// within the idle timeout (the last may wait in the sink's buffer).
async fn write(
    sink: &mut impl MessageSink,
    deadline: &mut Deadline,
    payload: &Payload,
    max_frame: u32,
) -> Result<(), WriteFailed> {
    for piece in split_message(payload, max_frame) {
        let piece = match piece {
            // The whole message: its shared bytes, not a copy.
            Cow::Borrowed(_) => payload.clone(),
            Cow::Owned(fragment) => Payload::uncounted(fragment),
        };
        deadline.bound(sink.feed(&piece)).await?;
    }
    Ok(())
}

/// The idle timeout of one write at a time: a client that reads nothing
/// that long is taken as gone. A write that completes when first polled
/// (the common case: the socket has room) never touches the timer; one
/// that has to wait arms it. One timer serves every write of the
/// connection, where a timeout made per write would register a timer with
/// the runtime and cancel it again for every message.
struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
    idle_timeout: Duration,
}

impl Deadline {
    fn new(idle_timeout: Duration) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
        }
    }

    /// Runs `write`, failing it if it does not complete within the idle timeout.
    async fn bound(
        &mut self,
        write: impl Future<Output = Result<(), String>>,
    ) -> Result<(), WriteFailed> {
        let mut write = std::pin::pin!(write);
        let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
        if let Poll::Ready(result) = first {
            return result.map_err(WriteFailed::Error);
        }
        let idle_timeout = self.idle_timeout;
        self.sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + idle_timeout);
        tokio::select! {
            biased;
            result = write => result.map_err(WriteFailed::Error),
            () = self.sleep.as_mut() => Err(WriteFailed::TimedOut(format!(
                "the client read nothing for {} s",
                idle_timeout.as_secs_f64()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// What a [`TestSink`] was given.
    #[derive(Default)]
    struct Seen {
        written: Vec<Vec<u8>>,
        closed: Option<Ended>,
    }

    /// A sink that records what it is given; with `stuck`, no write ever
    /// completes (a client that reads nothing).
    struct TestSink {
        seen: Arc<Mutex<Seen>>,
        stuck: bool,
    }

    impl MessageSink for TestSink {
        async fn feed(&mut self, payload: &Payload) -> Result<(), String> {
            if self.stuck {
                std::future::pending::<()>().await;
            }
            self.seen.lock().unwrap().written.push(payload.to_vec());
            Ok(())
        }

        async fn flush(&mut self) -> Result<(), String> {
            Ok(())
        }

        async fn ping(&mut self) -> Result<(), String> {
            Ok(())
        }

        async fn close(self, ended: &Ended) {
            self.seen.lock().unwrap().closed = Some(ended.clone());
        }
    }

    fn limits() -> Limits {
        Limits {
            messages: 16,
            bytes: 1 << 20,
            max_frame: 1 << 20,
            idle_timeout: Duration::from_millis(200),
        }
    }

    async fn pumped(stuck: bool, queue: impl FnOnce(&Outbound)) -> (Ended, Seen) {
        let (outbound, outbox) = channel(limits(), OutgoingBudget::new(1 << 30));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = TestSink {
            seen: Arc::clone(&seen),
            stuck,
        };
        queue(&outbound);
        drop(outbound);
        let ended = pump(outbox, sink).await;
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        (ended, seen)
    }

    #[tokio::test]
    async fn a_closed_queue_ends_after_every_message_is_written() {
        let (ended, seen) = pumped(false, |out| {
            assert!(out.try_send(out.budget().payload(b"one".to_vec())));
            assert!(out.try_send(out.budget().payload(b"two".to_vec())));
        })
        .await;
        assert_eq!(ended, Ended::Closed);
        assert_eq!(seen.written, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(seen.closed, Some(Ended::Closed));
    }

    #[tokio::test]
    async fn a_kicked_connection_is_told_why_before_it_is_closed() {
        let (ended, seen) = pumped(false, |out| out.kick("go away")).await;
        assert_eq!(ended, Ended::Kicked("go away".into()));
        let error = worldline_transport::decode_message::<ServerMessage>(&seen.written[0]);
        assert!(
            matches!(error, Ok(ServerMessage::Error { message, fatal: true }) if message == "go away")
        );
        assert_eq!(seen.closed, Some(ended));
    }

    #[tokio::test]
    async fn a_queue_full_in_messages_or_bytes_drops_the_connection_and_says_why() {
        // 16 messages fit; the 17th finds the queue full.
        let (ended, seen) = pumped(false, |out| {
            for _ in 0..16 {
                assert!(out.try_send(out.budget().payload(b"update".to_vec())));
            }
            assert!(!out.try_send(out.budget().payload(b"one too many".to_vec())));
            // Only the first reason is told.
            out.kick("a later reason");
        })
        .await;
        let reason =
            "the connection fell too far behind: 16 messages wait unread, the most it may have";
        assert_eq!(ended, Ended::Kicked(reason.into()));
        // Nothing queued is written once the connection is dropped, only why.
        assert_eq!(seen.written.len(), 1, "{:?}", seen.written);
        let error = worldline_transport::decode_message::<ServerMessage>(&seen.written[0]);
        assert!(
            matches!(error, Ok(ServerMessage::Error { message, fatal: true }) if message == reason)
        );

        // A message that would take the queue over its bytes.
        let (ended, _) = pumped(false, |out| {
            assert!(out.try_send(out.budget().payload(vec![0u8; 600 << 10])));
            assert!(!out.try_send(out.budget().payload(vec![0u8; 600 << 10])));
        })
        .await;
        let reason = "the connection fell too far behind: 614400 bytes of messages wait unread \
                      and the next one, of 614400 bytes, would pass the limit of 1048576 bytes";
        assert_eq!(ended, Ended::Kicked(reason.into()));
    }

    #[tokio::test]
    async fn a_message_and_close_end_the_connection_after_the_message() {
        let (ended, seen) = pumped(false, |out| {
            assert!(out.try_send(out.budget().payload(b"first".to_vec())));
            out.close_with(&ServerMessage::Error {
                message: "bye".into(),
                fatal: true,
            });
            // Queued after the close: never written.
            let _ = out.try_send(out.budget().payload(b"after".to_vec()));
        })
        .await;
        assert_eq!(ended, Ended::Closed);
        assert_eq!(seen.written.len(), 2, "{:?}", seen.written);
        assert_eq!(seen.written[0], b"first");
    }

    #[tokio::test]
    async fn a_client_that_reads_nothing_stalls_the_writer_and_the_sink_knows() {
        let (ended, seen) = pumped(true, |out| {
            assert!(out.try_send(out.budget().payload(b"unread".to_vec())));
        })
        .await;
        assert!(
            matches!(&ended, Ended::Stalled(reason) if reason.contains("read nothing")),
            "{ended:?}"
        );
        assert_eq!(seen.closed, Some(ended));

        // Kicked while stalled: the `Error` cannot be written either.
        let (ended, seen) = pumped(true, |out| out.kick("too slow")).await;
        assert_eq!(ended, Ended::Stalled("too slow".into()));
        assert_eq!(seen.closed, Some(ended));
    }

    #[tokio::test]
    async fn a_client_dropped_while_its_write_stalls_is_closed_with_why_it_was_dropped() {
        let (outbound, outbox) = channel(limits(), OutgoingBudget::new(1 << 30));
        let sink = TestSink {
            seen: Arc::default(),
            stuck: true,
        };
        assert!(outbound.try_send(outbound.budget().payload(b"unread".to_vec())));
        let writer = tokio::spawn(pump(outbox, sink));
        tokio::time::sleep(Duration::from_millis(10)).await;
        outbound.kick("fell behind");
        let ended = writer.await.expect("the writer");
        assert_eq!(ended, Ended::Stalled("fell behind".into()));
    }

    /// A connection on `budget` whose writer runs on `sink`, and what it saw.
    fn connection(
        budget: &Arc<OutgoingBudget>,
        stuck: bool,
    ) -> (Outbound, tokio::task::JoinHandle<Ended>, Arc<Mutex<Seen>>) {
        // Writes stall for longer than a connection that keeps up goes
        // without catching up.
        let limits = Limits {
            idle_timeout: KEEPING_UP + Duration::from_millis(500),
            ..limits()
        };
        let (outbound, outbox) = channel(limits, Arc::clone(budget));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = TestSink {
            seen: Arc::clone(&seen),
            stuck,
        };
        (outbound, tokio::spawn(pump(outbox, sink)), seen)
    }

    #[tokio::test]
    async fn a_shared_message_counts_once_until_its_last_copy_is_written_or_dropped() {
        let budget = OutgoingBudget::new(1 << 30);
        let (fast, fast_writer, fast_seen) = connection(&budget, false);
        let (slow, slow_writer, _) = connection(&budget, true);
        let update = budget.payload(vec![7; 1000]);
        // Queued for two connections and still held here: 1,000 bytes, not 3,000.
        assert!(fast.try_send(update.clone()));
        assert!(slow.try_send(update.clone()));
        assert_eq!(budget.waiting(), 1000);
        drop(update);
        assert!(slow.try_send(budget.payload(vec![8; 500])));
        assert_eq!(budget.waiting(), 1500);
        // The fast connection writes its copy and closes.
        drop(fast);
        assert_eq!(fast_writer.await.unwrap(), Ended::Closed);
        assert_eq!(fast_seen.lock().unwrap().written.len(), 1);
        assert_eq!(
            budget.waiting(),
            1500,
            "the slow connection still holds both"
        );
        // Dropping the slow connection lets go of what it had queued at
        // once, though its writer still waits on the client.
        slow.kick("too slow");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            budget.waiting(),
            1000,
            "only the message being written is held"
        );
        assert!(
            !slow.try_send(budget.payload(vec![9; 10])),
            "it takes nothing more"
        );
        drop(slow);
        let ended = slow_writer.await.unwrap();
        assert!(matches!(ended, Ended::Stalled(_)), "{ended:?}");
        assert_eq!(budget.waiting(), 0);
    }

    #[tokio::test]
    async fn past_the_budget_a_connection_behind_is_dropped_and_one_keeping_up_is_served() {
        let budget = OutgoingBudget::new(450_000);
        let (behind, behind_writer, behind_seen) = connection(&budget, true);
        let (keeping_up, _, _) = connection(&budget, false);
        let (answering, _, _) = connection(&budget, false);
        assert!(behind.try_send(budget.payload(vec![1; 300_000])));
        // Its writer takes the message and waits on the client, longer than
        // a connection that keeps up goes without catching up.
        tokio::time::sleep(KEEPING_UP + Duration::from_millis(100)).await;
        // A few answers wait for a client with calls in flight, whose
        // writer has not even woken for them yet.
        assert!(answering.try_send(budget.payload(vec![3; 6])));
        // 600,006 bytes wait now, over the 450,000 allowed.
        let update = budget.payload(vec![2; 300_000]);
        assert!(keeping_up.try_send(update.clone()));
        assert!(answering.try_send(update.clone()));
        assert!(!behind.try_send(update));
        let reason = "the server is short of memory for outgoing messages: 600006 bytes wait for \
                      all clients (the limit is 450000 bytes); this connection had 300000 bytes \
                      waiting";
        let told = behind.tally.reason.lock().unwrap().clone();
        assert_eq!(told.as_deref(), Some(reason));
        // An answer made for one client is refused while it would not fit.
        let shortage = budget.room_for(60_000).unwrap_err().to_string();
        assert_eq!(
            shortage,
            "the server is short of memory for outgoing messages: 600006 bytes wait for all \
             clients and this answer would add 60000 (the limit is 450000 bytes); retry later"
        );
        drop(behind);
        // Its writer, stuck on a client that reads nothing, could not tell it.
        let ended = behind_writer.await.unwrap();
        assert!(matches!(ended, Ended::Stalled(_)), "{ended:?}");
        assert_eq!(behind_seen.lock().unwrap().closed, Some(ended));
        // What it had queued is gone, and the others wrote their copies.
        assert_eq!(budget.waiting(), 0);
        assert!(budget.room_for(450_000).is_ok());
    }
}
