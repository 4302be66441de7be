//! Subscribed queries filed by the constants they compare, so that a changed
//! row finds the few queries it can affect without trying all of them.
//!
//! Each side of a query (its table, and for a join the joined table) is
//! filed once under one column of that table: a query pinning the column
//! to a value under that value (a hash map), one pinning it to a range
//! under that range (ordered maps), and one pinning nothing in a per-table
//! list that every change to the table tries. A condition that is an `OR`
//! of parts that each pin a column is filed under each part's constraint
//! (a row it matches satisfies one of them), so `id = 1 OR id = 2` costs
//! nothing to changes of other rows. A join that pins only its
//! joined table files its own table's side "through the join": a changed
//! row of its table is a candidate when one of the row's join partners is
//! a candidate of the joined side. The index returns candidates: a
//! superset of the queries whose condition a row satisfies, which the
//! engine then checks with the full condition.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use foldhash::fast::RandomState;

use worldline_datastore::{TableId, Value};

use crate::constraint::{Constraint, Edge, constraints};
use crate::engine::QueryId;
use crate::predicate::Predicate;
use crate::sql::{CompiledQuery, Join};

/// Which table of a query a filing is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Side {
    /// The table whose rows the query yields.
    Main,
    /// A join's other table.
    Joined,
}

/// A query side, as the index holds it.
pub(crate) type Entry = (QueryId, Side);

/// Where one side of a query is filed.
#[derive(Debug, Clone)]
pub(crate) struct Filing {
    table: TableId,
    side: Side,
    spot: Spot,
}

#[derive(Debug, Clone)]
enum Spot {
    /// The condition pins no column: every change to the table is a candidate.
    Scan,
    /// A join's own table, when only its joined table's condition pins a
    /// column: reached through the join partners of a changed row.
    Through(Through),
    /// The condition holds for no row: never a candidate.
    Nowhere,
    /// Under one column's constraint.
    Column(usize, Constraint),
    /// Under each of these columns' constraints: the parts of an `OR`.
    AnyOf(Vec<(usize, Constraint)>),
}

/// How a join reaches its joined table: a row of the query's table whose
/// `column` holds v is joined with the rows of `other` whose `other_index`
/// (on `other_column`) key is v.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Through {
    pub(crate) column: usize,
    pub(crate) other: TableId,
    pub(crate) other_column: usize,
    pub(crate) other_index: usize,
}

impl Through {
    fn of(join: &Join) -> Self {
        Self {
            column: join.column,
            other: join.other,
            other_column: join.other_column,
            other_index: join.other_index,
        }
    }
}

impl Filing {
    /// Where to file each side of `query`: under the condition's first
    /// point constraint, else its first range; a join's own table through
    /// the join if only the joined table's condition pins a column; else
    /// the scan list.
    pub(crate) fn of(query: &CompiledQuery) -> Vec<Self> {
        let main = Self {
            table: query.table,
            side: Side::Main,
            spot: spot(&query.predicate),
        };
        let Some(join) = &query.join else {
            return vec![main];
        };
        let joined = Self {
            table: join.other,
            side: Side::Joined,
            spot: spot(&join.other_predicate),
        };
        let main = match (&main.spot, &joined.spot) {
            (Spot::Scan, Spot::Column(..) | Spot::AnyOf(..)) => Self {
                spot: Spot::Through(Through::of(join)),
                ..main
            },
            _ => main,
        };
        vec![main, joined]
    }
}

/// Where a side with `condition` goes, unless it goes through a join.
fn spot(condition: &Option<Predicate>) -> Spot {
    spot_of(condition.as_ref())
}

fn spot_of(condition: Option<&Predicate>) -> Spot {
    let pinned = constraints(condition);
    if pinned.iter().any(|(_, c)| c.is_empty()) {
        return Spot::Nowhere;
    }
    let point = pinned
        .iter()
        .find(|(_, c)| matches!(c, Constraint::Point(_)));
    match (point.or(pinned.first()), condition) {
        (Some((column, constraint)), _) => Spot::Column(*column, constraint.clone()),
        (None, Some(Predicate::Or(parts))) => any_of(parts),
        (None, _) => Spot::Scan,
    }
}

