//! The wasm engine shared by every database of a host: compiler settings,
//! the epoch ticker that enforces reducer deadlines, the import linker and
//! the compiled-component cache.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};
use worldline_outbound::{HttpLimits, PrivateOverride};

use crate::bindings::{v1, v2};
use crate::component_cache::{CacheStats, ComponentCache};
use crate::error::HostError;
use crate::module_log::LogLimits;
use crate::procedure::ProcedureSlots;
use crate::state::{HostState, resource_table_full};

/// Limits and timing for every module run by an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How long one reducer call may run before it is interrupted and
    /// rolled back; also how long a procedure may keep a transaction open.
    pub reducer_deadline: Duration,
    /// How long one procedure call may run in all (HTTP requests and
    /// waiting for the database included); past it the procedure traps
    /// and its open transaction, if any, is rolled back. Default 30 s.
    pub procedure_deadline: Duration,
    /// The most procedures one database runs at once; a call beyond it is
    /// refused at once with [`CallError::TooManyProcedures`](crate::CallError::TooManyProcedures)
    /// (callers retry; nothing queues inside the host). Each running
    /// procedure holds a module instance of its own. Default 16.
    pub max_procedures_per_database: usize,
    /// The exact private addresses and ports procedures' HTTP requests may
    /// reach although the address guard refuses them (development, such
    /// as a local test server); they must still be on the database's
    /// allow-list. Default none.
    pub http_private_override: PrivateOverride,
    /// Size and time limits of procedures' HTTP requests (the defaults the
    /// WIT `http` interface states).
    pub http_limits: HttpLimits,
    /// The most linear memory one module instance may have, in bytes.
    pub memory_limit_bytes: usize,
    /// How often the deadline clock ticks; deadlines are enforced to within one tick.
    pub epoch_tick: Duration,
    /// Whether to try the pooling instance allocator (falls back when the address-space reservation fails).
    pub pooling: bool,
    /// With the pooling allocator, how many module instances the whole
    /// server may hold at once (each database holds one, and one more
    /// while it is published or swapped; each running procedure holds one,
    /// procedures together at most a quarter: [`Engine::max_procedures`]).
    /// When the pool is full, publishing fails with
    /// [`HostError::InstancePoolFull`]. Default 256.
    pub max_instances: u32,
    /// The longest module log line kept, in bytes; longer lines are cut
    /// (at a character boundary) and end with a marker saying how much
    /// was cut. Default 16 KiB.
    pub max_log_line_bytes: usize,
    /// The most module log one database keeps, in bytes of messages; the
    /// oldest lines are dropped first. Default 4 MiB.
    pub max_log_bytes: usize,
    /// The most module log lines one database keeps. Default 10,000.
    pub max_log_lines: usize,
    /// The most cursors a module may hold open at once during one call;
    /// cursors still open when a call ends are closed by the host.
    /// Default 1,024.
    pub max_cursors_per_call: usize,
    /// The most row bytes one `cursor.next` returns (at least one row,
    /// whatever its size). Default 1 MiB.
    pub max_batch_bytes: usize,
    /// The most row bytes one transaction may insert or update, each row
    /// counting 16 bytes more for the host's bookkeeping and what its index
    /// entries take (a refused write counts nothing); a reducer that writes
    /// more traps and changes nothing. Default 64 MiB.
    pub max_tx_write_bytes: usize,
    /// The most row bytes one database may hold (the postcard bytes of its
    /// rows, 16 more per row, and what their index entries take); a reducer that would insert or update
    /// past it traps, naming the limit, and changes nothing. Deleting rows
    /// makes room. Default 4 GiB.
    pub max_database_bytes: usize,
    /// The most bytes of compiled components the on-disk cache keeps (see
    /// [`Engine::with_component_cache`]); the least recently used are
    /// deleted first. 0 turns the cache off. Default 1 GiB.
    pub component_cache_bytes: u64,
    /// Called before each component is compiled or loaded from the cache,
    /// on the thread doing it; it may block, which holds that compilation
    /// back. For tests that need a slow compilation without timing.
    pub before_compile: Option<CompileHook>,
}

