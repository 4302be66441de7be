//! A procedure's explicit transactions, by lending the datastore.
//!
//! `transaction.begin` sends a [`TxRequest`] to the database's thread (through
//! the [`TxSubmitter`] its server gave), where it waits its turn behind the
//! reducers and transactions ahead of it. There
//! [`Database::serve_transaction`](crate::Database::serve_transaction) opens
//! a transaction, moves the datastore out of the reducer instance and lends
//! it to the procedure's thread, then blocks until it comes back: the
//! database runs nothing else meanwhile, which keeps the serial order.
//! The procedure's datastore calls run on the lent datastore; `commit` or
//! `rollback` sends it home, where the database's thread commits it like a
//! reducer's transaction (or rolls it back). A procedure instance dropped
//! with a transaction open (it returned, trapped or ran past a deadline)
//! sends it home to be rolled back: see `HostState`'s `Drop`.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use worldline_datastore::Datastore;

use crate::bindings::v2::worldline::module::transaction::{TxError, TxErrorKind};
use crate::database::{CallContext, ReducerOutcome};
use crate::identity::Timestamp;
use crate::procedure_http::ProcedureHttp;
use crate::state::HostState;

/// How long past the reducer deadline the database's thread waits for a
/// lent datastore before it reports the procedure as stuck (it is stopped
/// by its deadline within one epoch tick; then the datastore comes home).
const RETURN_GRACE: Duration = Duration::from_secs(1);

/// Hands a transaction request to the database's thread, to be served in
/// its turn with [`Database::serve_transaction`](crate::Database::serve_transaction).
/// `Err` carries why the database takes no more requests (the procedure's
/// `begin` then answers `unavailable` with it). Called on the procedure's
/// thread, which it may block while the database's queue is full.
pub type TxSubmitter = Arc<dyn Fn(TxRequest) -> Result<(), String> + Send + Sync>;

/// A procedure asking its database for a transaction. Serve it with
/// [`Database::serve_transaction`](crate::Database::serve_transaction) on the
/// database's thread, or [`refuse`](Self::refuse) it; dropping it refuses it.
pub struct TxRequest {
    pub(crate) procedure: String,
    pub(crate) ctx: CallContext,
    /// The database's module generation when the procedure started.
    pub(crate) generation: u64,
    /// A rendezvous with the waiting procedure: a value is either taken
    /// by it or handed back to the sender, never lost in between.
    lend: SyncSender<Result<Loan, String>>,
}

impl TxRequest {
    /// The procedure asking.
    pub fn procedure(&self) -> &str {
        &self.procedure
    }

    /// Refuses the transaction: the procedure's `begin` answers
    /// `unavailable` with `reason`.
    pub fn refuse(self, reason: String) {
        let _ = self.lend.send(Err(reason));
    }

    /// Lends `datastore` (with a transaction open) to the procedure. If
    /// the procedure is gone (it stopped waiting), the datastore comes
    /// back as `Err`, untouched (boxed: it is large).
    pub(crate) fn lend(
        self,
        datastore: Datastore,
        stored_bytes: usize,
        timestamp: Timestamp,
    ) -> Result<LentTx, Box<Datastore>> {
        let (back, returned) = mpsc::channel();
        let loan = Loan {
            datastore,
            stored_bytes,
            timestamp,
            back,
        };
        match self.lend.send(Ok(loan)) {
            Ok(()) => Ok(LentTx {
                procedure: self.procedure,
                ctx: self.ctx,
                timestamp,
                returned,
            }),
            // What was sent is the loan: it comes back whole.
            Err(mpsc::SendError(sent)) => Err(Box::new(
                sent.map_or_else(|_| Datastore::new(Vec::new()), |loan| loan.datastore),
            )),
        }
    }
}

/// A datastore lent to a procedure, with its transaction open.
pub(crate) struct Loan {
    datastore: Datastore,
    stored_bytes: usize,
    timestamp: Timestamp,
    back: Sender<Returned>,
}

/// How the lent datastore comes home.
pub(crate) enum Returned {
    /// To be committed; `reply` answers the procedure's `commit`.
    Commit {
        datastore: Datastore,
        reply: Sender<Result<(), String>>,
    },
    /// To be rolled back.
    Rollback(Datastore),
}

/// The database's side of a loan: waits for the datastore to come home.
pub(crate) struct LentTx {
    pub(crate) procedure: String,
    pub(crate) ctx: CallContext,
    pub(crate) timestamp: Timestamp,
    returned: Receiver<Returned>,
}

