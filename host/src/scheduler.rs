//! The timer queue of scheduled reducers: every row of every schedule
//! table, ordered by the time it is due.
//!
//! It is sans-IO: built by scanning the tables (when a database opens or
//! its module is swapped) and kept exact after every commit from the
//! transaction's delta. It never reads a clock; callers pass the
//! [`ScheduleClocks`].
//!
//! A row's time is wall-clock time, so a row is due once the wall clock
//! reaches it. A repeating row that this queue moved on after a run is
//! also due one interval after that run on a steady clock, so that a wall
//! clock stepped forward and back, or back, does not stop it for the size
//! of the step (its next time is then written from the wall clock again).

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::Instant;

use worldline_datastore::{
    Datastore, IndexId, ModuleSchema, ProductType, ScheduleSchema, TableId, TxDelta, Value,
    decode_product, encode_value,
};

use crate::identity::Timestamp;

/// What a schedule is read against: the wall clock, in which rows' times
/// are written, and a steady clock, which is never set forward or back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleClocks {
    /// The wall clock now.
    pub wall: Timestamp,
    /// The steady clock now, in microseconds from a fixed origin.
    pub steady: i64,
}

impl ScheduleClocks {
    /// The wall clock and the process's steady clock, read now.
    pub fn now() -> Self {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let since = ORIGIN.get_or_init(Instant::now).elapsed();
        Self {
            wall: Timestamp::now(),
            steady: i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        }
    }

    /// Both clocks reading `now`: for a caller that gives the time itself
    /// (a test, a replay) and never steps it.
    pub fn same(now: Timestamp) -> Self {
        Self {
            wall: now,
            steady: now.to_micros_since_epoch(),
        }
    }
}

/// `at` plus `interval` microseconds, saturating at the end of time.
fn after(at: i64, interval: u64) -> i64 {
    i64::try_from(i128::from(at) + i128::from(interval)).unwrap_or(i64::MAX)
}

/// One schedule row, by its table and the bytes of its primary key (the
/// key form [`Datastore::find`] takes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ScheduleKey {
    /// The schedule table.
    pub(crate) table: TableId,
    /// The row's primary key, postcard-encoded.
    pub(crate) key: Vec<u8>,
}

/// How the rows of one schedule table are read.
#[derive(Clone, Debug)]
pub(crate) struct ScheduleTable {
    /// The table's id.
    pub(crate) table: TableId,
    /// The scheduled reducer's id.
    pub(crate) reducer: usize,
    /// The table's primary-key index.
    pub(crate) primary_key: IndexId,
    key_columns: Vec<usize>,
    columns: ProductType,
    at_column: usize,
    interval_column: Option<usize>,
}

/// A schedule row, decoded.
#[derive(Clone, Debug)]
pub(crate) struct ScheduledRow {
    /// Its primary key, postcard-encoded.
    pub(crate) key: Vec<u8>,
    /// When it is due, in microseconds since the epoch.
    pub(crate) at: i64,
    /// Its repeat interval in microseconds; 0 runs once.
    pub(crate) interval: u64,
    values: Vec<Value>,
}

impl ScheduledRow {
    /// The primary key's values, for messages (`1`, or `(1, "a")`).
    pub(crate) fn describe_key(&self, table: &ScheduleTable) -> String {
        let values: Vec<String> = table
            .key_columns
            .iter()
            .filter_map(|&c| self.values.get(c))
            .map(ToString::to_string)
            .collect();
        match values.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        }
    }
}

impl ScheduleTable {
    /// How to read the rows of `schedule`'s table; `None` if the schema
    /// does not hold together (validation refuses such a schema).
    fn new(schema: &ModuleSchema, schedule: &ScheduleSchema) -> Option<Self> {
        let table = schema.tables.get(schedule.table)?;
        let primary_key = table.primary_key?;
        let key_columns = table.indexes.get(primary_key)?.columns.clone();
        Some(Self {
            table: schedule.table,
            reducer: schedule.reducer,
            primary_key,
            key_columns,
            columns: table.columns.clone(),
            at_column: schedule.at_column,
            interval_column: schedule.interval_column,
        })
    }

