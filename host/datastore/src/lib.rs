//! The Worldline datastore: in-memory tables with primary-key, unique and
//! btree indexes (single- and multi-column), auto-increment sequences,
//! transactions with read-your-writes and rollback, and the net delta of
//! each committed transaction.
//!
//! It is sans-IO: no threads, files or sockets, so it can be tested and
//! reasoned about on its own. Rows are postcard bytes of the table's row
//! type; the datastore decodes only to validate rows and build index keys.
#![deny(missing_docs)]

mod codec;
mod datastore;
mod delta;
mod error;
mod index;
mod schema;
mod table;
mod value;

pub use codec::{DecodeError, decode_product, decode_value, encode_value};
pub use datastore::{Cursor, Datastore, IndexId, KeyBound, TableId};
pub use delta::{SequenceState, TableDelta, TxDelta};
pub use error::{DbError, DbErrorKind};
pub use schema::{
    AlgebraicType, Field, IndexSchema, Lifecycle, ModuleSchema, ProductType, ReducerSchema,
    SchemaError, SumType, TableSchema, Variant,
};
pub use table::Row;
pub use value::Value;