/// Where an `OR` of `parts` goes: under every part's constraint if each
/// part pins a column to a value or a one-sided range (parts no row
/// satisfies left out), else the scan list. Two-sided ranges are left to
/// the scan list: the segments they are cut into are shared, and one
/// query's overlapping ranges could not all be taken out again cleanly.
/// Compiled conditions nest at most [`MAX_NESTING_DEPTH`] deep, which
/// bounds the recursion.
///
/// [`MAX_NESTING_DEPTH`]: worldline_datastore::MAX_NESTING_DEPTH
fn any_of(parts: &[Predicate]) -> Spot {
    let mut spots = Vec::new();
    for part in parts {
        match spot_of(Some(part)) {
            Spot::Nowhere => {}
            Spot::Column(column, constraint) => spots.push((column, constraint)),
            Spot::AnyOf(more) => spots.extend(more),
            Spot::Scan | Spot::Through(_) => return Spot::Scan,
        }
    }
    let two_sided = |c: &Constraint| {
        matches!(
            c,
            Constraint::Range {
                lower: Some(_),
                upper: Some(_)
            }
        )
    };
    if spots.iter().any(|(_, c)| two_sided(c)) {
        return Spot::Scan;
    }
    if spots.is_empty() {
        Spot::Nowhere
    } else {
        Spot::AnyOf(spots)
    }
}

/// The subscribed queries of every table, by the constants they compare.
#[derive(Debug, Default)]
pub(crate) struct QueryIndex {
    tables: HashMap<TableId, TableQueries, RandomState>,
    /// How many joins, on every table, are filed through their joined table.
    throughs: usize,
}

#[derive(Debug, Default)]
struct TableQueries {
    /// Query sides that pin no column.
    scan: BTreeSet<Entry>,
    /// Query sides filed under a column's constraint.
    columns: BTreeMap<usize, ColumnQueries>,
    /// Joins reached through their joined table, by how they join.
    through: BTreeMap<Through, BTreeSet<QueryId>>,
}

impl TableQueries {
    fn is_empty(&self) -> bool {
        self.scan.is_empty() && self.columns.is_empty() && self.through.is_empty()
    }

    /// Files `entry` under `column`'s `constraint`.
    fn file(&mut self, entry: Entry, column: usize, constraint: &Constraint) {
        let column = self.columns.entry(column).or_default();
        match constraint {
            Constraint::Point(value) => {
                column.points.entry(value.clone()).or_default().push(entry);
            }
            Constraint::Range { lower, upper } => {
                column.ranges.insert(entry, lower.as_ref(), upper.as_ref());
            }
        }
    }

    /// Takes `entry` from under `column`'s `constraint` (every time it was
    /// filed there).
    fn unfile(&mut self, entry: Entry, column_id: usize, constraint: &Constraint) {
        let Some(column) = self.columns.get_mut(&column_id) else {
            return;
        };
        match constraint {
            Constraint::Point(value) => {
                if let Some(entries) = column.points.get_mut(value) {
                    entries.retain(|e| *e != entry);
                    if entries.is_empty() {
                        column.points.remove(value);
                    }
                }
            }
            Constraint::Range { lower, upper } => {
                column.ranges.remove(entry, lower.as_ref(), upper.as_ref());
            }
        }
        if column.is_empty() {
            self.columns.remove(&column_id);
        }
    }
}

#[derive(Debug, Default)]
struct ColumnQueries {
    /// `column = value`. Hashed with a per-process random seed (the
    /// values come from clients' queries), more cheaply than `SipHash`:
    /// every changed row of a watched table is looked up here.
    points: HashMap<Value, Vec<Entry>, RandomState>,
    ranges: RangeIndex,
}

impl ColumnQueries {
    fn is_empty(&self) -> bool {
        self.points.is_empty() && self.ranges.is_empty()
    }
}

impl QueryIndex {
    /// Files a query side.
    pub(crate) fn insert(&mut self, id: QueryId, filing: &Filing) {
        let entry = (id, filing.side);
        let table = self.tables.entry(filing.table).or_default();
        match &filing.spot {
            Spot::Nowhere => {}
            Spot::Scan => {
                table.scan.insert(entry);
            }
            Spot::Through(through) => {
                if table.through.entry(through.clone()).or_default().insert(id) {
                    self.throughs += 1;
                }
            }
            Spot::Column(column, constraint) => table.file(entry, *column, constraint),
            Spot::AnyOf(spots) => {
                for (column, constraint) in spots {
                    table.file(entry, *column, constraint);
                }
            }
        }
    }

