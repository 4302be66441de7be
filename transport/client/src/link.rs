//! The byte-level connection under a client: a QUIC stream (plus
//! datagrams) or a WebSocket, each split into a writing and a reading half.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use worldline_transport::{
    ClientMessage, DEFAULT_MAX_MESSAGE, FrameDecoder, MAX_DATAGRAM_MESSAGE, Reassembler,
    ServerMessage, decode_message, encode_frame, encode_message,
};

use crate::error::ClientError;
use crate::tls::{Trust, quic_client_config};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The writing half.
pub(crate) enum LinkWriter {
    Quic {
        send: quinn::SendStream,
        connection: quinn::Connection,
        /// Frames fed and not yet written to the stream.
        buffer: Vec<u8>,
        /// Kept so the endpoint's socket lives as long as the connection.
        _endpoint: quinn::Endpoint,
    },
    WebSocket(SplitSink<Socket, Message>),
}

/// The reading half: frames from the transport, with server messages
/// split into fragments put back together.
pub(crate) struct LinkReader {
    source: LinkSource,
    reassembler: Reassembler,
}

/// Where the reading half's frames come from.
enum LinkSource {
    Quic {
        recv: quinn::RecvStream,
        decoder: FrameDecoder,
        buffer: Vec<u8>,
    },
    WebSocket {
        stream: SplitStream<Socket>,
        /// How long the server may send nothing, not even a ping or a pong.
        idle_timeout: Duration,
        /// When the last message arrived.
        heard: Instant,
        /// Fires an idle timeout after `heard` or earlier (it is moved only
        /// when it fires: one timer for the connection, where a timeout per
        /// message would register a timer and cancel it again each time).
        silence: Pin<Box<Sleep>>,
    },
}

/// How often a client with `idle_timeout` shows the server it is alive: a
/// third of it, at most every 5 s.
pub(crate) fn keep_alive_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 3).clamp(Duration::from_millis(1), Duration::from_secs(5))
}

/// A UDP socket that many QUIC connections of one process can share. A
/// process that holds many connections (a load generator, a bot host, a
/// bridge) spends far fewer system calls and wake-ups per message on one
/// shared socket than on a socket per connection: one task reads every
/// connection's datagrams, in batches.
///
/// Cloning gives another handle to the same socket, which stays open as
/// long as a handle or a connection over it exists. It must be bound
/// inside a tokio runtime, and its connections run on that runtime.
#[derive(Debug, Clone)]
pub struct QuicSocket {
    endpoint: quinn::Endpoint,
}

impl QuicSocket {
    /// Binds a socket on an ephemeral port of the unspecified address of
    /// `family`'s kind: IPv4, or IPv6 that also reaches IPv4 servers where
    /// the system allows it. Its receive buffer is raised (as far as the
    /// system allows) so that a burst of datagrams for many connections at
    /// once is not dropped.
    pub fn bind(family: SocketAddr) -> Result<Self, ClientError> {
        let error = |e: std::io::Error| ClientError::Connect(format!("binding a QUIC socket: {e}"));
        let addr = unspecified(family);
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(error)?;
        if addr.is_ipv6() {
            // Best effort: where the system refuses, IPv6 servers only.
            let _ = socket.set_only_v6(false);
        }
        // Best effort: the system caps it (net.core.rmem_max on Linux).
        let _ = socket.set_recv_buffer_size(SHARED_RECEIVE_BUFFER);
        socket.bind(&addr.into()).map_err(error)?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| error(std::io::Error::other("not inside a tokio runtime")))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket.into(),
            runtime,
        )
        .map_err(error)?;
        Ok(Self { endpoint })
    }

    /// Whether connections over this socket can reach `addr`.
    fn reaches(&self, addr: SocketAddr) -> bool {
        self.endpoint
            .local_addr()
            .is_ok_and(|local| local.is_ipv6() || addr.is_ipv4())
    }
}

/// The receive buffer a shared QUIC socket asks for: room for a burst of
/// small datagrams to every connection over it.
const SHARED_RECEIVE_BUFFER: usize = 4 << 20;

/// The unspecified address, port 0, of `addr`'s family.
fn unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    }
}

/// Opens a QUIC connection and its protocol stream, over `shared` or a
/// socket of its own.
pub(crate) async fn quic(
    addr: SocketAddr,
    server_name: &str,
    trust: &Trust,
    shared: Option<&QuicSocket>,
    max_frame: u32,
    idle_timeout: Duration,
) -> Result<(LinkWriter, LinkReader), ClientError> {
    let config = quic_client_config(trust, idle_timeout)?;
    let endpoint = match shared {
        Some(socket) if !socket.reaches(addr) => {
            return Err(ClientError::Connect(format!(
                "the shared QUIC socket cannot reach {addr}: it was bound for IPv4"
            )));
        }
        Some(socket) => socket.endpoint.clone(),
        None => quinn::Endpoint::client(unspecified(addr))
            .map_err(|e| ClientError::Connect(e.to_string()))?,
    };
    let connecting = endpoint
        .connect_with(config, addr, server_name)
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    // A transport error during the handshake is the TLS layer refusing.
    let connection = connecting.await.map_err(|e| match e {
        quinn::ConnectionError::TransportError(e) => ClientError::Tls(e.to_string()),
        other => ClientError::Connect(format!("{other} (is the server running on {addr}?)")),
    })?;
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    Ok((
        LinkWriter::Quic {
            send,
            connection,
            buffer: Vec::new(),
            _endpoint: endpoint,
        },
        LinkReader::new(LinkSource::Quic {
            recv,
            decoder: FrameDecoder::new(max_frame),
            buffer: vec![0; 64 * 1024],
        }),
    ))
}

