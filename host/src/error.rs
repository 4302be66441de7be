//! Errors of the host library.

use std::time::Duration;

use worldline_datastore::{IncompatibleSchema, MigrationError, MigrationPlan, SchemaError};

use crate::secret_file::SecretFileError;
use crate::storage::StorageError;

/// Why a database could not be created, opened, swapped to a new module or deleted.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The wasm engine could not be configured.
    #[error("could not configure the wasm engine: {0}")]
    Engine(String),
    /// The bytes are not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The bytes end before the component does (a partly written or partly copied file).
    #[error("the component is truncated (its bytes end early): {0}")]
    TruncatedComponent(String),
    /// The component imports something Worldline does not provide, or does not export `guest`.
    #[error("the component does not fit the worldline:module world (0.2.0, or 0.1.0): {0}")]
    WorldMismatch(String),
    /// The module's `describe` trapped.
    #[error("the module trapped while describing itself: {0}")]
    DescribeTrapped(String),
    /// The module's `describe` returned another schema on a second
    /// instance than on the first (it reads the clock or `wasi:random`):
    /// the database would not start again after a restart. Holds what
    /// changed, one line each.
    #[error(
        "the module's `describe` returned another schema when asked again (on a fresh \
         instance): `describe` must be deterministic, or the database would not open at the \
         next server start. What changed:\n{0}"
    )]
    DescribeNondeterministic(String),
    /// The module's `describe` did not return within the reducer deadline.
    #[error("describe did not return within the {}ms deadline", .0.as_millis())]
    DescribeTimedOut(Duration),
    /// Instantiating the component (its start function and constructors) trapped.
    #[error("the module trapped while starting (in its constructors): {0}")]
    StartTrapped(String),
    /// Instantiating the component (its start function and constructors)
    /// did not finish within the reducer deadline.
    #[error(
        "the module did not finish starting (its constructors) within the {}ms deadline",
        .0.as_millis()
    )]
    StartTimedOut(Duration),
    /// Every slot of the server's instance pool is taken.
    #[error(
        "the server's instance pool is full ({limit} instances; {detail}); raise --max-instances \
         (EngineConfig::max_instances) or delete a database"
    )]
    InstancePoolFull {
        /// The configured number of instances.
        limit: u32,
        /// Which pool ran out, as wasmtime reports it.
        detail: String,
    },
    /// The module described an invalid schema.
    #[error("invalid module schema: {0}")]
    Schema(#[from] SchemaError),
    /// The module's `init` reducer failed, so the database was not created.
    #[error("the module's init reducer failed: {0}")]
    InitFailed(#[source] CallError),
    /// No table has this name.
    #[error("no table named `{0}`")]
    NoSuchTable(String),
    /// The database's commit log failed (a full disk, an I/O error): its
    /// tables may hold transactions that are not durable and are not served
    /// until the server restarts, and a new database's `init` could not be
    /// made durable (so it was not created).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Persisting or recovering the database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The server's signing key could not be written, or others can read it.
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// Another process holds the data directory.
    #[error("the data directory {0} is in use by another Worldline server")]
    DataDirLocked(String),
    /// The data directory could not be opened or laid out.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A database with this name exists already.
    #[error("a database named `{0}` exists already")]
    DatabaseExists(String),
    /// No database has this name.
    #[error("no database named `{0}`")]
    NoSuchDatabase(String),
    /// The database was handed out by `Host::take_database` and is still open.
    #[error("database `{0}` is still open; stop and drop it first")]
    DatabaseInUse(String),
    /// The new module's tables cannot hold the database's rows; its
    /// `Display` lists every incompatible change, one per line.
    #[error("the new module's schema is incompatible with the database's:\n{0}")]
    IncompatibleSchema(IncompatibleSchema),
    /// The swap policy refuses these changes (the ones it does not allow).
    #[error("the swap policy does not allow these changes:\n{0}")]
    SwapRefused(MigrationPlan),
    /// The rows could not be carried over to the new module's tables.
    #[error("migrating the database failed: {0}")]
    Migration(#[from] MigrationError),
    /// Database `name` could not be recovered when the data directory was
    /// opened (by [`Host::open`](crate::Host::open), which opens every
    /// database or none); `source` says why.
    #[error("database `{name}` could not be recovered: {source}")]
    Recovery {
        /// The database's name.
        name: String,
        /// Why it could not be recovered.
        source: Box<HostError>,
    },
    /// Database names are 1 to 64 characters: lowercase letters, digits,
    /// `-` and `_`. Holds the name as [`quoted_name`] quotes it.
    #[error(
        "`{0}` is not a valid database name: use 1 to 64 lowercase letters, digits, `-` or `_`"
    )]
    InvalidName(String),
}

