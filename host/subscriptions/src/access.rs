//! Reading a query's rows from the committed state: through a datastore
//! index when the condition pins an indexed column to a value or a range,
//! else by scanning the table.

use worldline_datastore::{
    AlgebraicType, Datastore, KeyBound, Row, TableId, TableSchema, Value, decode_product,
    decode_value, encode_value,
};

use crate::constraint::{Constraint, Edge, constraints};
use crate::join::{Budget, RowsTooLarge};
use crate::predicate::Predicate;

/// A row with its column values.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub(crate) row: Row,
    pub(crate) values: Vec<Value>,
}

impl Decoded {
    /// `row` decoded as a row of `schema`; `None` if it is not one.
    pub(crate) fn new(schema: &TableSchema, row: &Row) -> Option<Self> {
        let values = decode_product(&schema.columns, row).ok()?;
        Some(Self {
            row: row.clone(),
            values,
        })
    }
}

/// Decodes the first `count` columns of `row`, a row of `schema`, into
/// `values` (cleared first); `false` if they do not decode.
pub(crate) fn decode_leading(
    schema: &TableSchema,
    row: &[u8],
    count: usize,
    values: &mut Vec<Value>,
) -> bool {
    values.clear();
    let mut input = row;
    for field in schema.columns.fields.iter().take(count) {
        match decode_value(&field.ty, &mut input) {
            Ok(value) => values.push(value),
            Err(_) => return false,
        }
    }
    true
}

/// Whether a row with these column values satisfies `condition` (none: every row does).
pub(crate) fn holds(condition: &Option<Predicate>, values: &[Value]) -> bool {
    condition.as_ref().is_none_or(|c| c.matches(values))
}

/// How to read the rows a condition can match.
enum Access {
    /// Every row of the table.
    Scan,
    /// The rows of an index between two bounds.
    Index {
        index: usize,
        lower: KeyBound,
        upper: KeyBound,
    },
    /// No row can match.
    Nothing,
}

/// The cheapest way to read `condition`'s rows of `schema`: an index whose
/// first column the condition pins (to a value if any, else to a range).
fn access(schema: &TableSchema, condition: &Option<Predicate>) -> Access {
    let pinned = constraints(condition.as_ref());
    if pinned.iter().any(|(_, c)| c.is_empty()) {
        return Access::Nothing;
    }
    let indexed = |column: usize| {
        schema
            .indexes
            .iter()
            .position(|index| index.columns.first() == Some(&column))
    };
    let usable = pinned
        .iter()
        .filter_map(|(column, constraint)| Some((indexed(*column)?, constraint)));
    let mut best = None;
    for (index, constraint) in usable {
        let point = matches!(constraint, Constraint::Point(_));
        if best.is_none() || point {
            best = Some((index, constraint));
        }
        if point {
            break;
        }
    }
    let Some((index, constraint)) = best else {
        return Access::Scan;
    };
    let key = |value: &Value| {
        let mut key = Vec::new();
        encode_value(value, &mut key);
        key
    };
    let (lower, upper) = match constraint {
        Constraint::Point(value) => (
            KeyBound::Included(key(value)),
            KeyBound::Included(key(value)),
        ),
        Constraint::Range { lower, upper } => {
            let bound = |edge: &Option<Edge>, included_if_after: bool| match edge {
                None => KeyBound::Unbounded,
                Some(edge) if edge.after == included_if_after => {
                    KeyBound::Included(key(&edge.value))
                }
                Some(edge) => KeyBound::Excluded(key(&edge.value)),
            };
            // A lower edge before v includes v; an upper edge after v includes v.
            (bound(lower, false), bound(upper, true))
        }
    };
    Access::Index {
        index,
        lower,
        upper,
    }
}

/// Whether `condition`'s rows of `schema` are read through an index (or
/// not at all) rather than by scanning the table.
pub(crate) fn reads_through_index(schema: &TableSchema, condition: &Option<Predicate>) -> bool {
    !matches!(access(schema, condition), Access::Scan)
}

/// The rows of `table` that satisfy `condition` in the committed state.
pub(crate) fn matching_rows(
    datastore: &Datastore,
    table: TableId,
    condition: &Option<Predicate>,
) -> Vec<Decoded> {
    let Some(schema) = datastore.tables().get(table) else {
        return Vec::new();
    };
    let mut rows = match access(schema, condition) {
        Access::Nothing => return Vec::new(),
        Access::Scan => {
            let Ok(rows) = datastore.rows(table) else {
                return Vec::new();
            };
            // Only the matching rows are copied.
            return rows
                .filter_map(|row| {
                    let bytes: &[u8] = row;
                    let values = decode_product(&schema.columns, bytes).ok()?;
                    holds(condition, &values).then(|| Decoded {
                        row: Row::from(bytes),
                        values,
                    })
                })
                .collect();
        }
        Access::Index {
            index,
            lower,
            upper,
        } => index_range(datastore, table, index, &lower, &upper),
    };
    rows.retain(|row| holds(condition, &row.values));
    rows
}

/// The bytes of the rows of `table` that satisfy `condition` in the
/// committed state, within `budget`. A scan keeps no row's decoded values
/// past its check (decoded, a `bytes` column takes tens of times its
/// bytes), so it holds no more than the rows it returns.
pub(crate) fn matching_row_bytes(
    datastore: &Datastore,
    table: TableId,
    condition: &Option<Predicate>,
    budget: &mut Budget,
) -> Result<Vec<Row>, RowsTooLarge> {
    let Some(schema) = datastore.tables().get(table) else {
        return Ok(Vec::new());
    };
    if !matches!(access(schema, condition), Access::Scan) {
        return matching_rows(datastore, table, condition)
            .into_iter()
            .map(|row| budget.take(&row.row, 1).map(|()| row.row))
            .collect();
    }
    let Ok(rows) = datastore.rows(table) else {
        return Ok(Vec::new());
    };
    let mut matching = Vec::new();
    for row in rows {
        let bytes: &[u8] = row;
        let Ok(values) = decode_product(&schema.columns, bytes) else {
            continue;
        };
        if holds(condition, &values) {
            budget.take(bytes, 1)?;
            matching.push(Row::from(bytes));
        }
    }
    Ok(matching)
}

/// The rows of `table` whose `index` key is `value`, from the committed state.
pub(crate) fn lookup(
    datastore: &Datastore,
    table: TableId,
    index: usize,
    value: &Value,
) -> Vec<Decoded> {
    let mut key = Vec::new();
    encode_value(value, &mut key);
    let bound = KeyBound::Included(key);
    index_range(datastore, table, index, &bound, &bound)
}

/// The rows of `table` whose `index` key lies between the bounds.
fn index_range(
    datastore: &Datastore,
    table: TableId,
    index: usize,
    lower: &KeyBound,
    upper: &KeyBound,
) -> Vec<Decoded> {
    let Ok(mut cursor) = datastore.scan_index(table, index, lower, upper) else {
        return Vec::new();
    };
    let row_type = AlgebraicType::Product(datastore.tables()[table].columns.clone());
    let mut rows = Vec::new();
    let mut batch = Vec::new();
    loop {
        batch.clear();
        if datastore.next_batch(&mut cursor, 1024, &mut batch) == 0 {
            return rows;
        }
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let before = rest;
            let Ok(Value::Product(values)) = decode_value(&row_type, &mut rest) else {
                return rows;
            };
            rows.push(Decoded {
                row: Row::from(&before[..before.len() - rest.len()]),
                values,
            });
        }
    }
}