    /// Removes a query side filed with `filing`.
    pub(crate) fn remove(&mut self, id: QueryId, filing: &Filing) {
        let entry = (id, filing.side);
        let Some(table) = self.tables.get_mut(&filing.table) else {
            return;
        };
        match &filing.spot {
            Spot::Nowhere => {}
            Spot::Scan => {
                table.scan.remove(&entry);
            }
            Spot::Through(through) => {
                if let Some(ids) = table.through.get_mut(through) {
                    if ids.remove(&id) {
                        self.throughs -= 1;
                    }
                    if ids.is_empty() {
                        table.through.remove(through);
                    }
                }
            }
            Spot::Column(column, constraint) => table.unfile(entry, *column, constraint),
            Spot::AnyOf(spots) => {
                for (column, constraint) in spots {
                    table.unfile(entry, *column, constraint);
                }
            }
        }
        if table.is_empty() {
            self.tables.remove(&filing.table);
        }
    }

    /// Whether some query has a side on `table`.
    pub(crate) fn watches(&self, table: TableId) -> bool {
        self.tables.contains_key(&table)
    }

    /// How many leading columns of a row of `table` [`candidates`](Self::candidates)
    /// reads, if a changed row of `table` matters only to the queries it is
    /// a candidate of: when no query side on `table` is in the scan list
    /// and no join (on any table) is filed through its joined table, whose
    /// candidates are found from the changed rows of other tables.
    pub(crate) fn candidates_only(&self, table: TableId) -> Option<usize> {
        let queries = self.tables.get(&table)?;
        if self.throughs > 0 || !queries.scan.is_empty() {
            return None;
        }
        Some(queries.columns.keys().next_back().map_or(0, |&c| c + 1))
    }

    /// The query sides on `table` that pin no column: every change to the
    /// table is a candidate for them.
    pub(crate) fn scanned(&self, table: TableId) -> impl Iterator<Item = Entry> + '_ {
        self.tables
            .get(&table)
            .into_iter()
            .flat_map(|t| t.scan.iter().copied())
    }

    /// The joins on `table` reached through their joined table, by how they join.
    pub(crate) fn through(
        &self,
        table: TableId,
    ) -> impl Iterator<Item = (&Through, &BTreeSet<QueryId>)> + '_ {
        self.tables
            .get(&table)
            .into_iter()
            .flat_map(|t| t.through.iter())
    }

    /// Calls `found` with every query side filed under a constraint that a
    /// row of `table` with these column values satisfies: once per such
    /// constraint, so a side filed under several (an `OR`) may come more
    /// than once.
    pub(crate) fn candidates(&self, table: TableId, row: &[Value], mut found: impl FnMut(Entry)) {
        let Some(table) = self.tables.get(&table) else {
            return;
        };
        for (&column, queries) in &table.columns {
            let Some(value) = row.get(column) else {
                continue;
            };
            for &entry in queries.points.get(value).into_iter().flatten() {
                found(entry);
            }
            queries.ranges.stab(value, &mut found);
        }
    }
}

/// Query sides filed under ranges of one column's values.
///
/// One-sided ranges (`col > a`) sit in ordered maps by their bound, so a
/// value reads exactly the ranges containing it. Two-sided ones are cut
/// into segments between consecutive edges, each listing the ranges that
/// cover it, so a value reads one segment; a range is listed once per
/// segment it covers, which costs memory when many ranges overlap.
#[derive(Debug, Default)]
struct RangeIndex {
    /// Ranges with only a lower edge, by it.
    from: BTreeMap<Edge, Vec<Entry>>,
    /// Ranges with only an upper edge, by it.
    until: BTreeMap<Edge, Vec<Entry>>,
    /// Segments of two-sided ranges by their first edge: the (sorted)
    /// ranges covering the values from it to the next edge.
    segments: BTreeMap<Edge, Vec<Entry>>,
}

impl RangeIndex {
    fn is_empty(&self) -> bool {
        self.from.is_empty() && self.until.is_empty() && self.segments.is_empty()
    }

