//! The timer queue of scheduled reducers: every row of every schedule
//! table, ordered by the time it is due.
//!
//! It is sans-IO: built by scanning the tables (when a database opens or
//! its module is swapped) and kept exact after every commit from the
//! transaction's delta. It never reads a clock; callers pass `now`.

use std::collections::{BTreeSet, HashMap};

use worldline_datastore::{
    Datastore, IndexId, ModuleSchema, ProductType, ScheduleSchema, TableId, TxDelta, Value,
    decode_product, encode_value,
};

use crate::identity::Timestamp;

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

    /// The row after a run at `now`: for a repeating row, its bytes with
    /// the time moved to the first `at + k * interval` later than `now`;
    /// `None` for a one-shot row, which is deleted.
    pub(crate) fn moved(&self, row: &ScheduledRow, now: Timestamp) -> Option<Vec<u8>> {
        if row.interval == 0 {
            return None;
        }
        let next = next_time(row.at, row.interval, now.to_micros_since_epoch());
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

    /// When the earliest row is due.
    pub(crate) fn next_due(&self) -> Option<Timestamp> {
        self.by_time
            .first()
            .map(|(at, _)| Timestamp::from_micros_since_epoch(*at))
    }

    /// At most `limit` rows due at `now` (their time has come), earliest first.
    pub(crate) fn due(&self, now: Timestamp, limit: usize) -> Vec<ScheduleKey> {
        let now = now.to_micros_since_epoch();
        self.by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect()
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
        let at = Timestamp::from_micros_since_epoch;
        assert_eq!(queue.next_due(), Some(at(10)));
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
    }
}
