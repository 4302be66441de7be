//! The QUIC endpoint: one bidirectional stream of length-prefixed frames
//! per connection, plus datagrams for unreliable reducer calls.

use std::sync::Arc;
use std::time::Duration;

use worldline_transport::FrameDecoder;

use crate::outbound::{MessageSink, pump};
use crate::session::{Flow, Session};
use crate::shared::Shared;

/// How long a client has to open its stream after the QUIC handshake.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until the endpoint closes.
pub(crate) async fn serve(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(incoming, shared).await {
                tracing::debug!("QUIC connection ended: {e}");
            }
        });
    }
}

async fn serve_connection(incoming: quinn::Incoming, shared: Arc<Shared>) -> Result<(), String> {
    let mut shutdown = shared.shutdown_signal();
    let connection = incoming.await.map_err(|e| e.to_string())?;
    let (send, mut recv) = tokio::time::timeout(STREAM_TIMEOUT, connection.accept_bi())
        .await
        .map_err(|_| "no stream opened".to_owned())?
        .map_err(|e| e.to_string())?;
    let max_frame = shared.config.max_frame;
    let (mut session, outbox) = Session::new(shared);
    let sink = QuicSink {
        send,
        connection: connection.clone(),
    };
    let writer = tokio::spawn(pump(outbox, sink));
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buffer = vec![0; 64 * 1024];
    'connection: loop {
        tokio::select! {
            read = recv.read(&mut buffer) => {
                let Ok(Some(n)) = read else { break };
                decoder.push(&buffer[..n]);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(frame)) => {
                            if session.on_message(&frame).await == Flow::Close {
                                break 'connection;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            session.refuse(e.to_string(), true).await;
                            break 'connection;
                        }
                    }
                }
            }
            datagram = connection.read_datagram() => match datagram {
                Ok(datagram) => session.on_datagram(&datagram).await,
                Err(_) => break,
            },
            _ = shutdown.changed() => {
                session.refuse("the server is shutting down".into(), true).await;
                break;
            }
        }
    }
    session.end().await;
    drop(session);
    let _ = writer.await;
    Ok(())
}

/// Writes frames on the connection's stream.
struct QuicSink {
    send: quinn::SendStream,
    connection: quinn::Connection,
}

impl MessageSink for QuicSink {
    async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        let len = u32::try_from(payload.len()).map_err(|_| "message too large".to_owned())?;
        self.send
            .write_all(&len.to_le_bytes())
            .await
            .map_err(|e| e.to_string())?;
        self.send
            .write_all(payload)
            .await
            .map_err(|e| e.to_string())
    }

    async fn close(mut self, reason: &str) {
        let _ = self.send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.send.stopped()).await;
        self.connection.close(0u32.into(), reason.as_bytes());
    }
}
