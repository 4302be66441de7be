//! The module's tables, reducers and procedures, registered by the macros
//! at link time and ordered by name, which fixes their ids.

use std::fmt::Display;
use std::sync::OnceLock;

use serde::Serialize;

use crate::bindings::worldline::module::types as wit;
use crate::context::ReducerContext;
use crate::procedure::ProcedureContext;
use crate::typing::{Field, TableDef, TypeBuilder, WorldlineType};

/// A table registered by `#[table]`.
pub struct TableEntry {
    /// The table's name.
    pub name: &'static str,
    /// Describes the table, adding its row type to the arena.
    pub describe: fn(&mut TypeBuilder) -> TableDef,
}

/// A reducer registered by `#[reducer]`.
pub struct ReducerEntry {
    /// The reducer's name.
    pub name: &'static str,
    /// Its lifecycle role, if any.
    pub lifecycle: Option<wit::Lifecycle>,
    /// Describes its parameters, adding their types to the arena.
    pub params: fn(&mut TypeBuilder) -> Vec<Field>,
    /// Decodes the arguments and runs the reducer.
    pub invoke: fn(&ReducerContext, &[u8]) -> Result<(), String>,
}

/// A procedure registered by `#[procedure]`.
pub struct ProcedureEntry {
    /// The procedure's name.
    pub name: &'static str,
    /// Describes its parameters, adding their types to the arena.
    pub params: fn(&mut TypeBuilder) -> Vec<Field>,
    /// Describes the type of the value it returns.
    pub returns: fn(&mut TypeBuilder) -> u32,
    /// Decodes the arguments, runs the procedure and encodes its value.
    pub invoke: fn(&mut ProcedureContext, &[u8]) -> Result<Vec<u8>, String>,
}

inventory::collect!(TableEntry);
inventory::collect!(ReducerEntry);
inventory::collect!(ProcedureEntry);

struct Registry {
    tables: Vec<&'static TableEntry>,
    reducers: Vec<&'static ReducerEntry>,
    procedures: Vec<&'static ProcedureEntry>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut tables: Vec<_> = inventory::iter::<TableEntry>().collect();
        tables.sort_by_key(|t| t.name);
        let mut reducers: Vec<_> = inventory::iter::<ReducerEntry>().collect();
        reducers.sort_by_key(|r| r.name);
        let mut procedures: Vec<_> = inventory::iter::<ProcedureEntry>().collect();
        procedures.sort_by_key(|p| p.name);
        Registry {
            tables,
            reducers,
            procedures,
        }
    })
}

/// The id the host knows table `name` by.
pub(crate) fn table_id(name: &str) -> u32 {
    let tables = &registry().tables;
    let position = tables
        .binary_search_by_key(&name, |t| t.name)
        .unwrap_or_else(|_| panic!("table `{name}` is not registered"));
    position as u32
}

/// The reducer with this id.
pub(crate) fn reducer(id: u32) -> Option<&'static ReducerEntry> {
    registry().reducers.get(id as usize).copied()
}

/// The procedure with this id.
pub(crate) fn procedure(id: u32) -> Option<&'static ProcedureEntry> {
    registry().procedures.get(id as usize).copied()
}

/// The module description the host asks for.
pub fn describe() -> wit::ModuleDef {
    let registry = registry();
    let mut types = TypeBuilder::default();
    let tables = registry
        .tables
        .iter()
        .map(|t| (t.describe)(&mut types))
        .collect();
    let reducers = registry
        .reducers
        .iter()
        .map(|r| wit::ReducerDef {
            name: r.name.to_owned(),
            params: (r.params)(&mut types),
            lifecycle: r.lifecycle,
        })
        .collect();
    let procedures = registry
        .procedures
        .iter()
        .map(|p| wit::ProcedureDef {
            name: p.name.to_owned(),
            params: (p.params)(&mut types),
            returns: (p.returns)(&mut types),
        })
        .collect();
    wit::ModuleDef {
        types: types.finish(),
        tables,
        reducers,
        procedures,
    }
}

/// The tables of the database, reached as `ctx.db.<table>()` in a reducer
/// and `tx.db.<table>()` in a procedure's transaction; each `#[table]` adds
/// its accessor through a trait named after the table.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    _private: (),
}

impl Local {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }
}

/// Decodes the argument tuple of reducer or procedure `name`, requiring
/// every byte to be used.
pub fn decode_args<T: serde::de::DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes(bytes) {
        Ok((args, [])) => Ok(args),
        Ok((_, rest)) => Err(format!(
            "invalid arguments for `{name}`: {} bytes left over",
            rest.len()
        )),
        Err(e) => Err(format!("invalid arguments for `{name}`: {e}")),
    }
}

/// What a reducer may return: `()` or `Result<(), E: Display>`.
pub trait IntoReducerResult {
    /// The outcome the host sees.
    fn into_reducer_result(self) -> Result<(), String>;
}

impl IntoReducerResult for () {
    fn into_reducer_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> IntoReducerResult for Result<(), E> {
    fn into_reducer_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// What a procedure may return: a value `T`, or `Result<T, E>` with
/// `E: Display`, where `T` is a [`WorldlineType`] + `Serialize` (`()` for none).
#[diagnostic::on_unimplemented(
    message = "a procedure returns `T` or `Result<T, E>` with `T: WorldlineType + Serialize` and `E: Display`, not `{Self}`"
)]
pub trait IntoProcedureResult {
    /// Describes the returned value's type.
    fn describe_returns(types: &mut TypeBuilder) -> u32;

    /// The outcome the host sees: the value's postcard bytes, or the error's message.
    fn into_procedure_result(self) -> Result<Vec<u8>, String>;
}

impl<T: WorldlineType + Serialize> IntoProcedureResult for T {
    fn describe_returns(types: &mut TypeBuilder) -> u32 {
        T::describe(types)
    }

    fn into_procedure_result(self) -> Result<Vec<u8>, String> {
        postcard::to_allocvec(&self)
            .map_err(|e| format!("the procedure's value does not encode: {e}"))
    }
}

impl<T: WorldlineType + Serialize, E: Display> IntoProcedureResult for Result<T, E> {
    fn describe_returns(types: &mut TypeBuilder) -> u32 {
        T::describe(types)
    }

    fn into_procedure_result(self) -> Result<Vec<u8>, String> {
        self.map_err(|e| e.to_string())?.into_procedure_result()
    }
}
