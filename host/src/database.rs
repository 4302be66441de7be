//! A database: one module instance, its schema and its tables, with
//! reducer calls run as transactions.

use std::sync::{MutexGuard, Weak};
use std::time::{Duration, Instant};

use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use wasmtime::Store;
use worldline_datastore::{
    Datastore, DbError, Lifecycle, MigrationPlan, ModuleSchema, Row, TxDelta, check_product,
    describe_changes, plan_migration,
};
use worldline_outbound::{AllowList, HttpPolicy, OutboundHttp};

use crate::engine::Engine;
use crate::error::{CallError, HostError, listed_changes, quoted_name};
use crate::host_calls::quota_bytes;
use crate::identity::{ConnectionId, Identity, Timestamp};
use crate::log_throttle::{LogThrottle, held_back_note};
use crate::module_log::{LogLevel, ModuleLog, truncate_line};
use crate::procedure::{ProcedureRun, ProcedureSlots, ProcedureSource};
use crate::procedure_tx::{CommitReply, CommittedTx, Returned, TxRequest, TxSubmitter};
use crate::scheduler::Scheduler;
use crate::schema_import::import_module;
use crate::state::{HostState, classify_trap};
use crate::storage::{DatabaseStorage, RecoveryReport, StorageConfig, SwapFailed};
use crate::world::{Guest, ReducerContext, WorldPre};

mod schedules;

pub use schedules::{MAX_SCHEDULED_RUNS, ScheduledRun};

pub use crate::scheduler::ScheduleClocks;

/// The file in a database's directory holding its HTTP allow-list (the
/// canonical text of an [`AllowList`]; missing means none).
pub(crate) const HTTP_ALLOW_FILE: &str = "http_allow";

/// What "what changed" says of two module descriptions that differ only
/// in what a hot swap does not list.
pub(crate) const UNLISTED_DIFFERENCE: &str = "(a difference a hot swap does not list: the order \
     of its tables, reducers or columns, or a table or reducer listed twice)";

/// Who is calling a reducer, and over which connection.
#[derive(Clone, Copy, Debug)]
pub struct CallContext {
    /// The caller's identity.
    pub caller: Identity,
    /// The caller's connection, if the call came over one.
    pub connection_id: Option<ConnectionId>,
    /// The transaction's timestamp; `None` means the time the call starts.
    pub timestamp: Option<Timestamp>,
}

impl CallContext {
    /// A call by `caller`, not tied to a connection, timestamped when it runs.
    pub fn new(caller: Identity) -> Self {
        Self {
            caller,
            connection_id: None,
            timestamp: None,
        }
    }

    /// The same call, made over `connection_id`.
    pub fn with_connection(mut self, connection_id: ConnectionId) -> Self {
        self.connection_id = Some(connection_id);
        self
    }
}

/// What a committed reducer call did.
#[derive(Debug)]
pub struct ReducerOutcome {
    /// The rows the transaction inserted and deleted, per table.
    pub delta: TxDelta,
    /// The transaction's timestamp, as the reducer saw it.
    pub timestamp: Timestamp,
    /// How long the reducer ran, including the commit.
    pub duration: Duration,
    /// The transaction's position in the commit log, for a persistent
    /// database and a transaction that changed something.
    pub offset: Option<u64>,
}

/// Which compatible schema changes [`Database::hot_swap`] may make.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SwapPolicy {
    /// Every compatible change (see
    /// [`plan_migration`](worldline_datastore::plan_migration)).
    #[default]
    Compatible,
    /// Only changes that clients built against the old module cannot
    /// notice ([`MigrationPlan::is_additive`]): tables, indexes, reducers
    /// and procedures added, tables made public. Refuses reducers or
    /// procedures removed or changed, indexes removed and tables made private.
    Additive,
}

/// A running module instance and the store that owns its state.
struct Instance {
    store: Store<HostState>,
    module: Guest,
}

/// A compiled component, instantiated over empty tables, and its schema.
struct Loaded {
    pre: WorldPre,
    instance: Instance,
    schema: ModuleSchema,
}

impl Loaded {
    /// Compiles `wasm`, checks it against the `worldline:module` world,
    /// instantiates it and reads its schema. Runs no reducer.
    fn compile(engine: &Engine, wasm: &[u8]) -> Result<Self, HostError> {
        let (pre, instance, description) = Self::describe(engine, wasm)?;
        let schema = import_module(description)?;
        Ok(Self {
            pre,
            instance,
            schema,
        })
    }

    /// Compiles `wasm`, checks it against the `worldline:module` world,
    /// instantiates it and calls its `describe` export, returning the
    /// definition as the guest returned it (not yet imported).
    fn describe(
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(WorldPre, Instance, crate::world::ModuleDef), HostError> {
        let component = engine
            .component(wasm)
            .map_err(|e| component_error(wasm, &e))?;
        let pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| HostError::WorldMismatch(format!("{e:#}")))?;
        let pre =
            WorldPre::new(engine.wasmtime(), &component, pre).map_err(HostError::WorldMismatch)?;
        let mut instance = instantiate(&pre, engine, Datastore::new(Vec::new()))?;
        let description = call_describe(engine, &mut instance)?;
        Ok((pre, instance, description))
    }

    /// Like [`compile`](Self::compile), then describes the module again on
    /// a fresh instance (which it keeps; the first is dropped), and refuses
    /// it if the schema differs: the host describes a module anew at every
    /// server start and refuses to open its database if the schema
    /// changed, so a module whose `describe` is not deterministic (reads
    /// the clock or `wasi:random`) is refused at publish or swap, not at
    /// the next restart.
    fn compile_checked(engine: &Engine, wasm: &[u8]) -> Result<Self, HostError> {
        let Loaded {
            pre,
            instance,
            schema,
        } = Self::compile(engine, wasm)?;
        drop(instance);
        let mut instance = instantiate(&pre, engine, Datastore::new(Vec::new()))?;
        let again = import_module(call_describe(engine, &mut instance)?)?;
        if again != schema {
            let changes =
                describe_changes(&schema, &again).unwrap_or_else(|| UNLISTED_DIFFERENCE.to_owned());
            return Err(HostError::DescribeNondeterministic(
                listed_changes(&changes).join("\n"),
            ));
        }
        Ok(Self {
            pre,
            instance,
            schema,
        })
    }
}