/// A function called before each compilation (see
/// [`EngineConfig::before_compile`]).
#[derive(Clone)]
pub struct CompileHook(pub Arc<dyn Fn() + Send + Sync>);

impl fmt::Debug for CompileHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CompileHook")
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            reducer_deadline: Duration::from_secs(5),
            procedure_deadline: Duration::from_secs(30),
            max_procedures_per_database: 16,
            http_private_override: PrivateOverride::none(),
            http_limits: HttpLimits::default(),
            memory_limit_bytes: 128 << 20,
            epoch_tick: Duration::from_millis(5),
            pooling: true,
            max_instances: 256,
            max_log_line_bytes: 16 << 10,
            max_log_bytes: 4 << 20,
            max_log_lines: 10_000,
            max_cursors_per_call: 1024,
            max_batch_bytes: 1 << 20,
            max_tx_write_bytes: 64 << 20,
            max_database_bytes: 4 << 30,
            component_cache_bytes: 1 << 30,
            before_compile: None,
        }
    }
}

/// A configured wasmtime engine with its deadline ticker and import linker.
///
/// Cheap to clone; the ticker thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    linker: Arc<Linker<HostState>>,
    config: EngineConfig,
    pooling: bool,
    cache: Option<Arc<ComponentCache>>,
    procedures: ProcedureSlots,
    stopping: Arc<watch::Sender<bool>>,
}

impl Engine {
    /// Builds an engine and starts its deadline ticker.
    pub fn new(config: EngineConfig) -> Result<Self, HostError> {
        let (inner, pooling) = if config.pooling {
            match wasmtime::Engine::new(&wasm_config(&config, true)) {
                Ok(engine) => (engine, true),
                Err(err) => {
                    tracing::info!(
                        "pooling allocator unavailable ({err:#}); using on-demand allocation"
                    );
                    (build_engine(&config, false)?, false)
                }
            }
        } else {
            (build_engine(&config, false)?, false)
        };
        let mut linker = Linker::new(&inner);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        crate::wait_cap::cap_clock_waits(&mut linker)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        // Both versions of the world: their interfaces have different
        // names (`@0.1.0`, `@0.2.0`), so one linker serves either.
        v1::Module::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        v2::Module::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        spawn_ticker(inner.weak(), config.epoch_tick)
            .map_err(|e| HostError::Engine(format!("could not start the deadline ticker: {e}")))?;
        Ok(Self {
            inner,
            linker: Arc::new(linker),
            config,
            pooling,
            cache: None,
            procedures: ProcedureSlots::default(),
            stopping: Arc::new(watch::Sender::new(false)),
        })
    }

