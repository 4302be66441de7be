//! Procedure calls: each runs on a thread of the caller's choosing, on a
//! fresh instance of the database's current component, with deadlines of
//! its own; see [`Database::start_procedure`](crate::Database::start_procedure).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use wasmtime::{Store, UpdateDeadline};
use worldline_datastore::{AlgebraicType, Datastore, ModuleSchema, check_product, skip_value};
use worldline_outbound::OutboundHttp;

use crate::database::CallContext;
use crate::engine::Engine;
use crate::error::{CallError, HostError, quoted_name};
use crate::identity::{ConnectionId, Timestamp};
use crate::module_log::{LogLevel, SharedLog, truncate_line};
use crate::procedure_http::ProcedureHttp;
use crate::procedure_tx::{ProcedureSide, TxPlan, TxSubmitter};
use crate::state::{HostState, classify_trap};
use crate::stop_signal::StopSignal;
use crate::world::{ProcedureContext, WorldPre};

/// What a procedure returned.
#[derive(Debug, Clone)]
pub struct ProcedureOutput {
    /// The postcard bytes of the return value (checked to decode as `returns`).
    pub value: Vec<u8>,
    /// The procedure's declared return type.
    pub returns: AlgebraicType,
    /// How long the call took, instantiation included.
    pub duration: Duration,
}

/// How many procedures a database runs now; a [`RunningSlot`] holds one.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProcedureSlots(Arc<AtomicUsize>);

impl ProcedureSlots {
    /// Takes a slot, or `None` when `limit` procedures run already.
    fn take(&self, limit: usize) -> Option<RunningSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < limit).then_some(running + 1)
            })
            .ok()
            .map(|_| RunningSlot(Arc::clone(&self.0)))
    }
}

/// One running procedure's place among its database's; freed when dropped.
struct RunningSlot(Arc<AtomicUsize>);

impl Drop for RunningSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a database gives a procedure call, taken on the database's thread.
pub(crate) struct ProcedureSource<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) pre: &'a WorldPre,
    pub(crate) schema: &'a ModuleSchema,
    pub(crate) log: &'a SharedLog,
    pub(crate) generation: u64,
    pub(crate) slots: &'a ProcedureSlots,
    pub(crate) http: Result<OutboundHttp, String>,
}

/// A procedure call checked and ready to run, holding one of its
/// database's procedure slots until it is dropped. Made by
/// [`Database::start_procedure`](crate::Database::start_procedure) on the
/// database's thread; [`run`](Self::run) it on another thread.
pub struct ProcedureRun {
    engine: Engine,
    pre: WorldPre,
    id: u32,
    name: String,
    returns: AlgebraicType,
    args: Vec<u8>,
    ctx: CallContext,
    log: SharedLog,
    generation: u64,
    submit: TxSubmitter,
    http: Result<OutboundHttp, String>,
    /// Its places among its database's procedures and the server's.
    _slots: (RunningSlot, RunningSlot),
}

impl ProcedureRun {
    /// Checks the call (the procedure exists, the arguments decode as its
    /// parameters, a slot is free) and takes what running it needs.
    pub(crate) fn prepare(
        source: ProcedureSource<'_>,
        name: &str,
        args: Vec<u8>,
        ctx: CallContext,
        submit: TxSubmitter,
    ) -> Result<Self, CallError> {
        let id = source
            .schema
            .procedure_id(name)
            .ok_or_else(|| CallError::NoSuchProcedure(quoted_name(name)))?;
        let procedure = &source.schema.procedures[id];
        check_product(&procedure.params, &args).map_err(|e| {
            CallError::InvalidProcedureArguments {
                procedure: procedure.name.clone(),
                message: e.to_string(),
            }
        })?;
        let limit = source.engine.config().max_procedures_per_database;
        let slot = source
            .slots
            .take(limit)
            .ok_or(CallError::TooManyProcedures { limit })?;
        let limit = source.engine.max_procedures();
        let server_slot = source
            .engine
            .procedure_slots()
            .take(limit)
            .ok_or(CallError::ServerTooManyProcedures { limit })?;
        Ok(Self {
            engine: source.engine.clone(),
            pre: source.pre.clone(),
            id: u32::try_from(id).map_err(|_| CallError::NoSuchProcedure(quoted_name(name)))?,
            name: procedure.name.clone(),
            returns: procedure.returns.clone(),
            args,
            ctx,
            log: source.log.clone(),
            generation: source.generation,
            submit,
            http: source.http,
            _slots: (slot, server_slot),
        })
    }

