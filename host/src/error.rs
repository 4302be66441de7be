//! Errors of the host library.

use std::time::Duration;

use worldline_datastore::SchemaError;

/// Why a database could not be created.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The wasm engine could not be configured.
    #[error("could not configure the wasm engine: {0}")]
    Engine(String),
    /// The bytes are not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The component imports something Worldline does not provide, or does not export `guest`.
    #[error("the component does not fit the worldline:module@0.1.0 world: {0}")]
    WorldMismatch(String),
    /// The module's `describe` trapped.
    #[error("the module trapped while describing itself: {0}")]
    DescribeTrapped(String),
    /// The module described an invalid schema.
    #[error("invalid module schema: {0}")]
    Schema(#[from] SchemaError),
    /// The module's `init` reducer failed, so the database was not created.
    #[error("the module's init reducer failed: {0}")]
    InitFailed(#[source] CallError),
    /// No table has this name.
    #[error("no table named `{0}`")]
    NoSuchTable(String),
}

/// Why a reducer call changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The module has no reducer with this name.
    #[error("no reducer named `{0}`")]
    NoSuchReducer(String),
    /// Lifecycle reducers are called by the host only.
    #[error("`{0}` is a lifecycle reducer and cannot be called by name")]
    LifecycleReducer(String),
    /// The argument bytes do not decode as the reducer's parameters.
    #[error("invalid arguments for reducer `{reducer}`: {message}")]
    InvalidArguments {
        /// The reducer called.
        reducer: String,
        /// What did not decode.
        message: String,
    },
    /// The reducer returned an error.
    #[error("{0}")]
    Failed(String),
    /// The reducer panicked; the message is the panic's.
    #[error("the reducer panicked: {0}")]
    Panicked(String),
    /// The module trapped for another reason.
    #[error("the module trapped: {0}")]
    Trapped(String),
    /// The reducer ran past its deadline and was interrupted.
    #[error("the reducer ran longer than its {0:?} deadline and was stopped")]
    DeadlineExceeded(Duration),
    /// The module tried to grow its memory past the cap.
    #[error("the module exceeded its memory limit of {limit_bytes} bytes")]
    OutOfMemory {
        /// The memory cap in bytes.
        limit_bytes: usize,
    },
}
