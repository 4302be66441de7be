//! What a module's store holds: its sandboxed WASI context, its resources,
//! its datastore, its log, the memory limiter and the per-call quotas.

use std::collections::HashMap;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::{ResourceTable, ResourceTableError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use worldline_datastore::Datastore;

use crate::engine::EngineConfig;
use crate::error::CallError;
use crate::host_calls::CursorHandle;
use crate::module_log::SharedLog;
use crate::procedure_tx::ProcedureSide;
use crate::stderr_tail::StderrTail;
use crate::wait_cap::CallClock;

/// Most WASI resources (streams, pollables) one instance may hold at once.
/// Cursors are kept apart, and capped per call
/// ([`EngineConfig::max_cursors_per_call`]).
const MAX_RESOURCES: usize = 4096;

/// A limit the host sets on a call, passed: the call traps with this
/// message, which names the limit, and changes nothing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LimitExceeded(pub(crate) String);

/// What one call may use, from the engine's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallQuotas {
    /// Cursors open at once.
    pub(crate) max_cursors: usize,
    /// Row bytes one `cursor.next` returns.
    pub(crate) max_batch_bytes: usize,
    /// Row bytes one transaction inserts or updates.
    pub(crate) max_tx_write_bytes: usize,
    /// Row bytes one database holds.
    pub(crate) max_database_bytes: usize,
}

impl CallQuotas {
    pub(crate) fn from_config(config: &EngineConfig) -> Self {
        Self {
            max_cursors: config.max_cursors_per_call.max(1),
            max_batch_bytes: config.max_batch_bytes.max(1),
            max_tx_write_bytes: config.max_tx_write_bytes,
            max_database_bytes: config.max_database_bytes,
        }
    }
}

/// The data of a module's wasmtime store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    /// Resources the module holds: cursors and WASI streams.
    pub(crate) resources: ResourceTable,
    /// The module's tables; reducers see them through the `datastore` import.
    pub(crate) datastore: Datastore,
    /// The module log (shared with the database's other instances).
    pub(crate) log: SharedLog,
    /// What a procedure's instance has that a reducer's has not: its
    /// transaction (the datastore lent by the database's thread), its
    /// deadlines and its HTTP client. `None` for reducers and `describe`.
    pub(crate) procedure: Option<Box<ProcedureSide>>,
    /// The message of the last panic the module reported during the current call.
    pub(crate) panic_message: Option<String>,
    /// Whether the module logged a line during the current call (the log's
    /// last line is then the module's last word before a trap).
    pub(crate) logged_this_call: bool,
    /// The newest bytes the module wrote to stderr during the current call.
    stderr: StderrTail,
    /// The limits of one call.
    pub(crate) quotas: CallQuotas,
    /// The cursors opened during this call (or procedure transaction) and
    /// not yet dropped, by the handle the module holds; closed by the host
    /// when the call ends. They are not in [`HostState::resources`], whose
    /// positions are reused: a handle kept past its call must name no
    /// cursor, never a newer one.
    pub(crate) open_cursors: HashMap<u32, CursorHandle>,
    /// The handle the next cursor gets; handles are not reused until the
    /// `u32` space wraps around.
    pub(crate) next_cursor: u32,
    /// What the rows inserted or updated during this call count against
    /// the quotas (see [`crate::host_calls::quota_bytes`]), with what they
    /// added to the index entries.
    pub(crate) bytes_written: usize,
    /// What the rows the database held when this call started, and their
    /// index entries, count against its quota.
    pub(crate) stored_bytes: usize,
    memory: MemoryLimiter,
    /// The module's monotonic clock (shared with its WASI context).
    pub(crate) clock: CallClock,
    /// When the current reducer call, `describe` or instantiation must
    /// end (procedures keep theirs in [`ProcedureSide`]); a module's
    /// clock waits end by then (see [`crate::wait_cap`]).
    pub(crate) call_deadline: Option<Instant>,
}

