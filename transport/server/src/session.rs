//! One client connection's protocol state, independent of the transport:
//! the handshake, then forwarding messages to the connection's database.

use std::sync::Arc;

use rand::RngCore;
use worldline_host::ConnectionId;
use worldline_transport::{
    ClientMessage, PROTOCOL_VERSION, ServerMessage, decode_message, encode_message,
};

use crate::database_actor::{Command, ConnKey, DatabaseHandle};
use crate::outbound::{Outbound, Outbox, Payload, channel};
use crate::shared::Shared;

/// Whether the transport keeps reading after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next message.
    Continue,
    /// Stop reading: the session is over.
    Close,
}

enum State {
    AwaitingHello,
    Connected {
        key: ConnKey,
        database: DatabaseHandle,
    },
    Closed,
}

/// A client connection, from its first message to its end.
pub(crate) struct Session {
    shared: Arc<Shared>,
    outbound: Outbound,
    state: State,
}

impl Session {
    /// A new session and the outbox its writer task drains.
    pub(crate) fn new(shared: Arc<Shared>) -> (Self, Outbox) {
        let (outbound, outbox) = channel(shared.config.outbound_queue);
        let session = Self {
            shared,
            outbound,
            state: State::AwaitingHello,
        };
        (session, outbox)
    }

    /// Handles one whole message from the client.
    pub(crate) async fn on_message(&mut self, bytes: &[u8]) -> Flow {
        let message = match decode_message::<ClientMessage>(bytes) {
            Ok(message) => message,
            Err(e) => {
                let fatal = matches!(self.state, State::AwaitingHello);
                let what = if fatal {
                    "expected a Hello message"
                } else {
                    "message ignored"
                };
                return self.refuse(format!("{e} ({what})"), fatal).await;
            }
        };
        match &self.state {
            State::AwaitingHello => self.hello(message).await,
            State::Connected { key, database } => {
                let command = Command::Client { key: *key, message };
                if database.send(command).await.is_err() {
                    return self.refuse("the database stopped".into(), true).await;
                }
                Flow::Continue
            }
            State::Closed => Flow::Close,
        }
    }

    /// Handles a QUIC datagram: only an unreliable reducer call is accepted;
    /// anything else is dropped, as datagrams may be.
    pub(crate) async fn on_datagram(&mut self, bytes: &[u8]) {
        let State::Connected { key, database } = &self.state else {
            return;
        };
        match decode_message::<ClientMessage>(bytes) {
            Ok(message @ ClientMessage::CallReducerUnreliable { .. }) => {
                let _ = database.send(Command::Client { key: *key, message }).await;
            }
            Ok(_) | Err(_) => tracing::debug!("ignored a datagram that is not an unreliable call"),
        }
    }

    /// Tells the client what was wrong with what it sent; a fatal error
    /// also closes the connection.
    pub(crate) async fn refuse(&mut self, message: String, fatal: bool) -> Flow {
        tracing::debug!("refusing client input: {message}");
        let error = ServerMessage::Error { message, fatal };
        self.outbound
            .send(Payload::from(encode_message(&error)))
            .await;
        if fatal {
            self.outbound.close().await;
            self.end().await;
            return Flow::Close;
        }
        Flow::Continue
    }

    /// Ends the session: the database forgets the connection and runs its
    /// disconnect reducer.
    pub(crate) async fn end(&mut self) {
        if let State::Connected { key, database } =
            std::mem::replace(&mut self.state, State::Closed)
        {
            let _ = database.send(Command::Disconnect { key }).await;
        }
    }

    async fn hello(&mut self, message: ClientMessage) -> Flow {
        let ClientMessage::Hello {
            version,
            database: name,
            token,
        } = message
        else {
            return self
                .refuse("the first message must be Hello".into(), true)
                .await;
        };
        if version != PROTOCOL_VERSION {
            return self
                .refuse(
                    format!(
                        "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
                    ),
                    true,
                )
                .await;
        }
        let Some(database) = self.shared.database(&name) else {
            return self
                .refuse(format!("no database named `{name}` on this server"), true)
                .await;
        };
        let (identity, token) = match token {
            Some(token) => match self.shared.authority.verify(&token) {
                Ok(identity) => (identity, token),
                Err(e) => {
                    let message = format!(
                        "token refused: {e}; connect without a token to get a new identity"
                    );
                    return self.refuse(message, true).await;
                }
            },
            None => self.shared.authority.new_identity(),
        };
        let key = self.shared.next_connection_key();
        let (reply, accepted) = tokio::sync::oneshot::channel();
        let connect = Command::Connect {
            key,
            identity,
            connection_id: random_connection_id(),
            token,
            outbound: self.outbound.clone(),
            reply,
        };
        if database.send(connect).await.is_err() {
            return self
                .refuse(format!("database `{name}` stopped"), true)
                .await;
        }
        match accepted.await {
            Ok(Ok(())) => {
                self.state = State::Connected { key, database };
                Flow::Continue
            }
            Ok(Err(reason)) => self.refuse(reason, true).await,
            Err(_) => {
                self.refuse(format!("database `{name}` stopped"), true)
                    .await
            }
        }
    }
}

fn random_connection_id() -> ConnectionId {
    let mut bytes = [0; 16];
    rand::rng().fill_bytes(&mut bytes);
    ConnectionId::from_bytes(bytes)
}