    /// This engine, keeping the components it compiles in the directory
    /// `dir` (created, mode 0700, if missing), so that a component compiled
    /// once (by this engine or an earlier one with the same configuration and
    /// wasmtime) loads without compiling. A [`Host`](crate::Host) uses
    /// `cache/components/` in its data directory. Entries are checked
    /// against a SHA-256 digest before they are loaded; a damaged one is
    /// deleted and the component compiled again. With
    /// [`EngineConfig::component_cache_bytes`] 0 the engine is returned unchanged.
    pub fn with_component_cache(mut self, dir: &Path) -> Result<Self, HostError> {
        if self.config.component_cache_bytes == 0 {
            return Ok(self);
        }
        let cache = ComponentCache::open(&self.inner, dir, self.config.component_cache_bytes)
            .map_err(|source| HostError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        self.cache = Some(Arc::new(cache));
        Ok(self)
    }

    /// How often the compiled-component cache was used, if this engine has one.
    pub fn component_cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| cache.stats())
    }

    /// Compiles `wasm`, or loads its compiled form from the component cache.
    pub(crate) fn component(&self, wasm: &[u8]) -> wasmtime::Result<Component> {
        if let Some(hook) = &self.config.before_compile {
            (hook.0)();
        }
        match &self.cache {
            Some(cache) => cache.component(&self.inner, wasm),
            None => Component::new(&self.inner, wasm),
        }
    }

    /// Whether the pooling instance allocator is in use.
    pub fn uses_pooling(&self) -> bool {
        self.pooling
    }

    /// The limits this engine applies.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The most procedures this engine (the whole server) runs at once,
    /// all databases together: a quarter of
    /// [`EngineConfig::max_instances`], at least 1. Each running procedure
    /// holds an instance of the pool, so procedures waiting on slow HTTP
    /// servers never take the instances databases need to be published or
    /// to replace a trapped instance. A call beyond it is refused with
    /// [`CallError::ServerTooManyProcedures`](crate::CallError::ServerTooManyProcedures).
    pub fn max_procedures(&self) -> usize {
        usize::try_from(self.config.max_instances / 4)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// Stops every procedure running on this engine (and any started
    /// later), for a server that is shutting down: an outbound HTTP request
    /// in flight ends at once with a `timeout` error saying so, and the
    /// procedure's wasm is stopped at its next deadline check (within one
    /// [`EngineConfig::epoch_tick`]), failing the call with
    /// [`CallError::ProcedureStopped`](crate::CallError::ProcedureStopped).
    /// A procedure inside a WASI clock wait (a sleep) wakes at once and is
    /// stopped the same way. A procedure whose sleep or request was cut
    /// short and that returns before its next check fails the same way,
    /// whatever it returned.
    pub fn stop_procedures(&self) {
        self.stopping.send_replace(true);
    }

    /// Becomes `true` once [`stop_procedures`](Self::stop_procedures) is called.
    pub(crate) fn procedures_stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// How many procedures run now on this engine, all databases together.
    pub(crate) fn procedure_slots(&self) -> &ProcedureSlots {
        &self.procedures
    }

    /// How much module log each database keeps.
    pub(crate) fn log_limits(&self) -> LogLimits {
        LogLimits {
            max_lines: self.config.max_log_lines,
            max_line_bytes: self.config.max_log_line_bytes,
            max_bytes: self.config.max_log_bytes,
        }
    }

    /// Whether `other` is a clone of this engine (components compiled by
    /// one run on the other).
    pub fn same(&self, other: &Engine) -> bool {
        wasmtime::Engine::same(&self.inner, &other.inner)
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// Why instantiating a component failed: a full instance pool, a
    /// constructor that ran past the deadline or trapped, or (otherwise)
    /// an import the world does not provide.
    /// `state` is the failed instance's, for what the module reported.
    pub(crate) fn instantiate_error(
        &self,
        error: &wasmtime::Error,
        state: &HostState,
    ) -> HostError {
        let pool_full = error
            .chain()
            .find_map(|cause| cause.downcast_ref::<wasmtime::PoolConcurrencyLimitError>());
        if let Some(full) = pool_full {
            return HostError::InstancePoolFull {
                limit: self.config.max_instances,
                detail: full.to_string(),
            };
        }
        if let Some(limit) = resource_table_full(error) {
            return HostError::StartTrapped(limit);
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => {
                HostError::StartTimedOut(self.config.reducer_deadline)
            }
            Some(_) => HostError::StartTrapped(state.trap_detail(error)),
            // The server could not set the instance up (its memory image
            // could not be written: a full disk): not the module's fault.
            None if error
                .chain()
                .any(|cause| cause.downcast_ref::<std::io::Error>().is_some()) =>
            {
                HostError::Unavailable(format!(
                    "the server could not instantiate the module: {error:#}"
                ))
            }
            None => HostError::WorldMismatch(format!("instantiation failed: {error:#}")),
        }
    }

    /// The deadline in ticks of the epoch clock.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.config.epoch_tick.as_nanos().max(1);
        let ticks = self.config.reducer_deadline.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

fn build_engine(config: &EngineConfig, pooling: bool) -> Result<wasmtime::Engine, HostError> {
    wasmtime::Engine::new(&wasm_config(config, pooling))
        .map_err(|e| HostError::Engine(format!("{e:#}")))
}

fn wasm_config(config: &EngineConfig, pooling: bool) -> Config {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true);
    wasm.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        let instances = config.max_instances.max(1);
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(8))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(8))
            .max_memory_size(config.memory_limit_bytes);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    wasm
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
fn spawn_ticker(engine: wasmtime::EngineWeak, tick: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("worldline-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(drop)
}
