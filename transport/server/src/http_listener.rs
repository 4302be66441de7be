//! The HTTP port's listener. An HTTP connection that sends nothing, or half
//! a request, is held open by the HTTP layer, and each holds one of the
//! server's file descriptors; so one address may hold at most
//! [`connections_per_address`] TCP connections to the port at once, the
//! server at most its [`ServerSlots`] from all addresses (QUIC connections
//! included), and the next one is answered `503` and closed.
//!
//! When the server shuts down, a connection still open [`Cut::GRACE`] after
//! the HTTP layer was told to stop (a client that stalled halfway through
//! a request, or does not read its answer) is cut: its reads and writes
//! fail, so it no longer holds the shutdown up.
//!
//! A refused connection is closed gracefully: the answer is written, the
//! write side shut, and what the client already sent is read and dropped
//! before the socket closes (closing with unread input would make the kernel
//! reset the connection, and the client could lose the answer). At most
//! [`MAX_LINGERING`] refused connections linger so, each for at most
//! [`LINGER`]; past that a refusal is written as far as the socket takes it
//! at once and the socket is closed.
//!
//! An accepted connection is closed the same way when the server is done
//! with it: a fatal WebSocket `Error` for a message over the frame limit,
//! or a `413` for a request body over its limit, is written while the
//! client may still be sending the rest of what was refused, and reading
//! that rest (up to [`CLOSE_DRAIN_BYTES`], for at most [`LINGER`]) is what
//! lets the client read the answer instead of a reset. These share the
//! [`MAX_LINGERING`] permits; without one the socket is closed at once.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::incoming::{IncomingBudget, PartialRoom};
use crate::send_queue::SendQueue;
use crate::session::{AddressSlot, AddressSlots};
use crate::shared::ServerSlots;

/// How many TCP connections to the HTTP port one address may hold: twice
/// the WebSocket sessions it may hold (each rides on one), so that it can
/// still make HTTP requests with all of them open.
pub(crate) fn connections_per_address(max_sessions: usize) -> usize {
    max_sessions.saturating_mul(2).max(1)
}

/// A TCP listener that counts the connections of each address.
pub(crate) struct CappedListener {
    inner: TcpListener,
    /// The port's own count (apart from the protocol sessions' count).
    open: Arc<AddressSlots>,
    max: usize,
    /// The server's count of its connections from all addresses.
    server: ServerSlots,
    /// Permits for refused connections closing gracefully.
    lingering: Arc<Semaphore>,
    /// Cuts every accepted connection at once.
    cut: Arc<Cut>,
    /// The server's budget for messages partly received (see
    /// [`crate::incoming`]), for the WebSocket sessions on its connections.
    incoming: IncomingBudget,
    /// The most a WebSocket message may take in bytes received (see
    /// [`MessageMeter`]).
    largest_message: usize,
    /// How long a write may find the socket full (the client reads
    /// nothing) before it fails and the connection closes: an answer a
    /// client never reads (up to 64 MiB of SQL rows) is not held for it
    /// forever. The server's idle timeout.
    write_stall: Duration,
}

/// Cuts the connections of a [`CappedListener`]: from then on, every read
/// and write on them fails.
#[derive(Default)]
pub(crate) struct Cut {
    done: AtomicBool,
    notify: Arc<Notify>,
}

impl Cut {
    /// How long a shutting-down server waits for its HTTP connections to
    /// finish before it cuts them.
    pub(crate) const GRACE: Duration = Duration::from_secs(5);

