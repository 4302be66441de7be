//! Table and reducer schemas, and the algebraic types of their columns.

use std::collections::HashSet;
use std::fmt;

/// The type of a column, a reducer parameter or a part of one.
///
/// In JSON (serde), the types without parameters are strings named as in
/// Rust (`"bool"`, `"u8"` ... `"i128"`, `"f32"`, `"f64"`, `"string"`,
/// `"identity"`, `"connection_id"`, `"timestamp"`), and the others are
/// objects with one key: `{"option": T}`, `{"array": T}`,
/// `{"product": [field, ...]}` and `{"sum": [variant, ...]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgebraicType {
    /// `true` or `false`.
    Bool,
    /// Unsigned 8-bit integer.
    U8,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 128-bit integer.
    U128,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Signed 128-bit integer.
    I128,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// UTF-8 text.
    String,
    /// A 32-byte identity.
    Identity,
    /// A 16-byte connection id.
    ConnectionId,
    /// Microseconds since the Unix epoch.
    Timestamp,
    /// An optional value.
    Option(Box<AlgebraicType>),
    /// A sequence of values.
    Array(Box<AlgebraicType>),
    /// A struct or tuple.
    Product(ProductType),
    /// A tagged union.
    Sum(SumType),
}

/// How deeply anything a client, a module or a file on disk supplies may
/// nest; deeper input is refused with an error naming this limit.
///
/// It bounds a column's or parameter's type (`Option<Array<u8>>` is 3 deep)
/// and every node of a module's type arena, so that decoding, encoding,
/// comparing, hashing, printing and converting values to and from JSON,
/// which all recurse as deep as the type, cannot exhaust a thread's stack;
/// and the parentheses, brackets and `AND`/`OR` nesting of a SQL condition,
/// so that compiling and evaluating a query cannot either.
pub const MAX_NESTING_DEPTH: usize = 64;

impl AlgebraicType {
    /// Whether the type nests more than `limit` levels deep; looks no deeper than that.
    fn nests_deeper_than(&self, limit: usize) -> bool {
        let Some(below) = limit.checked_sub(1) else {
            return true;
        };
        match self {
            AlgebraicType::Option(inner) | AlgebraicType::Array(inner) => {
                inner.nests_deeper_than(below)
            }
            AlgebraicType::Product(product) => {
                product.fields.iter().any(|f| f.ty.nests_deeper_than(below))
            }
            AlgebraicType::Sum(sum) => sum.variants.iter().any(|v| v.ty.nests_deeper_than(below)),
            _ => false,
        }
    }

    /// Whether values of this type always encode to no bytes: the empty
    /// product, and products of such types.
    pub fn takes_no_bytes(&self) -> bool {
        match self {
            AlgebraicType::Product(product) => product.fields.iter().all(|f| f.ty.takes_no_bytes()),
            _ => false,
        }
    }

    /// Whether this is one of the integer types (the only ones auto-increment accepts).
    pub fn is_integer(&self) -> bool {
        use AlgebraicType::*;
        matches!(
            self,
            U8 | U16 | U32 | U64 | U128 | I8 | I16 | I32 | I64 | I128
        )
    }
}

impl fmt::Display for AlgebraicType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AlgebraicType::*;
        let name = match self {
            Bool => "bool",
            U8 => "u8",
            U16 => "u16",
            U32 => "u32",
            U64 => "u64",
            U128 => "u128",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            I128 => "i128",
            F32 => "f32",
            F64 => "f64",
            String => "string",
            Identity => "identity",
            ConnectionId => "connection_id",
            Timestamp => "timestamp",
            Option(inner) => return write!(f, "Option<{inner}>"),
            Array(inner) => return write!(f, "Array<{inner}>"),
            Product(product) => return write!(f, "{product}"),
            Sum(sum) => return write!(f, "{sum}"),
        };
        f.write_str(name)
    }
}

/// A struct or tuple type: its fields in order.
///
/// In JSON (serde), the list of its fields: `[{"name": "x", "type": "i32"}, ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ProductType {
    /// The fields, in encoding order.
    pub fields: Vec<Field>,
}

impl fmt::Display for ProductType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match &field.name {
                Some(name) => write!(f, "{name}: {}", field.ty)?,
                None => write!(f, "{}", field.ty)?,
            }
        }
        f.write_str(")")
    }
}