    fn insert(&mut self, entry: Entry, lower: Option<&Edge>, upper: Option<&Edge>) {
        match (lower, upper) {
            (Some(lower), None) => self.from.entry(lower.clone()).or_default().push(entry),
            (None, Some(upper)) => self.until.entry(upper.clone()).or_default().push(entry),
            (Some(lower), Some(upper)) if lower < upper => {
                self.split(lower);
                self.split(upper);
                for (_, covering) in self.segments.range_mut(lower..upper) {
                    if let Err(at) = covering.binary_search(&entry) {
                        covering.insert(at, entry);
                    }
                }
            }
            (None, None) | (Some(_), Some(_)) => {}
        }
    }

    fn remove(&mut self, entry: Entry, lower: Option<&Edge>, upper: Option<&Edge>) {
        let take = |map: &mut BTreeMap<Edge, Vec<Entry>>, edge: &Edge| {
            if let Some(entries) = map.get_mut(edge) {
                entries.retain(|e| *e != entry);
                if entries.is_empty() {
                    map.remove(edge);
                }
            }
        };
        match (lower, upper) {
            (Some(lower), None) => take(&mut self.from, lower),
            (None, Some(upper)) => take(&mut self.until, upper),
            (Some(lower), Some(upper)) if lower < upper => {
                for (_, covering) in self.segments.range_mut(lower..upper) {
                    if let Ok(at) = covering.binary_search(&entry) {
                        covering.remove(at);
                    }
                }
                self.merge(upper);
                self.merge(lower);
            }
            (None, None) | (Some(_), Some(_)) => {}
        }
    }

    /// Starts a segment at `edge`, covered by what covered the values there.
    fn split(&mut self, edge: &Edge) {
        if self.segments.contains_key(edge) {
            return;
        }
        let covering = self
            .segments
            .range(..edge)
            .next_back()
            .map(|(_, covering)| covering.clone())
            .unwrap_or_default();
        self.segments.insert(edge.clone(), covering);
    }

    /// Drops the segment edge at `edge` if it separates nothing: the
    /// segment before it is covered by the same ranges (or it starts the
    /// line and nothing covers it).
    fn merge(&mut self, edge: &Edge) {
        let Some(covering) = self.segments.get(edge) else {
            return;
        };
        let before = self.segments.range(..edge).next_back().map(|(_, c)| c);
        let redundant = match before {
            Some(before) => before == covering,
            None => covering.is_empty(),
        };
        if redundant {
            self.segments.remove(edge);
        }
    }

