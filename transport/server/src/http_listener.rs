//! The HTTP port's listener. An HTTP connection that sends nothing, or half
//! a request, is held open by the HTTP layer, and each holds one of the
//! server's file descriptors; so one address may hold at most
//! [`connections_per_address`] TCP connections to the port at once, and
//! the next one is answered `503` and closed.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::session::{AddressSlot, AddressSlots};

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
}

impl CappedListener {
    /// Accepts on `inner`, at most `max` connections per address at once.
    pub(crate) fn new(inner: TcpListener, max: usize) -> Self {
        Self {
            inner,
            open: Arc::default(),
            max,
        }
    }
}

impl Listener for CappedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = Listener::accept(&mut self.inner).await;
            let Some(slot) = self.open.take(peer.ip(), self.max) else {
                refuse(&stream, peer.ip(), self.max);
                continue;
            };
            return (
                CountedStream {
                    stream,
                    _slot: slot,
                },
                peer,
            );
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Answers a connection over the limit with a `503` (as much of it as the
/// socket takes without waiting) and closes it.
fn refuse(stream: &TcpStream, ip: IpAddr, max: usize) {
    tracing::debug!("refusing an HTTP connection from {ip}: it already holds {max}");
    let body = format!(
        "{{\"error\":\"too many connections from {ip}: at most {max} at once per address to \
         this port; close one and retry\"}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// An accepted connection, counted against its address until dropped.
pub(crate) struct CountedStream {
    stream: TcpStream,
    _slot: AddressSlot,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
