//! One thread per database: it owns the [`Database`] and its subscriptions,
//! runs every command in arrival order, and releases the resulting messages
//! only once the transactions behind them are durable.
//!
//! The thread never waits for the disk: while the commit log's thread
//! fsyncs earlier transactions (many at once: group commit across
//! connections), it runs the next commands. Each message waits in a queue
//! with the newest transaction run before it, and goes out, in order, as
//! soon as the commit log reports that transaction durable; a
//! `TransactionUpdate` to a connection sent one lately may then wait a
//! little longer (at most [`UPDATE_DELAY`], and never while the thread is
//! idle) to go out with its connection's next messages, for one wake-up of
//! the connection's writer instead of one per transaction.

mod admin;
mod procedure;
mod schedules;
mod turns;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use worldline_host::datastore::{Lifecycle, ModuleSchema, Row, TableId};
use worldline_host::{CallContext, CallError, ConnectionId, Database, Identity, ReducerOutcome};
use worldline_subscriptions::{
    CompiledQuery, QueryError, QueryId, QueryUpdate, ROW_WORK, RowsRefused, RowsTooLarge,
    SubscriptionEngine, WorkMeter, compile, query_excerpt, row_cost,
};
use worldline_transport::{
    ClientMessage, ProcedureStatus, ReducerEvent, ReducerStatus, RowUpdate, ServerMessage,
    TableRows, TableUpdate,
};

use crate::error::ServerError;
use crate::outbound::{Outbound, OutgoingBudget, Payload};

pub(crate) use admin::{Admin, CallAnswer, Description, allow_list_text};
pub(crate) use procedure::ProcedureCommand;
use schedules::Wake;
use turns::Turns;

/// Identifies one connection within the server.
pub(crate) type ConnKey = u64;

/// How many commands run before the messages that are durable are released.
const MAX_BATCH: usize = 512;

/// How long, once the server begins to stop, a database keeps running
/// `client_disconnected` for the connections closed; after that the rest
/// close without it, as they would in a crash.
const SHUTDOWN_HOOKS: Duration = Duration::from_secs(5);

/// The longest the thread runs commands before it releases the messages
/// that are durable: an answer waits at most about this long (and one turn
/// of each other connection, see [`turns`]) behind a backlog.
const BATCH_TIME: Duration = Duration::from_millis(1);
/// How long one connection's turn lasts (see [`turns`]): a burst of cheap
/// calls runs together, as it arrived; a command that takes longer ends
/// the turn after it.
const TURN_TIME: Duration = Duration::from_micros(100);
/// The work one `Query`, or one `Subscribe`'s initial rows, of a client
/// other than the database's owner may take on its thread, in the units of
/// a [`WorkMeter`]: each row read, matching or not, counts [`ROW_WORK`]
/// and the comparisons of its condition. Some 40 to 60 ms of the thread
/// on the machine of BENCHMARKS.md: a scan of about 440,000 rows with one
/// comparison, or of 6,500 with 600 (a condition of 600 comparisons over
/// 100,000 rows took half a second).
/// The owner's queries are not bounded.
pub(crate) const MAX_QUERY_WORK: u64 = 4_000_000;

/// The meter a query of a client (the database's `owner` or not) reads with.
fn query_meter(owner: bool) -> WorkMeter {
    WorkMeter::new(if owner { u64::MAX } else { MAX_QUERY_WORK })
}

/// How many query sets one connection may hold at once.
const MAX_QUERY_SETS: usize = 256;
/// How many queries one `Subscribe` may carry.
const MAX_QUERIES_PER_SET: usize = 64;
/// How many bytes of SQL the query sets one connection holds may add up
/// to: compiled queries take a few times their text, and each may be up to
/// 16 KiB, so the counts above alone would let one connection hold
/// hundreds of megabytes.
const MAX_SUBSCRIBED_SQL_BYTES: usize = 256 << 10;
/// How many commands may wait in a database's queue before its thread
/// takes them in (all it finds, each waiting for its connection's turn:
/// bounded by [`CONNECTION_COMMANDS`] per connection and by
/// [`COMMAND_QUEUE_BYTES`]).
const COMMAND_QUEUE: usize = 4_096;
/// How many messages one WebSocket or QUIC connection may have waiting for
/// its database's thread; its reader takes no more from the client until
/// one has run (the client then waits under TCP's or QUIC's flow control).
/// So that one connection's backlog, however long, holds up another's
/// message by at most one turn: the other's message reaches its turn as
/// soon as it arrives.
pub(crate) const CONNECTION_COMMANDS: usize = 256;
/// How many bytes of commands (reducer arguments, queries, components) may
/// wait for a database's thread; a sender waits while they would pass it.
/// A command larger than this waits for the queue to empty.
pub(crate) const COMMAND_QUEUE_BYTES: usize = 64 << 20;
/// Once the messages and transactions' changes waiting for durability (in
/// the outgoing queue and the commit log's queue) hold this many bytes, the
/// database takes no more commands until some are durable and released.
pub(crate) const PENDING_BYTES: usize = 64 << 20;
/// What each waiting message counts for in [`PENDING_BYTES`] beyond its bytes.
const PENDING_OVERHEAD: usize = 64;
/// What a command counts for in [`COMMAND_QUEUE_BYTES`] beyond its payload.
const COMMAND_OVERHEAD: usize = 64;

/// How long the database's thread looks for work before it sleeps (see
/// [`Actor::spin`]).
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(100);

/// Most messages waiting for the disk for which the database's thread
/// still spins (see [`Actor::spin`]). With more waiting, the log is busy
/// with a sync of many transactions that takes about as long as a spin,
/// and the commands that keep the thread busy arrive anyway: spinning only
/// takes CPU from the connections' threads (an A/B run at 4 × 16 under
/// `every`: 2–5% more TPS and 0.1 cores less server CPU, 1 × 1 unchanged).
const SPIN_WAITING_LIMIT: usize = 8;

/// The longest a released `TransactionUpdate` waits for its connection's
/// next messages, to be handed over with them; see [`Deferred`].
const UPDATE_DELAY: Duration = Duration::from_millis(4);

/// What [`Actor::spin`] found.
enum Spin {
    /// A command to run.
    Command(Queued),
    /// Waiting messages became durable and were released.
    Released,
    /// Nothing: sleep until something comes.
    Nothing,
}

/// What a connection asks of its database.
pub(crate) enum Command {
    /// A client finished its handshake: run `client_connected`, then
    /// register the connection and send `Welcome` (or refuse it).
    Connect {
        key: ConnKey,
        identity: Identity,
        connection_id: ConnectionId,
        token: String,
        outbound: Outbound,
        /// The protocol version agreed in `Hello`, which `Welcome` names.
        version: u16,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A message from a connected client (anything but `Hello`).
    Client {
        key: ConnKey,
        message: ClientMessage,
    },
    /// A message from a connected client that was ignored (it did not
    /// decode, or is not one of its protocol version): send it the
    /// non-fatal `Error` saying why, after the answers to what it sent
    /// before.
    Ignored { key: ConnKey, reason: String },
    /// The connection ended: drop its subscriptions, run `client_disconnected`.
    Disconnect { key: ConnKey },
    /// The client finished sending (a clean end of its QUIC stream): once
    /// every message queued for it so far has been handed to its writer
    /// (the answers it is owed, released as their transactions become
    /// durable), disconnect it as [`Command::Disconnect`] does.
    Finish { key: ConnKey },
    /// What the client sent could not be read (a frame over the limit, a
    /// broken frame): the session reads no more. Once every message queued
    /// for it so far has been handed to its writer, send it the fatal
    /// `Error` saying why, close the connection and disconnect it as
    /// [`Command::Disconnect`] does.
    Fail { key: ConnKey, reason: String },
    /// A request of the HTTP API.
    Admin(Admin),
    /// A procedure call's start, or its transaction.
    Procedure(ProcedureCommand),
}

impl Command {
    /// The connection whose turn the command takes (see [`turns`]); none
    /// for a request from no connection.
    fn connection(&self) -> Option<ConnKey> {
        match self {
            Command::Connect { key, .. }
            | Command::Client { key, .. }
            | Command::Ignored { key, .. }
            | Command::Disconnect { key }
            | Command::Finish { key }
            | Command::Fail { key, .. } => Some(*key),
            Command::Admin(_) | Command::Procedure(_) => None,
        }
    }

