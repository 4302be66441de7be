//! Turns the module's `describe` output (a WIT type arena) into the
//! datastore's schema, rejecting malformed descriptions.

use std::collections::HashSet;

use worldline_datastore::{
    AlgebraicType, Field, IndexSchema, Lifecycle, MAX_NESTING_DEPTH, ModuleSchema, ProcedureSchema,
    ProductType, ReducerSchema, ScheduleSchema, SchemaError, SumType, TableSchema, Variant,
    excerpt,
};

use crate::bindings::v2::worldline::module::types as wit;

/// The most tables one module may declare; each costs the host memory
/// however small it is.
const MAX_TABLES: usize = 4_096;
/// The most reducers, and the most procedures, one module may declare.
const MAX_FUNCTIONS: usize = 4_096;
/// The most entries in each list of a table definition: its indexes, the
/// columns of one index, its auto-increment columns.
const MAX_TABLE_LIST: usize = 64;
/// The most indexes all the tables of one module may declare together:
/// each costs the host memory however empty its table (4,096 tables of 64
/// indexes each held some 480 MB, from a component of 162 KiB).
const MAX_INDEXES_IN_ALL: usize = 16_384;
/// The longest name (of a table, column, index, reducer, procedure,
/// parameter or sum case), in bytes.
const MAX_NAME_BYTES: usize = 255;
/// The most type nodes a whole description may expand to, counted twice
/// over: every arena node fully expanded, and every table's row type and
/// every reducer's and procedure's parameters and result fully expanded.
/// [`MAX_TYPE_NODES`] bounds one type; this bounds a module of many.
const MAX_DESCRIPTION_NODES: usize = 100_000;

