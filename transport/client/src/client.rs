//! The client: connect, call reducers, subscribe, and read the live cache.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use worldline_transport::{
    ClientMessage, DEFAULT_MAX_FRAME, DEFAULT_MAX_MESSAGE, PROTOCOL_VERSION, ProcedureStatus,
    ReducerEvent, ReducerStatus, ServerMessage, TableRows, TableUpdate,
};

use crate::cache::{Applied, ClientCache};
use crate::callbacks::{CallbackId, Registry, RowFn, RowKind, UpdateFn};
use crate::error::ClientError;
use crate::link::{self, LinkReader, LinkWriter, QuicSocket};
use crate::tls::Trust;

/// How long `connect` may take unless configured otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server may stay silent unless configured otherwise.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many messages the writer sends at most in one flush.
const BURST: usize = 256;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// QUIC to `addr`, presenting `server_name` for TLS.
    Quic {
        /// The server's UDP address.
        addr: SocketAddr,
        /// The name the certificate must carry (with [`Trust::Certificates`]).
        server_name: String,
        /// Which certificates to accept.
        trust: Trust,
    },
    /// WebSocket, e.g. `ws://127.0.0.1:3000/v1/ws`.
    WebSocket {
        /// The endpoint's URL.
        url: String,
    },
}

/// Everything [`Client::connect`] needs.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// The database's name.
    pub database: String,
    /// A token from an earlier connection, to be the same identity; `None`
    /// asks the server for a new identity.
    pub token: Option<String>,
    /// The largest frame accepted from the server, in bytes. It must be at
    /// least the server's limit (`Welcome.max_frame_bytes`, 4 MiB unless
    /// configured otherwise), or `connect` fails saying so.
    pub max_frame: u32,
    /// The largest whole message accepted from the server, in bytes, once
    /// the fragments of a message split to fit frames are put back together
    /// (the smaller of this and what the server advertises in `Welcome`).
    pub max_message: u32,
    /// How long the server may stay silent before the connection is taken
    /// as lost (pending requests then fail with [`ClientError::Closed`]),
    /// and how long [`Client::close`] waits for the answers to requests
    /// already made, then for queued messages to go out.
    /// The client sends keep-alives (QUIC) or pings (WebSocket) at a third
    /// of it (at most every 5 s), which a live server answers, so a live
    /// server is never silent that long. On QUIC the effective timeout is
    /// the smaller of this and the server's.
    pub idle_timeout: Duration,
    /// How long [`Client::connect`] may take, from opening the connection
    /// to the server's `Welcome`.
    pub connect_timeout: Duration,
    /// The UDP socket a QUIC connection goes over: `None` opens one for
    /// the connection alone; see [`QuicSocket`] to share one.
    pub quic_socket: Option<QuicSocket>,
}

impl ConnectOptions {
    /// QUIC to `addr` (server name `localhost`).
    pub fn quic(addr: SocketAddr, trust: Trust, database: impl Into<String>) -> Self {
        Self::new(
            Endpoint::Quic {
                addr,
                server_name: "localhost".into(),
                trust,
            },
            database,
        )
    }

    /// WebSocket to `url`.
    pub fn websocket(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self::new(Endpoint::WebSocket { url: url.into() }, database)
    }

    /// The same options, connecting as the identity `token` proves.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The same options with another [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// The same options with another [`idle_timeout`](Self::idle_timeout).
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// The same options, a QUIC connection going over `socket` (shared
    /// with the other connections that use it) instead of a socket of its own.
    pub fn with_quic_socket(mut self, socket: QuicSocket) -> Self {
        self.quic_socket = Some(socket);
        self
    }

    fn new(endpoint: Endpoint, database: impl Into<String>) -> Self {
        Self {
            endpoint,
            database: database.into(),
            token: None,
            max_frame: DEFAULT_MAX_FRAME,
            max_message: DEFAULT_MAX_MESSAGE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            quic_socket: None,
        }
    }
}