/// Why a reducer call changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The module has no reducer with this name.
    #[error("no reducer named `{0}`")]
    NoSuchReducer(String),
    /// The name is a procedure's, called as a reducer.
    #[error("no reducer named `{0}`: `{0}` is a procedure; call it as one (`CallProcedure`)")]
    IsAProcedure(String),
    /// Lifecycle reducers are called by the host only.
    #[error("`{0}` is a lifecycle reducer and cannot be called by name")]
    LifecycleReducer(String),
    /// A scheduled reducer runs when its table's rows are due; only the
    /// database owner may call it directly.
    #[error(
        "`{reducer}` is scheduled by table `{table}`: only the database owner may call it \
         directly (insert a row into `{table}` to schedule it)"
    )]
    ScheduledReducer {
        /// The reducer called.
        reducer: String,
        /// The table that schedules it.
        table: String,
    },
    /// The argument bytes do not decode as the reducer's parameters.
    #[error("invalid arguments for reducer `{reducer}`: {message}")]
    InvalidArguments {
        /// The reducer called.
        reducer: String,
        /// What did not decode.
        message: String,
    },
    /// The reducer returned an error.
    #[error("{0}")]
    Failed(String),
    /// The reducer panicked; the message is the panic's.
    #[error("the reducer panicked: {0}")]
    Panicked(String),
    /// The module trapped for another reason.
    #[error("the module trapped: {0}")]
    Trapped(String),
    /// The reducer ran past its deadline and was interrupted.
    #[error("the reducer ran longer than its {0:?} deadline and was stopped")]
    DeadlineExceeded(Duration),
    /// The call was refused and changed nothing: the database is not
    /// taking calls (its module could not be restarted, or its commit log
    /// failed). Retrying after the database recovers is safe.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The transaction was handed to the commit log, which then failed: it
    /// may or may not be durable, and a restart recovers it or not. Do not
    /// retry blindly; check whether it took effect once the server is back.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The module went past a limit the host sets per call (cursors open
    /// at once, bytes written by one transaction); the message names the limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// The module tried to grow its memory past the cap.
    #[error("the module exceeded its memory limit of {limit_bytes} bytes")]
    OutOfMemory {
        /// The memory cap in bytes.
        limit_bytes: usize,
    },
    /// The server has no database with this name.
    #[error("no database named `{0}` on this server")]
    NoSuchDatabase(String),
    /// The module has no procedure with this name.
    #[error("no procedure named `{0}`")]
    NoSuchProcedure(String),
    /// The argument bytes do not decode as the procedure's parameters.
    #[error("invalid arguments for procedure `{procedure}`: {message}")]
    InvalidProcedureArguments {
        /// The procedure called.
        procedure: String,
        /// What did not decode.
        message: String,
    },
    /// The procedure returned bytes that are not a value of its declared
    /// return type (a broken module or SDK). Its committed transactions
    /// stay committed.
    #[error(
        "procedure `{procedure}` returned a value that does not decode as its declared \
         return type: {message}"
    )]
    InvalidReturn {
        /// The procedure called.
        procedure: String,
        /// What did not decode.
        message: String,
    },
    /// The procedure trapped (a panic, a host limit, a refused memory
    /// growth); its open transaction, if any, was rolled back and its
    /// committed ones stay committed.
    #[error("procedure `{procedure}` trapped: {message}")]
    ProcedureTrapped {
        /// The procedure called.
        procedure: String,
        /// Why, with what the module last said.
        message: String,
    },
    /// The procedure ran past the procedure deadline and was stopped; its
    /// open transaction, if any, was rolled back.
    #[error(
        "procedure `{procedure}` ran longer than its {deadline:?} deadline and was stopped \
         (an open transaction was rolled back; committed ones stay)"
    )]
    ProcedureDeadline {
        /// The procedure called.
        procedure: String,
        /// The deadline ([`EngineConfig::procedure_deadline`](crate::EngineConfig::procedure_deadline)).
        deadline: Duration,
    },
    /// The procedure kept a transaction open past the reducer deadline: it
    /// was stopped and the transaction rolled back.
    #[error(
        "procedure `{procedure}` kept a transaction open longer than {deadline:?} and was \
         stopped; the transaction was rolled back"
    )]
    TransactionDeadline {
        /// The procedure called.
        procedure: String,
        /// The deadline ([`EngineConfig::reducer_deadline`](crate::EngineConfig::reducer_deadline)).
        deadline: Duration,
    },
    /// The database already runs as many procedures as it may at once;
    /// nothing ran. Retry once one finishes.
    #[error(
        "the database already runs {limit} procedure{} at once, the most it may; try again \
         when one finishes",
        plural(*limit)
    )]
    TooManyProcedures {
        /// [`EngineConfig::max_procedures_per_database`](crate::EngineConfig::max_procedures_per_database).
        limit: usize,
    },
    /// The server already runs as many procedures as it may at once, all
    /// databases together (a quarter of its instance pool, so that running
    /// procedures never leave the databases without instances); nothing
    /// ran. Retry once one finishes.
    #[error(
        "the server already runs {limit} procedure{} at once, the most it may (a quarter of \
         its instance pool); try again when one finishes",
        plural(*limit)
    )]
    ServerTooManyProcedures {
        /// [`Engine::max_procedures`](crate::Engine::max_procedures).
        limit: usize,
    },
    /// No slot of the server's instance pool was free to run the
    /// procedure: nothing ran, and the database's reducers keep serving.
    /// The message is [`HostError::InstancePoolFull`]'s. Retry later.
    #[error("{0}")]
    InstancePoolFull(String),
    /// The server shut down while the procedure ran and stopped it: an
    /// open transaction was rolled back, committed ones stay.
    #[error(
        "the server is shutting down; procedure `{0}` was stopped (an open transaction was \
         rolled back; committed ones stay)"
    )]
    ProcedureStopped(String),
}