/// Calls `describe` on `instance`: a trap or the deadline is the module's
/// fault, named as such.
fn call_describe(
    engine: &Engine,
    instance: &mut Instance,
) -> Result<crate::world::ModuleDef, HostError> {
    instance.module.describe(&mut instance.store).map_err(|e| {
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => {
                HostError::DescribeTimedOut(engine.config().reducer_deadline)
            }
            _ => HostError::DescribeTrapped(instance.store.data().trap_detail(&e)),
        }
    })
}

/// A component compiled, checked against the `worldline:module` world and
/// described, ready to replace a database's module with
/// [`Database::hot_swap_prepared`]. Preparing is the slow part of a swap
/// (compiling), so a server prepares on a thread of its own while the
/// database goes on serving, and only the switch runs on the database's
/// thread.
pub struct PreparedModule {
    loaded: Loaded,
    wasm: Vec<u8>,
    engine: Engine,
}

impl PreparedModule {
    /// Compiles `wasm` with `engine` (or loads it from the engine's
    /// component cache), instantiates it and reads its schema. Runs no
    /// reducer.
    pub fn prepare(engine: &Engine, wasm: Vec<u8>) -> Result<Self, HostError> {
        let loaded = Loaded::compile_checked(engine, &wasm)?;
        Ok(Self {
            loaded,
            wasm,
            engine: engine.clone(),
        })
    }

    /// The schema the module describes.
    pub fn schema(&self) -> &ModuleSchema {
        &self.loaded.schema
    }

    /// The component's bytes.
    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    /// The engine that compiled it.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Compiles a component and returns the schema it describes (its tables
/// and reducers), without creating a database or running any reducer
/// (`init` included): for tools that need a module's schema, such as code
/// generators and publish previews (with
/// [`plan_migration`](worldline_datastore::plan_migration)).
pub fn describe_component(engine: &Engine, wasm: &[u8]) -> Result<ModuleSchema, HostError> {
    Ok(Loaded::compile(engine, wasm)?.schema)
}

/// Compiles a component and returns the module definition its `describe`
/// export returned, exactly as the guest returned it: before the host
/// resolves it into a [`ModuleSchema`] (so type arena order, index
/// definitions and names are all kept as written), encoded as the
/// pretty-printed Debug text (`{:#?}`) of the `worldline:module@0.2.0`
/// `module-def` record. Equal texts mean equal definitions field for field,
/// so two modules written in different languages can be compared byte for
/// byte. A 0.1.0 component's definition is given in 0.2.0 form (no
/// procedures, no schedules). Runs no reducer and does not check the
/// definition (an ill-formed one is still returned).
pub fn describe_component_definition(engine: &Engine, wasm: &[u8]) -> Result<String, HostError> {
    let (_, _, description) = Loaded::describe(engine, wasm)?;
    Ok(format!("{description:#?}"))
}

/// After a failed restart of a trapped module, how long the scheduler
/// waits at least before it tries again for a due row (four times the
/// failed attempt if longer).
const RESTART_RETRY_MICROS: i64 = 1_000_000;

/// Why a database stopped taking calls.
#[derive(Debug)]
enum Broken {
    /// The instance trapped and could not be rebuilt; the tables are
    /// intact and durable, so reads go on.
    Module(String),
    /// A module swap could not be made durable; the tables are intact.
    Swap(String),
    /// The commit log failed: memory may hold transactions the log does
    /// not, so the tables are not served until a restart recovers exactly
    /// what is durable.
    Log(String),
}

impl Broken {
    fn reason(&self) -> &str {
        match self {
            Broken::Module(reason) | Broken::Swap(reason) | Broken::Log(reason) => reason,
        }
    }
}

/// One published module with its tables.
pub struct Database {
    engine: Engine,
    pre: WorldPre,
    instance: Instance,
    schema: ModuleSchema,
    owner: Identity,
    /// Set when the database stopped taking calls.
    broken: Option<Broken>,
    /// The commit log and snapshots, for a persistent database.
    storage: Option<DatabaseStorage>,
    /// What the committed rows count against the database's quota (see
    /// [`crate::host_calls::quota_bytes`]), their index entries not counted
    /// (see [`stored_bytes`]).
    stored_row_bytes: usize,
    /// The hosts the owner allowed procedures to send HTTP requests to.
    http_allow: AllowList,
    /// Counts module swaps: a procedure started before a swap gets no
    /// transaction after it (its table ids may have moved).
    generation: u64,
    /// The procedures running now.
    procedure_slots: ProcedureSlots,
    /// The procedures' HTTP client, kept while the policy is unchanged
    /// (it holds the in-flight cap).
    outbound: Option<OutboundHttp>,
    /// The scheduled rows by due time, kept exact after every commit.
    scheduler: Scheduler,
    /// Bounds the module-log lines about failed scheduled runs.
    schedule_failures: LogThrottle,
    /// Bounds the server-log lines about trapped reducers.
    traps: LogThrottle,
    /// Bounds the module-log lines about failed `client_disconnected` runs.
    disconnect_failures: LogThrottle,
    /// Bounds the server-log lines about instances that could not be
    /// rebuilt.
    failed_restarts: LogThrottle,
    /// After a failed restart, when a due row may try the next one
    /// (microseconds since the epoch; see [`RESTART_RETRY_MICROS`]).
    restart_retry_at: i64,
    /// After a failed restart, when a call may try the next one: four
    /// times the failed attempt later (at once if the instance pool was
    /// full), so that a start that runs long before it fails holds the
    /// database's thread for at most a fifth of the time (calls meanwhile
    /// are refused at once). Monotonic, so that a clock set back does not
    /// keep the module down.
    call_restart_at: Option<Instant>,
    /// The newest transaction timestamp given out: the next is never older,
    /// even if the wall clock is set back.
    newest_timestamp: Timestamp,
}

/// Whose transaction a commit-log record holds.
#[derive(Clone, Copy)]
enum TxOrigin<'a> {
    /// Reducer `id` of the schema.
    Reducer(usize),
    /// A procedure's explicit transaction.
    Procedure(&'a str),
}

impl Database {
    /// Compiles `wasm`, checks it against the `worldline:module` world, reads
    /// its schema, creates its empty tables and runs its `init` reducer as
    /// `owner`. Fails without side effects if any step fails.
    pub fn create(engine: &Engine, wasm: &[u8], owner: Identity) -> Result<Self, HostError> {
        let mut database = Self::from_loaded(engine, Loaded::compile_checked(engine, wasm)?, owner);
        database.run_init()?;
        Ok(database)
    }