    /// Calls `found` with every range containing `value`.
    fn stab(&self, value: &Value, found: &mut impl FnMut(Entry)) {
        if self.is_empty() {
            return;
        }
        let before = Edge::before(value.clone());
        let after = Edge::after(value.clone());
        for (_, entries) in self.from.range(..=&before) {
            entries.iter().copied().for_each(&mut *found);
        }
        for (_, entries) in self
            .until
            .range((Bound::Included(&after), Bound::Unbounded))
        {
            entries.iter().copied().for_each(&mut *found);
        }
        if let Some((_, covering)) = self.segments.range(..=&before).next_back() {
            covering.iter().copied().for_each(&mut *found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        (QueryId(n), Side::Main)
    }

    fn stabbed(index: &RangeIndex, v: i64) -> Vec<usize> {
        let mut found = Vec::new();
        index.stab(&Value::I64(v), &mut |(id, _)| found.push(id.0));
        found.sort_unstable();
        found
    }

    #[test]
    fn overlapping_ranges_are_found_by_the_values_they_contain_and_removed_cleanly() {
        let at = |v, after| Edge {
            value: Value::I64(v),
            after,
        };
        let mut index = RangeIndex::default();
        // 1: (0, 10]   2: [5, 20)   3: [10, 10]   4: > 15   5: < 3
        let ranges = [
            (1, Some(at(0, true)), Some(at(10, true))),
            (2, Some(at(5, false)), Some(at(20, false))),
            (3, Some(at(10, false)), Some(at(10, true))),
            (4, Some(at(15, true)), None),
            (5, None, Some(at(3, false))),
        ];
        for (n, lower, upper) in &ranges {
            index.insert(entry(*n), lower.as_ref(), upper.as_ref());
        }
        assert_eq!(stabbed(&index, -1), [5]);
        assert_eq!(stabbed(&index, 0), [5]);
        assert_eq!(stabbed(&index, 1), [1, 5]);
        assert_eq!(stabbed(&index, 5), [1, 2]);
        assert_eq!(stabbed(&index, 10), [1, 2, 3]);
        assert_eq!(stabbed(&index, 11), [2]);
        assert_eq!(stabbed(&index, 15), [2]);
        assert_eq!(stabbed(&index, 16), [2, 4]);
        assert_eq!(stabbed(&index, 20), [4]);
        // A range sharing its lower edge with another comes and goes.
        let shared = (Some(at(0, true)), Some(at(5, false)));
        index.insert(entry(6), shared.0.as_ref(), shared.1.as_ref());
        assert_eq!(stabbed(&index, 1), [1, 5, 6]);
        index.remove(entry(6), shared.0.as_ref(), shared.1.as_ref());
        assert_eq!(stabbed(&index, 1), [1, 5]);
        assert_eq!(stabbed(&index, 5), [1, 2]);
        for (n, lower, upper) in &ranges {
            index.remove(entry(*n), lower.as_ref(), upper.as_ref());
        }
        assert!(index.is_empty(), "{index:?}");
    }

    /// One public table `t(id u32 pk, score i64)`.
    fn table_schema() -> worldline_datastore::ModuleSchema {
        use worldline_datastore::{
            AlgebraicType, Field, IndexSchema, ModuleSchema, ProductType, TableSchema,
        };
        let column = |name: &str, ty| Field {
            name: Some(name.into()),
            ty,
        };
        ModuleSchema {
            tables: vec![TableSchema {
                name: "t".into(),
                columns: ProductType {
                    fields: vec![
                        column("id", AlgebraicType::U32),
                        column("score", AlgebraicType::I64),
                    ],
                },
                primary_key: Some(0),
                indexes: vec![IndexSchema {
                    name: "pk".into(),
                    columns: vec![0],
                    unique: true,
                }],
                auto_inc: vec![],
                public: true,
            }],
            reducers: vec![],
            procedures: vec![],
            schedules: vec![],
        }
    }

    /// The query sides a row `(id, score)` of table 0 is a candidate of.
    fn candidates_of(index: &QueryIndex, id: u32, score: i64) -> Vec<Entry> {
        let mut found = Vec::new();
        index.candidates(0, &[Value::U32(id), Value::I64(score)], |e| found.push(e));
        found
    }

    // An `OR` whose parts each pin a column is filed under every part: a
    // change to a row no part matches tries no query, and unsubscribing
    // leaves nothing behind. Other `OR`s stay in the scan list.
    #[test]
    fn an_or_of_pinned_parts_is_filed_under_each_part() {
        let schema = table_schema();
        let filings = |sql: &str| {
            Filing::of(&crate::sql::compile(sql, &schema, false).unwrap_or_else(|e| panic!("{e}")))
        };
        let mut index = QueryIndex::default();
        let or = filings("SELECT * FROM t WHERE id = 1 OR id = 2 OR id = 2 OR score > 100");
        for filing in &or {
            index.insert(QueryId(7), filing);
        }
        assert_eq!(index.candidates_only(0), Some(2), "not in the scan list");
        assert!(candidates_of(&index, 3, 0).is_empty());
        assert_eq!(candidates_of(&index, 1, 0), [entry(7)]);
        // Filed twice under 2 (the engine takes the row once).
        assert_eq!(candidates_of(&index, 2, 0), [entry(7), entry(7)]);
        assert_eq!(candidates_of(&index, 9, 101), [entry(7)]);
        for filing in &or {
            index.remove(QueryId(7), filing);
        }
        assert!(!index.watches(0), "unsubscribing left entries behind");

        for sql in [
            "SELECT * FROM t WHERE id = 1 OR score <> 5",
            "SELECT * FROM t WHERE (score > 1 AND score < 5) OR id = 3",
        ] {
            for filing in &filings(sql) {
                index.insert(QueryId(8), filing);
            }
            assert_eq!(index.candidates_only(0), None, "{sql} is scanned");
            for filing in &filings(sql) {
                index.remove(QueryId(8), filing);
            }
            assert!(!index.watches(0));
        }
    }
}
