//! One client connection's protocol state, independent of the transport:
//! the handshake (with its deadline), then forwarding messages to the
//! connection's database, and running its procedure calls beside it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rand::RngCore;
use serde_bytes::ByteBuf;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use worldline_host::{ConnectionId, Identity};
use worldline_transport::{
    ClientMessage, MAX_DATAGRAM_MESSAGE, MIN_PROTOCOL_VERSION, PROCEDURES_VERSION,
    PROTOCOL_VERSION, ProcedureStatus, ServerMessage, decode_message, encode_message,
    leading_varint,
};

use crate::database_actor::{CONNECTION_COMMANDS, Command, ConnKey, DatabaseHandle};
use crate::outbound::{Limits, Outbound, Outbox, channel};
use crate::procedures::{ProcedureCall, call_procedure};
use crate::shared::{Shared, client_group};

/// How many procedure calls one connection may have running at once;
/// more are refused (each answered at once) until one ends.
const MAX_PROCEDURES_IN_FLIGHT: usize = 16;

/// The type of `CallProcedure`, the first `ClientMessage` a client of a
/// version before [`PROCEDURES_VERSION`] does not have.
const PROCEDURE_MESSAGE: u32 = 6;

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
        /// The database's name.
        name: String,
        /// Who the client is.
        identity: Identity,
        /// This connection's id.
        connection_id: ConnectionId,
        /// Procedure calls of this connection still running.
        procedures: Arc<AtomicUsize>,
        /// The protocol version the client speaks.
        version: u16,
        /// Permits for the messages it may have waiting for the database's
        /// thread at once ([`CONNECTION_COMMANDS`]).
        share: Arc<Semaphore>,
    },
    Closed,
}

/// How many connections each IP address (an IPv6 one as its /64 network)
/// holds, for the per-address cap.
#[derive(Debug, Default)]
pub(crate) struct AddressSlots(Mutex<HashMap<IpAddr, usize>>);

impl AddressSlots {
    /// Takes one of `max` slots of `address`, or `None` if all are taken.
    /// (An IPv6 address counts as its /64 network, see [`client_group`].)
    pub(crate) fn take(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let address = client_group(address);
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(address).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            slots: self.clone(),
            address,
        })
    }
}

/// A connection's place in its address's count, given back when dropped.
pub(crate) struct AddressSlot {
    slots: Arc<AddressSlots>,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// What is left of a session whose client finished sending, while the
/// answers it is owed go out: its place under the per-address cap.
pub(crate) struct Finished {
    _slot: Option<AddressSlot>,
}

/// A client connection, from its first message to its end.
pub(crate) struct Session {
    shared: Arc<Shared>,
    outbound: Outbound,
    state: State,
    /// When the handshake must be over.
    handshake_deadline: Instant,
    /// Held while the connection lives; `None` if the address had too many.
    slot: Option<AddressSlot>,
    peer: IpAddr,
}

impl Session {
    /// A new session for a client at `peer` and the outbox its writer task
    /// drains. Call [`admit`](Self::admit) once the writer runs.
    pub(crate) fn new(shared: Arc<Shared>, peer: IpAddr) -> (Self, Outbox) {
        let config = &shared.config;
        let limits = Limits {
            messages: config.outbound_queue,
            bytes: config.max_queued_bytes,
            max_frame: config.max_frame,
            idle_timeout: config.idle_timeout,
        };
        let (outbound, outbox) = channel(limits, shared.outgoing.clone());
        let slot = shared
            .address_slots
            .take(peer, config.max_connections_per_ip);
        let session = Self {
            handshake_deadline: Instant::now() + config.handshake_timeout,
            shared,
            outbound,
            state: State::AwaitingHello,
            slot,
            peer,
        };
        (session, outbox)
    }

    /// Refuses the connection if its address already holds as many
    /// connections as allowed.
    pub(crate) fn admit(&mut self) -> Flow {
        match self.over_cap() {
            None => Flow::Continue,
            Some(message) => self.refuse(message, true),
        }
    }

    /// Why the connection is refused, if its address already holds as many
    /// connections as allowed.
    pub(crate) fn over_cap(&self) -> Option<String> {
        if self.slot.is_some() {
            return None;
        }
        let max = self.shared.config.max_connections_per_ip;
        Some(format!(
            "too many connections from {}: at most {max} at once per address; close one and retry",
            self.peer
        ))
    }