    /// Roughly how many bytes the command holds while it waits.
    fn bytes(&self) -> usize {
        let payload = match self {
            Command::Connect { token, .. } => token.len(),
            Command::Client { message, .. } => match message {
                ClientMessage::CallReducer { reducer, args, .. }
                | ClientMessage::CallReducerUnreliable { reducer, args }
                | ClientMessage::CallProcedure {
                    procedure: reducer,
                    args,
                    ..
                } => reducer.len() + args.len(),
                ClientMessage::Subscribe { queries, .. } => queries.iter().map(String::len).sum(),
                ClientMessage::Query { query, .. } => query.len(),
                ClientMessage::Hello { .. } | ClientMessage::Unsubscribe { .. } => 0,
            },
            Command::Ignored { reason, .. } | Command::Fail { reason, .. } => reason.len(),
            Command::Disconnect { .. } | Command::Finish { .. } => 0,
            Command::Admin(request) => request.bytes(),
            Command::Procedure(command) => command.bytes(),
        };
        payload + COMMAND_OVERHEAD
    }
}

/// A command and its share of the queue's byte budget (and of its
/// connection's [`CONNECTION_COMMANDS`], for a client's message), returned
/// when the command has run.
struct Queued {
    command: Command,
    _budget: OwnedSemaphorePermit,
    _connection_share: Option<OwnedSemaphorePermit>,
}

/// A way to send commands to a running database.
#[derive(Clone)]
pub(crate) struct DatabaseHandle {
    name: Arc<str>,
    commands: mpsc::Sender<Queued>,
    /// Bytes of [`COMMAND_QUEUE_BYTES`] not taken by waiting commands.
    budget: Arc<Semaphore>,
}

impl DatabaseHandle {
    /// Queues a command, waiting while the database's queue is full (in
    /// commands or in bytes).
    pub(crate) async fn send(&self, command: Command) -> Result<(), ServerError> {
        self.send_holding(command, None).await
    }

    /// Queues a client's message as [`send`](Self::send) does, holding one
    /// of `share`'s permits (its connection's [`CONNECTION_COMMANDS`]) until
    /// it has run: waits first while the connection has that many waiting.
    pub(crate) async fn send_sharing(
        &self,
        command: Command,
        share: &Arc<Semaphore>,
    ) -> Result<(), ServerError> {
        let permit = Arc::clone(share)
            .acquire_owned()
            .await
            .map_err(|_| ServerError::DatabaseStopped(self.name.to_string()))?;
        self.send_holding(command, Some(permit)).await
    }

    async fn send_holding(
        &self,
        command: Command,
        connection_share: Option<OwnedSemaphorePermit>,
    ) -> Result<(), ServerError> {
        let stopped = || ServerError::DatabaseStopped(self.name.to_string());
        let cost = command.bytes().min(COMMAND_QUEUE_BYTES);
        let permit = Arc::clone(&self.budget)
            .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
            .await
            .map_err(|_| stopped())?;
        self.commands
            .send(Queued {
                command,
                _budget: permit,
                _connection_share: connection_share,
            })
            .await
            .map_err(|_| stopped())
    }