    /// The procedure's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the procedure on a fresh instance, on this thread, blocking
    /// until it returns (at most [`EngineConfig::procedure_deadline`](crate::EngineConfig::procedure_deadline),
    /// plus waiting for a commit to be durable). Its transactions are
    /// served by the database's thread through the submitter given to
    /// `start_procedure`, so this must not run on that thread. `runtime`
    /// (a multi-threaded tokio runtime) drives its HTTP requests; it must
    /// not be called from inside that runtime's async context.
    ///
    /// Writes one line to the module log: `procedure NAME: ok in 1.2 ms`,
    /// or `failed`/`trapped in … : why`.
    pub fn run(self, runtime: &Handle) -> Result<ProcedureOutput, CallError> {
        let started = Instant::now();
        let result = self.call(runtime, started);
        let duration = started.elapsed();
        let millis = duration.as_secs_f64() * 1000.0;
        match &result {
            Ok(_) => self.log.push(
                LogLevel::Info,
                format!("procedure {}: ok in {millis:.1} ms", self.name),
            ),
            Err(
                error @ (CallError::ProcedureTrapped { .. }
                | CallError::ProcedureDeadline { .. }
                | CallError::TransactionDeadline { .. }),
            ) => self.log.push(
                LogLevel::Error,
                format!(
                    "procedure {}: trapped in {millis:.1} ms: {error}",
                    self.name
                ),
            ),
            Err(error) => self.log.push(
                LogLevel::Warn,
                format!("procedure {}: failed in {millis:.1} ms: {error}", self.name),
            ),
        }
        result.map(|value| ProcedureOutput {
            value,
            returns: self.returns,
            duration,
        })
    }