/// One field of a product type.
///
/// In JSON (serde), `{"name": "x", "type": "i32"}`; `"name"` is `null` (or
/// absent) for a tuple field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    /// The field's name; `None` for tuple fields. JSON key `"name"`.
    pub name: Option<String>,
    /// The field's type. JSON key `"type"`.
    #[serde(rename = "type")]
    pub ty: AlgebraicType,
}

/// A tagged union: one of several cases, each with a payload.
///
/// In JSON (serde), the list of its variants: `[{"name": "Idle", "type": {"product": []}}, ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SumType {
    /// The cases, in tag order.
    pub variants: Vec<Variant>,
}

impl fmt::Display for SumType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, variant) in self.variants.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            match &variant.ty {
                AlgebraicType::Product(p) if p.fields.is_empty() => f.write_str(&variant.name)?,
                AlgebraicType::Product(p) => write!(f, "{}{p}", variant.name)?,
                ty => write!(f, "{}({ty})", variant.name)?,
            }
        }
        f.write_str("}")
    }
}

/// One case of a sum type.
///
/// In JSON (serde), `{"name": "Circle", "type": "f64"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Variant {
    /// The case's name. JSON key `"name"`.
    pub name: String,
    /// Its payload; the empty product for a unit case. JSON key `"type"`.
    #[serde(rename = "type")]
    pub ty: AlgebraicType,
}

/// An index over one or more columns of a table.
///
/// In JSON (serde), `{"name": "item_sku", "columns": [1], "unique": true}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexSchema {
    /// The index's name, unique within its table. JSON key `"name"`.
    pub name: String,
    /// Column positions, in key order. JSON key `"columns"`.
    pub columns: Vec<usize>,
    /// Whether at most one row may have each key. JSON key `"unique"`.
    pub unique: bool,
}

/// A table: its columns, indexes and sequences.
///
/// In JSON (serde), an object with the keys `"name"`, `"columns"` (a
/// [`ProductType`]), `"primary_key"` (an index position or `null`),
/// `"indexes"`, `"auto_inc"` (column positions) and `"public"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSchema {
    /// The table's name. JSON key `"name"`.
    pub name: String,
    /// The row type; every field is a named column. JSON key `"columns"`.
    pub columns: ProductType,
    /// Position in `indexes` of the unique index that is the primary key.
    /// JSON key `"primary_key"`.
    pub primary_key: Option<usize>,
    /// The table's indexes; index ids are positions in this list. JSON key `"indexes"`.
    pub indexes: Vec<IndexSchema>,
    /// Integer columns filled from a sequence when inserted as 0. JSON key `"auto_inc"`.
    pub auto_inc: Vec<usize>,
    /// Whether clients other than the owner may read the table. JSON key `"public"`.
    pub public: bool,
}

impl TableSchema {
    /// The id of the index with this name.
    pub fn index_id(&self, name: &str) -> Option<usize> {
        self.indexes.iter().position(|i| i.name == name)
    }

    /// The position of the column with this name.
    pub fn column_id(&self, name: &str) -> Option<usize> {
        self.columns
            .fields
            .iter()
            .position(|f| f.name.as_deref() == Some(name))
    }

    /// The name of column `column` (or its position, if it has none).
    pub fn column_name(&self, column: usize) -> String {
        match self
            .columns
            .fields
            .get(column)
            .and_then(|f| f.name.as_deref())
        {
            Some(name) => name.to_owned(),
            None => format!("#{column}"),
        }
    }
}

/// When the host runs a reducer on its own.
///
/// In JSON (serde), `"init"`, `"client_connected"` or `"client_disconnected"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Once, when the database is created.
    Init,
    /// When a client connects.
    ClientConnected,
    /// When a client disconnects.
    ClientDisconnected,
}

impl Lifecycle {
    /// The lifecycle's name in the WIT (`init`, `client-connected`,
    /// `client-disconnected`), as a module author declares it.
    fn wit_name(self) -> &'static str {
        match self {
            Lifecycle::Init => "init",
            Lifecycle::ClientConnected => "client-connected",
            Lifecycle::ClientDisconnected => "client-disconnected",
        }
    }
}

