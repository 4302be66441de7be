//! Reading a query's rows from the committed state: through a datastore
//! index when the condition pins an indexed column to a value or a range,
//! else by scanning the table.

use std::cell::Cell;
use std::ops::ControlFlow;

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

/// What examining one row costs a [`WorkMeter`] beyond its condition's
/// comparisons: about what decoding a small row takes, in comparisons.
pub const ROW_WORK: u64 = 8;

/// The work a reader of initial rows may still do, in units: each row it
/// examines costs [`ROW_WORK`] plus its condition's comparisons, whether
/// or not the row matches. Once spent, the readers stop at the next row
/// and the caller refuses the query (see
/// [`SubscriptionEngine::initial_rows_within`](crate::SubscriptionEngine::initial_rows_within)).
#[derive(Debug)]
pub struct WorkMeter {
    left: Cell<u64>,
    spent: Cell<bool>,
}

impl WorkMeter {
    /// A meter of `limit` units.
    pub fn new(limit: u64) -> Self {
        Self {
            left: Cell::new(limit),
            spent: Cell::new(false),
        }
    }

    /// Takes `units`; `false` (from then on) once the meter has not that many left.
    pub(crate) fn charge(&self, units: u64) -> bool {
        match self.left.get().checked_sub(units) {
            Some(left) if !self.spent.get() => {
                self.left.set(left);
                true
            }
            _ => {
                self.spent.set(true);
                false
            }
        }
    }

    /// Whether a charge was refused.
    pub fn spent(&self) -> bool {
        self.spent.get()
    }
}

/// What examining one row for `condition` costs a [`WorkMeter`].
pub(crate) fn row_work(condition: &Option<Predicate>) -> u64 {
    ROW_WORK + condition.as_ref().map_or(0, Predicate::comparisons)
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

/// Calls `visit` with the bytes and column values of each row of `table`
/// that satisfies `condition` in the committed state, until it breaks.
/// Rows are decoded one at a time and nothing is kept between calls, so a
/// reader holds no more than what its `visit` keeps (decoded, a `bytes`
/// column takes tens of times its bytes; a join partner can have a million
/// rows under one key).
pub(crate) fn each_matching<B>(
    datastore: &Datastore,
    table: TableId,
    condition: &Option<Predicate>,
    meter: &WorkMeter,
    mut visit: impl FnMut(&[u8], Vec<Value>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let Some(schema) = datastore.tables().get(table) else {
        return ControlFlow::Continue(());
    };
    let work = row_work(condition);
    match access(schema, condition) {
        Access::Nothing => ControlFlow::Continue(()),
        Access::Scan => {
            let Ok(rows) = datastore.rows(table) else {
                return ControlFlow::Continue(());
            };
            for row in rows {
                if !meter.charge(work) {
                    break;
                }
                let bytes: &[u8] = row;
                let Ok(values) = decode_product(&schema.columns, bytes) else {
                    continue;
                };
                if holds(condition, &values) {
                    visit(bytes, values)?;
                }
            }
            ControlFlow::Continue(())
        }
        Access::Index {
            index,
            lower,
            upper,
        } => {
            let read = each_in_range(datastore, table, index, &lower, &upper, |bytes, values| {
                if !meter.charge(work) {
                    return ControlFlow::Break(None);
                }
                if holds(condition, &values) {
                    visit(bytes, values).map_break(Some)?;
                }
                ControlFlow::Continue(())
            });
            match read {
                ControlFlow::Break(Some(broke)) => ControlFlow::Break(broke),
                // Every row read, or the meter ran out.
                _ => ControlFlow::Continue(()),
            }
        }
    }
}

/// The bytes of the rows of `table` that satisfy `condition` in the
/// committed state, within `budget` (and `meter`: the rows read before it
/// ran out, if it did).
pub(crate) fn matching_row_bytes(
    datastore: &Datastore,
    table: TableId,
    condition: &Option<Predicate>,
    meter: &WorkMeter,
    budget: &mut Budget,
) -> Result<Vec<Row>, RowsTooLarge> {
    let mut matching = Vec::new();
    let read = each_matching(datastore, table, condition, meter, |bytes, _| {
        budget.take(bytes, 1)?;
        matching.push(Row::from(bytes));
        ControlFlow::Continue(())
    });
    match read {
        ControlFlow::Continue(()) => Ok(matching),
        ControlFlow::Break(too_large) => Err(too_large),
    }
}

/// Calls `visit` with each row of `table` whose `index` key is `value`, in
/// the committed state, as [`each_matching`] does, until it breaks.
pub(crate) fn each_lookup<B>(
    datastore: &Datastore,
    table: TableId,
    index: usize,
    value: &Value,
    visit: impl FnMut(&[u8], Vec<Value>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let mut key = Vec::new();
    encode_value(value, &mut key);
    let bound = KeyBound::Included(key);
    each_in_range(datastore, table, index, &bound, &bound, visit)
}

/// How many rows an index read copies out of the datastore at a time.
const RANGE_BATCH: usize = 64;

/// Calls `visit` with each row of `table` whose `index` key lies between
/// the bounds, decoded one at a time, until it breaks.
fn each_in_range<B>(
    datastore: &Datastore,
    table: TableId,
    index: usize,
    lower: &KeyBound,
    upper: &KeyBound,
    mut visit: impl FnMut(&[u8], Vec<Value>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    let Ok(mut cursor) = datastore.scan_index(table, index, lower, upper) else {
        return ControlFlow::Continue(());
    };
    let row_type = AlgebraicType::Product(datastore.tables()[table].columns.clone());
    let mut batch = Vec::new();
    loop {
        batch.clear();
        if datastore.next_batch(&mut cursor, RANGE_BATCH, &mut batch) == 0 {
            return ControlFlow::Continue(());
        }
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let before = rest;
            let Ok(Value::Product(values)) = decode_value(&row_type, &mut rest) else {
                return ControlFlow::Continue(());
            };
            visit(&before[..before.len() - rest.len()], values)?;
        }
    }
}
