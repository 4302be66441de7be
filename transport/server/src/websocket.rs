//! The WebSocket endpoint: one binary WebSocket message per protocol message.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};

use crate::outbound::{MessageSink, pump};
use crate::session::{Flow, Session};
use crate::shared::Shared;

/// Upgrades an HTTP request to a protocol connection.
pub(crate) async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    let max = shared.config.max_frame as usize;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(socket, shared))
}

async fn serve(socket: WebSocket, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_signal();
    let (sink, mut stream) = socket.split();
    let (mut session, outbox) = Session::new(shared);
    let writer = tokio::spawn(pump(outbox, WebSocketSink(sink)));
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = shutdown.changed() => {
                session.refuse("the server is shutting down".into(), true).await;
                break;
            }
        };
        let flow = match next {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Binary(bytes))) => session.on_message(&bytes).await,
            Some(Ok(Message::Text(_))) => {
                let message = "text messages are not part of the protocol; send binary messages";
                session.refuse(message.into(), false).await
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
            Some(Err(e)) => session.refuse(e.to_string(), true).await,
        };
        if flow == Flow::Close {
            break;
        }
    }
    session.end().await;
    drop(session);
    let _ = writer.await;
}

/// Writes binary messages on the socket.
struct WebSocketSink(SplitSink<WebSocket, Message>);

impl MessageSink for WebSocketSink {
    async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.0
            .send(Message::Binary(payload.to_vec().into()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn close(mut self, reason: &str) {
        let frame = CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: truncate(reason, 120).into(),
        };
        let _ = self.0.send(Message::Close(Some(frame))).await;
        let _ = self.0.close().await;
    }
}

/// At most `max` bytes of `text`, cut at a character boundary (a close
/// frame's reason is limited to 123 bytes).
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