/// How much one read from a WebSocket takes at most. The WebSocket library
/// zeroes this much before every read, so its default (128 KiB) cost more
/// than the rest of receiving a small message; larger messages take
/// several reads.
const READ_BUFFER_BYTES: usize = 16 << 10;

/// Opens a WebSocket connection.
pub(crate) async fn websocket(
    url: &str,
    max_frame: u32,
    idle_timeout: Duration,
) -> Result<(LinkWriter, LinkReader), ClientError> {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(max_frame as usize))
        .max_frame_size(Some(max_frame as usize));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                upgrade_refused(url, &response)
            }
            e => ClientError::Connect(format!("{url}: {e}")),
        })?;
    let (sink, stream) = socket.split();
    Ok((
        LinkWriter::WebSocket(sink),
        LinkReader::new(LinkSource::WebSocket {
            stream,
            idle_timeout,
            heard: Instant::now(),
            silence: Box::pin(tokio::time::sleep(idle_timeout)),
        }),
    ))
}

/// The error for an answer to the WebSocket upgrade other than `101`: the
/// server's own message when its body is an HTTP API error (`{"error": ...}`,
/// such as the refusal of a connection over the per-address limit), else
/// the status and the start of the body.
fn upgrade_refused(
    url: &str,
    response: &tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>,
) -> ClientError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let body = response.body().as_deref().unwrap_or_default();
    if let Ok(ErrorBody { error }) = serde_json::from_slice(body) {
        return ClientError::Rejected(error);
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(100)
        .collect();
    let status = response.status();
    if text.is_empty() {
        ClientError::Connect(format!("{url}: the server answered {status}"))
    } else {
        ClientError::Connect(format!("{url}: the server answered {status}: {text}"))
    }
}

