//! What a procedure receives about its call, and its explicit transactions.

use std::fmt;

use crate::bindings::worldline::module::transaction as host;
use crate::bindings::worldline::module::types as wit;
use crate::context::Rng;
use crate::http::Http;
use crate::registry::Local;
use crate::types::{ConnectionId, Identity, Timestamp};

/// The context of a procedure call.
///
/// A procedure is not a transaction: it reaches tables only inside
/// [`with_tx`](ProcedureContext::with_tx), and the network only outside it,
/// through [`http`](ProcedureContext::http).
#[derive(Debug)]
#[non_exhaustive]
pub struct ProcedureContext {
    /// Who called: a client's identity (or the owner's, from the CLI).
    pub sender: Identity,
    /// The caller's connection, if the call came over one.
    pub connection_id: Option<ConnectionId>,
    /// When the procedure started.
    pub timestamp: Timestamp,
    seed: u64,
}

impl ProcedureContext {
    pub(crate) fn from_wit(ctx: wit::ProcedureContext) -> Self {
        Self {
            sender: Identity::from_wit(ctx.sender),
            connection_id: ctx.connection_id.map(ConnectionId::from_wit),
            timestamp: Timestamp::from_micros(ctx.timestamp),
            seed: ctx.seed,
        }
    }

    /// A random number generator seeded from this call's seed.
    pub fn rng(&self) -> Rng {
        Rng::from_seed(self.seed)
    }

    /// The HTTP client. Requests go only to hosts the database owner
    /// allowed, and only outside [`with_tx`](ProcedureContext::with_tx)
    /// (inside, they fail with
    /// [`NotAllowedHere`](crate::http::HttpErrorKind::NotAllowedHere)).
    pub fn http(&self) -> Http {
        Http::new()
    }

    /// Runs `body` in a transaction: commits when it returns `Ok`, rolls
    /// back when it returns `Err` (giving [`TxError::Aborted`]), and leaves
    /// the rollback to the host when it panics (the procedure traps).
    ///
    /// While the transaction is open the database runs nothing else, so keep
    /// `body` short and send HTTP requests before or after it. `body` cannot
    /// reach this context, so transactions do not nest.
    ///
    /// ```ignore
    /// let price = ctx.with_tx(|tx| {
    ///     let row = tx.db.price().symbol().find(&symbol);
    ///     Ok::<_, String>(row.map(|p| p.cents))
    /// })?;
    /// ```
    pub fn with_tx<R, E>(
        &mut self,
        body: impl FnOnce(&TxContext) -> Result<R, E>,
    ) -> Result<R, TxError<E>> {
        let timestamp = host::begin().map_err(TransactionError::from)?;
        let tx = TxContext {
            db: Local::new(),
            timestamp: Timestamp::from_micros(timestamp),
        };
        match body(&tx) {
            Ok(value) => match host::commit() {
                Ok(()) => Ok(value),
                Err(e) => {
                    // The commit failed: close the transaction if it is still
                    // open (`not-open` if it is not, which is just as well).
                    let _ = host::rollback();
                    Err(TransactionError::from(e).into())
                }
            },
            Err(e) => {
                if let Err(failed) = host::rollback() {
                    crate::log::warn(format!("rolling back failed: {}", failed.message));
                }
                Err(TxError::Aborted(e))
            }
        }
    }
}

/// What the body of [`ProcedureContext::with_tx`] sees.
#[derive(Debug)]
#[non_exhaustive]
pub struct TxContext {
    /// The database's tables, as `ReducerContext::db` reaches them.
    pub db: Local,
    /// When the transaction started.
    pub timestamp: Timestamp,
}

/// Why [`ProcedureContext::with_tx`] did not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxError<E> {
    /// The body returned this error; the transaction was rolled back.
    Aborted(E),
    /// The host could not begin or commit the transaction.
    Transaction(TransactionError),
}

impl<E> From<TransactionError> for TxError<E> {
    fn from(e: TransactionError) -> Self {
        TxError::Transaction(e)
    }
}

impl<E: fmt::Display> fmt::Display for TxError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::Aborted(e) => e.fmt(f),
            TxError::Transaction(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TxError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TxError::Aborted(e) => Some(e),
            TxError::Transaction(e) => Some(e),
        }
    }
}

/// Lets a procedure returning `Result<_, String>` use `?` on `with_tx`.
impl<E: fmt::Display> From<TxError<E>> for String {
    fn from(e: TxError<E>) -> String {
        e.to_string()
    }
}

/// The host's refusal to begin, commit or roll back a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionError {
    /// What went wrong.
    pub kind: TxErrorKind,
    /// A readable explanation.
    pub message: String,
}

impl From<host::TxError> for TransactionError {
    fn from(e: host::TxError) -> Self {
        use host::TxErrorKind as K;
        let kind = match e.kind {
            K::NotAProcedure => TxErrorKind::NotAProcedure,
            K::AlreadyOpen => TxErrorKind::AlreadyOpen,
            K::NotOpen => TxErrorKind::NotOpen,
            K::Unavailable => TxErrorKind::Unavailable,
        };
        Self {
            kind,
            message: e.message,
        }
    }
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransactionError {}

/// What kind of refusal a [`TransactionError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxErrorKind {
    /// Called outside a procedure.
    NotAProcedure,
    /// A transaction is already open.
    AlreadyOpen,
    /// No transaction is open.
    NotOpen,
    /// The database cannot take transactions now (its storage failed, or it
    /// is being stopped or replaced); after a failed commit the message
    /// says whether the outcome is unknown.
    Unavailable,
}