    /// Like [`create`](Self::create), from a module already prepared
    /// (compiled, described and checked), persisting every transaction
    /// (the `init` reducer's included) in `dir`, which must be empty.
    pub(crate) fn create_stored(
        module: PreparedModule,
        owner: Identity,
        dir: &Dir,
        config: StorageConfig,
    ) -> Result<Self, HostError> {
        let PreparedModule {
            loaded,
            wasm,
            engine,
        } = module;
        let mut database = Self::from_loaded(&engine, loaded, owner);
        database.open_storage(&wasm, dir, config)?;
        database.run_init()?;
        Ok(database)
    }

    /// Opens a persistent database: loads the module and recovers its
    /// tables from the snapshot and commit log in `dir`. `init` does not run.
    pub(crate) fn open_stored(
        engine: &Engine,
        wasm: &[u8],
        owner: Identity,
        dir: &Dir,
        config: StorageConfig,
    ) -> Result<(Self, RecoveryReport), HostError> {
        let mut database = Self::from_loaded(engine, Loaded::compile(engine, wasm)?, owner);
        let report = database.open_storage(wasm, dir, config)?;
        Ok((database, report))
    }

    /// Recovers the tables of module `wasm` (this database's) from the
    /// snapshot and commit log in `dir`, and persists every transaction
    /// there from now on.
    fn open_storage(
        &mut self,
        wasm: &[u8],
        dir: &Dir,
        config: StorageConfig,
    ) -> Result<RecoveryReport, HostError> {
        let module_hash: [u8; 32] = Sha256::digest(wasm).into();
        let (storage, datastore, report) =
            DatabaseStorage::open(dir, &self.schema, module_hash, config)?;
        self.stored_row_bytes = row_bytes(&datastore);
        self.instance.store.data_mut().datastore = datastore;
        // The log is a help, not the data: without its file it is kept in memory.
        if let Err(e) = storage.keep_module_log(&mut self.log()) {
            tracing::warn!("the module log is kept in memory only: {e}");
        }
        self.scheduler = Scheduler::scan(&self.schema, self.datastore());
        self.storage = Some(storage);
        Ok(report)
    }

    fn run_init(&mut self) -> Result<(), HostError> {
        if let Some(init) = self.lifecycle_reducer(Lifecycle::Init) {
            self.run_durably(init, &[], CallContext::new(self.owner))
                .map_err(|e| match e {
                    // #9 item 7: the commit log failed (a full disk), not the module.
                    CallError::Unavailable(reason) | CallError::OutcomeUnknown(reason) => {
                        HostError::Unavailable(reason)
                    }
                    e => HostError::InitFailed(e),
                })?;
        }
        Ok(())
    }

    /// A database of the module `loaded`, over empty tables, not stored.
    fn from_loaded(engine: &Engine, loaded: Loaded, owner: Identity) -> Self {
        let Loaded {
            pre,
            mut instance,
            schema,
        } = loaded;
        instance.store.data_mut().datastore = Datastore::new(schema.tables.clone());
        let scheduler = Scheduler::scan(&schema, &instance.store.data().datastore);
        Self {
            engine: engine.clone(),
            pre,
            instance,
            schema,
            owner,
            broken: None,
            storage: None,
            stored_row_bytes: 0,
            http_allow: AllowList::none(),
            generation: 0,
            procedure_slots: ProcedureSlots::default(),
            outbound: None,
            scheduler,
            schedule_failures: LogThrottle::default(),
            traps: LogThrottle::default(),
            disconnect_failures: LogThrottle::default(),
            failed_restarts: LogThrottle::default(),
            restart_retry_at: 0,
            call_restart_at: None,
            newest_timestamp: Timestamp::from_micros_since_epoch(i64::MIN),
        }
    }

    /// Replaces the module with the component `wasm`, keeping every row,
    /// and returns the schema changes it made. Nothing runs in the new
    /// module on the way (`init` does not run again); the module log
    /// carries over.
    ///
    /// The new module's schema must be a compatible next version of the
    /// old one ([`plan_migration`]: tables are matched by name, and every
    /// existing table keeps its columns, primary key and auto-increment
    /// columns), and `policy` must allow its changes. New indexes are built
    /// from the existing rows. A persistent database writes a snapshot
    /// for the new module, then replaces its `module.wasm`, so that a crash
    /// at any point recovers one module or the other with every committed
    /// transaction.
    ///
    /// On any error — an invalid component
    /// ([`HostError::InvalidComponent`] and the other loading errors), an
    /// incompatible schema ([`HostError::IncompatibleSchema`], listing
    /// every problem), a change `policy` refuses ([`HostError::SwapRefused`]),
    /// a new unique index that existing rows violate
    /// ([`HostError::Migration`]) or a storage failure — the database keeps
    /// its old module and rows and goes on serving calls. The one exception
    /// is a storage failure after `module.wasm` was replaced but could not
    /// be synced: then either module may come back after a crash, so the
    /// database stops taking calls (until a later swap succeeds or the
    /// server restarts). After a commit-log failure the swap is refused
    /// with [`HostError::Unavailable`] (only a restart recovers).
    pub fn hot_swap(
        &mut self,
        wasm: &[u8],
        policy: SwapPolicy,
    ) -> Result<MigrationPlan, HostError> {
        if let Some(reason) = self.unreadable() {
            return Err(HostError::Unavailable(reason.to_owned()));
        }
        let prepared = PreparedModule::prepare(&self.engine, wasm.to_vec())?;
        self.hot_swap_prepared(prepared, policy)
    }