    /// Queues a request of the HTTP API.
    pub(crate) async fn admin(&self, request: Admin) -> Result<(), ServerError> {
        self.send(Command::Admin(request)).await
    }
}

/// Starts `database`'s thread. It runs until every handle is dropped.
/// `shutdown` turns true when the server begins to stop; `outgoing` is the
/// server's budget for messages to clients, and `max_message` the largest
/// message a client takes.
pub(crate) fn spawn(
    name: &str,
    database: Database,
    shutdown: watch::Receiver<bool>,
    outgoing: Arc<OutgoingBudget>,
    max_message: usize,
) -> Result<(DatabaseHandle, JoinHandle<()>), ServerError> {
    let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
    let budget = Arc::new(Semaphore::new(COMMAND_QUEUE_BYTES));
    let actor = Actor {
        name: name.to_owned(),
        database,
        outgoing,
        engine: SubscriptionEngine::default(),
        query_tables: HashMap::new(),
        subscribers: HashMap::new(),
        connections: HashMap::new(),
        deferring: VecDeque::new(),
        waiting: VecDeque::new(),
        turns: Turns::default(),
        slow_lane: None,
        max_message,
        pending_bytes: 0,
        newest: None,
        durable: Arc::new(Notify::new()),
        stopped: None,
        finished: false,
        shutdown,
        hooks_at_shutdown: None,
    };
    let thread = std::thread::Builder::new()
        .name(format!("db-{name}"))
        .spawn(move || actor.run(receiver))
        .map_err(|source| ServerError::Io {
            path: format!("thread for database {name}"),
            source,
        })?;
    let handle = DatabaseHandle {
        name: name.into(),
        commands,
        budget,
    };
    Ok((handle, thread))
}

/// A connected client as its database sees it.
struct Connection {
    identity: Identity,
    connection_id: ConnectionId,
    outbound: Outbound,
    /// The client's query sets.
    query_sets: HashMap<u32, QuerySet>,
    /// Its `TransactionUpdate`s released but not yet handed to `outbound`.
    deferred: Deferred,
    /// Whether `client_connected` ran for it (the module had the hook when
    /// it connected): if a hot swap added the hook since,
    /// `client_disconnected` does not run for it either.
    greeted: bool,
}

/// A connection's `TransactionUpdate`s that are durable but not yet handed
/// to its writer. Handing a message to an idle writer wakes its task, which
/// costs the database's thread a system call and often its core; a
/// subscriber whose rows change in many transactions would wake it once per
/// transaction. So the updates of a connection that was sent one less than
/// [`UPDATE_DELAY`] ago wait, in order, until the connection gets any other
/// message (which goes out after them), until the oldest has waited
/// [`UPDATE_DELAY`], or until the database's thread has nothing to do, and
/// then go out together, for one wake-up. An update to a connection that
/// had none lately (one commit to many subscribers) goes out at once.
#[derive(Default)]
struct Deferred {
    /// The updates, oldest first.
    payloads: Vec<Payload>,
    /// When the oldest was released.
    since: Option<Instant>,
    /// When updates were last handed to the writer.
    last_sent: Option<Instant>,
}

impl Connection {
    /// Hands the deferred updates, then `payload` if any, to the writer;
    /// `false` if one did not fit (the connection is then being dropped).
    fn hand_over(&mut self, payload: Option<Payload>) -> bool {
        self.deferred.since = None;
        let outbound = &self.outbound;
        // Draining keeps the buffer's room for the next updates.
        self.deferred
            .payloads
            .drain(..)
            .chain(payload)
            .all(|payload| outbound.try_send(payload))
    }
}

/// One `Subscribe` of a connection.
struct QuerySet {
    /// The subscribed queries, one per SQL text.
    ids: Vec<QueryId>,
    /// The SQL, to compile again when the module is swapped.
    sql: Vec<String>,
}

impl QuerySet {
    /// What the set counts for in [`MAX_SUBSCRIBED_SQL_BYTES`].
    fn sql_bytes(&self) -> usize {
        self.sql.iter().map(String::len).sum()
    }
}

/// Runs once the transactions before it are durable, with the reason if
/// the commit log failed first (their outcome is then unknown).
type AfterDurable = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A message to a connection waiting for the transactions before it to be durable.
enum Pending {
    /// An encoded message, sent once they are durable, dropped if the log fails.
    Message(Payload),
    /// A `TransactionUpdate`: as a message, except that once durable it may
    /// wait up to [`UPDATE_DELAY`] for the connection's next messages, to
    /// go out with them (see [`Deferred`]).
    Update(Payload),
    /// The `ReducerResult` of a call that committed in memory: `Committed`
    /// once durable, `OutcomeUnknown` if the commit log fails before
    /// confirming the transaction at `offset` (none: nothing was logged).
    Committed {
        request_id: u32,
        duration_micros: u64,
        offset: Option<u64>,
    },
    /// Drop the connection with this reason once what comes before is
    /// durable (a transaction's update too large to send it).
    Drop(String),
}

/// What waits in the queue for durability.
enum Held {
    /// A message to a connection.
    Message(ConnKey, Pending),
    /// An HTTP reply, with its own transaction's offset if it logged one.
    Reply(Option<u64>, AfterDurable),
    /// The answer to a read (SQL over HTTP), with the offset of the newest
    /// transaction it may have seen: refused as a read of an unavailable
    /// database, not as a call of unknown outcome, if the commit log failed
    /// before that transaction was durable.
    Read(Option<u64>, AfterDurable),
    /// A transaction's record, counted in [`PENDING_BYTES`] until durable.
    Record,
    /// The end of a connection whose client finished sending, or whose
    /// input could not be read (with the fatal `Error` saying why):
    /// everything held for it before this goes out first, then the
    /// `Error`, then it is disconnected.
    Finish(ConnKey, Option<String>),
}

/// An entry of the queue: released once the transaction at `after` (the
/// newest run before it; none: no transaction yet) is durable.
struct Waiting {
    after: Option<u64>,
    /// What it counts for in [`PENDING_BYTES`].
    bytes: usize,
    held: Held,
}

/// What a reducer run for a client did, before durability is awaited.
struct Ran {
    duration_micros: u64,
    /// Where the transaction went in the commit log, if it changed something.
    offset: Option<u64>,
}

struct Actor {
    name: String,
    database: Database,
    /// The server-wide count its messages to clients are made in.
    outgoing: Arc<OutgoingBudget>,
    engine: SubscriptionEngine,
    /// The table each subscribed query returns rows of.
    query_tables: HashMap<QueryId, String>,
    /// For each subscribed query, the connections holding it and how many times.
    subscribers: HashMap<QueryId, BTreeMap<ConnKey, usize>>,
    connections: HashMap<ConnKey, Connection>,
    /// The connections with deferred updates, by when the oldest was
    /// released, oldest first; an entry whose time is not its connection's
    /// [`Deferred::since`] any more is stale.
    deferring: VecDeque<(Instant, ConnKey)>,
    /// Messages, HTTP replies and records waiting, in the order they were
    /// made, for the transactions before them to be durable.
    waiting: VecDeque<Waiting>,
    /// Commands taken from the queue, waiting for their connection's turn.
    turns: Turns<Queued>,
    /// The connection (or request) whose last command took a whole
    /// [`BATCH_TIME`]: its next command starts a batch of its own.
    slow_lane: Option<turns::Lane>,
    /// The largest message a connection takes
    /// ([`ServerConfig::max_queued_bytes`](crate::ServerConfig::max_queued_bytes)):
    /// a transaction's update to a query is not built past it.
    max_message: usize,
    /// What the entries of `waiting` count for: the encoded messages and
    /// the rows the transactions behind them changed (their commit-log
    /// records), plus [`PENDING_OVERHEAD`] each.
    pending_bytes: usize,
    /// The newest commit-log offset of a transaction run so far.
    newest: Option<u64>,
    /// Notified by the commit log's thread when transactions become durable.
    durable: Arc<Notify>,
    /// Set when the database stopped taking calls; new connections are refused.
    stopped: Option<String>,
    /// Set when the database is being deleted: the thread ends.
    finished: bool,
    /// Turns true when the server begins to stop.
    shutdown: watch::Receiver<bool>,
    /// Once the server is stopping: when the first `client_disconnected`
    /// ran, and how many were skipped once [`SHUTDOWN_HOOKS`] had passed.
    hooks_at_shutdown: Option<(Instant, usize)>,
}

impl Actor {
    fn run(mut self, mut commands: mpsc::Receiver<Queued>) {
        // Everything this thread logs names its database.
        let _database = worldline_host::database_span(&self.name).entered();
        let durable = Arc::clone(&self.durable);
        self.database.on_durable(move || durable.notify_one());
        // Waits for a command, for transactions to become durable or for
        // the next scheduled row, whichever comes first; built without I/O.
        let waiter = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(waiter) => waiter,
            Err(e) => {
                tracing::error!("the database could not start: {e}");
                return;
            }
        };
        loop {
            self.run_schedules();
            // Commands taken in earlier that still wait their turn run
            // first, unless too much waits for the disk.
            if self.turns.is_empty() || self.pending_bytes >= PENDING_BYTES {
                let timer = self.schedule_wait();
                let spin = self.spin(&mut commands, timer);
                if matches!(spin, Spin::Nothing) {
                    // The thread is about to sleep: nothing is worth waiting for.
                    self.hand_over_deferred(None);
                }
                let first = match spin {
                    Spin::Command(queued) => Some(queued),
                    Spin::Released => continue,
                    Spin::Nothing if self.waiting.is_empty() && timer.is_none() => {
                        commands.blocking_recv()
                    }
                    Spin::Nothing if self.pending_bytes >= PENDING_BYTES => {
                        // Too much waits for the disk: take no command until some is released.
                        waiter.block_on(self.durable.notified());
                        self.release();
                        continue;
                    }
                    Spin::Nothing => {
                        let durable = Arc::clone(&self.durable);
                        let next = waiter.block_on(async {
                            tokio::select! {
                                biased;
                                () = durable.notified() => Wake::Durable,
                                command = commands.recv() => Wake::Command(command),
                                () = schedules::timer(timer) => Wake::Schedule,
                            }
                        });
                        match next {
                            Wake::Command(command) => command,
                            Wake::Durable => {
                                self.release();
                                // A scheduled run that outlasts an fsync finds
                                // the log durable again at every look, and
                                // `durable` comes first: a command waiting
                                // gets its turn before the next run.
                                match commands.try_recv() {
                                    Ok(queued) => Some(queued),
                                    Err(mpsc::error::TryRecvError::Empty) => continue,
                                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                                }
                            }
                            Wake::Schedule => continue,
                        }
                    }
                };
                let Some(first) = first else { break };
                self.turns.push(first.command.connection(), first);
            }
            self.run_batch(&mut commands);
            self.release();
            if self.finished {
                break;
            }
        }
        // Every handle is gone (the server stops): what waits goes out once durable.
        self.flush();
        if let Some((_, skipped @ 1..)) = self.hooks_at_shutdown {
            tracing::warn!(
                "client_disconnected did not run for {skipped} connections: the server was \
                 stopping and the hooks had run for {} s",
                SHUTDOWN_HOOKS.as_secs()
            );
        }
        tracing::debug!("the database stopped");
    }