/// How a reducer call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// Committed, or why not.
    pub status: ReducerStatus,
    /// How long the reducer ran on the server.
    pub duration: Duration,
}

/// How a procedure call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureOutcome {
    /// The returned value's postcard bytes, or why there is none.
    pub status: ProcedureStatus,
    /// How long the procedure ran on the server.
    pub duration: Duration,
}

/// A subscribed set of queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuerySetId(pub u32);

/// What the server sent that changed the cache or the connection, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A subscription was applied; its rows are in the cache.
    SubscribeApplied {
        /// The query set.
        query_set: QuerySetId,
        /// Its rows, per table.
        tables: Vec<TableRows>,
    },
    /// A subscription ended, answering [`Client::unsubscribe`] or because
    /// the server ended it (a hot swap made one of its queries invalid, such
    /// as one on a table made private: an [`Event::Error`] saying so
    /// follows); its rows left the cache.
    UnsubscribeApplied {
        /// The query set.
        query_set: QuerySetId,
        /// The rows it held.
        tables: Vec<TableRows>,
    },
    /// A committed transaction changed subscribed rows.
    TransactionUpdate {
        /// The changes per table.
        tables: Vec<TableUpdate>,
        /// The reducer call behind it.
        event: ReducerEvent,
    },
    /// The server reported a problem with something this client sent, or
    /// why it ended a subscription.
    Error {
        /// What.
        message: String,
    },
    /// The connection ended.
    Disconnected {
        /// Why.
        reason: String,
    },
}

/// Requests waiting for their answer.
#[derive(Default)]
struct Pending {
    calls: HashMap<u32, oneshot::Sender<Result<CallOutcome, ClientError>>>,
    procedures: HashMap<u32, oneshot::Sender<Result<ProcedureOutcome, ClientError>>>,
    queries: HashMap<u32, oneshot::Sender<Result<Vec<TableRows>, ClientError>>>,
    subscribes: HashMap<u32, oneshot::Sender<Result<(), ClientError>>>,
    unsubscribes: HashMap<u32, oneshot::Sender<Result<(), ClientError>>>,
}

impl Pending {
    /// Whether no request waits for its answer.
    fn is_empty(&self) -> bool {
        self.calls.is_empty()
            && self.procedures.is_empty()
            && self.queries.is_empty()
            && self.subscribes.is_empty()
            && self.unsubscribes.is_empty()
    }
}

struct State {
    cache: ClientCache,
    pending: Pending,
    events: Option<mpsc::UnboundedSender<Event>>,
    events_taken: bool,
    closed: Option<String>,
}

/// What the writer task is asked to do.
enum Outgoing {
    Reliable(ClientMessage),
    Unreliable(ClientMessage),
    Close(oneshot::Sender<()>),
}

struct Inner {
    identity: [u8; 32],
    token: String,
    connection_id: [u8; 16],
    outgoing: mpsc::UnboundedSender<Outgoing>,
    state: Mutex<State>,
    callbacks: Registry,
    next_id: AtomicU32,
    /// How long [`Client::close`] waits for owed answers, then for the writer.
    idle_timeout: Duration,
    /// Set once [`Client::close`] began: no new requests are taken.
    closing: AtomicBool,
    /// Woken, while closing, when answers arrive or the connection ends.
    settled: Notify,
    /// The largest message the server accepts (from its `Welcome`).
    max_frame_bytes: u32,
    /// The writer and reader tasks, to stop them when closing cannot wait.
    tasks: OnceLock<[AbortHandle; 2]>,
}

/// What the server's `Welcome` said.
struct Welcome {
    identity: [u8; 32],
    token: String,
    connection_id: [u8; 16],
    max_frame_bytes: u32,
    max_message_bytes: u32,
}

