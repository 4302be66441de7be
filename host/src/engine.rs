//! The wasm engine shared by every database of a host: compiler settings,
//! the epoch ticker that enforces reducer deadlines, and the import linker.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::Module;
use crate::error::HostError;
use crate::state::HostState;

/// Limits and timing for every module run by an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How long one reducer call may run before it is interrupted and rolled back.
    pub reducer_deadline: Duration,
    /// The most linear memory one module instance may have, in bytes.
    pub memory_limit_bytes: usize,
    /// How often the deadline clock ticks; deadlines are enforced to within one tick.
    pub epoch_tick: Duration,
    /// Whether to try the pooling instance allocator (falls back when the address-space reservation fails).
    pub pooling: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            reducer_deadline: Duration::from_secs(5),
            memory_limit_bytes: 128 << 20,
            epoch_tick: Duration::from_millis(5),
            pooling: true,
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
}

/// How many module instances the pooling allocator reserves room for.
const POOLED_INSTANCES: u32 = 256;

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
        Module::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        spawn_ticker(inner.weak(), config.epoch_tick)
            .map_err(|e| HostError::Engine(format!("could not start the deadline ticker: {e}")))?;
        Ok(Self {
            inner,
            linker: Arc::new(linker),
            config,
            pooling,
        })
    }

    /// Whether the pooling instance allocator is in use.
    pub fn uses_pooling(&self) -> bool {
        self.pooling
    }

    /// The limits this engine applies.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
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
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 8)
            .total_memories(POOLED_INSTANCES * 2)
            .total_tables(POOLED_INSTANCES * 8)
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