    /// Runs up to [`MAX_BATCH`] commands, for up to [`BATCH_TIME`], in
    /// their connections' turns (see [`turns`]), taking in what has arrived
    /// before each; stops early when too much waits for the disk or the
    /// database is finished. A command that takes a whole [`BATCH_TIME`]
    /// (a slow reducer) ends the batch, and so does, before it runs, the
    /// next command of the connection that sent it, if it is not the
    /// batch's first: what the commands before them made ready goes out
    /// first, instead of waiting for another slow one. A command's share of
    /// the byte budget returns once it has run.
    fn run_batch(&mut self, commands: &mut mpsc::Receiver<Queued>) {
        let started = Instant::now();
        // The lane whose turn is running, and when it began.
        let mut turn: Option<(turns::Lane, Instant)> = None;
        for ran_before in 0..MAX_BATCH {
            if self.pending_bytes >= PENDING_BYTES
                || self.finished
                || started.elapsed() >= BATCH_TIME
            {
                break;
            }
            self.take_in(commands);
            if ran_before > 0
                && self.slow_lane.is_some()
                && self.turns.next_lane() == self.slow_lane
            {
                break;
            }
            let Some((lane, queued)) = self.turns.pop() else {
                break;
            };
            let began = match turn {
                Some((current, began)) if current == lane => began,
                _ => Instant::now(),
            };
            let ran = Instant::now();
            self.handle(queued.command);
            // What arrived while it ran joins the round before the turn
            // ends: a connection that sent a message during a slow command
            // has its turn before the next command of the slow one's.
            self.take_in(commands);
            // Ended here, not at the next command: a batch that ends now must
            // not leave the next one to start with the same turn.
            if began.elapsed() >= TURN_TIME {
                self.turns.end_turn(lane);
                turn = None;
            } else {
                turn = Some((lane, began));
            }
            if ran.elapsed() >= BATCH_TIME {
                self.slow_lane = Some(lane);
                break;
            }
            if self.slow_lane == Some(lane) {
                self.slow_lane = None;
            }
        }
    }

    /// Takes every command that has arrived into its turn (how many can
    /// wait is bounded per connection and in bytes: see [`COMMAND_QUEUE`]).
    fn take_in(&mut self, commands: &mut mpsc::Receiver<Queued>) {
        while let Ok(queued) = commands.try_recv() {
            self.turns.push(queued.command.connection(), queued);
        }
    }

    /// Looks for work without sleeping for up to [`SPIN_BEFORE_SLEEP`]: a
    /// command, or the transactions behind the oldest waiting message
    /// becoming durable (released here). Sleeping and being woken costs a
    /// thread more than the whole round trip of a call on an idle machine
    /// (a sleeping core takes tens of microseconds to wake), and the next
    /// command usually follows within a round trip of the last reply. The
    /// thread yields between looks, and does not spin at all while more
    /// than [`SPIN_WAITING_LIMIT`] messages wait for the disk.
    fn spin(&mut self, commands: &mut mpsc::Receiver<Queued>, timer: Option<Duration>) -> Spin {
        if self.pending_bytes >= PENDING_BYTES
            || timer.is_some_and(|t| t < SPIN_BEFORE_SLEEP)
            || self.waiting.len() > SPIN_WAITING_LIMIT
        {
            return Spin::Nothing;
        }
        let start = Instant::now();
        loop {
            match commands.try_recv() {
                Ok(queued) => return Spin::Command(queued),
                Err(mpsc::error::TryRecvError::Disconnected) => return Spin::Nothing,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if let Some(front) = self.waiting.front()
                && !matches!(self.database.is_durable(front.after), Ok(false))
            {
                self.release();
                return Spin::Released;
            }
            if start.elapsed() >= SPIN_BEFORE_SLEEP {
                return Spin::Nothing;
            }
            std::thread::yield_now();
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Connect {
                key,
                identity,
                connection_id,
                token,
                outbound,
                version,
                reply,
            } => {
                let result = self.connect(key, identity, connection_id, token, outbound, version);
                let _ = reply.send(result);
            }
            Command::Client { key, message } => self.client_message(key, message),
            Command::Ignored { key, reason } => {
                if self.connections.contains_key(&key) {
                    let error = ServerMessage::Error {
                        message: reason,
                        fatal: false,
                    };
                    self.send(key, &error);
                }
            }
            Command::Disconnect { key } => self.disconnect(key),
            Command::Finish { key } => self.finish_after_answers(key, None),
            Command::Fail { key, reason } => self.finish_after_answers(key, Some(reason)),
            Command::Admin(request) => self.admin(request),
            Command::Procedure(command) => self.procedure(command),
        }
    }

    fn connect(
        &mut self,
        key: ConnKey,
        identity: Identity,
        connection_id: ConnectionId,
        token: String,
        outbound: Outbound,
        version: u16,
    ) -> Result<(), String> {
        if let Some(reason) = &self.stopped {
            return Err(format!("database `{}` is unavailable: {reason}", self.name));
        }
        let ctx = CallContext::new(identity).with_connection(connection_id);
        let greeted = match self.database.client_connected_nowait(ctx) {
            Ok(Some(outcome)) => {
                self.fan_out(Lifecycle::ClientConnected, ctx, &outcome);
                true
            }
            Ok(None) => false,
            Err(e @ CallError::Unavailable(_)) => {
                return Err(format!("database `{}`: {e}", self.name));
            }
            Err(e) => return Err(format!("the module refused the connection: {e}")),
        };
        let limits = outbound.limits();
        self.connections.insert(
            key,
            Connection {
                identity,
                connection_id,
                outbound,
                query_sets: HashMap::new(),
                deferred: Deferred::default(),
                greeted,
            },
        );
        self.send(
            key,
            &ServerMessage::Welcome {
                version,
                identity: identity.to_bytes(),
                token,
                connection_id: connection_id.to_bytes(),
                max_frame_bytes: limits.max_frame,
                max_message_bytes: limits.bytes,
            },
        );
        Ok(())
    }

    fn client_message(&mut self, key: ConnKey, message: ClientMessage) {
        if !self.connections.contains_key(&key) {
            return;
        }
        match message {
            ClientMessage::Hello { .. } => self.send(
                key,
                &ServerMessage::Error {
                    message: "already connected: Hello is only the first message".into(),
                    fatal: false,
                },
            ),
            // Sessions run procedure calls themselves, beside this thread.
            ClientMessage::CallProcedure { request_id, .. } => self.send(
                key,
                &ServerMessage::ProcedureResult {
                    request_id,
                    status: ProcedureStatus::Failed(
                        "procedure calls are not taken on the database's thread".into(),
                    ),
                    duration_micros: 0,
                },
            ),
            ClientMessage::CallReducer {
                request_id,
                reducer,
                args,
            } => match self.call(key, &reducer, &args) {
                Ok(ran) => self.queue(
                    key,
                    Pending::Committed {
                        request_id,
                        duration_micros: ran.duration_micros,
                        offset: ran.offset,
                    },
                ),
                Err(e) => self.send(
                    key,
                    &ServerMessage::ReducerResult {
                        request_id,
                        status: ReducerStatus::Failed(e.to_string()),
                        duration_micros: 0,
                    },
                ),
            },
            ClientMessage::CallReducerUnreliable { reducer, args } => {
                if let Err(reason) = self.call(key, &reducer, &args) {
                    tracing::debug!("unreliable call of {reducer} failed: {reason}");
                }
            }
            ClientMessage::Subscribe {
                query_set_id,
                queries,
            } => {
                let reply = match self.subscribe(key, query_set_id, &queries) {
                    Ok(tables) => ServerMessage::SubscribeApplied {
                        query_set_id,
                        tables,
                    },
                    Err(message) => ServerMessage::SubscriptionError {
                        query_set_id,
                        message,
                    },
                };
                self.send(key, &reply);
            }
            ClientMessage::Unsubscribe { query_set_id } => {
                let reply = match self.unsubscribe(key, query_set_id) {
                    Some(tables) => ServerMessage::UnsubscribeApplied {
                        query_set_id,
                        tables,
                    },
                    None => ServerMessage::SubscriptionError {
                        query_set_id,
                        message: format!("query set {query_set_id} is not subscribed"),
                    },
                };
                self.send(key, &reply);
            }
            ClientMessage::Query { request_id, query } => {
                let result = self.query(key, &query);
                self.send(key, &ServerMessage::QueryResult { request_id, result });
            }
        }
    }

    /// Runs a reducer for a connection and fans its changes out.
    fn call(&mut self, key: ConnKey, reducer: &str, args: &[u8]) -> Result<Ran, CallError> {
        let Some(connection) = self.connections.get(&key) else {
            return Err(CallError::Unavailable("not connected".into()));
        };
        let ctx = CallContext::new(connection.identity).with_connection(connection.connection_id);
        self.run_reducer(reducer, args, ctx)
    }

    /// Runs a reducer as `ctx` and fans its changes out. Its answer may go
    /// out only after the next wait for durability (see
    /// [`release`](Self::release)).
    fn run_reducer(
        &mut self,
        reducer: &str,
        args: &[u8],
        ctx: CallContext,
    ) -> Result<Ran, CallError> {
        if let Some(reason) = &self.stopped {
            return Err(CallError::Unavailable(reason.clone()));
        }
        let outcome = self.database.call_reducer_nowait(reducer, args, ctx)?;
        self.fan_out_reducer(reducer, ctx, &outcome);
        Ok(Ran {
            duration_micros: micros(outcome.duration),
            offset: outcome.offset,
        })
    }

    /// Why the tables must not be read now, if they must not: the commit
    /// log failed, so they may hold transactions that are not durable.
    fn unreadable(&self) -> Option<String> {
        self.database
            .unreadable()
            .map(|reason| format!("database `{}` is unavailable: {reason}", self.name))
    }

    fn subscribe(
        &mut self,
        key: ConnKey,
        query_set_id: u32,
        queries: &[String],
    ) -> Result<Vec<TableRows>, String> {
        let connection = &self.connections[&key];
        if connection.query_sets.contains_key(&query_set_id) {
            return Err(format!(
                "query set {query_set_id} is already subscribed; unsubscribe it or use another id"
            ));
        }
        if connection.query_sets.len() >= MAX_QUERY_SETS {
            return Err(format!(
                "a connection may hold at most {MAX_QUERY_SETS} query sets"
            ));
        }
        if queries.is_empty() || queries.len() > MAX_QUERIES_PER_SET {
            return Err(format!(
                "a query set holds 1 to {MAX_QUERIES_PER_SET} queries, not {}",
                queries.len()
            ));
        }
        let held: usize = connection
            .query_sets
            .values()
            .map(QuerySet::sql_bytes)
            .sum();
        let adding: usize = queries.iter().map(String::len).sum();
        if held + adding > MAX_SUBSCRIBED_SQL_BYTES {
            return Err(format!(
                "a connection may hold at most {MAX_SUBSCRIBED_SQL_BYTES} bytes of subscribed \
                 SQL: it holds {held} and this query set adds {adding}; unsubscribe some first"
            ));
        }
        if let Some(reason) = self.unreadable() {
            return Err(reason);
        }
        let owner = connection.identity == self.database.owner();
        let max_message = connection.outbound.limits().bytes as usize;
        let ids = self.register(key, owner, queries)?;
        // #9 item 14: a connection holds each distinct query once; only the
        // queries new to it bring rows.
        let fresh = self.held_only_by(key, &ids);
        // Rows that could not fit are not all gathered first: a join's
        // can be the product of its tables' sizes.
        let tables = match self.current_rows_within(&fresh, max_message, &query_meter(owner)) {
            Ok(tables) if encoded_size(&tables) <= max_message => self
                .outgoing
                .room_for(encoded_size(&tables))
                .map(|()| tables)
                .map_err(|shortage| shortage.to_string()),
            Err(RowsRefused::TooMuchWork) => Err(format!(
                "query set {query_set_id}: {}",
                OnceError::TooMuchWork
            )),
            _ => Err(format!(
                "the initial rows of query set {query_set_id} take more than the \
                 {max_message} bytes this server sends in one message; narrow the queries"
            )),
        };
        let tables = match tables {
            Ok(tables) => tables,
            Err(reason) => {
                for id in ids {
                    self.drop_subscriber(key, id);
                }
                return Err(reason);
            }
        };
        if let Some(connection) = self.connections.get_mut(&key) {
            let sql = queries.to_vec();
            connection
                .query_sets
                .insert(query_set_id, QuerySet { ids, sql });
        }
        Ok(tables)
    }

    /// Compiles every query (or none, on the first error) and subscribes
    /// connection `key` to them.
    fn register(
        &mut self,
        key: ConnKey,
        owner: bool,
        queries: &[String],
    ) -> Result<Vec<QueryId>, String> {
        let schema = self.database.schema();
        let compiled = queries
            .iter()
            .map(|sql| compile_query(sql, schema, owner))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.subscribe_compiled(key, compiled))
    }

