//! The Worldline host.
//!
//! A [`Database`] is one published module: a WASI component implementing the
//! `worldline:module` world (see `wit/worldline.wit`), running in a wasmtime
//! sandbox over its own in-memory [`Datastore`](worldline_datastore::Datastore).
//! Reducers run one at a time; each is a transaction that commits when the
//! reducer returns `ok` and leaves no trace when it fails, panics, traps,
//! runs out of time or exceeds its memory cap.
//!
//! Procedures (0.2.0 modules) run beside the reducers, each on a fresh
//! instance on a thread of the caller's: [`Database::start_procedure`] on
//! the database's thread, then [`ProcedureRun::run`] elsewhere. They open
//! explicit transactions, which [`Database::serve_transaction`] serves on
//! the database's thread in turn by lending it the tables, and may send
//! HTTP requests outside them, under the database's allow-list.
//!
//! ```no_run
//! use worldline_host::{CallContext, Database, Engine, EngineConfig, Identity};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(EngineConfig::default())?;
//! let wasm = std::fs::read("bank.wasm")?;
//! let owner = Identity::from_bytes([1; 32]);
//! let mut db = Database::create(&engine, &wasm, owner)?;
//! let args = [10u8, 100]; // postcard of (n: u32 = 10, balance: i64 = 50)
//! db.call_reducer("seed", &args, CallContext::new(owner))?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod auth;
mod bindings;
mod component_cache;
mod database;
mod engine;
mod error;
mod host;
mod host_calls;
mod identity;
mod log_throttle;
mod module_log;
mod procedure;
mod procedure_http;
mod procedure_imports;
mod procedure_tx;
mod regular_file;
mod repair;
mod scheduler;
mod schema_import;
mod secret_file;
mod state;
mod stderr_tail;
mod stop_signal;
mod storage;
mod wait_cap;
mod world;

pub use auth::{AuthError, Authority, identity_for};
pub use component_cache::CacheStats;
pub use database::{
    CallContext, Database, MAX_SCHEDULED_RUNS, PreparedModule, ReducerOutcome, ScheduleClocks,
    ScheduledRun, SwapPolicy, describe_component, describe_component_definition,
};
pub use engine::{CompileHook, Engine, EngineConfig};
pub use error::{CallError, HostError, listed_changes, quoted_name};
pub use host::{Host, HostConfig, Remedy, UnavailableDatabase, check_database_name, database_span};
pub use identity::{ConnectionId, Identity, Timestamp};
pub use module_log::{LogLevel, LogLimits, LogRecord, ModuleLog};
pub use procedure::{ProcedureOutput, ProcedureRun};
pub use procedure_tx::{CommitReply, CommittedTx, TxRequest, TxSubmitter};
pub use regular_file::read_regular_file;
pub use repair::{Repair, repair_database};
pub use secret_file::{
    SecretFileError, check_secret_file, create_private_dir_all, write_secret_file,
};
pub use storage::{
    DurabilityPolicy, LogCut, RecoveryReport, RepairPlan, StorageConfig, StorageError, SyncHook,
};
pub use worldline_datastore as datastore;
pub use worldline_outbound as outbound;