/// The most characters of a name a client gave that an error quotes.
const QUOTED_NAME_CHARS: usize = 200;

/// A name from a client (which may be very long), as an error quotes it:
/// whole if it has at most [`QUOTED_NAME_CHARS`] characters, else its first
/// [`QUOTED_NAME_CHARS`] characters followed by `…`.
pub fn quoted_name(name: &str) -> String {
    worldline_datastore::excerpt(name, QUOTED_NAME_CHARS)
}

/// The most changes an error lists (a schema diff, say); the rest are counted.
const LISTED_CHANGES: usize = 50;

/// A list of changes, one per line of `text`, as an error shows it: at
/// most [`LISTED_CHANGES`] lines, each cut like a quoted name (a column's
/// type can be long), and then a line counting the rest, so that a module
/// with thousands of tables cannot make an error of megabytes.
pub fn listed_changes(text: &str) -> Vec<String> {
    let mut all = text.lines();
    let mut lines: Vec<String> = all.by_ref().take(LISTED_CHANGES).map(quoted_name).collect();
    let rest = all.count();
    if rest > 0 {
        lines.push(format!("… and {rest} more"));
    }
    lines
}

/// The ending of a count's noun: none for one, `s` otherwise.
fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_change_list_is_cut_and_counted() {
        let text: String = (0..LISTED_CHANGES + 7)
            .map(|i| format!("change {i}: {}\n", "x".repeat(1000)))
            .collect();
        let listed = listed_changes(&text);
        assert_eq!(listed.len(), LISTED_CHANGES + 1);
        assert!(listed[0].starts_with("change 0: xxx") && listed[0].ends_with('…'));
        assert_eq!(listed[0].chars().count(), QUOTED_NAME_CHARS + 1);
        assert_eq!(listed[LISTED_CHANGES], "… and 7 more");
        assert_eq!(listed_changes("a\nb"), ["a", "b"]);
    }

    #[test]
    fn a_long_name_is_quoted_cut() {
        assert_eq!(quoted_name("transfer"), "transfer");
        let long = "é".repeat(QUOTED_NAME_CHARS + 1);
        let quoted = quoted_name(&long);
        assert_eq!(quoted.chars().count(), QUOTED_NAME_CHARS + 1);
        assert!(quoted.ends_with("é…"));
        assert_eq!(
            CallError::NoSuchReducer(quoted_name(&"a".repeat(1 << 20)))
                .to_string()
                .len(),
            "no reducer named ``".len() + QUOTED_NAME_CHARS + "…".len()
        );
    }
}