    /// Subscribes connection `key` to `compiled`, queries compiled against
    /// the current schema; their ids, in order.
    fn subscribe_compiled(&mut self, key: ConnKey, compiled: Vec<CompiledQuery>) -> Vec<QueryId> {
        let schema = self.database.schema();
        let mut ids = Vec::with_capacity(compiled.len());
        for query in compiled {
            let table = schema.tables[query.table()].name.clone();
            let id = self.engine.subscribe(query);
            self.query_tables.insert(id, table);
            *self
                .subscribers
                .entry(id)
                .or_default()
                .entry(key)
                .or_default() += 1;
            ids.push(id);
        }
        ids
    }

    /// Ends a query set, returning the rows it held; `None` if there is no such set.
    fn unsubscribe(&mut self, key: ConnKey, query_set_id: u32) -> Option<Vec<TableRows>> {
        let ids = self
            .connections
            .get_mut(&key)?
            .query_sets
            .remove(&query_set_id)?
            .ids;
        // Only the queries the connection holds in no other set take rows away.
        let tables = self.current_rows(&self.held_only_by(key, &ids));
        for id in ids {
            self.drop_subscriber(key, id);
        }
        Some(tables)
    }

    /// The distinct queries among `ids` that connection `key` holds only
    /// through `ids` (each once, in order).
    fn held_only_by(&self, key: ConnKey, ids: &[QueryId]) -> Vec<QueryId> {
        let mut seen = std::collections::HashSet::new();
        ids.iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .filter(|id| {
                let held = self.subscribers.get(id).and_then(|h| h.get(&key));
                held == Some(&ids.iter().filter(|i| *i == id).count())
            })
            .collect()
    }

