//! The module's tables and reducers, registered by the macros at link time
//! and ordered by name, which fixes their ids.

use std::fmt::Display;
use std::sync::OnceLock;

use crate::bindings::worldline::module::types as wit;
use crate::context::ReducerContext;
use crate::typing::{Field, TableDef, TypeBuilder};

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

inventory::collect!(TableEntry);
inventory::collect!(ReducerEntry);

struct Registry {
    tables: Vec<&'static TableEntry>,
    reducers: Vec<&'static ReducerEntry>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut tables: Vec<_> = inventory::iter::<TableEntry>().collect();
        tables.sort_by_key(|t| t.name);
        let mut reducers: Vec<_> = inventory::iter::<ReducerEntry>().collect();
        reducers.sort_by_key(|r| r.name);
        Registry { tables, reducers }
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

/// The module description the host asks for.
pub(crate) fn describe() -> wit::ModuleDef {
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
    wit::ModuleDef {
        types: types.finish(),
        tables,
        reducers,
    }
}

/// The tables of the database, reached as `ctx.db.<table>()`; each
/// `#[table]` adds its accessor through a trait named after the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local {
    _private: (),
}

/// Decodes a reducer's argument tuple, requiring every byte to be used.
pub fn decode_args<T: serde::de::DeserializeOwned>(
    reducer: &str,
    bytes: &[u8],
) -> Result<T, String> {
    match postcard::take_from_bytes(bytes) {
        Ok((args, [])) => Ok(args),
        Ok((_, rest)) => Err(format!(
            "invalid arguments for reducer `{reducer}`: {} bytes left over",
            rest.len()
        )),
        Err(e) => Err(format!("invalid arguments for reducer `{reducer}`: {e}")),
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
