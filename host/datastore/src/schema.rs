//! Table and reducer schemas, and the algebraic types of their columns.

use std::collections::HashSet;
use std::fmt;

/// The type of a column, a reducer parameter or a part of one.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl AlgebraicType {
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name; `None` for tuple fields.
    pub name: Option<String>,
    /// The field's type.
    pub ty: AlgebraicType,
}

/// A tagged union: one of several cases, each with a payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
                ty => write!(f, "{}: {ty}", variant.name)?,
            }
        }
        f.write_str("}")
    }
}

/// One case of a sum type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The case's name.
    pub name: String,
    /// Its payload; the empty product for a unit case.
    pub ty: AlgebraicType,
}

/// An index over one or more columns of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSchema {
    /// The index's name, unique within its table.
    pub name: String,
    /// Column positions, in key order.
    pub columns: Vec<usize>,
    /// Whether at most one row may have each key.
    pub unique: bool,
}

/// A table: its columns, indexes and sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// The table's name.
    pub name: String,
    /// The row type; every field is a named column.
    pub columns: ProductType,
    /// Position in `indexes` of the unique index that is the primary key.
    pub primary_key: Option<usize>,
    /// The table's indexes; index ids are positions in this list.
    pub indexes: Vec<IndexSchema>,
    /// Integer columns filled from a sequence when inserted as 0.
    pub auto_inc: Vec<usize>,
    /// Whether clients other than the owner may read the table.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Once, when the database is created.
    Init,
    /// When a client connects.
    ClientConnected,
    /// When a client disconnects.
    ClientDisconnected,
}

/// A reducer: its name, parameters and lifecycle role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReducerSchema {
    /// The reducer's name.
    pub name: String,
    /// Its parameters; arguments are their postcard product.
    pub params: ProductType,
    /// Set for lifecycle reducers.
    pub lifecycle: Option<Lifecycle>,
}

/// Everything a module declares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModuleSchema {
    /// Tables; table ids are positions in this list.
    pub tables: Vec<TableSchema>,
    /// Reducers; reducer ids are positions in this list.
    pub reducers: Vec<ReducerSchema>,
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

    /// Checks names, index and sequence columns, primary keys and lifecycle reducers.
    pub fn validate(&self) -> Result<(), SchemaError> {
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
                    return Err(problem(&format!("a second {lifecycle:?} reducer")));
                }
                if !reducer.params.fields.is_empty() {
                    return Err(problem("lifecycle reducers take no arguments"));
                }
            }
        }
        Ok(())
    }
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
            Some(name) if !column_names.insert(name.as_str()) => {
                return Err(table_error(
                    table,
                    format!("two columns are named `{name}`"),
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
