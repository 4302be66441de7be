//! Calling a database's procedure: started on the database's thread (on the
//! current module), run on a blocking thread of the runtime with a fresh
//! instance, its transactions served by the database's thread in turn.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use worldline_host::datastore::AlgebraicType;
use worldline_host::{CallError, ConnectionId, Identity, TxSubmitter};

use crate::database_actor::{Command, DatabaseHandle, ProcedureCommand};
use crate::shared::{Missing, Shared};

/// A procedure call, from a client or the HTTP API.
pub(crate) struct ProcedureCall {
    /// Who calls (the procedure's `ctx.sender`).
    pub caller: Identity,
    /// The caller's connection, if the call came over one.
    pub connection_id: Option<ConnectionId>,
    /// The procedure's name.
    pub name: String,
    /// The postcard product of its arguments.
    pub args: Vec<u8>,
}

/// What a procedure returned.
pub(crate) struct ProcedureReturn {
    /// The postcard bytes of the return value (checked against `returns`).
    pub value: Vec<u8>,
    /// The procedure's declared return type.
    pub returns: AlgebraicType,
    /// How long the call ran (instantiation included, queueing excluded).
    pub duration: Duration,
}

/// Calls procedure `call.name` of `database` and waits for its result.
///
/// At most `EngineConfig::max_procedures_per_database` run per database at
/// once, and `Engine::max_procedures` on the whole server; a call beyond
/// either is refused at once with [`CallError::TooManyProcedures`] or
/// [`CallError::ServerTooManyProcedures`]. A database that does not exist gives
/// [`CallError::NoSuchDatabase`]; one that could not be recovered or stopped
/// taking calls, [`CallError::Unavailable`]. Must run inside the server's
/// (multi-threaded) tokio runtime, which also drives the procedure's HTTP.
pub(crate) async fn call_procedure(
    shared: &Shared,
    database: &str,
    call: ProcedureCall,
) -> Result<ProcedureReturn, CallError> {
    let handle = shared.lookup(database).map_err(|missing| match missing {
        Missing::NoSuchDatabase(name) => CallError::NoSuchDatabase(name),
        unavailable @ Missing::Unavailable(_) => CallError::Unavailable(unavailable.to_string()),
    })?;
    let runtime = tokio::runtime::Handle::current();
    let stopped = || CallError::Unavailable(format!("database `{database}` stopped"));
    let (reply, started) = oneshot::channel();
    let start = ProcedureCommand::Start {
        call,
        submit: submitter(&handle, &runtime),
        reply,
    };
    handle
        .send(Command::Procedure(start))
        .await
        .map_err(|_| stopped())?;
    let run = started.await.map_err(|_| stopped())??;
    let name = run.name().to_owned();
    let output = tokio::task::spawn_blocking(move || run.run(&runtime))
        .await
        .map_err(|e| CallError::ProcedureTrapped {
            procedure: name,
            message: format!("its thread failed: {e}"),
        })??;
    Ok(ProcedureReturn {
        value: output.value,
        returns: output.returns,
        duration: output.duration,
    })
}

/// Sends a procedure's transaction requests to its database's thread, from
/// the procedure's (blocking) thread.
fn submitter(handle: &DatabaseHandle, runtime: &tokio::runtime::Handle) -> TxSubmitter {
    let (handle, runtime) = (handle.clone(), runtime.clone());
    Arc::new(move |request| {
        let command = Command::Procedure(ProcedureCommand::Transaction(request));
        runtime
            .block_on(handle.send(command))
            .map_err(|e| e.to_string())
    })
}
