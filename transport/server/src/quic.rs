//! The QUIC endpoint: one bidirectional stream of length-prefixed frames
//! per connection, plus datagrams for unreliable reducer calls.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::task::JoinSet;
use worldline_transport::FrameDecoder;

use crate::config::ServerConfig;
use crate::incoming::FREE_PARTIAL_BYTES;
use crate::outbound::{Ended, MessageSink, Payload, pump};
use crate::session::{Flow, Session};
use crate::shared::{SHUTTING_DOWN, Shared};

/// Accepts connections until the server shuts down, then lets every
/// connection write what it already queued and its fatal `Error` (each
/// connection sees the shutdown itself), for at most `grace`, and closes the
/// endpoint: connections still open then are closed with the reason
/// [`SHUTTING_DOWN`].
pub(crate) async fn serve(endpoint: quinn::Endpoint, shared: Arc<Shared>, grace: Duration) {
    let mut shutdown = shared.shutdown_signal();
    if *shutdown.borrow() {
        // The shutdown began before this task first ran: a new receiver
        // has seen it, and would wait for another change that never comes.
        shutdown.mark_changed();
    }
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => match shared.connections.take() {
                    Some(slot) => {
                        connections.spawn(serve_connection(incoming, shared.clone(), slot));
                    }
                    None => {
                        tracing::debug!(
                            "refusing a QUIC connection from {}: {}",
                            incoming.remote_address().ip(),
                            shared.connections.refusal()
                        );
                        incoming.refuse();
                    }
                },
                None => break,
            },
            // Reaps the tasks of connections that ended.
            Some(ended) = connections.join_next(), if !connections.is_empty() => log_end(ended),
            _ = shutdown.changed() => break,
        }
    }
    // New connections are refused from now on.
    endpoint.set_server_config(None);
    let drained = tokio::time::timeout(grace, async {
        while let Some(ended) = connections.join_next().await {
            log_end(ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            "{} QUIC connections were still writing after {} s; closing them",
            connections.len(),
            grace.as_secs_f64()
        );
    }
    endpoint.close(0u32.into(), SHUTTING_DOWN.as_bytes());
}

/// Logs how a connection's task ended.
fn log_end(ended: Result<Result<(), String>, tokio::task::JoinError>) {
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("QUIC connection ended: {e}"),
        Err(e) => tracing::error!("a QUIC connection's task failed: {e}"),
    }
}

/// Serves one QUIC connection, holding `_slot` (its place in the server's
/// count of connections) until it ends.
async fn serve_connection(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
) -> Result<(), String> {
    let mut shutdown = shared.shutdown_signal();
    if *shutdown.borrow() {
        // Accepted just before the shutdown began: refused at once below.
        shutdown.mark_changed();
    }
    let peer = incoming.remote_address().ip();
    let handshake_timeout = shared.config.handshake_timeout;
    let connection = tokio::select! {
        connection = incoming => connection.map_err(|e| e.to_string())?,
        // Dropping the handshake refuses the connection.
        _ = shutdown.changed() => return Err(SHUTTING_DOWN.to_owned()),
    };
    let max_frame = shared.config.max_frame;
    let linger_bound = linger_bound(&shared.config);
    // The connection counts against its address's cap from now on, and has
    // the handshake deadline to open its one stream and send Hello.
    let refused_waiting = Arc::clone(&shared.refused_waiting);
    let mut room = shared.incoming.room(peer);
    let (mut session, outbox) = Session::new(shared, peer);
    // A connection over its address's cap waits for its stream only to be
    // told why, and only while few others do.
    let _waiting = match session.over_cap() {
        None => None,
        Some(refusal) => match refused_waiting.try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                connection.close(0u32.into(), refusal.as_bytes());
                return Err(refusal);
            }
        },
    };
    let opened = tokio::select! {
        opened = tokio::time::timeout(handshake_timeout, connection.accept_bi()) => opened,
        _ = shutdown.changed() => {
            connection.close(0u32.into(), SHUTTING_DOWN.as_bytes());
            return Err(SHUTTING_DOWN.to_owned());
        }
    };
    let (send, mut recv) = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {
            connection.close(
                0u32.into(),
                b"no stream opened within the handshake deadline",
            );
            return Err("no stream opened".to_owned());
        }
    };
    let sink = QuicSink {
        send,
        connection: connection.clone(),
        buffer: Vec::new(),
        shutdown: shutdown.clone(),
    };
    let mut writer = tokio::spawn(pump(outbox, sink));
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buffer = vec![0; 64 * 1024];
    let idle_timeout = session.idle_timeout();
    // When the frame now arriving began, if one is half read: it must be
    // complete within the idle timeout.
    let mut partial_since = None;
    let mut flow = session.admit();
    // Set when the client finished its side of the stream (not reset).
    let mut finished = false;
    while flow == Flow::Continue {
        let deadline = session.handshake_deadline();
        let frame_deadline = partial_since.map(|since| since + idle_timeout);
        // A frame partly received takes room for what the next read may
        // add to it before reading, and as soon as it needs any, for the
        // whole of it as declared (see `crate::incoming`).
        let partial = decoder.buffered() + buffer.len();
        let whole = decoder.frame_in_progress().unwrap_or(0) + buffer.len();
        let read = async {
            room.cover(partial, whole).await;
            recv.read(&mut buffer).await
        };
        tokio::select! {
            read = read => {
                let n = match read {
                    Ok(Some(n)) => n,
                    Ok(None) => {
                        // A frame the client left half written is dropped.
                        finished = true;
                        break;
                    }
                    Err(_) => break,
                };
                // Datagrams that arrived before these bytes are handled
                // first (so any that came before Hello are ignored, even
                // when Hello and they are ready at once).
                for _ in 0..MAX_DATAGRAMS_FIRST {
                    match connection.read_datagram().now_or_never() {
                        Some(Ok(datagram)) => session.on_datagram(&datagram).await,
                        _ => break,
                    }
                }
                if decoder.buffered() == 0 {
                    partial_since = Some(tokio::time::Instant::now());
                }
                decoder.push(&buffer[..n]);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(frame)) => {
                            flow = session.on_message(&frame).await;
                            // Whatever follows is a new frame, begun now.
                            partial_since = Some(tokio::time::Instant::now());
                            if flow == Flow::Close {
                                break;
                            }
                        }
                        Ok(None) => {
                            if decoder.buffered() == 0 {
                                partial_since = None;
                            }
                            if decoder.buffered() <= FREE_PARTIAL_BYTES {
                                room.release();
                            }
                            break;
                        }
                        Err(e) => {
                            flow = session.fail(e.to_string()).await;
                            break;
                        }
                    }
                }
            }
            datagram = connection.read_datagram() => match datagram {
                Ok(datagram) => session.on_datagram(&datagram).await,
                Err(_) => break,
            },
            _ = sleep_until(deadline) => flow = session.handshake_timed_out(),
            _ = sleep_until(frame_deadline) => {
                let seconds = idle_timeout.as_secs_f64();
                let message = format!("a frame stayed incomplete for {seconds} s; closing");
                flow = session.fail(message).await;
            }
            _ = &mut writer => break,
            _ = shutdown.changed() => {
                flow = session.refuse(SHUTTING_DOWN.into(), true);
            }
        }
    }
    if finished {
        linger(session, &mut writer, &connection, linger_bound).await;
    } else {
        session.end().await;
        drop(session);
    }
    if !writer.is_finished() {
        let _ = writer.await;
    }
    Ok(())
}

