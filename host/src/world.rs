//! Which version of the `worldline:module` world a component implements,
//! and calling its exports the same way whatever the version: a 0.1.0
//! component's description is read as a 0.2.0 one with no procedures and
//! no schedules.

use wasmtime::component::{Component, InstancePre};
use wasmtime::{AsContextMut, Engine};

use crate::bindings::{v1, v2};
use crate::state::HostState;

/// The module description, in the current version's types.
pub(crate) use v2::worldline::module::types::ModuleDef;
/// A procedure's context.
pub(crate) use v2::worldline::module::types::ProcedureContext;
/// A reducer's context, in the current version's types.
pub(crate) use v2::worldline::module::types::ReducerContext;

/// The export every version names its guest interface with, by version.
const GUEST_V1: &str = "worldline:module/guest@0.1.0";
const GUEST_V2: &str = "worldline:module/guest@0.2.0";

/// A component checked against one version of the world, ready to instantiate.
#[derive(Clone)]
pub(crate) enum WorldPre {
    /// `worldline:module@0.1.0`.
    V1(v1::ModulePre<HostState>),
    /// `worldline:module@0.2.0`.
    V2(v2::ModulePre<HostState>),
}

/// An instantiated module, of either version.
pub(crate) enum Guest {
    /// `worldline:module@0.1.0`.
    V1(v1::Module),
    /// `worldline:module@0.2.0`.
    V2(v2::Module),
}

impl WorldPre {
    /// Picks the world version from the guest interface `component`
    /// exports and checks the component against it.
    pub(crate) fn new(
        engine: &Engine,
        component: &Component,
        pre: InstancePre<HostState>,
    ) -> Result<Self, String> {
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if exports.iter().any(|name| name == GUEST_V2) {
            v2::ModulePre::new(pre)
                .map(Self::V2)
                .map_err(|e| format!("{e:#}"))
        } else if exports.iter().any(|name| name == GUEST_V1) {
            v1::ModulePre::new(pre)
                .map(Self::V1)
                .map_err(|e| format!("{e:#}"))
        } else {
            Err(format!(
                "the component exports neither `{GUEST_V2}` nor `{GUEST_V1}` (it exports: {})",
                if exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    exports.join(", ")
                }
            ))
        }
    }

    /// Instantiates the component in `store`.
    pub(crate) fn instantiate(
        &self,
        store: impl AsContextMut<Data = HostState>,
    ) -> wasmtime::Result<Guest> {
        match self {
            Self::V1(pre) => pre.instantiate(store).map(Guest::V1),
            Self::V2(pre) => pre.instantiate(store).map(Guest::V2),
        }
    }
}

impl Guest {
    /// Calls `describe`.
    pub(crate) fn describe(
        &self,
        store: impl AsContextMut<Data = HostState>,
    ) -> wasmtime::Result<ModuleDef> {
        match self {
            Self::V1(module) => module
                .worldline_module_guest()
                .call_describe(store)
                .map(upgrade::module_def),
            Self::V2(module) => module.worldline_module_guest().call_describe(store),
        }
    }

    /// Calls `call-reducer`.
    pub(crate) fn call_reducer(
        &self,
        store: impl AsContextMut<Data = HostState>,
        id: u32,
        ctx: ReducerContext,
        args: &[u8],
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::V1(module) => module.worldline_module_guest().call_call_reducer(
                store,
                id,
                upgrade::reducer_context(ctx),
                args,
            ),
            Self::V2(module) => module
                .worldline_module_guest()
                .call_call_reducer(store, id, ctx, args),
        }
    }

    /// Calls `call-procedure`; `None` for a 0.1.0 module, which has none.
    pub(crate) fn call_procedure(
        &self,
        store: impl AsContextMut<Data = HostState>,
        id: u32,
        ctx: ProcedureContext,
        args: &[u8],
    ) -> Option<wasmtime::Result<Result<Vec<u8>, String>>> {
        match self {
            Self::V1(_) => None,
            Self::V2(module) => Some(
                module
                    .worldline_module_guest()
                    .call_call_procedure(store, id, ctx, args),
            ),
        }
    }
}

/// Conversions between the versions' types.
mod upgrade {
    use crate::bindings::v1::worldline::module::types as old;
    use crate::bindings::v2::worldline::module::types as new;

    /// A 0.1.0 description as 0.2.0 spells it: no procedures, no schedules.
    pub(super) fn module_def(def: old::ModuleDef) -> new::ModuleDef {
        new::ModuleDef {
            types: def.types.into_iter().map(type_node).collect(),
            tables: def.tables.into_iter().map(table).collect(),
            reducers: def.reducers.into_iter().map(reducer).collect(),
            procedures: Vec::new(),
        }
    }

    /// The 0.2.0 reducer context as 0.1.0 spells it (the same fields).
    pub(super) fn reducer_context(ctx: new::ReducerContext) -> old::ReducerContext {
        old::ReducerContext {
            sender: ctx.sender,
            connection_id: ctx.connection_id,
            timestamp: ctx.timestamp,
            seed: ctx.seed,
        }
    }

    fn field(field: old::Field) -> new::Field {
        new::Field {
            name: field.name,
            ty: field.ty,
        }
    }

    fn type_node(node: old::TypeNode) -> new::TypeNode {
        use new::TypeNode as N;
        use old::TypeNode as O;
        match node {
            O::Bool => N::Bool,
            O::U8 => N::U8,
            O::U16 => N::U16,
            O::U32 => N::U32,
            O::U64 => N::U64,
            O::U128 => N::U128,
            O::I8 => N::I8,
            O::I16 => N::I16,
            O::I32 => N::I32,
            O::I64 => N::I64,
            O::I128 => N::I128,
            O::F32 => N::F32,
            O::F64 => N::F64,
            O::String => N::String,
            O::Identity => N::Identity,
            O::ConnectionId => N::ConnectionId,
            O::Timestamp => N::Timestamp,
            O::Option(ty) => N::Option(ty),
            O::Array(ty) => N::Array(ty),
            O::Product(fields) => N::Product(fields.into_iter().map(field).collect()),
            O::Sum(cases) => N::Sum(
                cases
                    .into_iter()
                    .map(|case| new::VariantCase {
                        name: case.name,
                        ty: case.ty,
                    })
                    .collect(),
            ),
        }
    }

    fn table(table: old::TableDef) -> new::TableDef {
        new::TableDef {
            name: table.name,
            row_type: table.row_type,
            primary_key: table.primary_key,
            indexes: table
                .indexes
                .into_iter()
                .map(|index| new::IndexDef {
                    name: index.name,
                    columns: index.columns,
                    kind: match index.kind {
                        old::IndexKind::Unique => new::IndexKind::Unique,
                        old::IndexKind::Btree => new::IndexKind::Btree,
                    },
                })
                .collect(),
            auto_inc: table.auto_inc,
            public: table.public,
            schedule: None,
        }
    }

    fn reducer(reducer: old::ReducerDef) -> new::ReducerDef {
        new::ReducerDef {
            name: reducer.name,
            params: reducer.params.into_iter().map(field).collect(),
            lifecycle: reducer.lifecycle.map(|lifecycle| match lifecycle {
                old::Lifecycle::Init => new::Lifecycle::Init,
                old::Lifecycle::ClientConnected => new::Lifecycle::ClientConnected,
                old::Lifecycle::ClientDisconnected => new::Lifecycle::ClientDisconnected,
            }),
        }
    }
}
