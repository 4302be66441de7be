//! Write Worldline modules in Rust.
//!
//! A module is a `cdylib` crate built for `wasm32-wasip2`. It declares
//! tables with [`#[table]`](table), reducers with [`#[reducer]`](reducer)
//! and procedures with [`#[procedure]`](procedure); this crate turns them
//! into a WASI component that implements the `worldline:module@0.2.0` world.
//!
//! ```ignore
//! use worldline::{procedure, reducer, table, ProcedureContext, ReducerContext, Table};
//!
//! #[table(name = account, public)]
//! pub struct Account {
//!     #[primary_key]
//!     pub id: u32,
//!     pub balance: i64,
//! }
//!
//! #[reducer]
//! pub fn open(ctx: &ReducerContext, id: u32) -> Result<(), String> {
//!     ctx.db.account().try_insert(Account { id, balance: 0 }).map_err(|e| e.to_string())?;
//!     Ok(())
//! }
//!
//! #[procedure]
//! pub fn balance(ctx: &mut ProcedureContext, id: u32) -> Result<i64, String> {
//!     let account = ctx.with_tx(|tx| Ok::<_, String>(tx.db.account().id().find(&id)))?;
//!     account.map(|a| a.balance).ok_or_else(|| format!("no account {id}"))
//! }
//! ```
#![deny(missing_docs)]

#[allow(missing_docs)] // generated from wit/worldline.wit, whose docs it carries where WIT has them
mod bindings;
mod context;
mod exports;
mod handles;
pub mod http;
pub mod log;
mod procedure;
mod registry;
mod schedule;
mod types;
mod typing;

pub use context::{ReducerContext, Rng};
pub use handles::{BtreeIndex, DbError, DbErrorKind, RowIter, Table, UniqueIndex};
pub use procedure::{ProcedureContext, TransactionError, TxContext, TxError, TxErrorKind};
pub use registry::Local;
pub use types::{ConnectionId, Identity, Timestamp, micros};
pub use typing::{TypeBuilder, WorldlineType};
pub use worldline_macros::{WorldlineType, procedure, reducer, table};

/// Serde's derive macros, for types used in tables and reducer arguments
/// (`#[derive(worldline::Serialize, worldline::Deserialize)]` together with
/// `#[serde(crate = "worldline::__private::serde")]`).
pub use serde::{Deserialize, Serialize};

/// Support for the code the macros generate, and for test modules. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::handles::{KeyPrefix, TableRow};
    pub use crate::registry::{
        IntoProcedureResult, IntoReducerResult, ProcedureEntry, ReducerEntry, TableEntry,
        decode_args, describe,
    };
    pub use crate::schedule::{schedule_at_column, schedule_interval_column, scheduled_reducer};
    pub use crate::typing::{
        Field, IndexDef, IndexKind, Lifecycle, ScheduleDef, TableDef, TypeNode, field, variant_case,
    };
    pub use inventory;
    pub use postcard;
    pub use serde;

    /// Sends a request through the raw `http.send` import from anywhere,
    /// bypassing the rule that only procedures get an HTTP client: test
    /// modules use it to check that the host refuses it in a reducer.
    pub fn raw_http_send(
        request: crate::http::Request,
    ) -> Result<crate::http::Response, crate::http::HttpError> {
        crate::http::send(request)
    }
}
