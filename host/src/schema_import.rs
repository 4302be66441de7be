//! Turns the module's `describe` output (a WIT type arena) into the
//! datastore's schema, rejecting malformed descriptions.

use worldline_datastore::{
    AlgebraicType, Field, IndexSchema, Lifecycle, MAX_NESTING_DEPTH, ModuleSchema, ProcedureSchema,
    ProductType, ReducerSchema, ScheduleSchema, SchemaError, SumType, TableSchema, Variant,
};

use crate::bindings::v2::worldline::module::types as wit;

/// Converts and validates a module description.
pub(crate) fn import_module(def: wit::ModuleDef) -> Result<ModuleSchema, SchemaError> {
    let types = resolve_arena(&def.types)?;
    let schedules: Vec<(usize, wit::ScheduleDef)> = def
        .tables
        .iter()
        .enumerate()
        .filter_map(|(table, def)| def.schedule.clone().map(|schedule| (table, schedule)))
        .collect();
    let tables = def
        .tables
        .into_iter()
        .map(|table| import_table(table, &types))
        .collect::<Result<Vec<_>, _>>()?;
    let reducers = def
        .reducers
        .into_iter()
        .map(|reducer| {
            Ok(ReducerSchema {
                params: import_fields(&reducer.params, &types, &reducer.name)?,
                name: reducer.name,
                lifecycle: reducer.lifecycle.map(|l| match l {
                    wit::Lifecycle::Init => Lifecycle::Init,
                    wit::Lifecycle::ClientConnected => Lifecycle::ClientConnected,
                    wit::Lifecycle::ClientDisconnected => Lifecycle::ClientDisconnected,
                }),
            })
        })
        .collect::<Result<Vec<_>, SchemaError>>()?;
    let procedures = def
        .procedures
        .into_iter()
        .map(|procedure| {
            Ok(ProcedureSchema {
                params: import_fields(&procedure.params, &types, &procedure.name)?,
                returns: lookup(&types, procedure.returns, &procedure.name)?.clone(),
                name: procedure.name,
            })
        })
        .collect::<Result<Vec<_>, SchemaError>>()?;
    let schedules = schedules
        .into_iter()
        .map(|(table, schedule)| {
            let reducer = reducers
                .iter()
                .position(|r| r.name == schedule.reducer)
                .ok_or_else(|| SchemaError::Table {
                    table: tables[table].name.clone(),
                    problem: format!("schedule: no reducer is named `{}`", schedule.reducer),
                })?;
            Ok(ScheduleSchema {
                table,
                reducer,
                at_column: index_of(schedule.at_column),
                interval_column: schedule.interval_column.map(index_of),
            })
        })
        .collect::<Result<Vec<_>, SchemaError>>()?;
    let schema = ModuleSchema {
        tables,
        reducers,
        procedures,
        schedules,
    };
    schema.validate()?;
    Ok(schema)
}

fn import_table(table: wit::TableDef, types: &[AlgebraicType]) -> Result<TableSchema, SchemaError> {
    let columns = match lookup(types, table.row_type, &table.name)? {
        AlgebraicType::Product(product) => product.clone(),
        other => {
            return Err(SchemaError::Description(format!(
                "table `{}`: row type must be a product, found {other}",
                table.name
            )));
        }
    };
    Ok(TableSchema {
        columns,
        primary_key: table.primary_key.map(index_of),
        indexes: table
            .indexes
            .into_iter()
            .map(|index| IndexSchema {
                name: index.name,
                columns: index.columns.into_iter().map(index_of).collect(),
                unique: matches!(index.kind, wit::IndexKind::Unique),
            })
            .collect(),
        auto_inc: table.auto_inc.into_iter().map(index_of).collect(),
        public: table.public,
        name: table.name,
    })
}

fn index_of(position: u32) -> usize {
    position as usize
}

fn lookup<'a>(
    types: &'a [AlgebraicType],
    ty: u32,
    context: &str,
) -> Result<&'a AlgebraicType, SchemaError> {
    types.get(index_of(ty)).ok_or_else(|| {
        SchemaError::Description(format!(
            "{context}: type reference {ty} is outside the type arena of {} nodes",
            types.len()
        ))
    })
}

fn import_fields(
    fields: &[wit::Field],
    types: &[AlgebraicType],
    context: &str,
) -> Result<ProductType, SchemaError> {
    let fields = fields
        .iter()
        .map(|field| {
            Ok(Field {
                name: field.name.clone(),
                ty: lookup(types, field.ty, context)?.clone(),
            })
        })
        .collect::<Result<_, SchemaError>>()?;
    Ok(ProductType { fields })
}