    /// Like [`Database::hot_swap`], with a module compiled beforehand by
    /// [`PreparedModule::prepare`] (with this database's engine): only the
    /// migration and the atomic switch run here.
    pub fn hot_swap_prepared(
        &mut self,
        prepared: PreparedModule,
        policy: SwapPolicy,
    ) -> Result<MigrationPlan, HostError> {
        if let Some(reason) = self.unreadable() {
            return Err(HostError::Unavailable(reason.to_owned()));
        }
        if !self.engine.same(&prepared.engine) {
            return Err(HostError::WorldMismatch(
                "the module was compiled by another engine than the database's".to_owned(),
            ));
        }
        let PreparedModule { loaded, wasm, .. } = prepared;
        let wasm = &wasm[..];
        let plan =
            plan_migration(&self.schema, &loaded.schema).map_err(HostError::IncompatibleSchema)?;
        if policy == SwapPolicy::Additive && !plan.is_additive() {
            let refused = plan
                .changes
                .into_iter()
                .filter(|change| !change.is_additive())
                .collect();
            return Err(HostError::SwapRefused(MigrationPlan { changes: refused }));
        }
        let migrated = self.datastore().migrate(&loaded.schema.tables)?;
        if let Some(storage) = &mut self.storage {
            let swapped = storage.swap_module(
                &migrated,
                wasm,
                &loaded.schema,
                self.owner.to_bytes(),
                Timestamp::now().to_micros_since_epoch(),
            );
            match swapped {
                Ok(()) => {}
                Err(SwapFailed::Unchanged(e)) => return Err(e.into()),
                Err(SwapFailed::Undecided(e)) => {
                    self.broken = Some(Broken::Swap(format!(
                        "a module swap could not be made durable ({e}); swap again or \
                         restart the server"
                    )));
                    return Err(e.into());
                }
            }
        }
        let Loaded {
            pre,
            mut instance,
            schema,
        } = loaded;
        let state = instance.store.data_mut();
        state.datastore = migrated;
        std::mem::swap(&mut state.log, &mut self.instance.store.data_mut().log);
        self.instance = instance;
        self.pre = pre;
        self.schema = schema;
        self.scheduler = Scheduler::scan(&self.schema, self.datastore());
        self.generation += 1;
        if !matches!(self.broken, Some(Broken::Log(_))) {
            self.broken = None;
        }
        tracing::info!("swapped the module: {} schema changes", plan.changes.len());
        Ok(plan)
    }

    /// For a persistent database, a handle that stops upgrading once the
    /// database is dropped and its commit log closed.
    pub(crate) fn liveness(&self) -> Option<Weak<()>> {
        self.storage.as_ref().map(DatabaseStorage::liveness)
    }

    /// The module's tables and reducers.
    pub fn schema(&self) -> &ModuleSchema {
        &self.schema
    }

    /// The committed tables, to read between calls (for example to evaluate
    /// subscriptions on a call's delta).
    pub fn datastore(&self) -> &Datastore {
        &self.instance.store.data().datastore
    }

    /// The identity that owns this database.
    pub fn owner(&self) -> Identity {
        self.owner
    }

    /// The hosts (and ports) the owner allowed this database's procedures
    /// to send HTTP requests to; everything else is denied.
    pub fn http_allow(&self) -> &AllowList {
        &self.http_allow
    }

    /// Replaces the HTTP allow-list, storing it durably first for a
    /// persistent database (on failure nothing changed).
    pub fn set_http_allow(&mut self, allow: AllowList) -> Result<(), HostError> {
        if let Some(storage) = &self.storage {
            storage.write_setting(HTTP_ALLOW_FILE, allow.to_string().as_bytes())?;
        }
        self.use_http_allow(allow);
        Ok(())
    }

    /// Sets the allow-list read from the database's directory at open.
    pub(crate) fn restore_http_allow(&mut self, allow: AllowList) {
        self.use_http_allow(allow);
    }

    /// Makes `allow` the allow-list, for the procedures already running
    /// too: their next request or redirect is checked against it.
    fn use_http_allow(&mut self, allow: AllowList) {
        if let Some(client) = &self.outbound {
            client.set_allow_list(allow.clone());
        }
        self.http_allow = allow;
    }

    /// The module log, locked: procedures running on other threads write
    /// to it too, so do not hold it long.
    pub fn log(&self) -> MutexGuard<'_, ModuleLog> {
        self.instance.store.data().log.lock()
    }

    /// Starts a call of procedure `name` with postcard-encoded `args`, on
    /// the database's thread: checks that the module has it, that the
    /// arguments decode as its parameters and that fewer than
    /// [`EngineConfig::max_procedures_per_database`](crate::EngineConfig::max_procedures_per_database)
    /// run (beyond it the call is refused with
    /// [`CallError::TooManyProcedures`], nothing waits), and takes what the
    /// run needs from the current module. Then [`ProcedureRun::run`] it on
    /// another thread; its transactions come back to this thread through
    /// `submit`, to be served with [`serve_transaction`](Self::serve_transaction)
    /// in their turn.
    pub fn start_procedure(
        &mut self,
        name: &str,
        args: Vec<u8>,
        ctx: CallContext,
        submit: TxSubmitter,
    ) -> Result<ProcedureRun, CallError> {
        if let Some(broken) = &self.broken {
            return Err(CallError::Unavailable(broken.reason().to_owned()));
        }
        let http = self.outbound();
        let source = ProcedureSource {
            engine: &self.engine,
            pre: &self.pre,
            schema: &self.schema,
            log: &self.instance.store.data().log,
            generation: self.generation,
            slots: &self.procedure_slots,
            http,
        };
        ProcedureRun::prepare(source, name, args, ctx, submit)
    }

    /// The procedures' HTTP client for the current allow-list and the
    /// engine's override and limits, or why there is none.
    fn outbound(&mut self) -> Result<OutboundHttp, String> {
        // The engine's override and limits are the database's for its life;
        // the owner's list is kept up to date by `set_http_allow`.
        if let Some(client) = &self.outbound {
            return Ok(client.clone());
        }
        let config = self.engine.config();
        let policy = HttpPolicy {
            allow: self.http_allow.clone(),
            overrides: config.http_private_override.clone(),
            limits: config.http_limits.clone(),
        };
        let client = OutboundHttp::new(policy)
            .map_err(|e| format!("outbound HTTP is misconfigured on this server: {e}"))?;
        self.outbound = Some(client.clone());
        Ok(client)
    }