    fn drop_subscriber(&mut self, key: ConnKey, id: QueryId) {
        self.engine.unsubscribe(id);
        if let Some(holders) = self.subscribers.get_mut(&id) {
            if let Some(count) = holders.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    holders.remove(&key);
                }
            }
            if holders.is_empty() {
                self.subscribers.remove(&id);
                self.query_tables.remove(&id);
            }
        }
    }

    fn query(&self, key: ConnKey, sql: &str) -> Result<Vec<TableRows>, String> {
        if let Some(reason) = self.unreadable() {
            return Err(reason);
        }
        let connection = &self.connections[&key];
        let owner = connection.identity == self.database.owner();
        let max_message = connection.outbound.limits().bytes as usize;
        let (table, rows) = self
            .query_once(sql, owner, max_message)
            .map_err(|e| e.to_string())?;
        let tables = vec![TableRows {
            table: self.database.schema().tables[table].name.clone(),
            rows: rows.iter().map(bytes).collect(),
        }];
        let size = encoded_size(&tables);
        if size > max_message {
            return Err(OnceError::TooLarge(max_message).to_string());
        }
        self.outgoing.room_for(size).map_err(|s| s.to_string())?;
        Ok(tables)
    }

    /// Runs `sql` once (private tables only for the `owner`), returning the
    /// table it reads and the rows it matches now, unless they take more
    /// than `max_bytes` (each row counting its [`row_cost`]).
    fn query_once(
        &self,
        sql: &str,
        owner: bool,
        max_bytes: usize,
    ) -> Result<(TableId, Vec<Row>), OnceError> {
        let query = compile(sql, self.database.schema(), owner)?;
        let table = query.table();
        let mut once = SubscriptionEngine::default();
        let id = once.subscribe(query);
        let rows = once
            .initial_rows_within(
                id,
                self.database.datastore(),
                max_bytes,
                &query_meter(owner),
            )
            .map_err(|e| match e {
                RowsRefused::TooLarge(e) => OnceError::TooLarge(e.limit),
                RowsRefused::TooMuchWork => OnceError::TooMuchWork,
            })?;
        Ok((table, rows))
    }

    /// Like [`current_rows`](Self::current_rows), giving up as soon as the
    /// rows take more than `max_bytes` (each counting its [`row_cost`]) or
    /// the reads more work than `meter` holds.
    fn current_rows_within(
        &self,
        ids: &[QueryId],
        max_bytes: usize,
        meter: &WorkMeter,
    ) -> Result<Vec<TableRows>, RowsRefused> {
        let mut tables: Vec<TableRows> = Vec::new();
        let mut taken = 0usize;
        for id in ids {
            let table = &self.query_tables[id];
            let left = max_bytes.saturating_sub(taken);
            let rows =
                self.engine
                    .initial_rows_within(*id, self.database.datastore(), left, meter)?;
            taken += rows.iter().map(|row| row_cost(row.len())).sum::<usize>();
            let entry = table_entry(&mut tables, table, |table| TableRows {
                table,
                rows: Vec::new(),
            });
            entry.rows.extend(rows.iter().map(bytes));
        }
        Ok(tables)
    }

    /// The rows the given queries match now, grouped by table.
    fn current_rows(&self, ids: &[QueryId]) -> Vec<TableRows> {
        self.current_rows_within(ids, usize::MAX, &WorkMeter::new(u64::MAX))
            .unwrap_or_default()
    }

    /// Disconnects `key` once everything held for it so far has gone out
    /// (see [`Command::Finish`] and [`Command::Fail`]), after sending it
    /// `error` as a fatal `Error` if there is one; the messages made for it
    /// meanwhile (the updates of later transactions) are dropped.
    fn finish_after_answers(&mut self, key: ConnKey, error: Option<String>) {
        if self.connections.contains_key(&key) {
            self.hold(0, Held::Finish(key, error));
        }
    }

    /// A finished connection's turn came: its deferred updates go out
    /// (unless the commit log failed, which drops them), then the fatal
    /// `Error` if it failed, then it is disconnected; its writer closes the
    /// connection once it has written what it was handed.
    fn close_finished(&mut self, key: ConnKey, hand_over: bool, error: Option<String>) {
        if let Some(connection) = self.connections.get_mut(&key) {
            if hand_over {
                // A queue without room drops the connection itself.
                connection.hand_over(None);
            }
            if let Some(message) = error {
                let error = ServerMessage::Error {
                    message,
                    fatal: true,
                };
                connection.outbound.close_with(&error);
            }
        }
        self.disconnect(key);
    }

    fn disconnect(&mut self, key: ConnKey) {
        let Some(connection) = self.connections.remove(&key) else {
            return;
        };
        for id in connection.query_sets.into_values().flat_map(|set| set.ids) {
            self.drop_subscriber(key, id);
        }
        if !connection.greeted && self.hook_name(Lifecycle::ClientConnected).is_some() {
            // Connected before a hot swap added the hooks: the module never
            // saw it come, so it is not told that it goes.
            return;
        }
        if self.skip_hook_at_shutdown() {
            return;
        }
        let ctx = CallContext::new(connection.identity).with_connection(connection.connection_id);
        // The host logs a failure (bounded): no caller awaits it.
        if let Ok(Some(outcome)) = self.database.client_disconnected_nowait(ctx) {
            self.fan_out(Lifecycle::ClientDisconnected, ctx, &outcome);
        }
    }

    /// Whether `client_disconnected` is skipped for a connection ending
    /// now: only while the server stops, once the hooks have run for
    /// [`SHUTDOWN_HOOKS`] (a hook that never returns would otherwise hold
    /// the stop for a reducer deadline per connection).
    fn skip_hook_at_shutdown(&mut self) -> bool {
        if !*self.shutdown.borrow() {
            return false;
        }
        let (since, skipped) = self.hooks_at_shutdown.get_or_insert((Instant::now(), 0));
        if since.elapsed() < SHUTDOWN_HOOKS {
            return false;
        }
        *skipped += 1;
        true
    }

    /// The name of the module's `lifecycle` hook, if it has one.
    fn hook_name(&self, lifecycle: Lifecycle) -> Option<&str> {
        self.database
            .schema()
            .reducers
            .iter()
            .find(|r| r.lifecycle == Some(lifecycle))
            .map(|r| r.name.as_str())
    }

    fn fan_out(&mut self, lifecycle: Lifecycle, ctx: CallContext, outcome: &ReducerOutcome) {
        let name = self.hook_name(lifecycle).unwrap_or_default().to_owned();
        self.fan_out_reducer(&name, ctx, outcome);
    }

    /// Queues, for every connection whose subscriptions the transaction
    /// touched, one `TransactionUpdate`. Connections holding the same
    /// touched queries share one encoded message.
    fn fan_out_reducer(&mut self, reducer: &str, ctx: CallContext, outcome: &ReducerOutcome) {
        if outcome.offset.is_some() {
            self.newest = outcome.offset;
        }
        // The transaction's record waits in the commit log's queue until it is durable.
        let record = outcome
            .delta
            .tables
            .iter()
            .flat_map(|table| table.inserts.iter().chain(&table.deletes))
            .map(|row| row.len())
            .sum::<usize>();
        self.hold(record, Held::Record);
        if self.subscribers.is_empty() {
            return;
        }
        let updates = self.engine.evaluate_within(
            &outcome.delta,
            self.database.datastore(),
            self.max_message,
        );
        if updates.is_empty() {
            return;
        }
        // #9 item 14: a connection gets each touched query's rows once, however
        // many of its query sets hold it.
        let mut touched: BTreeMap<ConnKey, Vec<usize>> = BTreeMap::new();
        for (position, (id, _)) in updates.iter().enumerate() {
            for &key in self
                .subscribers
                .get(id)
                .into_iter()
                .flatten()
                .map(|(key, _)| key)
            {
                touched.entry(key).or_default().push(position);
            }
        }
        let event = ReducerEvent {
            caller: ctx.caller.to_bytes(),
            connection_id: ctx.connection_id.map(ConnectionId::to_bytes),
            reducer: reducer.to_owned(),
            timestamp: outcome.timestamp.to_micros_since_epoch(),
            duration_micros: micros(outcome.duration),
        };
        let mut encoded: HashMap<Vec<usize>, Payload> = HashMap::new();
        for (key, shape) in touched {
            if let Some(too_large) = shape.iter().find_map(|&p| updates[p].1.as_ref().err()) {
                let reason = format!(
                    "a transaction changed the rows of a subscribed query by more than the {} \
                     bytes this server sends in one message; subscribe to narrower queries",
                    too_large.limit
                );
                self.hold(0, Held::Message(key, Pending::Drop(reason)));
                continue;
            }
            let mut bytes = 0;
            let payload = encoded
                .entry(shape)
                .or_insert_with_key(|shape| {
                    let tables = self.table_updates(&updates, shape);
                    let payload = self.outgoing.encode(&ServerMessage::TransactionUpdate {
                        tables,
                        event: event.clone(),
                    });
                    // Each distinct message counts once, however many connections it goes to.
                    bytes = payload.len();
                    payload
                })
                .clone();
            self.hold(bytes, Held::Message(key, Pending::Update(payload)));
        }
    }

    /// Merges the chosen query updates per table.
    fn table_updates(
        &self,
        updates: &[(QueryId, Result<QueryUpdate, RowsTooLarge>)],
        shape: &[usize],
    ) -> Vec<TableUpdate> {
        let mut tables: Vec<TableUpdate> = Vec::new();
        for &position in shape {
            let (id, Ok(update)) = &updates[position] else {
                continue;
            };
            let entry = table_entry(&mut tables, &self.query_tables[id], |table| TableUpdate {
                table,
                inserts: Vec::new(),
                deletes: Vec::new(),
                updates: Vec::new(),
            });
            entry.inserts.extend(update.inserts.iter().map(bytes));
            entry.deletes.extend(update.deletes.iter().map(bytes));
            entry
                .updates
                .extend(update.updates.iter().map(|(old, new)| RowUpdate {
                    old: bytes(old),
                    new: bytes(new),
                }));
        }
        tables
    }

    /// Runs `reply` once every transaction run so far is durable, with the
    /// reason if the commit log failed before confirming the transaction
    /// at `offset` (none: the call logged nothing and cannot be in doubt).
    fn after_durable(&mut self, offset: Option<u64>, reply: AfterDurable) {
        self.hold(0, Held::Reply(offset, reply));
    }

    /// Runs `reply`, the answer to a read that may have seen the
    /// transactions up to `newest`, once they are durable; if the commit log
    /// fails first, with why the database is unavailable.
    fn after_durable_read(&mut self, newest: Option<u64>, reply: AfterDurable) {
        self.hold(0, Held::Read(newest, reply));
    }

    /// Queues `held` behind every transaction run so far.
    fn hold(&mut self, bytes: usize, held: Held) {
        let bytes = bytes + PENDING_OVERHEAD;
        self.pending_bytes += bytes;
        self.waiting.push_back(Waiting {
            after: self.newest,
            bytes,
            held,
        });
    }

    /// After the commit log failed: whether the transaction at `offset`
    /// was confirmed durable before it did (or logged nothing).
    fn confirmed(&mut self, offset: Option<u64>) -> Result<(), String> {
        match offset {
            None => Ok(()),
            Some(offset) => self
                .database
                .wait_durable(Some(offset))
                .map_err(|e| e.to_string()),
        }
    }

    fn send(&mut self, key: ConnKey, message: &ServerMessage) {
        let payload = self.outgoing.encode(message);
        self.queue(key, Pending::Message(payload));
    }

    /// Holds a message for `key` until the transactions before it are durable.
    fn queue(&mut self, key: ConnKey, pending: Pending) {
        let bytes = match &pending {
            Pending::Message(payload) | Pending::Update(payload) => payload.len(),
            Pending::Committed { .. } | Pending::Drop(_) => 0,
        };
        self.hold(bytes, Held::Message(key, pending));
    }

    /// Hands the messages and replies whose transactions are durable to
    /// their connections and callers, in order, without waiting. A
    /// connection too slow to take its messages is dropped.
    ///
    /// If the commit log failed, every call whose transaction it had not
    /// confirmed durable is answered "outcome unknown" (its record may or
    /// may not have reached the disk), those it had confirmed are answered
    /// as committed, the other messages are dropped, and the database
    /// stops: every client is told and disconnected.
    fn release(&mut self) {
        let mut slow = Vec::new();
        let mut failed = false;
        while let Some(front) = self.waiting.front() {
            if !failed {
                match self.database.is_durable(front.after) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => failed = true,
                }
            }
            let Some(Waiting { bytes, held, .. }) = self.waiting.pop_front() else {
                break;
            };
            self.pending_bytes -= bytes;
            let (key, pending) = match held {
                Held::Record => continue,
                Held::Finish(key, error) => {
                    self.close_finished(key, !failed, error);
                    continue;
                }
                Held::Reply(offset, reply) => {
                    reply(if failed {
                        self.confirmed(offset)
                    } else {
                        Ok(())
                    });
                    continue;
                }
                Held::Read(newest, reply) => {
                    reply(if failed {
                        self.confirmed(newest)
                            .map_err(|_| self.unreadable().unwrap_or_default())
                    } else {
                        Ok(())
                    });
                    continue;
                }
                Held::Message(key, pending) => (key, pending),
            };
            let Some(connection) = self.connections.get_mut(&key) else {
                continue;
            };
            let payload = match pending {
                Pending::Update(payload) if !failed => {
                    let now = Instant::now();
                    let deferred = &mut connection.deferred;
                    let lately = deferred
                        .last_sent
                        .is_some_and(|sent| now.duration_since(sent) < UPDATE_DELAY);
                    if lately || !deferred.payloads.is_empty() {
                        if deferred.payloads.is_empty() {
                            deferred.since = Some(now);
                            self.deferring.push_back((now, key));
                        }
                        deferred.payloads.push(payload);
                        continue;
                    }
                    deferred.last_sent = Some(now);
                    payload
                }
                Pending::Message(payload) if !failed => payload,
                Pending::Drop(reason) if !failed => {
                    connection.outbound.kick(&reason);
                    slow.push(key);
                    continue;
                }
                Pending::Message(_) | Pending::Update(_) | Pending::Drop(_) => continue,
                Pending::Committed {
                    request_id,
                    duration_micros,
                    offset,
                } => {
                    let confirmed = if failed {
                        self.confirmed(offset)
                    } else {
                        Ok(())
                    };
                    let status = match confirmed {
                        Ok(()) => ReducerStatus::Committed,
                        Err(reason) => ReducerStatus::OutcomeUnknown(reason),
                    };
                    self.outgoing.encode(&ServerMessage::ReducerResult {
                        request_id,
                        status,
                        duration_micros,
                    })
                }
            };
            let sent = self
                .connections
                .get_mut(&key)
                .is_some_and(|connection| connection.hand_over(Some(payload)));
            if !sent {
                slow.push(key);
            }
        }
        if !failed {
            self.hand_over_deferred(Some(UPDATE_DELAY));
            self.drop_slow(slow);
        }
        if self.stopped.is_none()
            && let Some(reason) = self.database.unreadable()
        {
            let reason = reason.to_owned();
            self.stop(reason);
        }
    }

    /// Hands every connection's deferred updates to it whose oldest has
    /// waited at least `delay` (none: all of them).
    fn hand_over_deferred(&mut self, delay: Option<Duration>) {
        let mut slow = Vec::new();
        let now = Instant::now();
        while let Some(&(since, key)) = self.deferring.front() {
            if delay.is_some_and(|delay| now.duration_since(since) < delay) {
                break;
            }
            self.deferring.pop_front();
            let Some(connection) = self.connections.get_mut(&key) else {
                continue;
            };
            if connection.deferred.since == Some(since) {
                connection.deferred.last_sent = Some(now);
                if !connection.hand_over(None) {
                    slow.push(key);
                }
            }
        }
        self.drop_slow(slow);
    }

    /// Drops the connections too slow to take their messages.
    fn drop_slow(&mut self, mut slow: Vec<ConnKey>) {
        slow.sort_unstable();
        slow.dedup();
        for key in slow {
            if let Some(connection) = self.connections.get(&key) {
                connection
                    .outbound
                    .kick("the connection fell too far behind its updates");
            }
            self.disconnect(key);
        }
    }

    /// Waits until everything queued is durable (or the log failed), then
    /// releases it: for the end of the thread, when nothing else is to run.
    fn flush(&mut self) {
        while !self.waiting.is_empty() {
            // An error is met again, and answered, by `release`.
            let _ = self.database.wait_durable(self.newest);
            self.release();
        }
        self.hand_over_deferred(None);
    }

    /// The commit log failed: nothing more is acknowledged or read, every
    /// client is told and dropped.
    fn stop(&mut self, reason: String) {
        tracing::error!("the database stopped: {reason}");
        self.disconnect_all(reason);
    }

    /// Tells every client why the database stopped, drops them, and
    /// refuses everything from now on.
    fn disconnect_all(&mut self, reason: String) {
        self.pending_bytes = 0;
        for waiting in std::mem::take(&mut self.waiting) {
            match waiting.held {
                Held::Reply(offset, reply) => reply(match offset {
                    None => Ok(()),
                    Some(_) => Err(reason.clone()),
                }),
                Held::Read(newest, reply) => reply(match newest {
                    None => Ok(()),
                    Some(_) => Err(format!("database `{}` is unavailable: {reason}", self.name)),
                }),
                _ => {}
            }
        }
        let message = ServerMessage::Error {
            message: format!("database `{}` stopped: {reason}", self.name),
            fatal: true,
        };
        // The messages released before it (outcome-unknown answers) go
        // out first; a connection with no room for it is dropped at once.
        for (_, mut connection) in self.connections.drain() {
            // Its deferred updates are durable: they go first, if there is room.
            connection.hand_over(None);
            connection.outbound.close_with(&message);
        }
        self.deferring.clear();
        self.subscribers.clear();
        self.query_tables.clear();
        self.engine = SubscriptionEngine::default();
        self.stopped = Some(reason);
    }
}