    /// Makes every read and write of the listener's connections fail,
    /// waking those that wait.
    pub(crate) fn cut(&self) {
        self.done.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_cut(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

/// How many refused connections may be closing gracefully at once.
const MAX_LINGERING: usize = 64;

/// How long a refused connection may take to be closed gracefully.
const LINGER: Duration = Duration::from_secs(2);

/// How much a refused connection's client may send that is read and
/// dropped before the socket is closed anyway.
const LINGER_BYTES: usize = 64 * 1024;

/// How much the client of an accepted connection may still send, once the
/// server is done with the connection, that is read and dropped before the
/// socket is closed anyway: the rest of a WebSocket message over the frame
/// limit (4 MiB by default) or of a request body over its limit, with room
/// to spare.
const CLOSE_DRAIN_BYTES: usize = 64 << 20;

impl CappedListener {
    /// Accepts on `inner`, at most `max` connections per address at once
    /// and what `server` has room for; the WebSocket sessions on them take
    /// room for the messages they are receiving (of at most `max_message`
    /// bytes) from `incoming`; a write that finds no room for `write_stall`
    /// fails.
    pub(crate) fn new(
        inner: TcpListener,
        max: usize,
        server: ServerSlots,
        incoming: IncomingBudget,
        max_message: usize,
        write_stall: Duration,
    ) -> Self {
        Self {
            inner,
            open: Arc::default(),
            max,
            server,
            lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
            cut: Arc::default(),
            incoming,
            largest_message: largest_message(max_message),
            write_stall,
        }
    }

    /// What cuts this listener's connections (see [`Cut`]).
    pub(crate) fn cut(&self) -> Arc<Cut> {
        Arc::clone(&self.cut)
    }
}

impl Listener for CappedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = Listener::accept(&mut self.inner).await;
            let Some(server_slot) = self.server.take() else {
                tracing::debug!(
                    "refusing an HTTP connection from {}: the server is full",
                    peer.ip()
                );
                refuse(stream, &self.server.refusal(), &self.lingering);
                continue;
            };
            let Some(slot) = self.open.take(peer.ip(), self.max) else {
                tracing::debug!(
                    "refusing an HTTP connection from {}: it already holds {}",
                    peer.ip(),
                    self.max
                );
                let why = format!(
                    "too many connections from {}: at most {} at once per address to this port; \
                     close one and retry",
                    peer.ip(),
                    self.max
                );
                refuse(stream, &why, &self.lingering);
                continue;
            };
            let cut_wait = Box::pin(Arc::clone(&self.cut.notify).notified_owned());
            let send_queue = SendQueue::of(&stream, self.write_stall);
            return (
                CountedStream {
                    stream: Some(stream),
                    send_queue,
                    _slot: slot,
                    _server_slot: server_slot,
                    cut: Arc::clone(&self.cut),
                    cut_wait,
                    write_stall: self.write_stall,
                    stalled_since: None,
                    lingering: Arc::clone(&self.lingering),
                    meter: MessageMeter::new(self.incoming.room(peer.ip()), self.largest_message),
                },
                peer,
            );
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Answers a connection over a limit with a `503` whose error is `why`
/// (no character JSON escapes) and closes it: gracefully (see the module's
/// documentation) while a lingering permit is free, otherwise with as much
/// of the answer as the socket takes at once.
fn refuse(stream: TcpStream, why: &str, lingering: &Arc<Semaphore>) {
    let body = format!("{{\"error\":\"{why}\"}}");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let Ok(permit) = Arc::clone(lingering).try_acquire_owned() else {
        let _ = stream.try_write(response.as_bytes());
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(LINGER, close_gracefully(stream, response)).await;
    });
}

/// Writes `response`, shuts the write side, then reads and drops what the
/// client sends until it closes its side (or [`LINGER_BYTES`] have come).
async fn close_gracefully(mut stream: TcpStream, response: String) -> io::Result<()> {
    stream.write_all(response.as_bytes()).await?;
    drain(stream, LINGER_BYTES).await
}

/// Shuts the write side of `stream` (what was written still goes out),
/// then reads and drops what the client sends until it closes its side or
/// `limit` bytes have come.
async fn drain(mut stream: TcpStream, limit: usize) -> io::Result<()> {
    stream.shutdown().await?;
    let mut drained = 0;
    let mut scratch = [0u8; 16 * 1024];
    while drained < limit {
        match stream.read(&mut scratch).await? {
            0 => break,
            read => drained += read,
        }
    }
    Ok(())
}

/// An accepted connection, counted against its address until dropped,
/// whose reads and writes fail once its listener's [`Cut`] is made. When
/// dropped, it is closed gracefully (see the module's documentation)
/// unless the cut was made.
pub(crate) struct CountedStream {
    /// The socket; taken only when the connection is dropped.
    stream: Option<TcpStream>,
    /// What the socket holds that its peer has not acknowledged.
    send_queue: SendQueue,
    _slot: AddressSlot,
    /// Its place in the server's count of connections.
    _server_slot: OwnedSemaphorePermit,
    cut: Arc<Cut>,
    /// Wakes a read or write waiting on the socket when the cut is made.
    cut_wait: Pin<Box<OwnedNotified>>,
    /// How long writes may find the socket full before they fail.
    write_stall: Duration,
    /// Since a write found the socket full: past `write_stall` without
    /// room, the write fails.
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Permits for connections closing gracefully.
    lingering: Arc<Semaphore>,
    /// What a WebSocket session on the connection has read of the message
    /// it is receiving.
    meter: MessageMeter,
}

/// A client's address and its connection's [`MessageMeter`]: what each
/// request gets as its `ConnectInfo`.
#[derive(Clone)]
pub(crate) struct Peer {
    /// The client's address.
    pub(crate) addr: SocketAddr,
    /// For a WebSocket session on the connection.
    pub(crate) meter: MessageMeter,
    /// The connection's send queue, for a WebSocket session on it.
    pub(crate) send_queue: SendQueue,
}

/// Counts what a connection reads while a WebSocket session runs on it,
/// from the end of the last message it received: past the free bytes of
/// [`crate::incoming`], each read first takes room for what it may bring
/// from the server's budget, and waits while there is none. Inactive (the
/// HTTP layer reading requests) until [`start`](Self::start).
#[derive(Clone)]
pub(crate) struct MessageMeter(Arc<Mutex<Metered>>);

struct Metered {
    active: bool,
    /// Bytes read since the last whole data message, control frames
    /// received since then not counted.
    since_message: usize,
    /// When the first of those bytes was read: a message was begun then
    /// (however it is split into frames, with pings in between).
    partial_since: Option<Instant>,
    room: PartialRoom,
    /// The most bytes one message may take as received (see
    /// [`largest_message`]): the room taken for a large one.
    largest: usize,
}

/// The most bytes received for one WebSocket message of up to
/// `max_message` bytes, sent as one frame: its payload, the longest frame
/// header (14 bytes) and one read's worth of what follows it. A message
/// split into many frames takes more, each header counting; room for the
/// excess is taken as it arrives.
pub(crate) fn largest_message(max_message: usize) -> usize {
    max_message + 14 + crate::websocket::READ_BUFFER_BYTES
}

impl MessageMeter {
    fn new(room: PartialRoom, largest: usize) -> Self {
        Self(Arc::new(Mutex::new(Metered {
            active: false,
            since_message: 0,
            partial_since: None,
            room,
            largest,
        })))
    }

    /// Whether a WebSocket session runs on the connection.
    fn is_active(&self) -> bool {
        self.lock().active
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Metered> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts counting: the connection now carries a WebSocket session.
    pub(crate) fn start(&self) {
        let mut metered = self.lock();
        metered.active = true;
        metered.since_message = 0;
    }

    /// A whole data message (or Close) was received and handed on: what
    /// follows starts a new one, and the room held is given back. (Bytes
    /// of the next messages already read ahead, at most one read's worth,
    /// are not counted.)
    pub(crate) fn message_received(&self) {
        let mut metered = self.lock();
        metered.since_message = 0;
        metered.partial_since = None;
        metered.room.release();
    }

    /// A control frame (ping or pong) of `frame_bytes` bytes, header
    /// included, was received: it no longer counts, but a message begun
    /// before it (split into frames around it) still does, and is still as
    /// old.
    pub(crate) fn control_received(&self, frame_bytes: usize) {
        let mut metered = self.lock();
        metered.since_message = metered.since_message.saturating_sub(frame_bytes);
        if metered.since_message == 0 {
            metered.partial_since = None;
            metered.room.release();
        }
    }

    /// When the message being received was begun, if one is.
    pub(crate) fn partial_since(&self) -> Option<Instant> {
        self.lock().partial_since
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if self.cut.is_cut() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(permit) = Arc::clone(&self.lingering).try_acquire_owned() else {
            return;
        };
        runtime.spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(LINGER, drain(stream, CLOSE_DRAIN_BYTES)).await;
        });
    }
}

impl CountedStream {
    /// The connection's meter, for a WebSocket session on it.
    pub(crate) fn meter(&self) -> MessageMeter {
        self.meter.clone()
    }