    /// Serves a procedure's `transaction.begin`, on the database's thread:
    /// opens a transaction, lends the tables to the procedure and blocks
    /// (running nothing else) until they come back, at most about the
    /// reducer deadline, after which the procedure is stopped and its
    /// transaction rolled back. A transaction the procedure commits is
    /// committed here like a reducer's (its commit-log record named after
    /// the procedure) and returned, for its changes to reach subscribers;
    /// answer its [`CommitReply`] once it is durable
    /// ([`wait_durable`](Self::wait_durable) on its offset). `None` when
    /// nothing was committed (rolled back, refused, or the commit failed:
    /// the procedure was told why).
    ///
    /// Refused when the database is not taking calls, or when the module
    /// was swapped since the procedure started (its table ids may have
    /// moved).
    pub fn serve_transaction(&mut self, request: TxRequest) -> Option<CommittedTx> {
        if let Some(broken) = &self.broken {
            request.refuse(format!("the database is unavailable: {}", broken.reason()));
            return None;
        }
        if request.generation != self.generation {
            let reason = format!(
                "the module was replaced while procedure `{}` ran; call it again",
                request.procedure()
            );
            request.refuse(reason);
            return None;
        }
        let state = self.instance.store.data_mut();
        if state.datastore.in_transaction() {
            state.datastore.rollback();
        }
        if let Err(e) = state.datastore.begin() {
            request.refuse(format!("could not open a transaction: {e}"));
            return None;
        }
        let stored = stored_bytes(self.stored_row_bytes, &state.datastore);
        let lent = std::mem::replace(&mut state.datastore, Datastore::new(Vec::new()));
        let timestamp = self.transaction_timestamp(None);
        let lent = match request.lend(lent, stored, timestamp) {
            Ok(lent) => lent,
            Err(mut datastore) => {
                // The procedure stopped waiting: nothing was done.
                datastore.rollback();
                self.instance.store.data_mut().datastore = *datastore;
                return None;
            }
        };
        let started = Instant::now();
        let returned = lent.wait(self.engine.config().reducer_deadline);
        let state = self.instance.store.data_mut();
        match returned {
            Some(Returned::Commit { datastore, reply }) => {
                state.datastore = datastore;
                let origin = TxOrigin::Procedure(&lent.procedure);
                match self.commit_open(origin, lent.ctx.caller, lent.timestamp, started) {
                    Ok(outcome) => Some(CommittedTx {
                        outcome,
                        procedure: lent.procedure,
                        ctx: lent.ctx,
                        reply: CommitReply(reply),
                    }),
                    Err(e) => {
                        CommitReply(reply).send(Err(e.to_string()));
                        None
                    }
                }
            }
            Some(Returned::Rollback(mut datastore)) => {
                datastore.rollback();
                state.datastore = datastore;
                None
            }
            None => {
                self.log_failed(format!(
                    "procedure `{}` never gave the tables back",
                    lent.procedure
                ));
                None
            }
        }
    }

    /// Why the database is not taking calls, if it is not: its module
    /// could not be restarted, a swap could not be made durable, or its
    /// commit log failed.
    pub fn unavailable(&self) -> Option<&str> {
        self.broken.as_ref().map(Broken::reason)
    }

    /// Why the database's tables must not be read, if they must not: its
    /// commit log failed, so memory may hold transactions that are not
    /// durable and are gone after a restart. Readers ([`rows`](Self::rows),
    /// queries over [`datastore`](Self::datastore)) must refuse until then.
    pub fn unreadable(&self) -> Option<&str> {
        match &self.broken {
            Some(Broken::Log(reason)) => Some(reason),
            _ => None,
        }
    }

    /// The committed rows of `table`, in insertion order, as postcard
    /// bytes. Fails with [`HostError::Unavailable`] once the commit log
    /// has failed (see [`unreadable`](Self::unreadable)).
    pub fn rows(&self, table: &str) -> Result<Vec<Row>, HostError> {
        if let Some(reason) = self.unreadable() {
            return Err(HostError::Unavailable(reason.to_owned()));
        }
        let id = self
            .schema
            .table_id(table)
            .ok_or_else(|| HostError::NoSuchTable(quoted_name(table)))?;
        let rows = self
            .instance
            .store
            .data()
            .datastore
            .rows(id)
            .map_err(|_| HostError::NoSuchTable(quoted_name(table)))?;
        Ok(rows.map(Row::from).collect())
    }

    /// Calls reducer `name` with postcard-encoded `args` as one transaction,
    /// returning once the transaction is as durable as the storage policy
    /// promises (at once for an in-memory database).
    ///
    /// On any error nothing changed and the database keeps serving calls.
    pub fn call_reducer(
        &mut self,
        name: &str,
        args: &[u8],
        ctx: CallContext,
    ) -> Result<ReducerOutcome, CallError> {
        let outcome = self.call_reducer_nowait(name, args, ctx)?;
        self.wait_durable(outcome.offset)?;
        Ok(outcome)
    }

    /// Like [`call_reducer`](Self::call_reducer), but returns as soon as the
    /// transaction is committed in memory. Do not report it as committed
    /// until [`wait_durable`](Self::wait_durable) on its offset returns:
    /// waiting once for many calls lets them share one fsync.
    pub fn call_reducer_nowait(
        &mut self,
        name: &str,
        args: &[u8],
        ctx: CallContext,
    ) -> Result<ReducerOutcome, CallError> {
        let id = self.schema.reducer_id(name).ok_or_else(|| {
            if self.schema.procedure_id(name).is_some() {
                CallError::IsAProcedure(name.to_owned())
            } else {
                CallError::NoSuchReducer(quoted_name(name))
            }
        })?;
        if self.schema.reducers[id].lifecycle.is_some() {
            return Err(CallError::LifecycleReducer(name.to_owned()));
        }
        if let Some(schedule) = self.schema.schedule_of_reducer(id)
            && ctx.caller != self.owner
        {
            return Err(CallError::ScheduledReducer {
                reducer: name.to_owned(),
                table: self.schema.tables[schedule.table].name.clone(),
            });
        }
        self.run(id, args, ctx)
    }