impl LentTx {
    /// Blocks until the procedure sends the datastore home. `deadline` is
    /// how long the procedure may hold it (the host stops it then); past
    /// it and a grace, the wait is logged and goes on, since the tables
    /// cannot be served without it. `None` if it can never come back.
    pub(crate) fn wait(&self, deadline: Duration) -> Option<Returned> {
        match self.returned.recv_timeout(deadline + RETURN_GRACE) {
            Ok(returned) => Some(returned),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                tracing::error!(
                    "procedure `{}` holds its transaction past the {deadline:?} deadline; \
                     waiting for the host to stop it",
                    self.procedure
                );
                self.returned.recv().ok()
            }
        }
    }
}

/// A procedure's transaction, committed in memory by
/// [`Database::serve_transaction`](crate::Database::serve_transaction). Its
/// changes go to subscribers like a reducer's; the procedure's `commit`
/// returns once [`reply`](Self::reply) is answered, which must wait until
/// the transaction is durable ([`Database::wait_durable`](crate::Database::wait_durable)
/// on `outcome.offset`).
pub struct CommittedTx {
    /// What the transaction did.
    pub outcome: ReducerOutcome,
    /// The procedure that committed it (the name its commit-log record
    /// and its subscription updates carry).
    pub procedure: String,
    /// Who called the procedure, over which connection.
    pub ctx: CallContext,
    /// Answers the procedure's `commit`.
    pub reply: CommitReply,
}

/// The answer to a procedure's `commit`. Dropped unanswered, the
/// procedure's `commit` says the outcome is unknown.
pub struct CommitReply(pub(crate) Sender<Result<(), String>>);

impl CommitReply {
    /// Answers the procedure's `commit`: `Ok` once the transaction is
    /// durable, or why its durability is unknown (the commit log failed).
    pub fn send(self, durable: Result<(), String>) {
        let _ = self.0.send(durable);
    }
}

/// A procedure's transaction state and what it needs to ask for one.
pub(crate) struct ProcedureSide {
    /// The procedure's name.
    pub(crate) name: String,
    ctx: CallContext,
    generation: u64,
    submit: TxSubmitter,
    /// The open transaction, if any.
    open: Option<OpenTx>,
    /// When the whole procedure must have returned.
    pub(crate) deadline: Instant,
    /// How long the whole procedure may run.
    pub(crate) procedure_deadline: Duration,
    /// How long a transaction may stay open (the reducer deadline).
    pub(crate) tx_deadline: Duration,
    /// Its outbound HTTP client.
    pub(crate) http: ProcedureHttp,
}

/// An open transaction: where its datastore goes home, and since when.
struct OpenTx {
    back: Sender<Returned>,
    opened: Instant,
}

/// What [`ProcedureSide::new`] needs besides the HTTP client.
pub(crate) struct TxPlan {
    pub(crate) name: String,
    pub(crate) ctx: CallContext,
    pub(crate) generation: u64,
    pub(crate) submit: TxSubmitter,
    pub(crate) deadline: Instant,
    pub(crate) procedure_deadline: Duration,
    pub(crate) tx_deadline: Duration,
}

impl ProcedureSide {
    /// When the procedure must stop waiting: its deadline, or its open
    /// transaction's if that is nearer.
    pub(crate) fn wait_limit(&self) -> Instant {
        match &self.open {
            Some(open) => self.deadline.min(open.opened + self.tx_deadline),
            None => self.deadline,
        }
    }

    /// The error of the deadline [`wait_limit`](Self::wait_limit) names.
    pub(crate) fn deadline_error(&self) -> crate::procedure::Stopped {
        match &self.open {
            Some(open) if open.opened + self.tx_deadline <= self.deadline => {
                crate::procedure::Stopped::Transaction(self.tx_deadline)
            }
            _ => crate::procedure::Stopped::Procedure(self.procedure_deadline),
        }
    }

    /// A procedure with no transaction open.
    pub(crate) fn new(plan: TxPlan, http: ProcedureHttp) -> Self {
        Self {
            name: plan.name,
            ctx: plan.ctx,
            generation: plan.generation,
            submit: plan.submit,
            open: None,
            deadline: plan.deadline,
            procedure_deadline: plan.procedure_deadline,
            tx_deadline: plan.tx_deadline,
            http,
        }
    }

    /// When the open transaction was opened, if one is.
    pub(crate) fn tx_opened(&self) -> Option<Instant> {
        self.open.as_ref().map(|open| open.opened)
    }