impl HostState {
    /// A fresh state around an existing datastore and log.
    pub(crate) fn new(
        datastore: Datastore,
        log: impl Into<SharedLog>,
        config: &EngineConfig,
    ) -> Self {
        let mut resources = ResourceTable::new();
        resources.set_max_capacity(MAX_RESOURCES);
        let stderr = StderrTail::default();
        let clock = CallClock::new();
        Self {
            wasi: sandbox(stderr.clone(), clock),
            clock,
            call_deadline: None,
            stderr,
            resources,
            datastore,
            log: log.into(),
            procedure: None,
            panic_message: None,
            logged_this_call: false,
            quotas: CallQuotas::from_config(config),
            open_cursors: HashMap::new(),
            next_cursor: 0,
            bytes_written: 0,
            stored_bytes: 0,
            memory: MemoryLimiter {
                limit_bytes: config.memory_limit_bytes,
                denied: false,
            },
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.memory
    }

    /// Starts the deadline of a reducer call, `describe` or instantiation
    /// (its epoch deadline is set beside it): clock waits end by then.
    pub(crate) fn set_call_deadline(&mut self, after: std::time::Duration) {
        self.call_deadline = Instant::now().checked_add(after);
    }

    /// When the module must stop waiting: the current call's deadline, or
    /// a procedure's (the nearer of its own and its open transaction's).
    pub(crate) fn wait_limit(&self) -> Option<Instant> {
        match &self.procedure {
            Some(side) => Some(side.wait_limit()),
            None => self.call_deadline,
        }
    }

    /// Forgets what the previous call left behind (panic message, memory
    /// denial, cursors it never dropped, bytes it wrote).
    pub(crate) fn start_call(&mut self) {
        self.panic_message = None;
        self.logged_this_call = false;
        self.stderr.clear();
        self.memory.denied = false;
        self.bytes_written = 0;
        self.close_cursors();
    }

    /// Closes every cursor the module opened and did not drop: a cursor
    /// lives only as long as the call that opened it.
    pub(crate) fn close_cursors(&mut self) {
        self.open_cursors.clear();
    }

    /// What a trap says to the module's author: the resource table limit
    /// if the module hit it, else the panic message the module reported
    /// before trapping (the Rust SDK reports every panic), else the trap's
    /// own message with the last line the module logged and the last it
    /// wrote to stderr during the call (#9 items 4, 5).
    pub(crate) fn trap_detail(&self, trap: &wasmtime::Error) -> String {
        if let Some(limit) = resource_table_full(trap) {
            return limit;
        }
        if let Some(message) = &self.panic_message {
            return format!("panicked: {message}");
        }
        let mut detail = trap_message(trap);
        if let Some(line) = self
            .logged_this_call
            .then(|| self.log.last_message())
            .flatten()
        {
            detail = format!("{detail}; the module's last log line: {line}");
        }
        if let Some(lines) = self.stderr.last_lines() {
            detail = format!("{detail}; its last output on stderr: {lines}");
        }
        detail
    }

    /// Whether the module asked for more memory than its cap during this call.
    pub(crate) fn memory_denied(&self) -> bool {
        self.memory.denied
    }
}

impl Drop for HostState {
    /// A procedure's instance dropped with a transaction open (it trapped,
    /// returned or was abandoned) sends the lent datastore home, to be
    /// rolled back: the database's tables cannot leak with an instance.
    fn drop(&mut self) {
        if let Some(side) = &mut self.procedure {
            side.roll_back_open(&mut self.datastore);
        }
    }
}

/// Why a reducer's or procedure's trap stopped it: a host limit, the
/// reducer deadline (epoch interruption), a refused memory growth, a
/// reported panic, or any other trap with what the module last said.
pub(crate) fn classify_trap(
    config: &EngineConfig,
    state: &HostState,
    trap: &wasmtime::Error,
) -> CallError {
    if let Some(limit) = trap.downcast_ref::<LimitExceeded>() {
        CallError::LimitExceeded(limit.0.clone())
    } else if let Some(limit) = resource_table_full(trap) {
        CallError::LimitExceeded(limit)
    } else if trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        CallError::DeadlineExceeded(config.reducer_deadline)
    } else if state.memory_denied() {
        CallError::OutOfMemory {
            limit_bytes: config.memory_limit_bytes,
        }
    } else if let Some(message) = &state.panic_message {
        CallError::Panicked(message.clone())
    } else {
        CallError::Trapped(state.trap_detail(trap))
    }
}

/// A WASI context that grants nothing: no files, no environment, no
/// arguments, no stdin, no network; stdout discarded, and of stderr only
/// the newest bytes kept, in `stderr`, to explain a trap.
fn sandbox(stderr: StderrTail, clock: CallClock) -> WasiCtx {
    WasiCtx::builder()
        .stderr(stderr)
        .monotonic_clock(clock)
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

/// If `trap` is a module filling its resource table, a message naming the
/// limit: a call that traps so gets a fresh instance, with an empty table.
pub(crate) fn resource_table_full(trap: &wasmtime::Error) -> Option<String> {
    let full = trap.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ResourceTableError>(),
            Some(ResourceTableError::Full)
        )
    });
    full.then(|| {
        format!(
            "the module holds {MAX_RESOURCES} resources (WASI streams and pollables), the most \
             one instance may hold: it opens resources it never drops"
        )
    })
}

/// The readable part of a trap: the trap code, or the host error's message.
fn trap_message(error: &wasmtime::Error) -> String {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return format!("the module called exit({})", exit.0);
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::MemoryOutOfBounds) if deep_recursion(error) => format!(
            "{} in a deep recursion: most likely the module's stack overflowed (Rust and \
             C/C++ modules keep their stack in linear memory)",
            wasmtime::Trap::MemoryOutOfBounds
        ),
        Some(wasmtime::Trap::UnreachableCodeReached) => format!(
            "{}: the module aborted (`abort()` in C or C++, `os.abort()` in Python, \
             `std::process::abort()` in Rust) or reached code its compiler took to be \
             unreachable",
            wasmtime::Trap::UnreachableCodeReached
        ),
        Some(trap) => trap.to_string(),
        // The root cause is the host's reason (a stale cursor, ...); the
        // outer layers are only the wasm backtrace.
        None => error.root_cause().to_string(),
    }
}

/// How many of the innermost frames of a trap's backtrace
/// [`deep_recursion`] looks at.
const RECURSION_FRAMES: usize = 16;

/// Whether `error` happened in a deep recursion: its backtrace's
/// [`RECURSION_FRAMES`] innermost frames are all in one or two functions.
/// A Rust or C/C++ module keeps its stack at the start of linear memory,
/// so its stack overflowing is an out-of-bounds access, not wasm's "call
/// stack exhausted"; a recursion at the fault is what tells it apart.
fn deep_recursion(error: &wasmtime::Error) -> bool {
    let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = backtrace.frames();
    if frames.len() < RECURSION_FRAMES {
        return false;
    }
    let mut functions: Vec<u32> = frames[..RECURSION_FRAMES]
        .iter()
        .map(wasmtime::FrameInfo::func_index)
        .collect();
    functions.sort_unstable();
    functions.dedup();
    functions.len() <= 2
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