/// Opens the connection, says `Hello` and reads the `Welcome`.
async fn handshake(
    options: &ConnectOptions,
) -> Result<(LinkWriter, LinkReader, Welcome), ClientError> {
    let idle_timeout = options.idle_timeout;
    if idle_timeout < Duration::from_millis(1) {
        return Err(ClientError::Connect(format!(
            "idle timeout {idle_timeout:?} is too short: at least 1 ms"
        )));
    }
    let (mut writer, mut reader) = match &options.endpoint {
        Endpoint::Quic {
            addr,
            server_name,
            trust,
        } => {
            link::quic(
                *addr,
                server_name,
                trust,
                options.quic_socket.as_ref(),
                options.max_frame,
                options.idle_timeout,
            )
            .await?
        }
        Endpoint::WebSocket { url } => {
            link::websocket(url, options.max_frame, options.idle_timeout).await?
        }
    };
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        database: options.database.clone(),
        token: options.token.clone(),
    };
    writer.send(&hello).await.map_err(ClientError::Connect)?;
    let welcome = match reader.next().await {
        Ok(ServerMessage::Welcome {
            identity,
            token,
            connection_id,
            max_frame_bytes,
            max_message_bytes,
            ..
        }) => Welcome {
            identity,
            token,
            connection_id,
            max_frame_bytes,
            max_message_bytes,
        },
        Ok(ServerMessage::Error { message, .. }) => return Err(ClientError::Rejected(message)),
        Ok(other) => {
            return Err(ClientError::Protocol(format!(
                "expected Welcome, got {other:?}"
            )));
        }
        Err(reason) => return Err(ClientError::Closed(reason)),
    };
    if welcome.max_frame_bytes > options.max_frame {
        return Err(ClientError::Connect(format!(
            "the server sends frames of up to {} bytes, more than this client accepts ({} bytes): \
             raise ConnectOptions::max_frame",
            welcome.max_frame_bytes, options.max_frame
        )));
    }
    Ok((writer, reader, welcome))
}