    /// The connection's send queue, for a WebSocket session on it.
    pub(crate) fn send_queue(&self) -> SendQueue {
        self.send_queue
    }

    /// The socket (present until the connection is dropped).
    fn socket(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.stream
                .as_mut()
                .expect("the socket is taken only when the connection is dropped"),
        )
    }

    /// `written` (a write's outcome), or, outside a WebSocket session, an
    /// error once writes have found the socket full for `write_stall` (the
    /// task is woken then).
    fn within_stall(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if written.is_ready() {
            self.stalled_since = None;
            return written;
        }
        if self.meter.is_active() {
            // A WebSocket session bounds its writes itself (a frame within
            // the idle timeout, then its fatal `Error` and close).
            return Poll::Pending;
        }
        let limit = self.write_stall;
        let stall = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stall.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing of what it was sent for {} s",
                    limit.as_secs_f64()
                ),
            )));
        }
        Poll::Pending
    }

    /// An error once the connection is cut; otherwise registers the task
    /// to be woken when it is.
    fn check_cut(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.cut.is_cut() || self.cut_wait.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_cut(cx)?;
        let meter = self.meter.clone();
        let mut metered = meter.lock();
        if metered.active {
            let partial = metered.since_message + buf.remaining();
            let largest = metered.largest;
            ready!(metered.room.poll_cover(cx, partial, largest));
        }
        let before = buf.filled().len();
        let read = self.socket().poll_read(cx, buf);
        if metered.active {
            metered.since_message += buf.filled().len() - before;
            if metered.since_message > 0 && metered.partial_since.is_none() {
                metered.partial_since = Some(Instant::now());
            }
        }
        read
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_cut(cx)?;
        let written = self.socket().poll_write(cx, buf);
        self.within_stall(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check_cut(cx)?;
        let written = self.socket().poll_write_vectored(cx, bufs);
        self.within_stall(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket().poll_shutdown(cx)
    }
}