    /// Runs the module's `client_connected` reducer, if it has one. An error
    /// means the connection must be refused.
    pub fn client_connected(
        &mut self,
        ctx: CallContext,
    ) -> Result<Option<ReducerOutcome>, CallError> {
        self.run_lifecycle(Lifecycle::ClientConnected, ctx)
    }

    /// Runs the module's `client_disconnected` reducer, if it has one. A
    /// failure has no caller to go to, so it also goes to the server's log
    /// and the module log (a burst of 10 such lines, then at most one a
    /// second, counting the rest).
    pub fn client_disconnected(
        &mut self,
        ctx: CallContext,
    ) -> Result<Option<ReducerOutcome>, CallError> {
        self.run_lifecycle(Lifecycle::ClientDisconnected, ctx)
    }

    /// Like [`client_connected`](Self::client_connected), but returns as
    /// soon as the transaction is committed in memory (see
    /// [`call_reducer_nowait`](Self::call_reducer_nowait)).
    pub fn client_connected_nowait(
        &mut self,
        ctx: CallContext,
    ) -> Result<Option<ReducerOutcome>, CallError> {
        self.run_lifecycle_nowait(Lifecycle::ClientConnected, ctx)
    }

    /// Like [`client_disconnected`](Self::client_disconnected), but returns
    /// as soon as the transaction is committed in memory.
    pub fn client_disconnected_nowait(
        &mut self,
        ctx: CallContext,
    ) -> Result<Option<ReducerOutcome>, CallError> {
        self.run_lifecycle_nowait(Lifecycle::ClientDisconnected, ctx)
    }

    fn run_lifecycle(
        &mut self,
        lifecycle: Lifecycle,
        ctx: CallContext,
    ) -> Result<Option<ReducerOutcome>, CallError> {
        let outcome = self.run_lifecycle_nowait(lifecycle, ctx)?;
        self.wait_durable(outcome.as_ref().and_then(|outcome| outcome.offset))?;
        Ok(outcome)
    }

    fn run_lifecycle_nowait(
        &mut self,
        lifecycle: Lifecycle,
        ctx: CallContext,
    ) -> Result<Option<ReducerOutcome>, CallError> {
        let Some(id) = self.lifecycle_reducer(lifecycle) else {
            return Ok(None);
        };
        let ran = self.run(id, &[], ctx);
        if let (Lifecycle::ClientDisconnected, Err(error)) = (lifecycle, &ran) {
            self.log_failed_disconnect(ctx, error);
        }
        ran.map(Some)
    }

    /// A failed `client_disconnected` has no caller to tell, so it goes to
    /// the server's log and (unless the database is unavailable) the module
    /// log: a burst of 10 such lines, then at most one a second, counting
    /// the rest, since clients can connect and disconnect as fast as they like.
    fn log_failed_disconnect(&mut self, ctx: CallContext, error: &CallError) {
        let Some(held_back) = self.disconnect_failures.admit(Timestamp::now()) else {
            return;
        };
        let connection = ctx
            .connection_id
            .map_or_else(String::new, |id| format!(", connection {id}"));
        let line = format!(
            "client_disconnected failed for {}{connection}: {error}{}",
            ctx.caller,
            held_back_note(held_back, "failed client_disconnected runs")
        );
        tracing::warn!("{line}");
        if !matches!(error, CallError::Unavailable(_)) {
            self.log().push(LogLevel::Error, line);
        }
    }

    /// Blocks until the transaction at `offset` is as durable as the storage
    /// policy promises. `None` (nothing logged) returns at once.
    ///
    /// If the commit log fails first, the transactions handed to it and not
    /// yet confirmed may or may not be durable: this returns
    /// [`CallError::OutcomeUnknown`], and the database stops taking calls
    /// and serving reads until a restart recovers exactly what is durable.
    pub fn wait_durable(&mut self, offset: Option<u64>) -> Result<(), CallError> {
        let (Some(offset), Some(storage)) = (offset, &self.storage) else {
            return Ok(());
        };
        storage.wait(offset).map_err(|e| {
            let reason = self.log_failed(e.to_string());
            CallError::OutcomeUnknown(format!(
                "the commit log failed before the transaction was confirmed durable, so \
                 it may or may not survive ({reason})"
            ))
        })
    }

    /// Whether the transaction at `offset` is as durable as the storage
    /// policy promises, without waiting (`None`, nothing logged: yes).
    /// `Ok(false)` while it is not yet; if the commit log failed before
    /// confirming it, the error and the stop [`wait_durable`](Self::wait_durable)
    /// would give. With [`on_durable`](Self::on_durable), a thread can run
    /// further calls while earlier ones are being made durable.
    pub fn is_durable(&mut self, offset: Option<u64>) -> Result<bool, CallError> {
        let (Some(offset), Some(storage)) = (offset, &self.storage) else {
            return Ok(true);
        };
        match storage.is_durable(offset) {
            Ok(durable) => Ok(durable),
            Err(_) => self.wait_durable(Some(offset)).map(|()| true),
        }
    }

    /// Has `wake` called, on the commit log's thread, whenever logged
    /// transactions become durable or the log fails, so that a thread
    /// waiting for them can check [`is_durable`](Self::is_durable) again.
    /// It must return quickly. Never called for an in-memory database or
    /// under [`DurabilityPolicy::None`](crate::DurabilityPolicy::None).
    pub fn on_durable(&mut self, wake: impl Fn() + Send + Sync + 'static) {
        if let Some(storage) = &mut self.storage {
            storage.set_waker(std::sync::Arc::new(wake));
        }
    }

    /// Writes a snapshot of every table now (persistent databases only).
    pub fn snapshot(&mut self) -> Result<(), HostError> {
        if let Some(storage) = &mut self.storage {
            storage.snapshot(&self.instance.store.data().datastore)?;
        }
        Ok(())
    }

    /// Stops the database taking calls and serving reads after its commit
    /// log failed: memory may now hold a transaction the log does not, and
    /// a restart recovers exactly what is durable. Returns the reason.
    fn log_failed(&mut self, reason: String) -> String {
        if let Some(Broken::Log(earlier)) = &self.broken {
            return earlier.clone();
        }
        let message = format!(
            "{reason}; the database stopped taking calls and serving reads, restart the \
             server to recover"
        );
        self.broken = Some(Broken::Log(message.clone()));
        message
    }