impl LinkWriter {
    /// Sends a message reliably, in order.
    pub(crate) async fn send(&mut self, message: &ClientMessage) -> Result<(), String> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a message to be sent reliably, in order; it may wait in a
    /// buffer until [`flush`](Self::flush).
    pub(crate) async fn feed(&mut self, message: &ClientMessage) -> Result<(), String> {
        match self {
            LinkWriter::Quic { buffer, .. } => {
                buffer.extend_from_slice(&encode_frame(message));
                Ok(())
            }
            LinkWriter::WebSocket(sink) => sink
                .feed(Message::Binary(encode_message(message).into()))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Sends every message fed so far.
    pub(crate) async fn flush(&mut self) -> Result<(), String> {
        match self {
            LinkWriter::Quic { send, buffer, .. } => {
                if buffer.is_empty() {
                    return Ok(());
                }
                let written = send.write_all(buffer).await;
                buffer.clear();
                written.map_err(|e| match e {
                    quinn::WriteError::ConnectionLost(lost) => quic_connection_lost(&lost),
                    e => e.to_string(),
                })
            }
            LinkWriter::WebSocket(sink) => sink.flush().await.map_err(|e| e.to_string()),
        }
    }

    /// Shows the server this client is alive and asks it to show the same:
    /// a WebSocket ping (the server's pong resets the reader's idle
    /// timeout). QUIC sends its own keep-alives.
    pub(crate) async fn keep_alive(&mut self) -> Result<(), String> {
        match self {
            LinkWriter::Quic { .. } => Ok(()),
            LinkWriter::WebSocket(sink) => sink
                .send(Message::Ping(Vec::new().into()))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Sends a message that may be lost: a QUIC datagram when it fits,
    /// otherwise like [`send`](Self::send).
    pub(crate) async fn send_unreliable(&mut self, message: &ClientMessage) -> Result<(), String> {
        if let LinkWriter::Quic { connection, .. } = self {
            let bytes = encode_message(message);
            let fits = connection
                .max_datagram_size()
                .is_some_and(|max| bytes.len() <= max.min(MAX_DATAGRAM_MESSAGE));
            if fits {
                return connection
                    .send_datagram(bytes.into())
                    .map_err(|e| e.to_string());
            }
        }
        self.send(message).await
    }

    /// Sends what was fed, then closes the connection.
    pub(crate) async fn close(mut self) {
        let _ = self.flush().await;
        match self {
            LinkWriter::Quic {
                mut send,
                connection,
                ..
            } => {
                let _ = send.finish();
                connection.close(0u32.into(), b"client closed");
            }
            LinkWriter::WebSocket(mut sink) => {
                let _ = sink.send(Message::Close(None)).await;
                let _ = sink.close().await;
            }
        }
    }
}

impl LinkReader {
    /// Reads from `source`, reassembling messages of up to the server's
    /// default `max_message_bytes`.
    fn new(source: LinkSource) -> Self {
        Self {
            source,
            reassembler: Reassembler::new(DEFAULT_MAX_MESSAGE),
        }
    }

    /// Refuses whole messages larger than `max_message` bytes from now on
    /// (the default is the server's default limit).
    pub(crate) fn limit_messages(&mut self, max_message: u32) {
        self.reassembler = Reassembler::new(max_message);
    }

    /// The next whole message (fragments put back together); an error
    /// when the connection ended, with why.
    pub(crate) async fn next(&mut self) -> Result<ServerMessage, String> {
        loop {
            let message = self.source.next().await?;
            if let Some(whole) = self
                .reassembler
                .accept(message)
                .map_err(|e| e.to_string())?
            {
                return Ok(whole);
            }
        }
    }
}

impl LinkSource {
    /// The next message or fragment; an error when the connection ended, with why.
    async fn next(&mut self) -> Result<ServerMessage, String> {
        match self {
            LinkSource::Quic {
                recv,
                decoder,
                buffer,
            } => loop {
                if let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
                    return decode_message(&frame).map_err(|e| e.to_string());
                }
                match recv.read(buffer).await {
                    Ok(Some(n)) => decoder.push(&buffer[..n]),
                    Ok(None) => return Err("the server closed the connection".into()),
                    Err(quinn::ReadError::ConnectionLost(lost)) => {
                        return Err(quic_connection_lost(&lost));
                    }
                    Err(e) => return Err(e.to_string()),
                }
            },
            LinkSource::WebSocket {
                stream,
                idle_timeout,
                heard,
                silence,
            } => loop {
                let next = tokio::select! {
                    biased;
                    next = stream.next() => next,
                    () = silence.as_mut() => {
                        let silent_until = *heard + *idle_timeout;
                        if Instant::now() < silent_until {
                            silence.as_mut().reset(silent_until);
                            continue;
                        }
                        return Err(format!(
                            "the server sent nothing, not even a pong, for {idle_timeout:?}"
                        ));
                    }
                };
                *heard = Instant::now();
                match next {
                    Some(Ok(Message::Binary(bytes))) => {
                        return decode_message(&bytes).map_err(|e| e.to_string());
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let reason = frame
                            .map(|f| f.reason.to_string())
                            .filter(|r| !r.is_empty())
                            .unwrap_or_else(|| "the server closed the connection".into());
                        return Err(reason);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the server closed the connection".into()),
                }
            },
        }
    }
}

/// Why a QUIC connection ended, as the client reports it: the reason the
/// server closed it with (such as `the server is shutting down`), or that
/// the client closed it, instead of quinn's bare `connection lost`.
fn quic_connection_lost(error: &quinn::ConnectionError) -> String {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let reason: String = String::from_utf8_lossy(&close.reason)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            if reason.is_empty() {
                "the server closed the connection".into()
            } else {
                reason
            }
        }
        quinn::ConnectionError::TimedOut => {
            "the connection timed out: the server stopped answering".into()
        }
        // `Client::close` closed it (the reader may see it first).
        quinn::ConnectionError::LocallyClosed => "the client closed the connection".into(),
        other => format!("connection lost: {other}"),
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;
    use tokio_tungstenite::tungstenite::http::Response;

    #[test]
    fn a_refused_upgrade_reports_the_servers_message() {
        let refusal = br#"{"error":"too many connections from 127.0.0.1: at most 2 at once per address to this port; close one and retry"}"#;
        let response = Response::builder()
            .status(503)
            .body(Some(refusal.to_vec()))
            .unwrap();
        assert_eq!(
            upgrade_refused("ws://x/v1/ws", &response),
            ClientError::Rejected(
                "too many connections from 127.0.0.1: at most 2 at once per address to this \
                 port; close one and retry"
                    .into()
            )
        );
        let response = Response::builder()
            .status(404)
            .body(Some(b"<html>\n\x1b[2Jnope</html>".to_vec()))
            .unwrap();
        assert_eq!(
            upgrade_refused("ws://x/v1/ws", &response),
            ClientError::Connect(
                "ws://x/v1/ws: the server answered 404 Not Found: <html> ?[2Jnope</html>".into()
            )
        );
        let closed = quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: 0u32.into(),
            reason: b"the server is shutting down"[..].into(),
        });
        assert_eq!(quic_connection_lost(&closed), "the server is shutting down");
        let response = Response::builder().status(502).body(None).unwrap();
        assert_eq!(
            upgrade_refused("ws://x/v1/ws", &response),
            ClientError::Connect("ws://x/v1/ws: the server answered 502 Bad Gateway".into())
        );
    }
}