    /// Decodes a stored row; `None` if it does not decode as the table's
    /// row type (the datastore stores only rows that do).
    pub(crate) fn read(&self, row: &[u8]) -> Option<ScheduledRow> {
        let values = decode_product(&self.columns, row).ok()?;
        let Value::Timestamp(at) = values.get(self.at_column)? else {
            return None;
        };
        let interval = match self.interval_column.map(|c| values.get(c)) {
            None => 0,
            Some(Some(Value::U64(interval))) => *interval,
            Some(_) => return None,
        };
        let mut key = Vec::new();
        for &column in &self.key_columns {
            encode_value(values.get(column)?, &mut key);
        }
        Some(ScheduledRow {
            key,
            at: *at,
            interval,
            values,
        })
    }

    /// The row after a run when the wall clock read `now`: for a repeating
    /// row, its bytes with the time moved to the first `at + k * interval`
    /// later than `now` (or, for a row run before its time because the wall
    /// clock was set back or its time was written while the clock was
    /// ahead, to `now + interval`); `None` for a one-shot row, which is
    /// deleted.
    pub(crate) fn moved(&self, row: &ScheduledRow, now: Timestamp) -> Option<Vec<u8>> {
        if row.interval == 0 {
            return None;
        }
        let now = now.to_micros_since_epoch();
        let next = if row.at <= now {
            next_time(row.at, row.interval, now)
        } else {
            after(now, row.interval)
        };
        let mut values = row.values.clone();
        *values.get_mut(self.at_column)? = Value::Timestamp(next);
        let mut bytes = Vec::new();
        encode_value(&Value::Product(values), &mut bytes);
        Some(bytes)
    }
}

/// The first `at + k * interval` (k >= 1, `interval` > 0) later than
/// `now`: missed runs are not made up. Saturates at the end of time.
pub(crate) fn next_time(at: i64, interval: u64, now: i64) -> i64 {
    let (at, interval, now) = (i128::from(at), i128::from(interval.max(1)), i128::from(now));
    let behind = (now - at).max(0);
    let next = at + (behind / interval + 1) * interval;
    i64::try_from(next).unwrap_or(i64::MAX)
}

/// The due time of every schedule row, in time order.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    tables: Vec<ScheduleTable>,
    by_time: BTreeSet<(i64, ScheduleKey)>,
    by_key: HashMap<ScheduleKey, i64>,
    /// Repeating rows moved on after a run, by when they are due again on
    /// the steady clock (one interval after the run); a row written again
    /// by a transaction other than the move leaves these.
    by_steady_time: BTreeSet<(i64, ScheduleKey)>,
    steady_by_key: HashMap<ScheduleKey, i64>,
}

impl Scheduler {
    /// The queue of `schema`'s schedules over the rows of `datastore`.
    pub(crate) fn scan(schema: &ModuleSchema, datastore: &Datastore) -> Self {
        let mut scheduler = Self {
            tables: schema
                .schedules
                .iter()
                .filter_map(|schedule| ScheduleTable::new(schema, schedule))
                .collect(),
            ..Self::default()
        };
        for position in 0..scheduler.tables.len() {
            let table = scheduler.tables[position].table;
            let Ok(rows) = datastore.rows(table) else {
                continue;
            };
            for row in rows {
                scheduler.insert(position, row);
            }
        }
        scheduler
    }

    /// Follows a committed transaction: its deleted rows of schedule
    /// tables leave the queue, its inserted ones join it (an update is
    /// both).
    pub(crate) fn apply(&mut self, delta: &TxDelta) {
        for change in &delta.tables {
            let Some(position) = self.tables.iter().position(|t| t.table == change.table) else {
                continue;
            };
            for row in &change.deletes {
                if let Some(read) = self.tables[position].read(row) {
                    self.remove(&ScheduleKey {
                        table: change.table,
                        key: read.key,
                    });
                }
            }
            for row in &change.inserts {
                self.insert(position, row);
            }
        }
    }

