//! What a module's store holds: its sandboxed WASI context, its resources,
//! its datastore, its log and the memory limiter.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use worldline_datastore::Datastore;

use crate::module_log::ModuleLog;

/// Most resources (cursors, WASI streams) one instance may hold at once.
const MAX_RESOURCES: usize = 4096;

/// The data of a module's wasmtime store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    /// Resources the module holds: cursors and WASI streams.
    pub(crate) resources: ResourceTable,
    /// The module's tables; reducers see them through the `datastore` import.
    pub(crate) datastore: Datastore,
    /// The module log.
    pub(crate) log: ModuleLog,
    /// The message of the last panic the module reported during the current call.
    pub(crate) panic_message: Option<String>,
    memory: MemoryLimiter,
}

impl HostState {
    /// A fresh state around an existing datastore and log.
    pub(crate) fn new(datastore: Datastore, log: ModuleLog, memory_limit_bytes: usize) -> Self {
        let mut resources = ResourceTable::new();
        resources.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi: sandbox(),
            resources,
            datastore,
            log,
            panic_message: None,
            memory: MemoryLimiter {
                limit_bytes: memory_limit_bytes,
                denied: false,
            },
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.memory
    }

    /// Forgets what the previous call left behind (panic message, memory denial).
    pub(crate) fn start_call(&mut self) {
        self.panic_message = None;
        self.memory.denied = false;
    }

    /// Whether the module asked for more memory than its cap during this call.
    pub(crate) fn memory_denied(&self) -> bool {
        self.memory.denied
    }
}

/// A WASI context that grants nothing: no files, no environment, no
/// arguments, no stdin, output discarded, no network.
fn sandbox() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.resources,
        }
    }
}

/// Caps linear memory and remembers when a growth was refused.
pub(crate) struct MemoryLimiter {
    limit_bytes: usize,
    denied: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit_bytes;
        if !allowed {
            self.denied = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}