    /// How long the connection may stay silent, or take over one frame.
    pub(crate) fn idle_timeout(&self) -> std::time::Duration {
        self.shared.config.idle_timeout
    }

    /// Whether messages for the client wait in its queue, not yet handed
    /// to the connection.
    pub(crate) fn owes_messages(&self) -> bool {
        self.outbound.holds_messages()
    }

    /// When the connection must have finished its handshake; `None` once it has.
    pub(crate) fn handshake_deadline(&self) -> Option<Instant> {
        matches!(self.state, State::AwaitingHello).then_some(self.handshake_deadline)
    }

    /// Closes a connection that did not finish its handshake in time.
    pub(crate) fn handshake_timed_out(&mut self) -> Flow {
        let seconds = self.shared.config.handshake_timeout.as_secs_f64();
        self.refuse(format!("no Hello within {seconds} s; closing"), true)
    }

    /// Handles one whole message from the client.
    pub(crate) async fn on_message(&mut self, bytes: &[u8]) -> Flow {
        if let State::Connected { version, .. } = &self.state
            && *version < PROCEDURES_VERSION
            && let Some(kind) = leading_varint(bytes).filter(|&kind| kind >= PROCEDURE_MESSAGE)
        {
            // Not a message of the client's version: answered as its
            // decoder would have it (never with a `ProcedureResult` it
            // could not read), whatever follows the type.
            let hint = if kind == PROCEDURE_MESSAGE {
                format!("; procedures need version {PROCEDURES_VERSION}")
            } else {
                String::new()
            };
            let last = PROCEDURE_MESSAGE - 1;
            return self
                .ignore(format!(
                    "malformed message: unknown ClientMessage type {kind} in protocol version \
                     {version} (expected 0 to {last}{hint}) (message ignored)"
                ))
                .await;
        }
        let message = match decode_message::<ClientMessage>(bytes) {
            Ok(message) => message,
            Err(e) => {
                if matches!(self.state, State::AwaitingHello) {
                    return self.refuse(format!("{e} (expected a Hello message)"), true);
                }
                return self.ignore(format!("{e} (message ignored)")).await;
            }
        };
        match &self.state {
            State::AwaitingHello => self.hello(message).await,
            State::Connected { .. } if matches!(message, ClientMessage::CallProcedure { .. }) => {
                self.start_procedure(message);
                Flow::Continue
            }
            State::Connected { .. } => {
                if !self.queue(|key| Command::Client { key, message }).await {
                    return self.refuse("the database stopped".into(), true);
                }
                Flow::Continue
            }
            State::Closed => Flow::Close,
        }
    }

    /// Handles a WebSocket text message: not part of the protocol; fatal
    /// before `Hello`, like anything else that is not `Hello`.
    pub(crate) async fn on_text(&mut self) -> Flow {
        let message = "text messages are not part of the protocol; send binary messages";
        if matches!(self.state, State::AwaitingHello) {
            return self.refuse(message.into(), true);
        }
        self.ignore(message.into()).await
    }

    /// Handles a QUIC datagram: only an unreliable reducer call of at most
    /// [`MAX_DATAGRAM_MESSAGE`] bytes is accepted; a larger one is refused
    /// with a non-fatal error, anything else is dropped, as datagrams may be.
    pub(crate) async fn on_datagram(&mut self, bytes: &[u8]) {
        let State::Connected { share, .. } = &self.state else {
            return;
        };
        if bytes.len() > MAX_DATAGRAM_MESSAGE {
            let message = format!(
                "a datagram of {} bytes exceeds the limit of {MAX_DATAGRAM_MESSAGE} bytes; \
                 send larger calls on the stream",
                bytes.len()
            );
            self.refuse(message, false);
            return;
        }
        match decode_message::<ClientMessage>(bytes) {
            // Dropped, as datagrams may be, while the connection's share
            // of the queue is taken (this task alone takes from it).
            Ok(ClientMessage::CallReducerUnreliable { .. }) if share.available_permits() == 0 => {
                tracing::debug!("dropped an unreliable call: the connection's queue is full");
            }
            Ok(message @ ClientMessage::CallReducerUnreliable { .. }) => {
                self.queue(|key| Command::Client { key, message }).await;
            }
            Ok(_) | Err(_) => tracing::debug!("ignored a datagram that is not an unreliable call"),
        }
    }