/// A reducer: its name, parameters and lifecycle role.
///
/// In JSON (serde), an object with the keys `"name"`, `"params"` (a
/// [`ProductType`]) and `"lifecycle"` (a [`Lifecycle`] or `null`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReducerSchema {
    /// The reducer's name. JSON key `"name"`.
    pub name: String,
    /// Its parameters; arguments are their postcard product. JSON key `"params"`.
    pub params: ProductType,
    /// Set for lifecycle reducers. JSON key `"lifecycle"`.
    pub lifecycle: Option<Lifecycle>,
}

/// A procedure: its name, parameters and return type. Procedures run
/// outside the database's serial order and open transactions themselves.
///
/// In JSON (serde), an object with the keys `"name"`, `"params"` (a
/// [`ProductType`]) and `"returns"` (an [`AlgebraicType`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcedureSchema {
    /// The procedure's name, unique among reducers and procedures. JSON key `"name"`.
    pub name: String,
    /// Its parameters; arguments are their postcard product. JSON key `"params"`.
    pub params: ProductType,
    /// The type of the value it returns. JSON key `"returns"`.
    pub returns: AlgebraicType,
}

/// A table that schedules a reducer: each row is one scheduled run, due
/// at the time in column `at_column`, repeating every `interval_column`
/// microseconds when that column is given and not 0.
///
/// In JSON (serde), `{"table": 2, "reducer": 4, "at_column": 1,
/// "interval_column": 2}` (positions; `interval_column` may be `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScheduleSchema {
    /// The scheduling table's id. JSON key `"table"`.
    pub table: usize,
    /// The scheduled reducer's id. JSON key `"reducer"`.
    pub reducer: usize,
    /// The `timestamp` column holding when a row is due. JSON key `"at_column"`.
    pub at_column: usize,
    /// The `u64` column holding the repeat interval in microseconds (0:
    /// once); `None`: every row runs once. JSON key `"interval_column"`.
    pub interval_column: Option<usize>,
}

/// Everything a module declares.
///
/// In JSON (serde), `{"tables": [...], "reducers": [...], "procedures":
/// [...], "schedules": [...]}` (the last two left out when empty). This is what
/// `GET /v1/database/NAME/schema` returns. A schema read from JSON has not
/// been checked: call [`ModuleSchema::validate`] before relying on it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ModuleSchema {
    /// Tables; table ids are positions in this list. JSON key `"tables"`.
    pub tables: Vec<TableSchema>,
    /// Reducers; reducer ids are positions in this list. JSON key `"reducers"`.
    pub reducers: Vec<ReducerSchema>,
    /// Procedures; procedure ids are positions in this list. JSON key
    /// `"procedures"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub procedures: Vec<ProcedureSchema>,
    /// Tables that schedule reducers, at most one per table and per
    /// reducer. JSON key `"schedules"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleSchema>,
}

