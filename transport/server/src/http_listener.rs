//! The HTTP port's listener. An HTTP connection that sends nothing, or half
//! a request, is held open by the HTTP layer, and each holds one of the
//! server's file descriptors; so one address may hold at most
//! [`connections_per_address`] TCP connections to the port at once, and
//! the next one is answered `503` and closed.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How many TCP connections to the HTTP port one address may hold: twice
/// the WebSocket sessions it may hold (each rides on one), so that it can
/// still make HTTP requests with all of them open.
pub(crate) fn connections_per_address(max_sessions: usize) -> usize {
    max_sessions.saturating_mul(2).max(1)
}

/// Open connections per address, shared by the listener and its connections.
type OpenCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// A TCP listener that counts the connections of each address.
pub(crate) struct CappedListener {
    inner: TcpListener,
    open: OpenCounts,
    max: usize,
}

impl CappedListener {
    /// Accepts on `inner`, at most `max` connections per address at once.
    pub(crate) fn new(inner: TcpListener, max: usize) -> Self {
        Self {
            inner,
            open: OpenCounts::default(),
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
            let ip = peer.ip();
            let admitted = {
                let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
                let count = open.entry(ip).or_insert(0);
                let admitted = *count < self.max;
                if admitted {
                    *count += 1;
                }
                admitted
            };
            if admitted {
                let stream = CountedStream {
                    stream,
                    ip,
                    open: Arc::clone(&self.open),
                };
                return (stream, peer);
            }
            refuse(&stream, ip, self.max);
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
    ip: IpAddr,
    open: OpenCounts,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
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
