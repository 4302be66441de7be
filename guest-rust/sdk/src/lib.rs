//! Write Worldline modules in Rust.
//!
//! A module is a `cdylib` crate built for `wasm32-wasip2`. It declares
//! tables with [`#[table]`](table) and reducers with
//! [`#[reducer]`](reducer); this crate turns them into a WASI component that
//! implements the `worldline:module@0.1.0` world.
//!
//! ```ignore
//! use worldline::{reducer, table, ReducerContext, Table};
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
//! ```
#![deny(missing_docs)]

#[allow(missing_docs)] // generated from wit/worldline.wit, whose docs it carries where WIT has them
mod bindings;
mod context;
mod exports;
mod handles;
pub mod log;
mod registry;
mod types;
mod typing;

pub use context::{ReducerContext, Rng};
pub use handles::{BtreeIndex, DbError, DbErrorKind, RowIter, Table, UniqueIndex};
pub use registry::Local;
pub use types::{ConnectionId, Identity, Timestamp};
pub use typing::{TypeBuilder, WorldlineType};
pub use worldline_macros::{WorldlineType, reducer, table};

/// Serde's derive macros, for types used in tables and reducer arguments
/// (`#[derive(worldline::Serialize, worldline::Deserialize)]` together with
/// `#[serde(crate = "worldline::__private::serde")]`).
pub use serde::{Deserialize, Serialize};

/// Support for the code the macros generate. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::handles::{KeyPrefix, TableRow};
    pub use crate::registry::{IntoReducerResult, ReducerEntry, TableEntry, decode_args};
    pub use crate::typing::{
        Field, IndexDef, IndexKind, Lifecycle, TableDef, TypeNode, field, variant_case,
    };
    pub use inventory;
    pub use postcard;
    pub use serde;
}