    fn call(&self, runtime: &Handle, started: Instant) -> Result<Vec<u8>, CallError> {
        let config = self.engine.config();
        let deadline = started + config.procedure_deadline;
        let mut state = HostState::new(Datastore::new(Vec::new()), self.log.clone(), config);
        let plan = TxPlan {
            name: self.name.clone(),
            ctx: self.ctx,
            generation: self.generation,
            submit: Arc::clone(&self.submit),
            deadline,
            procedure_deadline: config.procedure_deadline,
            tx_deadline: config.reducer_deadline,
        };
        let stop = StopSignal::new(self.engine.procedures_stopping());
        let http = ProcedureHttp {
            client: self.http.clone(),
            runtime: runtime.clone(),
            stop: stop.clone(),
        };
        state.procedure = Some(Box::new(ProcedureSide::new(plan, http)));
        let mut store = Store::new(self.engine.wasmtime(), state);
        store.limiter(|state| state.limiter());
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| past_deadline(store.data()));
        let module = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.start_error(&e, store.data()))?;
        store.data_mut().start_call();
        let context = ProcedureContext {
            sender: self.ctx.caller.to_words(),
            connection_id: self.ctx.connection_id.map(ConnectionId::to_words),
            timestamp: Timestamp::now().to_micros_since_epoch(),
            seed: rand::random(),
        };
        let result = module.call_procedure(&mut store, self.id, context, &self.args);
        // A transaction still open is rolled back (the instance is dropped
        // with the store either way; its `Drop` would too).
        store.data_mut().end_procedure();
        if stop.cut_short() {
            // It returned, or failed, after a wait the stop cut short,
            // before an epoch check could stop it: not what it would have
            // returned.
            return Err(CallError::ProcedureStopped(self.name.clone()));
        }
        match result {
            None => Err(CallError::NoSuchProcedure(self.name.clone())),
            Some(Ok(Ok(value))) => self.check_return(value),
            Some(Ok(Err(mut message))) => {
                truncate_line(&mut message, config.max_log_line_bytes);
                message.shrink_to_fit();
                Err(CallError::Failed(message))
            }
            Some(Err(trap)) => Err(self.trap_error(&trap, store.data())),
        }
    }

    /// Refuses bytes that are not exactly one value of the return type.
    fn check_return(&self, value: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let mut rest = &value[..];
        let checked = skip_value(&self.returns, &mut rest)
            .map_err(|e| e.to_string())
            .and_then(|_| match rest.len() {
                0 => Ok(()),
                extra => Err(format!("{extra} bytes left over after the value")),
            });
        match checked {
            Ok(()) => Ok(value),
            Err(message) => Err(CallError::InvalidReturn {
                procedure: self.name.clone(),
                message,
            }),
        }
    }

    fn trap_error(&self, trap: &wasmtime::Error, state: &HostState) -> CallError {
        let procedure = self.name.clone();
        match trap.downcast_ref::<Stopped>() {
            Some(Stopped::Procedure(deadline)) => CallError::ProcedureDeadline {
                procedure,
                deadline: *deadline,
            },
            Some(Stopped::Transaction(deadline)) => CallError::TransactionDeadline {
                procedure,
                deadline: *deadline,
            },
            Some(Stopped::Shutdown) => CallError::ProcedureStopped(procedure),
            None => {
                let message = match classify_trap(self.engine.config(), state, trap) {
                    CallError::Panicked(message) => format!("panicked: {message}"),
                    other => other.to_string(),
                };
                CallError::ProcedureTrapped { procedure, message }
            }
        }
    }

    /// Why the fresh instance could not start: a full instance pool is the
    /// server's state (retry later), anything else (a deadline included)
    /// the module's fault.
    fn start_error(&self, error: &wasmtime::Error, state: &HostState) -> CallError {
        if error.downcast_ref::<Stopped>().is_some() {
            // Its constructors ran past the procedure deadline.
            return self.trap_error(error, state);
        }
        match self.engine.instantiate_error(error, state) {
            full @ HostError::InstancePoolFull { .. } => {
                CallError::InstancePoolFull(full.to_string())
            }
            other => CallError::ProcedureTrapped {
                procedure: self.name.clone(),
                message: other.to_string(),
            },
        }
    }
}

/// Which deadline stopped a procedure (the error its trap carries).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Stopped {
    /// The whole call's.
    #[error("the procedure ran past its {0:?} deadline")]
    Procedure(Duration),
    /// Its open transaction's.
    #[error("the procedure kept a transaction open past {0:?}")]
    Transaction(Duration),
    /// The server is shutting down ([`Engine::stop_procedures`](crate::Engine::stop_procedures)).
    #[error("the server is shutting down")]
    Shutdown,
}

/// Checked at every epoch tick while the procedure's wasm runs: traps it
/// once it runs past its deadline or holds a transaction past the
/// reducer deadline.
pub(crate) fn past_deadline(state: &HostState) -> wasmtime::Result<UpdateDeadline> {
    let Some(side) = state.procedure.as_ref() else {
        return Ok(UpdateDeadline::Continue(1));
    };
    if side.http.stop.is_set() {
        return Err(Stopped::Shutdown.into());
    }
    let now = Instant::now();
    if now >= side.deadline {
        return Err(Stopped::Procedure(side.procedure_deadline).into());
    }
    if side
        .tx_opened()
        .is_some_and(|opened| now.duration_since(opened) >= side.tx_deadline)
    {
        return Err(Stopped::Transaction(side.tx_deadline).into());
    }
    Ok(UpdateDeadline::Continue(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_refuse_past_the_limit_and_free_when_a_run_ends() {
        let slots = ProcedureSlots::default();
        let first = slots.take(2).expect("a first slot");
        let second = slots.take(2).expect("a second slot");
        assert!(slots.take(2).is_none());
        drop(first);
        let third = slots.take(2).expect("a freed slot");
        drop((second, third));
        assert_eq!(slots.0.load(Ordering::Acquire), 0);
    }
}