/// A connection to one database. Cheap to clone; every clone is the same
/// connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects, says `Hello`, and waits for the server's `Welcome`, for
    /// at most [`ConnectOptions::connect_timeout`].
    pub async fn connect(options: ConnectOptions) -> Result<Self, ClientError> {
        let timeout = options.connect_timeout;
        let (writer, mut reader, welcome) = tokio::time::timeout(timeout, handshake(&options))
            .await
            .map_err(|_| {
                ClientError::Connect(format!(
                    "no connection and Welcome within {timeout:?} (is the server there, and a \
                     Worldline server?)"
                ))
            })??;
        let (outgoing, outgoing_receiver) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            identity: welcome.identity,
            token: welcome.token,
            connection_id: welcome.connection_id,
            outgoing,
            state: Mutex::new(State {
                cache: ClientCache::new(),
                pending: Pending::default(),
                events: None,
                events_taken: false,
                closed: None,
            }),
            callbacks: Registry::default(),
            next_id: AtomicU32::new(1),
            idle_timeout: options.idle_timeout,
            closing: AtomicBool::new(false),
            settled: Notify::new(),
            max_frame_bytes: welcome.max_frame_bytes,
            tasks: OnceLock::new(),
        });
        let keep_alive = link::keep_alive_interval(options.idle_timeout);
        let writing = tokio::spawn(write_loop(writer, outgoing_receiver, keep_alive));
        // The server sends no whole message larger than it advertised.
        reader.limit_messages(welcome.max_message_bytes.min(options.max_message));
        let reading = tokio::spawn(read_loop(ReaderExit::new(&inner), reader));
        let _ = inner
            .tasks
            .set([writing.abort_handle(), reading.abort_handle()]);
        Ok(Self { inner })
    }

    /// This client's identity.
    pub fn identity(&self) -> [u8; 32] {
        self.inner.identity
    }

    /// The token proving the identity; pass it to
    /// [`ConnectOptions::with_token`] to connect as the same identity again.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// This connection's id.
    pub fn connection_id(&self) -> [u8; 16] {
        self.inner.connection_id
    }

    /// Whether the connection is still open.
    pub fn is_connected(&self) -> bool {
        self.state().closed.is_none()
    }

    /// Calls a reducer with postcard-encoded arguments and waits for its outcome.
    pub async fn call_raw(&self, reducer: &str, args: Vec<u8>) -> Result<CallOutcome, ClientError> {
        let request_id = self.next_id();
        let message = self.fitting(ClientMessage::CallReducer {
            request_id,
            reducer: reducer.into(),
            args: ByteBuf::from(args),
        })?;
        let (reply, answer) = oneshot::channel();
        self.open_state()?.pending.calls.insert(request_id, reply);
        self.send(Outgoing::Reliable(message))?;
        self.wait(answer).await
    }

    /// Calls a reducer with its arguments as a tuple (`&(a, b)`; `&()` for
    /// none) and waits for its outcome.
    pub async fn call<A: Serialize>(
        &self,
        reducer: &str,
        args: &A,
    ) -> Result<CallOutcome, ClientError> {
        self.call_raw(reducer, encode(args)?).await
    }

    /// Calls a procedure with postcard-encoded arguments and waits for its
    /// outcome: the postcard bytes of its return value, or why it failed.
    pub async fn call_procedure_raw(
        &self,
        procedure: &str,
        args: Vec<u8>,
    ) -> Result<ProcedureOutcome, ClientError> {
        let request_id = self.next_id();
        let message = self.fitting(ClientMessage::CallProcedure {
            request_id,
            procedure: procedure.into(),
            args: ByteBuf::from(args),
        })?;
        let (reply, answer) = oneshot::channel();
        self.open_state()?
            .pending
            .procedures
            .insert(request_id, reply);
        self.send(Outgoing::Reliable(message))?;
        self.wait(answer).await
    }

    /// Calls a procedure with its arguments as a tuple (`&(a, b)`; `&()`
    /// for none) and decodes its return value as `R`. A procedure that
    /// failed is [`ClientError::ProcedureFailed`].
    pub async fn call_procedure<A: Serialize, R: DeserializeOwned>(
        &self,
        procedure: &str,
        args: &A,
    ) -> Result<R, ClientError> {
        let outcome = self.call_procedure_raw(procedure, encode(args)?).await?;
        match outcome.status {
            ProcedureStatus::Returned(bytes) => {
                postcard::from_bytes(&bytes).map_err(|e| ClientError::ReturnDecode {
                    procedure: procedure.to_owned(),
                    message: e.to_string(),
                })
            }
            ProcedureStatus::Failed(message) => Err(ClientError::ProcedureFailed(message)),
        }
    }

    /// Calls a reducer without waiting or asking for an answer; over QUIC
    /// the call travels as a datagram when it fits, and may be lost.
    pub async fn call_unreliable<A: Serialize>(
        &self,
        reducer: &str,
        args: &A,
    ) -> Result<(), ClientError> {
        let message = self.fitting(ClientMessage::CallReducerUnreliable {
            reducer: reducer.into(),
            args: ByteBuf::from(encode(args)?),
        })?;
        drop(self.open_state()?);
        self.send(Outgoing::Unreliable(message))
    }

    /// Subscribes to `queries` as one set; returns once their rows are in
    /// the cache. Either every query is subscribed or none.
    pub async fn subscribe(&self, queries: &[&str]) -> Result<QuerySetId, ClientError> {
        let id = self.next_id();
        let message = self.fitting(ClientMessage::Subscribe {
            query_set_id: id,
            queries: queries.iter().map(|q| q.to_string()).collect(),
        })?;
        let (reply, answer) = oneshot::channel();
        self.open_state()?.pending.subscribes.insert(id, reply);
        self.send(Outgoing::Reliable(message))?;
        self.wait(answer).await?;
        Ok(QuerySetId(id))
    }

    /// Ends a subscription; returns once its rows have left the cache.
    pub async fn unsubscribe(&self, set: QuerySetId) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.open_state()?.pending.unsubscribes.insert(set.0, reply);
        self.send(Outgoing::Reliable(ClientMessage::Unsubscribe {
            query_set_id: set.0,
        }))?;
        self.wait(answer).await
    }

    /// Runs a query once, without subscribing.
    pub async fn query(&self, sql: &str) -> Result<Vec<TableRows>, ClientError> {
        let request_id = self.next_id();
        let message = self.fitting(ClientMessage::Query {
            request_id,
            query: sql.into(),
        })?;
        let (reply, answer) = oneshot::channel();
        self.open_state()?.pending.queries.insert(request_id, reply);
        self.send(Outgoing::Reliable(message))?;
        self.wait(answer).await
    }

    /// The cached rows of `table` (postcard bytes), each once.
    pub fn rows_raw(&self, table: &str) -> Vec<Vec<u8>> {
        self.state().cache.rows(table)
    }

    /// The cached rows of `table`, decoded as `T` (a type whose fields
    /// mirror the table's columns).
    pub fn rows<T: DeserializeOwned>(&self, table: &str) -> Result<Vec<T>, ClientError> {
        self.rows_raw(table)
            .iter()
            .map(|row| {
                postcard::from_bytes(row).map_err(|e| ClientError::Decode {
                    table: table.into(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Runs `f` for every row that appears in `table`'s cache, until
    /// [`remove_callback`](Self::remove_callback) is called with the id returned.
    ///
    /// Callbacks run on the task reading from the server, one at a time, in
    /// the order the changes arrived, after the cache has been updated. They
    /// may use the client (read the cache, register or remove callbacks,
    /// spawn tasks that call reducers) but should return quickly, and must
    /// not block waiting for an answer from the server: nothing more is read
    /// until they return. A callback registered while callbacks run is first
    /// called for the next message. A callback that panics is logged and
    /// stays registered; the connection, the cache and pending calls are
    /// unaffected.
    pub fn on_insert<T, F>(&self, table: &str, f: F) -> CallbackId
    where
        T: DeserializeOwned,
        F: FnMut(&T) + Send + 'static,
    {
        let callback = typed_row_callback(table, f);
        self.inner
            .callbacks
            .add_row(RowKind::Insert, table, callback)
    }

    /// Runs `f` for every row that leaves `table`'s cache, until removed;
    /// see [`on_insert`](Self::on_insert) for how callbacks run.
    pub fn on_delete<T, F>(&self, table: &str, f: F) -> CallbackId
    where
        T: DeserializeOwned,
        F: FnMut(&T) + Send + 'static,
    {
        let callback = typed_row_callback(table, f);
        self.inner
            .callbacks
            .add_row(RowKind::Delete, table, callback)
    }

    /// Runs `f(old, new)` for every row of `table` changed in place, until
    /// removed; see [`on_insert`](Self::on_insert) for how callbacks run.
    pub fn on_update<T, F>(&self, table: &str, mut f: F) -> CallbackId
    where
        T: DeserializeOwned,
        F: FnMut(&T, &T) + Send + 'static,
    {
        let table_name = table.to_owned();
        let callback: Box<UpdateFn> = Box::new(move |old, new| {
            if let (Some(old), Some(new)) =
                (decode::<T>(&table_name, old), decode::<T>(&table_name, new))
            {
                f(&old, &new);
            }
        });
        self.inner.callbacks.add_update(table, callback)
    }

    /// Runs `f` for the reducer event of every transaction update received
    /// (before the row callbacks of that update), until removed; see
    /// [`on_insert`](Self::on_insert) for how callbacks run.
    pub fn on_reducer_event<F>(&self, f: F) -> CallbackId
    where
        F: FnMut(&ReducerEvent) + Send + 'static,
    {
        self.inner.callbacks.add_event(Box::new(f))
    }

    /// Unregisters the callback `id`; `false` if it was already removed.
    /// Once this returns the callback is not started again, though a call
    /// already running (on the reader task) finishes. A callback may remove
    /// itself.
    pub fn remove_callback(&self, id: CallbackId) -> bool {
        self.inner.callbacks.remove(id)
    }

    /// The stream of [`Event`]s from now on; `None` after the first call.
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<Event>> {
        let mut state = self.state();
        if state.events_taken {
            return None;
        }
        state.events_taken = true;
        let (sender, receiver) = mpsc::unbounded_channel();
        state.events = Some(sender);
        Some(receiver)
    }

    /// Closes the connection gracefully: requests made from now on fail
    /// with [`ClientError::Closed`], while requests already made (calls,
    /// procedure calls, queries, subscribes and unsubscribes a task still
    /// awaits) get their answers first, as if the connection stayed open,
    /// for at most [`ConnectOptions::idle_timeout`]. Then the messages
    /// still queued are sent, the client finishes its side and closes the
    /// connection, and the server runs the module's disconnect reducer. If
    /// they cannot be sent within another idle timeout (a server that
    /// stopped reading), the connection is dropped. Either way, requests
    /// still unanswered then fail (their outcome unknown: a call may have
    /// run) and every callback is dropped.
    pub async fn close(&self) {
        self.wait_for_owed_answers().await;
        let (done, closed) = oneshot::channel();
        if self.inner.outgoing.send(Outgoing::Close(done)).is_ok()
            && tokio::time::timeout(self.inner.idle_timeout, closed)
                .await
                .is_err()
        {
            for task in self.inner.tasks.get().into_iter().flatten() {
                task.abort();
            }
        }
        self.inner.close("the client closed the connection".into());
    }

    /// Stops taking requests and waits, at most the idle timeout, until
    /// every request made has its answer or the connection ends.
    async fn wait_for_owed_answers(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + self.inner.idle_timeout;
        loop {
            let settled = self.inner.settled.notified();
            tokio::pin!(settled);
            // Registered before looking, so no answer slips in between.
            settled.as_mut().enable();
            {
                let state = self.state();
                if state.closed.is_some() || state.pending.is_empty() {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return;
            }
        }
    }

    fn next_id(&self) -> u32 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }

    /// The state, or why requests can no longer be made. Checked under
    /// the lock, so that [`close`](Self::close) sees every request made
    /// before it began among the pending ones.
    fn open_state(&self) -> Result<MutexGuard<'_, State>, ClientError> {
        let state = self.state();
        match &state.closed {
            Some(reason) => Err(ClientError::Closed(reason.clone())),
            None if self.inner.closing.load(Ordering::SeqCst) => Err(ClientError::Closed(
                "the client is closing the connection".into(),
            )),
            None => Ok(state),
        }
    }

    /// `message`, if it fits the server's frame limit: one that does not
    /// is refused here, since the server would end the connection for it.
    fn fitting(&self, message: ClientMessage) -> Result<ClientMessage, ClientError> {
        let len = postcard::experimental::serialized_size(&message)
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        let max = self.inner.max_frame_bytes;
        if len as u64 > u64::from(max) {
            return Err(ClientError::TooLarge { len, max });
        }
        Ok(message)
    }

    fn send(&self, message: Outgoing) -> Result<(), ClientError> {
        self.inner
            .outgoing
            .send(message)
            .map_err(|_| ClientError::Closed("the connection is closed".into()))
    }

    async fn wait<T>(
        &self,
        answer: oneshot::Receiver<Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        answer
            .await
            .unwrap_or_else(|_| Err(ClientError::Closed("the connection is closed".into())))
    }
}

impl Inner {
    /// The state. No user code runs while it is held, so it is never
    /// poisoned by a callback; recover anyway rather than stop the client.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the connection closed for `reason`: every pending request
    /// fails, the event stream hears why, and every callback is dropped
    /// (none would be called again; this also frees clients they hold).
    fn close(&self, reason: String) {
        let mut state = self.state();
        if state.closed.is_some() {
            return;
        }
        state.closed = Some(reason.clone());
        let pending = std::mem::take(&mut state.pending);
        let closed = || ClientError::Closed(reason.clone());
        for reply in pending.calls.into_values() {
            let _ = reply.send(Err(closed()));
        }
        for reply in pending.procedures.into_values() {
            let _ = reply.send(Err(closed()));
        }
        for reply in pending.queries.into_values() {
            let _ = reply.send(Err(closed()));
        }
        for reply in pending.subscribes.into_values() {
            let _ = reply.send(Err(closed()));
        }
        for reply in pending.unsubscribes.into_values() {
            let _ = reply.send(Err(closed()));
        }
        if let Some(events) = &state.events {
            let _ = events.send(Event::Disconnected { reason });
        }
        drop(state);
        self.settled.notify_waiters();
        self.callbacks.clear();
    }
}

fn encode<A: Serialize>(args: &A) -> Result<Vec<u8>, ClientError> {
    postcard::to_allocvec(args).map_err(|e| ClientError::Encode(e.to_string()))
}

/// A callback on row bytes that decodes them as `T` for `f`.
fn typed_row_callback<T, F>(table: &str, mut f: F) -> Box<RowFn>
where
    T: DeserializeOwned,
    F: FnMut(&T) + Send + 'static,
{
    let table = table.to_owned();
    Box::new(move |row| {
        if let Some(row) = decode::<T>(&table, row) {
            f(&row);
        }
    })
}

fn decode<T: DeserializeOwned>(table: &str, row: &[u8]) -> Option<T> {
    match postcard::from_bytes(row) {
        Ok(row) => Some(row),
        Err(e) => {
            tracing::warn!("a callback for `{table}` skipped a row that does not decode: {e}");
            None
        }
    }
}

/// Sends what the client asks, in order, until it closes.
async fn write_loop(
    mut writer: LinkWriter,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    keep_alive: Duration,
) {
    let mut ticks = tokio::time::interval(keep_alive);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            next = outgoing.recv() => next,
            _ = ticks.tick() => {
                if let Err(e) = writer.keep_alive().await {
                    tracing::debug!("pinging the server failed: {e}");
                    break;
                }
                continue;
            }
        };
        let Some(next) = next else {
            break;
        };
        // Everything asked meanwhile goes out with it, flushed once.
        let mut next = Some(next);
        let mut fed = 0;
        let mut yielded = false;
        let mut sent = Ok(());
        while let Some(message) = next.take() {
            fed += 1;
            sent = match message {
                Outgoing::Reliable(message) => writer.feed(&message).await,
                Outgoing::Unreliable(message) => writer.send_unreliable(&message).await,
                Outgoing::Close(done) => {
                    writer.close().await;
                    let _ = done.send(());
                    return;
                }
            };
            if sent.is_err() || fed >= BURST {
                break;
            }
            next = outgoing.try_recv().ok();
            if next.is_none() && !yielded {
                // Tasks woken by the replies just read are often about to
                // call: let them run once, so that their calls share this
                // write instead of a system call each.
                yielded = true;
                tokio::task::yield_now().await;
                next = outgoing.try_recv().ok();
            }
        }
        if sent.is_ok() {
            sent = writer.flush().await;
        }
        if let Err(e) = sent {
            tracing::debug!("sending to the server failed: {e}");
            break;
        }
    }
    writer.close().await;
}

/// Closes the client's connection state when the reader task ends, however
/// it ends (the server closed, the runtime shut down, a bug panicked), so
/// pending requests never wait forever.
struct ReaderExit {
    inner: Weak<Inner>,
    reason: Option<String>,
}

impl ReaderExit {
    fn new(inner: &Arc<Inner>) -> Self {
        Self {
            inner: Arc::downgrade(inner),
            reason: None,
        }
    }
}

impl Drop for ReaderExit {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let reason = self
                .reason
                .take()
                .unwrap_or_else(|| "the client stopped reading from the server".into());
            inner.close(reason);
        }
    }
}