    fn run_durably(
        &mut self,
        id: usize,
        args: &[u8],
        ctx: CallContext,
    ) -> Result<ReducerOutcome, CallError> {
        let outcome = self.run(id, args, ctx)?;
        self.wait_durable(outcome.offset)?;
        Ok(outcome)
    }

    fn lifecycle_reducer(&self, lifecycle: Lifecycle) -> Option<usize> {
        self.schema
            .reducers
            .iter()
            .position(|r| r.lifecycle.as_ref() == Some(&lifecycle))
    }

    /// Runs reducer `id` in a transaction, committing on success and
    /// rolling back (and rebuilding the instance after a trap) otherwise.
    fn run(
        &mut self,
        id: usize,
        args: &[u8],
        ctx: CallContext,
    ) -> Result<ReducerOutcome, CallError> {
        self.run_then(id, args, ctx, |_| Ok(()))
    }

    /// The database's clock: the wall clock, but never older than the
    /// newest transaction timestamp given out, so that commit order and
    /// timestamp order agree even when the wall clock is set back.
    pub fn now(&self) -> Timestamp {
        Timestamp::now().max(self.newest_timestamp)
    }

    /// The timestamp of a transaction starting now: `given` (a caller's
    /// explicit time) or [`now`](Self::now).
    fn transaction_timestamp(&mut self, given: Option<Timestamp>) -> Timestamp {
        let timestamp = given.unwrap_or_else(|| self.now());
        self.newest_timestamp = self.newest_timestamp.max(timestamp);
        timestamp
    }

    /// Like [`run`](Self::run), with `finish` making the last writes of
    /// the transaction after the reducer succeeded, before it commits (a
    /// failure rolls it back).
    fn run_then(
        &mut self,
        id: usize,
        args: &[u8],
        ctx: CallContext,
        finish: impl FnOnce(&mut Datastore) -> Result<(), DbError>,
    ) -> Result<ReducerOutcome, CallError> {
        if matches!(self.broken, Some(Broken::Module(_)))
            && self.call_restart_at.is_none_or(|at| Instant::now() >= at)
        {
            // The rebuild may succeed now (a full instance pool has room again).
            self.rebuild_instance();
        }
        if let Some(broken) = &self.broken {
            return Err(CallError::Unavailable(broken.reason().to_owned()));
        }
        let reducer = &self.schema.reducers[id];
        check_product(&reducer.params, args).map_err(|e| CallError::InvalidArguments {
            reducer: reducer.name.clone(),
            message: e.to_string(),
        })?;
        let timestamp = self.transaction_timestamp(ctx.timestamp);
        let context = ReducerContext {
            sender: ctx.caller.to_words(),
            connection_id: ctx.connection_id.map(ConnectionId::to_words),
            timestamp: timestamp.to_micros_since_epoch(),
            seed: rand::random(),
        };
        let started = Instant::now();
        let store = &mut self.instance.store;
        let state = store.data_mut();
        state.start_call();
        if state.datastore.in_transaction() {
            state.datastore.rollback();
        }
        state.stored_bytes = stored_bytes(self.stored_row_bytes, &state.datastore);
        state
            .datastore
            .begin()
            .map_err(|e| CallError::Trapped(format!("could not open a transaction: {e}")))?;
        store.set_epoch_deadline(self.engine.deadline_ticks());
        store
            .data_mut()
            .set_call_deadline(self.engine.config().reducer_deadline);
        let reducer_id =
            u32::try_from(id).expect("reducer ids come from a WIT list and fit in u32");
        let result = self
            .instance
            .module
            .call_reducer(&mut *store, reducer_id, context, args);
        store.data_mut().close_cursors();
        match result {
            Ok(Ok(())) => {
                if let Err(e) = finish(&mut store.data_mut().datastore) {
                    store.data_mut().datastore.rollback();
                    return Err(CallError::Failed(e.to_string()));
                }
                self.commit_open(TxOrigin::Reducer(id), ctx.caller, timestamp, started)
            }
            Ok(Err(mut message)) => {
                store.data_mut().datastore.rollback();
                // The reason goes to the caller: as bounded as a log line.
                truncate_line(&mut message, self.engine.config().max_log_line_bytes);
                message.shrink_to_fit();
                Err(CallError::Failed(message))
            }
            Err(trap) => {
                store.data_mut().datastore.rollback();
                let error = self.classify_trap(&trap);
                if let Some(held_back) = self.traps.admit(Timestamp::now()) {
                    tracing::warn!(
                        "reducer `{}` trapped: {error}{}",
                        self.schema.reducers[id].name,
                        held_back_note(held_back, "traps of this database's reducers")
                    );
                }
                self.rebuild_instance();
                Err(error)
            }
        }
    }

    /// Commits the open transaction of the reducer instance's datastore,
    /// counts its bytes and hands it to the commit log.
    fn commit_open(
        &mut self,
        origin: TxOrigin<'_>,
        caller: Identity,
        timestamp: Timestamp,
        started: Instant,
    ) -> Result<ReducerOutcome, CallError> {
        let delta = self.instance.store.data_mut().datastore.commit();
        self.scheduler.apply(&delta);
        for table in &delta.tables {
            let inserted: usize = table.inserts.iter().map(|r| quota_bytes(r.len())).sum();
            let deleted: usize = table.deletes.iter().map(|r| quota_bytes(r.len())).sum();
            self.stored_row_bytes = (self.stored_row_bytes + inserted).saturating_sub(deleted);
        }
        let offset = self.log_commit(origin, caller, timestamp, &delta)?;
        Ok(ReducerOutcome {
            delta,
            timestamp,
            duration: started.elapsed(),
            offset,
        })
    }