/// How long a connection whose client finished its stream is kept for the
/// answers it is owed: the procedure deadline (the longest a call may run,
/// a procedure's wait for durability included), then the idle timeout to
/// write them.
fn linger_bound(config: &ServerConfig) -> Duration {
    config.host.engine.procedure_deadline + config.idle_timeout
}

/// Ends the session of a client that finished its side of the stream and
/// waits, at most `bound`, for the writer to write every answer owed and
/// then close the connection (it finishes its own side and closes it once
/// the client has read everything); the connection keeps its place under
/// the per-address cap meanwhile. Stops waiting early if the connection
/// closes (the client closed it, it went silent for the idle timeout, or
/// the server is shutting down); past `bound` it closes the connection,
/// dropping what is not written. Either way the writer is stopped.
async fn linger(
    session: Session,
    writer: &mut tokio::task::JoinHandle<Ended>,
    connection: &quinn::Connection,
    bound: Duration,
) {
    let deadline = tokio::time::Instant::now() + bound;
    let _place = session.finish().await;
    tokio::select! {
        _ = &mut *writer => return,
        _ = connection.closed() => {}
        _ = tokio::time::sleep_until(deadline) => {
            let seconds = bound.as_secs_f64();
            let reason = format!(
                "the answers owed after the end of the stream were not all sent within {seconds} s"
            );
            tracing::debug!("dropping a client: {reason}");
            connection.close(0u32.into(), reason.as_bytes());
        }
    }
    writer.abort();
}

/// At most this many datagrams already received are handled before each
/// read from the stream (a flood of datagrams must not starve the stream).
const MAX_DATAGRAMS_FIRST: usize = 256;

/// Waits until `deadline`, or forever without one.
pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes frames on the connection's stream.
struct QuicSink {
    send: quinn::SendStream,
    connection: quinn::Connection,
    /// Frames fed and not yet written to the stream.
    buffer: Vec<u8>,
    /// Whether the server is shutting down, which is then the close reason.
    shutdown: watch::Receiver<bool>,
}

/// Frames at least this large go to the stream directly, not through the buffer.
const DIRECT_FRAME: usize = 64 << 10;

impl MessageSink for QuicSink {
    async fn feed(&mut self, payload: &Payload) -> Result<(), String> {
        let len = u32::try_from(payload.len()).map_err(|_| "message too large".to_owned())?;
        self.buffer.extend_from_slice(&len.to_le_bytes());
        if payload.len() < DIRECT_FRAME {
            self.buffer.extend_from_slice(payload);
            return Ok(());
        }
        self.flush().await?;
        self.send
            .write_all(payload)
            .await
            .map_err(|e| e.to_string())
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let written = self.send.write_all(&self.buffer).await;
        self.buffer.clear();
        written.map_err(|e| e.to_string())
    }

    /// QUIC keeps the connection alive itself (see the endpoint's keep-alive).
    async fn ping(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Finishes the stream and waits until the client has read it all (the
    /// writer task bounds the wait by the idle timeout) before closing the
    /// connection, so that a slow reader still gets the last messages; a
    /// client that reads nothing ([`Ended::Stalled`]) is closed at once.
    /// Everything written, the close reason is `closed`, or [`SHUTTING_DOWN`]
    /// when the server is shutting down.
    async fn close(mut self, ended: &Ended) {
        if !matches!(ended, Ended::Stalled(_)) {
            let _ = self.send.finish();
            let _ = self.send.stopped().await;
        }
        let reason = ended.close_reason(*self.shutdown.borrow());
        self.connection.close(0u32.into(), reason.as_bytes());
    }
}