    /// Queues `make(key)` as one of the connected client's messages, holding
    /// one of its [`CONNECTION_COMMANDS`] until it has run (waiting while
    /// they are all taken); `false` if the database stopped, or the client
    /// is not connected.
    async fn queue(&self, make: impl FnOnce(ConnKey) -> Command) -> bool {
        let State::Connected {
            key,
            database,
            share,
            ..
        } = &self.state
        else {
            return false;
        };
        database.send_sharing(make(*key), share).await.is_ok()
    }

    /// Tells a connected client that a message of its was ignored, and why,
    /// with a non-fatal `Error` that its database queues after the answers
    /// to what the client sent before (in order, as every answer).
    async fn ignore(&mut self, reason: String) -> Flow {
        tracing::debug!("ignoring client input: {reason}");
        if !matches!(self.state, State::Connected { .. }) {
            return self.refuse(reason, false);
        }
        if !self.queue(|key| Command::Ignored { key, reason }).await {
            return self.refuse("the database stopped".into(), true);
        }
        Flow::Continue
    }

    /// Ends the connection because what the client sent could not be read
    /// (a frame over the limit, a broken frame, one left incomplete): the
    /// fatal `Error` saying why comes after the answers to the messages
    /// read before (a `Welcome` included), which the database releases in
    /// order, and the database then closes the connection and disconnects
    /// it. Before the handshake the `Error` goes out at once.
    pub(crate) async fn fail(&mut self, reason: String) -> Flow {
        tracing::debug!("failing a client: {reason}");
        let State::Connected { key, database, .. } = &self.state else {
            return self.refuse(reason, true);
        };
        let command = Command::Fail {
            key: *key,
            reason: reason.clone(),
        };
        if database.send(command).await.is_err() {
            return self.refuse(reason, true);
        }
        // The database disconnects it once the `Error` is out.
        self.state = State::Closed;
        Flow::Close
    }

    /// Tells the client what was wrong with what it sent; a fatal error
    /// also closes the connection. Never waits for the client.
    pub(crate) fn refuse(&mut self, message: String, fatal: bool) -> Flow {
        tracing::debug!("refusing client input: {message}");
        let error = ServerMessage::Error { message, fatal };
        if fatal {
            self.outbound.close_with(&error);
            return Flow::Close;
        }
        self.outbound
            .try_send(self.outbound.budget().encode(&error));
        Flow::Continue
    }

    /// Ends the session: the database forgets the connection and runs its
    /// disconnect reducer.
    pub(crate) async fn end(&mut self) {
        if let State::Connected { key, database, .. } =
            std::mem::replace(&mut self.state, State::Closed)
        {
            let _ = database.send(Command::Disconnect { key }).await;
        }
    }

    /// Ends the session after the client finished sending (a clean end of
    /// its stream): the database disconnects it once every answer owed for
    /// the messages it read has been handed to the writer. The session's
    /// own hold on the outgoing queue goes now, so the writer closes the
    /// connection once the database and the procedure calls still running
    /// have let go of theirs, after writing what they queued. The
    /// connection keeps its place under the per-address cap while the
    /// transport holds the [`Finished`] returned.
    pub(crate) async fn finish(mut self) -> Finished {
        if let State::Connected { key, database, .. } =
            std::mem::replace(&mut self.state, State::Closed)
        {
            let _ = database.send(Command::Finish { key }).await;
        }
        Finished { _slot: self.slot }
    }

    async fn hello(&mut self, message: ClientMessage) -> Flow {
        let ClientMessage::Hello {
            version,
            database: name,
            token,
        } = message
        else {
            return self.refuse("the first message must be Hello".into(), true);
        };
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
            return self.refuse(
                format!(
                    "protocol version {version} is not supported; this server speaks \
                     {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
                ),
                true,
            );
        }
        let database = match self.shared.lookup(&name) {
            Ok(database) => database,
            Err(missing) => return self.refuse(missing.to_string(), true),
        };
        let (identity, token) = match token {
            Some(token) => match self.shared.authority.verify(&token) {
                Ok(identity) => (identity, token),
                Err(e) => {
                    let message = format!(
                        "token refused: {e}; connect without a token to get a new identity"
                    );
                    return self.refuse(message, true);
                }
            },
            None => self.shared.authority.new_identity(),
        };
        let key = self.shared.next_connection_key();
        let connection_id = random_connection_id();
        let (reply, accepted) = tokio::sync::oneshot::channel();
        let connect = Command::Connect {
            key,
            identity,
            connection_id,
            token,
            outbound: self.outbound.clone(),
            version,
            reply,
        };
        if database.send(connect).await.is_err() {
            return self.refuse(format!("database `{name}` stopped"), true);
        }
        match accepted.await {
            Ok(Ok(())) => {
                self.state = State::Connected {
                    key,
                    database,
                    name,
                    identity,
                    connection_id,
                    procedures: Arc::default(),
                    version,
                    share: Arc::new(Semaphore::new(CONNECTION_COMMANDS)),
                };
                Flow::Continue
            }
            Ok(Err(reason)) => self.refuse(reason, true),
            Err(_) => self.refuse(format!("database `{name}` stopped"), true),
        }
    }
}