    /// The wall-clock time at which the earliest row is due, when the
    /// clocks read `now`: its own time, or sooner by the steady clock.
    pub(crate) fn next_due(&self, now: ScheduleClocks) -> Option<Timestamp> {
        let by_wall = self.by_time.first().map(|(at, _)| *at);
        let by_steady = self.by_steady_time.first().map(|(due, _)| {
            let wait = u64::try_from(due.saturating_sub(now.steady)).unwrap_or(0);
            after(now.wall.to_micros_since_epoch(), wait)
        });
        let at = match (by_wall, by_steady) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(Timestamp::from_micros_since_epoch(at))
    }

    /// At most `limit` rows due when the clocks read `now` (their time has
    /// come, or their interval since their last run on the steady clock),
    /// earliest first.
    pub(crate) fn due(&self, now: ScheduleClocks, limit: usize) -> Vec<ScheduleKey> {
        let wall = now.wall.to_micros_since_epoch();
        let mut keys: Vec<ScheduleKey> = self
            .by_time
            .iter()
            .take_while(|(at, _)| *at <= wall)
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect();
        for (_, key) in self
            .by_steady_time
            .iter()
            .take_while(|(due, _)| *due <= now.steady)
        {
            if keys.len() >= limit {
                break;
            }
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Whether row `key` is due when the clocks read `now`.
    pub(crate) fn is_due(&self, key: &ScheduleKey, now: ScheduleClocks) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|at| *at <= now.wall.to_micros_since_epoch())
            || self
                .steady_by_key
                .get(key)
                .is_some_and(|due| *due <= now.steady)
    }

    /// After the repeating row `key` ran and was moved on (the move
    /// committed and applied): it is also due `interval` after `ran` on
    /// the steady clock, whatever the wall clock does meanwhile.
    pub(crate) fn keep_rhythm(&mut self, key: &ScheduleKey, ran: ScheduleClocks, interval: u64) {
        if !self.by_key.contains_key(key) {
            return;
        }
        self.forget_rhythm(key);
        let due = after(ran.steady, interval);
        self.by_steady_time.insert((due, key.clone()));
        self.steady_by_key.insert(key.clone(), due);
    }

    fn forget_rhythm(&mut self, key: &ScheduleKey) {
        if let Some(due) = self.steady_by_key.remove(key) {
            self.by_steady_time.remove(&(due, key.clone()));
        }
    }

    /// Drops a row from the queue until it is written again (or the
    /// queue is scanned again).
    pub(crate) fn forget(&mut self, key: &ScheduleKey) {
        self.remove(key);
    }

    /// How to read table `table`'s rows, if it is a schedule table.
    pub(crate) fn table(&self, table: TableId) -> Option<&ScheduleTable> {
        self.tables.iter().find(|t| t.table == table)
    }

    fn insert(&mut self, position: usize, row: &[u8]) {
        let table = &self.tables[position];
        let Some(read) = table.read(row) else {
            return;
        };
        let key = ScheduleKey {
            table: table.table,
            key: read.key,
        };
        self.remove(&key);
        self.by_time.insert((read.at, key.clone()));
        self.by_key.insert(key, read.at);
    }

