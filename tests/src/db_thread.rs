//! A thread owning a [`Database`] and serving procedures' transactions as
//! the server's database thread does, for tests that call procedures on
//! the host without a server.

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use worldline_host::{
    CallContext, CallError, Database, Identity, ProcedureOutput, TxRequest, TxSubmitter,
};

/// What the database's thread is asked to do.
enum Command {
    /// Serve a procedure's transaction.
    Tx(TxRequest),
    /// Run something on the database.
    Run(Box<dyn FnOnce(&mut Database) + Send>),
}

/// A thread owning a database, as the server's database thread does, and
/// a runtime for the procedures' outbound HTTP.
pub struct DbThread {
    commands: mpsc::Sender<Command>,
    thread: JoinHandle<Database>,
    runtime: tokio::runtime::Runtime,
}

impl DbThread {
    /// Moves `database` to a thread of its own.
    pub fn spawn(database: Database) -> Self {
        let (commands, receiver) = mpsc::channel::<Command>();
        let thread = std::thread::spawn(move || {
            let mut db = database;
            for command in receiver {
                match command {
                    Command::Tx(request) => {
                        if let Some(committed) = db.serve_transaction(request) {
                            let durable = db
                                .wait_durable(committed.outcome.offset)
                                .map_err(|e| e.to_string());
                            committed.reply.send(durable);
                        }
                    }
                    Command::Run(job) => job(&mut db),
                }
            }
            db
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        Self {
            commands,
            thread,
            runtime,
        }
    }

    /// Runs `job` on the database's thread and returns what it returned.
    pub fn with<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Database) -> R + Send + 'static,
    ) -> R {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::Run(Box::new(move |db| {
                let _ = reply.send(job(db));
            })))
            .expect("the database thread runs");
        answer.recv().expect("the database thread answers")
    }

    /// Where a procedure sends its transactions: this thread.
    pub fn submitter(&self) -> TxSubmitter {
        let commands = self.commands.clone();
        Arc::new(move |request| {
            commands
                .send(Command::Tx(request))
                .map_err(|_| "the database stopped".to_owned())
        })
    }

    /// Calls a procedure as `caller`, as the server does: started on the
    /// database's thread, run on this one.
    pub fn call_as(
        &self,
        caller: Identity,
        name: &str,
        arguments: Vec<u8>,
    ) -> Result<ProcedureOutput, CallError> {
        let submit = self.submitter();
        let name = name.to_owned();
        let run = self.with(move |db| {
            db.start_procedure(&name, arguments, CallContext::new(caller), submit)
        })?;
        run.run(self.runtime.handle())
    }

    /// Stops the thread and gives the database back.
    pub fn stop(self) -> Database {
        drop(self.commands);
        self.thread.join().expect("the database thread ends")
    }
}