/// Why a module's schema was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A table problem.
    #[error("table `{table}`: {problem}")]
    Table {
        /// The table's name.
        table: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A procedure problem.
    #[error("procedure `{procedure}`: {problem}")]
    Procedure {
        /// The procedure's name.
        procedure: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A reducer problem.
    #[error("reducer `{reducer}`: {problem}")]
    Reducer {
        /// The reducer's name.
        reducer: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The description itself is malformed (before it names tables or reducers).
    #[error("{0}")]
    Description(String),
}

impl ModuleSchema {
    /// The id of the table with this name.
    pub fn table_id(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }

    /// The id of the reducer with this name.
    pub fn reducer_id(&self, name: &str) -> Option<usize> {
        self.reducers.iter().position(|r| r.name == name)
    }

    /// The id of the procedure with this name.
    pub fn procedure_id(&self, name: &str) -> Option<usize> {
        self.procedures.iter().position(|p| p.name == name)
    }

    /// The schedule that runs reducer `reducer`, if a table schedules it.
    pub fn schedule_of_reducer(&self, reducer: usize) -> Option<&ScheduleSchema> {
        self.schedules.iter().find(|s| s.reducer == reducer)
    }

    /// Checks names, index and sequence columns, primary keys, lifecycle
    /// reducers, procedures and schedules.
    pub fn validate(&self) -> Result<(), SchemaError> {
        self.validate_tables_and_reducers()?;
        self.validate_procedures()?;
        self.validate_schedules()
    }

    fn validate_procedures(&self) -> Result<(), SchemaError> {
        let mut names = HashSet::new();
        for procedure in &self.procedures {
            let problem = |problem: String| SchemaError::Procedure {
                procedure: procedure.name.clone(),
                problem,
            };
            if procedure.name.is_empty() {
                return Err(problem("procedure names must not be empty".into()));
            }
            if !names.insert(procedure.name.as_str()) {
                return Err(problem("another procedure has the same name".into()));
            }
            if self.reducer_id(&procedure.name).is_some() {
                return Err(problem(
                    "a reducer has the same name (reducers and procedures share one namespace)"
                        .into(),
                ));
            }
            if let Some(name) = repeated_name(&procedure.params) {
                return Err(problem(format!("two parameters are named `{name}`")));
            }
            for (position, param) in procedure.params.fields.iter().enumerate() {
                if param.ty.nests_deeper_than(MAX_NESTING_DEPTH) {
                    let name = param.name.clone().unwrap_or_else(|| position.to_string());
                    return Err(problem(format!(
                        "parameter `{name}` nests more than {MAX_NESTING_DEPTH} types deep"
                    )));
                }
            }
            if procedure.returns.nests_deeper_than(MAX_NESTING_DEPTH) {
                return Err(problem(format!(
                    "the return type nests more than {MAX_NESTING_DEPTH} types deep"
                )));
            }
        }
        Ok(())
    }

    fn validate_schedules(&self) -> Result<(), SchemaError> {
        let mut tables = HashSet::new();
        let mut reducers = HashSet::new();
        for schedule in &self.schedules {
            let Some(table) = self.tables.get(schedule.table) else {
                return Err(SchemaError::Description(format!(
                    "a schedule names table {}, which does not exist",
                    schedule.table
                )));
            };
            let problem = |p: String| table_error(table, format!("schedule: {p}"));
            let Some(reducer) = self.reducers.get(schedule.reducer) else {
                return Err(problem(format!(
                    "reducer {} does not exist",
                    schedule.reducer
                )));
            };
            if !tables.insert(schedule.table) {
                return Err(problem("the table has two schedules".into()));
            }
            if !reducers.insert(schedule.reducer) {
                return Err(problem(format!(
                    "reducer `{}` is already scheduled by another table",
                    reducer.name
                )));
            }
            if table.primary_key.is_none() {
                return Err(problem(
                    "a schedule table needs a primary key (the host deletes or moves each row \
                     it runs)"
                        .into(),
                ));
            }
            match table.columns.fields.get(schedule.at_column) {
                Some(field) if field.ty == AlgebraicType::Timestamp => {}
                Some(_) => {
                    return Err(problem(format!(
                        "the time column `{}` must be a timestamp",
                        table.column_name(schedule.at_column)
                    )));
                }
                None => {
                    return Err(problem(format!(
                        "the time column {} does not exist",
                        schedule.at_column
                    )));
                }
            }
            if let Some(interval) = schedule.interval_column {
                match table.columns.fields.get(interval) {
                    Some(field) if field.ty == AlgebraicType::U64 => {}
                    Some(_) => {
                        return Err(problem(format!(
                            "the interval column `{}` must be a u64 (microseconds)",
                            table.column_name(interval)
                        )));
                    }
                    None => {
                        return Err(problem(format!(
                            "the interval column {interval} does not exist"
                        )));
                    }
                }
                if interval == schedule.at_column {
                    return Err(problem("the time and interval columns must differ".into()));
                }
                let key = table.primary_key.and_then(|pk| table.indexes.get(pk));
                if key.is_some_and(|key| key.columns.contains(&schedule.at_column)) {
                    return Err(problem(format!(
                        "the time column `{}` is in the primary key, so a repeating row \
                         could not be moved to its next time (the host finds the row by \
                         its primary key)",
                        table.column_name(schedule.at_column)
                    )));
                }
            }
            if reducer.lifecycle.is_some() {
                return Err(problem(format!(
                    "reducer `{}` is a lifecycle reducer and cannot be scheduled",
                    reducer.name
                )));
            }
            let row = AlgebraicType::Product(table.columns.clone());
            let takes_the_row =
                reducer.params.fields.len() == 1 && reducer.params.fields[0].ty == row;
            if !takes_the_row {
                return Err(problem(format!(
                    "reducer `{}` must take exactly one parameter, of the table's row type",
                    reducer.name
                )));
            }
        }
        Ok(())
    }

    fn validate_tables_and_reducers(&self) -> Result<(), SchemaError> {
        let mut table_names = HashSet::new();
        for table in &self.tables {
            validate_table(table)?;
            if !table_names.insert(table.name.as_str()) {
                return Err(table_error(table, "another table has the same name"));
            }
        }
        let mut reducer_names = HashSet::new();
        let mut lifecycles = HashSet::new();
        for reducer in &self.reducers {
            let problem = |problem: &str| SchemaError::Reducer {
                reducer: reducer.name.clone(),
                problem: problem.to_owned(),
            };
            if reducer.name.is_empty() {
                return Err(problem("reducer names must not be empty"));
            }
            if !reducer_names.insert(reducer.name.as_str()) {
                return Err(problem("another reducer has the same name"));
            }
            if let Some(lifecycle) = reducer.lifecycle {
                if !lifecycles.insert(lifecycle) {
                    return Err(problem(&format!(
                        "another reducer is the `{}` lifecycle reducer (at most one may be)",
                        lifecycle.wit_name()
                    )));
                }
                if !reducer.params.fields.is_empty() {
                    return Err(problem("lifecycle reducers take no arguments"));
                }
            }
            if let Some(name) = repeated_name(&reducer.params) {
                return Err(problem(&format!("two parameters are named `{name}`")));
            }
            for (position, param) in reducer.params.fields.iter().enumerate() {
                if param.ty.nests_deeper_than(MAX_NESTING_DEPTH) {
                    let name = param.name.clone().unwrap_or_else(|| position.to_string());
                    return Err(problem(&format!(
                        "parameter `{name}` nests more than {MAX_NESTING_DEPTH} types deep"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The first name two named fields of `product` share, if any.
fn repeated_name(product: &ProductType) -> Option<&str> {
    let mut names = HashSet::new();
    product
        .fields
        .iter()
        .filter_map(|field| field.name.as_deref())
        .find(|name| !names.insert(*name))
}

fn table_error(table: &TableSchema, problem: impl Into<String>) -> SchemaError {
    SchemaError::Table {
        table: table.name.clone(),
        problem: problem.into(),
    }
}

fn validate_table(table: &TableSchema) -> Result<(), SchemaError> {
    if table.name.is_empty() {
        return Err(table_error(table, "table names must not be empty"));
    }
    let mut column_names = HashSet::new();
    for (position, field) in table.columns.fields.iter().enumerate() {
        match &field.name {
            None => return Err(table_error(table, format!("column {position} has no name"))),
            Some(name) if name.is_empty() => {
                return Err(table_error(
                    table,
                    format!("column {position} has an empty name"),
                ));
            }
            Some(name) if !column_names.insert(name.as_str()) => {
                return Err(table_error(
                    table,
                    format!("two columns are named `{name}`"),
                ));
            }
            Some(name) if field.ty.nests_deeper_than(MAX_NESTING_DEPTH) => {
                return Err(table_error(
                    table,
                    format!("column `{name}` nests more than {MAX_NESTING_DEPTH} types deep"),
                ));
            }
            Some(_) => {}
        }
    }
    let columns = table.columns.fields.len();
    let mut index_names = HashSet::new();
    for index in &table.indexes {
        let problem = |p: String| table_error(table, format!("index `{}`: {p}", index.name));
        if index.columns.is_empty() {
            return Err(problem("an index needs at least one column".into()));
        }
        let mut seen = HashSet::new();
        for &column in &index.columns {
            if column >= columns {
                return Err(problem(format!(
                    "column {column} does not exist ({columns} columns)"
                )));
            }
            if !seen.insert(column) {
                return Err(problem(format!(
                    "column `{}` appears twice",
                    table.column_name(column)
                )));
            }
        }
        if !index_names.insert(index.name.as_str()) {
            return Err(problem("another index has the same name".into()));
        }
    }
    if let Some(pk) = table.primary_key {
        match table.indexes.get(pk) {
            None => {
                return Err(table_error(
                    table,
                    format!("primary key index {pk} does not exist"),
                ));
            }
            Some(index) if !index.unique => {
                return Err(table_error(
                    table,
                    format!("primary key index `{}` is not unique", index.name),
                ));
            }
            Some(_) => {}
        }
    }
    let mut seen = HashSet::new();
    for &column in &table.auto_inc {
        let Some(field) = table.columns.fields.get(column) else {
            return Err(table_error(
                table,
                format!("auto-increment column {column} does not exist"),
            ));
        };
        if !field.ty.is_integer() {
            return Err(table_error(
                table,
                format!(
                    "auto-increment column `{}` has type {}, not an integer type",
                    table.column_name(column),
                    field.ty
                ),
            ));
        }
        if !seen.insert(column) {
            return Err(table_error(
                table,
                format!(
                    "column `{}` is auto-increment twice",
                    table.column_name(column)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ty: AlgebraicType) -> Field {
        Field {
            name: Some(name.into()),
            ty,
        }
    }

    fn index(name: &str, columns: &[usize], unique: bool) -> IndexSchema {
        IndexSchema {
            name: name.into(),
            columns: columns.to_vec(),
            unique,
        }
    }

    fn reducer(name: &str, lifecycle: Option<Lifecycle>) -> ReducerSchema {
        ReducerSchema {
            name: name.into(),
            params: ProductType::default(),
            lifecycle,
        }
    }

    /// `accounts(id: u32, owner: string, note: Option<string>)`, with a
    /// primary key on `id`, a btree index on `owner`, and two reducers.
    fn valid() -> ModuleSchema {
        ModuleSchema {
            tables: vec![TableSchema {
                name: "accounts".into(),
                columns: ProductType {
                    fields: vec![
                        column("id", AlgebraicType::U32),
                        column("owner", AlgebraicType::String),
                        column(
                            "note",
                            AlgebraicType::Option(Box::new(AlgebraicType::String)),
                        ),
                    ],
                },
                primary_key: Some(0),
                indexes: vec![
                    index("accounts_id", &[0], true),
                    index("accounts_owner", &[1], false),
                ],
                auto_inc: vec![0],
                public: false,
            }],
            reducers: vec![
                reducer("init", Some(Lifecycle::Init)),
                ReducerSchema {
                    name: "open".into(),
                    params: ProductType {
                        fields: vec![column("owner", AlgebraicType::String)],
                    },
                    lifecycle: None,
                },
            ],
            procedures: Vec::new(),
            schedules: Vec::new(),
        }
    }

    /// The message of the error `edit` introduces into a valid schema.
    fn rejection(edit: impl FnOnce(&mut ModuleSchema)) -> String {
        let mut schema = valid();
        edit(&mut schema);
        schema.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_valid_schema_passes_and_resolves_names() {
        let schema = valid();
        assert_eq!(schema.validate(), Ok(()));
        assert_eq!(schema.table_id("accounts"), Some(0));
        assert_eq!(schema.table_id("nope"), None);
        assert_eq!(schema.reducer_id("open"), Some(1));
        assert_eq!(schema.reducer_id("nope"), None);
        let table = &schema.tables[0];
        assert_eq!(table.index_id("accounts_owner"), Some(1));
        assert_eq!(table.index_id("nope"), None);
        assert_eq!(table.column_id("note"), Some(2));
        assert_eq!(table.column_id("nope"), None);
    }

    #[test]
    fn table_and_column_names_are_checked() {
        assert_eq!(
            rejection(|s| s.tables[0].name.clear()),
            "table ``: table names must not be empty"
        );
        assert_eq!(
            rejection(|s| s.tables.push(s.tables[0].clone())),
            "table `accounts`: another table has the same name"
        );
        assert_eq!(
            rejection(|s| s.tables[0].columns.fields[1].name = None),
            "table `accounts`: column 1 has no name"
        );
        assert_eq!(
            rejection(|s| s.tables[0].columns.fields[2].name = Some("id".into())),
            "table `accounts`: two columns are named `id`"
        );
    }

    #[test]
    fn indexes_are_checked() {
        assert_eq!(
            rejection(|s| s.tables[0].indexes[1].columns.clear()),
            "table `accounts`: index `accounts_owner`: an index needs at least one column"
        );
        assert_eq!(
            rejection(|s| s.tables[0].indexes[1].columns = vec![1, 3]),
            "table `accounts`: index `accounts_owner`: column 3 does not exist (3 columns)"
        );
        assert_eq!(
            rejection(|s| s.tables[0].indexes[1].columns = vec![1, 1]),
            "table `accounts`: index `accounts_owner`: column `owner` appears twice"
        );
        assert_eq!(
            rejection(|s| s.tables[0].indexes[1].name = "accounts_id".into()),
            "table `accounts`: index `accounts_id`: another index has the same name"
        );
    }

    #[test]
    fn primary_keys_and_auto_increment_are_checked() {
        assert_eq!(
            rejection(|s| s.tables[0].primary_key = Some(2)),
            "table `accounts`: primary key index 2 does not exist"
        );
        assert_eq!(
            rejection(|s| s.tables[0].primary_key = Some(1)),
            "table `accounts`: primary key index `accounts_owner` is not unique"
        );
        assert_eq!(
            rejection(|s| s.tables[0].auto_inc = vec![2]),
            "table `accounts`: auto-increment column `note` has type Option<string>, \
             not an integer type"
        );
        assert_eq!(
            rejection(|s| s.tables[0].auto_inc = vec![5]),
            "table `accounts`: auto-increment column 5 does not exist"
        );
        assert_eq!(
            rejection(|s| s.tables[0].auto_inc = vec![0, 0]),
            "table `accounts`: column `id` is auto-increment twice"
        );
    }

    #[test]
    fn reducers_are_checked() {
        assert_eq!(
            rejection(|s| s.reducers[1].name.clear()),
            "reducer ``: reducer names must not be empty"
        );
        assert_eq!(
            rejection(|s| s.reducers[1].name = "init".into()),
            "reducer `init`: another reducer has the same name"
        );
        assert_eq!(
            rejection(|s| s.reducers.push(reducer("setup", Some(Lifecycle::Init)))),
            "reducer `setup`: another reducer is the `init` lifecycle reducer (at most one may be)"
        );
        assert_eq!(
            rejection(|s| s.reducers[1].lifecycle = Some(Lifecycle::ClientConnected)),
            "reducer `open`: lifecycle reducers take no arguments"
        );
    }

    #[test]
    fn deeply_nested_types_are_rejected() {
        let nest = |depth: usize| {
            (1..depth).fold(AlgebraicType::U8, |ty, _| {
                AlgebraicType::Option(Box::new(ty))
            })
        };
        let mut schema = valid();
        schema.tables[0].columns.fields[2].ty = nest(MAX_NESTING_DEPTH);
        schema.reducers[1].params.fields[0].ty = nest(MAX_NESTING_DEPTH);
        assert_eq!(schema.validate(), Ok(()));
        assert_eq!(
            rejection(|s| s.tables[0].columns.fields[2].ty = nest(MAX_NESTING_DEPTH + 1)),
            "table `accounts`: column `note` nests more than 64 types deep"
        );
        assert_eq!(
            rejection(|s| s.reducers[1].params.fields[0].ty = nest(MAX_NESTING_DEPTH + 1)),
            "reducer `open`: parameter `owner` nests more than 64 types deep"
        );
    }

    #[test]
    fn types_display_readably() {
        use AlgebraicType as T;
        let shape = T::Sum(SumType {
            variants: vec![
                Variant {
                    name: "Empty".into(),
                    ty: T::Product(ProductType::default()),
                },
                Variant {
                    name: "Circle".into(),
                    ty: T::F64,
                },
                Variant {
                    name: "Rect".into(),
                    ty: T::Product(ProductType {
                        fields: vec![column("w", T::U32), column("h", T::U32)],
                    }),
                },
            ],
        });
        assert_eq!(
            shape.to_string(),
            "{Empty | Circle(f64) | Rect(w: u32, h: u32)}"
        );
        let tuple = T::Product(ProductType {
            fields: vec![
                Field {
                    name: None,
                    ty: T::Array(Box::new(T::U8)),
                },
                Field {
                    name: None,
                    ty: T::Identity,
                },
            ],
        });
        assert_eq!(tuple.to_string(), "(Array<u8>, identity)");
        assert!(T::I128.is_integer() && !T::Timestamp.is_integer() && !T::F32.is_integer());
    }
}