/// Converts and validates a module description.
pub(crate) fn import_module(def: wit::ModuleDef) -> Result<ModuleSchema, SchemaError> {
    check_sizes(&def)?;
    let (types, sizes) = resolve_arena(&def.types).map_err(|e| name_the_user(&def, e))?;
    check_expanded_size(&def, &sizes)?;
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
                params: import_fields(&reducer.params, &types).map_err(|problem| {
                    SchemaError::Reducer {
                        reducer: reducer.name.clone(),
                        problem,
                    }
                })?,
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
                params: import_fields(&procedure.params, &types).map_err(|problem| {
                    SchemaError::Procedure {
                        procedure: procedure.name.clone(),
                        problem,
                    }
                })?,
                returns: lookup(&types, procedure.returns)
                    .map_err(|problem| SchemaError::Procedure {
                        procedure: procedure.name.clone(),
                        problem: format!("the return type: {problem}"),
                    })?
                    .clone(),
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
    let row_type = lookup(types, table.row_type).map_err(|problem| SchemaError::Table {
        table: table.name.clone(),
        problem: format!("the row type: {problem}"),
    })?;
    let columns = match row_type {
        AlgebraicType::Product(product) => product.clone(),
        other => {
            return Err(SchemaError::Table {
                table: table.name.clone(),
                problem: format!("the row type must be a product, found {other}"),
            });
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

/// Arena node `ty`, or why there is none.
fn lookup(types: &[AlgebraicType], ty: u32) -> Result<&AlgebraicType, String> {
    types.get(index_of(ty)).ok_or_else(|| {
        format!(
            "type reference {ty} is outside the type arena of {} nodes",
            types.len()
        )
    })
}

/// The fields' types, or which field's type reference is outside the arena.
fn import_fields(fields: &[wit::Field], types: &[AlgebraicType]) -> Result<ProductType, String> {
    let fields = fields
        .iter()
        .enumerate()
        .map(|(position, field)| {
            let ty = lookup(types, field.ty).map_err(|problem| match &field.name {
                Some(name) => format!("parameter `{}`: {problem}", short(name)),
                None => format!("parameter {position}: {problem}"),
            })?;
            Ok(Field {
                name: field.name.clone(),
                ty: ty.clone(),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(ProductType { fields })
}

/// The most nodes one resolved type may have. Arena nodes can share
/// children, so a small arena could otherwise describe a huge tree.
const MAX_TYPE_NODES: usize = 10_000;

/// Why [`resolve_arena`] refused the arena: the node it refused, and why.
struct ArenaError {
    /// The node's position in the arena.
    node: usize,
    /// What is wrong with it.
    error: SchemaError,
}

/// Resolves every arena node into a self-contained type. A node may refer
/// only to earlier nodes, which rules out cycles, and may nest at most
/// [`MAX_NESTING_DEPTH`] levels deep, so that no walk over a resolved type
/// (cloning one included) can exhaust the stack.
/// Returns each node resolved, with its size in nodes.
fn resolve_arena(nodes: &[wit::TypeNode]) -> Result<(Vec<AlgebraicType>, Vec<usize>), ArenaError> {
    let mut resolved: Vec<AlgebraicType> = Vec::with_capacity(nodes.len());
    let mut sizes: Vec<usize> = Vec::with_capacity(nodes.len());
    let mut depths: Vec<usize> = Vec::with_capacity(nodes.len());
    let mut total = 0usize;
    for (position, node) in nodes.iter().enumerate() {
        let context = format!("type node {position}");
        let at = |error| ArenaError {
            node: position,
            error,
        };
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
            wit::TypeNode::Option(inner) => {
                AlgebraicType::Option(Box::new(earlier(*inner).map_err(at)?))
            }
            wit::TypeNode::Array(inner) => {
                let element = earlier(*inner).map_err(at)?;
                if element.takes_no_bytes() {
                    return Err(at(SchemaError::Description(format!(
                        "type node {position} is an array of {element}, which takes no bytes: \
                         such an array's length is not bounded by its bytes (an array of \
                         units is a count; declare an integer)"
                    ))));
                }
                AlgebraicType::Array(Box::new(element))
            }
            wit::TypeNode::Product(fields) => AlgebraicType::Product(ProductType {
                fields: fields
                    .iter()
                    .map(|f| {
                        Ok(Field {
                            name: f.name.clone(),
                            ty: earlier(f.ty)?,
                        })
                    })
                    .collect::<Result<_, SchemaError>>()
                    .map_err(at)?,
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
                    .collect::<Result<_, SchemaError>>()
                    .map_err(at)?,
            }),
        };
        if let Some(problem) = repeated_member(node) {
            return Err(at(SchemaError::Description(format!(
                "type node {position}: {problem}"
            ))));
        }
        total = total.saturating_add(size);
        if total > MAX_DESCRIPTION_NODES {
            return Err(at(SchemaError::Description(format!(
                "the type arena expands to more than {MAX_DESCRIPTION_NODES} nodes in all \
                 (at node {position})"
            ))));
        }
        resolved.push(ty);
        sizes.push(size);
        depths.push(depth);
    }
    Ok((resolved, sizes))
}

/// Which name two fields of a product node, or two cases of a sum node,
/// share (a value in JSON, keyed by these names, could hold only one).
fn repeated_member(node: &wit::TypeNode) -> Option<String> {
    let mut seen = HashSet::new();
    match node {
        wit::TypeNode::Product(fields) => field_names(fields)
            .find(|name| !seen.insert(*name))
            .map(|name| format!("two fields are named `{}`", short(name))),
        wit::TypeNode::Sum(cases) => cases
            .iter()
            .map(|case| case.name.as_str())
            .find(|name| !seen.insert(*name))
            .map(|name| format!("two cases are named `{}`", short(name))),
        _ => None,
    }
}

/// The arena's refusal, naming where the refused node is used: the first
/// table (and column), reducer parameter, procedure parameter or procedure
/// result whose type is or contains it, so that the author learns which
/// declaration to fix.
fn name_the_user(def: &wit::ModuleDef, refused: ArenaError) -> SchemaError {
    let contains = containing(&def.types, refused.node);
    let reaches = |ty: u32| contains.get(index_of(ty)).copied().unwrap_or(false);
    let field = |fields: &[wit::Field]| {
        fields
            .iter()
            .position(|f| reaches(f.ty))
            .map(|i| match &fields[i].name {
                Some(name) => format!("`{name}`"),
                None => format!("{i}"),
            })
    };
    let error = refused.error;
    if let Some(table) = def.tables.iter().find(|t| reaches(t.row_type)) {
        let problem = match def.types.get(index_of(table.row_type)) {
            Some(wit::TypeNode::Product(columns)) => match field(columns) {
                Some(column) => format!("column {column}: {error}"),
                None => error.to_string(),
            },
            _ => error.to_string(),
        };
        return SchemaError::Table {
            table: table.name.clone(),
            problem,
        };
    }
    for reducer in &def.reducers {
        if let Some(param) = field(&reducer.params) {
            return SchemaError::Reducer {
                reducer: reducer.name.clone(),
                problem: format!("parameter {param}: {error}"),
            };
        }
    }
    for procedure in &def.procedures {
        let problem = match field(&procedure.params) {
            Some(param) => format!("parameter {param}: {error}"),
            None if reaches(procedure.returns) => format!("the return type: {error}"),
            None => continue,
        };
        return SchemaError::Procedure {
            procedure: procedure.name.clone(),
            problem,
        };
    }
    error
}

/// For each arena node, whether it is node `target` or contains it. Nodes
/// refer to earlier nodes only; a reference to any other counts as not
/// containing it.
fn containing(nodes: &[wit::TypeNode], target: usize) -> Vec<bool> {
    let mut contains: Vec<bool> = Vec::with_capacity(nodes.len());
    for (position, node) in nodes.iter().enumerate() {
        let child = |ty: u32| index_of(ty) < position && contains[index_of(ty)];
        let found = position == target
            || match node {
                wit::TypeNode::Option(inner) | wit::TypeNode::Array(inner) => child(*inner),
                wit::TypeNode::Product(fields) => fields.iter().any(|f| child(f.ty)),
                wit::TypeNode::Sum(cases) => cases.iter().any(|c| child(c.ty)),
                _ => false,
            };
        contains.push(found);
    }
    contains
}

/// Refuses a description with more tables or functions, longer lists in a
/// table definition, or longer names than a module may have, or a name
/// holding a control character, before anything in it is expanded.
fn check_sizes(def: &wit::ModuleDef) -> Result<(), SchemaError> {
    let too_many = |what: &str, count: usize, limit: usize| {
        (count > limit).then(|| {
            SchemaError::Description(format!("{what}: {count}, more than the limit of {limit}"))
        })
    };
    let counts = [
        ("tables", def.tables.len(), MAX_TABLES),
        ("reducers", def.reducers.len(), MAX_FUNCTIONS),
        ("procedures", def.procedures.len(), MAX_FUNCTIONS),
        ("type nodes", def.types.len(), MAX_DESCRIPTION_NODES),
    ];
    if let Some(error) = counts
        .into_iter()
        .find_map(|(what, count, limit)| too_many(what, count, limit))
    {
        return Err(error);
    }
    let indexes: usize = def.tables.iter().map(|t| t.indexes.len()).sum();
    if let Some(error) = too_many("indexes of all tables", indexes, MAX_INDEXES_IN_ALL) {
        return Err(error);
    }
    for table in &def.tables {
        let lists = [
            ("indexes", table.indexes.len()),
            ("auto-increment columns", table.auto_inc.len()),
        ]
        .into_iter()
        .chain(
            table
                .indexes
                .iter()
                .map(|i| ("columns of an index", i.columns.len())),
        );
        for (what, count) in lists {
            if let Some(error) = too_many(
                &format!("table `{}`: {what}", short(&table.name)),
                count,
                MAX_TABLE_LIST,
            ) {
                return Err(error);
            }
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for table in &def.tables {
        names.push(&table.name);
        names.extend(table.indexes.iter().map(|i| i.name.as_str()));
        names.extend(table.schedule.iter().map(|s| s.reducer.as_str()));
    }
    for reducer in &def.reducers {
        names.push(&reducer.name);
        names.extend(field_names(&reducer.params));
    }
    for procedure in &def.procedures {
        names.push(&procedure.name);
        names.extend(field_names(&procedure.params));
    }
    for node in &def.types {
        match node {
            wit::TypeNode::Product(members) => names.extend(field_names(members)),
            wit::TypeNode::Sum(cases) => names.extend(cases.iter().map(|c| c.name.as_str())),
            _ => {}
        }
    }
    for name in names {
        if name.len() > MAX_NAME_BYTES {
            return Err(SchemaError::Description(format!(
                "the name `{}` is {} bytes long, more than the limit of {MAX_NAME_BYTES}",
                short(name),
                name.len()
            )));
        }
        if let Some(control) = name.chars().find(|&c| is_control(c)) {
            return Err(SchemaError::Description(format!(
                "the name \"{}\" holds the control character U+{:04X}; names may not hold \
                 control characters (nor those that reorder text)",
                short(name).escape_debug(),
                u32::from(control)
            )));
        }
    }
    Ok(())
}

/// Whether a name may not hold `c`: a control character (Unicode category
/// Cc), or one of Unicode's explicit bidirectional formatting characters,
/// with which a name could be shown as another (a table `a\u{202E}b` reads
/// `ab` reversed wherever it is printed).
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// The names of the named fields among `fields`.
fn field_names(fields: &[wit::Field]) -> impl Iterator<Item = &str> {
    fields.iter().filter_map(|f| f.name.as_deref())
}

/// Refuses a description whose tables, reducers and procedures together
/// use more than [`MAX_DESCRIPTION_NODES`] type nodes, each use counted
/// fully expanded (many tables can share one large row type, and each
/// holds a copy). `sizes` are the arena nodes' sizes.
fn check_expanded_size(def: &wit::ModuleDef, sizes: &[usize]) -> Result<(), SchemaError> {
    let size = |ty: u32| sizes.get(index_of(ty)).copied().unwrap_or(1);
    let fields = |fields: &[wit::Field]| fields.iter().map(|f| size(f.ty)).sum::<usize>();
    let uses = def
        .tables
        .iter()
        .map(|t| size(t.row_type))
        .chain(def.reducers.iter().map(|r| fields(&r.params)))
        .chain(
            def.procedures
                .iter()
                .map(|p| fields(&p.params) + size(p.returns)),
        );
    let mut total = 0usize;
    for used in uses {
        total = total.saturating_add(used);
        if total > MAX_DESCRIPTION_NODES {
            return Err(SchemaError::Description(format!(
                "the tables, reducers and procedures use more than {MAX_DESCRIPTION_NODES} type \
                 nodes in all, each use counted expanded"
            )));
        }
    }
    Ok(())
}

/// A name that may be too long to quote whole, as errors quote it.
fn short(name: &str) -> String {
    excerpt(name, 32)
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
        let err = import_module(module(options(50_000), 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("type node {depth} nests more than {MAX_NESTING_DEPTH} types deep")
        );
    }

    // A module author cannot tell which declaration "type node 64" is: the
    // refusal names the column, parameter or result whose type holds it.
    #[test]
    fn a_type_refused_in_the_arena_is_named_by_where_it_is_used() {
        let depth = MAX_NESTING_DEPTH as u32;
        let too_deep = format!("type node {depth} nests more than {MAX_NESTING_DEPTH} types deep");
        let refusal = |def| import_module(def).unwrap_err().to_string();
        let column = module(options(depth + 5), depth + 4);
        assert_eq!(
            refusal(column),
            format!("table `t`: column `c`: {too_deep}")
        );
        let mut param = module(options(depth + 5), 0);
        param.reducers.push(wit::ReducerDef {
            name: "deep".into(),
            params: vec![wit::Field {
                name: Some("d".into()),
                ty: depth + 2,
            }],
            lifecycle: None,
        });
        assert_eq!(
            refusal(param),
            format!("reducer `deep`: parameter `d`: {too_deep}")
        );
        let mut result = module(options(depth + 5), 0);
        result.procedures.push(wit::ProcedureDef {
            name: "deep".into(),
            params: vec![],
            returns: depth,
        });
        assert_eq!(
            refusal(result),
            format!("procedure `deep`: the return type: {too_deep}")
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

    /// A table `t{n}` with row type `row_type` and no indexes.
    fn table(n: usize, row_type: u32) -> wit::TableDef {
        wit::TableDef {
            name: format!("t{n}"),
            row_type,
            primary_key: None,
            indexes: vec![],
            auto_inc: vec![],
            public: true,
            schedule: None,
        }
    }

    /// A row type of `columns` u64 columns: arena node 0 is `u64`, node 1 the row.
    fn wide_row(columns: usize) -> Vec<wit::TypeNode> {
        let fields = (0..columns)
            .map(|c| wit::Field {
                name: Some(format!("c{c}")),
                ty: 0,
            })
            .collect();
        vec![wit::TypeNode::U64, wit::TypeNode::Product(fields)]
    }

    fn with_tables(types: Vec<wit::TypeNode>, tables: Vec<wit::TableDef>) -> wit::ModuleDef {
        wit::ModuleDef {
            types,
            tables,
            reducers: vec![],
            procedures: vec![],
        }
    }

    // A small component could make the host hold gigabytes through its
    // description alone: many tables, each within the per-type limits.
    #[test]
    fn a_description_is_bounded_as_a_whole() {
        let refusal = |def| import_module(def).unwrap_err().to_string();
        // 1,000 tables of 20 columns sharing one row type: a large module, accepted.
        let tables = (0..1_000).map(|n| table(n, 1)).collect();
        assert!(import_module(with_tables(wide_row(20), tables)).is_ok());
        // Too many tables, however small.
        let tables = (0..=MAX_TABLES).map(|n| table(n, 1)).collect();
        assert_eq!(
            refusal(with_tables(wide_row(1), tables)),
            format!(
                "tables: {}, more than the limit of {MAX_TABLES}",
                MAX_TABLES + 1
            )
        );
        // Indexes, counted over all tables: 4,096 tables of 64 each took
        // some 480 MB.
        let tables = (0..300).map(|n| table(n, 1)).collect::<Vec<_>>();
        let indexed = |count: usize| {
            let mut tables = tables.clone();
            for (n, table) in tables.iter_mut().enumerate() {
                table.indexes = (0..count)
                    .map(|i| wit::IndexDef {
                        name: format!("t{n}_i{i}"),
                        columns: vec![0],
                        kind: wit::IndexKind::Btree,
                    })
                    .collect();
            }
            with_tables(wide_row(1), tables)
        };
        assert!(import_module(indexed(50)).is_ok());
        assert_eq!(
            refusal(indexed(60)),
            format!("indexes of all tables: 18000, more than the limit of {MAX_INDEXES_IN_ALL}")
        );
        // Tables sharing one row type each hold a copy of it.
        let tables = (0..100).map(|n| table(n, 1)).collect();
        assert_eq!(
            refusal(with_tables(wide_row(9_000), tables)),
            format!(
                "the tables, reducers and procedures use more than {MAX_DESCRIPTION_NODES} \
                 type nodes in all, each use counted expanded"
            )
        );
        // Arena nodes no table uses are expanded too.
        let mut types = wide_row(9_000);
        types.extend((0..20).map(|_| wit::TypeNode::Option(1)));
        let err = refusal(with_tables(types, vec![table(0, 1)]));
        assert!(
            err.starts_with(&format!(
                "the type arena expands to more than {MAX_DESCRIPTION_NODES} nodes in all"
            )),
            "{err}"
        );
        // A name longer than the limit, wherever it is.
        let mut types = wide_row(1);
        types.push(wit::TypeNode::Sum(vec![wit::VariantCase {
            name: "x".repeat(MAX_NAME_BYTES + 1),
            ty: 0,
        }]));
        let err = refusal(with_tables(types, vec![table(0, 1)]));
        assert!(
            err.ends_with(&format!(
                "is {} bytes long, more than the limit of {MAX_NAME_BYTES}",
                MAX_NAME_BYTES + 1
            )),
            "{err}"
        );
        let mut long = table(0, 1);
        long.indexes = (0..=MAX_TABLE_LIST)
            .map(|i| wit::IndexDef {
                name: format!("i{i}"),
                columns: vec![0],
                kind: wit::IndexKind::Btree,
            })
            .collect();
        assert_eq!(
            refusal(with_tables(wide_row(1), vec![long])),
            format!("table `t0`: indexes: 65, more than the limit of {MAX_TABLE_LIST}")
        );
    }
}