    /// Hands a committed transaction to the commit log, and writes a
    /// snapshot when one is due. Returns the transaction's log offset.
    fn log_commit(
        &mut self,
        origin: TxOrigin<'_>,
        caller: Identity,
        timestamp: Timestamp,
        delta: &TxDelta,
    ) -> Result<Option<u64>, CallError> {
        let Some(storage) = &mut self.storage else {
            return Ok(None);
        };
        if delta.is_empty() && delta.sequences.is_empty() {
            return Ok(None);
        }
        let name = match origin {
            TxOrigin::Reducer(id) => &self.schema.reducers[id].name,
            TxOrigin::Procedure(name) => name,
        };
        let logged = storage.log(
            name,
            caller.to_bytes(),
            timestamp.to_micros_since_epoch(),
            delta,
        );
        let offset = match logged {
            Ok(offset) => offset,
            // The log refused the record, so a restart will not have this
            // transaction: the call is refused, as the ones after it will be.
            Err(e) => return Err(CallError::Unavailable(self.log_failed(e.to_string()))),
        };
        let datastore = &self.instance.store.data().datastore;
        if let Err(e) = storage.snapshot_in_background_if_due(datastore, self.stored_row_bytes) {
            tracing::warn!(
                "could not write a snapshot (nothing is lost: the log is kept until one is \
                 written): {e}"
            );
        }
        Ok(Some(offset))
    }

    fn classify_trap(&self, trap: &wasmtime::Error) -> CallError {
        classify_trap(self.engine.config(), self.instance.store.data(), trap)
    }

    /// Replaces a trapped instance with a fresh one that keeps the tables and log.
    fn rebuild_instance(&mut self) {
        let started = Instant::now();
        match instantiate(&self.pre, &self.engine, Datastore::new(Vec::new())) {
            Ok(mut fresh) => {
                let (old, new) = (self.instance.store.data_mut(), fresh.store.data_mut());
                std::mem::swap(&mut old.datastore, &mut new.datastore);
                std::mem::swap(&mut old.log, &mut new.log);
                self.instance = fresh;
                if matches!(self.broken, Some(Broken::Module(_))) {
                    self.broken = None;
                }
            }
            Err(err) => {
                // A module whose start fails every time must not write a
                // line per attempt.
                if let Some(held_back) = self.failed_restarts.admit(Timestamp::now()) {
                    tracing::error!(
                        "could not rebuild the module instance: {err}{}",
                        held_back_note(held_back, "failed restarts of this database's module")
                    );
                }
                // A start that runs to its deadline before it fails must not
                // keep the database's thread busy: wait four times as long.
                let wait = started.elapsed().saturating_mul(4);
                // A full instance pool costs nothing to try again, and
                // has room as soon as another database lets go of a slot.
                self.call_restart_at = (!matches!(err, HostError::InstancePoolFull { .. }))
                    .then(|| Instant::now() + wait);
                let wait_micros = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
                self.restart_retry_at = Timestamp::now()
                    .to_micros_since_epoch()
                    .saturating_add(RESTART_RETRY_MICROS.max(wait_micros));
                self.broken = Some(Broken::Module(format!(
                    "the module could not be restarted after a trap: {err}"
                )));
            }
        }
    }
}

impl Drop for Database {
    /// The procedures still running (the database was deleted, or the
    /// server stops) send no further HTTP request, follow no further
    /// redirect and write to the module log in memory only.
    fn drop(&mut self) {
        if let Some(client) = &self.outbound {
            client.set_allow_list(AllowList::none());
        }
        self.log().stop_writing();
    }
}

/// Creates a store around `datastore` and instantiates the module in it.
fn instantiate(
    pre: &WorldPre,
    engine: &Engine,
    datastore: Datastore,
) -> Result<Instance, HostError> {
    let state = HostState::new(
        datastore,
        ModuleLog::new(engine.log_limits()),
        engine.config(),
    );
    let mut store = Store::new(engine.wasmtime(), state);
    store.limiter(|state| state.limiter());
    store.set_epoch_deadline(engine.deadline_ticks());
    store
        .data_mut()
        .set_call_deadline(engine.config().reducer_deadline);
    let module = pre
        .instantiate(&mut store)
        .map_err(|e| engine.instantiate_error(&e, store.data()))?;
    Ok(Instance { store, module })
}

/// Why `Component::new` refused `wasm`: cut short (the parser ran off
/// its end, or a section reaches past it), or not a valid component. The
/// 8-byte header is judged here, in words (the parser's own text for it
/// spans lines); the parser's reason is given on one line.
fn component_error(wasm: &[u8], error: &wasmtime::Error) -> HostError {
    const MAGIC: &[u8; 4] = b"\0asm";
    if wasm.is_empty() {
        return HostError::InvalidComponent("it is empty (0 bytes)".to_owned());
    }
    if !wasm.starts_with(&MAGIC[..wasm.len().min(MAGIC.len())]) {
        let first: Vec<String> = wasm.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return HostError::InvalidComponent(format!(
            "it does not start with the WebAssembly magic bytes 00 61 73 6d (its first bytes \
             are {})",
            first.join(" ")
        ));
    }
    if wasm.len() < 8 {
        return HostError::TruncatedComponent(format!(
            "it ends after {} bytes, within the 8-byte WebAssembly header",
            wasm.len()
        ));
    }
    // Bytes 6..8 are the layer: 0 for a core module, 1 for a component.
    if wasm[6..8] == [0, 0] {
        return HostError::InvalidComponent(
            "it is a core WebAssembly module, not a component".to_owned(),
        );
    }
    let reason = format!("{error:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let past_the_end = format!("out of bounds (bound = {})", wasm.len());
    if reason.contains("unexpected end-of-file") || reason.contains(&past_the_end) {
        HostError::TruncatedComponent(reason)
    } else {
        HostError::InvalidComponent(reason)
    }
}

/// What a database whose committed rows count `row_bytes` (see
/// [`row_bytes`]) holds against its quota: those and the index entries of
/// `datastore`, read outside a transaction (inside one they count its
/// writes too).
fn stored_bytes(row_bytes: usize, datastore: &Datastore) -> usize {
    row_bytes.saturating_add(datastore.all_index_bytes())
}

/// What every row in `datastore` counts against the database's row quota.
fn row_bytes(datastore: &Datastore) -> usize {
    (0..datastore.tables().len())
        .filter_map(|table| datastore.rows(table).ok())
        .flatten()
        .map(|row| quota_bytes(row.len()))
        .sum()
}