/// The most nodes one resolved type may have. Arena nodes can share
/// children, so a small arena could otherwise describe a huge tree.
const MAX_TYPE_NODES: usize = 10_000;

/// Resolves every arena node into a self-contained type. A node may refer
/// only to earlier nodes, which rules out cycles, and may nest at most
/// [`MAX_NESTING_DEPTH`] levels deep, so that no walk over a resolved type
/// (cloning one included) can exhaust the stack.
fn resolve_arena(nodes: &[wit::TypeNode]) -> Result<Vec<AlgebraicType>, SchemaError> {
    let mut resolved: Vec<AlgebraicType> = Vec::with_capacity(nodes.len());
    let mut sizes: Vec<usize> = Vec::with_capacity(nodes.len());
    let mut depths: Vec<usize> = Vec::with_capacity(nodes.len());
    for (position, node) in nodes.iter().enumerate() {
        let context = format!("type node {position}");
        let mut size = 1usize;
        let mut depth = 1usize;
        let mut earlier = |ty: u32| -> Result<AlgebraicType, SchemaError> {
            if index_of(ty) >= position {
                return Err(SchemaError::Description(format!(
                    "{context} refers to node {ty}; nodes may refer only to earlier nodes"
                )));
            }
            size = size.saturating_add(sizes[index_of(ty)]);
            if size > MAX_TYPE_NODES {
                return Err(SchemaError::Description(format!(
                    "{context} expands to more than {MAX_TYPE_NODES} type nodes"
                )));
            }
            depth = depth.max(depths[index_of(ty)] + 1);
            if depth > MAX_NESTING_DEPTH {
                return Err(SchemaError::Description(format!(
                    "{context} nests more than {MAX_NESTING_DEPTH} types deep"
                )));
            }
            Ok(resolved[index_of(ty)].clone())
        };
        let ty = match node {
            wit::TypeNode::Bool => AlgebraicType::Bool,
            wit::TypeNode::U8 => AlgebraicType::U8,
            wit::TypeNode::U16 => AlgebraicType::U16,
            wit::TypeNode::U32 => AlgebraicType::U32,
            wit::TypeNode::U64 => AlgebraicType::U64,
            wit::TypeNode::U128 => AlgebraicType::U128,
            wit::TypeNode::I8 => AlgebraicType::I8,
            wit::TypeNode::I16 => AlgebraicType::I16,
            wit::TypeNode::I32 => AlgebraicType::I32,
            wit::TypeNode::I64 => AlgebraicType::I64,
            wit::TypeNode::I128 => AlgebraicType::I128,
            wit::TypeNode::F32 => AlgebraicType::F32,
            wit::TypeNode::F64 => AlgebraicType::F64,
            wit::TypeNode::String => AlgebraicType::String,
            wit::TypeNode::Identity => AlgebraicType::Identity,
            wit::TypeNode::ConnectionId => AlgebraicType::ConnectionId,
            wit::TypeNode::Timestamp => AlgebraicType::Timestamp,
            wit::TypeNode::Option(inner) => AlgebraicType::Option(Box::new(earlier(*inner)?)),
            wit::TypeNode::Array(inner) => AlgebraicType::Array(Box::new(earlier(*inner)?)),
            wit::TypeNode::Product(fields) => AlgebraicType::Product(ProductType {
                fields: fields
                    .iter()
                    .map(|f| {
                        Ok(Field {
                            name: f.name.clone(),
                            ty: earlier(f.ty)?,
                        })
                    })
                    .collect::<Result<_, SchemaError>>()?,
            }),
            wit::TypeNode::Sum(cases) => AlgebraicType::Sum(SumType {
                variants: cases
                    .iter()
                    .map(|c| {
                        Ok(Variant {
                            name: c.name.clone(),
                            ty: earlier(c.ty)?,
                        })
                    })
                    .collect::<Result<_, SchemaError>>()?,
            }),
        };
        resolved.push(ty);
        sizes.push(size);
        depths.push(depth);
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with one table `t` whose single column has arena node `column`'s type.
    fn module(types: Vec<wit::TypeNode>, column: u32) -> wit::ModuleDef {
        let mut types = types;
        types.push(wit::TypeNode::Product(vec![wit::Field {
            name: Some("c".into()),
            ty: column,
        }]));
        wit::ModuleDef {
            tables: vec![wit::TableDef {
                name: "t".into(),
                row_type: types.len() as u32 - 1,
                primary_key: None,
                indexes: vec![],
                auto_inc: vec![],
                public: true,
                schedule: None,
            }],
            types,
            reducers: vec![],
            procedures: vec![],
        }
    }

    /// A module with a table `tick(id: u64 pk, at: timestamp, every: u64)`
    /// scheduling reducer `run`, whose parameter has arena type `param`
    /// (2 is the row type), and a procedure named `procedure`.
    fn scheduled(param: u32, reducer: &str, procedure: &str, pk: bool) -> wit::ModuleDef {
        let types = vec![
            wit::TypeNode::U64,
            wit::TypeNode::Timestamp,
            wit::TypeNode::Product(vec![
                wit::Field {
                    name: Some("id".into()),
                    ty: 0,
                },
                wit::Field {
                    name: Some("at".into()),
                    ty: 1,
                },
                wit::Field {
                    name: Some("every".into()),
                    ty: 0,
                },
            ]),
        ];
        wit::ModuleDef {
            tables: vec![wit::TableDef {
                name: "tick".into(),
                row_type: 2,
                primary_key: pk.then_some(0),
                indexes: vec![wit::IndexDef {
                    name: "tick_id".into(),
                    columns: vec![0],
                    kind: wit::IndexKind::Unique,
                }],
                auto_inc: vec![0],
                public: false,
                schedule: Some(wit::ScheduleDef {
                    reducer: reducer.into(),
                    at_column: 1,
                    interval_column: Some(2),
                }),
            }],
            types,
            reducers: vec![wit::ReducerDef {
                name: "run".into(),
                params: vec![wit::Field {
                    name: Some("row".into()),
                    ty: param,
                }],
                lifecycle: None,
            }],
            procedures: vec![wit::ProcedureDef {
                name: procedure.into(),
                params: vec![],
                returns: 0,
            }],
        }
    }

    #[test]
    fn schedules_and_procedures_are_imported() {
        let schema = import_module(scheduled(2, "run", "fetch", true)).expect("valid");
        assert_eq!(schema.procedures[0].name, "fetch");
        assert_eq!(schema.procedures[0].returns, AlgebraicType::U64);
        let schedule = schema.schedules[0];
        assert_eq!(
            (schedule.table, schedule.reducer, schedule.at_column),
            (0, 0, 1)
        );
        assert_eq!(schedule.interval_column, Some(2));
        assert!(schema.schedule_of_reducer(0).is_some());
    }

    #[test]
    fn bad_schedules_and_procedures_name_the_problem() {
        let refusal = |def| import_module(def).unwrap_err().to_string();
        assert_eq!(
            refusal(scheduled(0, "run", "fetch", true)),
            "table `tick`: schedule: reducer `run` must take exactly one parameter, of the \
             table's row type"
        );
        assert_eq!(
            refusal(scheduled(2, "missing", "fetch", true)),
            "table `tick`: schedule: no reducer is named `missing`"
        );
        assert!(refusal(scheduled(2, "run", "fetch", false)).contains("needs a primary key"));
        assert_eq!(
            refusal(scheduled(2, "run", "run", true)),
            "procedure `run`: a reducer has the same name (reducers and procedures share one \
             namespace)"
        );
    }

    /// `Option<Option<...<u8>>>`, `depth` types deep, as an arena.
    fn options(depth: u32) -> Vec<wit::TypeNode> {
        std::iter::once(wit::TypeNode::U8)
            .chain((1..depth).map(|inner| wit::TypeNode::Option(inner - 1)))
            .collect()
    }

    // #9 item 1: a 10,000-node chain used to be resolved (and cloned,
    // recursively) before the depth of table columns was checked.
    #[test]
    fn deep_type_arenas_are_refused_at_the_limit() {
        let depth = MAX_NESTING_DEPTH as u32;
        // The column holds the deepest type; the row type adds one level.
        assert!(import_module(module(options(depth - 1), depth - 2)).is_ok());
        let err = import_module(module(options(100_000), 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("type node {depth} nests more than {MAX_NESTING_DEPTH} types deep")
        );
    }

    // #9 item 1: a node referring to itself or a later node (a cycle) is refused.
    #[test]
    fn cyclic_type_arenas_are_refused() {
        for types in [
            vec![wit::TypeNode::Option(0)],
            vec![wit::TypeNode::Array(1), wit::TypeNode::Option(0)],
        ] {
            let err = import_module(module(types, 0)).unwrap_err().to_string();
            assert!(err.contains("may refer only to earlier nodes"), "{err}");
        }
    }
}