/// The entry for `table` in `tables`, added with `new` if missing.
fn table_entry<'a, T: HasTable>(
    tables: &'a mut Vec<T>,
    table: &str,
    new: impl FnOnce(String) -> T,
) -> &'a mut T {
    let position = match tables.iter().position(|t| t.table() == table) {
        Some(position) => position,
        None => {
            tables.push(new(table.to_owned()));
            tables.len() - 1
        }
    };
    &mut tables[position]
}

/// Messages grouped by table.
trait HasTable {
    fn table(&self) -> &str;
}

impl HasTable for TableRows {
    fn table(&self) -> &str {
        &self.table
    }
}

impl HasTable for TableUpdate {
    fn table(&self) -> &str {
        &self.table
    }
}

/// Why a one-off query (`Query`, or SQL over HTTP) was not answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OnceError {
    /// The SQL was refused.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The result takes more than this many bytes.
    #[error(
        "the result takes more than the {0} bytes this server sends in one message; narrow the \
         query"
    )]
    TooLarge(usize),
    /// Reading the rows takes a client other than the owner more than
    /// [`MAX_QUERY_WORK`].
    #[error(
        "the query examines more rows than a client other than the database's owner may \
         ({MAX_QUERY_WORK} units of work: each row read counts {ROW_WORK} and the comparisons \
         of the condition); narrow the query with a condition on an indexed column, or use \
         fewer comparisons"
    )]
    TooMuchWork,
}