    fn remove(&mut self, key: &ScheduleKey) {
        if let Some(at) = self.by_key.remove(key) {
            self.by_time.remove(&(at, key.clone()));
        }
        self.forget_rhythm(key);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use worldline_datastore::{
        AlgebraicType, Field, IndexSchema, ReducerSchema, TableSchema, encode_value,
    };

    use super::*;

    /// A module with one plain table and one schedule table
    /// `(id: u64 pk, at: timestamp, every: u64)`.
    fn schema() -> ModuleSchema {
        let field = |name: &str, ty| Field {
            name: Some(name.into()),
            ty,
        };
        let columns = ProductType {
            fields: vec![
                field("id", AlgebraicType::U64),
                field("at", AlgebraicType::Timestamp),
                field("every", AlgebraicType::U64),
            ],
        };
        let table = |name: &str| TableSchema {
            name: name.into(),
            columns: columns.clone(),
            primary_key: Some(0),
            indexes: vec![IndexSchema {
                name: format!("{name}_id"),
                columns: vec![0],
                unique: true,
            }],
            auto_inc: Vec::new(),
            public: true,
        };
        ModuleSchema {
            tables: vec![table("plain"), table("timers")],
            reducers: vec![ReducerSchema {
                name: "tick".into(),
                params: ProductType {
                    fields: vec![field("row", AlgebraicType::Product(columns.clone()))],
                },
                lifecycle: None,
            }],
            procedures: Vec::new(),
            schedules: vec![ScheduleSchema {
                table: 1,
                reducer: 0,
                at_column: 1,
                interval_column: Some(2),
            }],
        }
    }

    fn row(id: u64, at: i64, every: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        let values = vec![Value::U64(id), Value::Timestamp(at), Value::U64(every)];
        encode_value(&Value::Product(values), &mut bytes);
        bytes
    }

    fn key(id: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_value(&Value::U64(id), &mut bytes);
        bytes
    }

    /// One write of a transaction.
    #[derive(Clone, Debug)]
    enum Write {
        Insert { table: TableId, id: u64, at: i64 },
        Update { table: TableId, id: u64, at: i64 },
        Delete { table: TableId, id: u64 },
    }

    fn write() -> impl Strategy<Value = Write> {
        let table = 0..2usize;
        let id = 0..8u64;
        let at = -5..20i64;
        prop_oneof![
            (table.clone(), id.clone(), at.clone()).prop_map(|(table, id, at)| Write::Insert {
                table,
                id,
                at
            }),
            (table.clone(), id.clone(), at).prop_map(|(table, id, at)| Write::Update {
                table,
                id,
                at
            }),
            (table, id).prop_map(|(table, id)| Write::Delete { table, id }),
        ]
    }

    fn apply(datastore: &mut Datastore, write: &Write) {
        // Refused writes (a duplicate key, a missing row) change nothing.
        let _ = match *write {
            Write::Insert { table, id, at } => datastore.insert(table, &row(id, at, 1)).map(|_| ()),
            Write::Update { table, id, at } => {
                datastore.update(table, 0, &row(id, at, 0)).map(|_| ())
            }
            Write::Delete { table, id } => datastore.delete(table, 0, &key(id)).map(|_| ()),
        };
    }

    proptest! {
        // The queue kept from deltas is always the one a fresh scan builds,
        // whatever transactions commit or roll back.
        #[test]
        fn the_queue_always_equals_a_fresh_scan(
            transactions in prop::collection::vec(
                (prop::collection::vec(write(), 0..6), any::<bool>()),
                0..12,
            ),
        ) {
            let schema = schema();
            let mut datastore = Datastore::new(schema.tables.clone());
            let mut queue = Scheduler::scan(&schema, &datastore);
            for (writes, commit) in &transactions {
                datastore.begin().expect("begin");
                for write in writes {
                    apply(&mut datastore, write);
                }
                if *commit {
                    let delta = datastore.commit();
                    queue.apply(&delta);
                } else {
                    datastore.rollback();
                }
                let fresh = Scheduler::scan(&schema, &datastore);
                prop_assert_eq!(&queue.by_key, &fresh.by_key);
                prop_assert_eq!(&queue.by_time, &fresh.by_time);
                prop_assert_eq!(queue.by_time.len(), queue.by_key.len());
            }
        }
    }

    #[test]
    fn due_rows_come_earliest_first_and_at_most_the_limit() {
        let schema = schema();
        let mut datastore = Datastore::new(schema.tables.clone());
        datastore.begin().expect("begin");
        for (id, at) in [(1, 30), (2, 10), (3, 20), (4, 50)] {
            datastore.insert(1, &row(id, at, 0)).expect("insert");
        }
        datastore.insert(0, &row(9, 0, 0)).expect("a plain row");
        let mut queue = Scheduler::scan(&schema, &Datastore::new(schema.tables.clone()));
        queue.apply(&datastore.commit());
        let at = |micros| ScheduleClocks::same(Timestamp::from_micros_since_epoch(micros));
        assert_eq!(queue.next_due(at(0)), Some(at(10).wall));
        let due: Vec<Vec<u8>> = queue.due(at(30), 64).into_iter().map(|k| k.key).collect();
        assert_eq!(due, vec![key(2), key(3), key(1)]);
        assert_eq!(queue.due(at(30), 2).len(), 2);
        assert!(queue.due(at(9), 64).is_empty());
    }

    #[test]
    fn a_repeating_row_moves_to_the_first_time_after_now() {
        assert_eq!(next_time(100, 10, 100), 110);
        assert_eq!(next_time(100, 10, 105), 110);
        assert_eq!(next_time(100, 10, 110), 120);
        // Missed runs are not made up: one run, then the rhythm goes on.
        assert_eq!(next_time(100, 10, 1_000_005), 1_000_010);
        // A row due in the future (run early by its owner) still moves one interval.
        assert_eq!(next_time(100, 10, 50), 110);
        assert_eq!(next_time(i64::MAX - 5, 10, i64::MAX), i64::MAX);
        assert_eq!(next_time(i64::MIN, u64::MAX, i64::MAX), i64::MAX);

        let schema = schema();
        let table = ScheduleTable::new(&schema, &schema.schedules[0]).expect("a schedule");
        let read = table.read(&row(7, 100, 10)).expect("a row");
        assert_eq!(
            (read.at, read.interval, read.key.clone()),
            (100, 10, key(7))
        );
        let moved = table.moved(&read, Timestamp::from_micros_since_epoch(125));
        assert_eq!(moved, Some(row(7, 130, 10)));
        let once = table.read(&row(7, 100, 0)).expect("a row");
        assert_eq!(
            table.moved(&once, Timestamp::from_micros_since_epoch(125)),
            None
        );
        assert_eq!(read.describe_key(&table), "7");
        // Run before its time (the wall clock went back): one interval from now.
        let early = table.read(&row(7, 1_000, 10)).expect("a row");
        assert_eq!(
            table.moved(&early, Timestamp::from_micros_since_epoch(125)),
            Some(row(7, 135, 10))
        );
    }

    /// A queue over one committed repeating row `(7, at, every)`.
    fn queue_with(datastore: &mut Datastore, at: i64, every: u64) -> Scheduler {
        let schema = schema();
        let mut queue = Scheduler::scan(&schema, datastore);
        datastore.begin().expect("begin");
        datastore.insert(1, &row(7, at, every)).expect("insert");
        queue.apply(&datastore.commit());
        queue
    }

    fn clocks(wall: i64, steady: i64) -> ScheduleClocks {
        ScheduleClocks {
            wall: Timestamp::from_micros_since_epoch(wall),
            steady,
        }
    }

    #[test]
    fn a_moved_row_keeps_its_rhythm_on_the_steady_clock_when_the_wall_clock_steps() {
        let mut datastore = Datastore::new(schema().tables);
        // Moved on to 1_000_010 while the wall clock was a day ahead.
        let mut queue = queue_with(&mut datastore, 1_000_010, 10);
        let seven = ScheduleKey {
            table: 1,
            key: key(7),
        };
        queue.keep_rhythm(&seven, clocks(1_000_000, 500), 10);
        // The wall clock is back at 100: the row is not due by its time,
        // but ten microseconds after its run on the steady clock.
        assert!(queue.due(clocks(105, 505), 64).is_empty());
        assert_eq!(
            queue.next_due(clocks(105, 505)),
            Some(Timestamp::from_micros_since_epoch(110))
        );
        assert!(!queue.is_due(&seven, clocks(105, 505)));
        assert_eq!(queue.due(clocks(110, 510), 64), vec![seven.clone()]);
        assert!(queue.is_due(&seven, clocks(110, 510)));

        // The row written again by the module: its own time alone counts.
        datastore.begin().expect("begin");
        datastore.update(1, 0, &row(7, 2_000, 10)).expect("update");
        queue.apply(&datastore.commit());
        assert!(queue.due(clocks(1_999, 10_000), 64).is_empty());
        assert_eq!(queue.due(clocks(2_000, 10_000), 64), vec![seven.clone()]);

        // A row deleted leaves both clocks' queues.
        queue.keep_rhythm(&seven, clocks(2_000, 10_000), 10);
        datastore.begin().expect("begin");
        datastore.delete(1, 0, &key(7)).expect("delete");
        queue.apply(&datastore.commit());
        assert!(queue.due(clocks(i64::MAX, i64::MAX), 64).is_empty());
        assert_eq!(queue.next_due(clocks(0, 0)), None);
    }
}
