//! The database thread's part in procedure calls: starting one on the
//! current module, and serving its transactions in their turn (the
//! datastore is lent to the procedure's thread meanwhile; see
//! [`Database::serve_transaction`](worldline_host::Database::serve_transaction)).
//! A committed transaction reaches subscribers like a reducer's, and the
//! procedure's `commit` returns once it is durable.

use tokio::sync::oneshot;
use worldline_host::{CallContext, CallError, CommittedTx, ProcedureRun, TxRequest, TxSubmitter};

use super::Actor;
use crate::procedures::ProcedureCall;

/// What a procedure call asks of its database's thread.
pub(crate) enum ProcedureCommand {
    /// Check the call and take what it needs from the current module.
    Start {
        call: ProcedureCall,
        submit: TxSubmitter,
        reply: oneshot::Sender<Result<ProcedureRun, CallError>>,
    },
    /// Open a transaction for a running procedure.
    Transaction(TxRequest),
}

impl ProcedureCommand {
    /// Roughly how many bytes the command holds while it waits.
    pub(super) fn bytes(&self) -> usize {
        match self {
            ProcedureCommand::Start { call, .. } => call.name.len() + call.args.len(),
            ProcedureCommand::Transaction(request) => request.procedure().len(),
        }
    }
}

impl Actor {
    pub(super) fn procedure(&mut self, command: ProcedureCommand) {
        match command {
            ProcedureCommand::Start {
                call,
                submit,
                reply,
            } => {
                let result = match &self.stopped {
                    Some(reason) => Err(CallError::Unavailable(reason.clone())),
                    None => {
                        let mut ctx = CallContext::new(call.caller);
                        ctx.connection_id = call.connection_id;
                        self.database
                            .start_procedure(&call.name, call.args, ctx, submit)
                    }
                };
                let _ = reply.send(result);
            }
            ProcedureCommand::Transaction(request) => self.serve_transaction(request),
        }
    }

    /// Lends the tables to the procedure until it commits or rolls back;
    /// fans a commit out and answers the procedure once it is durable.
    fn serve_transaction(&mut self, request: TxRequest) {
        if let Some(reason) = &self.stopped {
            request.refuse(format!("database `{}` is unavailable: {reason}", self.name));
            return;
        }
        let Some(CommittedTx {
            outcome,
            procedure,
            ctx,
            reply,
        }) = self.database.serve_transaction(request)
        else {
            return;
        };
        self.fan_out_reducer(&procedure, ctx, &outcome);
        self.after_durable(outcome.offset, Box::new(move |durable| reply.send(durable)));
    }
}