impl Session {
    /// Runs a `CallProcedure` on a task of its own, so that the connection
    /// goes on reading (and its reducer calls go on running) while the
    /// procedure waits on the network; its `ProcedureResult` is sent when
    /// it ends.
    fn start_procedure(&mut self, message: ClientMessage) {
        let ClientMessage::CallProcedure {
            request_id,
            procedure,
            args,
        } = message
        else {
            return;
        };
        let State::Connected {
            name,
            identity,
            connection_id,
            procedures,
            ..
        } = &self.state
        else {
            return;
        };
        let answer = |status| ServerMessage::ProcedureResult {
            request_id,
            status,
            duration_micros: 0,
        };
        if procedures.load(Ordering::Acquire) >= MAX_PROCEDURES_IN_FLIGHT {
            let refusal = ProcedureStatus::Failed(format!(
                "this connection has {MAX_PROCEDURES_IN_FLIGHT} procedure calls running, the \
                 most one connection may have; wait for one to answer"
            ));
            let refusal = self.outbound.budget().encode(&answer(refusal));
            self.outbound.try_send(refusal);
            return;
        }
        let in_flight = InFlight::enter(procedures);
        let call = ProcedureCall {
            caller: *identity,
            connection_id: Some(*connection_id),
            name: procedure,
            args: args.into_vec(),
        };
        let (shared, database, outbound) =
            (self.shared.clone(), name.clone(), self.outbound.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let (status, duration) = match call_procedure(&shared, &database, call).await {
                Ok(returned) => (
                    ProcedureStatus::Returned(ByteBuf::from(returned.value)),
                    returned.duration,
                ),
                Err(e) => (ProcedureStatus::Failed(e.to_string()), started.elapsed()),
            };
            let mut message = ServerMessage::ProcedureResult {
                request_id,
                status,
                duration_micros: u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            };
            let mut bytes = encode_message(&message);
            // Half the queue's byte budget: room is left for what else is queued.
            let max = usize::try_from(outbound.limits().bytes / 2).unwrap_or(usize::MAX);
            let refusal = if bytes.len() > max {
                Some(format!(
                    "the procedure returned {} bytes, more than the {max} bytes one message may \
                     hold",
                    bytes.len()
                ))
            } else {
                let room = outbound.budget().room_for(bytes.len());
                room.err().map(|shortage| shortage.to_string())
            };
            if let Some(refusal) = refusal {
                message = ServerMessage::ProcedureResult {
                    request_id,
                    status: ProcedureStatus::Failed(refusal),
                    duration_micros: u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
                };
                bytes = encode_message(&message);
            }
            outbound.try_send(outbound.budget().payload(bytes));
            drop(in_flight);
        });
    }
}

/// One running procedure call of a connection, counted while it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn random_connection_id() -> ConnectionId {
    let mut bytes = [0; 16];
    rand::rng().fill_bytes(&mut bytes);
    ConnectionId::from_bytes(bytes)
}

#[cfg(test)]
mod address_slot_tests {
    use super::*;

    #[test]
    fn the_connections_of_a_64_network_share_its_slots() {
        let slots = Arc::new(AddressSlots::default());
        let first: IpAddr = "2001:db8::1".parse().expect("v6");
        let neighbour: IpAddr = "2001:db8::ffff:2".parse().expect("v6");
        let elsewhere: IpAddr = "2001:db8:0:1::1".parse().expect("v6");
        let held = slots.take(first, 2).expect("a slot");
        let _second = slots.take(neighbour, 2).expect("a slot");
        assert!(slots.take(neighbour, 2).is_none(), "its /64 holds two");
        assert!(slots.take(elsewhere, 2).is_some(), "another /64");
        drop(held);
        assert!(slots.take(neighbour, 2).is_some(), "a slot is free again");
    }
}
