//! The Worldline datastore: in-memory tables with primary-key, unique and
//! btree indexes (single- and multi-column), auto-increment sequences,
//! transactions with read-your-writes and rollback, and the net delta of
//! each committed transaction.
//!
//! It is sans-IO: no threads, files or sockets, so it can be tested and
//! reasoned about on its own. Rows are postcard bytes of the table's row
//! type (see [`decode_value`] for the encoding); the datastore decodes only
//! what it must to validate rows and build index keys, and never panics on
//! any input bytes.
//!
//! [`json_to_args`], [`json_to_value`], [`value_to_json`] and [`row_to_json`]
//! convert between JSON and those bytes (see [`json_to_value`] for the mapping),
//! and the schema types serialize with serde for `GET /v1/database/NAME/schema`.
#![deny(missing_docs)]

mod codec;
mod compact_index;
mod cursor;
mod datastore;
mod delta;
mod error;
mod index;
mod json;
mod migration;
mod recovery;
mod row;
mod schema;
mod sequence;
mod store;
mod table;
mod value;
mod wire;

pub use codec::{
    DecodeError, MAX_ZERO_SIZED_ELEMENTS, check_product, decode_product, decode_value,
    encode_value, skip_value,
};
pub use cursor::{Cursor, KeyBound};
pub use datastore::{Datastore, IndexId, TableId};
pub use delta::{SequenceState, TableDelta, TxDelta};
pub use error::{DbError, DbErrorKind, excerpt};
pub use json::{
    JsonError, JsonProblem, PathSegment, json_to_args, json_to_value, row_to_json, value_to_json,
};
pub use migration::{
    CompatibleChange, IncompatibleChange, IncompatibleSchema, MigrationError, MigrationPlan,
    describe_changes, plan_migration,
};
pub use schema::{
    AlgebraicType, Field, IndexSchema, Lifecycle, MAX_NESTING_DEPTH, ModuleSchema, ProcedureSchema,
    ProductType, ReducerSchema, ScheduleSchema, SchemaError, SumType, TableSchema, Variant,
};
pub use table::Row;
pub use value::Value;