/// The bytes of a message holding `tables` (#9 item 14): exactly what
/// they encode to, and at most 12 bytes more for the rest of the message
/// (its kind, the client's id, whether it succeeded, the number of tables).
fn encoded_size(tables: &[TableRows]) -> usize {
    const MESSAGE_HEAD: usize = 12;
    let bytes = |len: usize| varint_len(len) + len;
    let rows = |t: &TableRows| t.rows.iter().map(|row| bytes(row.len())).sum::<usize>();
    tables
        .iter()
        .map(|t| bytes(t.table.len()) + varint_len(t.rows.len()) + rows(t))
        .sum::<usize>()
        + MESSAGE_HEAD
}

/// The bytes of `n` as an unsigned varint (postcard's encoding of a length).
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// `sql` compiled against `schema` for a client (the owner if `owner`),
/// or why not, quoting an excerpt of it.
fn compile_query(sql: &str, schema: &ModuleSchema, owner: bool) -> Result<CompiledQuery, String> {
    compile(sql, schema, owner).map_err(|e| format!("{}: {e}", excerpt(sql)))
}

/// `sql` as the subscription engine quotes queries ([`query_excerpt`]),
/// with its full length when it was cut, to name a refused query without
/// echoing all of it.
fn excerpt(sql: &str) -> String {
    let quoted = query_excerpt(sql);
    if quoted != sql {
        format!("{quoted} ({} bytes)", sql.len())
    } else {
        quoted
    }
}

fn bytes(row: &Row) -> ByteBuf {
    ByteBuf::from(row.to_vec())
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn big_call(bytes: usize) -> Command {
        Command::Client {
            key: 1,
            message: ClientMessage::CallReducer {
                request_id: 0,
                reducer: "r".into(),
                args: ByteBuf::from(vec![0; bytes]),
            },
        }
    }

    // What an answer's rows are counted as against the outgoing budget is
    // what the message encodes to (give or take its 12-byte head): it
    // counted 5 bytes for every length, 4 a row too many for small rows.
    #[test]
    fn an_answer_is_counted_as_the_bytes_it_encodes_to() {
        for (rows, row_len) in [(0, 0), (1, 0), (3, 12), (1000, 12), (200, 130), (2, 20_000)] {
            let tables = vec![
                TableRows {
                    table: "account".into(),
                    rows: vec![ByteBuf::from(vec![7; row_len]); rows],
                },
                TableRows {
                    table: "t".repeat(200),
                    rows: vec![ByteBuf::from(vec![1; 3]); rows / 2],
                },
            ];
            let counted = encoded_size(&tables);
            for message in [
                ServerMessage::QueryResult {
                    request_id: u32::MAX,
                    result: Ok(tables.clone()),
                },
                ServerMessage::SubscribeApplied {
                    query_set_id: u32::MAX,
                    tables: tables.clone(),
                },
            ] {
                let encoded = worldline_transport::encode_message(&message).len();
                assert!(
                    (encoded..=encoded + 12).contains(&counted),
                    "{rows} rows of {row_len} bytes: counted {counted}, encoded {encoded}"
                );
            }
        }
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u32::MAX as usize), 5);
    }

    // #9 item 10: the queue in front of a database is bounded in bytes,
    // not only in commands (4,096 commands of 4 MiB each were 16 GiB).
    #[test]
    fn the_command_queue_is_bounded_in_bytes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let (commands, mut receiver) = mpsc::channel(COMMAND_QUEUE);
        let handle = DatabaseHandle {
            name: "test".into(),
            commands,
            budget: Arc::new(Semaphore::new(COMMAND_QUEUE_BYTES)),
        };
        let quarter = COMMAND_QUEUE_BYTES / 4 - COMMAND_OVERHEAD - 1;
        runtime.block_on(async {
            for _ in 0..4 {
                handle.send(big_call(quarter)).await.expect("room");
            }
            let fifth =
                tokio::time::timeout(Duration::from_millis(100), handle.send(big_call(quarter)));
            assert!(fifth.await.is_err(), "a fifth quarter of the budget waits");
            // Running one command returns its bytes to the budget.
            drop(receiver.recv().await.expect("a command"));
            let fifth =
                tokio::time::timeout(Duration::from_secs(5), handle.send(big_call(quarter)));
            fifth.await.expect("room again").expect("sent");
        });
    }
}
