//! Protocol-level clients that send exactly the bytes a test gives them, to
//! check how the server treats malformed, oversized and out-of-order input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use worldline_transport::{
    ClientMessage, FrameDecoder, PROTOCOL_VERSION, QUIC_ALPN, ServerMessage, decode_message,
    encode_frame, encode_message,
};

/// How long a raw client waits for the server's next message.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A `Hello` for `database`.
pub fn hello(database: &str, token: Option<String>) -> ClientMessage {
    ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        database: database.into(),
        token,
    }
}

/// The message of a fatal `Error`, after which the server closes the
/// connection; panics on anything else.
pub fn fatal(message: Option<ServerMessage>) -> String {
    match message {
        Some(ServerMessage::Error {
            message,
            fatal: true,
        }) => message,
        other => panic!("expected a fatal error, got {other:?}"),
    }
}

/// A `CallReducer` with postcard-encoded `arguments`.
pub fn call(request_id: u32, reducer: &str, arguments: Vec<u8>) -> ClientMessage {
    ClientMessage::CallReducer {
        request_id,
        reducer: reducer.into(),
        args: serde_bytes::ByteBuf::from(arguments),
    }
}

/// Sends `request` (bytes as they go on the wire) on a new TCP connection
/// to the HTTP port at `addr` and reads the whole answer (for at most 5 s
/// of silence). Blocking.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout");
    stream.write_all(request).expect("writing");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A WebSocket connection sending raw WebSocket messages.
pub struct RawWebSocket(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl RawWebSocket {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connecting over WebSocket");
        Self(socket)
    }

    /// Sends one binary message holding `bytes`.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.0
            .send(Message::Binary(bytes.into()))
            .await
            .expect("sending");
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) {
        self.0
            .send(Message::Text(text.into()))
            .await
            .expect("sending");
    }

    /// Sends a protocol message.
    pub async fn send(&mut self, message: &ClientMessage) {
        self.send_bytes(encode_message(message)).await;
    }

    /// Sends a Close frame without a code, as a client ending the
    /// connection does; the server's reply comes through [`recv`](Self::recv).
    pub async fn send_close(&mut self) {
        self.0.send(Message::Close(None)).await.expect("sending");
    }

    /// Writes `bytes` to the connection's socket as they are, outside any
    /// WebSocket frame the library would build (a bare frame header, say).
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        let socket = self.0.get_mut();
        socket.write_all(bytes).await.expect("writing");
        socket.flush().await.expect("flushing");
    }

    /// The reason of the server's Close frame, skipping the messages before
    /// it; `None` if the connection ended without one.
    pub async fn close_reason(&mut self) -> Option<String> {
        loop {
            let next = tokio::time::timeout(RECEIVE_TIMEOUT, self.0.next())
                .await
                .expect("the server closes in time");
            match next? {
                Ok(Message::Close(frame)) => {
                    return Some(frame.map(|f| f.reason.to_string()).unwrap_or_default());
                }
                Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The server's next message; `None` once the server closed the connection.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let next = tokio::time::timeout(RECEIVE_TIMEOUT, self.0.next())
                .await
                .expect("the server answers in time");
            match next? {
                Ok(Message::Binary(bytes)) => {
                    return Some(decode_message(&bytes).expect("the server sends valid messages"));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

/// A QUIC connection to `addr` trusting the certificate `cert_der` (as
/// `localhost`, with quinn's default transport settings: no keep-alive),
/// before any stream is opened; keep the endpoint as long as the connection.
pub async fn quic_connection(
    addr: SocketAddr,
    cert_der: Vec<u8>,
) -> (quinn::Endpoint, quinn::Connection) {
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address")).expect("a socket");
    endpoint.set_default_client_config(quic_client_config(cert_der, vec![QUIC_ALPN.to_vec()]));
    let connection = endpoint
        .connect(addr, "localhost")
        .expect("a connection attempt")
        .await
        .expect("connecting over QUIC");
    (endpoint, connection)
}

/// A QUIC client configuration trusting the certificate `cert_der` and
/// offering the ALPN protocols `alpn` (with quinn's default transport
/// settings: no keep-alive).
pub fn quic_client_config(cert_der: Vec<u8>, alpn: Vec<Vec<u8>>) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert_der))
        .expect("a valid certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// A QUIC connection writing raw bytes on its protocol stream.
pub struct RawQuic {
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    _endpoint: quinn::Endpoint,
}

impl RawQuic {
    /// Connects to `addr`, trusting the certificate `cert_der`, and opens the protocol stream.
    pub async fn connect(addr: SocketAddr, cert_der: Vec<u8>) -> Self {
        let (endpoint, connection) = quic_connection(addr, cert_der).await;
        let (send, recv) = connection.open_bi().await.expect("opening the stream");
        Self {
            connection,
            send,
            recv,
            decoder: FrameDecoder::new(u32::MAX),
            _endpoint: endpoint,
        }
    }

    /// The QUIC connection under the stream.
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// Writes `bytes` on the stream as they are.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.expect("writing");
    }

    /// The sending side of the stream, to finish or reset it.
    pub fn send_stream(&mut self) -> &mut quinn::SendStream {
        &mut self.send
    }

    /// The receiving side of the stream, to stop it (STOP_SENDING).
    pub fn recv_stream(&mut self) -> &mut quinn::RecvStream {
        &mut self.recv
    }

    /// Sends a protocol message as a frame.
    pub async fn send(&mut self, message: &ClientMessage) {
        self.send_bytes(&encode_frame(message)).await;
    }

    /// Sends a protocol message as a QUIC datagram.
    pub fn send_datagram(&self, message: &ClientMessage) {
        self.connection
            .send_datagram(encode_message(message).into())
            .expect("sending a datagram");
    }

    /// The server's next message; `None` once the server closed the stream.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        let mut buffer = [0; 4096];
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("valid frames") {
                return Some(decode_message(&frame).expect("the server sends valid messages"));
            }
            let read = tokio::time::timeout(RECEIVE_TIMEOUT, self.recv.read(&mut buffer))
                .await
                .expect("the server answers in time");
            match read {
                Ok(Some(n)) => self.decoder.push(&buffer[..n]),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// A raw client over either transport, for tests that run the same
/// exchange over both.
pub enum RawClient {
    /// Over WebSocket.
    WebSocket(RawWebSocket),
    /// Over QUIC.
    Quic(RawQuic),
}

impl RawClient {
    /// Sends `message` (see [`RawWebSocket::send`], [`RawQuic::send`]).
    pub async fn send(&mut self, message: &ClientMessage) {
        match self {
            RawClient::WebSocket(client) => client.send(message).await,
            RawClient::Quic(client) => client.send(message).await,
        }
    }

    /// The next message (see [`RawWebSocket::recv`], [`RawQuic::recv`]).
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        match self {
            RawClient::WebSocket(client) => client.recv().await,
            RawClient::Quic(client) => client.recv().await,
        }
    }
}