/// Applies what the server sends until the connection ends or the client is dropped.
async fn read_loop(mut exit: ReaderExit, mut reader: LinkReader) {
    exit.reason = Some(loop {
        let message = reader.next().await;
        let Some(inner) = exit.inner.upgrade() else {
            return;
        };
        match message {
            Ok(message) => {
                let ended = handle(&inner, message);
                if inner.closing.load(Ordering::SeqCst) {
                    // `close` waits for answers: this may have been one.
                    inner.settled.notify_waiters();
                }
                if let Some(reason) = ended {
                    break reason;
                }
            }
            Err(reason) => break reason,
        }
    });
}

/// Applies one server message, then runs the callbacks it concerns with no
/// lock held; `Some(reason)` if it ends the connection.
fn handle(inner: &Inner, message: ServerMessage) -> Option<String> {
    let mut state = inner.state();
    let (applied, event, reducer_event) = match message {
        ServerMessage::SubscribeApplied {
            query_set_id,
            tables,
        } => {
            let applied = state.cache.add_rows(&tables);
            if let Some(reply) = state.pending.subscribes.remove(&query_set_id) {
                let _ = reply.send(Ok(()));
            }
            let event = Event::SubscribeApplied {
                query_set: QuerySetId(query_set_id),
                tables,
            };
            (applied, event, None)
        }
        ServerMessage::UnsubscribeApplied {
            query_set_id,
            tables,
        } => {
            let applied = state.cache.remove_rows(&tables);
            if let Some(reply) = state.pending.unsubscribes.remove(&query_set_id) {
                let _ = reply.send(Ok(()));
            }
            let event = Event::UnsubscribeApplied {
                query_set: QuerySetId(query_set_id),
                tables,
            };
            (applied, event, None)
        }
        ServerMessage::SubscriptionError {
            query_set_id,
            message,
        } => {
            let pending = &mut state.pending;
            let reply = pending
                .subscribes
                .remove(&query_set_id)
                .or_else(|| pending.unsubscribes.remove(&query_set_id));
            if let Some(reply) = reply {
                let _ = reply.send(Err(ClientError::Subscription(message.clone())));
            }
            (Applied::default(), Event::Error { message }, None)
        }
        ServerMessage::TransactionUpdate { tables, event } => {
            let applied = state.cache.apply(&tables);
            let reducer_event = event.clone();
            let event = Event::TransactionUpdate { tables, event };
            (applied, event, Some(reducer_event))
        }
        ServerMessage::ReducerResult {
            request_id,
            status,
            duration_micros,
        } => {
            if let Some(reply) = state.pending.calls.remove(&request_id) {
                let _ = reply.send(Ok(CallOutcome {
                    status,
                    duration: Duration::from_micros(duration_micros),
                }));
            }
            return None;
        }
        ServerMessage::ProcedureResult {
            request_id,
            status,
            duration_micros,
        } => {
            if let Some(reply) = state.pending.procedures.remove(&request_id) {
                let _ = reply.send(Ok(ProcedureOutcome {
                    status,
                    duration: Duration::from_micros(duration_micros),
                }));
            }
            return None;
        }
        ServerMessage::QueryResult { request_id, result } => {
            if let Some(reply) = state.pending.queries.remove(&request_id) {
                let _ = reply.send(result.map_err(ClientError::Query));
            }
            return None;
        }
        ServerMessage::Error { message, fatal } => {
            if let Some(events) = &state.events {
                let _ = events.send(Event::Error {
                    message: message.clone(),
                });
            }
            return fatal.then_some(message);
        }
        ServerMessage::Welcome { .. } => {
            return Some("the server sent a second Welcome".into());
        }
        ServerMessage::Fragment { .. } => {
            return Some("the server sent a fragment inside a split message".into());
        }
    };
    if applied.missing > 0 {
        tracing::warn!(
            "the server removed {} rows this client did not hold",
            applied.missing
        );
    }
    if let Some(events) = &state.events {
        let _ = events.send(event);
    }
    drop(state);
    inner
        .callbacks
        .calls(reducer_event.as_ref(), &applied.changes)
        .run();
    None
}