    /// Sends the open transaction's datastore home to be rolled back,
    /// leaving an empty placeholder in `datastore`.
    pub(crate) fn roll_back_open(&mut self, datastore: &mut Datastore) {
        if let Some(open) = self.open.take() {
            let lent = std::mem::replace(datastore, Datastore::new(Vec::new()));
            let _ = open.back.send(Returned::Rollback(lent));
        }
    }
}

fn tx_error(kind: TxErrorKind, message: impl Into<String>) -> TxError {
    TxError {
        kind,
        message: message.into(),
    }
}

impl HostState {
    /// `transaction.begin` in a procedure.
    pub(crate) fn tx_begin(&mut self) -> Result<i64, TxError> {
        let Some(side) = self.procedure.as_mut() else {
            return Err(not_a_procedure("begin"));
        };
        if side.open.is_some() {
            return Err(tx_error(
                TxErrorKind::AlreadyOpen,
                "a transaction is already open; commit or roll it back first",
            ));
        }
        let (lend, loan) = mpsc::sync_channel(0);
        let request = TxRequest {
            procedure: side.name.clone(),
            ctx: side.ctx,
            generation: side.generation,
            lend,
        };
        (side.submit)(request).map_err(|reason| tx_error(TxErrorKind::Unavailable, reason))?;
        let waiting = side.deadline.saturating_duration_since(Instant::now());
        let loan = match loan.recv_timeout(waiting) {
            Ok(Ok(loan)) => loan,
            Ok(Err(reason)) => return Err(tx_error(TxErrorKind::Unavailable, reason)),
            Err(RecvTimeoutError::Timeout) => {
                return Err(tx_error(
                    TxErrorKind::Unavailable,
                    "the procedure's deadline passed while it waited for the database to \
                     open a transaction",
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(tx_error(
                    TxErrorKind::Unavailable,
                    "the database stopped before it could open a transaction",
                ));
            }
        };
        side.open = Some(OpenTx {
            back: loan.back,
            opened: Instant::now(),
        });
        self.datastore = loan.datastore;
        self.stored_bytes = loan.stored_bytes;
        self.bytes_written = 0;
        Ok(loan.timestamp.to_micros_since_epoch())
    }

    /// `transaction.commit` in a procedure: returns once the database
    /// committed it and it is durable.
    pub(crate) fn tx_commit(&mut self) -> Result<(), TxError> {
        let Some(side) = self.procedure.as_mut() else {
            return Err(not_a_procedure("commit"));
        };
        let open = side.open.take().ok_or_else(not_open)?;
        let deadline = side.deadline;
        // Cursors live as long as the transaction they were opened in.
        self.close_cursors();
        let datastore = std::mem::replace(&mut self.datastore, Datastore::new(Vec::new()));
        let (reply, answer) = mpsc::channel();
        if open
            .back
            .send(Returned::Commit { datastore, reply })
            .is_err()
        {
            return Err(tx_error(
                TxErrorKind::Unavailable,
                "the database stopped waiting for this transaction; nothing was committed",
            ));
        }
        let waiting = deadline.saturating_duration_since(Instant::now());
        match answer.recv_timeout(waiting) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(tx_error(TxErrorKind::Unavailable, reason)),
            Err(RecvTimeoutError::Timeout) => Err(tx_error(
                TxErrorKind::Unavailable,
                "the procedure's deadline passed before the commit was confirmed durable: it \
                 may or may not survive a crash",
            )),
            Err(RecvTimeoutError::Disconnected) => Err(tx_error(
                TxErrorKind::Unavailable,
                "the database stopped before it confirmed the commit: the transaction may or \
                 may not have been committed",
            )),
        }
    }

    /// `transaction.rollback` in a procedure.
    pub(crate) fn tx_rollback(&mut self) -> Result<(), TxError> {
        let Some(side) = self.procedure.as_mut() else {
            return Err(not_a_procedure("rollback"));
        };
        if side.open.is_none() {
            return Err(not_open());
        }
        side.roll_back_open(&mut self.datastore);
        self.close_cursors();
        Ok(())
    }

    /// Whether this is a procedure's instance with a transaction open.
    pub(crate) fn in_procedure_tx(&self) -> bool {
        self.procedure
            .as_ref()
            .is_some_and(|side| side.open.is_some())
    }

    /// Ends the procedure's call: closes its cursors and sends an open
    /// transaction home to be rolled back.
    pub(crate) fn end_procedure(&mut self) {
        self.close_cursors();
        if let Some(side) = self.procedure.as_mut() {
            side.roll_back_open(&mut self.datastore);
        }
    }
}

/// Reducers and `describe` run in the host's transaction, or none.
fn not_a_procedure(call: &str) -> TxError {
    tx_error(
        TxErrorKind::NotAProcedure,
        format!(
            "transaction.{call} is for procedures; a reducer runs in the transaction the \
             host opened for it"
        ),
    )
}

fn not_open() -> TxError {
    tx_error(
        TxErrorKind::NotOpen,
        "no transaction is open; call transaction.begin first",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn request() -> (TxRequest, Receiver<Result<Loan, String>>) {
        let (lend, loan) = mpsc::sync_channel(0);
        let request = TxRequest {
            procedure: "p".into(),
            ctx: CallContext::new(Identity::from_bytes([1; 32])),
            generation: 0,
            lend,
        };
        (request, loan)
    }

    #[test]
    fn a_loan_to_a_procedure_that_stopped_waiting_comes_back() {
        let (request, loan) = request();
        drop(loan);
        let mut datastore = Datastore::new(Vec::new());
        datastore.begin().expect("a transaction");
        let back = request
            .lend(datastore, 0, Timestamp::now())
            .err()
            .expect("the datastore comes back");
        assert!(
            back.in_transaction(),
            "untouched, its transaction still open"
        );
    }

    /// A procedure's instance holding a transaction opened `held` ago,
    /// with `left` of its whole deadline remaining, and the database's
    /// side of the loan.
    fn procedure_holding_a_loan(held: Duration, left: Duration) -> (HostState, LentTx) {
        let (request, loan) = request();
        let waiter = std::thread::spawn(move || loan.recv().expect("a loan").expect("lent"));
        let Ok(lent) = request.lend(Datastore::new(Vec::new()), 7, Timestamp::now()) else {
            panic!("the procedure waits for the loan")
        };
        let loan = waiter.join().expect("the procedure's thread");
        let config = crate::engine::EngineConfig::default();
        let log = crate::module_log::ModuleLog::new(crate::module_log::LogLimits {
            max_lines: 10,
            max_line_bytes: 100,
            max_bytes: 1000,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let now = Instant::now();
        let plan = TxPlan {
            name: "p".into(),
            ctx: CallContext::new(Identity::from_bytes([1; 32])),
            generation: 0,
            submit: Arc::new(|_| Err("no database".into())),
            deadline: now + left,
            procedure_deadline: Duration::from_secs(30),
            tx_deadline: Duration::from_secs(5),
        };
        let http = ProcedureHttp {
            client: Err("no HTTP".into()),
            runtime: runtime.handle().clone(),
            stop: crate::stop_signal::StopSignal::new(tokio::sync::watch::channel(false).1),
        };
        let mut side = ProcedureSide::new(plan, http);
        side.open = Some(OpenTx {
            back: loan.back,
            opened: now.checked_sub(held).expect("a past instant"),
        });
        let mut state = HostState::new(loan.datastore, log, &config);
        state.procedure = Some(Box::new(side));
        (state, lent)
    }

    /// A procedure instance dropped with a transaction open (as after a
    /// trap) sends the lent datastore home to be rolled back.
    #[test]
    fn a_dropped_procedure_sends_its_open_transaction_home() {
        let (state, lent) = procedure_holding_a_loan(Duration::ZERO, Duration::from_secs(1));
        assert!(state.in_procedure_tx());
        drop(state);
        assert!(matches!(
            lent.wait(Duration::from_millis(100)),
            Some(Returned::Rollback(_))
        ));
    }

    /// The epoch check stops a procedure holding a transaction past the
    /// reducer deadline, or running past its own.
    #[test]
    fn deadlines_stop_a_procedure() {
        use crate::procedure::{Stopped, past_deadline};
        let (fresh, _lent) = procedure_holding_a_loan(Duration::ZERO, Duration::from_secs(10));
        assert!(past_deadline(&fresh).is_ok());
        let (held, _lent) =
            procedure_holding_a_loan(Duration::from_secs(6), Duration::from_secs(10));
        let stopped = past_deadline(&held).err().expect("stopped");
        assert!(matches!(
            stopped.downcast_ref::<Stopped>(),
            Some(Stopped::Transaction(_))
        ));
        let (late, _lent) = procedure_holding_a_loan(Duration::ZERO, Duration::ZERO);
        let stopped = past_deadline(&late).err().expect("stopped");
        assert!(matches!(
            stopped.downcast_ref::<Stopped>(),
            Some(Stopped::Procedure(_))
        ));
    }
}
